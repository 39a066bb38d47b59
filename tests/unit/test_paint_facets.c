/*
 * Unit tests of the facets and low stock's pure parts: the low-stock rule
 * (paint_model), a paint's own threshold in validation and JSON, the
 * facets' query (paint_store's builder: the list's filters, each facet
 * without its own) and the check of a cached facets page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "http/http.h"
#include "resources/paint_model.h"
#include "resources/paint_store.h"

#include "paint_test.h"

/* How often needle occurs in hay. */
static int occurrences(const char *hay, const char *needle)
{
	int n = 0;

	for (; (hay = strstr(hay, needle)) != NULL; hay += strlen(needle))
		n++;
	return n;
}

static void test_low_stock_rule(void **state)
{
	(void)state;
	/* The default applies to a paint without its own (-1). */
	assert_true(paint_is_low(5, -1, 5));
	assert_true(paint_is_low(0, -1, 5));	/* out of stock is low */
	assert_false(paint_is_low(6, -1, 5));
	/* A default of 0 is "none": only paints with their own can be low. */
	assert_false(paint_is_low(0, -1, 0));
	/* A paint's own wins, either way; its 0 opts it out. */
	assert_true(paint_is_low(20, 20, 5));
	assert_false(paint_is_low(3, 2, 5));
	assert_false(paint_is_low(0, 0, 5));
	assert_true(paint_is_low(1000000, 1000000, 0));
}

static int validate(const char *body, const char *base, struct paint_input *in, char *err,
		    size_t errlen)
{
	struct json_object *b = json_tokener_parse(body), *bs = base ? json_tokener_parse(base) : NULL;
	struct json_object *errs = NULL;
	int rc;

	assert_non_null(b);
	rc = paint_validate(b, bs, in, &errs);
	err[0] = '\0';
	if (errs) {
		snprintf(err, errlen, "%s", json_object_to_json_string(errs));
		json_object_put(errs);
	}
	json_object_put(b);
	if (bs)
		json_object_put(bs);
	return rc;
}

static void test_threshold_validation(void **state)
{
	static const char *const bad[] = {
		"{\"name\":\"x\",\"low_stock_threshold\":-1}",
		"{\"name\":\"x\",\"low_stock_threshold\":1000001}",
		"{\"name\":\"x\",\"low_stock_threshold\":2.5}",
		"{\"name\":\"x\",\"low_stock_threshold\":\"3\"}",
		"{\"name\":\"x\",\"low_stock_threshold\":true}",
	};
	struct paint_input in;
	char err[512];
	size_t i;

	(void)state;
	assert_int_equal(validate("{\"name\":\"x\"}", NULL, &in, err, sizeof(err)), 0);
	assert_null(in.value[PF_LOW_THRESHOLD]);	/* the default applies */
	paint_input_free(&in);
	assert_int_equal(validate("{\"name\":\"x\",\"low_stock_threshold\":0}", NULL, &in, err,
				  sizeof(err)), 0);
	assert_string_equal(in.value[PF_LOW_THRESHOLD], "0");
	paint_input_free(&in);
	assert_int_equal(validate("{\"name\":\"x\",\"low_stock_threshold\":1000000}", NULL, &in, err,
				  sizeof(err)), 0);
	assert_string_equal(in.value[PF_LOW_THRESHOLD], "1000000");
	paint_input_free(&in);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(validate(bad[i], NULL, &in, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "\"low_stock_threshold\""));
	}
	/* PATCH: kept from the paint when absent, reset by null; low_stock (read-only) ignored. */
	assert_int_equal(validate("{\"stock\":1,\"low_stock\":false}",
				  "{\"name\":\"x\",\"low_stock_threshold\":9,\"low_stock\":true}",
				  &in, err, sizeof(err)), 0);
	assert_string_equal(in.value[PF_LOW_THRESHOLD], "9");
	paint_input_free(&in);
	assert_int_equal(validate("{\"low_stock_threshold\":null}",
				  "{\"name\":\"x\",\"low_stock_threshold\":9}", &in, err, sizeof(err)), 0);
	assert_null(in.value[PF_LOW_THRESHOLD]);
	paint_input_free(&in);
}

