/*
 * cache_conn: the cache module's connections to Redis and its trust.
 * Each thread has its own hiredis connection (contexts are not
 * thread-safe); any failure drops it, withdraws trust and backs every
 * thread off. Trust (piece T in cache.h) is granted by a drain
 * (cache_outbox.c) and read here by every lookup.
 */
#define _GNU_SOURCE
#include "cache/cache_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000

/*
 * Store a value only while the reader's lease is still in place. The lease
 * stays until it expires or a write deletes it, so a reader that missed
 * just before the store cannot take a second lease and read again.
 */
static const char store_script[] =
	"if redis.call('GET', KEYS[2]) == ARGV[1] then "
	"  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) "
	"  return 1 "
	"end "
	"return 0";

/* Set once by cache_conn_setup before threads start; read-only afterwards. */
static const struct config *cfg;
static pthread_key_t conn_key;
static int wal_on;		/* replicas configured: invalidations record WAL positions */

/*
 * Trust (piece T). trusted_until_ms (monotonic ms) is when this process
 * stops serving from Redis; 0 after any failure. error_seq counts failures:
 * a drain grants trust only if it did not move since the drain's t0.
 * state_mu guards trusted_ident and serialises granting; ident_seq moves
 * whenever trusted_ident changes (read by connections without the lock to
 * know when to compare again). Nothing blocks while state_mu is held.
 */
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static char trusted_ident[CACHE_IDENT_LEN];
static atomic_uint ident_seq = 1;
static atomic_llong trusted_until_ms;
static atomic_ullong error_seq = 1;

/* Back-off: while now < down_until_ms every thread bypasses Redis. */
static atomic_llong down_until_ms;
static atomic_int backoff_ms = BACKOFF_MIN_MS;
static atomic_int is_down;

struct cache_counters cache_n;

static void conn_free(void *p)
{
	struct cache_conn *t = p;

	if (t->rc)
		redisFree(t->rc);
	free(t);
}

void cache_conn_setup(const struct config *c)
{
	cfg = c;
	wal_on = c->replica_urls && c->replica_urls[0];
	if (pthread_key_create(&conn_key, conn_free) != 0)
		die("cache: pthread_key_create failed");
}

int cache_conn_wal_on(void)
{
	return wal_on;
}

const struct config *cache_conn_config(void)
{
	return cfg;
}

int cache_conn_enabled(void)
{
	return cfg != NULL && redis_url_given(&cfg->redis);
}

long long cache_now_ms(void)
{
	return (long long)(now_mono() * 1000.0);
}

void cache_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- connections ---------------------------------------------------------- */

/* Redis failed for this thread: drop the connection, withdraw trust, back off. */
void cache_conn_failed(struct cache_conn *t, const char *reason)
{
	int b = atomic_load(&backoff_ms);
	char what[128];

	/* reason may live in the context freed below: keep a copy. */
	snprintf(what, sizeof(what), "%s", reason ? reason : "");
	atomic_fetch_add(&cache_n.errors, 1);
	cache_master_suspect();
	if (t && t->rc) {
		redisFree(t->rc);
		t->rc = NULL;
	}
	/* First the sequence (a drain in flight cannot grant), then the lease. */
	atomic_fetch_add(&error_seq, 1);
	atomic_store(&trusted_until_ms, 0);
	atomic_store(&down_until_ms, cache_now_ms() + b);
	atomic_store(&backoff_ms, b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2);
	if (atomic_exchange(&is_down, 1) == 0) {
		struct log_line l;

		log_begin(&l, LOG_WARN, "redis unavailable: serving from PostgreSQL");
		log_str(&l, "detail", what);
		log_int(&l, "retry_ms", b);
		log_end(&l);
	}
}

/* Time this thread spent on Redis, for the request's figures. */
static _Thread_local double redis_time;

double cache_take_time(void)
{
	double t = redis_time;

	redis_time = 0;
	return t;
}

static void note_success(void)
{
	if (atomic_load(&is_down) && atomic_exchange(&is_down, 0) == 1) {
		atomic_store(&backoff_ms, BACKOFF_MIN_MS);
		atomic_store(&down_until_ms, 0);
		log_msg(LOG_INFO, "redis reachable again: cache in use once the outbox is drained");
	}
}

