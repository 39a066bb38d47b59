/*
 * sessions: admission of every request (cookie, role, Origin, CSRF token),
 * opening and ending sessions, and the session cache: a fixed table of
 * slots under one mutex holding what PostgreSQL said about a token hash
 * for SESSION_CACHE_SECONDS; nothing blocks while the mutex is held.
 */
#include "sessions.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "context.h"
#include "util.h"

/*
 * How long a process trusts what it read about a session; from
 * SESSION_REFRESH_SECONDS on, the first request to see an entry reads it
 * again while the others go on being served from it. Under steady load an
 * entry is refreshed before it expires, by one request, not by every
 * request that arrives while it is being read (a stampede that took up to
 * a connection per worker thread once a second).
 */
#define SESSION_CACHE_SECONDS 1.0
#define SESSION_REFRESH_SECONDS 0.75
#define SESSION_CACHE_SLOTS 1024
/* last_seen_at is written at most this often per session. */
#define LAST_SEEN_EVERY "60"

static const struct pool_stmt statements[] = {
	/* $1 token hash, $2 idle limit in seconds */
	{ "sessions_find",
	  "SELECT u.id, u.username, u.is_admin, "
	  "  extract(epoch FROM now() - s.last_seen_at) > " LAST_SEEN_EVERY " AS stale "
	  "FROM sessions s JOIN users u ON u.id = s.user_id "
	  "WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled "
	  "  AND s.last_seen_at > now() - make_interval(secs => $2::int)" },
	{ "sessions_touch", "UPDATE sessions SET last_seen_at = now() WHERE token_hash = $1" },
	{ "sessions_new",
	  "INSERT INTO sessions (token_hash, user_id, expires_at, client_addr) "
	  "VALUES ($1, $2, now() + make_interval(secs => $3::int), $4)" },
	{ "sessions_end", "DELETE FROM sessions WHERE token_hash = $1" },
};

const struct resource sessions_resource = {
	"sessions", NULL, 0, statements, RESOURCE_ARRAY_LEN(statements),
};

/* One cached session: what PostgreSQL said about a token hash, and when. */
struct session_entry {
	unsigned char hash[32];
	int used;
	int valid;		/* 0: a cached "no such session" */
	int refreshing;		/* a request is reading it again */
	double fetched;		/* monotonic */
	int64_t user_id;
	int is_admin;
	char username[65];
};

/*
 * The process's session cache. session_cache_mu guards session_cache;
 * while it is held nothing blocks (no query). An entry is trusted for
 * SESSION_CACHE_SECONDS after it was fetched.
 */
static pthread_mutex_t session_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct session_entry session_cache[SESSION_CACHE_SLOTS];

static const struct config *sessions_cfg;

void sessions_setup(const struct config *cfg)
{
	sessions_cfg = cfg;
}

