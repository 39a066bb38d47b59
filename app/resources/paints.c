/*
 * paints: the /admin/paints handlers and the resource's registration.
 * Handlers are thin: they read the request, call the model (paint_model:
 * validation, JSON, parsing) and the store (paint_store: SQL), and shape
 * the answer. Reads go through the cache (cache.h); every write commits
 * its cache invalidation and audit entry in its own statement.
 */
#include "resources/paints.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/csv.h"
#include "base/strbuf.h"
#include "base/util.h"
#include "cache/cache.h"
#include "http/context.h"
#include "obs/metrics.h"
#include "resources/images.h"
#include "resources/paint_model.h"
#include "resources/paint_store.h"

/* The default low-stock threshold (LOW_STOCK_THRESHOLD), for every paint's "low_stock". */
static int64_t low_default(const struct ctx *c)
{
	return c->app->cfg->low_stock_threshold;
}

static void not_found(struct ctx *c)
{
	http_problem(&c->resp, 404, PAINT_NOT_FOUND, NULL);
}

/* 0, or -1 when the version cannot make a header (then nothing was set). */
static int set_etag(struct ctx *c, const char *version)
{
	if (http_resp_header(&c->resp, "ETag", "\"v%s\"", version) != 0)
		return -1;
	/* Clients may keep it, but must revalidate (If-None-Match) each time. */
	http_resp_header(&c->resp, "Cache-Control", "private, no-cache");
	return 0;
}

/* 412 for a write whose If-Match names an older version than current. */
static void changed_since(struct ctx *c, const char *current)
{
	set_etag(c, current);
	http_problem(&c->resp, 412,
		     "the paint was changed by someone else since you read it: "
		     "reload it, then apply your change again", NULL);
}

/* The request's user, who the audit trail records for a write. */
static struct paint_actor actor(const struct ctx *c)
{
	struct paint_actor who = { c->user_id, c->username };

	return who;
}

/* The {id} of the path; on a bad one, a 400 is set and -1 returned. */
static int path_id(struct ctx *c, char text[24])
{
	int64_t id;

	if (paint_parse_id(c->match.var[0], c->match.varlen[0], &id) != 0) {
		http_problem(&c->resp, 400,
			     "the paint id must be a whole number from 1 to 9223372036854775807",
			     NULL);
		return -1;
	}
	snprintf(text, 24, "%lld", (long long)id);
	return 0;
}

