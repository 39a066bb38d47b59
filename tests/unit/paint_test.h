/*
 * For the unit tests of the paints' pure parts: build the list's query
 * (paint_store) from a query string, with its errors as JSON text (the
 * query strings parsed are kept until free_queries, since a query's
 * values point into them: use it as the tests' teardown), and make a
 * result of PAINT_COLUMNS' shape without a database.
 */
#ifndef PS_TEST_PAINT_TEST_H
#define PS_TEST_PAINT_TEST_H

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "http/http.h"
#include "resources/paint_store.h"

/* The default low-stock threshold the tests build with. */
#define TEST_LOW_DEFAULT 5

static struct http_query queries[32];
static int nqueries;

/* Build the list query of scope from the query string qs: 0 or -1, errors (if any) as JSON text in errtext. */
static inline int build(const char *qs, enum paint_list_scope scope, struct paint_list_query *lq,
		 char *errtext, size_t errlen)
{
	struct http_query *q = &queries[nqueries++];
	struct json_object *errors = NULL;
	int rc;

	assert_true(nqueries <= 32);
	assert_int_equal(http_parse_query(qs, q), 0);
	rc = paint_list_query_build(lq, q, scope, TEST_LOW_DEFAULT, &errors);
	errtext[0] = '\0';
	if (errors) {
		snprintf(errtext, errlen, "%s", json_object_to_json_string(errors));
		json_object_put(errors);
	}
	return rc;
}

static inline int free_queries(void **state)
{
	(void)state;
	while (nqueries > 0)
		http_query_free(&queries[--nqueries]);
	return 0;
}

/* A result of PAINT_COLUMNS' shape with one row of values (NULL: SQL NULL). */
static inline PGresult *paint_row(const char *const values[COL_COUNT])
{
	PGresAttDesc attrs[COL_COUNT];
	PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	int i;

	memset(attrs, 0, sizeof(attrs));
	for (i = 0; i < COL_COUNT; i++) {
		attrs[i].name = (char *)"c";
		attrs[i].typid = 25;	/* text */
		attrs[i].typlen = -1;
		attrs[i].atttypmod = -1;
	}
	assert_non_null(r);
	assert_true(PQsetResultAttrs(r, COL_COUNT, attrs));
	for (i = 0; i < COL_COUNT; i++)
		assert_true(PQsetvalue(r, 0, i, (char *)values[i], values[i] ? (int)strlen(values[i]) : -1));
	return r;
}

#endif