/*
 * Read n pipelined replies into r[0..n). 0 when every one arrived and none
 * is an error reply; else -1 after marking Redis failed (t->rc is gone,
 * r[] freed). Every error reply counts: READONLY, OOM and MISCONF mean the
 * invalidations may not be landing.
 */
int cache_reply_bad(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_ERROR && r->str != NULL &&
	       (strncmp(r->str, "WRONGTYPE", 9) == 0 || strstr(r->str, "not an integer") != NULL ||
		strstr(r->str, "overflow") != NULL);
}

int cache_conn_replies(struct cache_conn *t, redisReply **r, int n)
{
	return cache_conn_replies_values(t, r, n, 0);
}

int cache_conn_replies_values(struct cache_conn *t, redisReply **r, int n, unsigned values)
{
	double t0 = now_mono();
	int i, bad = -1;

	for (i = 0; i < n; i++)
		r[i] = NULL;
	for (i = 0; i < n; i++) {
		void *reply = NULL;

		if (redisGetReply(t->rc, &reply) != REDIS_OK || reply == NULL) {
			redis_time += now_mono() - t0;
			cache_conn_failed(t, t->rc->errstr[0] ? t->rc->errstr : "no reply");
			goto fail;
		}
		r[i] = reply;
		if (r[i]->type == REDIS_REPLY_ERROR && bad < 0 &&
		    !(i < 32 && (values & (1u << i)) && cache_reply_bad(r[i])))
			bad = i;
	}
	redis_time += now_mono() - t0;
	if (bad >= 0) {
		cache_conn_failed(t, r[bad]->str);
		goto fail;
	}
	note_success();
	return 0;
fail:
	for (i = 0; i < n; i++)
		if (r[i])
			freeReplyObject(r[i]);
	return -1;
}

/* One command's reply, or NULL after marking Redis failed (error replies too). */
redisReply *cache_conn_command(struct cache_conn *t, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;
	int rc;

	va_start(ap, fmt);
	rc = redisvAppendCommand(t->rc, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK) {
		cache_conn_failed(t, "cannot format a command");
		return NULL;
	}
	return cache_conn_replies(t, &r, 1) == 0 ? r : NULL;
}

redisReply *cache_conn_read_value(struct cache_conn *t, const char *key)
{
	redisReply *r;

	cache_conn_append_read_value(t, key);
	return cache_conn_replies_values(t, &r, 1, 1u) == 0 ? r : NULL;
}

void cache_conn_append_read_value(struct cache_conn *t, const char *key)
{
	redisAppendCommand(t->rc, "GETRANGE %s 0 %d", key, CACHE_VALUE_MAX);
}

/* When the last bad value was logged: at most one line a minute (per process). */
static atomic_llong bad_value_log_ms;

void cache_bad_value(const char *what, const char *key)
{
	unsigned long long n = atomic_fetch_add(&cache_n.bad_values, 1) + 1;
	struct log_line l;

	if (!log_allowed(&bad_value_log_ms, 60.0))
		return;
	log_begin(&l, LOG_WARN, "cache: a value read from Redis is not one this service writes: "
		  "treated as a miss (read from PostgreSQL)");
	log_str(&l, "what", what);
	log_str(&l, "key", key);
	log_int(&l, "bad_values_total", (long long)n);
	log_end(&l);
}

/* Ask the server who it is (t->ident); -1 after marking failed. */
static int read_identity(struct cache_conn *t, char ident[CACHE_IDENT_LEN])
{
	redisReply *r[2];
	int rc;

	redisAppendCommand(t->rc, "INFO server");
	redisAppendCommand(t->rc, "INFO replication");
	if (cache_conn_replies(t, r, 2) != 0)
		return -1;
	rc = r[0]->type == REDIS_REPLY_STRING && r[1]->type == REDIS_REPLY_STRING
		? cache_identity_parse(r[0]->str, r[1]->str, ident) : -1;
	freeReplyObject(r[0]);
	freeReplyObject(r[1]);
	if (rc != 0)
		cache_conn_failed(t, "not a writable master (INFO: no run_id, no master_replid, or role is not master)");
	return rc;
}

