/*
 * The pool against a real PostgreSQL (DATABASE_URL, PG_ADMIN_URL from the
 * test stack), with many threads. Every test uses its own application_name
 * so PostgreSQL's own view (pg_stat_activity) can be checked too.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "db_test.h"
#include "base/util.h"

static const struct pool_stmt stmts[] = {
	{ "t_one", "SELECT 1" },
	{ "t_sleep", "SELECT pg_sleep($1::float8)" },
};

static char appname[64];

static void settings(struct pool_settings *s, const char *name, int size, int overflow,
		     double timeout)
{
	const char *url = getenv("DATABASE_URL");

	if (url == NULL)
		fail_msg("DATABASE_URL is not set: run through tests/run.py");
	snprintf(appname, sizeof(appname), "pooltest_%s_%d", name, (int)getpid());
	db_test_pool_settings(s, url, appname, size, overflow, timeout, stmts, 2);
}

static PGconn *admin(void)
{
	PGconn *pg = PQconnectdb(getenv("PG_ADMIN_URL"));

	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("admin connection: %s", PQerrorMessage(pg));
	return pg;
}

/* Server-side connections of this test's application_name. */
static int server_conns(PGconn *adm)
{
	const char *params[1] = { appname };
	PGresult *r = PQexecParams(adm, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
				   1, NULL, params, NULL, NULL, 0);
	int n;

	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	n = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A backend leaves pg_stat_activity shortly after its client closes. */
static int settled_server_conns(PGconn *adm, int expect)
{
	int i, n = -1;

	for (i = 0; i < 300; i++) {
		n = server_conns(adm);
		if (n == expect)
			break;
		sleep_ms(10);
	}
	return n;
}

static void must_query(PGconn *pg, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

/* ---- the bound under a burst ------------------------------------------ */

struct burst {
	struct pool *p;
	atomic_int holding, max_holding, ok, timeouts, other;
	atomic_int stop_monitor, max_open_seen, max_server_seen;
};

static void *burst_worker(void *arg)
{
	struct burst *b = arg;
	int i;

	for (i = 0; i < 8; i++) {
		struct pool_conn *c;
		struct pool_error err;
		int h, m;

		if (pool_checkout(b->p, 0, "test", &c, &err) != 0) {
			if (err.kind == POOL_ERR_TIMEOUT)
				atomic_fetch_add(&b->timeouts, 1);
			else
				atomic_fetch_add(&b->other, 1);
			continue;
		}
		h = atomic_fetch_add(&b->holding, 1) + 1;
		m = atomic_load(&b->max_holding);
		while (h > m && !atomic_compare_exchange_weak(&b->max_holding, &m, h))
			;
		{
			const char *params[1] = { "0.002" };
			PGresult *r = pool_exec_prepared(pool_conn_pg(c), "t_sleep", 1, params, NULL, NULL, 0);

			if (PQresultStatus(r) == PGRES_TUPLES_OK)
				atomic_fetch_add(&b->ok, 1);
			else
				atomic_fetch_add(&b->other, 1);
			PQclear(r);
		}
		atomic_fetch_sub(&b->holding, 1);
		pool_release(b->p, c);
	}
	return NULL;
}

static void *burst_monitor(void *arg)
{
	struct burst *b = arg;
	PGconn *adm = admin();

	while (!atomic_load(&b->stop_monitor)) {
		struct pool_stats st;
		int n = server_conns(adm);

		pool_get_stats(b->p, &st);
		if (st.open > atomic_load(&b->max_open_seen))
			atomic_store(&b->max_open_seen, st.open);
		if (n > atomic_load(&b->max_server_seen))
			atomic_store(&b->max_server_seen, n);
		sleep_ms(5);
	}
	PQfinish(adm);
	return NULL;
}

static void test_bound_never_exceeded(void **state)
{
	enum { THREADS = 64 };
	struct pool_settings s;
	struct burst b;
	pthread_t th[THREADS], mon;
	struct pool_stats st;
	int i;

	(void)state;
	settings(&s, "bound", 3, 2, 30);
	memset(&b, 0, sizeof(b));
	b.p = pool_create(&s);
	pthread_create(&mon, NULL, burst_monitor, &b);
	for (i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, burst_worker, &b);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	atomic_store(&b.stop_monitor, 1);
	pthread_join(mon, NULL);
	pool_get_stats(b.p, &st);
	assert_int_equal(atomic_load(&b.ok), THREADS * 8);
	assert_int_equal(atomic_load(&b.other), 0);
	assert_int_equal(atomic_load(&b.timeouts), 0);
	assert_true(atomic_load(&b.max_holding) <= 5);
	assert_int_equal(atomic_load(&b.max_holding), 5);	/* the burst did fill it */
	assert_true(atomic_load(&b.max_open_seen) <= 5);
	assert_true(atomic_load(&b.max_server_seen) <= 5);
	/* connections are kept, not churned: never more opened than the bound */
	assert_true(st.opened <= 5);
	assert_int_equal(st.open, (int)st.opened);
	assert_int_equal(st.idle, st.open);
	assert_int_equal(st.checked_out, 0);
	assert_int_equal(st.checkouts, THREADS * 8);
	assert_int_equal(pool_shutdown(b.p, 1), 0);
	pool_destroy(b.p);
}

/* ---- first come, first served ---------------------------------------- */

struct fifo {
	struct pool *p;
	atomic_int next_order;
	int order[16];
};

struct fifo_arg {
	struct fifo *f;
	int index;
};

static void *fifo_waiter(void *arg)
{
	struct fifo_arg *a = arg;
	struct pool_conn *c;
	struct pool_error err;

	if (pool_checkout(a->f->p, 20, "fifo", &c, &err) != 0) {
		a->f->order[a->index] = -1;
		return NULL;
	}
	a->f->order[a->index] = atomic_fetch_add(&a->f->next_order, 1);
	sleep_ms(2);
	pool_release(a->f->p, c);
	return NULL;
}

static void wait_waiting(struct pool *p, int n)
{
	int i;

	for (i = 0; i < 2000; i++) {
		struct pool_stats st;

		pool_get_stats(p, &st);
		if (st.waiting == n)
			return;
		sleep_ms(1);
	}
	fail_msg("never saw %d waiters", n);
}

static void test_waiters_served_in_arrival_order(void **state)
{
	enum { N = 10 };
	struct pool_settings s;
	struct fifo f;
	struct fifo_arg args[N];
	pthread_t th[N];
	struct pool_conn *held, *late;
	struct pool_error err;
	int i;

	(void)state;
	settings(&s, "fifo", 1, 0, 20);
	memset(&f, 0, sizeof(f));
	f.p = pool_create(&s);
	assert_int_equal(pool_checkout(f.p, 0, "holder", &held, &err), 0);
	for (i = 0; i < N; i++) {
		args[i].f = &f;
		args[i].index = i;
		pthread_create(&th[i], NULL, fifo_waiter, &args[i]);
		wait_waiting(f.p, i + 1);	/* arrival order is known */
	}
	pool_release(f.p, held);
	/* A newcomer while others wait must queue behind all of them. */
	assert_int_equal(pool_checkout(f.p, 20, "late", &late, &err), 0);
	for (i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < N; i++)
		assert_int_equal(f.order[i], i);
	assert_int_equal(atomic_load(&f.next_order), N);
	pool_release(f.p, late);
	assert_int_equal(pool_shutdown(f.p, 1), 0);
	pool_destroy(f.p);
}

/* ---- timeout --------------------------------------------------------- */

static void test_timeout_fires_at_its_value(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *held, *c = NULL;
	struct pool_error err;
	struct pool_stats st;
	double t0, waited;

	(void)state;
	settings(&s, "timeout", 1, 0, 1.0);
	p = pool_create(&s);
	assert_int_equal(pool_checkout(p, 0, "holder", &held, &err), 0);
	t0 = now_mono();
	assert_int_equal(pool_checkout(p, 0, "waiter", &c, &err), -1);
	waited = now_mono() - t0;
	assert_int_equal(err.kind, POOL_ERR_TIMEOUT);
	assert_true(waited >= 1.0);
	assert_null(c);
	pool_get_stats(p, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.waiting, 0);
	pool_release(p, held);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
}

/* ---- overflow, recycle, pre-ping ---------------------------------------- */

static void test_overflow_kept_then_reaped_when_idle(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c[5];
	struct pool_error err;
	struct pool_stats st;
	PGconn *adm = admin();
	int i;

	(void)state;
	settings(&s, "overflow", 2, 3, 5);
	s.idle_timeout = 0.5;
	p = pool_create(&s);
	for (i = 0; i < 5; i++)
		assert_int_equal(pool_checkout(p, 0, "t", &c[i], &err), 0);
	pool_get_stats(p, &st);
	assert_int_equal(st.open, 5);
	assert_int_equal(st.overflow, 3);
	assert_int_equal(server_conns(adm), 5);
	/* the bound holds: a sixth waits and times out */
	{
		struct pool_conn *x;

		assert_int_equal(pool_checkout(p, 0.2, "t", &x, &err), -1);
		assert_int_equal(err.kind, POOL_ERR_TIMEOUT);
	}
	for (i = 0; i < 5; i++)
		pool_release(p, c[i]);
	/* returned overflow is kept for the next burst ... */
	pool_get_stats(p, &st);
	assert_int_equal(st.open, 5);
	assert_int_equal(st.idle, 5);
	assert_int_equal(st.closed, 0);
	assert_int_equal(pool_reap_idle(p), 0);	/* not idle long enough yet */
	/* ... a connection in use is never reaped, however old its last use */
	sleep_ms(600);
	assert_int_equal(pool_checkout(p, 0, "t", &c[0], &err), 0);
	/* ... and closed once idle for idle_timeout, down to size, no lower */
	assert_int_equal(pool_reap_idle(p), 3);
	pool_get_stats(p, &st);
	assert_int_equal(st.open, 2);
	assert_int_equal(st.idle, 1);
	assert_int_equal(st.reaped, 3);
	assert_int_equal(st.closed, 3);
	assert_int_equal(settled_server_conns(adm, 2), 2);
	pool_release(p, c[0]);
	sleep_ms(600);
	assert_int_equal(pool_reap_idle(p), 0);
	pool_get_stats(p, &st);
	assert_int_equal(st.open, 2);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
	assert_int_equal(settled_server_conns(adm, 0), 0);
	PQfinish(adm);
}

/*
 * A steady load that needs the overflow for seconds, with the
 * housekeeper's reaping running beside it: the pool opens its bound once
 * and then reuses. Closing overflow on every release used to reopen a
 * connection on most checkouts.
 */
struct steady {
	struct pool *p;
	atomic_int stop, ok, failed;
};

static void *steady_worker(void *arg)
{
	struct steady *sd = arg;

	while (!atomic_load(&sd->stop)) {
		struct pool_conn *c;
		struct pool_error err;
		const char *params[1] = { "0.001" };
		PGresult *r;

		if (pool_checkout(sd->p, 0, "steady", &c, &err) != 0) {
			atomic_fetch_add(&sd->failed, 1);
			continue;
		}
		r = pool_exec_prepared(pool_conn_pg(c), "t_sleep", 1, params, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			atomic_fetch_add(&sd->ok, 1);
		else
			atomic_fetch_add(&sd->failed, 1);
		PQclear(r);
		pool_release(sd->p, c);
	}
	return NULL;
}

static void test_steady_overflow_load_opens_no_more(void **state)
{
	/* More than size, fewer than the bound: overflow in use, nobody waits. */
	enum { THREADS = 6 };
	struct pool_settings s;
	struct steady sd;
	pthread_t th[THREADS];
	struct pool_stats st;
	double end;
	int i, max_opened = 0;

	(void)state;
	settings(&s, "steady", 3, 5, 10);
	s.idle_timeout = 1.0;
	memset(&sd, 0, sizeof(sd));
	sd.p = pool_create(&s);
	for (i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, steady_worker, &sd);
	end = now_mono() + 5.0;
	while (now_mono() < end) {	/* the housekeeper's tick, faster */
		pool_reap_idle(sd.p);
		pool_get_stats(sd.p, &st);
		if ((int)st.opened > max_opened)
			max_opened = (int)st.opened;
		sleep_ms(100);
	}
	atomic_store(&sd.stop, 1);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pool_get_stats(sd.p, &st);
	assert_int_equal(atomic_load(&sd.failed), 0);
	assert_true(atomic_load(&sd.ok) > 500);
	assert_true(st.checkouts > 500);
	/* The overflow was needed, and opened once: one per thread at most. */
	assert_true(st.open > 3);
	assert_true(max_opened <= THREADS);
	assert_true((int)st.opened <= THREADS);
	assert_int_equal((int)st.reaped, 0);
	assert_int_equal(pool_shutdown(sd.p, 1), 0);
	pool_destroy(sd.p);
}

static void test_recycle_replaces_old_connections(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	struct pool_stats st;
	int pid1, pid2;

	(void)state;
	settings(&s, "recycle", 1, 0, 5);
	s.recycle = 1;
	p = pool_create(&s);
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	pid1 = PQbackendPID(pool_conn_pg(c));
	pool_release(p, c);
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	assert_int_equal(PQbackendPID(pool_conn_pg(c)), pid1);	/* young: reused */
	pool_release(p, c);
	sleep_ms(1200);
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	pid2 = PQbackendPID(pool_conn_pg(c));
	assert_int_not_equal(pid1, pid2);
	must_query(pool_conn_pg(c), "SELECT 1");
	pool_release(p, c);
	pool_get_stats(p, &st);
	assert_int_equal(st.recycled, 1);
	assert_int_equal(st.open, 1);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
}

static void terminate(PGconn *adm, int pid)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
	must_query(adm, sql);
	sleep_ms(100);
}

static void test_pre_ping_hides_a_killed_connection(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	struct pool_stats st;
	PGconn *adm = admin();
	int pid;

	(void)state;
	settings(&s, "preping", 1, 0, 5);
	s.pre_ping = 1;
	p = pool_create(&s);
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	pid = PQbackendPID(pool_conn_pg(c));
	pool_release(p, c);
	terminate(adm, pid);
	sleep_ms((int)(POOL_PREPING_IDLE * 1000) + 100);
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	assert_int_not_equal(PQbackendPID(pool_conn_pg(c)), pid);
	must_query(pool_conn_pg(c), "SELECT 1");	/* the caller never sees the error */
	pool_release(p, c);
	pool_get_stats(p, &st);
	assert_int_equal(st.invalidated, 1);
	assert_int_equal(st.open, 1);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
	PQfinish(adm);
}

static void test_broken_connection_is_discarded_on_return(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	struct pool_stats st;
	PGconn *adm = admin();
	PGresult *r;
	int pid;

	(void)state;
	settings(&s, "broken", 1, 0, 5);
	p = pool_create(&s);
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	pid = PQbackendPID(pool_conn_pg(c));
	terminate(adm, pid);
	r = PQexec(pool_conn_pg(c), "SELECT 1");
	assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	pool_release(p, c);
	pool_get_stats(p, &st);
	assert_int_equal(st.open, 0);
	assert_int_equal(st.invalidated, 1);
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	must_query(pool_conn_pg(c), "SELECT 1");
	pool_release(p, c);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
	PQfinish(adm);
}

static void test_one_broken_connection_makes_older_ones_suspect(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *a, *b;
	struct pool_error err;
	PGconn *adm = admin();
	PGresult *r;
	int pa, pb;

	(void)state;
	settings(&s, "suspect", 2, 0, 5);	/* no pre-ping */
	p = pool_create(&s);
	assert_int_equal(pool_checkout(p, 0, "t", &a, &err), 0);
	assert_int_equal(pool_checkout(p, 0, "t", &b, &err), 0);
	pa = PQbackendPID(pool_conn_pg(a));
	pb = PQbackendPID(pool_conn_pg(b));
	pool_release(p, a);
	pool_release(p, b);
	terminate(adm, pa);	/* as a server restart would */
	terminate(adm, pb);
	/* LIFO: b comes first; without pre-ping its caller sees the error... */
	assert_int_equal(pool_checkout(p, 0, "t", &b, &err), 0);
	r = PQexec(pool_conn_pg(b), "SELECT 1");
	assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	pool_release(p, b);
	/* ...but only that one: a is checked before use and replaced */
	assert_int_equal(pool_checkout(p, 0, "t", &a, &err), 0);
	assert_int_not_equal(PQbackendPID(pool_conn_pg(a)), pa);
	must_query(pool_conn_pg(a), "SELECT 1");
	pool_release(p, a);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
	PQfinish(adm);
}

/*
 * A connection its caller found on a server that may be going away (read
 * only, shutting down: a failover) is closed when it comes back, and the
 * older ones are vetted before their next use: on the primary's pool,
 * that their server is not in recovery.
 */
static void test_discarded_connection_is_closed_and_older_ones_vetted(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *a, *b;
	struct pool_error err;
	struct pool_stats st;
	int pb;

	(void)state;
	settings(&s, "discard", 2, 0, 5);	/* no pre-ping */
	s.primary = 1;
	p = pool_create(&s);
	assert_int_equal(pool_checkout(p, 0, "t", &a, &err), 0);
	assert_int_equal(pool_checkout(p, 0, "t", &b, &err), 0);
	pb = PQbackendPID(pool_conn_pg(b));
	pool_release(p, b);
	pool_conn_discard(p, a);
	must_query(pool_conn_pg(a), "SELECT 1");	/* still usable until it comes back */
	pool_release(p, a);
	pool_get_stats(p, &st);
	assert_int_equal(st.open, 1);
	assert_int_equal(st.invalidated, 1);
	assert_true(strchr(st.server, ':') != NULL);
	assert_int_equal(st.failovers, 0);
	/* b is older than the discard: vetted (a primary: not in recovery) and kept */
	assert_int_equal(pool_checkout(p, 0, "t", &b, &err), 0);
	assert_int_equal(PQbackendPID(pool_conn_pg(b)), pb);
	pool_release(p, b);
	pool_get_stats(p, &st);
	assert_int_equal(st.invalidated, 1);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
}

static void test_returned_mid_transaction_comes_back_clean(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	PGresult *r;
	int pid;

	(void)state;
	settings(&s, "txclean", 1, 0, 5);
	p = pool_create(&s);
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	pid = PQbackendPID(pool_conn_pg(c));
	must_query(pool_conn_pg(c), "BEGIN");
	must_query(pool_conn_pg(c), "CREATE TEMP TABLE pool_tx_probe (x int)");
	assert_int_equal(PQtransactionStatus(pool_conn_pg(c)), PQTRANS_INTRANS);
	pool_release(p, c);
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	assert_int_equal(PQbackendPID(pool_conn_pg(c)), pid);	/* kept, not replaced */
	assert_int_equal(PQtransactionStatus(pool_conn_pg(c)), PQTRANS_IDLE);
	/* rolled back: the table created in the transaction is gone */
	r = PQexec(pool_conn_pg(c), "SELECT to_regclass('pg_temp.pool_tx_probe') IS NULL");
	assert_string_equal(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	/* a failed transaction too */
	must_query(pool_conn_pg(c), "BEGIN");
	r = PQexec(pool_conn_pg(c), "SELECT 1/0");
	PQclear(r);
	assert_int_equal(PQtransactionStatus(pool_conn_pg(c)), PQTRANS_INERROR);
	pool_release(p, c);
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	assert_int_equal(PQtransactionStatus(pool_conn_pg(c)), PQTRANS_IDLE);
	must_query(pool_conn_pg(c), "SELECT 1");
	pool_release(p, c);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
}

static void test_statements_prepared_once_per_connection(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	PGresult *r;
	int i;

	(void)state;
	settings(&s, "prepared", 1, 0, 5);
	p = pool_create(&s);
	for (i = 0; i < 5; i++) {
		assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
		r = pool_exec_prepared(pool_conn_pg(c), "t_one", 0, NULL, NULL, NULL, 0);
		assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
		PQclear(r);
		/* Prepared at its first use, once: t_sleep, never used, is not. */
		r = PQexec(pool_conn_pg(c), "SELECT count(*) FROM pg_prepared_statements");
		assert_string_equal(PQgetvalue(r, 0, 0), "1");
		PQclear(r);
		pool_release(p, c);
	}
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	r = pool_exec_prepared(pool_conn_pg(c), "t_nonesuch", 0, NULL, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);	/* not the pool's: as PQexecPrepared */
	PQclear(r);
	pool_release(p, c);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
}

/*
 * A table locked exclusively (a migration, LOCK TABLE) holds up only the
 * statements that name it: a new connection opens, and runs the others,
 * at once. When connections prepared every statement as they opened, the
 * preparation waited on the lock (here until statement_timeout).
 */
static void test_a_locked_table_holds_up_no_new_connection(void **state)
{
	static const struct pool_stmt locked_stmts[] = {
		{ "t_one", "SELECT 1" },
		{ "t_locked", "SELECT count(*) FROM pool_locked_probe" },
	};
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	PGconn *holder = PQconnectdb(getenv("DATABASE_URL"));
	PGresult *r;
	double t0;

	(void)state;
	if (PQstatus(holder) != CONNECTION_OK)
		fail_msg("holder connection: %s", PQerrorMessage(holder));
	PQclear(PQexec(holder, "DROP TABLE IF EXISTS pool_locked_probe"));
	PQclear(PQexec(holder, "CREATE TABLE pool_locked_probe (x int)"));
	PQclear(PQexec(holder, "BEGIN"));
	r = PQexec(holder, "LOCK TABLE pool_locked_probe IN ACCESS EXCLUSIVE MODE");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	settings(&s, "locked", 1, 0, 5);
	s.stmts = locked_stmts;
	s.statement_timeout_ms = 3000;
	p = pool_create(&s);
	t0 = now_mono();
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	r = pool_exec_prepared(pool_conn_pg(c), "t_one", 0, NULL, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	assert_true(now_mono() - t0 < 2.0);
	pool_release(p, c);
	PQclear(PQexec(holder, "COMMIT"));
	/* Once the lock is gone, the statement on that table is prepared and runs. */
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), 0);
	r = pool_exec_prepared(pool_conn_pg(c), "t_locked", 0, NULL, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	pool_release(p, c);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
	PQclear(PQexec(holder, "DROP TABLE pool_locked_probe"));
	PQfinish(holder);
}

/* ---- faults: connect errors, shutdown ------------------------------------ */

static void test_unreachable_database_fails_within_deadline(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	double t0, took;

	(void)state;
	settings(&s, "unreachable", 1, 0, 1.5);
	s.database_url = "postgresql://nobody@127.0.0.1:1/none";	/* refused */
	p = pool_create(&s);
	t0 = now_mono();
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), -1);
	took = now_mono() - t0;
	assert_int_equal(err.kind, POOL_ERR_CONNECT);
	assert_false(err.cut_short);	/* refused: evidence it is down */
	assert_true(took >= 1.0);	/* retried with backoff... */
	assert_true(took < 4.0);	/* ...but never past the deadline */
	pool_destroy(p);
}

/*
 * Once opening failed, the next checkout makes one attempt only: while
 * the database is down or failing over, requests are answered at once,
 * not after the retries (pool.h, POOL_FAILFAST); and how long it has been
 * unreachable is known.
 */
static void test_unreachable_database_fails_fast_after_a_failure(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	struct pool_stats st;
	double t0, first, second;

	(void)state;
	settings(&s, "failfast", 1, 0, 10);
	s.database_url = "postgresql://nobody@127.0.0.1:1/none";	/* refused */
	p = pool_create(&s);
	t0 = now_mono();
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), -1);
	first = now_mono() - t0;
	t0 = now_mono();
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), -1);
	second = now_mono() - t0;
	assert_int_equal(err.kind, POOL_ERR_CONNECT);
	/* The first retried for POOL_OPEN_RETRY (not the 10 s timeout)... */
	assert_true(first >= POOL_OPEN_RETRY * 0.9);
	assert_true(first < POOL_OPEN_RETRY + 2.0);
	/* ...the second tried once: a refused connect on loopback */
	assert_true(second < POOL_OPEN_RETRY * 0.5);
	pool_get_stats(p, &st);
	assert_int_equal(st.failed, 2);
	assert_true(st.unreachable_seconds >= first);
	assert_string_equal(st.server, "");
	pool_destroy(p);
}

