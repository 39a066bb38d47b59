/*
 * paint_model: the paint itself, with no database and no request: the
 * body's validation (one rule per field in text_rules), the JSON row, and
 * the parsing of ids, prices, sort orders and list cursors. Everything is
 * pure and re-entrant, so unit tests and fuzzers call it directly.
 */
#define _GNU_SOURCE
#include "resources/paint_model.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cursor.h"
#include "base/json_scan.h"
#include "base/strbuf.h"
#include "base/util.h"
#include "http/http.h"

int paint_parse_id(const char *s, size_t len, int64_t *id)
{
	char buf[24];

	if (len == 0 || len >= sizeof(buf) || s[0] == '0' || memchr(s, '\0', len) != NULL)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return parse_int64(buf, 1, INT64_MAX, id);
}

/* ---- JSON shape ---------------------------------------------------------- */

/* The writable fields' names, in JSON bodies and as CSV columns. */
static const char *const field_names[PF_COUNT] = {
	[PF_NAME] = "name", [PF_BRAND] = "brand", [PF_CODE] = "color_code",
	[PF_TYPE] = "color_type", [PF_FAMILY] = "color_family", [PF_IMAGE] = "image_url",
	[PF_DESCRIPTION] = "description", [PF_PREVIEW] = "color_preview",
	[PF_STOCK] = "stock", [PF_PRICE] = "price", [PF_LOW_THRESHOLD] = "low_stock_threshold",
};

const char *paint_field_name(enum paint_field f)
{
	return field_names[f];
}

int paint_field_find(const char *name)
{
	int f;

	for (f = 0; f < PF_COUNT; f++)
		if (strcmp(name, field_names[f]) == 0)
			return f;
	return -1;
}

static const struct {
	enum paint_field field;
	int col;
} text_fields[] = {
	{ PF_NAME, COL_NAME },
	{ PF_BRAND, COL_BRAND },
	{ PF_CODE, COL_CODE },
	{ PF_TYPE, COL_TYPE },
	{ PF_FAMILY, COL_FAMILY },
	{ PF_IMAGE, COL_IMAGE },
	{ PF_DESCRIPTION, COL_DESCRIPTION },
	{ PF_PREVIEW, COL_PREVIEW },
};
#define NTEXT (sizeof(text_fields) / sizeof(text_fields[0]))

int paint_is_low(int64_t stock, int64_t threshold, int64_t low_default)
{
	int64_t t = threshold < 0 ? low_default : threshold;

	return t > 0 && stock <= t;
}

struct json_object *paint_row_json(const PGresult *r, int row, int64_t low_default)
{
	struct json_object *o = json_object_new_object();
	const char *price = PQgetvalue(r, row, COL_PRICE);
	int own = !PQgetisnull(r, row, COL_LOW_THRESHOLD);
	int64_t stock = strtoll(PQgetvalue(r, row, COL_STOCK), NULL, 10);
	int64_t threshold = own ? strtoll(PQgetvalue(r, row, COL_LOW_THRESHOLD), NULL, 10) : -1;
	size_t i;

	json_object_object_add(o, "id",
			       json_object_new_int64(strtoll(PQgetvalue(r, row, COL_ID), NULL, 10)));
	for (i = 0; i < NTEXT; i++) {
		if (text_fields[i].field == PF_DESCRIPTION || text_fields[i].field == PF_PREVIEW)
			continue;	/* placed below, in the API's order of a paint's fields */
		json_object_object_add(o, field_names[text_fields[i].field],
				       json_object_new_string(PQgetvalue(r, row, text_fields[i].col)));
	}
	json_object_object_add(o, "stock", json_object_new_int64(stock));
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
	json_object_object_add(o, "low_stock_threshold", own ? json_object_new_int64(threshold) : NULL);
	json_object_object_add(o, "low_stock",
			       json_object_new_boolean(paint_is_low(stock, threshold, low_default)));
	return o;
}

/* ---- CSV shape ------------------------------------------------------------ */