void sessions_csrf_for(const unsigned char token[32], char out[SESSIONS_CSRF_LEN])
{
	unsigned char mac[32];

	crypto_generichash(mac, sizeof(mac), (const unsigned char *)"paintstudio csrf", 16,
			   token, 32);
	sodium_bin2base64(out, SESSIONS_CSRF_LEN, mac, sizeof(mac),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* ---- the session cache ---------------------------------------------------- */

static struct session_entry *session_cache_slot(const unsigned char hash[32])
{
	uint32_t h;

	memcpy(&h, hash, sizeof(h));
	return &session_cache[h % SESSION_CACHE_SLOTS];
}

int sessions_cache_serves(double age, int *refreshing)
{
	if (age < 0 || age >= SESSION_CACHE_SECONDS)
		return 0;
	if (age >= SESSION_REFRESH_SECONDS && !*refreshing) {
		*refreshing = 1;
		return 0;	/* this caller reads it again */
	}
	return 1;
}

/* Copy a cached entry for hash that may be served into out; 1 if found. */
static int session_cache_get(const unsigned char hash[32], struct session_entry *out)
{
	struct session_entry *e = session_cache_slot(hash);
	int hit;

	pthread_mutex_lock(&session_cache_mu);
	hit = e->used && memcmp(e->hash, hash, 32) == 0 &&
	      sessions_cache_serves(now_mono() - e->fetched, &e->refreshing);
	if (hit)
		*out = *e;
	pthread_mutex_unlock(&session_cache_mu);
	return hit;
}

static void session_cache_put(const struct session_entry *in)
{
	struct session_entry *e = session_cache_slot(in->hash);

	pthread_mutex_lock(&session_cache_mu);
	*e = *in;
	e->used = 1;
	pthread_mutex_unlock(&session_cache_mu);
}

static void session_cache_forget(const unsigned char hash[32])
{
	struct session_entry *e = session_cache_slot(hash);

	pthread_mutex_lock(&session_cache_mu);
	if (e->used && memcmp(e->hash, hash, 32) == 0)
		e->used = 0;
	pthread_mutex_unlock(&session_cache_mu);
}

void sessions_forget_user(int64_t user_id)
{
	size_t i;

	pthread_mutex_lock(&session_cache_mu);
	for (i = 0; i < SESSION_CACHE_SLOTS; i++)
		if (session_cache[i].used && session_cache[i].valid &&
		    session_cache[i].user_id == user_id)
			session_cache[i].used = 0;
	pthread_mutex_unlock(&session_cache_mu);
}

/* ---- admission ---------------------------------------------------------------- */

/* The session token of the request's cookie (32 raw bytes), or -1. */
static int cookie_token(struct ctx *c, unsigned char token[32])
{
	char text[64];
	size_t len;

	if (http_cookie_get(http_param(&c->req, "HTTP_COOKIE"), SESSIONS_COOKIE, text,
			    sizeof(text)) != 0)
		return -1;
	if (sodium_base642bin(token, 32, text, strlen(text), NULL, &len, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || len != 32)
		return -1;
	return 0;
}

static void token_hash(const unsigned char token[32], unsigned char hash[32])
{
	crypto_hash_sha256(hash, token, 32);
}

/* Same-origin ("https://" + the Host the client sent) or in ALLOWED_ORIGINS. */
int sessions_origin_allowed(struct ctx *c)
{
	const char *origin = http_param(&c->req, "HTTP_ORIGIN");
	const char *host = http_param(&c->req, "REQUEST_HOST");
	const char *list = sessions_cfg ? sessions_cfg->allowed_origins : "";
	size_t olen;

	if (origin == NULL || *origin == '\0')
		return 0;
	olen = strlen(origin);
	if (host && strncmp(origin, "https://", 8) == 0 && strcmp(origin + 8, host) == 0)
		return 1;
	while (list && *list) {
		size_t len = strcspn(list, ",");

		while (len > 0 && list[len - 1] == ' ')
			len--;
		if (len == olen && strncmp(list, origin, len) == 0)
			return 1;
		list += strcspn(list, ",");
		list += strspn(list, ", ");
	}
	return 0;
}

static int is_write(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	       strcmp(method, "OPTIONS") != 0;
}

/*
 * A scraper without a session: the request came through a listener only
 * this machine can reach (nginx says so in LISTENER_LOCAL, a FastCGI
 * parameter no client can set: only nginx or a local process reaches our
 * socket), or it carries "Authorization: Bearer <METRICS_TOKEN>". Never
 * the client's address, which a proxy may have taken from a header.
 */
static int scraper_allowed(struct ctx *c)
{
	const char *local = http_param(&c->req, "LISTENER_LOCAL");
	const char *authz = http_param(&c->req, "HTTP_AUTHORIZATION");
	const char *want = sessions_cfg ? sessions_cfg->metrics_token : NULL;
	unsigned char h1[32], h2[32];
	int ok;

	if (local && strcmp(local, "1") == 0)
		return 1;
	if (want == NULL || *want == '\0' || authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
		return 0;
	authz += 7;
	authz += strspn(authz, " ");
	/* Equal-length digests compared in constant time: nothing leaks the length. */
	crypto_generichash(h1, sizeof(h1), (const unsigned char *)authz, strlen(authz), NULL, 0);
	crypto_generichash(h2, sizeof(h2), (const unsigned char *)want, strlen(want), NULL, 0);
	ok = sodium_memcmp(h1, h2, sizeof(h1)) == 0;
	sodium_memzero(h2, sizeof(h2));
	return ok;
}

/* Look the session up: the cache, else PostgreSQL. -1 with 503 set on a fault. */
static int find_session(struct ctx *c, const unsigned char hash[32], struct session_entry *out)
{
	char idle[16];
	const char *params[2];
	int lens[2] = { 32, 0 }, formats[2] = { 1, 0 };
	PGconn *pg;
	PGresult *r;

	if (session_cache_get(hash, out))
		return 0;
	if ((pg = ctx_db(c, 0)) == NULL)
		return -1;
	snprintf(idle, sizeof(idle), "%d", sessions_cfg->session_idle);
	params[0] = (const char *)hash;
	params[1] = idle;
	r = PQexecPrepared(pg, "sessions_find", 2, params, lens, formats, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return -1;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out->hash, hash, 32);
	out->fetched = now_mono();
	if (PQntuples(r) == 1) {
		out->valid = 1;
		out->user_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		snprintf(out->username, sizeof(out->username), "%s", PQgetvalue(r, 0, 1));
		out->is_admin = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
		if (strcmp(PQgetvalue(r, 0, 3), "t") == 0)
			PQclear(PQexecPrepared(pg, "sessions_touch", 1, params, lens, formats, 0));
	}
	PQclear(r);
	session_cache_put(out);
	return 0;
}

/* A write must come from an allowed Origin with the session's CSRF token. */
static int csrf_ok(struct ctx *c, const unsigned char token[32])
{
	const char *sent = http_param(&c->req, "HTTP_X_CSRF_TOKEN");
	char want[SESSIONS_CSRF_LEN];

	sessions_csrf_for(token, want);
	if (!sessions_origin_allowed(c)) {
		http_problem(&c->resp, 403, "the request's Origin is not allowed", NULL);
		return -1;
	}
	if (sent == NULL || strlen(sent) != strlen(want) ||
	    sodium_memcmp(sent, want, strlen(want)) != 0) {
		http_problem(&c->resp, 403, "missing or wrong X-CSRF-Token", NULL);
		return -1;
	}
	return 0;
}

int sessions_require(struct ctx *c, enum auth_level level)
{
	unsigned char token[32], hash[32];
	struct session_entry s;
	double t0 = now_mono();
	int rc = -1;

	if (level == AUTH_NONE)
		return 0;
	if (level == AUTH_LOOPBACK_OR_ADMIN) {
		if (scraper_allowed(c))
			return 0;
		level = AUTH_ADMIN;
	}
	if (cookie_token(c, token) != 0) {
		http_problem(&c->resp, 401, "log in first: no session", NULL);
		goto out;
	}
	token_hash(token, hash);
	if (find_session(c, hash, &s) != 0)
		goto out;
	if (!s.valid) {
		http_problem(&c->resp, 401, "the session has ended: log in again", NULL);
		goto out;
	}
	c->user_id = s.user_id;
	memcpy(c->session_hash, hash, 32);
	snprintf(c->username, sizeof(c->username), "%s", s.username);
	c->is_admin = s.is_admin;
	memcpy(c->session_token, token, sizeof(token));	/* wiped when the request ends */
	if (level == AUTH_ADMIN && !s.is_admin) {
		http_problem(&c->resp, 403, "this needs an administrator", NULL);
		goto out;
	}
	if (is_write(c->req.method) && csrf_ok(c, token) != 0)
		goto out;
	rc = 0;
out:
	sodium_memzero(token, sizeof(token));
	c->auth_time += now_mono() - t0;
	return rc;
}

/* ---- opening and ending ------------------------------------------------------ */

int sessions_open(struct ctx *c, PGconn *pg, int64_t user_id, char csrf[SESSIONS_CSRF_LEN])
{
	char tokentext[48], expires[16], uid[24];
	unsigned char token[32], hash[32];
	const char *params[4], *addr = http_param(&c->req, "REMOTE_ADDR");
	int lens[4] = { 32, 0, 0, 0 }, formats[4] = { 1, 0, 0, 0 };
	PGresult *r;

	randombytes_buf(token, sizeof(token));
	token_hash(token, hash);
	snprintf(expires, sizeof(expires), "%d", sessions_cfg->session_absolute);
	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	params[0] = (const char *)hash;
	params[1] = uid;
	params[2] = expires;
	params[3] = addr ? addr : "";
	r = PQexecPrepared(pg, "sessions_new", 4, params, lens, formats, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		sodium_memzero(token, sizeof(token));
		return -1;
	}
	PQclear(r);
	sodium_bin2base64(tokentext, sizeof(tokentext), token, sizeof(token),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sessions_csrf_for(token, csrf);
	sodium_memzero(token, sizeof(token));
	http_resp_header(&c->resp, "Set-Cookie",
			 SESSIONS_COOKIE "=%s; Path=/; Max-Age=%d; Secure; HttpOnly; SameSite=Strict",
			 tokentext, sessions_cfg->session_absolute);
	sodium_memzero(tokentext, sizeof(tokentext));
	return 0;
}

int sessions_end(struct ctx *c)
{
	const char *params[1] = { (const char *)c->session_hash };
	int lens[1] = { 32 }, formats[1] = { 1 };
	PGconn *pg = ctx_db(c, 0);
	PGresult *r;

	if (pg == NULL)
		return -1;
	r = PQexecPrepared(pg, "sessions_end", 1, params, lens, formats, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	session_cache_forget(c->session_hash);
	http_resp_header(&c->resp, "Set-Cookie",
			 SESSIONS_COOKIE "=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict");
	return 0;
}