/*
 * A server that takes the connection and says nothing (a loaded standby,
 * slower than the caller waits): the checkout gives up at its own
 * deadline, and the error says it was cut short, not refused, so a
 * replica is not taken for down by it (context.c).
 */
static void test_a_silent_server_is_cut_short_not_refused(void **state)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	char url[128];
	double t0, took;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(fd, 8), 0);	/* the kernel completes the handshake; nobody speaks */
	assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
	snprintf(url, sizeof(url), "postgresql://nobody@127.0.0.1:%d/none?sslmode=disable",
		 ntohs(addr.sin_port));
	settings(&s, "silent", 1, 0, 10);
	s.database_url = url;
	p = pool_create(&s);
	t0 = now_mono();
	assert_int_equal(pool_checkout(p, 0.3, "t", &c, &err), -1);
	took = now_mono() - t0;
	assert_int_equal(err.kind, POOL_ERR_CONNECT);
	assert_true(err.cut_short);
	assert_true(took >= 0.25);
	assert_true(took < s.connect_timeout * 0.5);	/* its deadline, not connect_timeout */
	pool_destroy(p);
	close(fd);
}

static void test_bad_password_fails_at_once(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	char url[512];
	const char *real = getenv("DATABASE_URL");
	const char *at = strchr(real + 14, '@');
	double t0;

	(void)state;
	settings(&s, "badpw", 1, 0, 10);
	snprintf(url, sizeof(url), "postgresql://paintstudio:wrong-password%s", at);
	s.database_url = url;
	p = pool_create(&s);
	t0 = now_mono();
	assert_int_equal(pool_checkout(p, 0, "t", &c, &err), -1);
	assert_int_equal(err.kind, POOL_ERR_CONNECT);
	assert_non_null(strstr(err.msg, "authentication failed"));
	assert_false(err.cut_short);
	assert_true(now_mono() - t0 < 5.0);	/* not retried for 10 s */
	pool_destroy(p);
}

