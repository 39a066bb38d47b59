#include "auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "context.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#define MIN_PASSWORD 12

int auth_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

int auth_hash_password(const char *password, char out[AUTH_HASH_LEN])
{
	return crypto_pwhash_str(out, password, strlen(password),
				 crypto_pwhash_OPSLIMIT_INTERACTIVE,
				 crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0 ? 0 : -1;
}

int auth_verify_password(const char *hash, const char *password)
{
	return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

void auth_generate_password(char *buf, size_t len)
{
	unsigned char raw[32];
	char enc[64];

	if (len < 17 || len > 43)
		die("auth_generate_password: length %zu out of range", len);
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(enc, sizeof(enc), raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	memcpy(buf, enc, len - 1);
	buf[len - 1] = '\0';
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(enc, sizeof(enc));
}

int auth_username_ok(const char *username)
{
	size_t len = strlen(username);

	return len >= 1 && len <= 64 &&
	       strspn(username, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

int auth_create_admin(PGconn *pg, const char *username, const char *password,
		      int if_missing, int *created, char *err, size_t errlen)
{
	char hash[AUTH_HASH_LEN];
	const char *params[2];
	PGresult *r;
	int rc = -1;

	*created = 0;
	if (!auth_username_ok(username)) {
		snprintf(err, errlen, "username must be 1-64 characters of A-Z a-z 0-9 . _ -");
		return -1;
	}
	if (strlen(password) < MIN_PASSWORD) {
		snprintf(err, errlen, "password must have at least %d characters", MIN_PASSWORD);
		return -1;
	}
	if (auth_hash_password(password, hash) != 0) {
		snprintf(err, errlen, "cannot hash the password (out of memory)");
		return -1;
	}
	params[0] = username;
	params[1] = hash;
	r = PQexecParams(pg, if_missing
		? "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, true) "
		  "ON CONFLICT (username) DO NOTHING RETURNING id"
		: "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, true) "
		  "ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, "
		  "is_admin = true, disabled = false, updated_at = now() "
		  "RETURNING (xmax = 0)",
		2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
		err[strcspn(err, "\n")] = '\0';
		goto out;
	}
	if (if_missing)
		*created = PQntuples(r) == 1;
	else
		*created = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	rc = 0;
out:
	PQclear(r);
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

/* ---- sessions ------------------------------------------------------------ */

/* How long a process trusts what it read about a session. */
#define SESSION_CACHE_SECONDS 1.0
#define SESSION_CACHE_SLOTS 1024
/* last_seen_at is written at most this often per session. */
#define LAST_SEEN_EVERY "60"
/* Argon2id verifications at once per process (64 MiB each). */
#define MAX_HASHING 2
#define HASHING_WAIT 10.0

static const struct pool_stmt statements[] = {
	{ "auth_user", "SELECT id, password_hash, is_admin, disabled FROM users WHERE username = $1" },
	/* $2 idle limit in seconds */
	{ "auth_session",
	  "SELECT u.id, u.username, u.is_admin, "
	  "  extract(epoch FROM now() - s.last_seen_at) > " LAST_SEEN_EVERY " AS stale "
	  "FROM sessions s JOIN users u ON u.id = s.user_id "
	  "WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled "
	  "  AND s.last_seen_at > now() - make_interval(secs => $2::int)" },
	{ "auth_touch", "UPDATE sessions SET last_seen_at = now() WHERE token_hash = $1" },
	{ "auth_session_new",
	  "INSERT INTO sessions (token_hash, user_id, expires_at, client_addr) "
	  "VALUES ($1, $2, now() + make_interval(secs => $3::int), $4)" },
	{ "auth_session_end", "DELETE FROM sessions WHERE token_hash = $1" },
	/* Failures in the current window (0 when the window has passed). */
	{ "auth_failures",
	  "SELECT coalesce(max(failures) FILTER (WHERE window_start > now() - make_interval(secs => $2::int)), 0), "
	  "  coalesce(ceil(extract(epoch FROM max(window_start) + make_interval(secs => $2::int) - now())), 0) "
	  "FROM login_failures WHERE key = ANY($1::text[])" },
	{ "auth_fail",
	  "INSERT INTO login_failures AS f (key, failures, window_start) "
	  "SELECT k, 1, now() FROM unnest($1::text[]) AS k "
	  "ON CONFLICT (key) DO UPDATE SET "
	  "  failures = CASE WHEN f.window_start > now() - make_interval(secs => $2::int) "
	  "              THEN f.failures + 1 ELSE 1 END, "
	  "  window_start = CASE WHEN f.window_start > now() - make_interval(secs => $2::int) "
	  "              THEN f.window_start ELSE now() END" },
	{ "auth_forget_failures", "DELETE FROM login_failures WHERE key = ANY($1::text[])" },
};

const struct pool_stmt *auth_statements(int *n)
{
	*n = (int)(sizeof(statements) / sizeof(statements[0]));
	return statements;
}

/* One cached session: what PostgreSQL said about a token hash, and when. */
struct session_entry {
	unsigned char hash[32];
	int used;
	int valid;		/* 0: a cached "no such session" */
	double fetched;		/* monotonic */
	int64_t user_id;
	int is_admin;
	char username[65];
};

/*
 * The process's session cache. cache_mu guards entries; while it is held
 * nothing blocks (no query). An entry is trusted for SESSION_CACHE_SECONDS.
 */
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct session_entry entries[SESSION_CACHE_SLOTS];

/* Bounds concurrent Argon2 work: hashing_mu guards hashing. */
static pthread_mutex_t hashing_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hashing_cv = PTHREAD_COND_INITIALIZER;
static int hashing;

/* Verified against when the user does not exist: same cost, same answer. */
static char dummy_hash[AUTH_HASH_LEN];
static const struct config *auth_cfg;

void auth_setup(const struct config *cfg)
{
	char pw[32];

	auth_cfg = cfg;
	auth_generate_password(pw, sizeof(pw));
	if (auth_hash_password(pw, dummy_hash) != 0)
		die("auth: cannot compute the dummy hash");
	sodium_memzero(pw, sizeof(pw));
}

void auth_csrf_for(const unsigned char token[32], char out[44])
{
	unsigned char mac[32];

	crypto_generichash(mac, sizeof(mac), (const unsigned char *)"paintstudio csrf", 16,
			   token, 32);
	sodium_bin2base64(out, 44, mac, sizeof(mac), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static struct session_entry *slot_of(const unsigned char hash[32])
{
	uint32_t h;

	memcpy(&h, hash, sizeof(h));
	return &entries[h % SESSION_CACHE_SLOTS];
}

/* Copy a fresh cached entry for hash into out; 1 if found. */
static int cache_get(const unsigned char hash[32], struct session_entry *out)
{
	struct session_entry *e = slot_of(hash);
	int hit;

	pthread_mutex_lock(&cache_mu);
	hit = e->used && memcmp(e->hash, hash, 32) == 0 &&
	      now_mono() - e->fetched < SESSION_CACHE_SECONDS;
	if (hit)
		*out = *e;
	pthread_mutex_unlock(&cache_mu);
	return hit;
}

static void cache_put(const struct session_entry *in)
{
	struct session_entry *e = slot_of(in->hash);

	pthread_mutex_lock(&cache_mu);
	*e = *in;
	e->used = 1;
	pthread_mutex_unlock(&cache_mu);
}

static void cache_forget(const unsigned char hash[32])
{
	struct session_entry *e = slot_of(hash);

	pthread_mutex_lock(&cache_mu);
	if (e->used && memcmp(e->hash, hash, 32) == 0)
		e->used = 0;
	pthread_mutex_unlock(&cache_mu);
}

/* The session token of the request's cookie (32 raw bytes), or -1. */
static int cookie_token(struct ctx *c, unsigned char token[32])
{
	char text[64];
	size_t len;

	if (http_cookie_get(http_param(&c->req, "HTTP_COOKIE"), AUTH_COOKIE, text, sizeof(text)) != 0)
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
static int origin_allowed(struct ctx *c)
{
	const char *origin = http_param(&c->req, "HTTP_ORIGIN");
	const char *host = http_param(&c->req, "REQUEST_HOST");
	const char *list = auth_cfg ? auth_cfg->allowed_origins : "";
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

/* Look the session up: the cache, else PostgreSQL. -1 with 503 set on a fault. */
static int find_session(struct ctx *c, const unsigned char hash[32], struct session_entry *out)
{
	char idle[16];
	const char *params[2];
	int lens[2] = { 32, 0 }, formats[2] = { 1, 0 };
	PGconn *pg;
	PGresult *r;

	if (cache_get(hash, out))
		return 0;
	if ((pg = ctx_db(c, 0)) == NULL)
		return -1;
	snprintf(idle, sizeof(idle), "%d", auth_cfg->session_idle);
	params[0] = (const char *)hash;
	params[1] = idle;
	r = PQexecPrepared(pg, "auth_session", 2, params, lens, formats, 0);
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
			PQclear(PQexecPrepared(pg, "auth_touch", 1, params, lens, formats, 0));
	}
	PQclear(r);
	cache_put(out);
	return 0;
}

int auth_require(struct ctx *c, enum auth_level level)
{
	unsigned char token[32], hash[32];
	struct session_entry s;
	double t0 = now_mono();
	int rc = -1;

	if (level == AUTH_NONE)
		return 0;
	if (level == AUTH_LOOPBACK_OR_ADMIN) {
		const char *addr = http_param(&c->req, "REMOTE_ADDR");

		if (addr && (strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0))
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
	if (is_write(c->req.method)) {
		const char *sent = http_param(&c->req, "HTTP_X_CSRF_TOKEN");
		char want[44];

		auth_csrf_for(token, want);
		if (!origin_allowed(c)) {
			http_problem(&c->resp, 403, "the request's Origin is not allowed", NULL);
			goto out;
		}
		if (sent == NULL || strlen(sent) != strlen(want) ||
		    sodium_memcmp(sent, want, strlen(want)) != 0) {
			http_problem(&c->resp, 403, "missing or wrong X-CSRF-Token", NULL);
			goto out;
		}
	}
	rc = 0;
out:
	sodium_memzero(token, sizeof(token));
	c->auth_time += now_mono() - t0;
	return rc;
}

/* Wait for a hashing slot (bounded); -1 with 503 set when none came. */
static int hashing_enter(struct ctx *c)
{
	struct timespec ts;
	int ok = 1;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)HASHING_WAIT;
	pthread_mutex_lock(&hashing_mu);
	while (hashing >= MAX_HASHING) {
		if (pthread_cond_timedwait(&hashing_cv, &hashing_mu, &ts) == ETIMEDOUT) {
			ok = 0;
			break;
		}
	}
	if (ok)
		hashing++;
	pthread_mutex_unlock(&hashing_mu);
	if (!ok) {
		http_resp_header(&c->resp, "Retry-After", "2");
		http_problem(&c->resp, 503, "too many logins at once: try again shortly", NULL);
		return -1;
	}
	return 0;
}

static void hashing_leave(void)
{
	pthread_mutex_lock(&hashing_mu);
	hashing--;
	pthread_cond_signal(&hashing_cv);
	pthread_mutex_unlock(&hashing_mu);
}

/*
 * The throttling keys as a PostgreSQL text[] literal: {"user:<name>"},
 * with with_addr also "addr:<client address>".
 */
static void failure_keys(struct ctx *c, const char *username, int with_addr,
			 char *out, size_t size)
{
	struct strbuf sb;
	const char *addr = http_param(&c->req, "REMOTE_ADDR");
	const char *parts[2];
	int i;

	strbuf_init(&sb);
	parts[0] = username;
	parts[1] = addr ? addr : "";
	strbuf_putc(&sb, '{');
	for (i = 0; i < (with_addr ? 2 : 1); i++) {
		const char *p;

		strbuf_puts(&sb, i ? ",\"addr:" : "\"user:");
		for (p = parts[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				strbuf_putc(&sb, '\\');
			strbuf_putc(&sb, *p);
		}
		strbuf_putc(&sb, '"');
	}
	strbuf_putc(&sb, '}');
	snprintf(out, size, "%s", sb.buf);
	strbuf_free(&sb);
}

static void login_refused(struct ctx *c)
{
	http_problem(&c->resp, 401, "wrong username or password", NULL);
}

void auth_login(struct ctx *c)
{
	struct json_object *body = ctx_json_body(c, 0), *u = NULL, *p = NULL, *o;
	char keys[400], window[16], retry[16], tokentext[48], csrf[44], expires[16];
	unsigned char token[32], hash[32];
	const char *username, *password, *params[4];
	int lens[4] = { 0 }, formats[4] = { 0 };
	int ok = 0, is_admin = 0, disabled = 1;
	int64_t user_id = 0;
	PGconn *pg;
	PGresult *r;

	if (body == NULL)
		return;
	if (!origin_allowed(c)) {
		http_problem(&c->resp, 403, "the request's Origin is not allowed", NULL);
		return;
	}
	if (!json_object_object_get_ex(body, "username", &u) || !json_object_is_type(u, json_type_string) ||
	    !json_object_object_get_ex(body, "password", &p) || !json_object_is_type(p, json_type_string) ||
	    json_object_object_length(body) != 2) {
		http_problem(&c->resp, 422, "send exactly {\"username\": \"...\", \"password\": \"...\"}", NULL);
		return;
	}
	username = json_object_get_string(u);
	password = json_object_get_string(p);
	if (strlen(username) > 64 || strlen(password) > 1024) {
		login_refused(c);
		return;
	}
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	failure_keys(c, username, 1, keys, sizeof(keys));
	snprintf(window, sizeof(window), "%d", auth_cfg->login_window);
	params[0] = keys;
	params[1] = window;
	r = PQexecPrepared(pg, "auth_failures", 2, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	if (atoi(PQgetvalue(r, 0, 0)) >= auth_cfg->login_max_failures) {
		int wait = atoi(PQgetvalue(r, 0, 1));

		snprintf(retry, sizeof(retry), "%d", wait > 0 ? wait : 1);
		PQclear(r);
		http_resp_header(&c->resp, "Retry-After", "%s", retry);
		http_problem(&c->resp, 429, "too many failed logins: wait before trying again", NULL);
		log_msg(LOG_WARN, "login throttled for user %s", auth_username_ok(username) ? username : "(invalid)");
		return;
	}
	PQclear(r);

	params[0] = username;
	r = PQexecPrepared(pg, "auth_user", 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	if (hashing_enter(c) != 0) {
		PQclear(r);
		return;
	}
	if (PQntuples(r) == 1) {
		ok = auth_verify_password(PQgetvalue(r, 0, 1), password);
		user_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		is_admin = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
		disabled = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
	} else {
		(void)auth_verify_password(dummy_hash, password);	/* same cost */
	}
	hashing_leave();
	PQclear(r);

	if (!ok || disabled) {
		params[0] = keys;
		params[1] = window;
		PQclear(PQexecPrepared(pg, "auth_fail", 2, params, NULL, NULL, 0));
		login_refused(c);
		return;
	}
	/* Only the user's count: one good login must not clear an address. */
	failure_keys(c, username, 0, keys, sizeof(keys));
	params[0] = keys;
	PQclear(PQexecPrepared(pg, "auth_forget_failures", 1, params, NULL, NULL, 0));

	randombytes_buf(token, sizeof(token));
	token_hash(token, hash);
	snprintf(expires, sizeof(expires), "%d", auth_cfg->session_absolute);
	{
		char uid[24];
		const char *addr = http_param(&c->req, "REMOTE_ADDR");

		snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
		params[0] = (const char *)hash;
		lens[0] = 32;
		formats[0] = 1;
		params[1] = uid;
		params[2] = expires;
		params[3] = addr ? addr : "";
		r = PQexecPrepared(pg, "auth_session_new", 4, params, lens, formats, 0);
	}
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		sodium_memzero(token, sizeof(token));
		return;
	}
	PQclear(r);
	sodium_bin2base64(tokentext, sizeof(tokentext), token, sizeof(token),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	auth_csrf_for(token, csrf);
	sodium_memzero(token, sizeof(token));
	http_resp_header(&c->resp, "Set-Cookie",
			 AUTH_COOKIE "=%s; Path=/; Max-Age=%d; Secure; HttpOnly; SameSite=Strict",
			 tokentext, auth_cfg->session_absolute);
	sodium_memzero(tokentext, sizeof(tokentext));
	c->user_id = user_id;
	o = json_object_new_object();
	u = json_object_new_object();
	json_object_object_add(u, "id", json_object_new_int64(user_id));
	json_object_object_add(u, "username", json_object_new_string(username));
	json_object_object_add(u, "is_admin", json_object_new_boolean(is_admin));
	json_object_object_add(o, "user", u);
	json_object_object_add(o, "csrf_token", json_object_new_string(csrf));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
	sodium_memzero(csrf, sizeof(csrf));
}

void auth_logout(struct ctx *c)
{
	const char *params[1] = { (const char *)c->session_hash };
	int lens[1] = { 32 }, formats[1] = { 1 };
	PGconn *pg = ctx_db(c, 0);
	PGresult *r;

	if (pg == NULL)
		return;
	r = PQexecPrepared(pg, "auth_session_end", 1, params, lens, formats, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	PQclear(r);
	cache_forget(c->session_hash);
	http_resp_header(&c->resp, "Set-Cookie",
			 AUTH_COOKIE "=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict");
	c->resp.status = 204;
}

void auth_me(struct ctx *c)
{
	char csrf[44];
	struct json_object *o = json_object_new_object(), *u = json_object_new_object();

	json_object_object_add(u, "id", json_object_new_int64(c->user_id));
	json_object_object_add(u, "username", json_object_new_string(c->username));
	json_object_object_add(u, "is_admin", json_object_new_boolean(c->is_admin));
	json_object_object_add(o, "user", u);
	/* A page reloaded in the browser gets its token back from here. */
	auth_csrf_for(c->session_token, csrf);
	json_object_object_add(o, "csrf_token", json_object_new_string(csrf));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

int auth_cleanup(struct pool *p, const struct config *cfg)
{
	struct pool_conn *c;
	struct pool_error err;
	char sql[512];
	PGresult *r;
	int n = 0;

	if (pool_checkout(p, 1.0, "auth.cleanup", &c, &err) != 0)
		return -1;
	snprintf(sql, sizeof(sql),
		 "WITH s AS (DELETE FROM sessions WHERE expires_at < now() "
		 "OR last_seen_at < now() - interval '%d seconds' RETURNING 1), "
		 "f AS (DELETE FROM login_failures WHERE window_start < now() - interval '%d seconds' RETURNING 1) "
		 "SELECT (SELECT count(*) FROM s) + (SELECT count(*) FROM f)",
		 cfg->session_idle, cfg->login_window);
	r = PQexec(c->pg, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		n = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	pool_release(p, c);
	return n;
}
