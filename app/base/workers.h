/*
 * workers: how many of the worker threads take requests at once.
 *
 * Of the WORKERS threads, WORKERS_ACTIVE (by default two per CPU the
 * process may use) wait for requests; the others are parked. Every thread
 * waiting in epoll_wait is woken for a request as it arrives, so with many
 * idle threads each request woke a sleeping one; with a few, a thread that
 * finishes a request usually finds the next one already waiting. Measured
 * on 2 cores (docs/operations.md, "Defaults"): 4 active threads served a cached read
 * about 25 % and an uncached one about 30 % faster than 16.
 *
 * The parked threads are there for waits. A thread going into a wait that
 * may be long (workers_block_begin: a write's handler, which waits for the
 * commit's disk flush and may wait for a login's slow-down or the cache's
 * acknowledgement during a Redis fault; a pool wait; a request holding or
 * awaiting a place at the database's admission gate, db/admission.h)
 * lends its place to a parked one until it returns. And when no request has finished for
 * WORKERS_WATCH_MS while every active thread is inside one (statements
 * stuck behind a lock, say), a watcher unparks one more, again at each
 * tick, up to WORKERS; the extra threads park again once requests finish
 * and an active thread is idle. A stuck database slows the process down;
 * it does not stop /healthz or cached reads.
 */
#ifndef PS_WORKERS_H
#define PS_WORKERS_H

#define WORKERS_WATCH_MS 5

/*
 * Start with total threads of which active take requests (brought within
 * 1..total; returned), and the watcher thread; inflight tells the requests
 * in progress. Until then, and in programs that never call it, every call
 * below is a no-op.
 */
int workers_start(int total, int active, int (*inflight)(void));

/* Wake every parked thread and stop the watcher: the process is stopping. */
void workers_stop(void);

/* At the top of a worker's loop: park while more threads are active than wanted. */
void workers_settle(void);

/* A request was answered (the watcher's sign of progress). */
void workers_request_done(void);

/*
 * Around a wait that may be long: another thread takes this one's place
 * meanwhile. Nested calls count once; outside a worker thread, no-ops.
 */
void workers_block_begin(void);
void workers_block_end(void);

/* The figures /admin/metrics shows (all 0 before workers_start). */
struct workers_stats {
	int threads;		/* WORKERS */
	int base;		/* WORKERS_ACTIVE as applied */
	int active;		/* not parked now */
	int parked;
	int lent;		/* in a long wait, their place lent */
	int extra;		/* unparked by the watcher now */
	unsigned long long unparks;	/* by the watcher since start */
	unsigned long long lends;	/* places lent for a wait, since start */
};
void workers_get_stats(struct workers_stats *st);

/* The default WORKERS_ACTIVE: two per CPU this process may run on (its affinity and cgroup quota). */
int workers_default_active(void);

/*
 * The watcher's rule, exposed for its unit test: the boost (threads
 * unparked beyond the wanted ones) after a tick. progressed: a request
 * finished since the last tick; busy: requests in progress; active:
 * threads not parked; parked: threads parked.
 */
int workers_next_boost(int boost, int max_boost, int progressed, int busy, int active, int parked);

#endif
