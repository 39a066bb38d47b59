/*
 * sessions: admission of every request (cookie, role, Origin, CSRF token),
 * opening and ending sessions, the cookies' signing key, and the session
 * cache: a fixed table of slots under one mutex holding what PostgreSQL
 * said about a token hash for SESSION_CACHE_SECONDS; nothing blocks while
 * the mutex is held.
 *
 * Revocation is immediate (the promise of sessions.h). An entry is trusted
 * for SESSION_CACHE_SECONDS counted from the moment its query was sent,
 * not from its answer: an entry that predates a revocation's commit was
 * sent before that commit, so it expires at most SESSION_CACHE_SECONDS
 * after it. A revocation (logout, rights or password changed, sessions
 * ended) is answered only once SESSION_CACHE_SECONDS have passed since its
 * commit (sessions_revoked): by then no process, this one or another,
 * holds an entry read before the commit, and every lookup that starts
 * afterwards reads the revoked state. Nothing is sent between processes,
 * so no Redis fault and no lost message can break it.
 */
#include "resources/sessions.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "base/workers.h"
#include "db/pool.h"
#include "http/context.h"

/*
 * How long a process trusts what it read about a session; from
 * SESSION_REFRESH_SECONDS on, the first request to see an entry hands it
 * to the refresher thread, which reads it again, while that request and
 * the others go on being served from it. Under steady load an entry is
 * refreshed before it expires, once, and no request waits for PostgreSQL
 * to check its session (which cost a cached read the database's latency
 * whenever its session's entry ran out: 100 ms and more when the database
 * is saturated, issue #25); only a session idle for SESSION_CACHE_SECONDS
 * is read on a request's path.
 */
#define SESSION_CACHE_SECONDS 0.5
#define SESSION_REFRESH_SECONDS 0.25
/* Sessions waiting for the refresher; beyond, the entry is read on a request's path at expiry. */
#define REFRESH_QUEUE 256
/*
 * The longest a request waits for another request's reading of the same
 * session (an entry past its trust, being read again) before it reads it
 * itself: without it, every request of a busy session read it at once
 * whenever its entry ran out, each taking a database place (issue #25).
 */
#define SESSION_READ_WAIT 1.0
/* Beyond the trust window, what a revocation also waits (clock granularity). */
#define REVOCATION_MARGIN 0.02
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
	/* A logout, with its entry in the audit trail: $1 token hash, $2 username, $3 address. */
	{ "sessions_end",
	  "WITH d AS (DELETE FROM sessions WHERE token_hash = $1 RETURNING user_id) "
	  "INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes) "
	  "SELECT d.user_id, $2, 'user', d.user_id, 'logout', "
	  "  jsonb_build_object('address', jsonb_build_object('new', $3::text)) FROM d" },
	/*
	 * The cookies' key: the first process to ask stores its random one,
	 * every process reads the stored one ($1 a fresh random key).
	 */
	{ "sessions_key",
	  "WITH i AS (INSERT INTO service_keys (name, key) VALUES ('cookies', $1) "
	  "  ON CONFLICT (name) DO NOTHING RETURNING key) "
	  "SELECT key FROM i UNION ALL SELECT key FROM service_keys WHERE name = 'cookies'" },
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
	double reading_since;	/* monotonic: when a request began to read it again; 0: none */
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
/* Signalled (under session_cache_mu) whenever an entry is stored or a reading gives up. */
static pthread_cond_t session_read_cv;
static pthread_once_t session_read_once = PTHREAD_ONCE_INIT;

static void session_read_cv_init(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&session_read_cv, &ca);
	pthread_condattr_destroy(&ca);
}

static const struct config *sessions_cfg;

static int refresh_enqueue(const unsigned char hash[32]);
static void refresh_start(struct pool *p);

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
		return 2;	/* served; this caller has it read again */
	}
	return 1;
}