/* Answer with the paint in the first row of r. */
static void send_paint(struct ctx *c, int status, const PGresult *r)
{
	struct json_object *o = paint_row_json(r, 0, low_default(c));

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
	PGresult *r = paint_store_version(pg, id);

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
	} else if (PQntuples(r) == 0) {
		not_found(c);
	} else {
		changed_since(c, PQgetvalue(r, 0, 0));
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
 * Answer from a cached entry: "-" (absent) or "<version>\n<body>", as
 * paint_cached_paint_check let through. Returns -1 for an entry it cannot
 * read (then the caller reads the database).
 */
static int send_cached(struct ctx *c, const struct strbuf *v)
{
	const char *nl = memchr(v->buf, '\n', v->len);
	char version[24], etag[32];
	size_t vlen;

	if (v->len == 1 && v->buf[0] == '-') {
		not_found(c);
		return 0;
	}
	if (nl == NULL || (vlen = (size_t)(nl - v->buf)) == 0 || vlen >= sizeof(version))
		return -1;
	memcpy(version, v->buf, vlen);
	version[vlen] = '\0';
	snprintf(etag, sizeof(etag), "\"v%s\"", version);
	if (set_etag(c, version) != 0)
		return -1;
	if (http_etag_matches(http_param(&c->req, "HTTP_IF_NONE_MATCH"), etag, 1))
		c->resp.status = 304;
	else
		http_resp_json_raw(&c->resp, 200, nl + 1, v->len - vlen - 1);
	return 0;
}

void paints_get(struct ctx *c)
{
	char id[24], lease[CACHE_LEASE_TOKEN];
	struct strbuf cached;
	PGconn *pg;
	PGresult *r;

	if (path_id(c, id) != 0)
		return;
	strbuf_init(&cached);
	c->cache = cache_paint_get(strtoll(id, NULL, 10), paint_cached_paint_check, &cached, lease);
	if (c->cache == CACHE_HIT && send_cached(c, &cached) == 0) {
		strbuf_free(&cached);
		return;	/* no database connection at all */
	}
	strbuf_reset(&cached);
	if ((pg = ctx_db(c, 0)) == NULL) {
		/* Turned away, or waiting its turn (then this runs again): no fill from here. */
		cache_paint_release(strtoll(id, NULL, 10), lease);
		strbuf_free(&cached);
		return;
	}
	r = paint_store_get(pg, id, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		ctx_db_release(c);	/* read: the connection goes back before the cache's round trip */
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
	} else if (PQntuples(r) == 0) {
		cache_paint_store(strtoll(id, NULL, 10), lease, "-", 1);
		not_found(c);
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

/*
 * Validate a full paint (POST, PUT) and check out the connection to write
 * it. NULL with the response set (422, 503) and nothing held; else the
 * caller frees in.
 */
static PGconn *validated(struct ctx *c, struct json_object *body, struct paint_input *in)
{
	struct json_object *errors;
	PGconn *pg;

	if (paint_validate(body, NULL, in, &errors) != 0) {
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
	struct paint_actor who = actor(c);
	struct paint_input in;
	PGconn *pg;
	PGresult *r;

	if (body == NULL || (pg = validated(c, body, &in)) == NULL)
		return;
	r = paint_store_insert(pg, &in, &who);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		ctx_db_error(c, r);
	} else {
		http_resp_header(&c->resp, "Location", "/admin/paints/%s", PQgetvalue(r, 0, COL_ID));
		send_paint(c, 201, r);
		after_write(pg, PQgetvalue(r, 0, COL_ID), PQgetvalue(r, 0, PAINT_COL_OUTBOX));
	}
	PQclear(r);
	paint_input_free(&in);
}

void paints_put(struct ctx *c)
{
	char id[24], vbuf[24];
	const char *version;
	struct json_object *body;
	struct paint_actor who = actor(c);
	struct paint_input in;
	PGconn *pg;
	PGresult *r;

	if (path_id(c, id) != 0 || if_match_version(c, vbuf, &version) != 0 ||
	    (body = ctx_json_body(c, 0)) == NULL || (pg = validated(c, body, &in)) == NULL)
		return;
	r = paint_store_update(pg, &in, id, version, "put", &who);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
	} else if (PQntuples(r) == 0) {
		missing_or_moved(c, pg, id);
	} else {
		send_paint(c, 200, r);
		after_write(pg, id, PQgetvalue(r, 0, PAINT_COL_OUTBOX));
	}
	PQclear(r);
	paint_input_free(&in);
}

/*
 * A change merged into a paint as a merge-patch (RFC 7396) is: by PATCH,
 * and by the routes that change one field of it (its image).
 */
struct paint_change {
	const char *id;
	const char *version;		/* If-Match's, or NULL: any */
	struct json_object *body;	/* the merge-patch */
	const char *action;		/* the audit entry's: "patch", "image" */
	/*
	 * Run in the change's transaction before the paint is read (so the
	 * change runs locked): 0, or -1 with the response set. NULL: none.
	 */
	int (*before)(struct ctx *c, PGconn *pg, void *arg);
	void *arg;
	char *replaced_image;		/* set when written: the image_url it replaced (malloc'd) */
};

/*
 * One attempt at a change: read the row, merge the body into it, write it
 * on condition that its version is still the one read. Unlocked, the
 * attempt costs two statements; a writer in between makes the conditional
 * write miss and PATCH_RACED is returned with nothing answered. Locked, it
 * runs in a transaction under the row lock (three more round trips) and
 * cannot race. Otherwise the answer is set and PATCH_DONE returned.
 */
enum patch_result { PATCH_DONE, PATCH_RACED };

static enum patch_result patch_once(struct ctx *c, PGconn *pg, struct paint_change *ch,
				    int locked)
{
	struct paint_actor who = actor(c);
	struct paint_input in = { { NULL } };
	struct json_object *base = NULL, *errors;
	PGresult *r = NULL, *u = NULL;
	enum patch_result res = PATCH_DONE;

	if (locked && ctx_db_exec(c, "BEGIN") != 0)
		return PATCH_DONE;
	if (ch->before && ch->before(c, pg, ch->arg) != 0)
		goto out;
	r = paint_store_get(pg, ch->id, locked);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		goto out;
	}
	if (PQntuples(r) == 0) {
		not_found(c);
		goto out;
	}
	if (ch->version && strcmp(ch->version, PQgetvalue(r, 0, COL_VERSION)) != 0) {
		changed_since(c, PQgetvalue(r, 0, COL_VERSION));
		goto out;
	}
	base = paint_row_json(r, 0, low_default(c));
	if (paint_validate(ch->body, base, &in, &errors) != 0) {
		validation_failed(c, errors);
		goto out;
	}
	u = paint_store_update(pg, &in, ch->id, PQgetvalue(r, 0, COL_VERSION), ch->action, &who);
	if (!locked && PQresultStatus(u) == PGRES_TUPLES_OK && PQntuples(u) == 0) {
		res = PATCH_RACED;
		goto out;
	}
	if (PQresultStatus(u) != PGRES_TUPLES_OK || PQntuples(u) != 1) {
		ctx_db_error(c, u);
		goto out;
	}
	if (locked && ctx_db_exec(c, "COMMIT") != 0)
		goto out;
	ch->replaced_image = xstrdup(PQgetvalue(r, 0, COL_IMAGE));
	send_paint(c, 200, u);
	after_write(pg, ch->id, PQgetvalue(u, 0, PAINT_COL_OUTBOX));
out:
	/* A failure above leaves the transaction open: the pool rolls it back. */
	if (locked && PQtransactionStatus(pg) != PQTRANS_IDLE)
		PQclear(PQexec(pg, "ROLLBACK"));
	PQclear(r);
	PQclear(u);
	if (base)
		json_object_put(base);
	paint_input_free(&in);
	return res;
}

/*
 * Make the change: optimistic first, and if another writer came in
 * between, again under the lock; with a before step, locked at once.
 */
static void paint_change(struct ctx *c, struct paint_change *ch)
{
	PGconn *pg = ctx_db(c, 0);

	if (pg == NULL)
		return;
	if (ch->before || patch_once(c, pg, ch, 0) == PATCH_RACED)
		patch_once(c, pg, ch, 1);
}

void paints_patch(struct ctx *c)
{
	char id[24], vbuf[24];
	struct paint_change ch = { .id = id, .action = "patch" };

	if (path_id(c, id) != 0 || if_match_version(c, vbuf, &ch.version) != 0 ||
	    (ch.body = ctx_json_body(c, 1)) == NULL)
		return;
	paint_change(c, &ch);
	free(ch.replaced_image);
}

/* After an image route's change: forget the stored image it replaced. */
static void image_replaced(struct ctx *c, const struct paint_change *ch, const char *now)
{
	PGconn *pg;

	if (c->resp.status == 200 && ch->replaced_image && strcmp(ch->replaced_image, now) != 0 &&
	    (pg = ctx_db(c, 0)) != NULL)
		images_forget(c, pg, ch->replaced_image);
}

/*
 * POST /admin/paints/{id}/image: the body is the image. It is processed
 * before any connection is taken, then stored and shown by the paint in
 * one transaction.
 */
void paints_image_put(struct ctx *c)
{
	char id[24], vbuf[24];
	struct images_upload up;
	struct paint_change ch = { .id = id, .action = "image", .before = images_upload_store,
				   .arg = &up };

	if (path_id(c, id) != 0 || if_match_version(c, vbuf, &ch.version) != 0)
		return;
	if (images_upload_read(c, &up) == 0) {
		ch.body = json_object_new_object();
		json_object_object_add(ch.body, "image_url", json_object_new_string(up.url));
		paint_change(c, &ch);
		image_replaced(c, &ch, up.url);
		json_object_put(ch.body);
		free(ch.replaced_image);
	}
	images_upload_free(&up);
}

/* DELETE /admin/paints/{id}/image: the paint shows none; a stored one no paint shows goes. */
void paints_image_delete(struct ctx *c)
{
	char id[24], vbuf[24];
	struct paint_change ch = { .id = id, .action = "image" };

	if (path_id(c, id) != 0 || if_match_version(c, vbuf, &ch.version) != 0)
		return;
	ch.body = json_object_new_object();
	json_object_object_add(ch.body, "image_url", NULL);
	paint_change(c, &ch);
	image_replaced(c, &ch, "");
	json_object_put(ch.body);
	free(ch.replaced_image);
}

void paints_delete(struct ctx *c)
{
	char id[24], vbuf[24];
	const char *version;
	struct paint_actor who = actor(c);
	PGconn *pg;
	PGresult *r;

	if (path_id(c, id) != 0 || if_match_version(c, vbuf, &version) != 0 ||
	    (pg = ctx_db(c, 0)) == NULL)
		return;
	r = paint_store_delete(pg, id, version, &who);
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

/* After a stock change matched no row: 404 if the paint is gone, else 409. */
static void stock_refused(struct ctx *c, PGconn *pg, const char *id, int64_t delta)
{
	PGresult *v = paint_store_version(pg, id);
	char detail[160];

	if (PQresultStatus(v) != PGRES_TUPLES_OK) {
		ctx_db_error(c, v);
	} else if (PQntuples(v) == 0) {
		not_found(c);
	} else {
		snprintf(detail, sizeof(detail),
			 "stock is %s: a change of %lld would take it %s; nothing was changed",
			 PQgetvalue(v, 0, 1), (long long)delta,
			 delta < 0 ? "below 0" : "above " PAINT_MAX_STOCK_TEXT);
		http_problem(&c->resp, 409, detail, NULL);
	}
	PQclear(v);
}

void paints_stock(struct ctx *c)
{
	char id[24];
	struct json_object *body, *errors;
	struct paint_actor who = actor(c);
	int64_t delta;
	PGconn *pg;
	PGresult *r;

	if (path_id(c, id) != 0 || (body = ctx_json_body(c, 0)) == NULL)
		return;
	if (paint_validate_delta(body, &delta, &errors) != 0) {
		validation_failed(c, errors);
		return;
	}
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	r = paint_store_stock(pg, id, delta, &who);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
	} else if (PQntuples(r) == 1) {
		send_paint(c, 200, r);
		after_write(pg, id, PQgetvalue(r, 0, PAINT_COL_OUTBOX));
	} else {
		stock_refused(c, pg, id, delta);
	}
	PQclear(r);
}

/*
 * Serve a cached page ("<etag>\n<body>", as paint_cached_list_check or
 * paint_cached_stats_check let through) of a list or the stats, with 304
 * for a matching If-None-Match. -1 when the entry cannot be read (nothing
 * set then).
 */
static int send_cached_page(struct ctx *c, const struct strbuf *v)
{
	const char *nl = memchr(v->buf, '\n', v->len);
	char etag[HTTP_ETAG_MAX + 1];
	size_t elen;

	if (nl == NULL || (elen = (size_t)(nl - v->buf)) == 0 || elen >= sizeof(etag))
		return -1;
	memcpy(etag, v->buf, elen);
	etag[elen] = '\0';
	if (http_resp_header(&c->resp, "ETag", "%s", etag) != 0)
		return -1;
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
	c->cache = cache_page_get("stats", "all", paint_cached_stats_check, &cached, gen);
	if (c->cache == CACHE_HIT && send_cached_page(c, &cached) == 0) {
		strbuf_free(&cached);
		return;
	}
	strbuf_free(&cached);
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	r = paint_store_stats(pg);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	ctx_db_release(c);	/* read: the connection goes back before the page is made and cached */
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

/*
 * Answer from the cached page of kind ("list", "facets") named key, if
 * any, as check lets it through; 0 when answered. gen is set either way.
 */
static int send_page_from_cache(struct ctx *c, const char *kind, const char *key,
				cache_page_check check, char gen[24])
{
	struct strbuf cached;
	int rc = -1;

	strbuf_init(&cached);
	c->cache = cache_page_get(kind, key, check, &cached, gen);
	if (c->cache == CACHE_HIT && send_cached_page(c, &cached) == 0)
		rc = 0;
	strbuf_free(&cached);
	return rc;
}

/* The page of rows r as {items, next_cursor}, into c->resp with its ETag. */
static void send_list_page(struct ctx *c, const struct paint_list_query *lq, const PGresult *r,
			   const char *gen)
{
	struct json_object *o = json_object_new_object(), *items;
	int rows = PQntuples(r), i;
	int last = (int)lq->limit - 1;

	items = json_object_new_array_ext(rows);
	for (i = 0; i < rows && i < lq->limit; i++)
		json_object_array_add(items, paint_row_json(r, i, low_default(c)));
	json_object_object_add(o, "items", items);
	json_object_object_add(o, "next_cursor",
			       rows > lq->limit ? paint_cursor_make(lq->sort, PQgetvalue(r, last, COL_COUNT),
								    PQgetvalue(r, last, COL_ID))
						: NULL);
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
	/* The page's ETag is a hash of its bytes: equal bytes, equal tag. */
	finish_page(c, "list", lq->canon.buf, gen);
}

/* Build the list's query of scope; on bad parameters, the 400 naming them is set and -1 returned. */
static int list_query(struct ctx *c, struct paint_list_query *lq, enum paint_list_scope scope)
{
	struct json_object *errors;

	if (paint_list_query_build(lq, &c->req.query, scope, low_default(c), &errors) == 0)
		return 0;
	http_problem(&c->resp, 400, "some query parameters are invalid: see errors", errors);
	return -1;
}

/* How a cached query's rows become its page: into c->resp, cached under gen (finish_page). */
typedef void (*page_maker)(struct ctx *c, const struct paint_list_query *lq, const PGresult *r,
			   const char *gen);

/*
 * A read of the list's query in scope (a page, or the facets), cached as
 * the list's pages are: the parameters (400), the cached page of kind if
 * check lets it through, else the statement named stmt and make.
 */
static void cached_query(struct ctx *c, enum paint_list_scope scope, const char *kind,
			 cache_page_check check, const char *stmt, page_maker make)
{
	struct paint_list_query lq;
	char gen[24];
	PGresult *r;

	if (list_query(c, &lq, scope) != 0 || send_page_from_cache(c, kind, lq.canon.buf, check, gen) == 0 ||
	    (r = ctx_exec_dynamic(c, stmt, lq.sql.buf, lq.nparams, lq.params)) == NULL)
		goto out;
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		ctx_db_release(c);	/* read: the connection goes back before the page is made and cached */
		make(c, &lq, r, gen);
	} else {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

		/* Class 22 with a cursor: a cursor value PostgreSQL cannot read back. */
		if (lq.cursor_value && state && strncmp(state, "22", 2) == 0)
			http_problem(&c->resp, 400, "the cursor is not valid for this list", NULL);
		else
			ctx_db_error(c, r);
	}
	PQclear(r);
out:
	paint_list_query_free(&lq);
}

void paints_list(struct ctx *c)
{
	cached_query(c, PAINT_LIST_PAGE, "list", paint_cached_list_check, "paints_list", send_list_page);
}

/* ---- the facets ---------------------------------------------------------------- */

/* A facet's value row of r: {value, count}. */
static struct json_object *facet_value(const PGresult *r, int row)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "value", json_object_new_string(PQgetvalue(r, row, 1)));
	json_object_object_add(o, "count", json_object_new_int64(strtoll(PQgetvalue(r, row, 2), NULL, 10)));
	return o;
}