struct shut {
	struct pool *p;
	int rc;
	enum pool_errkind kind;
	double took;
};

static void *shut_waiter(void *arg)
{
	struct shut *w = arg;
	struct pool_conn *c;
	struct pool_error err;
	double t0 = now_mono();

	w->rc = pool_checkout(w->p, 30, "t", &c, &err);
	w->kind = err.kind;
	w->took = now_mono() - t0;
	if (w->rc == 0)
		pool_release(w->p, c);
	return NULL;
}

static void test_shutdown_fails_waiters_promptly(void **state)
{
	struct pool_settings s;
	struct shut w;
	struct pool_conn *held, *late;
	struct pool_error err;
	pthread_t th;

	(void)state;
	settings(&s, "shutdown", 1, 0, 30);
	memset(&w, 0, sizeof(w));
	w.p = pool_create(&s);
	assert_int_equal(pool_checkout(w.p, 0, "holder", &held, &err), 0);
	pthread_create(&th, NULL, shut_waiter, &w);
	wait_waiting(w.p, 1);
	/* held is still out: shutdown gives up after its grace */
	assert_int_equal(pool_shutdown(w.p, 0.2), 1);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, -1);
	assert_int_equal(w.kind, POOL_ERR_CLOSED);
	assert_true(w.took < 5.0);
	/* no checkout after shutdown */
	assert_int_equal(pool_checkout(w.p, 0, "t", &late, &err), -1);
	assert_int_equal(err.kind, POOL_ERR_CLOSED);
	pool_release(w.p, held);	/* returned after shutdown: closed */
	{
		struct pool_stats st;

		pool_get_stats(w.p, &st);
		assert_int_equal(st.open, 0);
		assert_int_equal(st.checked_out, 0);
	}
	pool_destroy(w.p);
}