/* A row of PAINT_COLUMNS with stock and threshold (NULL: none); the rest filled in. */
static PGresult *row_with(const char *stock, const char *threshold)
{
	const char *values[COL_COUNT];
	int i;

	for (i = 0; i < COL_COUNT; i++)
		values[i] = i == COL_STOCK ? stock : i == COL_LOW_THRESHOLD ? threshold : i == COL_PRICE ? "1.00" : "1";
	return paint_row(values);
}

static void test_row_json_low_stock(void **state)
{
	static const struct { const char *stock, *threshold, *json_threshold; int64_t def; int low; } cases[] = {
		{ "5", NULL, "null", 5, 1 }, { "6", NULL, "null", 5, 0 }, { "0", NULL, "null", 0, 0 },
		{ "10", "10", "10", 5, 1 }, { "0", "0", "0", 5, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		PGresult *r = row_with(cases[i].stock, cases[i].threshold);
		struct json_object *o = paint_row_json(r, 0, cases[i].def), *v;

		assert_true(json_object_object_get_ex(o, "low_stock", &v));
		assert_int_equal(json_object_get_boolean(v), cases[i].low);
		assert_true(json_object_object_get_ex(o, "low_stock_threshold", &v));
		assert_string_equal(v ? json_object_to_json_string(v) : "null", cases[i].json_threshold);
		json_object_put(o);
		PQclear(r);
	}
}

/* The facets: every filter in the total; each facet's values without its own filter. */
static void test_facets_are_disjunctive(void **state)
{
	struct paint_list_query lq;
	char err[512];

	(void)state;
	assert_int_equal(build("brand=Golden&color_family=Blue&in_stock=true&q=co",
			       PAINT_LIST_FACETS, &lq, err, sizeof(err)), 0);
	/* Values bound once each, in the list's order. */
	assert_int_equal(lq.nparams, 3);
	assert_string_equal(lq.params[0], "Golden");
	assert_string_equal(lq.params[1], "Blue");
	assert_string_equal(lq.params[2], "%co%");
	/* The common filters once, in the scan; the facets' own under the groups. */
	assert_int_equal(occurrences(lq.sql.buf, "stock > 0"), 1);
	assert_int_equal(occurrences(lq.sql.buf, "ILIKE $3"), 3);
	/* brand: in the total and the family's and type's arms, not its own (3 arms of 4). */
	assert_int_equal(occurrences(lq.sql.buf, "brand = $1"), 3);
	assert_int_equal(occurrences(lq.sql.buf, "color_family = $2"), 3);
	assert_null(strstr(lq.sql.buf, "ORDER BY paints."));
	assert_null(strstr(lq.sql.buf, "LIMIT"));
	assert_non_null(strstr(lq.sql.buf, "rank <= " PS_STR(PAINT_FACET_MAX) " + 1"));
	paint_list_query_free(&lq);
}

/* The list's parameters and errors; a page's own (limit, cursor) refused; sort ignored. */
static void test_facets_take_the_lists_parameters(void **state)
{
	struct paint_list_query a, b;
	char ea[512], eb[512];

	(void)state;
	assert_int_equal(build("limit=10&cursor=x&brand=Golden", PAINT_LIST_FACETS, &a, ea, sizeof(ea)), -1);
	assert_non_null(strstr(ea, "\"limit\""));
	assert_non_null(strstr(ea, "\"cursor\""));
	assert_null(strstr(ea, "\"brand\""));
	paint_list_query_free(&a);
	assert_int_equal(build("in_stock=maybe&low_stock=2&nope=1", PAINT_LIST_FACETS, &a, ea, sizeof(ea)), -1);
	assert_int_equal(build("in_stock=maybe&low_stock=2&nope=1", PAINT_LIST_PAGE, &b, eb, sizeof(eb)), -1);
	assert_string_equal(ea, eb);
	assert_non_null(strstr(ea, "\"low_stock\""));
	paint_list_query_free(&a);
	paint_list_query_free(&b);
	/* The same facets whatever the order asked: one cache key. */
	assert_int_equal(build("sort=-price&brand=Golden", PAINT_LIST_FACETS, &a, ea, sizeof(ea)), 0);
	assert_int_equal(build("brand=Golden", PAINT_LIST_FACETS, &b, eb, sizeof(eb)), 0);
	assert_string_equal(a.canon.buf, b.canon.buf);
	paint_list_query_free(&a);
	paint_list_query_free(&b);
}

static void test_low_stock_filter(void **state)
{
	struct paint_list_query yes, one, no, none;
	char err[512];

	(void)state;
	assert_int_equal(build("low_stock=true&brand=Golden", PAINT_LIST_PAGE, &yes, err, sizeof(err)), 0);
	assert_int_equal(build("low_stock=1&brand=Golden", PAINT_LIST_PAGE, &one, err, sizeof(err)), 0);
	assert_int_equal(build("low_stock=false&brand=Golden", PAINT_LIST_PAGE, &no, err, sizeof(err)), 0);
	assert_int_equal(build("brand=Golden", PAINT_LIST_PAGE, &none, err, sizeof(err)), 0);
	/* The default is a value, bound after the filters before it. */
	assert_string_equal(yes.params[1], "5");
	assert_non_null(strstr(yes.sql.buf, " AND " PAINT_LOW_SQL("$2")));
	assert_non_null(strstr(no.sql.buf, " AND NOT " PAINT_LOW_SQL("$2")));
	assert_string_equal(yes.canon.buf, one.canon.buf);
	assert_null(strstr(none.sql.buf, "low_stock_threshold IS NULL"));
	/* Every list's key names the default threshold its paints' low_stock used. */
	assert_non_null(strstr(none.canon.buf, "low_default=5"));
	paint_list_query_free(&yes);
	paint_list_query_free(&one);
	paint_list_query_free(&no);
	paint_list_query_free(&none);
	/* in_stock takes 1 and 0 as well. */
	assert_int_equal(build("in_stock=0", PAINT_LIST_PAGE, &yes, err, sizeof(err)), 0);
	assert_non_null(strstr(yes.sql.buf, "stock = 0"));
	paint_list_query_free(&yes);
}

static void test_cached_facets_check(void **state)
{
	static const char good[] =
		"\"abc\"\n{\"total\":3,\"brand\":[{\"value\":\"Golden\",\"count\":2},{\"value\":\"\",\"count\":1}],"
		"\"color_family\":[],\"color_type\":[{\"value\":\"Oil\",\"count\":3}],"
		"\"more\":{\"brand\":false,\"color_family\":false,\"color_type\":false}}";
	static const char *const bad[] = {
		"{\"total\":0,\"brand\":[],\"color_family\":[],\"color_type\":[],\"more\":{}}",
		"\"abc\"\n{\"total\":0,\"brand\":[],\"color_family\":[],\"more\":{}}",
		"\"abc\"\n{\"total\":\"0\",\"brand\":[],\"color_family\":[],\"color_type\":[],\"more\":{}}",
		"\"abc\"\n{\"total\":0,\"brand\":[{\"value\":1,\"count\":1}],\"color_family\":[],"
		"\"color_type\":[],\"more\":{}}",
		"\"abc\"\n{\"total\":0,\"brand\":[{\"value\":\"x\"}],\"color_family\":[],\"color_type\":[],"
		"\"more\":{}}",
		"\"abc\"\n{\"total\":0,\"brand\":{},\"color_family\":[],\"color_type\":[],\"more\":{}}",
		"\"abc\"\n{\"total\":0,\"brand\":[],\"color_family\":[],\"color_type\":[],\"more\":{}",
		"\"abc\"\n{\"total\":0,\"brand\":[],\"color_family\":[],\"color_type\":[],\"more\":[]}",
	};
	size_t i;

	(void)state;
	assert_int_equal(paint_cached_facets_check(good, strlen(good)), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(paint_cached_facets_check(bad[i], strlen(bad[i])), -1);
	/* A list page is not a facets page. */
	assert_int_equal(paint_cached_facets_check("\"a\"\n{\"items\":[],\"next_cursor\":null}", 36), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_low_stock_rule),
		cmocka_unit_test(test_threshold_validation),
		cmocka_unit_test(test_row_json_low_stock),
		cmocka_unit_test_teardown(test_facets_are_disjunctive, free_queries),
		cmocka_unit_test_teardown(test_facets_take_the_lists_parameters, free_queries),
		cmocka_unit_test_teardown(test_low_stock_filter, free_queries),
		cmocka_unit_test(test_cached_facets_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
