/*
 * The cache protocol against a real Redis and PostgreSQL (REDIS_URL,
 * DATABASE_URL from the test stack): leases void stale stores, losers of a
 * lease wait instead of stampeding, the outbox drain applies what a write
 * could not, an error reply withdraws trust, and a write waits only while
 * its invalidation could not be applied.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "cache/cache.h"
#include "db_test.h"
#include "base/log.h"
#include "base/util.h"
#include "db/pool.h"

extern char **environ;

static struct config cfg;
static struct pool *pool;
static struct pool_settings ps;
static const struct pool_stmt stmts[] = { { "outbox_done", CACHE_OUTBOX_DONE_SQL } };
static int64_t next_id;	/* ids no other run used: keys outlive a run */

/* Wait (at most 10 s) until this process serves from Redis. */
static void wait_up(void)
{
	struct cache_stats st;
	int i;

	for (i = 0; i < 1000; i++) {
		cache_get_stats(&st);
		if (st.up)
			return;
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	fail_msg("the cache did not come into use within 10 s");
}

static int setup(void **state)
{
	char err[256];

	(void)state;
	next_id = 1000000000000LL + (int64_t)(now_wall() * 1000.0) % 1000000000LL * 100;
	if (config_load(&cfg, environ, err, sizeof(err)) != 0)
		fail_msg("config: %s", err);
	if (!redis_url_given(&cfg.redis))
		fail_msg("REDIS_URL is not set: run through tests/run.py");
	db_test_pool_settings(&ps, cfg.database_url, "cachetest", 2, 0, 5, stmts, 1);
	ps.statement_timeout_ms = 5000;
	pool = pool_create(&ps);
	cache_setup(&cfg);
	cache_set_pool(pool);
	if (cache_drain(pool) < 0)
		fail_msg("cannot drain the outbox: is Redis up?");
	cache_start(&ps);	/* the drainer keeps the trust lease running */
	wait_up();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cache_stop();
	pool_shutdown(pool, 1);
	pool_destroy(pool);
	config_free(&cfg);
	return 0;
}

static void test_hit_after_store(void **state)
{
	struct strbuf v;
	char lease[CACHE_LEASE_TOKEN];
	int64_t id = next_id++;

	(void)state;
	strbuf_init(&v);
	assert_int_equal(cache_paint_get(id, NULL, &v, lease), CACHE_MISS);
	assert_true(lease[0] != '\0');
	assert_int_equal(cache_paint_store(id, lease, "1\n{\"a\":1}", 9), 1);
	assert_int_equal(cache_paint_get(id, NULL, &v, lease), CACHE_HIT);
	assert_string_equal(v.buf, "1\n{\"a\":1}");
	strbuf_free(&v);
}

/* The classic race, forced: read old, a write invalidates, then store. */
static void test_invalidation_voids_the_lease(void **state)
{
	struct strbuf v;
	char lease[CACHE_LEASE_TOKEN];
	int64_t id = next_id++;

	(void)state;
	strbuf_init(&v);
	assert_int_equal(cache_paint_get(id, NULL, &v, lease), CACHE_MISS);	/* reader: lease */
	/* ...the reader has read version 1 from PostgreSQL; now a writer commits 2: */
	assert_int_equal(cache_invalidate(&id, 1), 0);
	/* ...and the reader, late, tries to store version 1: refused. */
	assert_int_equal(cache_paint_store(id, lease, "1\nold", 5), 0);
	assert_int_equal(cache_paint_get(id, NULL, &v, lease), CACHE_MISS);
	assert_true(lease[0] != '\0');	/* the next reader gets a fresh lease */
	assert_int_equal(cache_paint_store(id, lease, "2\nnew", 5), 1);
	assert_int_equal(cache_paint_get(id, NULL, &v, lease), CACHE_HIT);
	assert_string_equal(v.buf, "2\nnew");
	strbuf_free(&v);
}

static void test_store_needs_the_current_lease(void **state)
{
	struct strbuf v;
	char first[CACHE_LEASE_TOKEN], second[CACHE_LEASE_TOKEN];
	int64_t id = next_id++;

	(void)state;
	strbuf_init(&v);
	assert_int_equal(cache_paint_get(id, NULL, &v, first), CACHE_MISS);
	assert_int_equal(cache_invalidate(&id, 1), 0);
	assert_int_equal(cache_paint_get(id, NULL, &v, second), CACHE_MISS);
	assert_string_not_equal(first, second);
	assert_int_equal(cache_paint_store(id, first, "1\nold", 5), 0);	/* not its lease */
	assert_int_equal(cache_paint_store(id, "", "1\nold", 5), 0);	/* no lease at all */
	assert_int_equal(cache_paint_store(id, second, "2\nnew", 5), 1);
	strbuf_free(&v);
}

struct herd {
	int64_t id;
	atomic_int leases, hits, misses_without_lease;
	pthread_barrier_t go;
};

static void *herd_member(void *arg)
{
	struct herd *h = arg;
	struct strbuf v;
	char lease[CACHE_LEASE_TOKEN];
	enum cache_result r;

	strbuf_init(&v);
	pthread_barrier_wait(&h->go);
	r = cache_paint_get(h->id, NULL, &v, lease);
	if (r == CACHE_HIT) {
		atomic_fetch_add(&h->hits, 1);
	} else if (r == CACHE_MISS && lease[0]) {
		atomic_fetch_add(&h->leases, 1);
		/* "read the database" for 5 ms, then store */
		nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
		cache_paint_store(h->id, lease, "1\nvalue", 7);
	} else {
		atomic_fetch_add(&h->misses_without_lease, 1);
	}
	strbuf_free(&v);
	return NULL;
}

static void test_one_lease_for_a_herd(void **state)
{
	enum { N = 40 };
	struct herd h;
	pthread_t th[N];
	int i;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.id = next_id++;
	pthread_barrier_init(&h.go, NULL, N);
	for (i = 0; i < N; i++)
		pthread_create(&th[i], NULL, herd_member, &h);
	for (i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&h.go);
	assert_int_equal(atomic_load(&h.leases), 1);	/* one database read */
	assert_int_equal(atomic_load(&h.hits), N - 1);	/* the rest waited for it */
	assert_int_equal(atomic_load(&h.misses_without_lease), 0);
}

/* One statement on a pool connection; its first value as a number. */
static long long sql_number(const char *sql)
{
	struct pool_conn *c;
	struct pool_error err;
	PGresult *r;
	long long v = -1;

	assert_int_equal(pool_checkout(pool, 0, "test", &c, &err), 0);
	r = PQexec(pool_conn_pg(c), sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	pool_release(pool, c);
	return v;
}

/* A write whose invalidation never reached Redis: its outbox row. */
static long long outbox_row(int64_t id)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "INSERT INTO cache_outbox (paint_id) VALUES (%lld) RETURNING id",
		 (long long)id);
	return sql_number(sql);
}