/*
 * The facets' rows r (paint_list_query's facets scope) as {total, brand,
 * color_family, color_type, more}, into c->resp with its ETag, cached
 * under gen as the list's pages are.
 */
static void send_facets(struct ctx *c, const struct paint_list_query *lq, const PGresult *r,
			const char *gen)
{
	struct json_object *o = json_object_new_object(), *more = json_object_new_object();
	struct json_object *values[PAINT_NFACETS];
	int shown[PAINT_NFACETS] = { 0 }, rows = PQntuples(r), i, f;
	int64_t total = 0;

	for (f = 0; f < PAINT_NFACETS; f++)
		values[f] = json_object_new_array();
	for (i = 0; i < rows; i++) {
		f = atoi(PQgetvalue(r, i, 0));
		if (f == 0)
			total = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		else if (f <= PAINT_NFACETS && shown[f - 1]++ < PAINT_FACET_MAX)
			json_object_array_add(values[f - 1], facet_value(r, i));
	}
	json_object_object_add(o, "total", json_object_new_int64(total));
	for (f = 0; f < PAINT_NFACETS; f++) {
		json_object_object_add(o, paint_facets[f], values[f]);
		json_object_object_add(more, paint_facets[f], json_object_new_boolean(shown[f] > PAINT_FACET_MAX));
	}
	json_object_object_add(o, "more", more);
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
	finish_page(c, "facets", lq->canon.buf, gen);
}

