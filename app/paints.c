#define _GNU_SOURCE
#include "paints.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "context.h"
#include "strbuf.h"
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
	COL_UPDATED, COL_VERSION, COL_COUNT
};

/* Record the invalidation of the written row w; select it with its outbox id. */
#define OUTBOX_TAIL \
	", o AS (INSERT INTO cache_outbox (paint_id) SELECT id FROM w RETURNING id) " \
	"SELECT " PAINT_COLUMNS ", (SELECT id FROM o) FROM w"
#define COL_OUTBOX COL_COUNT

/* $1..$10 are the writable fields in enum paint_field order. */
#define PAINT_VALUES "$1, $2, $3, $4, $5, $6, $7, $8, $9::int4, $10::numeric"

static const struct pool_stmt statements[] = {
	{ "paint_get", "SELECT " PAINT_COLUMNS " FROM paints WHERE id = $1" },
	{ "paint_get_for_update", "SELECT " PAINT_COLUMNS " FROM paints WHERE id = $1 FOR UPDATE" },
	/*
	 * Every write also records its cache invalidation in cache_outbox, in
	 * the same statement (so the same transaction); the outbox row's id
	 * comes back as the last column (COL_OUTBOX).
	 */
	{ "paint_insert",
	  "WITH w AS (INSERT INTO paints (name, brand, color_code, color_type, color_family, "
	  "image_url, description, color_preview, stock, price) VALUES (" PAINT_VALUES ") RETURNING *)"
	  OUTBOX_TAIL },
	/* $11 id, $12 the version If-Match demands (NULL: any) */
	{ "paint_update",
	  "WITH w AS (UPDATE paints SET (name, brand, color_code, color_type, color_family, image_url, "
	  "description, color_preview, stock, price) = (" PAINT_VALUES "), "
	  "version = version + 1, updated_at = now() "
	  "WHERE id = $11 AND ($12::int8 IS NULL OR version = $12::int8) RETURNING *)"
	  OUTBOX_TAIL },
	{ "paint_delete",
	  "WITH w AS (DELETE FROM paints WHERE id = $1 AND ($2::int8 IS NULL OR version = $2::int8) "
	  "RETURNING id), o AS (INSERT INTO cache_outbox (paint_id) SELECT id FROM w RETURNING id) "
	  "SELECT w.id, (SELECT id FROM o) FROM w" },
	{ "paint_version", "SELECT version, stock FROM paints WHERE id = $1" },
	/* One statement: the check and the change cannot be split by another writer. */
	{ "paint_stock",
	  "WITH w AS (UPDATE paints SET stock = stock + $2::int4, version = version + 1, "
	  "updated_at = now() WHERE id = $1 AND stock + $2::int4 BETWEEN 0 AND 1000000 RETURNING *)"
	  OUTBOX_TAIL },
	/* cache_after_write's statement: see include/cache.h. */
	{ "outbox_done", CACHE_OUTBOX_DONE_SQL },
	/* One statement, one snapshot: the figures agree with each other. */
	{ "paint_stats",
	  "SELECT count(*), count(*) FILTER (WHERE stock > 0), "
	  "coalesce(sum(stock * price), 0)::numeric(20,2)::text, "
	  "coalesce((SELECT json_object_agg(brand, n ORDER BY brand) FROM "
	  "  (SELECT brand, count(*) AS n FROM paints GROUP BY brand) b), '{}'), "
	  "coalesce((SELECT json_object_agg(color_family, n ORDER BY color_family) FROM "
	  "  (SELECT color_family, count(*) AS n FROM paints GROUP BY color_family) f), '{}') "
	  "FROM paints" },
};

int paints_parse_id(const char *s, size_t len, int64_t *id)
{
	char buf[24];

	if (len == 0 || len >= sizeof(buf) || s[0] == '0')
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return parse_int64(buf, 1, INT64_MAX, id);
}

/* ---- JSON shape ---------------------------------------------------------- */

static const struct {
	const char *key;
	enum paint_field field;
	int col;
} text_fields[] = {
	{ "name", PF_NAME, COL_NAME },
	{ "brand", PF_BRAND, COL_BRAND },
	{ "color_code", PF_CODE, COL_CODE },
	{ "color_type", PF_TYPE, COL_TYPE },
	{ "color_family", PF_FAMILY, COL_FAMILY },
	{ "image_url", PF_IMAGE, COL_IMAGE },
	{ "description", PF_DESCRIPTION, COL_DESCRIPTION },
	{ "color_preview", PF_PREVIEW, COL_PREVIEW },
};
#define NTEXT (sizeof(text_fields) / sizeof(text_fields[0]))

struct json_object *paints_row_json(const PGresult *r, int row)
{
	struct json_object *o = json_object_new_object();
	const char *price = PQgetvalue(r, row, COL_PRICE);
	size_t i;

