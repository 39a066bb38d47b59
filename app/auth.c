/*
 * auth: passwords and logins. Argon2id hashing and the password policy,
 * the /auth/ routes (login, logout, me), login throttling (attempts
 * counted in PostgreSQL before a password is checked, a bounded number of
 * threads and of hashing slots per process), the create-admin helper and
 * the periodic cleanup of sessions and counters. Sessions are sessions.c's.
 */
#include "auth.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "context.h"
#include "log.h"
#include "sessions.h"
#include "strbuf.h"
#include "util.h"

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

const char *auth_password_problem(const char *username, const char *password)
{
	size_t i, chars = 0, len = strlen(password);

	for (i = 0; i < len; i++)	/* characters: bytes that start one in UTF-8 */
		chars += ((unsigned char)password[i] & 0xC0) != 0x80;
	if (chars < AUTH_PASSWORD_MIN_CHARS)
		return "the password must have at least 12 characters";
	if (len > AUTH_PASSWORD_MAX_BYTES)
		return "the password must have at most 256 bytes";
	if (username && strcasecmp(password, username) == 0)
		return "the password must not be the username";
	return NULL;
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
	if (auth_password_problem(username, password) != NULL) {
		snprintf(err, errlen, "%s", auth_password_problem(username, password));
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

/* ---- logins ---------------------------------------------------------------- */

/* Argon2id verifications at once per process (64 MiB each). */
#define MAX_HASHING 2
#define HASHING_WAIT 10.0
/*
 * Worker threads that may be inside a login at once per process (waiting
 * for a hashing slot, hashing, or slowed down): a quarter of WORKERS,
 * between 1 and LOGIN_THREADS_MAX. Beyond, logins get 503 at once, so a
 * flood of logins never takes the threads that serve everyone else.
 */
#define LOGIN_THREADS_MAX 4
/* An address may fail this many times the per-(address, user) limit. */
#define ADDR_FAILURE_FACTOR 4
/* The per-user slow-down: 250 ms, doubling per further failure, up to 8 s. */
#define USER_DELAY_BASE 0.25
#define USER_DELAY_MAX 8.0

/* One counter of login_failures, bumped in a fixed window of $4 seconds. */
#define BUMP_WINDOW \
	"failures = CASE WHEN f.window_start > now() - make_interval(secs => $4::int) " \
	"  THEN least(f.failures + 1, 1000000) ELSE 1 END, " \
	"window_start = CASE WHEN f.window_start > now() - make_interval(secs => $4::int) " \
	"  THEN f.window_start ELSE now() END"
#define COUNT_ATTEMPT(key) \
	"INSERT INTO login_failures AS f (key, failures, window_start) VALUES (" key ", 1, now()) " \
	"ON CONFLICT (key) DO UPDATE SET " BUMP_WINDOW " RETURNING failures, window_start"

static const struct pool_stmt statements[] = {
	/*
	 * One login attempt, counted before its password is checked: bumps the
	 * (address, user) and address counters, and the user's counter only
	 * when neither of those refuses the attempt; returns the three counts,
	 * the seconds left in the refusing windows and the user's row. Row
	 * locks make concurrent attempts count one after another.
	 * $1 pair key, $2 address key, $3 user key, $4 window seconds,
	 * $5 pair limit, $6 address limit, $7 username.
	 */
	{ "auth_attempt",
	  "WITH pair AS (" COUNT_ATTEMPT("$1::text") "), addr AS (" COUNT_ATTEMPT("$2::text") "), "
	  "usr AS (INSERT INTO login_failures AS f (key, failures, window_start) "
	  "  SELECT $3::text, 1, now() FROM pair, addr WHERE pair.failures <= $5::int AND addr.failures <= $6::int "
	  "  ON CONFLICT (key) DO UPDATE SET " BUMP_WINDOW " RETURNING failures) "
	  "SELECT pair.failures, addr.failures, coalesce((SELECT failures FROM usr), 0), "
	  "  ceil(extract(epoch FROM pair.window_start + make_interval(secs => $4::int) - now()))::int, "
	  "  ceil(extract(epoch FROM addr.window_start + make_interval(secs => $4::int) - now()))::int, "
	  "  u.id, u.password_hash, u.is_admin, u.disabled "
	  "FROM pair CROSS JOIN addr LEFT JOIN users u ON u.username = $7::text" },
	/*
	 * A good password: forget the (address, user) and user counts ($1, a
	 * text[]) and note the login on the user ($2). last_login_at is not
	 * a column the session-ending trigger watches.
	 */
	{ "auth_login_done",
	  "WITH f AS (DELETE FROM login_failures WHERE key = ANY($1::text[])) "
	  "UPDATE users SET last_login_at = now() WHERE id = $2::int8" },
};

static const struct route routes[] = {
	{ "POST", "/auth/login", auth_login, "auth.login", AUTH_NONE, false },
	{ "POST", "/auth/logout", auth_logout, "auth.logout", AUTH_USER, false },
	{ "GET", "/auth/me", auth_me, "auth.me", AUTH_USER, true },
};

const struct resource auth_resource = {
	"auth", routes, RESOURCE_ARRAY_LEN(routes), statements, RESOURCE_ARRAY_LEN(statements),
};

/*
 * Bounds concurrent Argon2 work and the threads logins occupy. hashing_mu
 * guards hashing (threads verifying now, <= MAX_HASHING), in_login
 * (threads inside auth_login past the gate, <= login_threads) and delayed
 * (threads sleeping in the per-user slow-down, <= login_threads / 2).
 */
static pthread_mutex_t hashing_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hashing_cv = PTHREAD_COND_INITIALIZER;
static int hashing, in_login, delayed;
static int login_threads = 1;

/* Verified against when the user does not exist: same cost, same answer. */
static char dummy_hash[AUTH_HASH_LEN];
static const struct config *auth_cfg;

void auth_setup(const struct config *cfg)
{
	char pw[32];

	auth_cfg = cfg;
	sessions_setup(cfg);
	login_threads = cfg->workers / 4;
	if (login_threads < 1)
		login_threads = 1;
	if (login_threads > LOGIN_THREADS_MAX)
		login_threads = LOGIN_THREADS_MAX;
	auth_generate_password(pw, sizeof(pw));
	if (auth_hash_password(pw, dummy_hash) != 0)
		die("auth: cannot compute the dummy hash");
	sodium_memzero(pw, sizeof(pw));
}

/* 503 with Retry-After: too many logins in this process right now. */
static void logins_busy(struct ctx *c)
{
	http_resp_header(&c->resp, "Retry-After", "2");
	http_problem(&c->resp, 503, "too many logins at once: try again shortly", NULL);
}

/*
 * Enter the login gate without waiting: at most login_threads worker
 * threads are inside a login at once. -1 with 503 set when it is full.
 */
static int login_enter(struct ctx *c)
{
	int ok;

	pthread_mutex_lock(&hashing_mu);
	ok = in_login < login_threads;
	if (ok)
		in_login++;
	pthread_mutex_unlock(&hashing_mu);
	if (!ok)
		logins_busy(c);
	return ok ? 0 : -1;
}

static void login_leave(void)
{
	pthread_mutex_lock(&hashing_mu);
	assert(in_login > 0);
	in_login--;
	pthread_mutex_unlock(&hashing_mu);
}

/*
 * The per-user slow-down: sleep seconds (no lock, no connection held),
 * if fewer than half the login threads are already sleeping; else -1
 * with 503 set, so sleeping logins never fill the gate.
 */
static int login_delay(struct ctx *c, double seconds)
{
	struct timespec ts;
	int ok;

	pthread_mutex_lock(&hashing_mu);
	ok = delayed < (login_threads + 1) / 2;
	if (ok)
		delayed++;
	pthread_mutex_unlock(&hashing_mu);
	if (!ok) {
		logins_busy(c);
		return -1;
	}
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	pthread_mutex_lock(&hashing_mu);
	delayed--;
	pthread_mutex_unlock(&hashing_mu);
	return 0;
}

/* Wait for a hashing slot (bounded); -1 when none came (no response set). */
static int hashing_enter(void)
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
	return ok ? 0 : -1;
}

static void hashing_leave(void)
{
	pthread_mutex_lock(&hashing_mu);
	hashing--;
	pthread_cond_signal(&hashing_cv);
	pthread_mutex_unlock(&hashing_mu);
}

/* 503 with Retry-After: every hashing slot stayed busy. */
static void hashing_busy(struct ctx *c)
{
	http_resp_header(&c->resp, "Retry-After", "2");
	http_problem(&c->resp, 503, "too many password checks at once: try again shortly", NULL);
}

int auth_hash_bounded(struct ctx *c, const char *password, char out[AUTH_HASH_LEN])
{
	int rc;

	assert(c->db == NULL);	/* never hash while holding a connection */
	if (hashing_enter() != 0) {
		hashing_busy(c);
		return -1;
	}
	rc = auth_hash_password(password, out);
	hashing_leave();
	if (rc != 0)
		http_problem(&c->resp, 500, "cannot hash the password (out of memory)", NULL);
	return rc;
}

int auth_verify_bounded(struct ctx *c, const char *hash, const char *password)
{
	int ok;

	assert(c->db == NULL);
	if (hashing_enter() != 0) {
		hashing_busy(c);
		return -1;
	}
	ok = auth_verify_password(hash, password);
	hashing_leave();
	return ok;
}

/* The throttling keys of a login attempt (login_failures.key). */
struct login_keys {
	char pair[128];		/* "pair:<address>/<username>" */
	char addr[64];		/* "addr:<address>" */
	char user[80];		/* "user:<username>" */
};

static void login_keys_make(struct ctx *c, const char *username, struct login_keys *k)
{
	const char *addr = http_param(&c->req, "REMOTE_ADDR");

	if (addr == NULL || strlen(addr) > 50)
		addr = "";
	/* username <= 64 bytes and addr <= 50 (checked): nothing is cut. */
	snprintf(k->pair, sizeof(k->pair), "pair:%s/%s", addr, username);
	snprintf(k->addr, sizeof(k->addr), "addr:%s", addr);
	snprintf(k->user, sizeof(k->user), "user:%s", username);
}

/* s as an element of a PostgreSQL text[] literal, appended to sb. */
static void array_elem(struct strbuf *sb, const char *s)
{
	strbuf_putc(sb, sb->len > 1 ? ',' : '{');
	strbuf_putc(sb, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			strbuf_putc(sb, '\\');
		strbuf_putc(sb, *s);
	}
	strbuf_putc(sb, '"');
}

/* What counting an attempt found (see the auth_attempt statement). */
struct attempt {
	int pair, addr, user;		/* counts in their windows, this attempt included */
	int retry;			/* seconds until a refusing window ends */
	int found;			/* the user exists */
	int64_t user_id;
	int is_admin, disabled;
	char hash[AUTH_HASH_LEN];
};

/*
 * Count the attempt (before any password is checked) and read the user,
 * on a connection held only for this statement. -1 with the response set
 * on a fault.
 */
static int attempt_count(struct ctx *c, const char *username, const struct login_keys *k,
			 struct attempt *a)
{
	char window[16], pair_max[16], addr_max[16];
	const char *params[7];
	PGconn *pg;
	PGresult *r;
	int rc = -1;

	memset(a, 0, sizeof(*a));
	if ((pg = ctx_db(c, 0)) == NULL)
		return -1;
	snprintf(window, sizeof(window), "%d", auth_cfg->login_window);
	snprintf(pair_max, sizeof(pair_max), "%d", auth_cfg->login_max_failures);
	snprintf(addr_max, sizeof(addr_max), "%d", auth_cfg->login_max_failures * ADDR_FAILURE_FACTOR);
	params[0] = k->pair;
	params[1] = k->addr;
	params[2] = k->user;
	params[3] = window;
	params[4] = pair_max;
	params[5] = addr_max;
	params[6] = username;
	r = PQexecPrepared(pg, "auth_attempt", 7, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		ctx_db_error(c, r);
		goto out;
	}
	a->pair = atoi(PQgetvalue(r, 0, 0));
	a->addr = atoi(PQgetvalue(r, 0, 1));
	a->user = atoi(PQgetvalue(r, 0, 2));
	if (a->pair > auth_cfg->login_max_failures)
		a->retry = atoi(PQgetvalue(r, 0, 3));
	if (a->addr > auth_cfg->login_max_failures * ADDR_FAILURE_FACTOR &&
	    atoi(PQgetvalue(r, 0, 4)) > a->retry)
		a->retry = atoi(PQgetvalue(r, 0, 4));
	a->found = !PQgetisnull(r, 0, 5);
	if (a->found) {
		a->user_id = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
		snprintf(a->hash, sizeof(a->hash), "%s", PQgetvalue(r, 0, 6));
		a->is_admin = strcmp(PQgetvalue(r, 0, 7), "t") == 0;
		a->disabled = strcmp(PQgetvalue(r, 0, 8), "t") == 0;
	}
	rc = 0;
out:
	PQclear(r);
	ctx_db_release(c);	/* never held while waiting to hash */
	return rc;
}

/*
 * The per-user slow-down for this attempt, in seconds: none until the
 * user has LOGIN_MAX_FAILURES failures in the window from all addresses,
 * none for an address's first attempt at this user (the real user, from
 * a fresh address, is never slowed), else USER_DELAY_BASE doubling per
 * further failure up to USER_DELAY_MAX.
 */
static double attempt_delay(const struct attempt *a)
{
	int over = a->user - auth_cfg->login_max_failures;
	double d = USER_DELAY_BASE;

	if (over <= 0 || a->pair <= 1)
		return 0.0;
	while (--over > 0 && d < USER_DELAY_MAX)
		d *= 2;
	return d < USER_DELAY_MAX ? d : USER_DELAY_MAX;
}

static void login_refused(struct ctx *c)
{
	http_problem(&c->resp, 401, "wrong username or password", NULL);
}

/*
 * After a good password: forget its counts, note the login, open a
 * session, answer 200.
 */
static void login_succeeded(struct ctx *c, const char *username, const struct login_keys *k,
			    const struct attempt *a)
{
	char csrf[SESSIONS_CSRF_LEN], uid[24];
	const char *params[2];
	struct json_object *o, *u;
	struct strbuf keys;
	PGconn *pg;

	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	/* The address's own count stays: one good login must not clear it. */
	strbuf_init(&keys);
	array_elem(&keys, k->pair);
	array_elem(&keys, k->user);
	strbuf_putc(&keys, '}');
	snprintf(uid, sizeof(uid), "%lld", (long long)a->user_id);
	params[0] = keys.buf;
	params[1] = uid;
	/* Bookkeeping only: the login stands even if this fails. */
	PQclear(PQexecPrepared(pg, "auth_login_done", 2, params, NULL, NULL, 0));
	strbuf_free(&keys);
	if (sessions_open(c, pg, a->user_id, csrf) != 0)
		return;
	c->user_id = a->user_id;
	o = json_object_new_object();
	u = json_object_new_object();
	json_object_object_add(u, "id", json_object_new_int64(a->user_id));
	json_object_object_add(u, "username", json_object_new_string(username));
	json_object_object_add(u, "is_admin", json_object_new_boolean(a->is_admin));
	json_object_object_add(o, "user", u);
	json_object_object_add(o, "csrf_token", json_object_new_string(csrf));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
	sodium_memzero(csrf, sizeof(csrf));
}

/*
 * POST /auth/login. In order: the gate (a bounded number of threads per
 * process), the attempt counted in PostgreSQL (so concurrent attempts
 * cannot all pass a limit read before any was recorded), the hard limits
 * (429), the per-user slow-down, a hashing slot, Argon2id with no
 * connection held, and on success the counts cleared and a session made.
 */
void auth_login(struct ctx *c)
{
	struct json_object *body = ctx_json_body(c, 0), *u = NULL, *p = NULL;
	const char *username, *password;
	struct login_keys k;
	struct attempt a;
	double delay;
	int ok = 0;

	if (body == NULL)
		return;
	if (!sessions_origin_allowed(c)) {
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
	if (login_enter(c) != 0)
		return;
	login_keys_make(c, username, &k);
	if (attempt_count(c, username, &k, &a) != 0)
		goto out;
	if (a.pair > auth_cfg->login_max_failures ||
	    a.addr > auth_cfg->login_max_failures * ADDR_FAILURE_FACTOR) {
		http_resp_header(&c->resp, "Retry-After", "%d", a.retry > 0 ? a.retry : 1);
		http_problem(&c->resp, 429, "too many failed logins: wait before trying again", NULL);
		log_msg(LOG_WARN, "login throttled for user %s",
			auth_username_ok(username) ? username : "(invalid)");
		goto out;
	}
	delay = attempt_delay(&a);
	if (delay > 0 && login_delay(c, delay) != 0)
		goto out;
	if (hashing_enter() != 0) {
		logins_busy(c);
		goto out;
	}
	if (a.found)
		ok = auth_verify_password(a.hash, password) && !a.disabled;
	else
		(void)auth_verify_password(dummy_hash, password);	/* same cost */
	hashing_leave();
	if (ok)
		login_succeeded(c, username, &k, &a);
	else
		login_refused(c);	/* the attempt stays counted */
out:
	sodium_memzero(a.hash, sizeof(a.hash));
	login_leave();
}

void auth_logout(struct ctx *c)
{
	if (sessions_end(c) == 0)
		c->resp.status = 204;
}

void auth_me(struct ctx *c)
{
	char csrf[SESSIONS_CSRF_LEN];
	struct json_object *o = json_object_new_object(), *u = json_object_new_object();

	json_object_object_add(u, "id", json_object_new_int64(c->user_id));
	json_object_object_add(u, "username", json_object_new_string(c->username));
	json_object_object_add(u, "is_admin", json_object_new_boolean(c->is_admin));
	json_object_object_add(o, "user", u);
	/* A page reloaded in the browser gets its token back from here. */
	sessions_csrf_for(c->session_token, csrf);
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
	r = PQexec(pool_conn_pg(c), sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		n = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	pool_release(p, c);
	return n;
}