/* The export's columns, in enum paint_col order, by their JSON names. */
static const struct {
	const char *name;
	enum csv_cell kind;
} csv_columns[COL_COUNT] = {
	[COL_ID] = { "id", CSV_NUMBER },
	[COL_NAME] = { "name", CSV_TEXT },
	[COL_BRAND] = { "brand", CSV_TEXT },
	[COL_CODE] = { "color_code", CSV_TEXT },
	[COL_TYPE] = { "color_type", CSV_TEXT },
	[COL_FAMILY] = { "color_family", CSV_TEXT },
	[COL_IMAGE] = { "image_url", CSV_TEXT },
	[COL_STOCK] = { "stock", CSV_NUMBER },
	[COL_PRICE] = { "price", CSV_NUMBER },
	[COL_DESCRIPTION] = { "description", CSV_TEXT },
	[COL_PREVIEW] = { "color_preview", CSV_TEXT },
	[COL_CREATED] = { "created_at", CSV_TEXT },
	[COL_UPDATED] = { "updated_at", CSV_TEXT },
	[COL_VERSION] = { "version", CSV_NUMBER },
	[COL_LOW_THRESHOLD] = { "low_stock_threshold", CSV_NUMBER },
};

void paint_csv_header(struct csv_writer *w)
{
	int i;

	for (i = 0; i < COL_COUNT; i++)
		csv_write_cell(w, csv_columns[i].name, strlen(csv_columns[i].name), CSV_TEXT);
	csv_write_end(w);
}

void paint_row_csv(struct csv_writer *w, const PGresult *r, int row)
{
	int i;

	/* PQgetvalue gives "" for NULL: an empty cell. */
	for (i = 0; i < COL_COUNT; i++)
		csv_write_cell(w, PQgetvalue(r, row, i), (size_t)PQgetlength(r, row, i),
			       csv_columns[i].kind);
	csv_write_end(w);
}

void paint_export_filename(time_t t, char out[PAINT_EXPORT_NAME_LEN])
{
	struct tm tm;

	/* A time whose year has not four digits does not fit: a plain name then. */
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1000 ||
	    strftime(out, PAINT_EXPORT_NAME_LEN, "paints-%Y%m%d-%H%M%S.csv", &tm) == 0)
		snprintf(out, PAINT_EXPORT_NAME_LEN, "paints.csv");
}

/* ---- validation ------------------------------------------------------------ */

struct text_rule {
	size_t max;		/* in characters (code points) */
	int multiline;		/* newlines and tabs allowed */
	const char *def;	/* default; NULL: required */
	const char *too_long;	/* the message beyond max (a literal: shared by threads) */
};

/* "must be at most N characters", N from the same macro as max. */
#define TEXT_RULE(max, multiline, def) { max, multiline, def, "must be at most " #max " characters" }

static const struct text_rule text_rules[PF_COUNT] = {
	[PF_NAME] = TEXT_RULE(200, 0, NULL),
	[PF_BRAND] = TEXT_RULE(100, 0, ""),
	[PF_CODE] = TEXT_RULE(50, 0, ""),
	[PF_TYPE] = TEXT_RULE(100, 0, ""),
	[PF_FAMILY] = TEXT_RULE(100, 0, ""),
	[PF_IMAGE] = TEXT_RULE(2048, 0, ""),
	[PF_DESCRIPTION] = TEXT_RULE(5000, 1, ""),
	[PF_PREVIEW] = TEXT_RULE(7, 0, "#cccccc"),
};

/* Members a client may send back unchanged from a GET: accepted, ignored. */
static const char *const read_only[] = { "id", "created_at", "updated_at", "version", "low_stock" };

static int is_known(const char *key)
{
	size_t i;

	if (paint_field_find(key) >= 0)
		return 1;
	for (i = 0; i < sizeof(read_only) / sizeof(read_only[0]); i++)
		if (strcmp(key, read_only[i]) == 0)
			return 1;
	return 0;
}

const char *paint_price_error(const char *t)
{
	size_t intlen = strspn(t, "0123456789"), declen = 0;

	if (*t == '-')
		return "must not be negative";
	if (intlen == 0)
		return "must be a plain decimal number such as 19.99";
	if (t[intlen] == '.') {
		declen = strspn(t + intlen + 1, "0123456789");
		if (declen == 0)
			return "must be a plain decimal number such as 19.99";
	}
	if (t[intlen + (declen ? declen + 1 : 0)] != '\0')
		return strpbrk(t, "eE") ? "must be written without an exponent, such as 100.00"
					 : "must be a plain decimal number such as 19.99";
	if (declen > 2)
		return "must have at most 2 decimals";
	if (intlen > 1 && t[0] == '0')
		return "must not have leading zeros";
	if (intlen > 8)
		return "must be below 100000000";
	return NULL;
}