	json_object_object_add(o, "id",
			       json_object_new_int64(strtoll(PQgetvalue(r, row, COL_ID), NULL, 10)));
	for (i = 0; i < NTEXT; i++) {
		if (text_fields[i].field == PF_DESCRIPTION || text_fields[i].field == PF_PREVIEW)
			continue;	/* placed below, in DESIGN.md's order */
		json_object_object_add(o, text_fields[i].key,
				       json_object_new_string(PQgetvalue(r, row, text_fields[i].col)));
	}
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

/* ---- validation ------------------------------------------------------------ */

struct text_rule {
	size_t max;		/* in characters (code points) */
	int multiline;		/* newlines and tabs allowed */
	const char *def;	/* default; NULL: required */
};

static const struct text_rule text_rules[PF_COUNT] = {
	[PF_NAME] = { 200, 0, NULL },
	[PF_BRAND] = { 100, 0, "" },
	[PF_CODE] = { 50, 0, "" },
	[PF_TYPE] = { 100, 0, "" },
	[PF_FAMILY] = { 100, 0, "" },
	[PF_IMAGE] = { 2048, 0, "" },
	[PF_DESCRIPTION] = { 5000, 1, "" },
	[PF_PREVIEW] = { 7, 0, "#cccccc" },
};

/* Members a client may send back unchanged from a GET: accepted, ignored. */
static const char *const read_only[] = { "id", "created_at", "updated_at", "version" };

static int is_known(const char *key)
{
	size_t i;

	for (i = 0; i < NTEXT; i++)
		if (strcmp(key, text_fields[i].key) == 0)
			return 1;
	if (strcmp(key, "stock") == 0 || strcmp(key, "price") == 0)
		return 1;
	for (i = 0; i < sizeof(read_only) / sizeof(read_only[0]); i++)
		if (strcmp(key, read_only[i]) == 0)
			return 1;
	return 0;
}

const char *paints_price_error(const char *t)
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

static int is_url_char(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f && ch != '"' && ch != '<' && ch != '>' &&
	       ch != '\\' && ch != '^' && ch != '`' && ch != '{' && ch != '|' && ch != '}';
}

static const char *image_url_error(const char *u)
{
	const char *host;
	const unsigned char *p;

	if (*u == '\0')
		return NULL;
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

/* Validate one text field; returns the stored value (malloc'd) or NULL + *why. */
static char *check_text(enum paint_field f, struct json_object *v, const char **why)
{
	const struct text_rule *rule = &text_rules[f];
	const char *s, *start, *end;
	char *val;
	size_t i;

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
		static char msg[PF_COUNT][48];

		snprintf(msg[f], sizeof(msg[f]), "must be at most %zu characters", rule->max);
		*why = msg[f];
		goto bad;
	}
	if (f == PF_PREVIEW) {
		if (strlen(val) != 7 || val[0] != '#' ||
		    strspn(val + 1, "0123456789abcdefABCDEF") != 6) {
			*why = "must be a colour as #RRGGBB";
			goto bad;
		}
		for (i = 1; i < 7; i++)
			if (val[i] >= 'A' && val[i] <= 'F')
				val[i] = (char)(val[i] - 'A' + 'a');
	}
	if (f == PF_IMAGE && (*why = image_url_error(val)) != NULL)
		goto bad;
	return val;
bad:
	free(val);
	return NULL;
}

static char *check_stock(struct json_object *v, const char **why)
{
	int64_t n;
	char buf[24];

	if (v == NULL)
		return xstrdup("0");
	if (!json_object_is_type(v, json_type_int)) {
		*why = json_object_is_type(v, json_type_double) ? "must be a whole number"
								 : "must be a number";
		return NULL;
	}
	errno = 0;
	n = json_object_get_int64(v);
	if (errno == ERANGE || n < 0 || n > PAINT_MAX_STOCK) {
		*why = "must be from 0 to 1000000";
		return NULL;
	}
	snprintf(buf, sizeof(buf), "%lld", (long long)n);
	return xstrdup(buf);
}

static char *check_price(struct json_object *v, const char **why)
{
	const char *text;

	if (v == NULL)
		return xstrdup("0.00");
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) {
		*why = "must be a number";
		return NULL;
	}
	/* The number exactly as the client wrote it: never through a double. */
	text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	if ((*why = paints_price_error(text)) != NULL)
		return NULL;
	return xstrdup(text);
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

int paints_validate(struct json_object *body, struct json_object *base,
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
		out->value[f] = check_text(f, effective(body, base, text_fields[i].key), &why);
		if (out->value[f] == NULL)
			json_object_object_add(errs, text_fields[i].key, json_object_new_string(why));
	}
	out->value[PF_STOCK] = check_stock(effective(body, base, "stock"), &why);
	if (out->value[PF_STOCK] == NULL)
		json_object_object_add(errs, "stock", json_object_new_string(why));
	out->value[PF_PRICE] = check_price(effective(body, base, "price"), &why);
	if (out->value[PF_PRICE] == NULL)
		json_object_object_add(errs, "price", json_object_new_string(why));

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

char *paints_like_pattern(const char *q)
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

/* ---- handlers ---------------------------------------------------------------- */

/* The {id} of the path; on a bad one, a 400 is set and -1 returned. */
static int path_id(struct ctx *c, char text[24])
{
	int64_t id;

	if (paints_parse_id(c->match.var[0], c->match.varlen[0], &id) != 0) {
		http_problem(&c->resp, 400,
			     "the paint id must be a whole number from 1 to 9223372036854775807",
			     NULL);
		return -1;
	}
	snprintf(text, 24, "%lld", (long long)id);
	return 0;
}

static void set_etag(struct ctx *c, const char *version)
{
	http_resp_header(&c->resp, "ETag", "\"v%s\"", version);
	/* Clients may keep it, but must revalidate (If-None-Match) each time. */
	http_resp_header(&c->resp, "Cache-Control", "private, no-cache");
}

/* Answer with the paint in the first row of r. */
static void send_paint(struct ctx *c, int status, const PGresult *r)
{
	struct json_object *o = paints_row_json(r, 0);

	set_etag(c, PQgetvalue(r, 0, COL_VERSION));
	http_resp_json(&c->resp, status, o);
	json_object_put(o);
}

/*
 * If-Match as a version for the SQL: *version NULL when the header is
 * absent or "*" (any version). -1 (412 set) when it can never match: a
 * weak or malformed tag, or several tags.
 */
static int if_match_version(struct ctx *c, char buf[24], const char **version)
{
	const char *h = http_param(&c->req, "HTTP_IF_MATCH");
	int64_t v;
	size_t len;

	*version = NULL;
	if (h == NULL)
		return 0;
	h += strspn(h, " \t");
	if (strcmp(h, "*") == 0)
		return 0;
	len = strlen(h);
	while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
		len--;
	if (len >= 4 && len < 24 && h[0] == '"' && h[1] == 'v' && h[len - 1] == '"') {
		char num[24];

		memcpy(num, h + 2, len - 3);
		num[len - 3] = '\0';
		if (parse_int64(num, 1, INT64_MAX, &v) == 0) {
			snprintf(buf, 24, "%lld", (long long)v);
			*version = buf;
			return 0;
		}
	}
	http_problem(&c->resp, 412,
		     "If-Match must be \"*\" or the paint's current ETag (as \"v<version>\")", NULL);
	return -1;
}

/* After a write matched no row: 404 if the paint is gone, else 412. */
static void missing_or_moved(struct ctx *c, PGconn *pg, const char *id)
{
	const char *params[1] = { id };
	PGresult *r = PQexecPrepared(pg, "paint_version", 1, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
	} else if (PQntuples(r) == 0) {
		http_problem(&c->resp, 404, "no paint has this id", NULL);
	} else {
		set_etag(c, PQgetvalue(r, 0, 0));
		http_problem(&c->resp, 412,
			     "the paint was changed by someone else since you read it: "
			     "reload it, then apply your change again", NULL);
	}
	PQclear(r);
}

static void validation_failed(struct ctx *c, struct json_object *errors)
{
	http_problem(&c->resp, 422, "some fields are invalid: see errors", errors);
}

/*
 * After a write committed: invalidate Redis and drop the outbox row, or,
 * during a Redis fault, wait (bounded) until no process can serve the old
 * version from Redis. Only then may the handler's answer go out.
 */
static void after_write(PGconn *pg, const char *paint_id, const char *outbox_id)
{
	cache_after_write(pg, strtoll(paint_id, NULL, 10), outbox_id);
}

/*
 * Answer from a cached entry: "-" (absent) or "<version>\n<body>". Returns
 * -1 for an entry it cannot read (then the caller reads the database).
 */
static int send_cached(struct ctx *c, const struct strbuf *v)
{
	const char *nl = memchr(v->buf, '\n', v->len);
	char version[24], etag[32];
	size_t vlen;

	if (v->len == 1 && v->buf[0] == '-') {
		http_problem(&c->resp, 404, "no paint has this id", NULL);
		return 0;
	}
	if (nl == NULL || (vlen = (size_t)(nl - v->buf)) == 0 || vlen >= sizeof(version))
		return -1;
	memcpy(version, v->buf, vlen);
	version[vlen] = '\0';
	snprintf(etag, sizeof(etag), "\"v%s\"", version);
	set_etag(c, version);
	if (http_etag_matches(http_param(&c->req, "HTTP_IF_NONE_MATCH"), etag, 1))
		c->resp.status = 304;
	else
		http_resp_json_raw(&c->resp, 200, nl + 1, v->len - vlen - 1);
	return 0;
}

void paints_get(struct ctx *c)
{
	char id[24], lease[CACHE_LEASE_TOKEN];
	const char *params[1] = { id };
	struct strbuf cached;
	PGconn *pg;
	PGresult *r;

	if (path_id(c, id) != 0)
		return;
	strbuf_init(&cached);
	c->cache = cache_paint_get(strtoll(id, NULL, 10), &cached, lease);
	if (c->cache == CACHE_HIT && send_cached(c, &cached) == 0) {
		strbuf_free(&cached);
		return;	/* no database connection at all */
	}
	strbuf_reset(&cached);
	if ((pg = ctx_db(c, 0)) == NULL) {
		strbuf_free(&cached);
		return;
	}
	r = PQexecPrepared(pg, "paint_get", 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
	} else if (PQntuples(r) == 0) {
		cache_paint_store(strtoll(id, NULL, 10), lease, "-", 1);
		http_problem(&c->resp, 404, "no paint has this id", NULL);
	} else {
		send_paint(c, 200, r);
		/* Cache exactly these bytes, behind the version for the ETag. */
		strbuf_printf(&cached, "%s\n", PQgetvalue(r, 0, COL_VERSION));
		strbuf_append(&cached, c->resp.body.buf, c->resp.body.len);
		cache_paint_store(strtoll(id, NULL, 10), lease, cached.buf, cached.len);
		snprintf(lease, sizeof(lease), "\"v%s\"", PQgetvalue(r, 0, COL_VERSION));
		if (http_etag_matches(http_param(&c->req, "HTTP_IF_NONE_MATCH"), lease, 1)) {
			c->resp.status = 304;
			strbuf_reset(&c->resp.body);
		}
	}
	PQclear(r);
	strbuf_free(&cached);
}

/* Values in enum paint_field order, then extra (NULL-terminated). */
static int paint_params(const struct paint_input *in, const char **params,
			const char *extra1, const char *extra2)
{
	int i;

	for (i = 0; i < PF_COUNT; i++)
		params[i] = in->value[i];
	params[PF_COUNT] = extra1;
	params[PF_COUNT + 1] = extra2;
	return PF_COUNT + 2;
}

/*
 * Validate a full paint (POST, PUT) and check out the connection to write
 * it. NULL with the response set (422, 503) and nothing held; else the
 * caller frees in.
 */
static PGconn *validated(struct ctx *c, struct json_object *body, struct paint_input *in)
{
	struct json_object *errors;
	PGconn *pg;

	if (paints_validate(body, NULL, in, &errors) != 0) {
		validation_failed(c, errors);
		return NULL;
	}
	if ((pg = ctx_db(c, 0)) == NULL)
		paint_input_free(in);
	return pg;
}

void paints_create(struct ctx *c)
{
	struct json_object *body = ctx_json_body(c, 0);
	struct paint_input in;
	const char *params[PF_COUNT + 2];
	PGconn *pg;
	PGresult *r;

	if (body == NULL || (pg = validated(c, body, &in)) == NULL)
		return;
	paint_params(&in, params, NULL, NULL);
	r = PQexecPrepared(pg, "paint_insert", PF_COUNT, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		ctx_db_error(c, r);
	} else {
		http_resp_header(&c->resp, "Location", "/admin/paints/%s", PQgetvalue(r, 0, COL_ID));
		send_paint(c, 201, r);
		after_write(pg, PQgetvalue(r, 0, COL_ID), PQgetvalue(r, 0, COL_OUTBOX));
	}
	PQclear(r);
	paint_input_free(&in);
}

void paints_put(struct ctx *c)
{
	char id[24], vbuf[24];
	const char *version, *params[PF_COUNT + 2];
	struct json_object *body;
	struct paint_input in;
	PGconn *pg;
	PGresult *r;

	if (path_id(c, id) != 0 || if_match_version(c, vbuf, &version) != 0 ||
	    (body = ctx_json_body(c, 0)) == NULL || (pg = validated(c, body, &in)) == NULL)
		return;
	r = PQexecPrepared(pg, "paint_update", paint_params(&in, params, id, version),
			   params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
	} else if (PQntuples(r) == 0) {
		missing_or_moved(c, pg, id);
	} else {
		send_paint(c, 200, r);
		after_write(pg, id, PQgetvalue(r, 0, COL_OUTBOX));
	}
	PQclear(r);
	paint_input_free(&in);
}

static int exec_ok(struct ctx *c, PGconn *pg, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok)
		ctx_db_error(c, r);
	PQclear(r);
	return ok ? 0 : -1;
}

