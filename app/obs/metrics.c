/*
 * metrics: the collector (metrics.h). Counting is lock-free: relaxed
 * atomics per route and a ring of 30-second slots for the five-minute
 * window; only rolling a slot over and the once-a-second sample take a
 * mutex. Alerts are judged in the sample and logged on each crossing.
 */
#define _GNU_SOURCE
#include "obs/metrics.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/config.h"
#include "base/hist.h"
#include "base/log.h"
#include "base/util.h"
#include "cache/cache.h"
#include "db/pool.h"

struct route_metrics {
	atomic_ullong by_class[6];	/* index status / 100 (1xx..5xx) */
	struct hist latency[6];		/* by the same index */
};

/* The sliding window: WINDOW_SLOTS slots of SLOT_SECONDS each. */
#define SLOT_SECONDS 30
#define WINDOW_SLOTS 10
#define WINDOW_SECONDS (SLOT_SECONDS * WINDOW_SLOTS)

struct slot {
	atomic_llong period;		/* which SLOT_SECONDS period it counts */
	atomic_ullong requests, errors, cache_hits, cache_misses, pool_timeouts;
	atomic_ullong db[HIST_NBUCKETS + 1];	/* database time per request */
	atomic_int pool_peak;
};

static const struct config *cfg;
static size_t nroutes;
static struct route_metrics *routes;	/* nroutes + 1 (unmatched) */
static struct hist pool_acquire;
static atomic_ullong pool_timeouts_total;
static atomic_ullong fcgi_closed[METRICS_FCGI_NCLOSE];
static const char *const fcgi_close_reasons[METRICS_FCGI_NCLOSE] = {
	"request_timeout", "idle_timeout",
};
static struct slot window[WINDOW_SLOTS];
/* Rolling a slot over to a new period is rare: a mutex keeps it simple. */
static pthread_mutex_t roll_mu = PTHREAD_MUTEX_INITIALIZER;
static int (*inflight_source)(void);
static double started_wall;

/*
 * The last sample and the alert states; sample_mu guards them. Written by
 * the housekeeper each second (the low-stock fields by the application's
 * chore, metrics_low_stock), read by the two metrics routes.
 */
static pthread_mutex_t sample_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	double rss_bytes, mem_total_bytes, cpu_seconds, cpu_percent;
	int pool_peak;
	double sampled_at;	/* monotonic */
	long long low_stock;	/* -1 until the application's first sample */
	double low_stock_at;	/* Unix seconds */
	int nlow;
	struct metrics_low_paint low[METRICS_LOW_MAX];
} sample = { .low_stock = -1 };

enum { A_QUERY, A_POOL, A_MEMORY, A_ERRORS, A_TIMEOUTS, A_LOW_STOCK, NALERTS = METRICS_NALERTS };
const char *const metrics_alert_names[NALERTS] = {
	"query_time", "pool_utilisation", "memory", "error_rate", "connection_timeouts", "low_stock",
};
static const char *const alert_units[NALERTS] = { "ms", "%", "%", "%", "count", "count" };
static struct { int firing; double value, threshold; } alerts[NALERTS];
static struct alert_thresholds thresholds;

void metrics_setup(const struct config *c, size_t n)
{
	cfg = c;
	nroutes = n;
	routes = xcalloc(n + 1, sizeof(*routes));
	started_wall = now_wall();
	thresholds.query_ms = c ? c->alert_query_ms : 5000;
	thresholds.pool_percent = c ? c->alert_pool_percent : 80;
	thresholds.memory_percent = c ? c->alert_memory_percent : 85;
	thresholds.error_percent = c ? c->alert_error_percent : 5;
	thresholds.pool_timeouts = c ? c->alert_pool_timeouts : 3;
	thresholds.low_stock = c ? c->alert_low_stock : 1;
}

void metrics_low_stock(long long count, const struct metrics_low_paint *lowest, int n)
{
	assert(n >= 0 && n <= METRICS_LOW_MAX);
	pthread_mutex_lock(&sample_mu);
	/* Held: sample's low-stock fields are one sample's, whole. */
	sample.low_stock = count;
	sample.low_stock_at = now_wall();
	sample.nlow = n;
	if (n > 0)
		memcpy(sample.low, lowest, (size_t)n * sizeof(*lowest));
	pthread_mutex_unlock(&sample_mu);
}

void metrics_fcgi_closed(enum metrics_fcgi_close why, unsigned n)
{
	atomic_fetch_add_explicit(&fcgi_closed[why], n, memory_order_relaxed);
}

void metrics_set_inflight_source(int (*inflight)(void))
{
	inflight_source = inflight;
}

/* The slot of the current period, rolled over (emptied) when it is stale. */
static struct slot *current_slot(void)
{
	long long period = (long long)(now_mono() / SLOT_SECONDS);
	struct slot *s = &window[period % WINDOW_SLOTS];

