/*
 * cache: Redis as the shared cache of paints, lists and stats, never the
 * source of truth. The promise: once any process has acknowledged a write
 * with a 2xx, no read that starts after that moment, on any process,
 * returns an older version of that paint, nor a list or stats page
 * computed before the write, whatever Redis does. app/cache/cache.c's header
 * argues why it holds; this is the shape.
 *
 * - Paints: cache-aside under <prefix>paint:{id} with the exact response
 *   body (absent paints cached briefly as absent). A miss takes a lease
 *   (<prefix>lease:paint:{id}) before reading PostgreSQL; an invalidation
 *   deletes value and lease, and a store succeeds only while its lease is
 *   still there (one Lua script), so a reader can never store a value older
 *   than an invalidation it raced with.
 * - Lists and stats: keys carry a generation (<prefix>gen) read before the
 *   database; every invalidation bumps it.
 * - <prefix> names the Redis key space: "ps:" + the server's run_id and
 *   replication id. A restart or a promotion changes them, so values that
 *   missed a DEL (restored snapshot, lost fsync, promoted replica) are
 *   never read again.
 * - Writes record their invalidation in cache_outbox in the same statement.
 *   cache_after_write applies it; the outbox keeps whatever could not be
 *   applied, and each process's drainer applies the outbox four times a
 *   second and at once on NOTIFY.
 * - Trust is a lease: a process serves from Redis only within TRUST_MS of
 *   the start of its last drain that fully succeeded, and announces each
 *   lease in cache_leases before taking it. Any Redis failure, error replies
 *   included, withdraws it at once.
 * - A write whose invalidation could not be applied everywhere that trusts
 *   Redis waits (bounded: about TRUST_MS) before it is acknowledged: until
 *   another process applied it, or no process's lease can still be running.
 * - One hiredis context per thread (they are not thread-safe), with
 *   millisecond timeouts. When Redis fails, every thread bypasses it for a
 *   back-off interval instead of waiting on it per request.
 * - Read replicas (cache.c, piece R): with DATABASE_REPLICA_URLS set,
 *   every invalidation first records the primary's WAL position after
 *   the write's commit in <prefix>wal (ZADD GT: it only grows), in the
 *   same pipeline as the deletions; a reader reads it right after trying
 *   for its lease, taken or not (or with its page generation). A miss
 *   may then read a replica only if that replica has replayed that position
 *   (cache_fill_position; ctx_db chooses accordingly), else the primary;
 *   a store after a replica read that did not cover it is refused. A
 *   look-up that goes around Redis knows no position: its read goes to
 *   the primary. Every process sharing the Redis must run with the same
 *   replica setting.
 * - What Redis holds is input, not truth: every value read back is checked
 *   before use (its length, its type, and by the caller's check its shape:
 *   a paint entry's JSON, its id and version; a page's entity tag and
 *   JSON; a generation's digits). A bad value is a miss: counted
 *   (bad_values), logged at most once a minute, read from PostgreSQL, and
 *   the fill that follows overwrites it (a paint's under a lease, a page's
 *   under the generation read, as for any miss). A bad generation cannot
 *   be overwritten without breaking "it only grows": that key space stays
 *   out of use, as when Redis fails.
 */
#ifndef PS_CACHE_H
#define PS_CACHE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "base/strbuf.h"

struct config;
struct pool;
struct pool_settings;
struct redis_url;
struct redisContext;

enum cache_result {
	CACHE_UNUSED = -1,	/* the request did not look in the cache */
	CACHE_HIT,
	CACHE_MISS,	/* read the database (store if a lease was granted) */
	CACHE_BYPASS,	/* Redis disabled, down or not trusted now */
};

struct cache_stats {
	uint64_t hits, misses, bypasses, stores, stores_refused, lease_waits,
		 lease_wait_hits, invalidations, errors, drained, drains,
		 ack_waits, ack_wait_ms, bad_values;
	int up;		/* 1 when this process serves from Redis now */
	int enabled;
};

#define CACHE_LEASE_TOKEN 33
#define CACHE_IDENT_LEN 96	/* "<run_id>/<master_replid>" */
#define CACHE_PREFIX_LEN 40	/* "ps:<12 of run_id><12 of replid>:" */

/*
 * The longest value stored or read (bytes): longer ones are never stored,
 * and a read asks for no more than one byte beyond, so a longer value
 * found is not one of ours and costs no more than this to reject.
 */
#define CACHE_VALUE_MAX (1 << 20)

/*
 * The caller's check of a value read back (value[0..len), not
 * terminated): 0 when it is one the caller stores under that key (for a
 * paint, the paint id), -1 otherwise. Pure; NULL accepts any value.
 */
typedef int (*cache_paint_check)(const char *value, size_t len, int64_t id);
typedef int (*cache_page_check)(const char *value, size_t len);

/* How long one successful drain lets a process serve from Redis. */
#define CACHE_TRUST_MS 1500
/* How often the drainer renews it (and applies the outbox). */
#define CACHE_DRAIN_EVERY_MS 250

