/*
 * cache_outbox: the outbox side of the cache (pieces T and A in cache.h).
 * Drains apply the invalidations PostgreSQL recorded in cache_outbox and
 * are the only way trust is granted; a writer's acknowledgement waits,
 * bounded, when its own invalidation could not land; one drainer thread
 * per process drains every CACHE_DRAIN_EVERY_MS or when notified.
 */
#define _GNU_SOURCE
#include "cache/cache_internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/strbuf.h"
#include "base/util.h"
#include "db/pgconnect.h"
#include "db/pool.h"
#include "db/replicas.h"

#define CLAIM_MARGIN_MS 100	/* an announced lease outlasts the local one by this */
#define ACK_MARGIN_MS 50	/* the writer's last-resort wait adds this... */
#define ACK_DRIFT_PPM 1000	/* ...and this share of TRUST_MS for clock rates */
#define ACK_POLL_MS 5		/* a waiting writer looks this often */
#define DRAIN_STATEMENT_MS 1000	/* the drainer's statements give up after this */
#define NOTIFY_CHANNEL "ps_cache_outbox"

static struct pool *drain_pool;
static char holder[96];		/* this process in cache_leases */

/* The drainer thread (cache_start/cache_stop). */
static pthread_t drainer;
static int drainer_running;
static int stop_pipe[2] = { -1, -1 };
static struct pool_settings drainer_settings;
static char drainer_app_name[128];

void cache_outbox_setup(void)
{
	char host[64] = "";
	unsigned char raw[4];
	char hex[9];

	gethostname(host, sizeof(host) - 1);
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	snprintf(holder, sizeof(holder), "%.60s/%d/%s", host, (int)getpid(), hex);
}

void cache_set_pool(struct pool *p)
{
	drain_pool = p;
}