	if (atomic_load_explicit(&s->period, memory_order_acquire) != period) {
		pthread_mutex_lock(&roll_mu);
		if (atomic_load(&s->period) != period) {
			int i;

			atomic_store(&s->requests, 0);
			atomic_store(&s->errors, 0);
			atomic_store(&s->cache_hits, 0);
			atomic_store(&s->cache_misses, 0);
			atomic_store(&s->pool_timeouts, 0);
			atomic_store(&s->pool_peak, 0);
			for (i = 0; i <= HIST_NBUCKETS; i++)
				atomic_store(&s->db[i], 0);
			atomic_store_explicit(&s->period, period, memory_order_release);
		}
		pthread_mutex_unlock(&roll_mu);
	}
	return s;
}

void metrics_request(size_t route, int status, double seconds, double db_seconds,
		     enum cache_result cache)
{
	struct route_metrics *r;
	struct slot *s = current_slot();
	int cls = status / 100;

	if (routes == NULL)
		return;
	if (route > nroutes)
		route = nroutes;
	r = &routes[route];
	if (cls < 1 || cls > 5)
		cls = 5;
	atomic_fetch_add_explicit(&r->by_class[cls], 1, memory_order_relaxed);
	hist_observe(&r->latency[cls], seconds);
	atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
	if (status >= 500)
		atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
	if (cache == CACHE_HIT)
		atomic_fetch_add_explicit(&s->cache_hits, 1, memory_order_relaxed);
	else if (cache == CACHE_MISS)
		atomic_fetch_add_explicit(&s->cache_misses, 1, memory_order_relaxed);
	if (db_seconds >= 0)
		atomic_fetch_add_explicit(&s->db[hist_bucket(db_seconds)], 1, memory_order_relaxed);
}

void metrics_pool_wait(double seconds, int timed_out)
{
	hist_observe(&pool_acquire, seconds);
	if (timed_out) {
		atomic_fetch_add_explicit(&pool_timeouts_total, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&current_slot()->pool_timeouts, 1, memory_order_relaxed);
	}
}

double metrics_quantile(const unsigned long long *counts, double q)
{
	unsigned long long total = 0, seen = 0, rank;
	int i;

	for (i = 0; i <= HIST_NBUCKETS; i++)
		total += counts[i];
	if (total == 0)
		return 0;
	rank = (unsigned long long)(q * (double)total + 0.999999);
	if (rank == 0)
		rank = 1;
	for (i = 0; i <= HIST_NBUCKETS; i++) {
		seen += counts[i];
		if (seen >= rank)
			return hist_buckets[i < HIST_NBUCKETS ? i : HIST_NBUCKETS - 1];
	}
	return hist_buckets[HIST_NBUCKETS - 1];
}

static void window_totals(struct metrics_window *t)
{
	long long now_period = (long long)(now_mono() / SLOT_SECONDS);
	int i, b;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < WINDOW_SLOTS; i++) {
		struct slot *s = &window[i];
		long long p = atomic_load(&s->period);
		int peak;

		if (p <= now_period - WINDOW_SLOTS || p > now_period)
			continue;
		t->requests += atomic_load(&s->requests);
		t->errors += atomic_load(&s->errors);
		t->cache_hits += atomic_load(&s->cache_hits);
		t->cache_misses += atomic_load(&s->cache_misses);
		t->pool_timeouts += atomic_load(&s->pool_timeouts);
		for (b = 0; b <= HIST_NBUCKETS; b++)
			t->db[b] += atomic_load(&s->db[b]);
		peak = atomic_load(&s->pool_peak);
		if (peak > t->pool_peak)
			t->pool_peak = peak;
	}
}

/* Resident memory and CPU seconds of this process; 0 on failure. */
static void process_figures(double *rss, double *cpu)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, resident = 0;
	struct rusage ru;

	*rss = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) == 2)
			*rss = (double)resident * (double)sysconf(_SC_PAGESIZE);
		fclose(f);
	}
	*cpu = 0;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		*cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* The memory this process may use: the cgroup's limit, else the machine's. */
static double memory_limit(void)
{
	FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
	double limit = 0;
	char buf[64];

	if (f) {
		if (fgets(buf, sizeof(buf), f) && strncmp(buf, "max", 3) != 0)
			limit = strtod(buf, NULL);
		fclose(f);
	}
	if (limit <= 0)
		limit = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
	return limit;
}