/* SCRIPT LOAD script into sha (41 bytes); -1 after marking failed. */
static int load_script(struct cache_conn *t, const char *script, char sha[41])
{
	redisReply *r = cache_conn_command(t, "SCRIPT LOAD %s", script);

	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_STRING || r->len != 40 || strspn(r->str, "0123456789abcdef") != 40) {
		freeReplyObject(r);
		cache_conn_failed(t, "SCRIPT LOAD did not answer a SHA1");
		return -1;
	}
	memcpy(sha, r->str, 41);
	freeReplyObject(r);
	return 0;
}

/* One command on a fresh connection: 0, or -1 with the reason in err. */
static int setup_command(redisContext *rc, char *err, size_t errlen, const char *what,
			 const char *fmt, ...)
{
	redisReply *r;
	va_list ap;
	int rc_ok;

	va_start(ap, fmt);
	r = redisvCommand(rc, fmt, ap);
	va_end(ap);
	rc_ok = r != NULL && r->type != REDIS_REPLY_ERROR;
	if (!rc_ok)
		snprintf(err, errlen, "%s: %s", what,
			 r ? r->str : rc->err ? rc->errstr : "no answer");
	if (r)
		freeReplyObject(r);
	return rc_ok ? 0 : -1;
}

redisContext *cache_redis_connect(const struct redis_url *u, int timeout_ms,
				  char *err, size_t errlen)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	redisContext *rc;

	rc = u->path ? redisConnectUnixWithTimeout(u->path, tv)
		     : redisConnectWithTimeout(u->host, u->port, tv);
	if (rc == NULL || rc->err) {
		snprintf(err, errlen, "%s", rc ? rc->errstr : "out of memory");
		goto fail;
	}
	if (redisSetTimeout(rc, tv) != REDIS_OK) {
		snprintf(err, errlen, "cannot set the command timeout");
		goto fail;
	}
	if (u->password &&
	    (u->username ? setup_command(rc, err, errlen, "AUTH", "AUTH %s %s", u->username, u->password)
			 : setup_command(rc, err, errlen, "AUTH", "AUTH %s", u->password)))
		goto fail;
	if (u->db && setup_command(rc, err, errlen, "SELECT", "SELECT %d", u->db))
		goto fail;
	return rc;
fail:
	if (rc)
		redisFree(rc);
	return NULL;
}

static int connect_thread(struct cache_conn *t)
{
	char why[200], host[CACHE_HOST_MAX];
	struct redis_url u;
	redisReply *r;

	t->rc = cache_master_url(cfg, &u, host, why, sizeof(why)) == 0
		? cache_redis_connect(&u, cfg->cache_timeout_ms, why, sizeof(why)) : NULL;
	if (t->rc == NULL) {
		cache_conn_failed(t, why);
		return -1;
	}
	/* A name per process: operators (and the fault tests) can tell them apart. */
	if ((r = cache_conn_command(t, "CLIENT SETNAME paintstudio-%d", (int)getpid())) == NULL)
		return -1;
	freeReplyObject(r);
	if (load_script(t, store_script, t->store_sha) != 0)
		return -1;
	if (read_identity(t, t->ident) != 0)
		return -1;
	cache_master_ok();
	cache_key_prefix(t->ident, t->prefix);
	t->last_gen_len = 0;	/* a generation read in another key space means nothing here */
	t->conn_no++;
	t->seen_seq = 0;	/* compare with the trusted identity on first use */
	return 0;
}

/* Whether t's server is the one this process's trust was granted for. */
static int conn_matches_trust(struct cache_conn *t)
{
	if (t->seen_seq != atomic_load(&ident_seq)) {
		pthread_mutex_lock(&state_mu);
		t->matches = strcmp(t->ident, trusted_ident) == 0;
		t->seen_seq = atomic_load(&ident_seq);
		pthread_mutex_unlock(&state_mu);
	}
	return t->matches;
}

/*
 * This thread's usable connection, or NULL to bypass Redis (disabled,
 * backing off, failed to connect, or, with need_trust, not trusted now or
 * connected to another server than the trusted one).
 */
struct cache_conn *cache_conn_get(int need_trust)
{
	struct cache_conn *t;
	long long until, now = 0;