int paint_image_url_hash(const char *url, char hash[PAINT_IMAGE_HASH_LEN + 1])
{
	size_t n = strlen(PAINT_IMAGE_PREFIX), i;

	if (strncmp(url, PAINT_IMAGE_PREFIX, n) != 0)
		return -1;
	for (i = 0; i < PAINT_IMAGE_HASH_LEN; i++)
		if (!isdigit((unsigned char)url[n + i]) && !(url[n + i] >= 'a' && url[n + i] <= 'f'))
			return -1;
	if (strcmp(url + n + PAINT_IMAGE_HASH_LEN, PAINT_IMAGE_SUFFIX) != 0)
		return -1;
	if (hash) {
		memcpy(hash, url + n, PAINT_IMAGE_HASH_LEN);
		hash[PAINT_IMAGE_HASH_LEN] = '\0';
	}
	return 0;
}

static int is_url_char(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f && ch != '"' && ch != '<' && ch != '>' &&
	       ch != '\\' && ch != '^' && ch != '`' && ch != '{' && ch != '|' && ch != '}';
}

static const char *image_url_error(const char *u)
{
	const char *host;
	const unsigned char *p;

	if (*u == '\0' || paint_image_url_hash(u, NULL) == 0)
		return NULL;
	if (*u == '/')
		return "must be an absolute http(s) URL, or a stored image's /images/<sha-256>.webp";
	if (strncasecmp(u, "http://", 7) == 0)
		host = u + 7;
	else if (strncasecmp(u, "https://", 8) == 0)
		host = u + 8;
	else
		return "must be empty or an absolute http(s) URL";
	if (*host == '\0' || *host == '/' || *host == '?' || *host == '#' || *host == ':')
		return "must name a host";
	for (p = (const unsigned char *)u; *p; p++)
		if (!is_url_char(*p))
			return "must not contain spaces, quotes or non-ASCII characters (percent-encode them)";
	return NULL;
}

/* Check a colour as #RRGGBB and lower-case it in place; NULL when good. */
static const char *preview_error(char *val)
{
	size_t i;

	if (strlen(val) != 7 || val[0] != '#' || strspn(val + 1, "0123456789abcdefABCDEF") != 6)
		return "must be a colour as #RRGGBB";
	for (i = 1; i < 7; i++)
		if (val[i] >= 'A' && val[i] <= 'F')
			val[i] = (char)(val[i] - 'A' + 'a');
	return NULL;
}

/* Validate the text s of text field f; returns the stored value (malloc'd) or NULL + *why. */
static char *text_value(enum paint_field f, const char *s, const char **why)
{
	const struct text_rule *rule = &text_rules[f];
	const char *start, *end;
	char *val;
	size_t i;

	/* Trim ASCII white space at both ends. */
	start = s + strspn(s, " \t\r\n");
	end = start + strlen(start);
	while (end > start && strchr(" \t\r\n", end[-1]))
		end--;
	val = xstrndup(start, (size_t)(end - start));
	for (i = 0; val[i]; i++) {
		unsigned char ch = (unsigned char)val[i];

		if ((ch < 0x20 || ch == 0x7f) &&
		    !(rule->multiline && (ch == '\n' || ch == '\t' || ch == '\r'))) {
			*why = "must not contain control characters";
			goto bad;
		}
	}
	if (f == PF_NAME && val[0] == '\0') {
		*why = "must not be empty";
		goto bad;
	}
	if (utf8_chars(val) > rule->max) {
		*why = rule->too_long;
		goto bad;
	}
	if (f == PF_PREVIEW && (*why = preview_error(val)) != NULL)
		goto bad;
	if (f == PF_IMAGE && (*why = image_url_error(val)) != NULL)
		goto bad;
	return val;
bad:
	free(val);
	return NULL;
}

/* Validate one text field; returns the stored value (malloc'd) or NULL + *why. */
static char *check_text(enum paint_field f, struct json_object *v, const char **why)
{
	const struct text_rule *rule = &text_rules[f];
	const char *s;

	if (v == NULL) {
		if (rule->def == NULL) {
			*why = "is required";
			return NULL;
		}
		return xstrdup(rule->def);
	}
	if (!json_object_is_type(v, json_type_string)) {
		*why = "must be a string";
		return NULL;
	}
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v)) {
		*why = "must not contain NUL characters";
		return NULL;
	}
	return text_value(f, s, why);
}

