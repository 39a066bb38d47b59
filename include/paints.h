/*
 * paints: the paint inventory: validation, the JSON shape of a paint, and
 * the SQL (prepared statements, values only ever as parameters) behind the
 * /admin/paints routes.
 */
#ifndef PS_PAINTS_H
#define PS_PAINTS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "resource.h"

struct ctx;

/* The writable fields of a paint, in the order of the SQL parameters. */
enum paint_field {
	PF_NAME, PF_BRAND, PF_CODE, PF_TYPE, PF_FAMILY, PF_IMAGE, PF_DESCRIPTION,
	PF_PREVIEW, PF_STOCK, PF_PRICE, PF_COUNT
};

/* A validated paint: every field as the text PostgreSQL receives. */
struct paint_input {
	char *value[PF_COUNT];	/* owned; never NULL after a successful validate */
};

#define PAINT_MAX_STOCK 1000000

/* The /admin/paints routes and their statements. */
extern const struct resource paints_resource;

/*
 * Parse a paint id from s[0..len): decimal digits only, 1..2^63-1, no sign,
 * no leading zeros. Returns 0 and *id, or -1.
 */
int paints_parse_id(const char *s, size_t len, int64_t *id);

/*
 * Validate body (a JSON object) as a paint. base, when not NULL, is the
 * current paint (a PATCH: members of body replace it, a member set to null
 * resets that field to its default, RFC 7396); without base, missing
 * fields take their defaults (POST, PUT). Returns 0 with out filled (free
 * with paint_input_free), or -1 with *errors a new JSON object mapping each
 * bad field to its message (caller puts it).
 */
int paints_validate(struct json_object *body, struct json_object *base,
		    struct paint_input *out, struct json_object **errors);
void paint_input_free(struct paint_input *in);

/*
 * Check a price as JSON text: a plain decimal >= 0 with at most two
 * decimals and below 100,000,000. Returns NULL when good, else the reason.
 */
const char *paints_price_error(const char *text);

/*
 * Decode a list cursor made for sort (e.g. "-created_at"): 0 with *value
 * (malloc'd, caller frees) and id set, or -1 when text is not such a cursor.
 */
int paints_cursor_decode(const char *text, const char *sort, char **value, char id[24]);

/* Escape %, _ and \ for a LIKE pattern and wrap it in %...%; caller frees. */
char *paints_like_pattern(const char *q);

/*
 * The paint in row of r (selected with PAINT_COLUMNS) as a new JSON object
 * in DESIGN.md's shape; the caller puts it.
 */
struct json_object *paints_row_json(const PGresult *r, int row);

void paints_list(struct ctx *c);	/* GET /admin/paints */
void paints_create(struct ctx *c);	/* POST /admin/paints */
void paints_stats(struct ctx *c);	/* GET /admin/paints/stats */
void paints_get(struct ctx *c);		/* GET /admin/paints/{id} */
void paints_put(struct ctx *c);		/* PUT /admin/paints/{id} */
void paints_patch(struct ctx *c);	/* PATCH /admin/paints/{id} */
void paints_delete(struct ctx *c);	/* DELETE /admin/paints/{id} */
void paints_stock(struct ctx *c);	/* POST /admin/paints/{id}/stock */

#endif
