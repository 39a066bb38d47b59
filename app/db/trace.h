/*
 * trace: where the time in PostgreSQL went. Each statement the service
 * runs through the pool (pool_exec_prepared, pool_exec_dynamic) or as a
 * transaction's BEGIN or COMMIT is noted by its name and duration twice:
 *
 * - in the trace of the request this thread serves, when it began one
 *   (trace_begin): the slow-request log, /admin/slow and Server-Timing
 *   read it;
 * - in a histogram per statement name, for /metrics.
 *
 * Dynamic statements (a list's SQL built from its filters) are noted
 * under their caller's name. The pool prepares every statement with its
 * name in a leading comment, so PostgreSQL's own views tell them apart
 * by the same names.
 */
#ifndef PS_TRACE_H
#define PS_TRACE_H

#include "base/hist.h"

#define TRACE_MAX 16		/* statements kept per request; the rest are counted */
#define TRACE_NAME_LEN 40
#define TRACE_NAMES_MAX 128	/* names with a histogram; later ones share "other" */

struct trace_entry {
	char name[TRACE_NAME_LEN];
	double at;		/* when it started, seconds after the trace began */
	double seconds;
};

/* One request's statements; zeroed by trace_begin. */
struct trace {
	double t0;		/* monotonic */
	int n;			/* entries kept */
	int more;		/* statements beyond TRACE_MAX, counted only */
	double seconds;		/* all statements' time */
	char slowest[TRACE_NAME_LEN];	/* the longest statement's name, "" for none */
	double slowest_seconds;
	struct trace_entry e[TRACE_MAX];
};

/* Note this thread's statements in t from now on (t->t0 = t0 on the first call: zeroed). */
void trace_begin(struct trace *t, double t0, int fresh);

/* Stop noting this thread's statements anywhere but the histograms. */
void trace_end(void);

/* A statement named name ran for seconds, starting at start (monotonic). */
void trace_note(const char *name, double start, double seconds);

/* One statement name's histogram, copied. */
struct trace_stat {
	char name[TRACE_NAME_LEN];
	unsigned long long counts[HIST_NBUCKETS + 1];
	double sum;
};

/* Copy every name's histogram into out (at most max); returns how many. */
int trace_stats(struct trace_stat *out, int max);

#endif
