/*
 * paint_model: what a paint is, apart from where it is stored and how it
 * is served: the writable fields and their validation, the JSON shape of a
 * paint row, and the parsing of ids, prices, sort orders and list cursors.
 * Pure functions (no database, no request): the unit tests and the fuzz
 * harnesses call them directly.
 */
#ifndef PS_PAINT_MODEL_H
#define PS_PAINT_MODEL_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/csv.h"
#include "base/util.h"

/* The writable fields of a paint, in the order of the SQL parameters. */
enum paint_field {
	PF_NAME, PF_BRAND, PF_CODE, PF_TYPE, PF_FAMILY, PF_IMAGE, PF_DESCRIPTION,
	PF_PREVIEW, PF_STOCK, PF_PRICE, PF_LOW_THRESHOLD, PF_COUNT
};

/*
 * The fields a CSV import and a bulk edit write: the catalogue's, all but
 * the low-stock threshold (0..PF_CATALOGUE-1). An import reads the
 * export's low_stock_threshold column and leaves the paint's as it is; a
 * bulk edit refuses it. Thresholds are set in the editor or by PATCH.
 */
#define PF_CATALOGUE PF_LOW_THRESHOLD

/*
 * A validated paint: every field as the text PostgreSQL receives. Owned;
 * after a successful validate only value[PF_LOW_THRESHOLD] may be NULL
 * (SQL NULL: the paint follows the default threshold).
 */
struct paint_input {
	char *value[PF_COUNT];
};

/*
 * The stock bound, as a number and as text (SQL and messages are built
 * from the macro, never restated).
 */
#define PAINT_MAX_STOCK 1000000
#define PAINT_MAX_STOCK_TEXT PS_STR(PAINT_MAX_STOCK)

/* The message of every answer about a paint that does not exist. */
#define PAINT_NOT_FOUND "no paint has this id"

/* The columns of a paint, in the order paint_row_json reads them. */
#define PAINT_COLUMNS \
	"id, name, brand, color_code, color_type, color_family, image_url, " \
	"stock, price::text, description, color_preview, " \
	"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
	"to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
	"version, low_stock_threshold"

enum paint_col {
	COL_ID, COL_NAME, COL_BRAND, COL_CODE, COL_TYPE, COL_FAMILY, COL_IMAGE,
	COL_STOCK, COL_PRICE, COL_DESCRIPTION, COL_PREVIEW, COL_CREATED,
	COL_UPDATED, COL_VERSION, COL_LOW_THRESHOLD, COL_COUNT
};

/*
 * Low stock. A paint's effective threshold is its own (low_stock_threshold)
 * or, when that is NULL, the service's default (LOW_STOCK_THRESHOLD); the
 * paint is low when that threshold is above 0 and its stock is at or
 * below it. So an out-of-stock paint is low, and a threshold of 0 (a
 * paint's own, or the default for paints without one) means "never low".
 *
 * paint_is_low is the rule in C (threshold < 0: the paint has none of its
 * own); PAINT_LOW_SQL(d) is the same rule as an SQL condition, never NULL,
 * with d the default as SQL text (a parameter such as "$3", or "%s" for a
 * format taking it twice): the OR of two disjoint arms, paints on the
 * default (PAINT_LOW_DEFAULT_SQL) and paints with their own threshold
 * (PAINT_LOW_OWN_SQL). Each arm implies the predicate of one of migration
 * 0014's partial indexes (paints_low_default_idx, paints_low_own_idx), so
 * either can be counted from its index alone.
 */
int paint_is_low(int64_t stock, int64_t threshold, int64_t low_default);
#define PAINT_LOW_DEFAULT_SQL(d) \
	"low_stock_threshold IS NULL AND stock <= " d "::int4 AND " d "::int4 > 0"
#define PAINT_LOW_OWN_SQL \
	"low_stock_threshold IS NOT NULL AND low_stock_threshold > 0 AND stock <= low_stock_threshold"