/*
 * While an open is still retrying, the openers that begin meanwhile try
 * once: with the database down, one request rides out POOL_OPEN_RETRY and
 * the others are answered at once. (Each used to retry for its own
 * POOL_OPEN_RETRY: a failover's first two seconds held every request
 * that needed the primary, a session look-up's too.)
 */
static void test_openers_meanwhile_try_once(void **state)
{
	struct pool_settings s;
	struct shut first;
	struct pool_conn *c;
	struct pool_error err;
	pthread_t th;
	double t0, second;

	(void)state;
	settings(&s, "meanwhile", 2, 0, 30);
	s.database_url = "postgresql://nobody@127.0.0.1:1/none";	/* refused */
	memset(&first, 0, sizeof(first));
	first.p = pool_create(&s);
	assert_false(pool_unreachable(first.p));	/* nothing tried yet */
	pthread_create(&th, NULL, shut_waiter, &first);
	sleep_ms(300);	/* its first attempt refused, it backs off and retries */
	assert_true(pool_unreachable(first.p));		/* said while it still retries */
	t0 = now_mono();
	assert_int_equal(pool_checkout(first.p, 0, "t", &c, &err), -1);
	second = now_mono() - t0;
	pthread_join(th, NULL);
	assert_int_equal(err.kind, POOL_ERR_CONNECT);
	assert_true(second < POOL_OPEN_RETRY * 0.25);
	assert_int_equal(first.rc, -1);
	assert_true(first.took >= POOL_OPEN_RETRY * 0.9);
	assert_true(pool_unreachable(first.p));
	sleep_ms((int)(POOL_FAILFAST * 1000) + 100);	/* no attempt since: no longer said */
	assert_false(pool_unreachable(first.p));
	pool_destroy(first.p);
}