static void evaluate_alerts(const struct pool_stats *ps, const struct metrics_window *t)
{
	double values[NALERTS], limits[NALERTS];
	int i;

	values[A_QUERY] = metrics_quantile(t->db, 0.99) * 1000.0;
	limits[A_QUERY] = thresholds.query_ms;
	values[A_POOL] = ps->max ? 100.0 * sample.pool_peak / ps->max : 0;
	limits[A_POOL] = thresholds.pool_percent;
	values[A_MEMORY] = sample.mem_total_bytes > 0 ? 100.0 * sample.rss_bytes / sample.mem_total_bytes : 0;
	limits[A_MEMORY] = thresholds.memory_percent;
	/* A handful of requests says little: judge errors from 20 on. */
	values[A_ERRORS] = t->requests >= 20 ? 100.0 * (double)t->errors / (double)t->requests : 0;
	limits[A_ERRORS] = thresholds.error_percent;
	values[A_TIMEOUTS] = (double)t->pool_timeouts;
	limits[A_TIMEOUTS] = thresholds.pool_timeouts;
	/* Not sampled yet: nothing known to be low. */
	values[A_LOW_STOCK] = sample.low_stock > 0 ? (double)sample.low_stock : 0;
	limits[A_LOW_STOCK] = thresholds.low_stock;
	for (i = 0; i < NALERTS; i++) {
		int firing = values[i] >= limits[i] && !(i == A_QUERY && values[i] == 0);

		if (firing != alerts[i].firing) {
			struct log_line l;

			log_begin(&l, firing ? LOG_WARN : LOG_INFO, firing ? "alert firing" : "alert cleared");
			log_str(&l, "alert", metrics_alert_names[i]);
			log_num(&l, "value", values[i]);
			log_num(&l, "threshold", limits[i]);
			log_end(&l);
		}
		alerts[i].firing = firing;
		alerts[i].value = values[i];
		alerts[i].threshold = limits[i];
	}
}

void metrics_sample(struct pool *p)
{
	struct pool_stats ps;
	struct metrics_window t;
	double rss, cpu, now = now_mono();
	int peak = pool_take_peak(p);
	struct slot *s = current_slot();
	int old;

	old = atomic_load(&s->pool_peak);
	while (peak > old && !atomic_compare_exchange_weak(&s->pool_peak, &old, peak))
		;
	process_figures(&rss, &cpu);
	pool_get_stats(p, &ps);
	window_totals(&t);
	pthread_mutex_lock(&sample_mu);
	if (sample.sampled_at > 0 && now > sample.sampled_at)
		sample.cpu_percent = 100.0 * (cpu - sample.cpu_seconds) / (now - sample.sampled_at);
	sample.rss_bytes = rss;
	sample.cpu_seconds = cpu;
	sample.mem_total_bytes = memory_limit();
	sample.pool_peak = peak;
	sample.sampled_at = now;
	evaluate_alerts(&ps, &t);
	pthread_mutex_unlock(&sample_mu);
}

void metrics_snapshot(struct metrics_snapshot *s)
{
	size_t i;
	int a;

	memset(s, 0, sizeof(*s));
	s->started_wall = started_wall;
	process_figures(&s->rss_bytes, &s->cpu_seconds);
	s->threads = cfg ? cfg->workers : 0;
	s->threads_busy = inflight_source ? inflight_source() : 0;
	s->nroutes = nroutes;
	s->routes = xcalloc(nroutes + 1, sizeof(*s->routes));
	for (i = 0; routes && i <= nroutes; i++) {
		int k;

		for (k = 0; k < 6; k++) {
			s->routes[i].by_class[k] = atomic_load(&routes[i].by_class[k]);
			hist_copy(&routes[i].latency[k], s->routes[i].latency[k],
				  &s->routes[i].latency_sum[k]);
		}
	}
	hist_copy(&pool_acquire, s->pool_acquire, &s->pool_acquire_sum);
	s->pool_timeouts_total = atomic_load(&pool_timeouts_total);
	for (a = 0; a < METRICS_FCGI_NCLOSE; a++) {
		s->fcgi_closed[a].reason = fcgi_close_reasons[a];
		s->fcgi_closed[a].count = atomic_load(&fcgi_closed[a]);
	}
	window_totals(&s->window);
	s->window.seconds = WINDOW_SECONDS;
	pthread_mutex_lock(&sample_mu);
	s->mem_limit_bytes = sample.mem_total_bytes;
	s->cpu_percent = sample.cpu_percent;
	for (a = 0; a < NALERTS; a++) {
		s->alerts[a].name = metrics_alert_names[a];
		s->alerts[a].unit = alert_units[a];
		s->alerts[a].firing = alerts[a].firing;
		s->alerts[a].value = alerts[a].value;
		s->alerts[a].threshold = alerts[a].threshold;
	}
	s->low_stock = sample.low_stock;
	s->low_stock_at = sample.low_stock_at;
	s->nlow = sample.nlow;
	s->low = xcalloc(METRICS_LOW_MAX, sizeof(*s->low));
	memcpy(s->low, sample.low, (size_t)sample.nlow * sizeof(*s->low));
	pthread_mutex_unlock(&sample_mu);
}

void metrics_snapshot_free(struct metrics_snapshot *s)
{
	free(s->routes);
	free(s->low);
	s->routes = NULL;
	s->low = NULL;
}