/*
 * Copy a cached entry for hash that may be served into out; 1 if found.
 * 0: the caller reads the session (and then stores or abandons it). When
 * another request is reading this session already, wait for its answer
 * first (at most SESSION_READ_WAIT, the thread's place lent): an entry
 * stored meanwhile is served like any other (its trust counts from when
 * its query was sent, so revocation holds).
 */
static int session_cache_get(const unsigned char hash[32], struct session_entry *out)
{
	struct session_entry *e = session_cache_slot(hash);
	double now = now_mono(), give_up = now + SESSION_READ_WAIT;
	int hit = 0, lent = 0, ours;

	pthread_once(&session_read_once, session_read_cv_init);
	pthread_mutex_lock(&session_cache_mu);
	for (;;) {
		ours = e->used && memcmp(e->hash, hash, 32) == 0;
		if (ours && (hit = sessions_cache_serves(now - e->fetched, &e->refreshing)) != 0) {
			*out = *e;
			if (hit == 2 && refresh_enqueue(hash) != 0)
				e->refreshing = 0;	/* no room: a later request tries again */
			hit = 1;
			break;
		}
		if (!ours)
			break;		/* not cached: read it */
		/* Expired, and nobody (still) reading it: this caller reads it. */
		if (e->reading_since == 0 ||
		    now - e->reading_since >= SESSION_READ_WAIT || now >= give_up) {
			e->reading_since = now;
			break;
		}
		if (!lent) {
			workers_block_begin();
			lent = 1;
		}
		{
			struct timespec ts;

			ts.tv_sec = (time_t)give_up;
			ts.tv_nsec = (long)((give_up - (double)ts.tv_sec) * 1e9);
			pthread_cond_timedwait(&session_read_cv, &session_cache_mu, &ts);
		}
		now = now_mono();
	}
	pthread_mutex_unlock(&session_cache_mu);
	if (lent)
		workers_block_end();
	return hit;
}

/* A reading of hash failed: the requests waiting for it read it themselves. */
static void session_cache_abandon(const unsigned char hash[32])
{
	struct session_entry *e = session_cache_slot(hash);

	pthread_mutex_lock(&session_cache_mu);
	if (e->used && memcmp(e->hash, hash, 32) == 0)
		e->reading_since = 0;
	pthread_cond_broadcast(&session_read_cv);
	pthread_mutex_unlock(&session_cache_mu);
}

/*
 * Store what a lookup read, unless the slot already holds a newer read of
 * the same token (two lookups that overlapped: the older never replaces
 * the newer, which may have seen a revocation the older did not).
 */