/* Run a statement with text parameters; 0 if it reached want. */
static int pg_ok(PGconn *pg, const char *sql, int n, const char *const *params,
		 ExecStatusType want, PGresult **out)
{
	PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
	int ok = PQresultStatus(r) == want;

	if (!ok) {
		log_msg(LOG_WARN, "cache: PostgreSQL: %s", PQresultErrorMessage(r));
		PQclear(r);
		r = NULL;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return ok ? 0 : -1;
}

/* Announce (and commit) this process's lease on ident before the outbox snapshot: piece T. */
static int announce(PGconn *pg, const char ident[CACHE_IDENT_LEN])
{
	char ttl[16];
	const char *params[3] = { holder, ident, ttl };

	snprintf(ttl, sizeof(ttl), "%d", CACHE_TRUST_MS + CLAIM_MARGIN_MS);
	return pg_ok(pg, "INSERT INTO cache_leases (holder, redis, until) "
		     "VALUES ($1, $2, clock_timestamp() + $3::int * interval '1 millisecond') "
		     "ON CONFLICT (holder) DO UPDATE SET redis = EXCLUDED.redis, until = EXCLUDED.until",
		     3, params, PGRES_COMMAND_OK, NULL);
}

/*
 * Apply one batch of the outbox on this thread's connection to ident,
 * then delete the rows unless another key space is announced. Applied
 * first, deleted after: a failure in between repeats, never loses. 0 with
 * *n rows read and *deleted removed, or -1.
 */
static int drain_batch(PGconn *pg, const char ident[CACHE_IDENT_LEN], int *n, int *deleted)
{
	int64_t ids[CACHE_DRAIN_BATCH];
	struct cache_conn *t;
	struct strbuf list;
	const char *params[2];
	PGresult *r;
	uint64_t lsn = 0;
	int i, rc = -1;

	*n = *deleted = 0;
	/* The position is read after the snapshot: it covers every row's commit (piece R). */
	if (pg_ok(pg, "SELECT id, paint_id, pg_current_wal_lsn() FROM cache_outbox ORDER BY id "
		  "LIMIT " PS_STR(CACHE_DRAIN_BATCH), 0, NULL, PGRES_TUPLES_OK, &r) != 0)
		return -1;
	*n = PQntuples(r);
	if (*n > 0 && cache_conn_wal_on() && replicas_lsn_parse(PQgetvalue(r, 0, 2), &lsn) != 0) {
		PQclear(r);
		return -1;
	}
	strbuf_init(&list);
	strbuf_putc(&list, '{');
	for (i = 0; i < *n; i++) {
		ids[i] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		strbuf_printf(&list, "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
	}
	strbuf_putc(&list, '}');
	PQclear(r);
	if ((t = cache_conn_get(0)) == NULL || strcmp(t->ident, ident) != 0 ||
	    (*n > 0 && cache_invalidate_on(t, ids, *n, lsn) != 0) || cache_conn_probe(t) != 0)
		goto out;
	if (*n == 0) {
		rc = 0;
		goto out;
	}
	params[0] = list.buf;
	params[1] = ident;
	if (pg_ok(pg, "DELETE FROM cache_outbox WHERE id = ANY($1::int8[]) AND NOT EXISTS "
		  "(SELECT 1 FROM cache_leases WHERE until > clock_timestamp() AND redis <> $2)",
		  2, params, PGRES_COMMAND_OK, &r) != 0)
		goto out;
	*deleted = atoi(PQcmdTuples(r));
	PQclear(r);
	rc = 0;
out:
	strbuf_free(&list);
	return rc;
}

/*
 * One drain on pg (autocommit, idle) and this thread's Redis connection.
 * Returns 0 and *applied rows when trust was granted; -1 when Redis or
 * PostgreSQL failed (then trust is not granted; Redis failures withdraw
 * it).
 */
static int drain_on(PGconn *pg, int *applied)
{
	struct cache_conn *t;
	unsigned long long target;
	long long t0;
	char ident[CACHE_IDENT_LEN];
	int total = 0, n, deleted;

	*applied = 0;
	atomic_fetch_add(&cache_n.drains, 1);
	/* First a check, so that a failing Redis is not announced as trusted. */
	if ((t = cache_conn_get(0)) == NULL || cache_conn_probe(t) != 0)
		return -1;
	memcpy(ident, t->ident, sizeof(ident));
	target = cache_trust_seq();
	t0 = cache_now_ms();
	if (announce(pg, ident) != 0)
		return -1;
	do {
		if (drain_batch(pg, ident, &n, &deleted) != 0)
			return -1;
		total += n;
		/*
		 * A full batch the guard kept (another key space is announced):
		 * the rows after it were never read, so no trust from this drain.
		 */
		if (n == CACHE_DRAIN_BATCH && deleted < n)
			return -1;
	} while (n == CACHE_DRAIN_BATCH);
	/* A short batch: this snapshot held every pending row, all applied. */
	*applied = total;
	atomic_fetch_add(&cache_n.drained, (unsigned long long)total);
	cache_trust_grant(ident, target, t0);
	return 0;
}

int cache_drain(struct pool *p)
{
	struct pool_conn *c;
	struct pool_error err;
	int applied, rc;

	if (p == NULL)
		p = drain_pool;
	if (p == NULL || !cache_conn_enabled())
		return -1;
	if (pool_checkout(p, 1.0, "cache.drain", &c, &err) != 0)
		return -1;
	rc = drain_on(pool_conn_pg(c), &applied);
	pool_release(p, c);
	return rc == 0 ? applied : -1;
}

/* ---- the writer's acknowledgement (piece A) ------------------------------ */

/* The primary's WAL position on pg (after a commit); 0 when it cannot be read. */
static uint64_t primary_position(PGconn *pg)
{
	PGresult *r = PQexec(pg, "SELECT pg_current_wal_lsn()");
	uint64_t lsn = 0;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
	    replicas_lsn_parse(PQgetvalue(r, 0, 0), &lsn) != 0)
		lsn = 0;
	PQclear(r);
	return lsn;
}

/*
 * Delete the applied outbox rows (one id, or with many an int8[] literal
 * of n ids) unless another key space is announced: 1 when every one of
 * them was deleted now.
 */
static int outbox_done(PGconn *pg, const char *ids, int many, int n, const char *applied)
{
	const char *params[2] = { ids, applied };
	PGresult *r;
	int done;

	if (many)
		r = PQexecParams(pg, CACHE_OUTBOX_DONE_MANY_SQL, 2, NULL, params, NULL, NULL, 0);
	else
		r = pool_exec_prepared(pg, "outbox_done", 2, params, NULL, NULL, 0);
	done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == n;
	PQclear(r);
	return done;
}

/*
 * The fault path of an acknowledgement (piece A): the rows ids (as for
 * outbox_done) were not all applied and deleted. Let the other processes
 * drain them now, then wait, from w and at most about CACHE_TRUST_MS,
 * until they are gone or no lease can still be running.
 */
static void ack_wait(PGconn *pg, long long w, const char *ids, int many, int n,
		     const char applied[CACHE_IDENT_LEN])
{
	long long deadline, waited;
	char one[32];
	const char *p1[1] = { ids };
	PGresult *r;

	if (!many) {	/* the pending check takes an array */
		snprintf(one, sizeof(one), "{%s}", ids);
		p1[0] = one;
	}
	atomic_fetch_add(&cache_n.ack_waits, 1);
	PQclear(PQexec(pg, "NOTIFY " NOTIFY_CHANNEL));
	deadline = w + CACHE_TRUST_MS + CACHE_TRUST_MS * ACK_DRIFT_PPM / 1000000 + ACK_MARGIN_MS;
	while (cache_now_ms() < deadline) {
		int pending, running;

		/* Ours landed: done once no other key space is announced. */
		if (applied[0] && outbox_done(pg, ids, many, n, applied))
			break;
		r = PQexecParams(pg, "SELECT EXISTS (SELECT 1 FROM cache_outbox WHERE id = ANY($1::int8[])), "
				 "EXISTS (SELECT 1 FROM cache_leases WHERE until > clock_timestamp())",
				 1, NULL, p1, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			/* PostgreSQL failed: only the clock can tell now. */
			PQclear(r);
			while (cache_now_ms() < deadline)
				cache_sleep_ms(ACK_POLL_MS);
			break;
		}
		pending = PQgetvalue(r, 0, 0)[0] == 't';
		running = PQgetvalue(r, 0, 1)[0] == 't';
		PQclear(r);
		if (!pending || !running)
			break;
		cache_sleep_ms(ACK_POLL_MS);
	}
	waited = cache_now_ms() - w;
	atomic_fetch_add(&cache_n.ack_wait_ms, (unsigned long long)(waited > 0 ? waited : 0));
}

/*
 * Apply the invalidation of paint_ids[0..n) on this thread's Redis
 * connection, in batches of CACHE_DRAIN_BATCH: 0 when all landed, with
 * applied set to the key space they landed in; -1 otherwise.
 */
static int invalidate_all(PGconn *pg, const int64_t *paint_ids, int n,
			  char applied[CACHE_IDENT_LEN])
{
	struct cache_conn *t = cache_conn_get(0);
	uint64_t lsn = cache_conn_wal_on() ? primary_position(pg) : 0;
	int i, k;

	/* With replicas and no position, leave the rows to a drainer (it reads one). */
	if (t == NULL || (cache_conn_wal_on() && lsn == 0))
		return -1;
	for (i = 0; i < n; i += k) {
		k = n - i < CACHE_DRAIN_BATCH ? n - i : CACHE_DRAIN_BATCH;
		if (cache_invalidate_on(t, paint_ids + i, k, lsn) != 0)
			return -1;
	}
	memcpy(applied, t->ident, CACHE_IDENT_LEN);
	return 0;
}

void cache_after_write(PGconn *pg, int64_t paint_id, const char *outbox_id)
{
	long long w = cache_now_ms();
	char applied[CACHE_IDENT_LEN] = "";

	if (invalidate_all(pg, &paint_id, 1, applied) == 0 &&
	    outbox_done(pg, outbox_id, 0, 1, applied))
		return;	/* the normal path */
	/* Not applied (Redis failed, or the cache is off here): the row stays. */
	ack_wait(pg, w, outbox_id, 0, 1, applied);
}

void cache_after_writes(PGconn *pg, const int64_t *paint_ids, int n, const char *outbox_ids)
{
	long long w = cache_now_ms();
	char applied[CACHE_IDENT_LEN] = "";

	if (n <= 0)
		return;
	if (invalidate_all(pg, paint_ids, n, applied) == 0 &&
	    outbox_done(pg, outbox_ids, 1, n, applied))
		return;
	ack_wait(pg, w, outbox_ids, 1, n, applied);
}

/* ---- the drainer thread ------------------------------------------------------- */

static PGconn *drainer_connect(void)
{
	struct pool_error err;
	PGconn *pg = pgconnect_open(&drainer_settings, 2.0, &err);
	PGresult *r;

	if (pg == NULL)
		return NULL;
	r = PQexec(pg, "LISTEN " NOTIFY_CHANNEL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		PQfinish(pg);
		return NULL;
	}
	PQclear(r);
	return pg;
}

/* Sleep up to ms, waking early on a notice or cache_stop. 1 when stopping. */
static int drainer_wait(PGconn *pg, int ms)
{
	struct pollfd fds[2];
	int n = 1;
	PGnotify *note;

	memset(fds, 0, sizeof(fds));
	fds[0].fd = stop_pipe[0];
	fds[0].events = POLLIN;
	if (pg && PQsocket(pg) >= 0) {
		fds[1].fd = PQsocket(pg);
		fds[1].events = POLLIN;
		n = 2;
	}
	if (poll(fds, (nfds_t)n, ms) < 0 && errno != EINTR)
		cache_sleep_ms(ms);
	if (fds[0].revents)
		return 1;
	if (n == 2 && fds[1].revents) {
		PQconsumeInput(pg);
		while ((note = PQnotifies(pg)) != NULL)
			PQfreemem(note);
	}
	return 0;
}

static void *drainer_main(void *arg)
{
	PGconn *pg = NULL;
	long long last_prune = 0;
	int applied;

	(void)arg;
	for (;;) {
		int pause = CACHE_DRAIN_EVERY_MS;

		if (pg == NULL && (pg = drainer_connect()) == NULL)
			pause = 1000;
		if (pg) {
			drain_on(pg, &applied);
			if (cache_now_ms() - last_prune > 60000) {	/* leases of processes long gone */
				PQclear(PQexec(pg, "DELETE FROM cache_leases WHERE until < now() - interval '1 hour'"));
				last_prune = cache_now_ms();
			}
			if (PQstatus(pg) != CONNECTION_OK) {
				PQfinish(pg);
				pg = NULL;
				pause = 0;
			}
		}
		if (drainer_wait(pg, pause))
			break;
	}
	cache_trust_withdraw();
	if (pg) {
		const char *params[1] = { holder };

		pg_ok(pg, "DELETE FROM cache_leases WHERE holder = $1", 1, params, PGRES_COMMAND_OK, NULL);
		PQfinish(pg);
	}
	return NULL;
}

void cache_outbox_start(const struct pool_settings *ps)
{
	if (!cache_conn_enabled() || drainer_running)
		return;
	pgconnect_side_settings(&drainer_settings, ps, "cache", drainer_app_name,
				sizeof(drainer_app_name), DRAIN_STATEMENT_MS);
	if (pipe(stop_pipe) != 0)
		die("cache: pipe failed: %s", strerror(errno));
	/*
	 * The thread inherits a mask blocking the signals the main thread
	 * sigwaits for (it may start before server_run blocks them), and
	 * SIGPIPE (before server_run ignores it, a write to a closed Redis
	 * socket must fail with EPIPE, not end the process).
	 */
	{
		sigset_t block, old;

		sigemptyset(&block);
		sigaddset(&block, SIGTERM);
		sigaddset(&block, SIGINT);
		sigaddset(&block, SIGHUP);
		sigaddset(&block, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &block, &old);
		if (pthread_create(&drainer, NULL, drainer_main, NULL) != 0)
			die("cache: cannot start the drainer thread");
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	drainer_running = 1;
}

void cache_outbox_stop(void)
{
	if (!drainer_running)
		return;
	if (write(stop_pipe[1], "x", 1) != 1)
		log_msg(LOG_WARN, "cache: cannot wake the drainer");
	pthread_join(drainer, NULL);
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	stop_pipe[0] = stop_pipe[1] = -1;
	drainer_running = 0;
}