	if (!cache_conn_enabled())
		return NULL;
	until = atomic_load(&down_until_ms);
	if (until && (now = cache_now_ms()) < until)
		return NULL;
	if (need_trust) {
		if (now == 0)
			now = cache_now_ms();
		if (now >= atomic_load(&trusted_until_ms))
			return NULL;
	}
	t = pthread_getspecific(conn_key);
	if (t == NULL) {
		t = xcalloc(1, sizeof(*t));
		pthread_setspecific(conn_key, t);
	}
	if (t->rc == NULL && connect_thread(t) != 0)
		return NULL;
	if (need_trust && !conn_matches_trust(t)) {
		/* Opened to a server we no longer trust: open a new one next time. */
		redisFree(t->rc);
		t->rc = NULL;
		return NULL;
	}
	return t;
}

/*
 * Check t's server: still the identity t connected to, a master, and it
 * accepts a write (INCRBY 0 fails under READONLY, OOM, MISCONF, a paused
 * or sleeping server). -1 after marking failed.
 */
int cache_conn_probe(struct cache_conn *t)
{
	redisReply *r[4] = { NULL, NULL, NULL, NULL };
	char ident[CACHE_IDENT_LEN];
	int rc = 0, i;
	const char *why = "Redis is no longer the master it was when connected";
	char key[CACHE_PREFIX_LEN + 4];	/* a key's name, for the log */

	redisAppendCommand(t->rc, "INFO server");
	redisAppendCommand(t->rc, "INFO replication");
	redisAppendCommand(t->rc, "INCRBY %sgen 0", t->prefix);
	if (wal_on)	/* (another type there would fail every invalidation's ZADD) */
		redisAppendCommand(t->rc, "ZSCORE %swal w", t->prefix);
	if (cache_conn_replies_values(t, r, 3 + wal_on, 3u << 2) != 0)
		return -1;
	if (r[0]->type != REDIS_REPLY_STRING || r[1]->type != REDIS_REPLY_STRING ||
	    cache_identity_parse(r[0]->str, r[1]->str, ident) != 0 || strcmp(ident, t->ident) != 0) {
		rc = -1;
	} else if (r[2]->type != REDIS_REPLY_INTEGER || r[2]->integer < 0 ||
		   r[2]->integer >= CACHE_GEN_LIMIT) {
		/*
		 * The generation is not one INCR made of this key space's
		 * (not an integer, below 0, near its limit): invalidations of
		 * pages cannot be counted on to land, and resetting it could
		 * take it back to a generation pages were stored under. The
		 * key space stays out of use.
		 */
		snprintf(key, sizeof(key), "%sgen", t->prefix);
		cache_bad_value("generation", key);
		why = "the page generation in Redis is not a bounded decimal number: "
		      "the cache stays off until Redis restarts (a new key space) or an operator "
		      "sets it above every generation used before";
		rc = -1;
	} else if (wal_on && r[3]->type == REDIS_REPLY_ERROR) {
		snprintf(key, sizeof(key), "%swal", t->prefix);
		cache_bad_value("wal position", key);
		why = "the WAL positions in Redis are not a sorted set: the cache stays off "
		      "until Redis restarts (a new key space)";
		rc = -1;
	}
	for (i = 0; i < 4; i++)
		if (r[i])
			freeReplyObject(r[i]);
	if (rc != 0)
		cache_conn_failed(t, why);
	return rc;
}


/* ---- trust -------------------------------------------------------------------- */

unsigned long long cache_trust_seq(void)
{
	return atomic_load(&error_seq);
}

void cache_trust_grant(const char ident[CACHE_IDENT_LEN], unsigned long long seq, long long t0)
{
	pthread_mutex_lock(&state_mu);
	/* A failure since t0 leaves error_seq ahead: no trust from this drain. */
	if (atomic_load(&error_seq) == seq) {
		if (strcmp(trusted_ident, ident) != 0) {
			memcpy(trusted_ident, ident, CACHE_IDENT_LEN);
			atomic_fetch_add(&ident_seq, 1);
		}
		if (atomic_load(&trusted_until_ms) < t0 + CACHE_TRUST_MS)
			atomic_store(&trusted_until_ms, t0 + CACHE_TRUST_MS);
	}
	pthread_mutex_unlock(&state_mu);
}

void cache_trust_withdraw(void)
{
	atomic_store(&trusted_until_ms, 0);
}

int cache_trust_up(void)
{
	long long until = atomic_load(&down_until_ms), now = cache_now_ms();

	return !(until && now < until) && now < atomic_load(&trusted_until_ms);
}