/*
 * GET /admin/paints/facets: the paints the list's filters match, counted
 * by brand, family and type. The list's parameters and 400s (limit and
 * cursor refused; sort accepted and ignored), cached as its pages are.
 */
void paints_facets(struct ctx *c)
{
	cached_query(c, PAINT_LIST_FACETS, "facets", paint_cached_facets_check, "paints_facets",
		     send_facets);
}

/* ---- low stock ------------------------------------------------------------------- */

/* One entry of the sample's JSON array (paint_store_low_stock) into p; -1 if it is not one. */
static int low_paint(struct json_object *e, struct metrics_low_paint *p)
{
	struct json_object *id, *name, *brand, *stock, *threshold;

	if (!json_object_object_get_ex(e, "id", &id) || !json_object_object_get_ex(e, "name", &name) ||
	    !json_object_object_get_ex(e, "brand", &brand) ||
	    !json_object_object_get_ex(e, "stock", &stock) ||
	    !json_object_object_get_ex(e, "threshold", &threshold))
		return -1;
	p->id = json_object_get_int64(id);
	p->stock = json_object_get_int64(stock);
	p->threshold = json_object_get_int64(threshold);
	snprintf(p->name, sizeof(p->name), "%s", json_object_get_string(name));
	snprintf(p->brand, sizeof(p->brand), "%s", json_object_get_string(brand));
	return 0;
}

