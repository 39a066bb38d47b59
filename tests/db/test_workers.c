/*
 * The workers' parking with real threads and real waits (here, so that it
 * also runs under ThreadSanitizer): two active threads, one stuck in a
 * statement, one waiting for the pool's only connection; the parked
 * threads must serve everything else meanwhile, and all must leave at stop.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db_test.h"
#include "base/util.h"
#include "base/workers.h"

#define THREADS 6
#define ACTIVE 2
#define QUICK 20

static const struct pool_stmt stmts[] = { { "t_sleep", "SELECT pg_sleep($1::float8)" } };

static struct pool *pool;
static int jobs[2] = { -1, -1 };	/* a pipe: one byte per job, as epoll hands out requests */
static atomic_int inflight;
static atomic_int quick_done;
static double stuck_done_at, wait_done_at, quick_all_done_at;
static int lent_nested = -1;	/* lent, seen inside two nested block_begins */
static pthread_mutex_t times_mu = PTHREAD_MUTEX_INITIALIZER;

static int inflight_now(void)
{
	return atomic_load(&inflight);
}

static int wait_done(void)
{
	return wait_done_at > 0;
}

static int nested_seen(void)
{
	return lent_nested >= 0;
}

/* Wait at most 2 s for ready() (read under times_mu); return with times_mu held. */
static void lock_when(int (*ready)(void))
{
	int i;

	for (i = 0; i < 200; i++) {
		pthread_mutex_lock(&times_mu);
		if (ready())
			return;
		pthread_mutex_unlock(&times_mu);
		usleep(10 * 1000);
	}
	pthread_mutex_lock(&times_mu);
}

static int parked_now(void)
{
	struct workers_stats st;

	workers_get_stats(&st);
	return st.parked;
}

static void run_sleep(const char *seconds)
{
	struct pool_conn *c;
	struct pool_error err;
	const char *params[1] = { seconds };
	PGresult *r;

	assert_int_equal(pool_checkout(pool, 10, "test_workers", &c, &err), 0);
	r = pool_exec_prepared(pool_conn_pg(c), "t_sleep", 1, params, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	pool_release(pool, c);
}

static void *worker(void *arg)
{
	char job;

	(void)arg;
	for (;;) {
		workers_settle();
		if (read(jobs[0], &job, 1) != 1 || job == 'x')
			break;
		atomic_fetch_add(&inflight, 1);
		if (job == 'n') {	/* a pool wait inside a write: its place is lent once */
			struct workers_stats st;

			workers_block_begin();
			workers_block_begin();
			workers_get_stats(&st);
			workers_block_end();
			workers_block_end();
			pthread_mutex_lock(&times_mu);
			lent_nested = st.lent;
			pthread_mutex_unlock(&times_mu);
			atomic_fetch_sub(&inflight, 1);
			workers_request_done();
			continue;
		}
		if (job == 's' || job == 'w')	/* stuck in a statement; waiting for the pool */
			run_sleep(job == 's' ? "0.8" : "0");
		pthread_mutex_lock(&times_mu);
		if (job == 's')
			stuck_done_at = now_mono();
		else if (job == 'w')
			wait_done_at = now_mono();
		else if (atomic_fetch_add(&quick_done, 1) + 1 == QUICK)
			quick_all_done_at = now_mono();
		pthread_mutex_unlock(&times_mu);
		atomic_fetch_sub(&inflight, 1);
		workers_request_done();
	}
	return NULL;
}

static void test_parked_threads_serve_while_active_ones_wait(void **state)
{
	struct pool_settings s;
	pthread_t t[THREADS];
	char all[2 + QUICK];
	int i;

	(void)state;
	assert_non_null(getenv("DATABASE_URL"));
	/* one connection: 'w' must wait for the one 's' holds */
	db_test_pool_settings(&s, getenv("DATABASE_URL"), "test_workers", 1, 0, 10, stmts, 1);
	assert_non_null(pool = pool_create(&s));
	assert_int_equal(pipe(jobs), 0);

	assert_int_equal(workers_start(THREADS, ACTIVE, inflight_now), ACTIVE);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, NULL), 0);
	for (i = 0; i < 100 && parked_now() < THREADS - ACTIVE; i++)
		usleep(10 * 1000);
	assert_int_equal(parked_now(), THREADS - ACTIVE);	/* the surplus parked */
	/* One stuck, one waiting for the pool: both active threads are taken. */
	assert_int_equal(write(jobs[1], "s", 1), 1);
	usleep(100 * 1000);
	assert_int_equal(write(jobs[1], "w", 1), 1);
	usleep(100 * 1000);
	memset(all, 'q', sizeof(all));
	assert_int_equal(write(jobs[1], all, QUICK), QUICK);
	assert_true(parked_now() < THREADS - ACTIVE);	/* someone took over */
	for (i = 0; i < 400 && atomic_load(&quick_done) < QUICK; i++)
		usleep(5 * 1000);
	assert_int_equal(atomic_load(&quick_done), QUICK);
	pthread_mutex_lock(&times_mu);
	assert_true(stuck_done_at == 0);	/* served while the statement was still stuck */
	pthread_mutex_unlock(&times_mu);

	lock_when(wait_done);
	assert_true(stuck_done_at > 0 && wait_done_at >= stuck_done_at);
	assert_true(quick_all_done_at < stuck_done_at);
	pthread_mutex_unlock(&times_mu);

	/* Nested lending counts once, and ends. */
	assert_int_equal(write(jobs[1], "n", 1), 1);
	lock_when(nested_seen);
	assert_int_equal(lent_nested, 1);
	pthread_mutex_unlock(&times_mu);
	{
		struct workers_stats st;

		workers_get_stats(&st);
		assert_int_equal(st.lent, 0);
	}

	/* Stop: parked threads wake too, and every thread leaves. */
	memset(all, 'x', sizeof(all));
	assert_int_equal(write(jobs[1], all, THREADS), THREADS);
	workers_stop();
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	close(jobs[0]);
	close(jobs[1]);
	assert_int_equal(pool_shutdown(pool, 5), 0);
	pool_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parked_threads_serve_while_active_ones_wait),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
