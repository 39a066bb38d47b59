/*
 * metrics: the collector. Requests are counted with relaxed atomics only
 * (no lock on the hot path); a housekeeping sample each second adds
 * process figures (memory, CPU), the pool's peak use, and evaluates the
 * alerts, logging each crossing once. metrics_snapshot copies it all out;
 * the operator views (ops.c: /metrics, /admin/metrics) render snapshots
 * and never reach into the collector.
 */
#ifndef PS_METRICS_H
#define PS_METRICS_H

#include <stddef.h>

#include "base/hist.h"
#include "base/strbuf.h"
#include "cache/cache.h"

struct config;
struct pool;

/* Thresholds of the alerts (defaults are the original guide's). */
struct alert_thresholds {
	double query_ms;		/* p99 database time per request */
	double pool_percent;		/* connections in use of the maximum */
	double memory_percent;		/* RSS of the machine's (or cgroup's) memory */
	double error_percent;		/* 5xx answers of all answers */
	double pool_timeouts;		/* checkouts that timed out in the window */
	double low_stock;		/* paints low on stock */
};

/* Call once before threads start. nroutes: the size of the route table. */
void metrics_setup(const struct config *cfg, size_t nroutes);

/*
 * Count one finished request: route (index in the table; nroutes for an
 * unmatched path), status, total seconds, seconds with a database
 * connection (< 0: none), cache result.
 */
void metrics_request(size_t route, int status, double seconds, double db_seconds,
		     enum cache_result cache);

/* One pool checkout waited this long (timed_out: it gave up). */
void metrics_pool_wait(double seconds, int timed_out);

/* Why the server closed a FastCGI connection of its own accord. */
enum metrics_fcgi_close {
	METRICS_FCGI_REQUEST_TIMEOUT,	/* not read whole within FCGI_REQUEST_TIMEOUT */
	METRICS_FCGI_IDLE_TIMEOUT,	/* kept, and idle for FCGI_IDLE_TIMEOUT */
	METRICS_FCGI_NCLOSE
};

/* The server closed n FastCGI connections, for why. */
void metrics_fcgi_closed(enum metrics_fcgi_close why, unsigned n);

/* Requests being served right now (from the server). */
void metrics_set_inflight_source(int (*inflight)(void));

/* Each second, from the housekeeper: sample the process and the pool, check alerts. */
void metrics_sample(struct pool *p);

/*
 * The catalogue's low stock, as sampled by the application (a chore of
 * the paints resource): how many paints are low, and the lowest few.
 * metrics_low_stock replaces the last sample (copying lowest[0..n), n at
 * most METRICS_LOW_MAX); the low_stock alert is judged on it at the next
 * metrics_sample. Until the first sample the count is unknown (-1).
 */
#define METRICS_LOW_MAX 10
struct metrics_low_paint {
	long long id, stock, threshold;	/* threshold: the effective one */
	char name[808], brand[408];	/* UTF-8: 200 and 100 characters at most */
};
void metrics_low_stock(long long count, const struct metrics_low_paint *lowest, int n);

#define METRICS_NALERTS 6
/* The alerts' names, as /metrics labels them (paintstudio_alert_firing{alert=...}). */
extern const char *const metrics_alert_names[METRICS_NALERTS];

/* The sliding window's totals (the last WINDOW_SECONDS). */
struct metrics_window {
	int seconds;
	unsigned long long requests, errors, cache_hits, cache_misses, pool_timeouts;
	unsigned long long db[HIST_NBUCKETS + 1];	/* database time per request */
	int pool_peak;					/* most connections in use */
};

/* One route's counters; histograms are non-cumulative, +Inf last. */
struct metrics_route {
	unsigned long long by_class[6];			/* index: status / 100 */
	unsigned long long latency[6][HIST_NBUCKETS + 1];	/* by the same index */
	double latency_sum[6];				/* seconds */
};

struct metrics_alert {
	const char *name, *unit;	/* static strings */
	int firing;
	double value, threshold;
};

/* Everything the collector knows, copied at one moment. */
struct metrics_snapshot {
	double started_wall;		/* Unix seconds */
	double rss_bytes, mem_limit_bytes, cpu_seconds, cpu_percent;
	int threads, threads_busy;
	size_t nroutes;			/* routes[nroutes] counts unmatched paths */
	struct metrics_route *routes;	/* nroutes + 1 entries, owned */
	unsigned long long pool_acquire[HIST_NBUCKETS + 1];
	double pool_acquire_sum;
	unsigned long long pool_timeouts_total;
	struct {
		const char *reason;	/* static: "request_timeout", "idle_timeout" */
		unsigned long long count;
	} fcgi_closed[METRICS_FCGI_NCLOSE];	/* by enum metrics_fcgi_close */
	struct metrics_window window;
	struct metrics_alert alerts[METRICS_NALERTS];
	long long low_stock;		/* paints low on stock; -1: not sampled yet */
	double low_stock_at;		/* Unix seconds of that sample */
	int nlow;
	struct metrics_low_paint *low;	/* nlow entries (the lowest first), owned */
};

/* Fill s (never fails); release it with metrics_snapshot_free. */
void metrics_snapshot(struct metrics_snapshot *s);
void metrics_snapshot_free(struct metrics_snapshot *s);

/*
 * Estimate a quantile (0..1) from non-cumulative bucket counts: the upper
 * bound of the bucket holding it, in seconds; +Inf values report the last
 * bound. 0 when there are no observations.
 */
double metrics_quantile(const unsigned long long *counts, double q);

#endif