_Static_assert(PAINT_LOW_SAMPLED <= METRICS_LOW_MAX, "the metrics keep every paint sampled");

int paints_low_stock_sample(struct pool *p, const struct config *cfg)
{
	struct metrics_low_paint lowest[METRICS_LOW_MAX];
	struct json_object *list = NULL;
	struct pool_error err;
	struct pool_conn *conn;
	PGresult *r;
	int n = 0, i, rc = -1;

	/* A busy pool skips this round: the last sample stands. */
	if (pool_checkout(p, 0.2, "paints.low_stock", &conn, &err) != 0)
		return -1;
	r = paint_store_low_stock(pool_conn_pg(conn), cfg->low_stock_threshold);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    (list = json_tokener_parse(PQgetvalue(r, 0, 1))) != NULL &&
	    json_object_is_type(list, json_type_array)) {
		for (i = 0; i < (int)json_object_array_length(list) && n < METRICS_LOW_MAX; i++)
			if (low_paint(json_object_array_get_idx(list, i), &lowest[n]) == 0)
				n++;
		metrics_low_stock(strtoll(PQgetvalue(r, 0, 0), NULL, 10), lowest, n);
		rc = 0;
	}
	if (list)
		json_object_put(list);
	PQclear(r);
	pool_release(p, conn);
	return rc;
}