void paints_patch(struct ctx *c)
{
	char id[24], vbuf[24], etag[32];
	const char *version, *params[PF_COUNT + 2];
	struct json_object *body, *base = NULL, *errors;
	struct paint_input in = { { NULL } };
	PGresult *r = NULL, *u = NULL;
	PGconn *pg;

	if (path_id(c, id) != 0 || if_match_version(c, vbuf, &version) != 0 ||
	    (body = ctx_json_body(c, 1)) == NULL || (pg = ctx_db(c, 0)) == NULL)
		return;
	/* Read, merge and write under the row lock: no lost update. */
	if (exec_ok(c, pg, "BEGIN") != 0)
		return;
	params[0] = id;
	r = PQexecPrepared(pg, "paint_get_for_update", 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		goto out;
	}
	if (PQntuples(r) == 0) {
		http_problem(&c->resp, 404, "no paint has this id", NULL);
		goto out;
	}
	snprintf(etag, sizeof(etag), "\"v%s\"", PQgetvalue(r, 0, COL_VERSION));
	if (version && strcmp(version, PQgetvalue(r, 0, COL_VERSION)) != 0) {
		set_etag(c, PQgetvalue(r, 0, COL_VERSION));
		http_problem(&c->resp, 412,
			     "the paint was changed by someone else since you read it: "
			     "reload it, then apply your change again", NULL);
		goto out;
	}
	base = paints_row_json(r, 0);
	if (paints_validate(body, base, &in, &errors) != 0) {
		validation_failed(c, errors);
		goto out;
	}
	u = PQexecPrepared(pg, "paint_update",
			   paint_params(&in, params, id, PQgetvalue(r, 0, COL_VERSION)),
			   params, NULL, NULL, 0);
	if (PQresultStatus(u) != PGRES_TUPLES_OK || PQntuples(u) != 1) {
		ctx_db_error(c, u);
		goto out;
	}
	if (exec_ok(c, pg, "COMMIT") != 0)
		goto out;
	send_paint(c, 200, u);
	after_write(pg, id, PQgetvalue(u, 0, COL_OUTBOX));
out:
	/* Any failure above leaves the transaction open: the pool rolls it back. */
	if (PQtransactionStatus(pg) != PQTRANS_IDLE)
		PQclear(PQexec(pg, "ROLLBACK"));
	PQclear(r);
	PQclear(u);
	if (base)
		json_object_put(base);
	paint_input_free(&in);
}

