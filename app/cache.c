#define _GNU_SOURCE
#include "cache.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "pool.h"
#include "util.h"

#define KEY_PREFIX "ps:v1:"
#define NEGATIVE_TTL 5		/* seconds an absent paint stays cached */
#define PAGE_TTL 60		/* seconds a list or stats page lives */
#define LEASE_MS 3000		/* longer than a read takes; shorter than patience */
#define LEASE_WAIT_STEPS 5	/* a loser polls this many times... */
#define LEASE_WAIT_STEP_MS 10	/* ...this far apart for the winner's value */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define DRAIN_BATCH 500

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

/* The generation and the page under it, in one round trip. */
static const char page_script[] =
	"local g = redis.call('GET', KEYS[1]) or '0' "
	"return {g, redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])}";

/* Set once by cache_setup before threads start; read-only afterwards. */
static const struct config *cfg;
static struct pool *drain_pool;
static pthread_key_t conn_key;

/* A thread's own connection (hiredis contexts are not thread-safe). */
struct tconn {
	redisContext *rc;
};

/*
 * Whether Redis may be trusted: when drained_seq == error_seq, a drain of
 * the outbox completed against the instance trusted_run_id after the last
 * error anyone saw. Every cache call reads the two counters (atomics, no
 * lock); errors only ever increment error_seq. state_mu serialises the
 * writers that compare-and-set (a drain finishing, a connection checking
 * its server's run_id) and guards trusted_run_id; nothing blocks while it
 * is held.
 */
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_ullong error_seq = 1, drained_seq;
static char trusted_run_id[48];

/* Back-off: while now < down_until_ms every thread bypasses Redis. */
static atomic_llong down_until_ms;
static atomic_int backoff_ms = BACKOFF_MIN_MS;
static atomic_int is_down;

static atomic_ullong n_hits, n_misses, n_bypasses, n_stores, n_refused, n_lease_waits,
	n_lease_wait_hits, n_invalidations, n_errors, n_drained;

static void conn_free(void *p);
static struct tconn *get_conn(int need_trust);
static void mark_failed(struct tconn *t, const char *what);

static void conn_free(void *p)
{
	struct tconn *t = p;

	if (t->rc)
		redisFree(t->rc);
	free(t);
}

void cache_setup(const struct config *c)
{
	cfg = c;
	if (pthread_key_create(&conn_key, conn_free) != 0)
		die("cache: pthread_key_create failed");
}

void cache_set_pool(struct pool *p)
{
	drain_pool = p;
}

const char *cache_result_name(enum cache_result r)
{
	return r == CACHE_HIT ? "hit" : r == CACHE_MISS ? "miss" : "bypass";
}

