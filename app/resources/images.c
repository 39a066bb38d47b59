/*
 * images: uploads processed and stored, stored images served and swept
 * (images.h has the model).
 */
#include "resources/images.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"
#include "base/workers.h"

/* What an upload may be and becomes (image.h). */
static const struct image_settings settings = {
	.max_bytes = IMAGES_MAX_BODY,
	.max_side = 8192,
	.max_pixels = 24000000,	/* a 6000 x 4000 photo: 96 MB decoded, at most */
	.full_side = 1200,
	.thumb_side = 160,
	.quality = 82,
};

/* How long an upload waits for its turn to be processed. */
#define IMAGES_WAIT_SECONDS 10
/* Browsers keep an image a year; nginx an hour (so a removal is served at most that long). */
#define IMAGES_BROWSER_MAX_AGE 31536000
#define IMAGES_NGINX_SECONDS 3600

/*
 * $1 hash, $2 full bytes, $3 width, $4 height, $5 thumb bytes, $6 thumb
 * width, $7 thumb height, $8 source type, $9 source bytes, $10 source
 * width, $11 source height. Uploaded again, the row is only marked so:
 * its bytes are the same by their name. DO UPDATE (not DO NOTHING) takes
 * the row's lock, so a removal running now waits for this transaction
 * and then finds the image shown (migration 0015's foreign key).
 */
#define IMAGE_PUT_SQL \
	"INSERT INTO images (hash, full_webp, width, height, thumb_webp, thumb_width, " \
	"thumb_height, source_type, source_bytes, source_width, source_height) " \
	"VALUES ($1, $2, $3::int4, $4::int4, $5, $6::int4, $7::int4, $8, $9::int4, " \
	"$10::int4, $11::int4) ON CONFLICT (hash) DO UPDATE SET uploaded_at = now()"

/* Image i is shown by no paint. */
#define IMAGE_UNUSED_SQL \
	"NOT EXISTS (SELECT 1 FROM paints p WHERE p.image_hash = i.hash)"

static const struct pool_stmt statements[] = {
	{ "image_put", IMAGE_PUT_SQL },
	/* $1 hash, $2 true for the thumbnail; the bytes come back in binary */
	{ "image_get",
	  "SELECT CASE WHEN $2::bool THEN thumb_webp ELSE full_webp END FROM images WHERE hash = $1" },
	{ "image_forget", "DELETE FROM images i WHERE i.hash = $1 AND " IMAGE_UNUSED_SQL },
};

/* ---- the processing gate ------------------------------------------------ */

/*
 * Places to process an upload. mu guards busy: the uploads being
 * processed, at most IMAGES_AT_ONCE; freed signals a place given back.
 */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t freed;
static int busy;
static pthread_once_t freed_once = PTHREAD_ONCE_INIT;

static void freed_init(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&freed, &ca);
	pthread_condattr_destroy(&ca);
}

/*
 * Wait for a place (at most IMAGES_WAIT_SECONDS, the thread's place
 * among the workers lent meanwhile: waiting is not work). 0 when taken.
 */
static int turn_take(void)
{
	struct timespec ts;
	int rc = 0;

	pthread_once(&freed_once, freed_init);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += IMAGES_WAIT_SECONDS;
	if (pthread_mutex_lock(&mu) != 0)
		die("images: mutex lock failed");
	if (busy >= IMAGES_AT_ONCE) {
		workers_block_begin();
		while (busy >= IMAGES_AT_ONCE && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&freed, &mu, &ts);
		workers_block_end();
	}
	if (busy < IMAGES_AT_ONCE) {
		busy++;
		rc = 0;
	}
	pthread_mutex_unlock(&mu);
	return rc == 0 ? 0 : -1;
}

static void turn_give(void)
{
	if (pthread_mutex_lock(&mu) != 0)
		die("images: mutex lock failed");
	busy--;
	pthread_cond_signal(&freed);
	pthread_mutex_unlock(&mu);
}

/* ---- uploads ------------------------------------------------------------ */

/* The Content-Type names an image, or bytes of no stated kind. */
static int image_content_type(const char *ct)
{
	if (ct == NULL)
		return 0;
	ct += strspn(ct, " \t");
	return strncasecmp(ct, "image/", 6) == 0 ||
	       strncasecmp(ct, "application/octet-stream", 24) == 0;
}