#define PAINT_LOW_SQL(d) "((" PAINT_LOW_DEFAULT_SQL(d) ") OR (" PAINT_LOW_OWN_SQL "))"

/* An order of the list: ?sort=<param>, a column, and its cursor's cast. */
struct paint_sort {
	const char *param;	/* "-created_at" */
	const char *column;
	const char *type;	/* cast of the cursor's value in SQL */
	int desc;
};

/*
 * A stored image's address, as a paint's image_url gives it (migration
 * 0015 says the same in SQL): PAINT_IMAGE_PREFIX, the SHA-256 of the
 * image's WebP bytes in lower-case hex, PAINT_IMAGE_SUFFIX. Its
 * thumbnail is served at the same address with PAINT_IMAGE_THUMB_SUFFIX.
 */
#define PAINT_IMAGE_PREFIX "/images/"
#define PAINT_IMAGE_SUFFIX ".webp"
#define PAINT_IMAGE_THUMB_SUFFIX ".thumb.webp"
#define PAINT_IMAGE_HASH_LEN 64

/*
 * 0 when url is a stored image's address (copying its hash to hash, a
 * terminated string, unless hash is NULL), else -1.
 */
int paint_image_url_hash(const char *url, char hash[PAINT_IMAGE_HASH_LEN + 1]);

/*
 * Parse a paint id from s[0..len): decimal digits only, 1..2^63-1, no sign,
 * no leading zeros. Returns 0 and *id, or -1.
 */
int paint_parse_id(const char *s, size_t len, int64_t *id);

/*
 * Validate body (a JSON object) as a paint. base, when not NULL, is the
 * current paint (a PATCH: members of body replace it, a member set to null
 * resets that field to its default, RFC 7396); without base, missing
 * fields take their defaults (POST, PUT). Returns 0 with out filled (free
 * with paint_input_free), or -1 with *errors a new JSON object mapping each
 * bad field to its message (caller puts it).
 */
int paint_validate(struct json_object *body, struct json_object *base,
		   struct paint_input *out, struct json_object **errors);
void paint_input_free(struct paint_input *in);

/* The name of field f in JSON bodies and as a CSV column ("name", "stock"). */
const char *paint_field_name(enum paint_field f);

/* The field called name, or -1. */
int paint_field_find(const char *name);

/* The value a new paint takes for field f when it is not given, or NULL when f is required. */
const char *paint_field_default(enum paint_field f);

/*
 * Validate field f written as text (a CSV cell, NUL-terminated) by the
 * rules paint_validate applies to a body's member: a text field as a JSON
 * string (trimmed, no control characters, its length, #RRGGBB lower-cased,
 * the URL's shape), stock as a whole decimal number 0..PAINT_MAX_STOCK,
 * price as paint_price_error. Returns the value PostgreSQL receives
 * (malloc'd; caller frees), or NULL with *why the message (static), the
 * same words as paint_validate's.
 */
char *paint_field_from_text(enum paint_field f, const char *s, const char **why);

/*
 * Validate field f given as a JSON member's value v by paint_validate's
 * rules (NULL, for a JSON null: the field's default, or "is required").
 * Returns the value PostgreSQL receives (malloc'd; caller frees), or NULL
 * with *why the message (static).
 */
char *paint_field_from_json(enum paint_field f, struct json_object *v, const char **why);

/*
 * Validate a stock change body {"delta": n}: a non-zero whole number within
 * +-PAINT_MAX_STOCK. Returns 0 with *delta, or -1 with *errors a new JSON
 * object of per-field messages (caller puts it).
 */
int paint_validate_delta(struct json_object *body, int64_t *delta, struct json_object **errors);

/*
 * Check a price as JSON text: a plain decimal >= 0 with at most two
 * decimals and below 100,000,000. Returns NULL when good, else the reason.
 */
const char *paint_price_error(const char *text);

