/*
 * auth: passwords and logins. Argon2id hashing and the password policy,
 * the /auth/ routes (login, logout, me), the login policy (see "logins"
 * below: attempts counted in PostgreSQL before a password is checked, per
 * account, address and known device; a bounded number of threads and of
 * hashing slots per process), the create-admin helper and the periodic
 * cleanup of sessions and counters. Sessions are sessions.c's.
 */
#include "resources/auth.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "db/pool.h"
#include "http/context.h"
#include "resources/audit.h"
#include "resources/sessions.h"

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

/*
 * The login policy (OWASP's: slow guessing down per account, never lock
 * the owner out). Counted in PostgreSQL, shared by every process
 * (migration 0010, login_gate):
 * - an account (from every address and unknown device) has
 *   LOGIN_MAX_FAILURES free failures per window; past them it takes one
 *   attempt per slow-down interval, 1 s doubling per further failure up to
 *   LOGIN_DELAY_MAX, and answers 429 with Retry-After in between;
 * - an address (IPv6: its /64) may fail ADDR_FAILURE_FACTOR times
 *   LOGIN_MAX_FAILURES in the window; good logins are never counted;
 * - a known device (a browser that logged in to this account before: a
 *   signed cookie) has a budget of its own, DEVICE_FAILURE_FACTOR times
 *   LOGIN_MAX_FAILURES, and is not slowed by the account's or address's
 *   counts, so someone hammering an account does not lock its owner out.
 * In the process: at most login_threads worker threads inside logins, at
 * most half of them for one address, and MAX_HASHING Argon2id at once.
 */

/* Argon2id verifications at once per process (64 MiB each). */
#define MAX_HASHING 2
#define HASHING_WAIT 10.0
/*
 * Worker threads that may be inside a login at once per process (waiting
 * for a hashing slot or hashing): a quarter of WORKERS, between 1 and
 * LOGIN_THREADS_MAX, and for one address at most half of them (at least
 * one). Beyond, logins get 503 at once, so a flood of logins never takes
 * the threads that serve everyone else, and one address cannot fill them.
 */
#define LOGIN_THREADS_MAX 4
#define ADDR_FAILURE_FACTOR 4
#define DEVICE_FAILURE_FACTOR 2
#define LOGIN_DELAY_MAX 60

static const struct pool_stmt statements[] = {
	/*
	 * One login attempt, counted before its password is checked; returns
	 * the verdict, the seconds to wait when refused, and the user's row.
	 * $1 username, $2 the known device's user id, $3 its key (or NULL),
	 * $4 address key, $5 window seconds, $6 free account failures,
	 * $7 address limit, $8 device limit, $9 longest slow-down in seconds.
	 */
	{ "auth_attempt",
	  "SELECT g.verdict, g.retry, u.id, u.password_hash, u.is_admin, u.disabled "
	  "FROM login_gate($1::text, $2::int8, $3::text, $4::text, $5::int, $6::int, $7::int, "
	  "  $8::int, $9::int) g LEFT JOIN users u ON u.username = $1::text" },
	/* A good password: $1 verdict, $2 user id, $3 username, $4 device key, $5 address key. */
	{ "auth_login_done", "SELECT login_succeeded($1::text, $2::int8, $3::text, $4::text, $5::text)" },
};

static const struct route routes[] = {
	{ "POST", "/auth/login", auth_login, "auth.login", AUTH_NONE, false, 0 },
	{ "POST", "/auth/logout", auth_logout, "auth.logout", AUTH_USER, false, 0 },
	{ "GET", "/auth/me", auth_me, "auth.me", AUTH_USER, true, 0 },
};

const struct resource auth_resource = {
	"auth", routes, RESOURCE_ARRAY_LEN(routes), statements, RESOURCE_ARRAY_LEN(statements),
};

/*
 * Bounds concurrent Argon2 work and the threads logins occupy. hashing_mu
 * guards hashing (threads verifying now, <= MAX_HASHING) and in_login_addr
 * (the address key of each thread inside auth_login past the gate, "" for
 * a free place; at most login_threads places, at most per_addr of one key).
 */