static void refuse(struct ctx *c, enum image_status st, const char *why)
{
	static const int status[] = {
		[IMAGE_UNSUPPORTED] = 415, [IMAGE_TOO_LARGE] = 413, [IMAGE_INVALID] = 422,
	};
	char detail[320];

	snprintf(detail, sizeof(detail), "the image was not stored: it %s", why);
	http_problem(&c->resp, status[st], detail, NULL);
}

int images_upload_read(struct ctx *c, struct images_upload *up)
{
	enum image_status st;
	unsigned char raw[crypto_hash_sha256_BYTES];
	char why[256];

	memset(up, 0, sizeof(*up));
	if (!image_content_type(http_param(&c->req, "CONTENT_TYPE"))) {
		http_problem(&c->resp, 415,
			     "send the image itself as the body, with Content-Type image/png, "
			     "image/jpeg or image/webp (its content decides which it is)", NULL);
		return -1;
	}
	if (ctx_body_read_all(c) != 0)
		return -1;
	if (turn_take() != 0) {
		http_resp_header(&c->resp, "Retry-After", "%d", 2);
		http_problem(&c->resp, 503, "too many images are being processed: try again shortly",
			     NULL);
		return -1;
	}
	st = image_process((const unsigned char *)c->req.body, c->req.body_len, &settings,
			   &up->out, why, sizeof(why));
	turn_give();
	if (st != IMAGE_OK) {
		refuse(c, st, why);
		return -1;
	}
	crypto_hash_sha256(raw, up->out.full.data, up->out.full.len);
	sodium_bin2hex(up->hash, sizeof(up->hash), raw, sizeof(raw));
	snprintf(up->url, sizeof(up->url), PAINT_IMAGE_PREFIX "%s" PAINT_IMAGE_SUFFIX, up->hash);
	return 0;
}

void images_upload_free(struct images_upload *up)
{
	image_out_free(&up->out);
}

int images_upload_store(struct ctx *c, PGconn *pg, void *upload)
{
	const struct images_upload *up = upload;
	const struct image_out *o = &up->out;
	char num[6][12], srcbytes[24];
	const char *values[11];
	int lengths[11] = { 0 }, formats[11] = { 0 }, rc = 0;
	PGresult *r;

	snprintf(num[0], sizeof(num[0]), "%u", (unsigned)o->full.width);
	snprintf(num[1], sizeof(num[1]), "%u", (unsigned)o->full.height);
	snprintf(num[2], sizeof(num[2]), "%u", (unsigned)o->thumb.width);
	snprintf(num[3], sizeof(num[3]), "%u", (unsigned)o->thumb.height);
	snprintf(num[4], sizeof(num[4]), "%u", (unsigned)o->source_width);
	snprintf(num[5], sizeof(num[5]), "%u", (unsigned)o->source_height);
	snprintf(srcbytes, sizeof(srcbytes), "%zu", c->req.body_len);
	values[0] = up->hash;
	values[1] = (const char *)o->full.data;
	lengths[1] = (int)o->full.len;
	formats[1] = 1;
	values[2] = num[0];
	values[3] = num[1];
	values[4] = (const char *)o->thumb.data;
	lengths[4] = (int)o->thumb.len;
	formats[4] = 1;
	values[5] = num[2];
	values[6] = num[3];
	values[7] = image_type_mime(o->source);
	values[8] = srcbytes;
	values[9] = num[4];
	values[10] = num[5];
	r = pool_exec_prepared(pg, "image_put", 11, values, lengths, formats, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		rc = -1;
	}
	PQclear(r);
	return rc;
}

void images_forget(struct ctx *c, PGconn *pg, const char *old)
{
	char hash[PAINT_IMAGE_HASH_LEN + 1];
	const char *params[1] = { hash };
	struct log_line l;
	PGresult *r;

	if (old == NULL || paint_image_url_hash(old, hash) != 0)
		return;
	r = pool_exec_prepared(pg, "image_forget", 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		/* 23503: shown again by a write that committed meanwhile. */
		log_begin(&l, LOG_INFO, "image kept for the sweep");
		log_str(&l, "request_id", c->request_id);
		log_str(&l, "image", hash);
		log_str(&l, "sqlstate", PQresultErrorField(r, PG_DIAG_SQLSTATE));
		log_end(&l);
	}
	PQclear(r);
}