#define STOCK_RANGE "must be from 0 to " PAINT_MAX_STOCK_TEXT

/* A stock n as the value PostgreSQL receives, or NULL + *why when out of range. */
static char *stock_value(int64_t n, const char **why)
{
	char buf[24];

	if (n < 0 || n > PAINT_MAX_STOCK) {
		*why = STOCK_RANGE;
		return NULL;
	}
	snprintf(buf, sizeof(buf), "%lld", (long long)n);
	return xstrdup(buf);
}

static char *check_stock(struct json_object *v, const char **why)
{
	int64_t n;

	if (v == NULL)
		return xstrdup(paint_field_default(PF_STOCK));
	if (!json_object_is_type(v, json_type_int)) {
		*why = json_object_is_type(v, json_type_double) ? "must be a whole number"
								 : "must be a number";
		return NULL;
	}
	errno = 0;
	n = json_object_get_int64(v);
	if (errno == ERANGE) {
		*why = STOCK_RANGE;
		return NULL;
	}
	return stock_value(n, why);
}

/* A stock written as text (a CSV cell): decimal digits, judged as JSON's would be. */
static char *stock_text(const char *s, const char **why)
{
	size_t sign = *s == '-', digits = strspn(s + sign, "0123456789");
	char end = s[sign + digits];
	int64_t n;

	if (digits == 0 || (end != '\0' && end != '.' && end != 'e' && end != 'E')) {
		*why = "must be a number";
		return NULL;
	}
	if (end != '\0') {
		*why = "must be a whole number";
		return NULL;
	}
	if (sign || parse_int64(s, 0, INT64_MAX, &n) != 0) {
		*why = STOCK_RANGE;
		return NULL;
	}
	return stock_value(n, why);
}

static char *check_price(struct json_object *v, const char **why)
{
	const char *text;

	if (v == NULL)
		return xstrdup(paint_field_default(PF_PRICE));
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) {
		*why = "must be a number";
		return NULL;
	}
	/* The number exactly as the client wrote it: never through a double. */
	text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	if ((*why = paint_price_error(text)) != NULL)
		return NULL;
	return xstrdup(text);
}

/*
 * A paint's own low-stock threshold: a stock level (check_stock's rule),
 * or absent or null for none (*out NULL: the default applies). 0, or -1
 * with *why.
 */
static int check_threshold(struct json_object *v, char **out, const char **why)
{
	*out = NULL;
	if (v == NULL)
		return 0;
	return (*out = check_stock(v, why)) != NULL ? 0 : -1;
}

/* The member key of body, else of base; NULL when absent or null (default). */
static struct json_object *effective(struct json_object *body, struct json_object *base,
				     const char *key)
{
	struct json_object *v;

	if (json_object_object_get_ex(body, key, &v))
		return v;	/* NULL for an explicit null: reset to the default */
	if (base && json_object_object_get_ex(base, key, &v))
		return v;
	return NULL;
}

int paint_validate(struct json_object *body, struct json_object *base,
		    struct paint_input *out, struct json_object **errors)
{
	struct json_object *errs = json_object_new_object();
	const char *why = NULL;
	size_t i;

	memset(out, 0, sizeof(*out));
	json_object_object_foreach(body, key, val) {
		(void)val;
		if (!is_known(key))
			json_object_object_add(errs, key, json_object_new_string("is not a field of a paint"));
	}
	for (i = 0; i < NTEXT; i++) {
		enum paint_field f = text_fields[i].field;

		why = NULL;
		out->value[f] = check_text(f, effective(body, base, field_names[f]), &why);
		if (out->value[f] == NULL)
			json_object_object_add(errs, field_names[f], json_object_new_string(why));
	}
	out->value[PF_STOCK] = check_stock(effective(body, base, "stock"), &why);
	if (out->value[PF_STOCK] == NULL)
		json_object_object_add(errs, "stock", json_object_new_string(why));
	out->value[PF_PRICE] = check_price(effective(body, base, "price"), &why);
	if (out->value[PF_PRICE] == NULL)
		json_object_object_add(errs, "price", json_object_new_string(why));
	if (check_threshold(effective(body, base, "low_stock_threshold"), &out->value[PF_LOW_THRESHOLD],
			    &why) != 0)
		json_object_object_add(errs, "low_stock_threshold", json_object_new_string(why));