/*
 * The write path's statement (prepare it as "outbox_done"): delete outbox
 * row $1 once applied to the Redis named $2, unless a process may still
 * serve from another Redis (its lease names another key space). Returns
 * the row when deleted. Every deletion of an outbox row goes through this
 * condition; cache.c's header says why.
 *
 * Run on its own (autocommit), it commits without waiting for its WAL
 * flush (synchronous_commit off for its own transaction): a deletion lost
 * in a crash brings the row back, to be applied again, which is harmless,
 * and the write it follows was flushed before. That is one disk flush less
 * per write.
 */
#define CACHE_OUTBOX_DONE_SQL CACHE_OUTBOX_DONE_WHERE("id = $1")
/* The same for the rows of an int8[] $1 (cache_after_writes). */
#define CACHE_OUTBOX_DONE_MANY_SQL CACHE_OUTBOX_DONE_WHERE("id = ANY($1::int8[])")
#define CACHE_OUTBOX_DONE_WHERE(rows) \
	"WITH no_flush AS (SELECT set_config('synchronous_commit', 'off', true)) " \
	"DELETE FROM cache_outbox WHERE " rows " AND EXISTS (SELECT FROM no_flush) " \
	"AND NOT EXISTS (SELECT 1 FROM cache_leases " \
	"WHERE until > clock_timestamp() AND redis <> $2) RETURNING id"

/*
 * Open a connection to the Redis that u names (unix socket or TCP) with
 * timeout_ms for the connect and for every command, authenticated and on
 * u's database: the one way every part of the service (and its tests)
 * connects. Returns the context (caller redisFree's it), or NULL with the
 * reason in err (never the password).
 */
struct redisContext *cache_redis_connect(const struct redis_url *u, int timeout_ms,
					 char *err, size_t errlen);

/*
 * Shared logs: a list in Redis under name that every process adds to,
 * newest first, capped at keep entries, gone ttl seconds after its last
 * entry (a key with a TTL: the only kind Redis may evict). Best effort:
 * -1 when Redis is not in use now or failed, or the entry is over
 * CACHE_LOG_VALUE_MAX bytes. A key of another type under the name is
 * deleted, and the entry starts a new list.
 */
#define CACHE_LOG_VALUE_MAX (64 * 1024)
int cache_log_push(const char *name, const char *value, size_t len, int keep, int ttl);

/*
 * Called for each entry read back, newest first: the entry is input (it
 * may be anything another writer left there); 0 when it was taken, -1
 * when it was refused (not counted).
 */
typedef int (*cache_log_entry)(const char *value, size_t len, void *arg);

/*
 * Read up to max entries of the shared log name, newest first, through
 * each. Returns how many each took, or -1 when Redis is not in use now,
 * failed, or holds no list under the name (the caller falls back to what
 * it knows itself).
 */
int cache_log_read(const char *name, int max, cache_log_entry each, void *arg);

/* Read cfg's REDIS_URL, TTL and timeouts. Call once before threads start. */
void cache_setup(const struct config *cfg);

/*
 * Start this process's drainer thread: its own PostgreSQL connection
 * (settings ps, application name + " cache"; not from the pool) LISTENing
 * for outbox notices, its own Redis connection. A no-op with the cache
 * disabled. Until its first drain succeeds, every read bypasses Redis.
 */
void cache_start(const struct pool_settings *ps);

/* Stop the drainer and withdraw this process's lease (after the workers). */
void cache_stop(void);

/* "hit", "miss", "bypass" for logs. */
const char *cache_result_name(enum cache_result r);

/*
 * Look paint id up. On CACHE_HIT, value holds what was stored ("-" for a
 * paint known absent), and check accepted it. On CACHE_MISS, lease holds a
 * token when this caller won the lease (store with cache_paint_store), or
 * "" when another reader holds it and its value did not arrive within the
 * short wait. A value check refuses (or one of another type or too long)
 * counts as bad and as a miss: the lease is taken as for a missing one.
 */
enum cache_result cache_paint_get(int64_t id, cache_paint_check check, struct strbuf *value,
				  char lease[CACHE_LEASE_TOKEN]);

/*
 * Store value under paint id if lease is still valid (no write happened
 * since it was taken). absent: cache "this paint does not exist" briefly.
 * Returns 1 when stored, 0 when refused (a value longer than
 * CACHE_VALUE_MAX is) or Redis failed.
 */
int cache_paint_store(int64_t id, const char *lease, const char *value, size_t len);

/*
 * Give back paint id's lease, unused (the reader was turned away, or will
 * read again later): deleted if it is still this one, so that the next
 * reader takes one at once instead of waiting for a fill that will not
 * come. Deleting a lease only ever refuses a store (cache.c's argument),
 * so this cannot let an older value in. No-op for an empty lease.
 */
void cache_paint_release(int64_t id, const char *lease);

/*
 * Invalidate paint ids[0..n) and every cached list and stats page in one
 * round trip, on this thread's connection. Returns 0 when Redis applied
 * all of it, -1 otherwise (Redis then counts as failed: trust withdrawn).
 */
int cache_invalidate(const int64_t *ids, int n);

