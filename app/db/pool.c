/*
 * pool: the bounded connection pool (the contract is in pool.h). One mutex
 * guards the counts and lists, and nothing blocks while it is held:
 * connects, pings and closes happen after unlocking, on a slot reserved
 * under the lock. Waiters queue first come, first served, and a release
 * hands its connection straight to the first of them.
 */
#define _GNU_SOURCE
#include "db/pool.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-events.h>
#include <sodium.h>

#include "base/log.h"
#include "base/strbuf.h"
#include "base/util.h"
#include "base/workers.h"
#include "db/pgconnect.h"
#include "db/trace.h"

/* Statements of varying shape prepared lazily on one connection. */
#define POOL_DYN_MAX 64
/* The most named statements (pool_settings.stmts) a pool may have. */
#define POOL_STMTS_MAX 256

struct pool_conn {
	PGconn *pg;
	const struct pool_settings *set;	/* the pool's: its named statements */
	unsigned char prepared[POOL_STMTS_MAX];	/* 1: set->stmts[i] is prepared on pg */
	uint64_t dyn[POOL_DYN_MAX];	/* hashes of the SQL prepared as "d_<hash>" */
	int ndyn;			/* entries used */
	int dyn_next;			/* next slot to reuse when full */
	double created;		/* monotonic seconds */
	double last_used;	/* monotonic; when last released */
	double checked_out_at;
	const char *holder;	/* route holding it (static string) */
	int leak_reported;	/* pool_report_leaks logged it already */
	double leak_after;	/* seconds held before it is a leak; written by its holder under p->mu */
	int discard;		/* close it when it comes back (pool_conn_discard) */
	struct pool_conn *next;	/* idle list, or checked-out list */
	struct pool_conn *prev;	/* checked-out list only */
};

/* One thread waiting for a connection; lives on that thread's stack. */
struct waiter {
	pthread_cond_t cv;
	struct pool_conn *conn;	/* handed over by a release */
	int slot;		/* granted the right to open a connection */
	struct waiter *next;
};

struct pool {
	struct pool_settings set;

	/*
	 * mu guards everything below. While it is held:
	 *   open == idle + checked_out (every open connection is in exactly
	 *   one of the two, counting reserved slots being opened as checked
	 *   out), open <= size + max_overflow, and the wait queue is non-empty
	 *   only if there is no idle connection and open is at the bound.
	 * Nothing blocks while mu is held: no connect, query or close.
	 */
	pthread_mutex_t mu;
	pthread_cond_t drained;		/* checked_out reached 0 (shutdown) */
	struct pool_conn *idle;		/* LIFO: warm connections stay warm */
	struct pool_conn *busy;		/* checked out and open (for leak reports) */
	struct waiter *head, *tail;	/* FIFO of waiting checkouts */
	int nidle, open, checked_out, waiting;
	int peak;			/* most checked out since pool_take_peak */
	int closing;
	/*
	 * When one connection turns out broken, the server probably dropped
	 * them all (a restart): connections created before this monotonic time
	 * are pinged before use even without pre_ping.
	 */
	double suspect_before;
	/*
	 * Reachability, for fail-fast opening and failovers: the last
	 * attempt to open that failed (monotonic; 0 none since the last
	 * success; set by an open still retrying too), the first
	 * failure since a connection last worked (0: none), and the server
	 * of the last connection opened (st.server).
	 */
	double open_failed_at;
	double trouble_since;
	struct pool_stats st;		/* counters only (gauges from above) */
};

static void lock(struct pool *p);
static void unlock(struct pool *p);
static void grant_slot_locked(struct pool *p);
static int conn_open(struct pool *p, double deadline, struct pool_conn *c,
		     struct pool_error *err);
static void conn_close(struct pool_conn *c);
static int conn_ping(const struct pool *p, PGconn *pg);
static int conn_clean(PGconn *pg);
static struct timespec abs_deadline(double mono_deadline);