int images_sweep(struct pool *p, const struct config *cfg)
{
	struct pool_conn *c;
	struct pool_error err;
	char days[12];
	const char *params[1] = { days };
	PGresult *r;
	int n = 0;

	(void)cfg;
	if (pool_checkout(p, 1.0, "images.sweep", &c, &err) != 0)
		return -1;
	snprintf(days, sizeof(days), "%d", IMAGES_GRACE_DAYS);
	r = PQexecParams(pool_conn_pg(c),
			 "DELETE FROM images i WHERE uploaded_at < now() - $1::int4 * interval '1 day' "
			 "AND " IMAGE_UNUSED_SQL, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_COMMAND_OK)
		n = atoi(PQcmdTuples(r));
	PQclear(r);
	pool_release(p, c);
	return n;
}

/* ---- serving ------------------------------------------------------------ */

/*
 * The {file} of /images/{file}: "<hash>.webp" or "<hash>.thumb.webp".
 * 0 with hash and *thumb set, else -1.
 */
static int image_file(const char *s, size_t len, char hash[PAINT_IMAGE_HASH_LEN + 1],
		      int *thumb)
{
	char url[sizeof(PAINT_IMAGE_PREFIX) + PAINT_IMAGE_HASH_LEN + sizeof(PAINT_IMAGE_THUMB_SUFFIX)];
	size_t tail = strlen(PAINT_IMAGE_THUMB_SUFFIX);

	*thumb = len == PAINT_IMAGE_HASH_LEN + tail &&
		 memcmp(s + PAINT_IMAGE_HASH_LEN, PAINT_IMAGE_THUMB_SUFFIX, tail) == 0;
	if (*thumb)
		len -= tail - strlen(PAINT_IMAGE_SUFFIX);
	if (len != PAINT_IMAGE_HASH_LEN + strlen(PAINT_IMAGE_SUFFIX))
		return -1;
	snprintf(url, sizeof(url), PAINT_IMAGE_PREFIX "%.*s" PAINT_IMAGE_SUFFIX,
		 PAINT_IMAGE_HASH_LEN, s);
	return paint_image_url_hash(url, hash);
}

/* A stored image's answer (200, 304) may be kept: a year by browsers, an hour by nginx. */
static void cache_headers(struct ctx *c, const char *etag)
{
	http_resp_header(&c->resp, "ETag", "%s", etag);
	http_resp_header(&c->resp, "Cache-Control", "public, max-age=%d, immutable",
			 IMAGES_BROWSER_MAX_AGE);
	/* nginx's own cache time (it takes the header off the answer). */
	http_resp_header(&c->resp, "X-Accel-Expires", "%d", IMAGES_NGINX_SECONDS);
}

/* GET /images/{file} */
static void images_get(struct ctx *c)
{
	char hash[PAINT_IMAGE_HASH_LEN + 1], etag[24];
	const char *params[2];
	const char *inm = http_param(&c->req, "HTTP_IF_NONE_MATCH");
	PGconn *pg;
	PGresult *r;
	int thumb;

	if (image_file(c->match.var[0], c->match.varlen[0], hash, &thumb) != 0) {
		http_problem(&c->resp, 404, "no such image", NULL);
		return;
	}
	/* The address never changes what it shows: any tag of it will do. */
	snprintf(etag, sizeof(etag), "\"%.16s\"", hash);
	if (inm && http_etag_matches(inm, etag, 1)) {
		c->resp.status = 304;
		cache_headers(c, etag);
		return;
	}
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	params[0] = hash;
	params[1] = thumb ? "true" : "false";
	r = pool_exec_prepared(pg, "image_get", 2, params, NULL, NULL, 1);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
	} else if (PQntuples(r) == 0) {
		http_problem(&c->resp, 404, "no such image", NULL);
	} else {
		c->resp.status = 200;
		c->resp.content_type = "image/webp";
		strbuf_append(&c->resp.body, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
		cache_headers(c, etag);
	}
	PQclear(r);
}

static const struct route routes[] = {
	{ "GET", "/images/{file}", images_get, "images.get", AUTH_NONE, true, 0 },
};

const struct resource images_resource = {
	"images", routes, RESOURCE_ARRAY_LEN(routes), statements, RESOURCE_ARRAY_LEN(statements),
};