/*
 * After a write committed on pg (autocommit, idle) with outbox row
 * outbox_id for paint_id: apply the invalidation, then return once the
 * write may be acknowledged. Normal path: one Redis round trip and one
 * statement ("outbox_done", which pg must have prepared). When Redis
 * failed, or a process may still serve from another key space, it waits
 * (at most CACHE_TRUST_MS and a little) until another process applied the
 * row or no lease can still be running. Never fails: a PostgreSQL error
 * only makes it wait the whole bound.
 */
void cache_after_write(PGconn *pg, int64_t paint_id, const char *outbox_id);

/*
 * As cache_after_write for a write of many paints in one transaction (an
 * import): paint_ids[0..n) with their outbox rows outbox_ids, an int8[]
 * literal ("{7,8,9}") of the same n ids. The invalidations go in a few
 * pipelined batches (each bumps the pages' generation), the rows are
 * deleted in one statement (CACHE_OUTBOX_DONE_MANY_SQL).
 */
void cache_after_writes(PGconn *pg, const int64_t *paint_ids, int n, const char *outbox_ids);

/*
 * A list or stats page: kind and canonical query name the entry. On
 * CACHE_HIT, value holds it and check accepted it; on CACHE_MISS, gen
 * names the generation to store the page under with cache_page_store ("":
 * store nothing). A page check refuses is a miss (counted as bad), stored
 * over by the caller's fill; a generation that is not a decimal number
 * below 10^14 is a miss with nothing to store under.
 */
enum cache_result cache_page_get(const char *kind, const char *query, cache_page_check check,
				 struct strbuf *value, char gen[24]);
void cache_page_store(const char *kind, const char *query, const char *gen,
		      const char *value, size_t len);

/*
 * One drain on a connection of pool p (NULL: the one given to
 * cache_set_pool), on the calling thread's Redis connection: check Redis,
 * announce the lease, apply every pending invalidation, delete what was
 * applied, then trust Redis for CACHE_TRUST_MS. The drainer thread does
 * the same on its own connection; this entry point is for start-up checks
 * and tests. Returns rows applied, or -1 when PostgreSQL or Redis failed.
 */
int cache_drain(struct pool *p);

/* Give cache_drain(NULL) a pool (set once at start-up). */
void cache_set_pool(struct pool *p);

void cache_get_stats(struct cache_stats *st);

/*
 * Per-request marks of the calling thread (replicas), reset at the start
 * of each request. cache_fill_position: 0 when the request looked nothing
 * up; else the position a replica must have replayed for what the request
 * reads there to be served or stored (UINT64_MAX: unknown, read the
 * primary; so after any look-up that went around Redis).
 * cache_note_replica_read: the request read a replica that had replayed
 * replayed; later stores needing more are refused.
 * Handlers call cache_paint_get / cache_page_get before their first
 * ctx_db.
 */
void cache_request_reset(void);
uint64_t cache_fill_position(void);
void cache_note_replica_read(uint64_t replayed);

/* Seconds this thread spent on Redis since the previous call. */
double cache_take_time(void);

/*
 * Where the master is (cache_sentinel.c). cache_master_url fills *u with
 * REDIS_URL's server, or, with REDIS_SENTINELS, with its credentials and
 * database at the address the sentinels name for REDIS_SENTINEL_MASTER
 * (host written into host, which must outlive u). 0, or -1 with err
 * when no sentinel named one. Nothing of *u is owned by the caller.
 */
#define CACHE_HOST_MAX 256
int cache_master_url(const struct config *cfg, struct redis_url *u, char host[CACHE_HOST_MAX],
		     char *err, size_t errlen);

/* What the sentinels said, for /admin/cache and /metrics. */
struct cache_master_stats {
	char master[CACHE_HOST_MAX + 8];	/* "host:port" they named last; "" none yet */
	uint64_t switches;			/* times they named another master */
	double last_switch_seconds;		/* the last: from the first failure to the new address */
	uint64_t sentinel_errors;		/* sentinels that did not answer when asked */
};
void cache_master_get_stats(struct cache_master_stats *st);

/*
 * Pure helpers, exposed for tests. cache_identity_parse reads the replies
 * of INFO server and INFO replication: 0 and out = "<run_id>/<replid>"
 * when the server is a master with both ids, else -1. cache_key_prefix
 * makes the key prefix of an identity.
 */
int cache_identity_parse(const char *info_server, const char *info_repl,
			 char out[CACHE_IDENT_LEN]);
void cache_key_prefix(const char *ident, char out[CACHE_PREFIX_LEN]);

/*
 * Values read back, as INCR and ZADD write them. cache_gen_valid: 1 when
 * s[0..len) is a page generation, decimal digits without sign or leading
 * zero, below 10^14; else 0. cache_wal_parse: 0 and *lsn when s[0..len)
 * is a ZSCORE reply holding a WAL position (a whole number from 1 below
 * 2^53, as a double prints it); else -1.
 */
int cache_gen_valid(const char *s, size_t len);
int cache_wal_parse(const char *s, size_t len, uint64_t *lsn);

#endif