	if (json_object_object_length(errs) > 0) {
		paint_input_free(out);
		*errors = errs;
		return -1;
	}
	json_object_put(errs);
	*errors = NULL;
	return 0;
}

void paint_input_free(struct paint_input *in)
{
	int i;

	for (i = 0; i < PF_COUNT; i++) {
		free(in->value[i]);
		in->value[i] = NULL;
	}
}

const char *paint_field_default(enum paint_field f)
{
	if (f == PF_STOCK)
		return "0";
	if (f == PF_PRICE)
		return "0.00";
	return text_rules[f].def;
}

char *paint_field_from_text(enum paint_field f, const char *s, const char **why)
{
	if (f == PF_STOCK)
		return stock_text(s, why);
	if (f == PF_PRICE)
		return (*why = paint_price_error(s)) == NULL ? xstrdup(s) : NULL;
	return text_value(f, s, why);
}

char *paint_field_from_json(enum paint_field f, struct json_object *v, const char **why)
{
	if (f == PF_STOCK)
		return check_stock(v, why);
	if (f == PF_PRICE)
		return check_price(v, why);
	return check_text(f, v, why);
}

char *paint_like_pattern(const char *q)
{
	struct strbuf sb;

	strbuf_init(&sb);
	strbuf_putc(&sb, '%');
	for (; *q; q++) {
		if (*q == '%' || *q == '_' || *q == '\\')
			strbuf_putc(&sb, '\\');
		strbuf_putc(&sb, *q);
	}
	strbuf_putc(&sb, '%');
	return strbuf_detach(&sb, NULL);
}

/* ---- stock changes ------------------------------------------------------------ */

int paint_validate_delta(struct json_object *body, int64_t *delta, struct json_object **errors)
{
	struct json_object *errs = json_object_new_object(), *v = NULL;
	int64_t d = 0;

	json_object_object_foreach(body, key, val) {
		(void)val;
		if (strcmp(key, "delta") != 0)
			json_object_object_add(errs, key, json_object_new_string("is not a field of a stock change"));
	}
	if (!json_object_object_get_ex(body, "delta", &v) || v == NULL) {
		json_object_object_add(errs, "delta", json_object_new_string("is required"));
	} else if (!json_object_is_type(v, json_type_int)) {
		json_object_object_add(errs, "delta", json_object_new_string("must be a whole number"));
	} else {
		errno = 0;
		d = json_object_get_int64(v);
		if (errno == ERANGE || d < -PAINT_MAX_STOCK || d > PAINT_MAX_STOCK || d == 0)
			json_object_object_add(errs, "delta", json_object_new_string(
				"must be a non-zero whole number from -" PAINT_MAX_STOCK_TEXT
				" to " PAINT_MAX_STOCK_TEXT));
	}
	if (json_object_object_length(errs) > 0) {
		*errors = errs;
		return -1;
	}
	json_object_put(errs);
	*errors = NULL;
	*delta = d;
	return 0;
}

/* ---- sort orders and cursors ------------------------------------------------- */

static const struct paint_sort sorts[] = {
	{ "-created_at", "created_at", "timestamptz", 1 },
	{ "created_at", "created_at", "timestamptz", 0 },
	{ "name", "name", "text", 0 }, { "-name", "name", "text", 1 },
	{ "price", "price", "numeric", 0 }, { "-price", "price", "numeric", 1 },
	{ "stock", "stock", "int4", 0 }, { "-stock", "stock", "int4", 1 },
};

const struct paint_sort *paint_sort_find(const char *param)
{
	size_t k;

	for (k = 0; k < sizeof(sorts) / sizeof(sorts[0]); k++)
		if (strcmp(param, sorts[k].param) == 0)
			return &sorts[k];
	return NULL;
}

const struct paint_sort *paint_sort_default(void)
{
	return &sorts[0];
}