static int outbox_has(long long row)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM cache_outbox WHERE id = %lld", row);
	return sql_number(sql) > 0;
}

static void test_drain_applies_the_outbox(void **state)
{
	struct strbuf v;
	char lease[CACHE_LEASE_TOKEN];
	int64_t id = next_id++;
	long long row;
	int i;

	(void)state;
	strbuf_init(&v);
	assert_int_equal(cache_paint_get(id, NULL, &v, lease), CACHE_MISS);
	assert_int_equal(cache_paint_store(id, lease, "1\nold", 5), 1);
	row = outbox_row(id);
	assert_true(cache_drain(pool) >= 0);	/* or a drainer (ours, the services') was first */
	for (i = 0; i < 200 && outbox_has(row); i++)
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	assert_false(outbox_has(row));
	assert_int_equal(cache_paint_get(id, NULL, &v, lease), CACHE_MISS);	/* gone */
	strbuf_free(&v);
}

/*
 * A connection of the test's own (cache_redis_connect: REDIS_URL's TCP or
 * unix socket) and, into prefix, the service's key space on that server.
 * The caller redisFree's it.
 */
static redisContext *own_redis(char prefix[CACHE_PREFIX_LEN])
{
	char ident[CACHE_IDENT_LEN], why[200];
	redisContext *rc = cache_redis_connect(&cfg.redis, 2000, why, sizeof(why));
	redisReply *a, *b;

	if (rc == NULL)
		fail_msg("cannot connect to Redis: %s", why);
	a = redisCommand(rc, "INFO server");
	b = redisCommand(rc, "INFO replication");
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(cache_identity_parse(a->str, b->str, ident), 0);
	cache_key_prefix(ident, prefix);
	freeReplyObject(a);
	freeReplyObject(b);
	return rc;
}