/* ---- the export ---------------------------------------------------------------- */

/*
 * GET /admin/paints/export.csv: every paint the list's filters match, in
 * the list's order, as CSV, streamed (context.h). One transaction, READ
 * ONLY and REPEATABLE READ, holds a server-side cursor over the list's
 * SQL without its limit; rows come EXPORT_BATCH at a time (each FETCH
 * under the pool's statement timeout), so memory holds one batch and one
 * chunk of CSV whatever the catalogue's size, and the file is one
 * snapshot. Everything that can fail before the first batch is in hand
 * (the parameters, the gate, the pool, the first FETCH) is answered as
 * usual (400, 503); after the head is out, a fault cuts the answer.
 */
#define EXPORT_BATCH 1000
#define EXPORT_CURSOR "paints_export"
/* The whole export's bound, from the request's start (ctx_stream_begin). */
#define EXPORT_MAX_SECONDS 300

/* The next batch of the export's cursor; NULL after the response was set (ctx_db_error, or a cut). */
static PGresult *export_fetch(struct ctx *c)
{
	PGresult *r = ctx_exec_dynamic(c, "paints_export_fetch",
				       "FETCH " PS_STR(EXPORT_BATCH) " FROM " EXPORT_CURSOR, 0, NULL);

	if (r && PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		r = NULL;
	}
	return r;
}

/* Run a statement of the export that returns no rows, named name: 0, or -1 with the response set. */
static int export_command(struct ctx *c, const char *name, const char *sql,
			  const struct paint_list_query *lq)
{
	PGresult *r = ctx_exec_dynamic(c, name, sql, lq ? lq->nparams : 0, lq ? lq->params : NULL);
	int ok;

	if (r == NULL)
		return -1;
	if (!(ok = PQresultStatus(r) == PGRES_COMMAND_OK))
		ctx_db_error(c, r);
	PQclear(r);
	return ok ? 0 : -1;
}