/* The sort order named param ("name", "-price"), or NULL. */
const struct paint_sort *paint_sort_find(const char *param);
/* The default order (-created_at). */
const struct paint_sort *paint_sort_default(void);

/*
 * Decode a list cursor made for sort (e.g. "-created_at"): 0 with *value
 * (malloc'd, caller frees) and id set, or -1 when text is not such a cursor
 * (or sort is not an order of the list).
 */
int paint_cursor_decode(const char *text, const char *sort, char **value, char id[24]);

/* As paint_cursor_decode, for an order already looked up. */
int paint_cursor_read(const char *text, const struct paint_sort *sort, char **value, char id[24]);

/* The cursor after the row (value, id) in sort: a new JSON string (caller puts it). */
struct json_object *paint_cursor_make(const struct paint_sort *sort, const char *value,
				      const char *id);

/* Escape %, _ and \ for a LIKE pattern and wrap it in %...%; caller frees. */
char *paint_like_pattern(const char *q);

/*
 * The paint in row of r (selected with PAINT_COLUMNS) as a new JSON object
 * in the API's paint shape, "low_stock" judged with the default threshold
 * low_default (paint_is_low); the caller puts it.
 */
struct json_object *paint_row_json(const PGresult *r, int row, int64_t low_default);

/*
 * The export (CSV). Its columns are a paint's stored fields, named and
 * ordered as in the JSON (id, name, brand, color_code, color_type,
 * color_family, image_url, stock, price, description, color_preview,
 * created_at, updated_at, version, low_stock_threshold; not the derived
 * low_stock). paint_csv_header writes the record of their
 * names; paint_row_csv the paint in row of r (selected with
 * PAINT_COLUMNS): text as CSV_TEXT (neutralised where a spreadsheet
 * could read a formula), the numbers as PostgreSQL formatted them
 * (CSV_NUMBER: id, stock, price, version, low_stock_threshold), NULL as
 * an empty cell.
 */
void paint_csv_header(struct csv_writer *w);
void paint_row_csv(struct csv_writer *w, const PGresult *r, int row);

/* The export's file name for the UTC time t: "paints-YYYYMMDD-HHMMSS.csv". */
#define PAINT_EXPORT_NAME_LEN sizeof("paints-YYYYMMDD-HHMMSS.csv")
void paint_export_filename(time_t t, char out[PAINT_EXPORT_NAME_LEN]);

/*
 * The entries paints caches, as read back from Redis: input, so checked
 * before use (pure; no allocation). Each returns 0 when v[0..len) is an
 * entry of the shape paints writes, else -1.
 *
 * A paint (under paint id): "-" (known absent), or "<version>\n<body>",
 * version as paint_parse_id reads an id, body a JSON object whose "id" is
 * id and whose "version" is version, both written as the plain decimal.
 */
int paint_cached_paint_check(const char *v, size_t len, int64_t id);

/*
 * A list or stats page: "<etag>\n<body>", etag as http_etag_valid takes
 * it; body a JSON object with, for a list, "items" (an array of objects,
 * each with a paint id as "id") and "next_cursor" (a string or null); for
 * the stats, "total", "in_stock", "stock_value" (numbers), "by_brand" and
 * "by_family" (objects). Other members are allowed (and checked as JSON):
 * another version of the service may add some.
 */
int paint_cached_list_check(const char *v, size_t len);
int paint_cached_stats_check(const char *v, size_t len);

/*
 * The facets page: "<etag>\n<body>", body an object with "total" (a
 * number), "more" (an object) and each of PAINT_FACETS (an array of
 * objects, each with a "value" string and a "count" number).
 */
int paint_cached_facets_check(const char *v, size_t len);

/* The facets, in the order of the answer and of the facets statement's rows. */
#define PAINT_NFACETS 3
extern const char *const paint_facets[PAINT_NFACETS];	/* brand, color_family, color_type */
/* The most values a facet lists; "more" says when it has others. */
#define PAINT_FACET_MAX 200

#endif