/* A command on a connection of the test's own, in the service's key space. */
static void redis_raw(const char *fmt, const char *arg)
{
	char prefix[CACHE_PREFIX_LEN], key[128];
	redisContext *rc = own_redis(prefix);
	redisReply *r;

	snprintf(key, sizeof(key), "%sgen", prefix);
	r = redisCommand(rc, fmt, key, arg);
	assert_non_null(r);
	freeReplyObject(r);
	redisFree(rc);
}

static double elapsed(double t0)
{
	return now_mono() - t0;
}

/* Issue 14, fault 1: an error reply (here "not an integer") is a failure. */
static void test_an_error_reply_withdraws_trust(void **state)
{
	struct strbuf v;
	char lease[CACHE_LEASE_TOKEN];
	struct cache_stats st;
	int64_t id = next_id++;

	(void)state;
	strbuf_init(&v);
	wait_up();
	assert_int_equal(cache_paint_get(id, NULL, &v, lease), CACHE_MISS);
	assert_int_equal(cache_paint_store(id, lease, "1\nold", 5), 1);
	assert_int_equal(cache_paint_get(id, NULL, &v, lease), CACHE_HIT);
	redis_raw("SET %s %s", "not-a-number");	/* every INCR of the generation now fails */
	assert_int_equal(cache_invalidate(&id, 1), -1);
	cache_get_stats(&st);
	assert_false(st.up);
	assert_int_equal(cache_paint_get(id, NULL, &v, lease), CACHE_BYPASS);	/* not the old value */
	redis_raw("DEL %s %s", "unused");
	wait_up();
	strbuf_free(&v);
}

/* A write of paint id just committed on c: its outbox row (*row), acknowledged; the seconds it took. */
static double acknowledge(struct pool_conn *c, int64_t id, long long *row)
{
	char text[24];
	double t0;

	*row = outbox_row(id);
	snprintf(text, sizeof(text), "%lld", *row);
	t0 = now_mono();
	cache_after_write(pool_conn_pg(c), id, text);
	return elapsed(t0);
}

/*
 * A write waits only while its invalidation could not be applied and a
 * lease announced before may still be running; at most about TRUST_MS.
 */
static void test_a_write_waits_only_during_a_fault(void **state)
{
	struct pool_conn *c;
	struct pool_error err;
	int64_t id = next_id++;
	long long row;
	double took;
	int i;

	(void)state;
	wait_up();
	assert_int_equal(pool_checkout(pool, 0, "test", &c, &err), 0);
	/* the normal path: applied, row gone, no wait */
	assert_true(acknowledge(c, id, &row) < 0.5);
	assert_false(outbox_has(row));
	/* a fault: leases announced just before (ours too) must run out first */
	redis_raw("SET %s %s", "not-a-number");
	took = acknowledge(c, id, &row);
	assert_true(took >= 1.0);
	assert_true(took <= CACHE_TRUST_MS / 1000.0 + 0.5);
	assert_true(outbox_has(row));	/* kept for the drains */
	/* the fault goes on, but no lease runs any more: no wait */
	assert_true(acknowledge(c, id, &row) < 0.5);
	assert_true(outbox_has(row));
	pool_release(pool, c);
	/* Redis healthy again: the drains apply what the fault left */
	redis_raw("DEL %s %s", "unused");
	wait_up();
	for (i = 0; i < 500 && outbox_has(row); i++)
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	assert_false(outbox_has(row));
}