static void session_cache_put(const struct session_entry *in)
{
	struct session_entry *e = session_cache_slot(in->hash);

	pthread_once(&session_read_once, session_read_cv_init);
	pthread_mutex_lock(&session_cache_mu);
	if (!(e->used && memcmp(e->hash, in->hash, 32) == 0 && e->fetched > in->fetched)) {
		*e = *in;
		e->used = 1;
		e->reading_since = 0;
	}
	pthread_cond_broadcast(&session_read_cv);
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

static void sessions_forget_user(int64_t user_id)
{
	size_t i;

	pthread_mutex_lock(&session_cache_mu);
	for (i = 0; i < SESSION_CACHE_SLOTS; i++)
		if (session_cache[i].used && session_cache[i].valid &&
		    session_cache[i].user_id == user_id)
			session_cache[i].used = 0;
	pthread_mutex_unlock(&session_cache_mu);
}

void sessions_revoked(struct ctx *c, int64_t user_id)
{
	struct timespec ts;
	double wait = SESSION_CACHE_SECONDS + REVOCATION_MARGIN;

	if (user_id > 0)
		sessions_forget_user(user_id);	/* this process: at once */
	ctx_db_release(c);			/* no connection held while waiting */
	ts.tv_sec = (time_t)wait;
	ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- the cookies' key ----------------------------------------------------------- */

/*
 * cookie_key_mu guards cookie_key and cookie_key_loaded; once loaded the
 * key never changes for the life of the process. Nothing blocks while it
 * is held: the query runs before it is taken.
 */
static pthread_mutex_t cookie_key_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char cookie_key[32];
static int cookie_key_loaded;

/* The cookies' key into key: read once from PostgreSQL. -1 with 503 set. */
static int cookie_key_get(struct ctx *c, unsigned char key[32])
{
	unsigned char fresh[32];
	const char *params[1] = { (const char *)fresh };
	int lens[1] = { 32 }, formats[1] = { 1 }, loaded;
	PGconn *pg;
	PGresult *r;

	pthread_mutex_lock(&cookie_key_mu);
	loaded = cookie_key_loaded;
	if (loaded)
		memcpy(key, cookie_key, 32);
	pthread_mutex_unlock(&cookie_key_mu);
	if (loaded)
		return 0;
	if ((pg = ctx_db(c, 0)) == NULL)
		return -1;
	if (PQtransactionStatus(pg) != PQTRANS_IDLE) {
		/* A key stored by a transaction that rolls back would differ from the one kept. */
		log_msg(LOG_ERROR, "sessions: the cookies' key was first needed inside a transaction");
		http_problem(&c->resp, 500, "an internal error occurred; it has been logged", NULL);
		return -1;
	}
	randombytes_buf(fresh, sizeof(fresh));
	r = pool_exec_prepared(pg, "sessions_key", 1, params, lens, formats, 1);
	sodium_memzero(fresh, sizeof(fresh));
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
	    PQgetlength(r, 0, 0) != 32) {
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			log_msg(LOG_ERROR, "sessions: the service_keys row 'cookies' is not 32 bytes");
		ctx_db_error(c, PQresultStatus(r) == PGRES_TUPLES_OK ? NULL : r);
		PQclear(r);
		return -1;
	}
	pthread_mutex_lock(&cookie_key_mu);
	memcpy(cookie_key, PQgetvalue(r, 0, 0), 32);
	cookie_key_loaded = 1;
	memcpy(key, cookie_key, 32);
	pthread_mutex_unlock(&cookie_key_mu);
	PQclear(r);
	return 0;
}

/* The 16-byte MAC of what (a label) and data under the cookies' key. */
static void cookie_mac(const unsigned char key[32], const char *what, const unsigned char *data,
		       size_t len, unsigned char mac[SESSIONS_MAC_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, key, 32, SESSIONS_MAC_LEN);
	crypto_generichash_update(&st, (const unsigned char *)what, strlen(what) + 1);
	crypto_generichash_update(&st, data, len);
	crypto_generichash_final(&st, mac, SESSIONS_MAC_LEN);
}

/*
 * Read cookie name as base64url of len bytes of data then their MAC under
 * label what, into out. 1 when present and genuine; 0 when absent,
 * malformed or forged; -1 with 503 set when the key cannot be read.
 */
static int signed_cookie_get(struct ctx *c, const char *name, const char *what,
			     unsigned char *out, size_t len)
{
	unsigned char raw[64], key[32], mac[SESSIONS_MAC_LEN];
	char text[96];
	size_t got;
	int ok;

	if (len + SESSIONS_MAC_LEN > sizeof(raw) ||
	    http_cookie_get(http_param(&c->req, "HTTP_COOKIE"), name, text, sizeof(text)) != 0)
		return 0;
	if (sodium_base642bin(raw, sizeof(raw), text, strlen(text), NULL, &got, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    got != len + SESSIONS_MAC_LEN)
		return 0;
	if (cookie_key_get(c, key) != 0)
		return -1;
	cookie_mac(key, what, raw, len, mac);
	sodium_memzero(key, sizeof(key));
	ok = sodium_memcmp(mac, raw + len, SESSIONS_MAC_LEN) == 0;
	if (ok)
		memcpy(out, raw, len);
	sodium_memzero(raw, sizeof(raw));
	return ok;
}

/*
 * Set cookie name to base64url(data || MAC) for max_age seconds (the
 * __Host- rules: Secure, Path=/, no Domain). 0, or -1 with 503 set.
 */
static int signed_cookie_set(struct ctx *c, const char *name, const char *what,
			     const unsigned char *data, size_t len, int max_age)
{
	unsigned char raw[64], key[32];
	char text[96];

	if (len + SESSIONS_MAC_LEN > sizeof(raw))
		die("signed_cookie_set: %zu bytes do not fit", len);
	if (cookie_key_get(c, key) != 0)
		return -1;
	memcpy(raw, data, len);
	cookie_mac(key, what, data, len, raw + len);
	sodium_memzero(key, sizeof(key));
	sodium_bin2base64(text, sizeof(text), raw, len + SESSIONS_MAC_LEN,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	http_resp_header(&c->resp, "Set-Cookie",
			 "%s=%s; Path=/; Max-Age=%d; Secure; HttpOnly; SameSite=Strict",
			 name, text, max_age);
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(text, sizeof(text));
	return 0;
}

/* ---- known devices ---------------------------------------------------------- */

/* A device cookie: 16 random bytes naming the browser, then the user id (big-endian). */
#define DEVICE_ID_LEN 16
#define DEVICE_DATA_LEN (DEVICE_ID_LEN + 8)
#define DEVICE_LABEL "paintstudio device"

static void put_be64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

int sessions_device(struct ctx *c, int64_t *user_id, char id[SESSIONS_DEVICE_KEY_LEN])
{
	unsigned char data[DEVICE_DATA_LEN];
	int rc;

	*user_id = 0;
	rc = signed_cookie_get(c, SESSIONS_DEVICE_COOKIE, DEVICE_LABEL, data, sizeof(data));
	if (rc != 1)
		return rc;
	*user_id = (int64_t)get_be64(data + DEVICE_ID_LEN);
	sodium_bin2hex(id, SESSIONS_DEVICE_KEY_LEN, data, DEVICE_ID_LEN);
	return 1;
}

int sessions_device_remember(struct ctx *c, int64_t user_id)
{
	unsigned char data[DEVICE_DATA_LEN];
	char id[SESSIONS_DEVICE_KEY_LEN];
	int64_t known;

	if (sessions_device(c, &known, id) == 1 && known == user_id)
		return 0;	/* already known for this user */
	randombytes_buf(data, DEVICE_ID_LEN);
	put_be64(data + DEVICE_ID_LEN, (uint64_t)user_id);
	return signed_cookie_set(c, SESSIONS_DEVICE_COOKIE, DEVICE_LABEL, data, sizeof(data),
				 SESSIONS_DEVICE_MAX_AGE);
}

/* ---- admission ---------------------------------------------------------------- */

#define SESSION_LABEL "paintstudio session"

/*
 * The session token of the request's cookie (32 raw bytes): 1 when it
 * carries a genuine one, 0 when none (absent, malformed, forged: refused
 * without a query), -1 with 503 set when the key cannot be read.
 */
static int cookie_token(struct ctx *c, unsigned char token[32])
{
	return signed_cookie_get(c, SESSIONS_COOKIE, SESSION_LABEL, token, 32);
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

/*
 * Read the session of hash on pg into out (its trust counted from when the
 * query was sent) and cache it. The failed result when the query failed
 * (caller PQclears), else NULL.
 */
/*
 * Read hash's session on pg into out and the cache: NULL, or the failed
 * result. touch: record the use (never on a standby, which takes no writes).
 */
static PGresult *session_read(PGconn *pg, const unsigned char hash[32], struct session_entry *out,
			      int touch)
{
	char idle[16];
	const char *params[2];
	int lens[2] = { 32, 0 }, formats[2] = { 1, 0 };
	PGresult *r;
	double sent;

	snprintf(idle, sizeof(idle), "%d", sessions_cfg->session_idle);
	params[0] = (const char *)hash;
	params[1] = idle;
	sent = now_mono();	/* the entry's trust counts from here (see the top) */
	r = pool_exec_prepared(pg, "sessions_find", 2, params, lens, formats, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return r;
	memset(out, 0, sizeof(*out));
	memcpy(out->hash, hash, 32);
	out->fetched = sent;
	if (PQntuples(r) == 1) {
		out->valid = 1;
		out->user_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		snprintf(out->username, sizeof(out->username), "%s", PQgetvalue(r, 0, 1));
		out->is_admin = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
		if (touch && strcmp(PQgetvalue(r, 0, 3), "t") == 0)
			PQclear(pool_exec_prepared(pg, "sessions_touch", 1, params, lens, formats, 0));
	}
	PQclear(r);
	session_cache_put(out);
	return NULL;
}

/* Look the session up: the cache, else PostgreSQL. -1 with 503 set on a fault. */
static int find_session(struct ctx *c, const unsigned char hash[32], struct session_entry *out)
{
	PGconn *pg;
	PGresult *r;

	refresh_start(c->app->pool);
	if (session_cache_get(hash, out))
		return 0;
	if ((pg = ctx_db(c, 0)) == NULL) {
		session_cache_abandon(hash);
		return -1;
	}
	/* (the primary's, or while it cannot be reached a synchronous standby's: context.c) */
	if ((r = session_read(pg, hash, out, c->db_replica < 0)) != NULL) {
		session_cache_abandon(hash);
		ctx_db_error(c, r);
		PQclear(r);
		return -1;
	}
	return 0;
}

/* ---- the refresher: entries read again before they expire ---------------- */

/*
 * refresh_mu guards the queue of token hashes and the thread's state. The
 * thread starts at the first session look-up (refresh_start: it needs the
 * primary's pool) and stops at sessions_stop, before the pool closes. An
 * entry handed to it stays served (its refreshing flag set) until the
 * new read replaces it; a read that fails clears the flag, so a later
 * request hands it over again, and at expiry a request reads it itself.
 */
static pthread_mutex_t refresh_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t refresh_cv = PTHREAD_COND_INITIALIZER;
static unsigned char refresh_q[REFRESH_QUEUE][32];
static int refresh_head, refresh_n;
static int refresh_running, refresh_stopping;
static atomic_int refresh_tried;	/* refresh_start ran: the fast path's check */
static struct pool *refresh_pool;
static pthread_t refresh_thread;

/* Hand hash to the refresher: 0, or -1 when it is not running or its queue is full. */
static int refresh_enqueue(const unsigned char hash[32])
{
	int rc = -1;

	pthread_mutex_lock(&refresh_mu);
	if (refresh_running && !refresh_stopping && refresh_n < REFRESH_QUEUE) {
		memcpy(refresh_q[(refresh_head + refresh_n) % REFRESH_QUEUE], hash, 32);
		refresh_n++;
		pthread_cond_signal(&refresh_cv);
		rc = 0;
	}
	pthread_mutex_unlock(&refresh_mu);
	return rc;
}

/* The refresher's read failed: a later request may hand the entry over again. */
static void refresh_failed(const unsigned char hash[32])
{
	struct session_entry *e = session_cache_slot(hash);

	pthread_mutex_lock(&session_cache_mu);
	if (e->used && memcmp(e->hash, hash, 32) == 0)
		e->refreshing = 0;
	pthread_mutex_unlock(&session_cache_mu);
}

/* Read hash's session again on a connection of its own (the gate is for requests). */
static void refresh_one(const unsigned char hash[32])
{
	struct session_entry fresh;
	struct pool_conn *conn;
	struct pool_error err;
	PGresult *r;

	if (pool_checkout(refresh_pool, SESSION_CACHE_SECONDS, "sessions.refresh", &conn, &err) != 0) {
		refresh_failed(hash);
		return;
	}
	if ((r = session_read(pool_conn_pg(conn), hash, &fresh, 1)) != NULL) {
		log_msg(LOG_WARN, "sessions: a refresh failed: %s",
			PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE)
								: "no SQLSTATE");
		PQclear(r);
		refresh_failed(hash);
	}
	pool_release(refresh_pool, conn);
}

static void *refresh_main(void *arg)
{
	unsigned char hash[32];

	(void)arg;
	pthread_mutex_lock(&refresh_mu);
	for (;;) {
		while (refresh_n == 0 && !refresh_stopping)
			pthread_cond_wait(&refresh_cv, &refresh_mu);
		if (refresh_stopping)
			break;
		memcpy(hash, refresh_q[refresh_head], 32);
		refresh_head = (refresh_head + 1) % REFRESH_QUEUE;
		refresh_n--;
		pthread_mutex_unlock(&refresh_mu);
		refresh_one(hash);
		pthread_mutex_lock(&refresh_mu);
	}
	pthread_mutex_unlock(&refresh_mu);
	return NULL;
}

static void refresh_start(struct pool *p)
{
	if (atomic_load_explicit(&refresh_tried, memory_order_acquire))
		return;
	pthread_mutex_lock(&refresh_mu);
	atomic_store_explicit(&refresh_tried, 1, memory_order_release);
	if (!refresh_running && !refresh_stopping && p != NULL) {
		refresh_pool = p;
		if (pthread_create(&refresh_thread, NULL, refresh_main, NULL) == 0)
			refresh_running = 1;
		else
			log_msg(LOG_WARN, "sessions: no refresher thread: sessions are read on requests' paths");
	}
	pthread_mutex_unlock(&refresh_mu);
}

void sessions_stop(void)
{
	int running;

	pthread_mutex_lock(&refresh_mu);
	refresh_stopping = 1;
	running = refresh_running;
	pthread_cond_signal(&refresh_cv);
	pthread_mutex_unlock(&refresh_mu);
	if (running)
		pthread_join(refresh_thread, NULL);
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
	switch (cookie_token(c, token)) {
	case 1:
		break;
	case 0:
		http_problem(&c->resp, 401, "log in first: no session", NULL);
		goto out;
	default:
		goto out;	/* 503 set */
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
	char expires[16], uid[24];
	unsigned char token[32], hash[32];
	const char *params[4], *addr = http_param(&c->req, "REMOTE_ADDR");
	int lens[4] = { 32, 0, 0, 0 }, formats[4] = { 1, 0, 0, 0 }, rc = -1;
	PGresult *r;

	randombytes_buf(token, sizeof(token));
	token_hash(token, hash);
	snprintf(expires, sizeof(expires), "%d", sessions_cfg->session_absolute);
	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	params[0] = (const char *)hash;
	params[1] = uid;
	params[2] = expires;
	params[3] = addr ? addr : "";
	r = pool_exec_prepared(pg, "sessions_new", 4, params, lens, formats, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		goto out;
	}
	if (signed_cookie_set(c, SESSIONS_COOKIE, SESSION_LABEL, token, sizeof(token),
			      sessions_cfg->session_absolute) != 0)
		goto out;
	sessions_csrf_for(token, csrf);
	rc = 0;
out:
	PQclear(r);
	sodium_memzero(token, sizeof(token));
	return rc;
}

int sessions_end(struct ctx *c)
{
	const char *addr = http_param(&c->req, "REMOTE_ADDR");
	const char *params[3] = { (const char *)c->session_hash, c->username, addr ? addr : "" };
	int lens[3] = { 32, 0, 0 }, formats[3] = { 1, 0, 0 };
	PGconn *pg = ctx_db(c, 0);
	PGresult *r;

	if (pg == NULL)
		return -1;
	r = pool_exec_prepared(pg, "sessions_end", 3, params, lens, formats, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	session_cache_forget(c->session_hash);
	sessions_revoked(c, 0);
	http_resp_header(&c->resp, "Set-Cookie",
			 SESSIONS_COOKIE "=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict");
	return 0;
}