/* A cursor is base64url(JSON {"s": sort, "v": value, "i": id}). */
int paint_cursor_read(const char *text, const struct paint_sort *sort, char **value, char id[24])
{
	struct json_object *o = cursor_decode(text, 1300), *s, *v;
	int rc = -1;

	if (o && json_object_object_get_ex(o, "s", &s) && json_object_is_type(s, json_type_string) &&
	    strcmp(json_object_get_string(s), sort->param) == 0 &&
	    json_object_object_get_ex(o, "v", &v) && json_object_is_type(v, json_type_string) &&
	    json_object_get_string_len(v) < 300 &&
	    strlen(json_object_get_string(v)) == (size_t)json_object_get_string_len(v) &&
	    cursor_get_id(o, "i", id) == 0) {
		*value = xstrdup(json_object_get_string(v));
		rc = 0;
	}
	if (o)
		json_object_put(o);
	return rc;
}

int paint_cursor_decode(const char *text, const char *sort, char **value, char id[24])
{
	const struct paint_sort *s = paint_sort_find(sort);

	return s ? paint_cursor_read(text, s, value, id) : -1;
}

struct json_object *paint_cursor_make(const struct paint_sort *sort, const char *value,
				      const char *id)
{
	struct json_object *o = json_object_new_object(), *out;
	char *enc;

	json_object_object_add(o, "s", json_object_new_string(sort->param));
	json_object_object_add(o, "v", json_object_new_string(value));
	json_object_object_add(o, "i", json_object_new_int64(strtoll(id, NULL, 10)));
	enc = cursor_encode(o);
	out = json_object_new_string(enc);
	free(enc);
	json_object_put(o);
	return out;
}

/* ---- cached entries, read back from Redis ---------------------------------- */

static int key_is(const char *key, size_t keylen, const char *name)
{
	return keylen == strlen(name) && memcmp(key, name, keylen) == 0;
}

int paint_cached_paint_check(const char *v, size_t len, int64_t id)
{
	const char *nl, *key;
	size_t vlen, keylen;
	struct json_scan js;
	enum json_kind kind;
	char idtext[24];
	int64_t version;
	int r, seen = 0;

	if (len == 1 && v[0] == '-')
		return 0;
	if ((nl = memchr(v, '\n', len)) == NULL ||
	    paint_parse_id(v, vlen = (size_t)(nl - v), &version) != 0)
		return -1;
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	json_scan_init(&js, nl + 1, len - vlen - 1);
	if (json_scan_enter(&js, JSON_OBJECT) != 0)
		return -1;
	while ((r = json_scan_member(&js, &key, &keylen)) == 1) {
		if ((kind = json_scan_value(&js)) == JSON_BAD)
			return -1;
		/* The id asked for, the version the entry says: as written, digit for digit. */
		if (key_is(key, keylen, "id"))
			seen |= kind == JSON_NUMBER && key_is(js.tok, js.toklen, idtext) ? 1 : 4;
		else if (key_is(key, keylen, "version"))
			seen |= kind == JSON_NUMBER && js.toklen == vlen && memcmp(js.tok, v, vlen) == 0 ? 2 : 4;
	}
	return r == 0 && json_scan_end(&js) == 0 && seen == 3 ? 0 : -1;
}

/* A page's "<etag>\n": the cursor entered into the body's object, or -1. */
static int page_enter(const char *v, size_t len, struct json_scan *js)
{
	const char *nl = memchr(v, '\n', len);

	if (nl == NULL || !http_etag_valid(v, (size_t)(nl - v)))
		return -1;
	json_scan_init(js, nl + 1, len - (size_t)(nl - v) - 1);
	return json_scan_enter(js, JSON_OBJECT);
}

/* The items of a list page: an array of objects, each with a paint id. */
static int list_items(struct json_scan *js)
{
	const char *key;
	size_t keylen;
	enum json_kind kind;
	int64_t id;
	int r, m, has_id;

	if (json_scan_enter(js, JSON_ARRAY) != 0)
		return -1;
	while ((r = json_scan_element(js)) == 1) {
		if (json_scan_enter(js, JSON_OBJECT) != 0)
			return -1;
		has_id = 0;
		while ((m = json_scan_member(js, &key, &keylen)) == 1) {
			if ((kind = json_scan_value(js)) == JSON_BAD)
				return -1;
			if (key_is(key, keylen, "id")) {
				if (kind != JSON_NUMBER || paint_parse_id(js->tok, js->toklen, &id) != 0)
					return -1;
				has_id = 1;
			}
		}
		if (m != 0 || !has_id)
			return -1;
	}
	return r == 0 ? 0 : -1;
}