void paints_delete(struct ctx *c)
{
	char id[24], vbuf[24];
	const char *version, *params[2];
	PGconn *pg;
	PGresult *r;

	if (path_id(c, id) != 0 || if_match_version(c, vbuf, &version) != 0 ||
	    (pg = ctx_db(c, 0)) == NULL)
		return;
	params[0] = id;
	params[1] = version;
	r = PQexecPrepared(pg, "paint_delete", 2, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		ctx_db_error(c, r);
	else if (PQntuples(r) == 0)
		missing_or_moved(c, pg, id);
	else {
		c->resp.status = 204;
		after_write(pg, id, PQgetvalue(r, 0, 1));
	}
	PQclear(r);
}

void paints_stock(struct ctx *c)
{
	char id[24], delta_text[24];
	const char *params[2];
	struct json_object *body, *errors, *delta = NULL;
	int64_t d = 0;
	PGconn *pg;
	PGresult *r;

	if (path_id(c, id) != 0 || (body = ctx_json_body(c, 0)) == NULL)
		return;
	errors = json_object_new_object();
	json_object_object_foreach(body, key, val) {
		(void)val;
		if (strcmp(key, "delta") != 0)
			json_object_object_add(errors, key, json_object_new_string("is not a field of a stock change"));
	}
	if (!json_object_object_get_ex(body, "delta", &delta) || delta == NULL) {
		json_object_object_add(errors, "delta", json_object_new_string("is required"));
	} else if (!json_object_is_type(delta, json_type_int)) {
		json_object_object_add(errors, "delta", json_object_new_string("must be a whole number"));
	} else {
		errno = 0;
		d = json_object_get_int64(delta);
		if (errno == ERANGE || d < -PAINT_MAX_STOCK || d > PAINT_MAX_STOCK || d == 0)
			json_object_object_add(errors, "delta",
					       json_object_new_string("must be a non-zero whole number from -1000000 to 1000000"));
	}
	if (json_object_object_length(errors) > 0) {
		validation_failed(c, errors);
		return;
	}
	json_object_put(errors);
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	snprintf(delta_text, sizeof(delta_text), "%lld", (long long)d);
	params[0] = id;
	params[1] = delta_text;
	r = PQexecPrepared(pg, "paint_stock", 2, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
	} else if (PQntuples(r) == 1) {
		send_paint(c, 200, r);
		after_write(pg, id, PQgetvalue(r, 0, COL_OUTBOX));
	} else {
		PGresult *v = PQexecPrepared(pg, "paint_version", 1, params, NULL, NULL, 0);

		if (PQresultStatus(v) != PGRES_TUPLES_OK) {
			ctx_db_error(c, v);
		} else if (PQntuples(v) == 0) {
			http_problem(&c->resp, 404, "no paint has this id", NULL);
		} else {
			char detail[160];

			snprintf(detail, sizeof(detail),
				 "stock is %s: a change of %lld would take it %s; nothing was changed",
				 PQgetvalue(v, 0, 1), (long long)d,
				 d < 0 ? "below 0" : "above 1000000");
			http_problem(&c->resp, 409, detail, NULL);
		}
		PQclear(v);
	}
	PQclear(r);
}

/*
 * Serve a cached page ("<etag>\n<body>") of a list or the stats, with 304
 * for a matching If-None-Match. -1 when the entry cannot be read.
 */
static int send_cached_page(struct ctx *c, const struct strbuf *v)
{
	const char *nl = memchr(v->buf, '\n', v->len);
	char etag[64];
	size_t elen;

	if (nl == NULL || (elen = (size_t)(nl - v->buf)) == 0 || elen >= sizeof(etag))
		return -1;
	memcpy(etag, v->buf, elen);
	etag[elen] = '\0';
	http_resp_header(&c->resp, "ETag", "%s", etag);
	http_resp_header(&c->resp, "Cache-Control", "private, no-cache");
	if (http_etag_matches(http_param(&c->req, "HTTP_IF_NONE_MATCH"), etag, 1))
		c->resp.status = 304;
	else
		http_resp_json_raw(&c->resp, 200, nl + 1, v->len - elen - 1);
	return 0;
}

/*
 * Give the 200 response in c->resp a content-hash ETag, answer 304 when
 * it matches If-None-Match, and cache "<etag>\n<body>" under gen.
 */
static void finish_page(struct ctx *c, const char *kind, const char *query, const char *gen)
{
	unsigned char hash[16];
	char etag[48];
	struct strbuf entry;

	crypto_generichash(hash, sizeof(hash), (const unsigned char *)c->resp.body.buf,
			   c->resp.body.len, NULL, 0);
	etag[0] = '"';
	sodium_bin2hex(etag + 1, sizeof(etag) - 2, hash, sizeof(hash));
	strcat(etag, "\"");
	http_resp_header(&c->resp, "ETag", "%s", etag);
	http_resp_header(&c->resp, "Cache-Control", "private, no-cache");
	strbuf_init(&entry);
	strbuf_printf(&entry, "%s\n", etag);
	strbuf_append(&entry, c->resp.body.buf, c->resp.body.len);
	cache_page_store(kind, query, gen, entry.buf, entry.len);
	strbuf_free(&entry);
	if (http_etag_matches(http_param(&c->req, "HTTP_IF_NONE_MATCH"), etag, 1)) {
		c->resp.status = 304;
		strbuf_reset(&c->resp.body);
	}
}

void paints_stats(struct ctx *c)
{
	struct json_object *o, *by_brand, *by_family;
	struct strbuf cached;
	char gen[24];
	PGconn *pg;
	PGresult *r;

	strbuf_init(&cached);
	c->cache = cache_page_get("stats", "all", &cached, gen);
	if (c->cache == CACHE_HIT && send_cached_page(c, &cached) == 0) {
		strbuf_free(&cached);
		return;
	}
	strbuf_free(&cached);
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	r = PQexecPrepared(pg, "paint_stats", 0, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	by_brand = json_tokener_parse(PQgetvalue(r, 0, 3));
	by_family = json_tokener_parse(PQgetvalue(r, 0, 4));
	o = json_object_new_object();
	json_object_object_add(o, "total", json_object_new_int64(strtoll(PQgetvalue(r, 0, 0), NULL, 10)));
	json_object_object_add(o, "in_stock", json_object_new_int64(strtoll(PQgetvalue(r, 0, 1), NULL, 10)));
	json_object_object_add(o, "stock_value",
			       json_object_new_double_s(strtod(PQgetvalue(r, 0, 2), NULL), PQgetvalue(r, 0, 2)));
	json_object_object_add(o, "by_brand", by_brand ? by_brand : json_object_new_object());
	json_object_object_add(o, "by_family", by_family ? by_family : json_object_new_object());
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
	PQclear(r);
	finish_page(c, "stats", "all", gen);
}

/* ---- the list ---------------------------------------------------------------- */

struct sort_key {
	const char *param;	/* as in ?sort= */
	const char *column;
	const char *type;	/* cast of the cursor's value */
	int desc;
};

static const struct sort_key sort_keys[] = {
	{ "-created_at", "created_at", "timestamptz", 1 },
	{ "created_at", "created_at", "timestamptz", 0 },
	{ "name", "name", "text", 0 }, { "-name", "name", "text", 1 },
	{ "price", "price", "numeric", 0 }, { "-price", "price", "numeric", 1 },
	{ "stock", "stock", "int4", 0 }, { "-stock", "stock", "int4", 1 },
};

#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 200

static const char *const list_params[] = {
	"brand", "color_family", "color_type", "in_stock", "q", "min_price", "max_price",
	"sort", "limit", "cursor",
};

/* Decode a cursor made by make_cursor for sort; -1 when it is not one. */
static int read_cursor(const char *text, const struct sort_key *sort, char **value, char id[24])
{
	unsigned char bin[1024];
	size_t len;
	struct json_object *o = NULL, *s, *v, *i;
	int rc = -1;

	if (strlen(text) > 1300 ||
	    sodium_base642bin(bin, sizeof(bin) - 1, text, strlen(text), NULL, &len, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return -1;
	bin[len] = '\0';
	o = json_tokener_parse((const char *)bin);
	if (o && json_object_object_get_ex(o, "s", &s) && json_object_is_type(s, json_type_string) &&
	    strcmp(json_object_get_string(s), sort->param) == 0 &&
	    json_object_object_get_ex(o, "v", &v) && json_object_is_type(v, json_type_string) &&
	    json_object_get_string_len(v) < 300 &&
	    strlen(json_object_get_string(v)) == (size_t)json_object_get_string_len(v) &&
	    json_object_object_get_ex(o, "i", &i) && json_object_is_type(i, json_type_int) &&
	    json_object_get_int64(i) > 0) {
		*value = xstrdup(json_object_get_string(v));
		snprintf(id, 24, "%lld", (long long)json_object_get_int64(i));
		rc = 0;
	}
	if (o)
		json_object_put(o);
	return rc;
}

int paints_cursor_decode(const char *text, const char *sort, char **value, char id[24])
{
	size_t k;

	for (k = 0; k < sizeof(sort_keys) / sizeof(sort_keys[0]); k++)
		if (strcmp(sort, sort_keys[k].param) == 0)
			return read_cursor(text, &sort_keys[k], value, id);
	return -1;
}

static struct json_object *make_cursor(const struct sort_key *sort, const char *value,
				       const char *id)
{
	struct json_object *o = json_object_new_object();
	const char *js;
	char *enc;
	size_t len, enclen;
	struct json_object *out;

	json_object_object_add(o, "s", json_object_new_string(sort->param));
	json_object_object_add(o, "v", json_object_new_string(value));
	json_object_object_add(o, "i", json_object_new_int64(strtoll(id, NULL, 10)));
	js = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	enclen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	enc = xmalloc(enclen);
	sodium_bin2base64(enc, enclen, (const unsigned char *)js, len,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	out = json_object_new_string(enc);
	free(enc);
	json_object_put(o);
	return out;
}

static void bad_param(struct json_object *errors, const char *name, const char *why)
{
	json_object_object_add(errors, name, json_object_new_string(why));
}

/* A text filter: non-empty, at most max characters, no control bytes. */
static int text_param_ok(const char *v, size_t max)
{
	const unsigned char *p;

	if (*v == '\0' || utf8_chars(v) > max)
		return 0;
	for (p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

void paints_list(struct ctx *c)
{
	const struct http_query *q = &c->req.query;
	const struct sort_key *sort = &sort_keys[0];
	struct json_object *errors = json_object_new_object(), *o = NULL, *items;
	const char *params[12];
	char *like = NULL, *cursor_value = NULL, cursor_id[24], limit_text[24], gen[24];
	struct strbuf sql, canon = { NULL, 0, 0 };
	int64_t limit = LIST_DEFAULT_LIMIT;
	int n = 0, i, rows;
	const char *v;
	PGresult *r = NULL;

	strbuf_init(&sql);
	for (i = 0; i < q->count; i++) {
		size_t k;

		for (k = 0; k < sizeof(list_params) / sizeof(list_params[0]); k++)
			if (strcmp(q->params[i].key, list_params[k]) == 0)
				break;
		if (k == sizeof(list_params) / sizeof(list_params[0]))
			bad_param(errors, q->params[i].key, "is not a filter of this list");
	}
	if ((v = http_query_get(q, "sort")) != NULL) {
		size_t k;

		for (k = 0; k < sizeof(sort_keys) / sizeof(sort_keys[0]); k++)
			if (strcmp(v, sort_keys[k].param) == 0)
				break;
		if (k == sizeof(sort_keys) / sizeof(sort_keys[0]))
			bad_param(errors, "sort", "must be one of created_at, name, price, stock, each with an optional - for descending");
		else
			sort = &sort_keys[k];
	}
	if ((v = http_query_get(q, "limit")) != NULL &&
	    parse_int64(v, 1, LIST_MAX_LIMIT, &limit) != 0)
		bad_param(errors, "limit", "must be a whole number from 1 to 200");

	strbuf_puts(&sql, "SELECT " PAINT_COLUMNS ", ");
	strbuf_printf(&sql, "paints.%s::text FROM paints WHERE true", sort->column);
	{
		static const char *const exact[] = { "brand", "color_family", "color_type" };
		size_t k;

		for (k = 0; k < 3; k++) {
			if ((v = http_query_get(q, exact[k])) == NULL)
				continue;
			if (!text_param_ok(v, 100)) {
				bad_param(errors, exact[k], "must be 1 to 100 characters");
				continue;
			}
			params[n++] = v;
			strbuf_printf(&sql, " AND %s = $%d", exact[k], n);
		}
	}
	if ((v = http_query_get(q, "in_stock")) != NULL) {
		if (strcmp(v, "true") == 0)
			strbuf_puts(&sql, " AND stock > 0");
		else if (strcmp(v, "false") == 0)
			strbuf_puts(&sql, " AND stock = 0");
		else
			bad_param(errors, "in_stock", "must be true or false");
	}
	if ((v = http_query_get(q, "q")) != NULL) {
		if (!text_param_ok(v, 100)) {
			bad_param(errors, "q", "must be 1 to 100 characters");
		} else {
			like = paints_like_pattern(v);
			params[n++] = like;
			strbuf_printf(&sql, " AND (name ILIKE $%d OR brand ILIKE $%d OR color_code ILIKE $%d)",
				      n, n, n);
		}
	}
	{
		static const struct { const char *name, *op; } bounds[] = {
			{ "min_price", ">=" }, { "max_price", "<=" },
		};
		size_t k;

		for (k = 0; k < 2; k++) {
			const char *why;

			if ((v = http_query_get(q, bounds[k].name)) == NULL)
				continue;
			if ((why = paints_price_error(v)) != NULL) {
				bad_param(errors, bounds[k].name, why);
				continue;
			}
			params[n++] = v;
			strbuf_printf(&sql, " AND price %s $%d::numeric", bounds[k].op, n);
		}
	}
	if ((v = http_query_get(q, "cursor")) != NULL) {
		if (read_cursor(v, sort, &cursor_value, cursor_id) != 0) {
			bad_param(errors, "cursor", "is not a cursor of this list (it belongs to another sort, or was altered)");
		} else {
			params[n++] = cursor_value;
			params[n++] = cursor_id;
			strbuf_printf(&sql, " AND (paints.%s, paints.id) %s ($%d::%s, $%d::int8)", sort->column,
				      sort->desc ? "<" : ">", n - 1, sort->type, n);
		}
	}
	if (json_object_object_length(errors) > 0) {
		http_problem(&c->resp, 400, "some query parameters are invalid: see errors", errors);
		errors = NULL;
		goto out;
	}
	/* One row more than asked tells whether there is a next page. */
	snprintf(limit_text, sizeof(limit_text), "%lld", (long long)limit + 1);
	params[n++] = limit_text;
	/* Qualified: the output columns "price" and "stock" are text casts. */
	strbuf_printf(&sql, " ORDER BY paints.%s %s, paints.id %s LIMIT $%d", sort->column,
		      sort->desc ? "DESC" : "ASC", sort->desc ? "DESC" : "ASC", n);

	/* The SQL and its values name the page exactly. */
	strbuf_init(&canon);
	strbuf_append(&canon, sql.buf, sql.len);
	for (i = 0; i < n; i++) {
		strbuf_putc(&canon, '\x1f');
		strbuf_puts(&canon, params[i]);
	}
	{
		struct strbuf cached;

		strbuf_init(&cached);
		c->cache = cache_page_get("list", canon.buf, &cached, gen);
		if (c->cache == CACHE_HIT && send_cached_page(c, &cached) == 0) {
			strbuf_free(&cached);
			goto out;
		}
		strbuf_free(&cached);
	}
	if ((r = ctx_exec_dynamic(c, sql.buf, n, params)) == NULL)
		goto out;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

		/* Class 22: a cursor value PostgreSQL cannot read back. */
		if (state && strncmp(state, "22", 2) == 0)
			http_problem(&c->resp, 400, "the cursor is not valid for this list", NULL);
		else
			ctx_db_error(c, r);
		goto out;
	}
	rows = PQntuples(r);
	o = json_object_new_object();
	items = json_object_new_array_ext(rows);
	for (i = 0; i < rows && i < limit; i++)
		json_object_array_add(items, paints_row_json(r, i));
	json_object_object_add(o, "items", items);
	json_object_object_add(o, "next_cursor",
			       rows > limit ? make_cursor(sort, PQgetvalue(r, (int)limit - 1, COL_COUNT),
							  PQgetvalue(r, (int)limit - 1, COL_ID))
					    : NULL);
	http_resp_json(&c->resp, 200, o);
	/* The page's ETag is a hash of its bytes: equal bytes, equal tag. */
	finish_page(c, "list", canon.buf, gen);
out:
	if (canon.buf)
		strbuf_free(&canon);
	if (o)
		json_object_put(o);
	if (errors)
		json_object_put(errors);
	PQclear(r);
	free(like);
	free(cursor_value);
	strbuf_free(&sql);
}

/* Literal routes before placeholders: "/stats" must win over "/{id}". */
static const struct route routes[] = {
	{ "GET", "/admin/paints", paints_list, "paints.list", AUTH_ADMIN, true },
	{ "POST", "/admin/paints", paints_create, "paints.create", AUTH_ADMIN, false },
	{ "GET", "/admin/paints/stats", paints_stats, "paints.stats", AUTH_ADMIN, true },
	{ "GET", "/admin/paints/{id}", paints_get, "paints.get", AUTH_ADMIN, true },
	{ "PUT", "/admin/paints/{id}", paints_put, "paints.put", AUTH_ADMIN, false },
	{ "PATCH", "/admin/paints/{id}", paints_patch, "paints.patch", AUTH_ADMIN, false },
	{ "DELETE", "/admin/paints/{id}", paints_delete, "paints.delete", AUTH_ADMIN, false },
	{ "POST", "/admin/paints/{id}/stock", paints_stock, "paints.stock", AUTH_ADMIN, false },
};

const struct resource paints_resource = {
	"paints", routes, RESOURCE_ARRAY_LEN(routes), statements, RESOURCE_ARRAY_LEN(statements),
};
