/*
 * cache_internal: the inside of the cache module, shared by cache.c (lookups
 * and stores), cache_outbox.c (drains, acknowledgements, the drainer) and
 * cache_conn.c (connections and trust). Not for other modules: they use
 * cache.h.
 */
#ifndef PS_CACHE_INTERNAL_H
#define PS_CACHE_INTERNAL_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/config.h"
#include "cache/cache.h"

#define CACHE_DRAIN_BATCH 500	/* outbox rows one drain step applies */
#define CACHE_GEN_LEN 14	/* longest page generation served: gen[24] of cache_page_get holds it, ".", conn_no */
#define CACHE_GEN_LIMIT 100000000000000LL	/* 10^CACHE_GEN_LEN: generations stay below */

/* A thread's own connection (hiredis contexts are not thread-safe). */
struct cache_conn {
	redisContext *rc;
	char ident[CACHE_IDENT_LEN];	/* the server's identity, learnt at connect */
	char prefix[CACHE_PREFIX_LEN];	/* its key space */
	unsigned seen_seq;		/* ident_seq when matches was computed */
	int matches;			/* ident == trusted_ident as of seen_seq */
	unsigned conn_no;		/* counts this thread's connections */
	/*
	 * SHA1 of the store script, loaded on this connection when it
	 * opened: EVALSHA spares Redis the script's text and hash on every
	 * call. A server that lost it (SCRIPT FLUSH) answers NOSCRIPT, an
	 * error reply like any other: the connection is dropped and the next
	 * one loads it again.
	 */
	char store_sha[41];
	/*
	 * The page generation this connection read last (not terminated;
	 * last_gen_len 0: none yet). cache_page_get asks for the page under
	 * it in the same round trip as the generation itself, and needs a
	 * second one only when they differ. Emptied at every connect (a new
	 * connection may be to another key space).
	 */
	char last_gen[CACHE_GEN_LEN];
	unsigned last_gen_len;
};

/* The figures of cache_get_stats: relaxed atomics, bumped anywhere. */
struct cache_counters {
	atomic_ullong hits, misses, bypasses, stores, refused, lease_waits, lease_wait_hits,
		      invalidations, errors, drained, drains, ack_waits, ack_wait_ms, bad_values;
};
extern struct cache_counters cache_n;

/* Call once before threads start (from cache_setup). */
void cache_conn_setup(const struct config *cfg);
void cache_outbox_setup(void);

/* The settings given to cache_setup; NULL before. */
const struct config *cache_conn_config(void);

/* Whether the cache is in use: set up, with a REDIS_URL that names a server. */
int cache_conn_enabled(void);

/*
 * This thread's usable connection, or NULL to bypass Redis (disabled,
 * backing off, failed to connect, or, with need_trust, not trusted now or
 * connected to another server than the trusted one). Owned by the thread.
 */
struct cache_conn *cache_conn_get(int need_trust);

/* Redis failed for this thread: drop t's connection, withdraw trust, back off. */
void cache_conn_failed(struct cache_conn *t, const char *reason);

/*
 * The master's address, with sentinels (cache_sentinel.c):
 * cache_master_suspect after any failure (the sentinels are asked again
 * before the next connection), cache_master_ok once a connection to it
 * proved a master. cache_sentinel_reply reads the reply of SENTINEL
 * get-master-addr-by-name: 0 with a checked host and port, else -1.
 */
void cache_master_suspect(void);
void cache_master_ok(void);
int cache_sentinel_reply(const redisReply *r, char host[CACHE_HOST_MAX], int *port);

/*
 * Read n pipelined replies into r[0..n). 0 when every one arrived and none
 * is an error reply (caller frees them); else -1 after cache_conn_failed
 * (t->rc is gone, r[] freed).
 */
int cache_conn_replies(struct cache_conn *t, redisReply **r, int n);

/*
 * As cache_conn_replies, except for the replies r[i] with bit i of values
 * set: an error reply there that says the key holds what the command
 * cannot read (WRONGTYPE; "not an integer" or "overflow" from INCR and
 * the like) is handed back like any reply (see cache_reply_bad), because
 * it is about a value in Redis (input), not about Redis failing. Any other
 * error reply fails the connection as above.
 */
int cache_conn_replies_values(struct cache_conn *t, redisReply **r, int n, unsigned values);

/* 1 when r is an error reply that cache_conn_replies_values hands back. */
int cache_reply_bad(const redisReply *r);

/* One command's reply (caller frees), or NULL after cache_conn_failed. */
redisReply *cache_conn_command(struct cache_conn *t, const char *fmt, ...);

/*
 * Read the string value under key, at most CACHE_VALUE_MAX + 1 bytes of it
 * (GETRANGE: a hostile value of hundreds of megabytes costs no more than
 * that). The reply (caller frees): a string, empty when the key is missing;
 * a WRONGTYPE error when the key is of another type (cache_reply_bad).
 * NULL after cache_conn_failed.
 */
redisReply *cache_conn_read_value(struct cache_conn *t, const char *key);
/* The same command, appended to t's pipeline (replies read by the caller). */
void cache_conn_append_read_value(struct cache_conn *t, const char *key);

/*
 * A value read from Redis under key is not one this service writes (what:
 * "paint", "page", "generation", ...): counted in bad_values and logged at
 * most once a minute per process. The caller treats it as a miss.
 */
void cache_bad_value(const char *what, const char *key);

/*
 * Check t's server: still the identity t connected to, a master, and it
 * accepts a write. 0, or -1 after cache_conn_failed.
 */
int cache_conn_probe(struct cache_conn *t);

/*
 * Apply the invalidation of ids[0..n) on t (n <= CACHE_DRAIN_BATCH),
 * recording lsn first when replicas are configured and lsn is not 0
 * (piece R). 0 or -1.
 */
int cache_invalidate_on(struct cache_conn *t, const int64_t *ids, int n, uint64_t lsn);

/* 1 when replicas are configured: invalidations record WAL positions (piece R). */
int cache_conn_wal_on(void);

/*
 * Trust (piece T): cache_trust_seq before a drain; cache_trust_grant
 * after it, which trusts ident for CACHE_TRUST_MS from t0 only if no
 * failure moved the sequence since. cache_trust_up: Redis in use now.
 */
unsigned long long cache_trust_seq(void);
void cache_trust_grant(const char ident[CACHE_IDENT_LEN], unsigned long long seq, long long t0);
void cache_trust_withdraw(void);
int cache_trust_up(void);

/* Monotonic milliseconds; a sleep of ms milliseconds. */
long long cache_now_ms(void);
void cache_sleep_ms(int ms);

/*
 * Start the drainer thread (the outbox's, with its own connection made
 * from ps) / stop and join it; cache_start and cache_stop call them.
 */
void cache_outbox_start(const struct pool_settings *ps);
void cache_outbox_stop(void);

#endif