int paint_cached_list_check(const char *v, size_t len)
{
	struct json_scan js;
	const char *key;
	size_t keylen;
	enum json_kind kind;
	int r, seen = 0;

	if (page_enter(v, len, &js) != 0)
		return -1;
	while ((r = json_scan_member(&js, &key, &keylen)) == 1) {
		if (key_is(key, keylen, "items")) {
			if (list_items(&js) != 0)
				return -1;
			seen |= 1;
			continue;
		}
		if ((kind = json_scan_value(&js)) == JSON_BAD)
			return -1;
		if (key_is(key, keylen, "next_cursor"))
			seen |= kind == JSON_STRING || kind == JSON_NULL ? 2 : 4;
	}
	return r == 0 && json_scan_end(&js) == 0 && seen == 3 ? 0 : -1;
}

/* The members of the stats page, of the kinds paints_stats writes. */
static const struct {
	const char *key;
	enum json_kind kind;
} stats_members[] = {
	{ "total", JSON_NUMBER },
	{ "in_stock", JSON_NUMBER },
	{ "stock_value", JSON_NUMBER },
	{ "by_brand", JSON_OBJECT },
	{ "by_family", JSON_OBJECT },
};
#define NSTATS (sizeof(stats_members) / sizeof(stats_members[0]))

int paint_cached_stats_check(const char *v, size_t len)
{
	struct json_scan js;
	const char *key;
	size_t keylen, i;
	enum json_kind kind;
	unsigned seen = 0;
	int r;

	if (page_enter(v, len, &js) != 0)
		return -1;
	while ((r = json_scan_member(&js, &key, &keylen)) == 1) {
		if ((kind = json_scan_value(&js)) == JSON_BAD)
			return -1;
		for (i = 0; i < NSTATS; i++)
			if (key_is(key, keylen, stats_members[i].key)) {
				if (kind != stats_members[i].kind)
					return -1;
				seen |= 1u << i;
			}
	}
	return r == 0 && json_scan_end(&js) == 0 && seen == (1u << NSTATS) - 1 ? 0 : -1;
}

const char *const paint_facets[PAINT_NFACETS] = { "brand", "color_family", "color_type" };

/* A facet's values: an array of objects, each with a "value" string and a "count" number. */
static int facet_values(struct json_scan *js)
{
	const char *key;
	size_t keylen;
	enum json_kind kind;
	int r, m, seen;

	if (json_scan_enter(js, JSON_ARRAY) != 0)
		return -1;
	while ((r = json_scan_element(js)) == 1) {
		if (json_scan_enter(js, JSON_OBJECT) != 0)
			return -1;
		seen = 0;
		while ((m = json_scan_member(js, &key, &keylen)) == 1) {
			if ((kind = json_scan_value(js)) == JSON_BAD)
				return -1;
			if (key_is(key, keylen, "value"))
				seen |= kind == JSON_STRING ? 1 : 4;
			else if (key_is(key, keylen, "count"))
				seen |= kind == JSON_NUMBER ? 2 : 4;
		}
		if (m != 0 || seen != 3)
			return -1;
	}
	return r == 0 ? 0 : -1;
}

int paint_cached_facets_check(const char *v, size_t len)
{
	struct json_scan js;
	const char *key;
	size_t keylen, i;
	enum json_kind kind;
	unsigned seen = 0, all = (1u << (PAINT_NFACETS + 2)) - 1;
	int r, facet;

	if (page_enter(v, len, &js) != 0)
		return -1;
	while ((r = json_scan_member(&js, &key, &keylen)) == 1) {
		for (facet = -1, i = 0; i < PAINT_NFACETS; i++)
			if (key_is(key, keylen, paint_facets[i]))
				facet = (int)i;
		if (facet >= 0) {
			if (facet_values(&js) != 0)
				return -1;
			seen |= 1u << facet;
			continue;
		}
		if ((kind = json_scan_value(&js)) == JSON_BAD)
			return -1;
		if (key_is(key, keylen, "total"))
			seen |= kind == JSON_NUMBER ? 1u << PAINT_NFACETS : 1u << 31;
		else if (key_is(key, keylen, "more"))
			seen |= kind == JSON_OBJECT ? 1u << (PAINT_NFACETS + 1) : 1u << 31;
	}
	return r == 0 && json_scan_end(&js) == 0 && seen == all ? 0 : -1;
}