static long long now_ms(void)
{
	return (long long)(now_mono() * 1000.0);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Redis failed for this thread: drop the connection, back off everyone. */
static void mark_failed(struct tconn *t, const char *reason)
{
	int b = atomic_load(&backoff_ms);
	char what[128];

	/* reason may live in the context freed below: keep a copy. */
	snprintf(what, sizeof(what), "%s", reason ? reason : "");
	atomic_fetch_add(&n_errors, 1);
	if (t && t->rc) {
		redisFree(t->rc);
		t->rc = NULL;
	}
	atomic_fetch_add(&error_seq, 1);
	atomic_store(&down_until_ms, now_ms() + b);
	atomic_store(&backoff_ms, b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2);
	if (atomic_exchange(&is_down, 1) == 0) {
		struct log_line l;

		log_begin(&l, LOG_WARN, "redis unavailable: serving from PostgreSQL");
		log_str(&l, "detail", what);
		log_int(&l, "retry_ms", b);
		log_end(&l);
	}
}

/* The run_id of the connected server (changes when Redis restarts). */
static int server_run_id(redisContext *rc, char out[48])
{
	redisReply *r = redisCommand(rc, "INFO server");
	const char *p;
	int ok = 0;

	if (r && r->type == REDIS_REPLY_STRING && (p = strstr(r->str, "run_id:")) != NULL) {
		size_t n = strcspn(p + 7, "\r\n");

		if (n > 0 && n < 48) {
			memcpy(out, p + 7, n);
			out[n] = '\0';
			ok = 1;
		}
	}
	if (r)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

static int connect_thread(struct tconn *t)
{
	struct timeval tv = { cfg->cache_timeout_ms / 1000, (cfg->cache_timeout_ms % 1000) * 1000 };
	redisReply *r;
	char run_id[48];

	t->rc = redisConnectWithTimeout(cfg->redis.host, cfg->redis.port, tv);
	if (t->rc == NULL || t->rc->err) {
		mark_failed(t, t->rc ? t->rc->errstr : "out of memory");
		return -1;
	}
	redisSetTimeout(t->rc, tv);
	if (cfg->redis.password) {
		r = cfg->redis.username
			? redisCommand(t->rc, "AUTH %s %s", cfg->redis.username, cfg->redis.password)
			: redisCommand(t->rc, "AUTH %s", cfg->redis.password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			if (r)
				freeReplyObject(r);
			mark_failed(t, "AUTH refused");
			return -1;
		}
		freeReplyObject(r);
	}
	if (cfg->redis.db) {
		r = redisCommand(t->rc, "SELECT %d", cfg->redis.db);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			if (r)
				freeReplyObject(r);
			mark_failed(t, "SELECT refused");
			return -1;
		}
		freeReplyObject(r);
	}
	if (server_run_id(t->rc, run_id) != 0) {
		mark_failed(t, "INFO failed");
		return -1;
	}
	/* Another instance than the one drained against: drain again first. */
	pthread_mutex_lock(&state_mu);
	if (strcmp(run_id, trusted_run_id) != 0)
		atomic_fetch_add(&error_seq, 1);
	pthread_mutex_unlock(&state_mu);
	return 0;
}

/*
 * This thread's usable connection, or NULL to bypass Redis (disabled,
 * backing off, failed to connect, or, with need_trust, not yet trusted).
 */
static struct tconn *get_conn(int need_trust)
{
	struct tconn *t;
	long long until;
	int trusted;

	if (cfg == NULL || cfg->redis.host == NULL)
		return NULL;
	until = atomic_load(&down_until_ms);
	if (until && now_ms() < until)
		return NULL;
	t = pthread_getspecific(conn_key);
	if (t == NULL) {
		t = xcalloc(1, sizeof(*t));
		pthread_setspecific(conn_key, t);
	}
	if (t->rc == NULL && connect_thread(t) != 0)
		return NULL;
	if (!need_trust)
		return t;
	trusted = atomic_load(&drained_seq) == atomic_load(&error_seq);
	return trusted ? t : NULL;
}

/* Time this thread spent on Redis, for the request's figures. */
static _Thread_local double redis_time;

double cache_take_time(void)
{
	double t = redis_time;

	redis_time = 0;
	return t;
}

/* A command's reply, or NULL after marking Redis failed (t->rc is gone). */
static redisReply *command(struct tconn *t, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;
	double t0 = now_mono();

	va_start(ap, fmt);
	r = redisvCommand(t->rc, fmt, ap);
	va_end(ap);
	redis_time += now_mono() - t0;
	if (r == NULL) {
		mark_failed(t, t->rc->errstr);
		return NULL;
	}
	if (atomic_exchange(&is_down, 0) == 1) {
		atomic_store(&backoff_ms, BACKOFF_MIN_MS);
		atomic_store(&down_until_ms, 0);
		log_msg(LOG_INFO, "redis reachable again: cache in use once the outbox is drained");
	}
	return r;
}

static void paint_keys(int64_t id, char key[64], char lease[64])
{
	snprintf(key, 64, KEY_PREFIX "paint:%lld", (long long)id);
	snprintf(lease, 64, KEY_PREFIX "lease:paint:%lld", (long long)id);
}

enum cache_result cache_paint_get(int64_t id, struct strbuf *value, char lease[CACHE_LEASE_TOKEN])
{
	struct tconn *t = get_conn(1);
	char key[64], lkey[64];
	unsigned char raw[16];
	redisReply *r;
	int i;

	lease[0] = '\0';
	if (t == NULL) {
		atomic_fetch_add(&n_bypasses, 1);
		return CACHE_BYPASS;
	}
	paint_keys(id, key, lkey);
	if ((r = command(t, "GET %s", key)) == NULL)
		goto bypass;
	if (r->type == REDIS_REPLY_STRING) {
		strbuf_append(value, r->str, r->len);
		freeReplyObject(r);
		atomic_fetch_add(&n_hits, 1);
		return CACHE_HIT;
	}
	freeReplyObject(r);
	atomic_fetch_add(&n_misses, 1);
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(lease, CACHE_LEASE_TOKEN, raw, sizeof(raw));
	if ((r = command(t, "SET %s %s NX PX %d", lkey, lease, LEASE_MS)) == NULL)
		goto bypass;
	if (r->type == REDIS_REPLY_STATUS) {	/* "OK": the lease is ours */
		freeReplyObject(r);
		return CACHE_MISS;
	}
	freeReplyObject(r);
	lease[0] = '\0';
	/* Someone else is reading the database for this key: wait a little. */
	atomic_fetch_add(&n_lease_waits, 1);
	for (i = 0; i < LEASE_WAIT_STEPS; i++) {
		sleep_ms(LEASE_WAIT_STEP_MS);
		if ((r = command(t, "GET %s", key)) == NULL)
			goto bypass;
		if (r->type == REDIS_REPLY_STRING) {
			strbuf_append(value, r->str, r->len);
			freeReplyObject(r);
			atomic_fetch_add(&n_lease_wait_hits, 1);
			return CACHE_HIT;
		}
		freeReplyObject(r);
	}
	return CACHE_MISS;
bypass:
	lease[0] = '\0';
	atomic_fetch_add(&n_bypasses, 1);
	return CACHE_BYPASS;
}

int cache_paint_store(int64_t id, const char *lease, const char *value, size_t len)
{
	struct tconn *t;
	char key[64], lkey[64], ttl[16];
	redisReply *r;
	int stored;

	if (lease == NULL || lease[0] == '\0' || (t = get_conn(1)) == NULL)
		return 0;
	paint_keys(id, key, lkey);
	snprintf(ttl, sizeof(ttl), "%d", len == 1 && value[0] == '-' ? NEGATIVE_TTL : cfg->cache_ttl);
	r = command(t, "EVAL %s 2 %s %s %s %b %s", store_script, key, lkey, lease, value, len, ttl);
	if (r == NULL)
		return 0;
	stored = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	if (r->type == REDIS_REPLY_ERROR)
		atomic_fetch_add(&n_errors, 1);
	freeReplyObject(r);
	atomic_fetch_add(stored ? &n_stores : &n_refused, 1);
	return stored;
}

int cache_invalidate(const int64_t *ids, int n)
{
	struct tconn *t = get_conn(0);
	int i, ok = 1;

	if (t == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		char key[64], lkey[64];

		paint_keys(ids[i], key, lkey);
		redisAppendCommand(t->rc, "DEL %s %s", key, lkey);
	}
	redisAppendCommand(t->rc, "INCR " KEY_PREFIX "gen");
	for (i = 0; i <= n; i++) {
		void *reply = NULL;

		if (redisGetReply(t->rc, &reply) != REDIS_OK) {
			mark_failed(t, t->rc->errstr);
			return -1;
		}
		if (((redisReply *)reply)->type == REDIS_REPLY_ERROR)
			ok = 0;
		freeReplyObject(reply);
	}
	if (!ok) {
		atomic_fetch_add(&n_errors, 1);
		return -1;
	}
	atomic_fetch_add(&n_invalidations, (unsigned long long)n);
	return 0;
}

/* A short, fixed-size name for a canonical query. */
static void query_hash(const char *query, char out[33])
{
	unsigned char h[16];

	crypto_generichash(h, sizeof(h), (const unsigned char *)query, strlen(query), NULL, 0);
	sodium_bin2hex(out, 33, h, sizeof(h));
}

enum cache_result cache_page_get(const char *kind, const char *query, struct strbuf *value,
				 char gen[24])
{
	struct tconn *t = get_conn(1);
	char prefix[64], hash[33];
	redisReply *r;
	enum cache_result res = CACHE_MISS;

	gen[0] = '\0';
	if (t == NULL) {
		atomic_fetch_add(&n_bypasses, 1);
		return CACHE_BYPASS;
	}
	snprintf(prefix, sizeof(prefix), KEY_PREFIX "%s:", kind);
	query_hash(query, hash);
	r = command(t, "EVAL %s 1 " KEY_PREFIX "gen %s %s", page_script, prefix, hash);
	if (r == NULL) {
		atomic_fetch_add(&n_bypasses, 1);
		return CACHE_BYPASS;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len < 24) {
		memcpy(gen, r->element[0]->str, r->element[0]->len);
		gen[r->element[0]->len] = '\0';
		if (r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING) {
			strbuf_append(value, r->element[1]->str, r->element[1]->len);
			res = CACHE_HIT;
		}
	} else {
		atomic_fetch_add(&n_errors, 1);
		res = CACHE_BYPASS;
	}
	freeReplyObject(r);
	atomic_fetch_add(res == CACHE_HIT ? &n_hits : res == CACHE_MISS ? &n_misses : &n_bypasses, 1);
	return res;
}

void cache_page_store(const char *kind, const char *query, const char *gen,
		      const char *value, size_t len)
{
	struct tconn *t;
	char hash[33];
	redisReply *r;

	if (gen == NULL || gen[0] == '\0' || (t = get_conn(1)) == NULL)
		return;
	query_hash(query, hash);
	/* The generation was read before the database: a write since bumped it. */
	r = command(t, "SET " KEY_PREFIX "%s:%s:%s %b EX %d", kind, gen, hash, value, len, PAGE_TTL);
	if (r) {
		atomic_fetch_add(&n_stores, 1);
		freeReplyObject(r);
	}
}

int cache_drain(struct pool *p)
{
	struct tconn *t;
	struct pool_conn *c;
	struct pool_error err;
	uint64_t target;
	char run_id[48];
	int total = 0, rc = -1;

	if (p == NULL)
		p = drain_pool;
	if (p == NULL || (t = get_conn(0)) == NULL)
		return -1;
	if (server_run_id(t->rc, run_id) != 0) {
		mark_failed(t, "INFO failed");
		return -1;
	}
	target = atomic_load(&error_seq);
	if (pool_checkout(p, 1.0, "cache.drain", &c, &err) != 0)
		return -1;
	for (;;) {
		PGresult *r = PQexec(c->pg, "SELECT id, paint_id FROM cache_outbox ORDER BY id LIMIT 500");
		int64_t ids[DRAIN_BATCH];
		struct strbuf list;
		int n, i;

		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			PQclear(r);
			goto out;
		}
		n = PQntuples(r);
		if (n == 0) {
			PQclear(r);
			break;
		}
		strbuf_init(&list);
		strbuf_putc(&list, '{');
		for (i = 0; i < n; i++) {
			ids[i] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
			strbuf_printf(&list, "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
		}
		strbuf_putc(&list, '}');
		PQclear(r);
		/* Applied first, deleted after: a failure in between repeats, never loses. */
		if (cache_invalidate(ids, n) != 0) {
			strbuf_free(&list);
			goto out;
		}
		{
			const char *params[1] = { list.buf };

			r = PQexecParams(c->pg, "DELETE FROM cache_outbox WHERE id = ANY($1::int8[])",
					 1, NULL, params, NULL, NULL, 0);
		}
		strbuf_free(&list);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			PQclear(r);
			goto out;
		}
		PQclear(r);
		total += n;
		if (n < DRAIN_BATCH)
			break;
	}
	rc = total;
	atomic_fetch_add(&n_drained, (unsigned long long)total);
	pthread_mutex_lock(&state_mu);
	/* An error since target was read leaves error_seq ahead: still untrusted. */
	if (atomic_load(&error_seq) == target) {
		atomic_store(&drained_seq, target);
		memcpy(trusted_run_id, run_id, sizeof(run_id));
	}
	pthread_mutex_unlock(&state_mu);
out:
	pool_release(p, c);
	return rc;
}

void cache_get_stats(struct cache_stats *st)
{
	long long until = atomic_load(&down_until_ms);

	memset(st, 0, sizeof(*st));
	st->enabled = cfg && cfg->redis.host;
	st->hits = atomic_load(&n_hits);
	st->misses = atomic_load(&n_misses);
	st->bypasses = atomic_load(&n_bypasses);
	st->stores = atomic_load(&n_stores);
	st->stores_refused = atomic_load(&n_refused);
	st->lease_waits = atomic_load(&n_lease_waits);
	st->lease_wait_hits = atomic_load(&n_lease_wait_hits);
	st->invalidations = atomic_load(&n_invalidations);
	st->errors = atomic_load(&n_errors);
	st->drained = atomic_load(&n_drained);
	st->up = st->enabled && !(until && now_ms() < until) &&
		atomic_load(&drained_seq) == atomic_load(&error_seq);
}