/* A pool of one connection, 0.1 s its leak threshold, and that connection checked out for holder. */
static struct pool *leak_pool(struct pool_settings *s, const char *name, const char *holder,
			      struct pool_conn **c)
{
	struct pool_error err;
	struct pool *p;

	settings(s, name, 1, 0, 5);
	s->leak_threshold = 0.1;
	p = pool_create(s);
	assert_int_equal(pool_checkout(p, 0, holder, c, &err), 0);
	return p;
}

static void test_leak_report_names_the_route(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_stats st;

	(void)state;
	p = leak_pool(&s, "leak", "paints.get", &c);
	assert_int_equal(pool_report_leaks(p), 0);
	sleep_ms(200);
	assert_int_equal(pool_report_leaks(p), 1);
	assert_int_equal(pool_report_leaks(p), 0);	/* once per checkout */
	pool_release(p, c);
	pool_get_stats(p, &st);
	assert_int_equal(st.leaks, 1);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
}

/* A connection expected to be held longer (a streamed answer) is a leak only past that. */
static void test_expected_hold_is_no_leak(void **state)
{
	struct pool_settings s;
	struct pool *p;
	struct pool_conn *c;
	struct pool_error err;
	struct pool_stats st;

	(void)state;
	p = leak_pool(&s, "expect", "paints.export", &c);
	pool_conn_expect(p, c, 0.3);	/* a leak past 0.3 + 0.1 s from now */
	sleep_ms(200);
	assert_int_equal(pool_report_leaks(p), 0);
	sleep_ms(300);
	assert_int_equal(pool_report_leaks(p), 1);
	pool_release(p, c);
	/* The next checkout of that connection has the pool's threshold again. */
	assert_int_equal(pool_checkout(p, 0, "paints.get", &c, &err), 0);
	sleep_ms(200);
	assert_int_equal(pool_report_leaks(p), 1);
	pool_release(p, c);
	pool_get_stats(p, &st);
	assert_int_equal(st.leaks, 2);
	assert_int_equal(pool_shutdown(p, 1), 0);
	pool_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bound_never_exceeded),
		cmocka_unit_test(test_waiters_served_in_arrival_order),
		cmocka_unit_test(test_timeout_fires_at_its_value),
		cmocka_unit_test(test_overflow_kept_then_reaped_when_idle),
		cmocka_unit_test(test_steady_overflow_load_opens_no_more),
		cmocka_unit_test(test_recycle_replaces_old_connections),
		cmocka_unit_test(test_pre_ping_hides_a_killed_connection),
		cmocka_unit_test(test_broken_connection_is_discarded_on_return),
		cmocka_unit_test(test_one_broken_connection_makes_older_ones_suspect),
		cmocka_unit_test(test_discarded_connection_is_closed_and_older_ones_vetted),
		cmocka_unit_test(test_returned_mid_transaction_comes_back_clean),
		cmocka_unit_test(test_statements_prepared_once_per_connection),
		cmocka_unit_test(test_a_locked_table_holds_up_no_new_connection),
		cmocka_unit_test(test_unreachable_database_fails_within_deadline),
		cmocka_unit_test(test_unreachable_database_fails_fast_after_a_failure),
		cmocka_unit_test(test_a_silent_server_is_cut_short_not_refused),
		cmocka_unit_test(test_bad_password_fails_at_once),
		cmocka_unit_test(test_shutdown_fails_waiters_promptly),
		cmocka_unit_test(test_openers_meanwhile_try_once),
		cmocka_unit_test(test_leak_report_names_the_route),
		cmocka_unit_test(test_expected_hold_is_no_leak),
	};

	log_setup(LOG_ERROR, LOG_FORMAT_TEXT);
	return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
