#define _GNU_SOURCE
#include "paints.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "util.h"

/* The columns of a paint, in the order paints_row_json reads them. */
#define PAINT_COLUMNS \
	"id, name, brand, color_code, color_type, color_family, image_url, " \
	"stock, price::text, description, color_preview, " \
	"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
	"to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
	"version"

enum {
	COL_ID, COL_NAME, COL_BRAND, COL_CODE, COL_TYPE, COL_FAMILY, COL_IMAGE,
	COL_STOCK, COL_PRICE, COL_DESCRIPTION, COL_PREVIEW, COL_CREATED,
	COL_UPDATED, COL_VERSION,
};

static const struct pool_stmt statements[] = {
	{ "paint_get", "SELECT " PAINT_COLUMNS " FROM paints WHERE id = $1" },
};

const struct pool_stmt *paints_statements(int *n)
{
	*n = (int)(sizeof(statements) / sizeof(statements[0]));
	return statements;
}

int paints_parse_id(const char *s, size_t len, int64_t *id)
{
	char buf[24];

	if (len == 0 || len >= sizeof(buf) || s[0] == '0')
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return parse_int64(buf, 1, INT64_MAX, id);
}

struct json_object *paints_row_json(const PGresult *r, int row)
{
	static const struct { const char *key; int col; } texts[] = {
		{ "name", COL_NAME }, { "brand", COL_BRAND },
		{ "color_code", COL_CODE }, { "color_type", COL_TYPE },
		{ "color_family", COL_FAMILY }, { "image_url", COL_IMAGE },
	};
	struct json_object *o = json_object_new_object();
	const char *price = PQgetvalue(r, row, COL_PRICE);
	size_t i;

	json_object_object_add(o, "id",
			       json_object_new_int64(strtoll(PQgetvalue(r, row, COL_ID), NULL, 10)));
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		json_object_object_add(o, texts[i].key,
				       json_object_new_string(PQgetvalue(r, row, texts[i].col)));
	json_object_object_add(o, "stock",
			       json_object_new_int64(strtoll(PQgetvalue(r, row, COL_STOCK), NULL, 10)));
	/* numeric(10,2) as text keeps the exact decimal: emit it verbatim. */
	json_object_object_add(o, "price", json_object_new_double_s(strtod(price, NULL), price));
	json_object_object_add(o, "description",
			       json_object_new_string(PQgetvalue(r, row, COL_DESCRIPTION)));
	json_object_object_add(o, "color_preview",
			       json_object_new_string(PQgetvalue(r, row, COL_PREVIEW)));
	json_object_object_add(o, "created_at",
			       json_object_new_string(PQgetvalue(r, row, COL_CREATED)));
	json_object_object_add(o, "updated_at",
			       json_object_new_string(PQgetvalue(r, row, COL_UPDATED)));
	json_object_object_add(o, "version",
			       json_object_new_int64(strtoll(PQgetvalue(r, row, COL_VERSION), NULL, 10)));
	return o;
}

void paints_get(struct ctx *c)
{
	char idtext[24];
	const char *params[1];
	struct json_object *o;
	int64_t id;
	PGconn *pg;
	PGresult *r;

	if (paints_parse_id(c->match.var[0], c->match.varlen[0], &id) != 0) {
		http_problem(&c->resp, 400,
			     "the paint id must be a whole number from 1 to 9223372036854775807",
			     NULL);
		return;
	}
	pg = ctx_db(c, 0);
	if (pg == NULL)
		return;
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	params[0] = idtext;
	r = PQexecPrepared(pg, "paint_get", 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		http_problem(&c->resp, 404, "no paint has this id", NULL);
		return;
	}
	o = paints_row_json(r, 0);
	PQclear(r);
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}