/* Open the export's transaction and cursor over lq and fetch the first batch; NULL as export_fetch. */
static PGresult *export_open(struct ctx *c, const struct paint_list_query *lq)
{
	struct strbuf sql;
	int rc;

	if (export_command(c, "paints_export_begin",
			   "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL) != 0)
		return NULL;
	strbuf_init(&sql);
	strbuf_puts(&sql, "DECLARE " EXPORT_CURSOR " NO SCROLL CURSOR FOR ");
	strbuf_append(&sql, lq->sql.buf, lq->sql.len);
	rc = export_command(c, "paints_export", sql.buf, lq);
	strbuf_free(&sql);
	return rc == 0 ? export_fetch(c) : NULL;
}

/* The export's head: 200, CSV, a file named for now, never stored. */
static void export_head(struct ctx *c)
{
	char name[PAINT_EXPORT_NAME_LEN];

	paint_export_filename(time(NULL), name);
	c->resp.status = 200;
	c->resp.content_type = "text/csv; charset=utf-8";
	http_resp_header(&c->resp, "Content-Disposition", "attachment; filename=\"%s\"", name);
	http_resp_header(&c->resp, "Cache-Control", "no-store");
}

void paints_export(struct ctx *c)
{
	struct paint_list_query lq;
	struct csv_writer w;
	PGresult *r = NULL;
	int i, rows;

	if (list_query(c, &lq, PAINT_LIST_ALL) != 0 || (r = export_open(c, &lq)) == NULL)
		goto out;
	export_head(c);
	if (ctx_stream_begin(c, EXPORT_MAX_SECONDS) != 0)
		goto out;	/* HEAD, or nobody to send it to */
	/* The byte order mark tells spreadsheets the text is UTF-8 (the import skips it). */
	strbuf_puts(&c->resp.body, CSV_BOM);
	csv_writer_init(&w, &c->resp.body);
	paint_csv_header(&w);
	for (;;) {
		rows = PQntuples(r);
		for (i = 0; i < rows; i++) {
			/* Afresh at each record: ctx_stream_flush empties the buffer under it. */
			csv_writer_init(&w, &c->resp.body);
			paint_row_csv(&w, r, i);
			if (ctx_stream_flush(c) != 0)
				goto out;
		}
		PQclear(r);
		r = NULL;
		if (rows < EXPORT_BATCH || (r = export_fetch(c)) == NULL)
			break;
	}
out:
	/* The connection goes back with the transaction open: the pool's ROLLBACK closes the cursor. */
	PQclear(r);
	paint_list_query_free(&lq);
}

/* Literal routes before placeholders: "/stats" must win over "/{id}". */
static const struct route routes[] = {
	{ "GET", "/admin/paints", paints_list, "paints.list", AUTH_ADMIN, true, 0 },
	{ "POST", "/admin/paints", paints_create, "paints.create", AUTH_ADMIN, false, 0 },
	{ "GET", "/admin/paints/stats", paints_stats, "paints.stats", AUTH_ADMIN, true, 0 },
	{ "GET", "/admin/paints/export.csv", paints_export, "paints.export", AUTH_ADMIN, true, 0 },
	{ "GET", "/admin/paints/facets", paints_facets, "paints.facets", AUTH_ADMIN, true, 0 },
	{ "GET", "/admin/paints/{id}", paints_get, "paints.get", AUTH_ADMIN, true, 0 },
	{ "PUT", "/admin/paints/{id}", paints_put, "paints.put", AUTH_ADMIN, false, 0 },
	{ "PATCH", "/admin/paints/{id}", paints_patch, "paints.patch", AUTH_ADMIN, false, 0 },
	{ "DELETE", "/admin/paints/{id}", paints_delete, "paints.delete", AUTH_ADMIN, false, 0 },
	{ "POST", "/admin/paints/{id}/stock", paints_stock, "paints.stock", AUTH_ADMIN, false, 0 },
	{ "POST", "/admin/paints/{id}/image", paints_image_put, "paints.image_put", AUTH_ADMIN, false,
	  IMAGES_MAX_BODY },
	{ "DELETE", "/admin/paints/{id}/image", paints_image_delete, "paints.image_delete",
	  AUTH_ADMIN, false, 0 },
};

const struct resource paints_resource = {
	"paints", routes, RESOURCE_ARRAY_LEN(routes), paint_store_statements, PAINT_STORE_NSTMTS,
};
