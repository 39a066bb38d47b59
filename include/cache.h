/*
 * cache: Redis as the shared cache of paints, lists and stats, never the
 * source of truth.
 *
 * - Paints: cache-aside under ps:v1:paint:{id} with the exact response body
 *   (absent paints cached briefly as absent). A miss takes a lease
 *   (ps:v1:lease:paint:{id}) before reading PostgreSQL; a write's
 *   invalidation deletes value and lease, and a store succeeds only while
 *   its lease is still there (one Lua script, atomic), so a reader can
 *   never store a value older than an acknowledged write. Misses that find
 *   the lease taken wait briefly for the holder's value (no stampede).
 * - Lists and stats: keys carry a generation (ps:v1:gen) read before the
 *   database; every write bumps it, so old entries are simply never read.
 * - Writes record their invalidation in cache_outbox in the same statement;
 *   what could not reach Redis is drained later, and a process drains
 *   the outbox after every (re)connect before trusting Redis again.
 * - One hiredis context per thread (they are not thread-safe), with
 *   millisecond timeouts. When Redis fails, every thread bypasses it for a
 *   back-off interval instead of waiting on it per request.
 */
#ifndef PS_CACHE_H
#define PS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

struct config;
struct pool;

enum cache_result {
	CACHE_HIT,
	CACHE_MISS,	/* read the database (store if a lease was granted) */
	CACHE_BYPASS,	/* Redis disabled, down or not yet trusted */
};

struct cache_stats {
	uint64_t hits, misses, bypasses, stores, stores_refused, lease_waits,
		 lease_wait_hits, invalidations, errors, drained;
	int up;		/* 1 when Redis is in use */
	int enabled;
};

#define CACHE_LEASE_TOKEN 33

/* Read cfg's REDIS_URL, TTL and timeouts. Call once before threads start. */
void cache_setup(const struct config *cfg);

/* "hit", "miss", "bypass" for logs. */
const char *cache_result_name(enum cache_result r);

/*
 * Look paint id up. On CACHE_HIT, value holds what was stored ("-" for a
 * paint known absent). On CACHE_MISS, lease holds a token when this caller
 * won the lease (store with cache_paint_store), or "" when another reader
 * holds it and its value did not arrive within the short wait.
 */
enum cache_result cache_paint_get(int64_t id, struct strbuf *value,
				  char lease[CACHE_LEASE_TOKEN]);

/*
 * Store value under paint id if lease is still valid (no write happened
 * since it was taken). absent: cache "this paint does not exist" briefly.
 * Returns 1 when stored, 0 when refused or Redis failed.
 */
int cache_paint_store(int64_t id, const char *lease, const char *value, size_t len);

/*
 * Invalidate paint ids[0..n) and every cached list and stats page in one
 * round trip. Returns 0 when Redis applied it, -1 otherwise (the outbox
 * keeps the invalidation).
 */
int cache_invalidate(const int64_t *ids, int n);

/* A list or stats page: kind and canonical query name the entry. */
enum cache_result cache_page_get(const char *kind, const char *query, struct strbuf *value,
				 char gen[24]);
void cache_page_store(const char *kind, const char *query, const char *gen,
		      const char *value, size_t len);

/*
 * Apply every pending invalidation of cache_outbox to Redis and delete
 * what was applied. Called by the housekeeper each second, and by the
 * cache itself before it trusts a new connection. Returns rows drained,
 * or -1 when PostgreSQL or Redis failed.
 */
int cache_drain(struct pool *p);

/* Give the drain step a pool (set once at start-up). */
void cache_set_pool(struct pool *p);

void cache_get_stats(struct cache_stats *st);

/* Seconds this thread spent on Redis since the previous call. */
double cache_take_time(void);

#endif