static pthread_mutex_t hashing_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hashing_cv = PTHREAD_COND_INITIALIZER;
static int hashing;
static char in_login_addr[LOGIN_THREADS_MAX][AUTH_ADDR_KEY_LEN];
static int login_threads = 1, per_addr = 1;

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
	per_addr = login_threads / 2 > 1 ? login_threads / 2 : 1;
	auth_generate_password(pw, sizeof(pw));
	if (auth_hash_password(pw, dummy_hash) != 0)
		die("auth: cannot compute the dummy hash");
	sodium_memzero(pw, sizeof(pw));
}

int auth_addr_key(const char *addr, char out[AUTH_ADDR_KEY_LEN])
{
	unsigned char a6[16];
	struct in_addr a4;
	char text[INET6_ADDRSTRLEN];

	if (addr && inet_pton(AF_INET, addr, &a4) == 1) {
		inet_ntop(AF_INET, &a4, text, sizeof(text));
	} else if (addr && inet_pton(AF_INET6, addr, a6) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		if (memcmp(a6, mapped, sizeof(mapped)) == 0) {
			memcpy(&a4, a6 + 12, 4);
			inet_ntop(AF_INET, &a4, text, sizeof(text));
		} else {
			memset(a6 + 8, 0, 8);	/* one /64 is one client */
			inet_ntop(AF_INET6, a6, text, sizeof(text));
			snprintf(out, AUTH_ADDR_KEY_LEN, "addr:%s/64", text);
			return 0;
		}
	} else {
		snprintf(out, AUTH_ADDR_KEY_LEN, "addr:unknown");
		return -1;
	}
	snprintf(out, AUTH_ADDR_KEY_LEN, "addr:%s", text);
	return 0;
}

/* 503 with Retry-After: too many logins in this process right now. */
static void logins_busy(struct ctx *c)
{
	http_resp_header(&c->resp, "Retry-After", "2");
	http_problem(&c->resp, 503, "too many logins at once: try again shortly", NULL);
}

/*
 * Enter the login gate without waiting: at most login_threads worker
 * threads inside a login at once, at most per_addr of them for addr.
 * Returns the place taken, or -1 with 503 set when there is none.
 */
static int login_enter(struct ctx *c, const char *addr)
{
	int i, place = -1, same = 0;

	pthread_mutex_lock(&hashing_mu);
	for (i = 0; i < login_threads; i++) {
		if (in_login_addr[i][0] == '\0')
			place = place < 0 ? i : place;
		else if (strcmp(in_login_addr[i], addr) == 0)
			same++;
	}
	if (same >= per_addr)
		place = -1;
	if (place >= 0)
		snprintf(in_login_addr[place], AUTH_ADDR_KEY_LEN, "%s", addr);
	pthread_mutex_unlock(&hashing_mu);
	if (place < 0)
		logins_busy(c);
	return place;
}

