/*
 * paints: the paint inventory: id parsing, the JSON shape of a paint, and
 * the SQL (prepared statements, parameters only) behind the /admin/paints
 * routes.
 */
#ifndef PS_PAINTS_H
#define PS_PAINTS_H

#include <libpq-fe.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

struct ctx;

/* The statements every pooled connection prepares for this module. */
const struct pool_stmt *paints_statements(int *n);

/*
 * Parse a paint id from s[0..len): decimal digits only, 1..2^63-1, no sign,
 * no leading zeros. Returns 0 and *id, or -1.
 */
int paints_parse_id(const char *s, size_t len, int64_t *id);

/*
 * The paint in row of r (selected with PAINT_COLUMNS) as a new JSON object
 * in DESIGN.md's shape; the caller puts it.
 */
struct json_object *paints_row_json(const PGresult *r, int row);

/* GET /admin/paints/{id} */
void paints_get(struct ctx *c);

#endif
