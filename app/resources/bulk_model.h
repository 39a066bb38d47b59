/*
 * bulk_model: the pure part of a bulk edit (POST /admin/paints/bulk):
 * its limits, the body read and checked (which paints: ids or a filter;
 * the one change: set or add), and the change as SQL fragments over a
 * paint aliased p, every value a parameter. No database, no request: the
 * unit tests call it directly.
 */
#ifndef PS_BULK_MODEL_H
#define PS_BULK_MODEL_H

#include <json-c/json.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "http/http.h"
#include "resources/paint_model.h"

/* At most this many ids, or paints matching a filter, in one bulk edit. */
#define BULK_MAX_PAINTS 10000
/* The body's bound: 10,000 ids of 19 digits and their commas, and room for the rest. */
#define BULK_MAX_BODY (256 * 1024)
/* How many paints a preview shows. */
#define BULK_SAMPLE 20
/* How many ids an answer lists (out of bounds, unknown, skipped by an undo); the rest are counted. */
#define BULK_MAX_LISTED 100

/* The highest price (numeric(10,2)), as paint_price_error bounds it. */
#define BULK_MAX_PRICE_TEXT "99999999.99"

enum bulk_op { BULK_SET, BULK_ADD };

/* The change: for each field given, its value as PostgreSQL receives it. */
struct bulk_change {
	enum bulk_op op;
	char *value[PF_COUNT];	/* owned; NULL: the field is not changed */
};

/* A bulk edit's request: the paints (ids, or a filter as the list's parameters) and the change. */
struct bulk_request {
	int64_t *ids;		/* owned; NULL when by filter */
	int nids;
	int by_filter;
	struct http_query filter;	/* owned: the filter's members as the list's query parameters */
	struct json_object *filter_json;	/* borrowed from the body */
	struct json_object *change_json;	/* borrowed: {"set": {...}} or {"add": {...}} */
	struct bulk_change change;
};

/*
 * Read body (a JSON object): exactly one of "ids" (an array of 1 to
 * BULK_MAX_PAINTS paint ids) and "filter" (an object whose members are
 * the list's query parameters: strings, numbers or booleans, checked by
 * the list's builder, not here), and exactly one of "set" (fields and
 * values, each by paint_field_from_json) and "add" (stock and/or price
 * and a non-zero amount: a whole number for stock, a decimal with at most
 * two decimals for price). Returns 0 with out filled (free with
 * bulk_request_free), or -1 with *errors a new JSON object naming each
 * bad member (caller puts it); out needs freeing either way.
 */
int bulk_request_read(struct json_object *body, struct bulk_request *out,
		      struct json_object **errors);
void bulk_request_free(struct bulk_request *r);

/*
 * The change as SQL over a paint aliased p, its values bound from
 * $first on, in field order (params[] gets them; nparams how many):
 *  assign   "price = $4::numeric, stock = p.stock + $5::int4" (UPDATE ... SET)
 *  old, new "(p.price, p.stock)" and "($4::numeric, p.stock + $5::int4)"
 *  bounds   a condition true when an added value leaves its field's range ("false" for a set)
 *  before, after  jsonb_build_object(...) of the changed fields, before and after
 */
struct bulk_sql {
	struct strbuf assign, old, new, bounds, before, after;
	const char *params[PF_COUNT];
	int nparams;
};

void bulk_change_sql(const struct bulk_change *ch, int first, struct bulk_sql *out);
void bulk_sql_free(struct bulk_sql *s);

/*
 * The restoring assignments of every field for an undo, over a paint p
 * and the row t of its audit entry's changes: "name = CASE WHEN t.changes ?
 * 'name' THEN <its old value> ELSE p.name END, ...".
 */
void bulk_undo_assign(struct strbuf *out);

#endif