static void login_leave(int place)
{
	pthread_mutex_lock(&hashing_mu);
	in_login_addr[place][0] = '\0';
	pthread_mutex_unlock(&hashing_mu);
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

/* One login attempt: who it names, where it comes from, what the gate said. */
struct attempt {
	const char *username;
	char addr[AUTH_ADDR_KEY_LEN];		/* login_failures key of the address */
	const char *addr_text;			/* REMOTE_ADDR, for the audit trail */
	int64_t device_user;			/* the device cookie's user, 0: none */
	char device[SESSIONS_DEVICE_KEY_LEN + 4];	/* "dev:<id>", "" when none */
	char verdict[16];			/* login_gate's */
	int retry;
	int found;				/* the user exists */
	int64_t user_id;
	int is_admin, disabled;
	char hash[AUTH_HASH_LEN];
};

/*
 * Pass the attempt through login_gate (counted before any password is
 * checked) and read the user, on a connection held only for this
 * statement. -1 with the response set on a fault.
 */
static int attempt_count(struct ctx *c, struct attempt *a)
{
	char window[16], free_max[16], addr_max[16], device_max[16], delay_max[16], duser[24];
	const char *params[9];
	PGconn *pg;
	PGresult *r;
	int rc = -1;

	if ((pg = ctx_db(c, 0)) == NULL)
		return -1;
	snprintf(window, sizeof(window), "%d", auth_cfg->login_window);
	snprintf(free_max, sizeof(free_max), "%d", auth_cfg->login_max_failures);
	snprintf(addr_max, sizeof(addr_max), "%d", auth_cfg->login_max_failures * ADDR_FAILURE_FACTOR);
	snprintf(device_max, sizeof(device_max), "%d",
		 auth_cfg->login_max_failures * DEVICE_FAILURE_FACTOR);
	snprintf(delay_max, sizeof(delay_max), "%d", LOGIN_DELAY_MAX);
	snprintf(duser, sizeof(duser), "%lld", (long long)a->device_user);
	params[0] = a->username;
	params[1] = duser;
	params[2] = a->device[0] ? a->device : NULL;
	params[3] = a->addr;
	params[4] = window;
	params[5] = free_max;
	params[6] = addr_max;
	params[7] = device_max;
	params[8] = delay_max;
	r = pool_exec_prepared(pg, "auth_attempt", 9, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		ctx_db_error(c, r);
		goto out;
	}
	snprintf(a->verdict, sizeof(a->verdict), "%s", PQgetvalue(r, 0, 0));
	a->retry = atoi(PQgetvalue(r, 0, 1));
	a->found = !PQgetisnull(r, 0, 2);
	if (a->found) {
		a->user_id = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		snprintf(a->hash, sizeof(a->hash), "%s", PQgetvalue(r, 0, 3));
		a->is_admin = strcmp(PQgetvalue(r, 0, 4), "t") == 0;
		a->disabled = strcmp(PQgetvalue(r, 0, 5), "t") == 0;
	}
	rc = 0;
out:
	PQclear(r);
	ctx_db_release(c);	/* never held while waiting to hash */
	return rc;
}

/*
 * The attempt's entry in the audit trail (action login or login_failed,
 * with the client's address): bookkeeping on its own statement, so a
 * failure to write it is logged and the login's answer stands.
 */
static void attempt_audit(struct ctx *c, const struct attempt *a, const char *action)
{
	struct json_object *extra = json_object_new_object(), *addr = json_object_new_object();
	PGresult *failed = NULL;
	PGconn *pg;

	json_object_object_add(addr, "new", json_object_new_string(a->addr_text));
	json_object_object_add(extra, "address", addr);
	if ((pg = ctx_db(c, 0)) != NULL &&
	    audit_record(pg, a->found ? a->user_id : 0,
			 auth_username_ok(a->username) ? a->username : "(invalid)", AUDIT_USER,
			 a->found ? a->user_id : 0, action, NULL, NULL, extra, &failed) != 0) {
		log_msg(LOG_WARN, "auth: the %s entry of the audit trail was not written: %s", action,
			PQresultErrorField(failed, PG_DIAG_SQLSTATE) ? PQresultErrorField(failed, PG_DIAG_SQLSTATE) : "?");
		PQclear(failed);
	}
	json_object_put(extra);
}

static void login_refused(struct ctx *c)
{
	http_problem(&c->resp, 401, "wrong username or password", NULL);
}

/*
 * After a good password: take the attempt's count back, note the login,
 * open a session, remember the device, audit, answer 200.
 */
static void login_succeeded(struct ctx *c, const struct attempt *a)
{
	char csrf[SESSIONS_CSRF_LEN], uid[24];
	const char *params[5] = { a->verdict, uid, a->username, a->device[0] ? a->device : NULL,
				  a->addr };
	struct json_object *o, *u;
	PGconn *pg;

	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	snprintf(uid, sizeof(uid), "%lld", (long long)a->user_id);
	/* Bookkeeping only: the login stands even if this fails. */
	PQclear(pool_exec_prepared(pg, "auth_login_done", 5, params, NULL, NULL, 0));
	/* The session's cookie first: clients that read one Set-Cookie read it. */
	if (sessions_open(c, pg, a->user_id, csrf) != 0 ||
	    sessions_device_remember(c, a->user_id) != 0)
		return;
	c->user_id = a->user_id;
	attempt_audit(c, a, "login");
	o = json_object_new_object();
	u = json_object_new_object();
	json_object_object_add(u, "id", json_object_new_int64(a->user_id));
	json_object_object_add(u, "username", json_object_new_string(a->username));
	json_object_object_add(u, "is_admin", json_object_new_boolean(a->is_admin));
	json_object_object_add(o, "user", u);
	json_object_object_add(o, "csrf_token", json_object_new_string(csrf));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
	sodium_memzero(csrf, sizeof(csrf));
}

/* 429 with Retry-After: the gate refused the attempt (verdict addr or account). */
static void login_throttled(struct ctx *c, const struct attempt *a)
{
	http_resp_header(&c->resp, "Retry-After", "%d", a->retry > 0 ? a->retry : 1);
	if (strcmp(a->verdict, "addr") == 0)
		http_problem(&c->resp, 429,
			     "too many failed logins from this address: wait before trying again", NULL);
	else
		http_problem(&c->resp, 429,
			     "too many failed logins for this account: wait before trying again", NULL);
	log_msg(LOG_WARN, "login throttled (%s) for user %s", a->verdict,
		auth_username_ok(a->username) ? a->username : "(invalid)");
}

/* Read the request's known-device cookie into a. -1 with the response set. */
static int attempt_device(struct ctx *c, struct attempt *a)
{
	char id[SESSIONS_DEVICE_KEY_LEN];
	int rc = sessions_device(c, &a->device_user, id);

	if (rc < 0)
		return -1;
	if (rc == 1)
		snprintf(a->device, sizeof(a->device), "dev:%s", id);
	return 0;
}

/*
 * POST /auth/login. In order: the body, the gate (a bounded number of
 * threads per process and per address), the attempt counted in
 * PostgreSQL (so concurrent attempts cannot all pass a limit read before
 * any was recorded), 429 when the policy says wait, a hashing slot,
 * Argon2id with no connection held, and on success the count taken back,
 * a session and a known-device cookie; every checked attempt is audited.
 */
void auth_login(struct ctx *c)
{
	struct json_object *body = ctx_json_body(c, 0), *u = NULL, *p = NULL;
	const char *password;
	struct attempt a;
	int ok = 0, place;

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
	memset(&a, 0, sizeof(a));
	a.username = json_object_get_string(u);
	password = json_object_get_string(p);
	if (strlen(a.username) > 64 || strlen(password) > 1024) {
		login_refused(c);
		return;
	}
	a.addr_text = http_param(&c->req, "REMOTE_ADDR");
	if (a.addr_text == NULL || strlen(a.addr_text) > 64)
		a.addr_text = "";
	auth_addr_key(a.addr_text, a.addr);
	if ((place = login_enter(c, a.addr)) < 0)
		return;
	if (attempt_device(c, &a) != 0 || attempt_count(c, &a) != 0)
		goto out;
	if (strcmp(a.verdict, "ok") != 0 && strcmp(a.verdict, "device") != 0) {
		login_throttled(c, &a);
		goto out;
	}
	if (hashing_enter() != 0) {
		logins_busy(c);
		goto out;
	}
	if (a.found)
		ok = auth_verify_password(a.hash, password) && !a.disabled;
	else
		(void)auth_verify_password(dummy_hash, password);	/* same cost */
	hashing_leave();
	if (ok) {
		login_succeeded(c, &a);
	} else {
		attempt_audit(c, &a, "login_failed");
		login_refused(c);	/* the attempt stays counted */
	}
out:
	sodium_memzero(a.hash, sizeof(a.hash));
	login_leave(place);
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