static void test_pages_follow_the_generation(void **state)
{
	struct strbuf v;
	char query[64], gen[24], gen2[24];
	int64_t id = next_id++;

	(void)state;
	/* a query of this run's own: a page another run stored may be current still */
	snprintf(query, sizeof(query), "q=unit-%lld", (long long)id);
	strbuf_init(&v);
	assert_int_equal(cache_page_get("list", query, NULL, &v, gen), CACHE_MISS);
	cache_page_store("list", query, gen, "\"e\"\n[]", 6);
	assert_int_equal(cache_page_get("list", query, NULL, &v, gen2), CACHE_HIT);
	assert_string_equal(v.buf, "\"e\"\n[]");
	assert_string_equal(gen, gen2);
	/* a write between reading the generation and storing: stored under the old one */
	strbuf_reset(&v);
	assert_int_equal(cache_invalidate(&id, 1), 0);
	assert_int_equal(cache_page_get("list", query, NULL, &v, gen2), CACHE_MISS);
	cache_page_store("list", query, gen, "\"old\"\n[]", 8);	/* late, old gen */
	assert_int_equal(cache_page_get("list", query, NULL, &v, gen2), CACHE_MISS);
	strbuf_free(&v);
}

/*
 * Whether the page of kind and query is stored under the generation of
 * gen ("<generation>.<connection>"), read on a connection of the test's
 * own: the key layout <prefix><kind>:<generation>:<hash of query>.
 */
static int page_stored(const char *kind, const char *query, const char *gen)
{
	char prefix[CACHE_PREFIX_LEN], hash[33];
	redisContext *rc = own_redis(prefix);
	redisReply *r;
	unsigned char h[16];
	const char *dot = strchr(gen, '.');
	int found;

	assert_non_null(dot);
	crypto_generichash(h, sizeof(h), (const unsigned char *)query, strlen(query), NULL, 0);
	sodium_bin2hex(hash, sizeof(hash), h, sizeof(h));
	r = redisCommand(rc, "EXISTS %s%s:%b:%s", prefix, kind, gen, (size_t)(dot - gen), hash);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	found = r->integer == 1;
	freeReplyObject(r);
	redisFree(rc);
	return found;
}

/*
 * Store a page for query under the current generation (into gen) and read
 * it back: afterwards this thread's connection remembers that generation.
 */
static void page_stored_and_read(const char *query, struct strbuf *v, char gen[24])
{
	char gen2[24];

	assert_int_equal(cache_page_get("list", query, NULL, v, gen), CACHE_MISS);
	cache_page_store("list", query, gen, "\"g\"\n[1]", 7);
	assert_int_equal(cache_page_get("list", query, NULL, v, gen2), CACHE_HIT);
	assert_string_equal(gen, gen2);
}

/*
 * A connection asks for the page under the generation it read last, in
 * the same round trip as the generation: after a bump, that page is still
 * there but must not be served.
 */