static void lock(struct pool *p)
{
	if (pthread_mutex_lock(&p->mu) != 0)
		die("pool: mutex lock failed");
}

static void unlock(struct pool *p)
{
	if (pthread_mutex_unlock(&p->mu) != 0)
		die("pool: mutex unlock failed");
}

struct pool *pool_create(const struct pool_settings *settings)
{
	struct pool *p = xcalloc(1, sizeof(*p));
	pthread_condattr_t ca;

	p->set = *settings;
	if (p->set.nstmts > POOL_STMTS_MAX)
		die("pool: %d named statements, at most %d", p->set.nstmts, POOL_STMTS_MAX);
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->drained, &ca);
	pthread_condattr_destroy(&ca);
	return p;
}

/* A monotonic deadline as the absolute timespec pthread_cond_timedwait wants. */
static struct timespec abs_deadline(double mono_deadline)
{
	struct timespec ts;

	ts.tv_sec = (time_t)mono_deadline;
	ts.tv_nsec = (long)((mono_deadline - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/*
 * A slot under the bound became free (a connection closed or an open
 * failed): give it to the oldest waiter, who opens the connection itself.
 */
static void grant_slot_locked(struct pool *p)
{
	struct waiter *w = p->head;

	if (w == NULL || p->open >= p->set.size + p->set.max_overflow)
		return;
	p->head = w->next;
	if (p->head == NULL)
		p->tail = NULL;
	p->waiting--;
	p->open++;
	p->checked_out++;
	w->slot = 1;
	pthread_cond_signal(&w->cv);
}

/*
 * Wait in the FIFO queue for a hand-over, a slot grant, shutdown or the
 * deadline. Called and returns with p->mu held (the wait releases it).
 * 0 with *c handed over or *must_open set; -1 with err filled.
 */
static int wait_turn_locked(struct pool *p, double deadline, double timeout,
			    struct pool_conn **c, int *must_open, struct pool_error *err)
{
	struct waiter w = { .conn = NULL, .slot = 0, .next = NULL };
	struct timespec ts = abs_deadline(deadline);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cv, &ca);
	pthread_condattr_destroy(&ca);
	if (p->tail)
		p->tail->next = &w;
	else
		p->head = &w;
	p->tail = &w;
	p->waiting++;
	workers_block_begin();
	while (w.conn == NULL && !w.slot && !p->closing) {
		if (pthread_cond_timedwait(&w.cv, &p->mu, &ts) == ETIMEDOUT)
			break;
	}
	workers_block_end();
	pthread_cond_destroy(&w.cv);
	if (w.conn) {
		*c = w.conn;
		return 0;
	}
	if (w.slot) {
		*must_open = 1;
		return 0;
	}
	/* Timed out or shutting down: leave the queue (a releaser never saw us). */
	{
		struct waiter **pp = &p->head, *prev = NULL;

		while (*pp != &w) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		*pp = w.next;
		if (p->tail == &w)
			p->tail = prev;
	}
	p->waiting--;
	if (p->closing) {
		err->kind = POOL_ERR_CLOSED;
		snprintf(err->msg, sizeof(err->msg), "the service is shutting down");
	} else {
		p->st.timeouts++;
		err->kind = POOL_ERR_TIMEOUT;
		snprintf(err->msg, sizeof(err->msg),
			 "no database connection free within %.0f s (%d in use)",
			 timeout, p->checked_out);
	}
	return -1;
}

/*
 * Take an idle connection, a slot to open one, or wait for either. 0 with
 * *c (an idle connection) or *must_open (a reserved slot), counted as
 * checked out; -1 with err filled.
 */
static int reserve(struct pool *p, double start, double timeout, struct pool_conn **c,
		   int *must_open, double *suspect_before, struct pool_error *err)
{
	int rc = 0;

	lock(p);
	if (p->closing) {
		unlock(p);
		err->kind = POOL_ERR_CLOSED;
		snprintf(err->msg, sizeof(err->msg), "the service is shutting down");
		return -1;
	}
	if (p->head == NULL && p->idle) {
		*c = p->idle;
		p->idle = (*c)->next;
		p->nidle--;
		p->checked_out++;
	} else if (p->head == NULL && p->open < p->set.size + p->set.max_overflow) {
		p->open++;
		p->checked_out++;
		*must_open = 1;
	} else {
		rc = wait_turn_locked(p, start + timeout, timeout, c, must_open, err);
	}
	p->st.wait_seconds_total += now_mono() - start;
	if (rc == 0)
		p->st.checkouts++;
	*suspect_before = p->suspect_before;
	unlock(p);
	return rc;
}

/*
 * Vet a connection that was idle: past its age, or found dead by a ping,
 * it is closed and *must_open set (its slot is kept). Called unlocked.
 */
static void vet_idle(struct pool *p, struct pool_conn *c, double suspect_before, int *must_open)
{
	double now = now_mono();
	int recycle = now - c->created > p->set.recycle;

	if (!recycle &&
	    !(((p->set.pre_ping && now - c->last_used > POOL_PREPING_IDLE) ||
	       c->created < suspect_before) && conn_ping(p, c->pg) != 0))
		return;
	conn_close(c);
	*must_open = 1;
	lock(p);
	if (recycle)
		p->st.recycled++;
	else
		p->st.invalidated++;
	p->st.closed++;
	unlock(p);
}

/* Open a connection in a reserved slot (c may be a closed one to reuse). */
static int open_reserved(struct pool *p, double deadline, struct pool_conn **c,
			 struct pool_error *err)
{
	if (*c == NULL)
		*c = xcalloc(1, sizeof(**c));
	if (conn_open(p, deadline, *c, err) != 0) {
		free(*c);
		*c = NULL;
		lock(p);
		p->open--;
		p->checked_out--;
		p->st.failed++;
		grant_slot_locked(p);
		if (p->closing && p->checked_out == 0)
			pthread_cond_broadcast(&p->drained);
		unlock(p);
		return -1;
	}
	lock(p);
	p->st.opened++;
	unlock(p);
	return 0;
}

int pool_checkout(struct pool *p, double timeout, const char *holder,
		  struct pool_conn **out, struct pool_error *err)
{
	double start = now_mono(), suspect_before;
	struct pool_conn *c = NULL;
	int must_open = 0;

	if (timeout <= 0)
		timeout = p->set.timeout;
	err->kind = POOL_ERR_NONE;
	err->cut_short = 0;
	err->msg[0] = '\0';
	if (reserve(p, start, timeout, &c, &must_open, &suspect_before, err) != 0)
		return -1;
	if (c)
		vet_idle(p, c, suspect_before, &must_open);
	if (must_open && open_reserved(p, start + timeout, &c, err) != 0)
		return -1;
	c->holder = holder;
	c->checked_out_at = now_mono();
	c->leak_reported = 0;
	lock(p);
	c->leak_after = p->set.leak_threshold;
	if (p->checked_out > p->peak)
		p->peak = p->checked_out;
	c->prev = NULL;
	c->next = p->busy;
	if (p->busy)
		p->busy->prev = c;
	p->busy = c;
	unlock(p);
	*out = c;
	return 0;
}

int pool_report_leaks(struct pool *p)
{
	enum { MAX_REPORT = 32 };
	struct { const char *holder; double held, threshold; } found[MAX_REPORT];
	double now = now_mono();
	struct pool_conn *c;
	int n = 0, i;

	lock(p);
	for (c = p->busy; c && n < MAX_REPORT; c = c->next) {
		if (c->leak_reported || now - c->checked_out_at <= c->leak_after)
			continue;
		c->leak_reported = 1;
		p->st.leaks++;
		found[n].holder = c->holder;
		found[n].held = now - c->checked_out_at;
		found[n].threshold = c->leak_after;
		n++;
	}
	unlock(p);
	for (i = 0; i < n; i++) {
		struct log_line l;

		log_begin(&l, LOG_WARN, "database connection held past the leak threshold");
		log_str(&l, "route", found[i].holder);
		log_num(&l, "held_ms", found[i].held * 1000.0);
		log_num(&l, "threshold_ms", found[i].threshold * 1000.0);
		log_end(&l);
	}
	return n;
}

void pool_conn_expect(struct pool *p, struct pool_conn *c, double seconds)
{
	double after = now_mono() - c->checked_out_at + seconds + p->set.leak_threshold;

	lock(p);
	if (after > c->leak_after)
		c->leak_after = after;
	unlock(p);
}

PGconn *pool_conn_pg(const struct pool_conn *c)
{
	return c->pg;
}

/* Take c off the checked-out list; p->mu held. */
static void leave_busy_locked(struct pool *p, struct pool_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		p->busy = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	p->checked_out--;
}

static void log_late_return(const char *holder, double held)
{
	struct log_line l;

	log_begin(&l, LOG_WARN, "database connection returned after the leak threshold");
	log_str(&l, "route", holder);
	log_num(&l, "held_ms", held * 1000.0);
	log_end(&l);
}

void pool_release(struct pool *p, struct pool_conn *c)
{
	int healthy = !c->discard && conn_clean(c->pg) == 0;
	/* Only its holder (this thread) writes leak_after: read without the lock. */
	double now = now_mono(), held = now - c->checked_out_at, leak_after = c->leak_after;
	int close_it = 0;

	if (held > leak_after)
		log_late_return(c->holder, held);
	c->last_used = now;
	c->holder = NULL;

	lock(p);
	leave_busy_locked(p, c);
	if (held > leak_after && !c->leak_reported)
		p->st.leaks++;
	if (!healthy) {
		p->suspect_before = now;
		if (p->trouble_since == 0)
			p->trouble_since = now;
		p->open--;
		p->st.invalidated++;
		p->st.closed++;
		close_it = 1;
		grant_slot_locked(p);
	} else if (p->head && !p->closing) {
		struct waiter *w = p->head;

		/* Hand over directly: a new arrival cannot barge in. */
		p->head = w->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->waiting--;
		p->checked_out++;
		w->conn = c;
		pthread_cond_signal(&w->cv);
	} else if (p->closing) {
		p->open--;
		p->st.closed++;
		close_it = 1;
	} else {
		/*
		 * Kept even beyond size: closing overflow here made a busy
		 * pool reopen a connection on most checkouts. pool_reap_idle
		 * closes what stays idle for idle_timeout.
		 */
		c->next = p->idle;
		p->idle = c;
		p->nidle++;
	}
	if (p->closing && p->checked_out == 0)
		pthread_cond_broadcast(&p->drained);
	unlock(p);

	if (close_it) {
		conn_close(c);
		free(c);
	}
}

int pool_reap_idle(struct pool *p)
{
	struct pool_conn **pp, *victims = NULL, *c;
	double now = now_mono();
	int n = 0;

	lock(p);
	/*
	 * The idle list is LIFO, so the least recently used connections are
	 * at its end: walk it and unlink those idle too long while the pool
	 * holds more than size. Closing happens after unlocking.
	 */
	pp = &p->idle;
	while (*pp) {
		c = *pp;
		if (p->open > p->set.size && now - c->last_used >= p->set.idle_timeout) {
			*pp = c->next;
			c->next = victims;
			victims = c;
			p->nidle--;
			p->open--;
			p->st.closed++;
			p->st.reaped++;
			n++;
		} else {
			pp = &c->next;
		}
	}
	unlock(p);
	while (victims) {
		c = victims;
		victims = c->next;
		conn_close(c);
		free(c);
	}
	return n;
}

int pool_take_peak(struct pool *p)
{
	int peak;

	lock(p);
	peak = p->peak > p->checked_out ? p->peak : p->checked_out;
	p->peak = p->checked_out;
	unlock(p);
	return peak;
}

void pool_get_stats(struct pool *p, struct pool_stats *st)
{
	lock(p);
	*st = p->st;
	st->size = p->set.size;
	st->max_overflow = p->set.max_overflow;
	st->max = p->set.size + p->set.max_overflow;
	st->open = p->open;
	st->idle = p->nidle;
	st->checked_out = p->checked_out;
	st->overflow = p->open > p->set.size ? p->open - p->set.size : 0;
	st->waiting = p->waiting;
	st->unreachable_seconds = p->open_failed_at && p->trouble_since
		? now_mono() - p->trouble_since : 0;
	unlock(p);
}

void pool_conn_discard(struct pool *p, struct pool_conn *c)
{
	double now = now_mono();

	lock(p);
	c->discard = 1;
	p->suspect_before = now;
	if (p->trouble_since == 0)
		p->trouble_since = now;
	unlock(p);
}

int pool_shutdown(struct pool *p, double grace)
{
	struct timespec ts = abs_deadline(now_mono() + grace);
	struct pool_conn *idle;
	struct waiter *w;
	int left;

	lock(p);
	p->closing = 1;
	for (w = p->head; w; w = w->next)
		pthread_cond_signal(&w->cv);
	while (p->checked_out > 0) {
		if (pthread_cond_timedwait(&p->drained, &p->mu, &ts) == ETIMEDOUT)
			break;
	}
	left = p->checked_out;
	idle = p->idle;
	p->idle = NULL;
	p->open -= p->nidle;
	p->st.closed += (uint64_t)p->nidle;
	p->nidle = 0;
	unlock(p);

	while (idle) {
		struct pool_conn *next = idle->next;

		conn_close(idle);
		free(idle);
		idle = next;
	}
	return left;
}

void pool_destroy(struct pool *p)
{
	if (p == NULL)
		return;
	assert(p->idle == NULL && p->head == NULL);
	pthread_cond_destroy(&p->drained);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/*
 * libpq's hook for data attached to a connection: the pool_conn a PGconn
 * belongs to (PQinstanceData), which pool_exec_prepared needs. Nothing to
 * do on any event.
 */
static int conn_event(PGEventId id, void *info, void *pass)
{
	(void)id;
	(void)info;
	(void)pass;
	return 1;
}

/*
 * After an open that began at started: note whether the database could be
 * reached, and which server a new connection reached (a failover when
 * another than the last). pg NULL: the open failed.
 */
static void note_open(struct pool *p, PGconn *pg, double started)
{
	double now = now_mono(), took = 0;
	char server[sizeof(p->st.server)], was[sizeof(p->st.server)];
	int moved;

	if (pg)
		snprintf(server, sizeof(server), "%s:%s", PQhost(pg), PQport(pg));
	lock(p);
	if (pg == NULL) {
		p->open_failed_at = now;
		if (p->trouble_since == 0)
			p->trouble_since = started;
		unlock(p);
		return;
	}
	moved = p->st.server[0] && strcmp(p->st.server, server) != 0;
	if (moved) {
		took = p->trouble_since ? now - p->trouble_since : 0;
		memcpy(was, p->st.server, sizeof(was));
		p->st.failovers++;
		p->st.failover_seconds = took;
	}
	memcpy(p->st.server, server, sizeof(server));
	p->open_failed_at = 0;
	p->trouble_since = 0;
	unlock(p);
	if (moved)
		log_msg(LOG_WARN, "pool: connected to another server, %s (was %s), %.1f s after the first failure",
			server, was, took);
}

int pool_unreachable(struct pool *p)
{
	int down;

	lock(p);
	down = p->open_failed_at && now_mono() - p->open_failed_at < POOL_FAILFAST;
	unlock(p);
	return down;
}

/* An attempt of conn_open's failed: openers from now on try once (POOL_FAILFAST). */
static void attempt_failed(void *arg)
{
	struct pool *p = arg;

	lock(p);
	p->open_failed_at = now_mono();
	unlock(p);
}

/*
 * Open c->pg. Its named statements are prepared on first use
 * (pool_exec_prepared), not here: preparing a statement takes a lock on
 * every table it names, and a table locked exclusively (a migration, a
 * LOCK TABLE) would then hold up every new connection, a session
 * look-up's too, for as long as the lock lasts. 0, or -1 with err.
 */
static int conn_open(struct pool *p, double deadline, struct pool_conn *c,
		     struct pool_error *err)
{
	double now = now_mono(), retry_until = now + POOL_OPEN_RETRY;
	PGconn *pg;

	lock(p);
	if (p->open_failed_at && now - p->open_failed_at < POOL_FAILFAST)
		retry_until = now;	/* it failed a moment ago: one attempt */
	unlock(p);
	pg = pgconnect_tries(&p->set, deadline, retry_until, err, attempt_failed, p);
	note_open(p, pg, now);
	if (pg == NULL)
		return -1;
	if (!PQregisterEventProc(pg, conn_event, "pool", NULL) ||
	    !PQsetInstanceData(pg, conn_event, c)) {
		snprintf(err->msg, sizeof(err->msg), "cannot attach the pool's data to a connection");
		err->kind = POOL_ERR_CONNECT;
		log_msg(LOG_ERROR, "pool: %s", err->msg);
		PQfinish(pg);
		return -1;
	}
	c->pg = pg;
	c->set = &p->set;
	memset(c->prepared, 0, sizeof(c->prepared));
	c->ndyn = c->dyn_next = 0;	/* a new session has no dynamic statements */
	c->created = c->last_used = now_mono();
	c->discard = 0;
	return 0;
}

/*
 * PQprepare of sql as name, its text led by a comment that holds tag
 * ("/" "* paint_get *" "/ SELECT ..."): the server's views of statements
 * (pg_stat_statements, pg_stat_activity) then say which of the service's
 * statements each is, however they normalise the rest.
 */
static PGresult *prepare_tagged(PGconn *pg, const char *name, const char *tag, const char *sql,
				int nparams)
{
	struct strbuf text;
	PGresult *r;

	strbuf_init(&text);
	strbuf_printf(&text, "/* %s */ %s", tag, sql);
	r = PQprepare(pg, name, text.buf, nparams, NULL);
	strbuf_free(&text);
	return r;
}

int pool_prepare(PGconn *pg, const char *name, PGresult **failed)
{
	struct pool_conn *c = PQinstanceData(pg, conn_event);
	PGresult *r;
	int i;

	*failed = NULL;
	if (c == NULL)
		return -1;
	for (i = 0; i < c->set->nstmts; i++)
		if (strcmp(c->set->stmts[i].name, name) == 0)
			break;
	if (i == c->set->nstmts)
		return -1;
	if (c->prepared[i])
		return 0;
	r = prepare_tagged(pg, name, name, c->set->stmts[i].sql, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		*failed = r;
		return -1;
	}
	PQclear(r);
	c->prepared[i] = 1;
	return 0;
}

/* pool_exec_prepared without the trace. */
static PGresult *exec_prepared(PGconn *pg, const char *name, int nparams,
			       const char *const *values, const int *lengths, const int *formats,
			       int result_format)
{
	PGresult *failed;

	if (pool_prepare(pg, name, &failed) != 0 && failed != NULL)
		return failed;	/* the caller sees the preparation's error */
	return PQexecPrepared(pg, name, nparams, values, lengths, formats, result_format);
}

PGresult *pool_exec_prepared(PGconn *pg, const char *name, int nparams,
			     const char *const *values, const int *lengths, const int *formats,
			     int result_format)
{
	double t0 = now_mono();
	PGresult *r = exec_prepared(pg, name, nparams, values, lengths, formats, result_format);

	trace_note(name, t0, now_mono() - t0);
	return r;
}

static void conn_close(struct pool_conn *c)
{
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
}

/*
 * 0 when the server answered on pg: an empty query, or for the primary's
 * pool, that it is not in recovery (a demoted primary is, and takes no
 * writes).
 */
static int conn_ping(const struct pool *p, PGconn *pg)
{
	PGresult *r = PQexec(pg, p->set.primary ? "SELECT pg_is_in_recovery()" : "");
	int ok = p->set.primary ? PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
					  strcmp(PQgetvalue(r, 0, 0), "f") == 0
				: PQresultStatus(r) == PGRES_EMPTY_QUERY;

	PQclear(r);
	return ok && PQstatus(pg) == CONNECTION_OK ? 0 : -1;
}

/*
 * Bring pg back to an idle, usable state: roll back a transaction left
 * open or failed. Returns 0 when the connection can be reused, -1 when it
 * must be discarded (broken, or busy with a query it cannot abandon).
 */
static int conn_clean(PGconn *pg)
{
	PGresult *r;
	int ok;

	if (pg == NULL || PQstatus(pg) != CONNECTION_OK)
		return -1;
	switch (PQtransactionStatus(pg)) {
	case PQTRANS_IDLE:
		return 0;
	case PQTRANS_INTRANS:
	case PQTRANS_INERROR:
		r = PQexec(pg, "ROLLBACK");
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		return ok && PQtransactionStatus(pg) == PQTRANS_IDLE ? 0 : -1;
	default:
		return -1;	/* ACTIVE or UNKNOWN: not worth rescuing */
	}
}

/* pool_exec_dynamic without the trace. */
static PGresult *exec_dynamic(struct pool_conn *c, const char *label, const char *sql,
			      int nparams, const char *const *params)
{
	uint64_t h;
	char name[24];
	int i, slot = -1;

	crypto_generichash((unsigned char *)&h, sizeof(h), (const unsigned char *)sql,
			   strlen(sql), NULL, 0);
	snprintf(name, sizeof(name), "d_%016llx", (unsigned long long)h);
	for (i = 0; i < c->ndyn; i++)
		if (c->dyn[i] == h)
			return PQexecPrepared(c->pg, name, nparams, params, NULL, NULL, 0);
	if (c->ndyn < POOL_DYN_MAX) {
		slot = c->ndyn++;
	} else {
		char old[24], sqlbuf[48];

		slot = c->dyn_next;
		c->dyn_next = (c->dyn_next + 1) % POOL_DYN_MAX;
		snprintf(old, sizeof(old), "d_%016llx", (unsigned long long)c->dyn[slot]);
		snprintf(sqlbuf, sizeof(sqlbuf), "DEALLOCATE %s", old);
		PQclear(PQexec(c->pg, sqlbuf));
	}
	{
		PGresult *r = prepare_tagged(c->pg, name, label, sql, nparams);

		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			/* Forget the slot; hand the preparation error to the caller. */
			if (slot == c->ndyn - 1 && c->ndyn < POOL_DYN_MAX)
				c->ndyn--;
			else
				c->dyn[slot] = 0;	/* deallocated above */
			return r;
		}
		PQclear(r);
	}
	c->dyn[slot] = h;
	return PQexecPrepared(c->pg, name, nparams, params, NULL, NULL, 0);
}

PGresult *pool_exec_dynamic(struct pool_conn *c, const char *label, const char *sql,
			    int nparams, const char *const *params)
{
	double t0 = now_mono();
	PGresult *r = exec_dynamic(c, label, sql, nparams, params);

	trace_note(label, t0, now_mono() - t0);
	return r;
}
