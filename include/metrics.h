/*
 * metrics: what operators need to see, cheap to collect. Requests are
 * counted with relaxed atomics only (no lock on the hot path); a
 * housekeeping sample each second adds process figures (memory, CPU), the
 * pool's peak use, and evaluates the alerts, logging each crossing once.
 *
 * Two views: GET /metrics in Prometheus text format (loopback, or an admin
 * session), and GET /admin/metrics as JSON with the key indicators over a
 * sliding five-minute window and the alerts (the original guide's
 * monitor_database_performance).
 */
#ifndef PS_METRICS_H
#define PS_METRICS_H

#include <stddef.h>

#include "strbuf.h"

struct config;
struct ctx;
struct pool;

/* Latency buckets (seconds) shared by every histogram here. */
#define METRICS_NBUCKETS 14
extern const double metrics_buckets[METRICS_NBUCKETS];

/* Thresholds of the alerts (defaults are the original guide's). */
struct alert_thresholds {
	double query_ms;		/* p99 database time per request */
	double pool_percent;		/* connections in use of the maximum */
	double memory_percent;		/* RSS of the machine's (or cgroup's) memory */
	double error_percent;		/* 5xx answers of all answers */
	double pool_timeouts;		/* checkouts that timed out in the window */
};

/* Call once before threads start. nroutes: the size of the route table. */
void metrics_setup(const struct config *cfg, size_t nroutes);

/*
 * Count one finished request: route (index in the table; nroutes for an
 * unmatched path), status, total seconds, seconds with a database
 * connection (< 0: none), cache result (< 0: not cached).
 */
void metrics_request(size_t route, int status, double seconds, double db_seconds, int cache);

/* One pool checkout waited this long (timed_out: it gave up). */
void metrics_pool_wait(double seconds, int timed_out);

/* Requests being served right now (from the server). */
void metrics_set_inflight_source(int (*inflight)(void));

/* Each second, from the housekeeper: sample the process and the pool, check alerts. */
void metrics_sample(struct pool *p);

/* GET /metrics and GET /admin/metrics */
void metrics_prometheus(struct ctx *c);
void metrics_admin(struct ctx *c);

/*
 * Estimate a quantile (0..1) from non-cumulative bucket counts: the upper
 * bound of the bucket holding it, in seconds; +Inf values report the last
 * bound. 0 when there are no observations.
 */
double metrics_quantile(const unsigned long long *counts, double q);

#endif