static void test_a_page_under_an_old_generation_is_not_served(void **state)
{
	struct strbuf v;
	char query[64], gen[24], gen2[24];
	int64_t id = next_id++;

	(void)state;
	snprintf(query, sizeof(query), "q=old-gen-%lld", (long long)id);
	strbuf_init(&v);
	page_stored_and_read(query, &v, gen);
	assert_true(page_stored("list", query, gen));
	assert_int_equal(cache_invalidate(&id, 1), 0);	/* a write: the generation moves on */
	assert_true(page_stored("list", query, gen));	/* the old page is still in Redis... */
	strbuf_reset(&v);
	assert_int_equal(cache_page_get("list", query, NULL, &v, gen2), CACHE_MISS);	/* ...unseen */
	assert_string_not_equal(gen, gen2);
	assert_int_equal(v.len, 0);
	assert_int_equal(cache_page_get("list", query, NULL, &v, gen2), CACHE_MISS);	/* and again */
	assert_int_equal(v.len, 0);
	strbuf_free(&v);
}

struct page_filler {
	const char *query;
	enum cache_result got;
};

/* Another thread, so another connection: it fills the page under the current generation. */
static void *fill_page(void *arg)
{
	struct page_filler *f = arg;
	struct strbuf v;
	char gen[24];

	strbuf_init(&v);
	f->got = cache_page_get("list", f->query, NULL, &v, gen);
	if (f->got == CACHE_MISS)
		cache_page_store("list", f->query, gen, "\"n\"\n[2]", 7);
	strbuf_free(&v);
	return NULL;
}

/*
 * After a bump, a page stored under the new generation is a hit: on a
 * connection that still remembers the old generation (its second round
 * trip), then on the one that stored it.
 */
static void test_a_page_under_the_new_generation_is_a_hit(void **state)
{
	struct strbuf v;
	char query[64], gen[24], gen2[24];
	struct page_filler f;
	pthread_t th;
	int64_t id = next_id++;

	(void)state;
	snprintf(query, sizeof(query), "q=new-gen-%lld", (long long)id);
	strbuf_init(&v);
	page_stored_and_read(query, &v, gen);
	assert_int_equal(cache_invalidate(&id, 1), 0);
	f.query = query;
	assert_int_equal(pthread_create(&th, NULL, fill_page, &f), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(f.got, CACHE_MISS);
	strbuf_reset(&v);
	assert_int_equal(cache_page_get("list", query, NULL, &v, gen2), CACHE_HIT);	/* g+1: looked up again */
	assert_string_equal(v.buf, "\"n\"\n[2]");
	assert_string_not_equal(gen, gen2);
	assert_true(page_stored("list", query, gen2));
	strbuf_reset(&v);
	assert_int_equal(cache_page_get("list", query, NULL, &v, gen), CACHE_HIT);	/* remembered: one trip */
	assert_string_equal(v.buf, "\"n\"\n[2]");
	assert_string_equal(gen, gen2);
	/* and on this thread: a bump, a miss, a store under the new generation, a hit */
	assert_int_equal(cache_invalidate(&id, 1), 0);
	strbuf_reset(&v);
	assert_int_equal(cache_page_get("list", query, NULL, &v, gen), CACHE_MISS);
	cache_page_store("list", query, gen, "\"t\"\n[3]", 7);
	assert_int_equal(cache_page_get("list", query, NULL, &v, gen2), CACHE_HIT);
	assert_string_equal(v.buf, "\"t\"\n[3]");
	assert_string_equal(gen, gen2);
	strbuf_free(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_after_store),
		cmocka_unit_test(test_invalidation_voids_the_lease),
		cmocka_unit_test(test_store_needs_the_current_lease),
		cmocka_unit_test(test_one_lease_for_a_herd),
		cmocka_unit_test(test_drain_applies_the_outbox),
		cmocka_unit_test(test_pages_follow_the_generation),
		cmocka_unit_test(test_a_page_under_an_old_generation_is_not_served),
		cmocka_unit_test(test_a_page_under_the_new_generation_is_a_hit),
		cmocka_unit_test(test_an_error_reply_withdraws_trust),
		cmocka_unit_test(test_a_write_waits_only_during_a_fault),
	};

	log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
	return cmocka_run_group_tests_name("cache", tests, setup, teardown);
}
