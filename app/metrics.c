#define _GNU_SOURCE
#include "metrics.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "context.h"
#include "ops.h"
#include "log.h"
#include "pool.h"
#include "replicas.h"
#include "resource.h"
#include "router.h"
#include "util.h"

const double metrics_buckets[METRICS_NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

/* One histogram: non-cumulative counts, +Inf last; sum in microseconds. */
struct histogram {
	atomic_ullong counts[METRICS_NBUCKETS + 1];
	atomic_ullong sum_us;
};

struct route_metrics {
	atomic_ullong by_class[6];	/* index status / 100 (1xx..5xx) */
	struct histogram latency;
};

/* The sliding window: WINDOW_SLOTS slots of SLOT_SECONDS each. */
#define SLOT_SECONDS 30
#define WINDOW_SLOTS 10
#define WINDOW_SECONDS (SLOT_SECONDS * WINDOW_SLOTS)

struct slot {
	atomic_llong period;		/* which SLOT_SECONDS period it counts */
	atomic_ullong requests, errors, cache_hits, cache_misses, pool_timeouts;
	atomic_ullong db[METRICS_NBUCKETS + 1];	/* database time per request */
	atomic_int pool_peak;
};

static const struct config *cfg;
static size_t nroutes;
static struct route_metrics *routes;	/* nroutes + 1 (unmatched) */
static struct histogram pool_acquire;
static atomic_ullong pool_timeouts_total;
static struct slot window[WINDOW_SLOTS];
/* Rolling a slot over to a new period is rare: a mutex keeps it simple. */
static pthread_mutex_t roll_mu = PTHREAD_MUTEX_INITIALIZER;
static int (*inflight_source)(void);
static double started_wall;

/*
 * The last sample and the alert states; sample_mu guards them. Written by
 * the housekeeper each second, read by the two metrics routes.
 */
static pthread_mutex_t sample_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	double rss_bytes, mem_total_bytes, cpu_seconds, cpu_percent;
	int pool_peak;
	double sampled_at;	/* monotonic */
} sample;

enum { A_QUERY, A_POOL, A_MEMORY, A_ERRORS, A_TIMEOUTS, NALERTS };
static const char *const alert_names[NALERTS] = {
	"query_time", "pool_utilisation", "memory", "error_rate", "connection_timeouts",
};
static const char *const alert_units[NALERTS] = { "ms", "%", "%", "%", "count" };
static struct { int firing; double value, threshold; } alerts[NALERTS];
static struct alert_thresholds thresholds;

static void hist_observe(struct histogram *h, double seconds)
{
	int i;

	for (i = 0; i < METRICS_NBUCKETS && seconds > metrics_buckets[i]; i++)
		;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)(seconds * 1e6), memory_order_relaxed);
}

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
			for (i = 0; i <= METRICS_NBUCKETS; i++)
				atomic_store(&s->db[i], 0);
			atomic_store_explicit(&s->period, period, memory_order_release);
		}
		pthread_mutex_unlock(&roll_mu);
	}
	return s;
}

void metrics_request(size_t route, int status, double seconds, double db_seconds, int cache)
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
	hist_observe(&r->latency, seconds);
	atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
	if (status >= 500)
		atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
	if (cache == CACHE_HIT)
		atomic_fetch_add_explicit(&s->cache_hits, 1, memory_order_relaxed);
	else if (cache == CACHE_MISS)
		atomic_fetch_add_explicit(&s->cache_misses, 1, memory_order_relaxed);
	if (db_seconds >= 0) {
		int i;

		for (i = 0; i < METRICS_NBUCKETS && db_seconds > metrics_buckets[i]; i++)
			;
		atomic_fetch_add_explicit(&s->db[i], 1, memory_order_relaxed);
	}
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

	for (i = 0; i <= METRICS_NBUCKETS; i++)
		total += counts[i];
	if (total == 0)
		return 0;
	rank = (unsigned long long)(q * (double)total + 0.999999);
	if (rank == 0)
		rank = 1;
	for (i = 0; i <= METRICS_NBUCKETS; i++) {
		seen += counts[i];
		if (seen >= rank)
			return metrics_buckets[i < METRICS_NBUCKETS ? i : METRICS_NBUCKETS - 1];
	}
	return metrics_buckets[METRICS_NBUCKETS - 1];
}

/* The window's totals: slots of the last WINDOW_SLOTS periods. */
struct window_totals {
	unsigned long long requests, errors, hits, misses, timeouts;
	unsigned long long db[METRICS_NBUCKETS + 1];
	int pool_peak;
};

static void window_totals(struct window_totals *t)
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
		t->hits += atomic_load(&s->cache_hits);
		t->misses += atomic_load(&s->cache_misses);
		t->timeouts += atomic_load(&s->pool_timeouts);
		for (b = 0; b <= METRICS_NBUCKETS; b++)
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

static void evaluate_alerts(const struct pool_stats *ps, const struct window_totals *t)
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
	values[A_TIMEOUTS] = (double)t->timeouts;
	limits[A_TIMEOUTS] = thresholds.pool_timeouts;
	for (i = 0; i < NALERTS; i++) {
		int firing = values[i] >= limits[i] && !(i == A_QUERY && values[i] == 0);

		if (firing != alerts[i].firing) {
			struct log_line l;

			log_begin(&l, firing ? LOG_WARN : LOG_INFO, firing ? "alert firing" : "alert cleared");
			log_str(&l, "alert", alert_names[i]);
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
	struct window_totals t;
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

/* ---- Prometheus text ------------------------------------------------------ */

static void prom_histogram(struct strbuf *sb, const char *name, const char *labels,
			   struct histogram *h)
{
	const char *sep = *labels ? "," : "";
	unsigned long long cum = 0;
	char set[128];
	int i;

	for (i = 0; i <= METRICS_NBUCKETS; i++) {
		cum += atomic_load(&h->counts[i]);
		if (i < METRICS_NBUCKETS)
			strbuf_printf(sb, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
				      metrics_buckets[i], cum);
		else
			strbuf_printf(sb, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cum);
	}
	/* "{labels}", or nothing for a histogram without labels. */
	snprintf(set, sizeof(set), *labels ? "{%s}" : "%s", labels);
	strbuf_printf(sb, "%s_sum%s %.6f\n", name, set, (double)atomic_load(&h->sum_us) / 1e6);
	strbuf_printf(sb, "%s_count%s %llu\n", name, set, cum);
}

static void prom_head(struct strbuf *sb, const char *name, const char *type, const char *help)
{
	strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_prometheus(struct ctx *c)
{
	size_t nr, i;
	const struct route *table = resources_routes(&nr);
	struct pool_stats ps;
	struct cache_stats cs;
	struct strbuf sb;
	double rss, cpu;

	strbuf_init(&sb);
	pool_get_stats(c->app->pool, &ps);
	cache_get_stats(&cs);
	process_figures(&rss, &cpu);

	prom_head(&sb, "paintstudio_info", "gauge", "The process: its pid and start time.");
	strbuf_printf(&sb, "paintstudio_info{pid=\"%d\"} 1\n", (int)getpid());
	prom_head(&sb, "paintstudio_http_requests_total", "counter",
		  "Answered requests by route and status class.");
	for (i = 0; i <= nroutes; i++) {
		const char *name = i < nr ? table[i].name : "unmatched";
		int k;

		for (k = 1; k <= 5; k++) {
			unsigned long long n = atomic_load(&routes[i].by_class[k]);

			if (n)
				strbuf_printf(&sb, "paintstudio_http_requests_total{route=\"%s\",status=\"%dxx\"} %llu\n",
					      name, k, n);
		}
	}
	prom_head(&sb, "paintstudio_http_request_duration_seconds", "histogram",
		  "Time to answer, by route.");
	for (i = 0; i <= nroutes; i++) {
		char labels[96];

		if (atomic_load(&routes[i].latency.counts[METRICS_NBUCKETS]) == 0 &&
		    atomic_load(&routes[i].latency.sum_us) == 0) {
			int b, any = 0;

			for (b = 0; b < METRICS_NBUCKETS; b++)
				any |= atomic_load(&routes[i].latency.counts[b]) != 0;
			if (!any)
				continue;
		}
		snprintf(labels, sizeof(labels), "route=\"%s\"", i < nr ? table[i].name : "unmatched");
		prom_histogram(&sb, "paintstudio_http_request_duration_seconds", labels,
			       &routes[i].latency);
	}
	prom_head(&sb, "paintstudio_pool_connections_active", "gauge", "Connections checked out.");
	strbuf_printf(&sb, "paintstudio_pool_connections_active %d\n", ps.checked_out);
	prom_head(&sb, "paintstudio_pool_connections_idle", "gauge", "Connections checked in.");
	strbuf_printf(&sb, "paintstudio_pool_connections_idle %d\n", ps.idle);
	prom_head(&sb, "paintstudio_pool_connections_pending", "gauge", "Requests waiting for a connection.");
	strbuf_printf(&sb, "paintstudio_pool_connections_pending %d\n", ps.waiting);
	prom_head(&sb, "paintstudio_pool_connections", "gauge", "Connections open (or opening).");
	strbuf_printf(&sb, "paintstudio_pool_connections %d\n", ps.open);
	prom_head(&sb, "paintstudio_pool_connections_max", "gauge", "Pool size plus overflow.");
	strbuf_printf(&sb, "paintstudio_pool_connections_max %d\n", ps.max);
	prom_head(&sb, "paintstudio_pool_connections_min", "gauge", "Pool size kept open.");
	strbuf_printf(&sb, "paintstudio_pool_connections_min %d\n", ps.size);
	prom_head(&sb, "paintstudio_pool_connections_timeout_total", "counter",
		  "Checkouts that waited the whole pool timeout.");
	strbuf_printf(&sb, "paintstudio_pool_connections_timeout_total %llu\n",
		      (unsigned long long)ps.timeouts);
	prom_head(&sb, "paintstudio_pool_connections_created_total", "counter", "Connections opened.");
	strbuf_printf(&sb, "paintstudio_pool_connections_created_total %llu\n", (unsigned long long)ps.opened);
	prom_head(&sb, "paintstudio_pool_connections_closed_total", "counter", "Connections closed.");
	strbuf_printf(&sb, "paintstudio_pool_connections_closed_total %llu\n", (unsigned long long)ps.closed);
	prom_head(&sb, "paintstudio_pool_connections_invalid_total", "counter",
		  "Connections found broken and discarded.");
	strbuf_printf(&sb, "paintstudio_pool_connections_invalid_total %llu\n",
		      (unsigned long long)ps.invalidated);
	prom_head(&sb, "paintstudio_pool_connections_acquire_seconds", "histogram",
		  "Time a request waited for a connection.");
	prom_histogram(&sb, "paintstudio_pool_connections_acquire_seconds", "", &pool_acquire);
	replicas_prometheus(&sb);	/* the replicas' pools and lag, with a pool label */
	prom_head(&sb, "paintstudio_cache_hits_total", "counter", "Cache lookups answered by Redis.");
	strbuf_printf(&sb, "paintstudio_cache_hits_total %llu\n", (unsigned long long)cs.hits);
	prom_head(&sb, "paintstudio_cache_misses_total", "counter", "Cache lookups that read PostgreSQL.");
	strbuf_printf(&sb, "paintstudio_cache_misses_total %llu\n", (unsigned long long)cs.misses);
	prom_head(&sb, "paintstudio_cache_bypasses_total", "counter",
		  "Lookups that skipped Redis (down, disabled or not yet trusted).");
	strbuf_printf(&sb, "paintstudio_cache_bypasses_total %llu\n", (unsigned long long)cs.bypasses);
	prom_head(&sb, "paintstudio_cache_errors_total", "counter", "Redis failures.");
	strbuf_printf(&sb, "paintstudio_cache_errors_total %llu\n", (unsigned long long)cs.errors);
	prom_head(&sb, "paintstudio_cache_invalidations_total", "counter", "Paints invalidated.");
	strbuf_printf(&sb, "paintstudio_cache_invalidations_total %llu\n", (unsigned long long)cs.invalidations);
	prom_head(&sb, "paintstudio_redis_up", "gauge", "1 when the cache is in use.");
	strbuf_printf(&sb, "paintstudio_redis_up %d\n", cs.up);
	prom_head(&sb, "process_resident_memory_bytes", "gauge", "Resident memory.");
	strbuf_printf(&sb, "process_resident_memory_bytes %.0f\n", rss);
	prom_head(&sb, "process_cpu_seconds_total", "counter", "User and system CPU time.");
	strbuf_printf(&sb, "process_cpu_seconds_total %.3f\n", cpu);
	prom_head(&sb, "process_start_time_seconds", "gauge", "Start time since the Unix epoch.");
	strbuf_printf(&sb, "process_start_time_seconds %.3f\n", started_wall);
	prom_head(&sb, "paintstudio_threads_busy", "gauge", "Worker threads serving a request.");
	strbuf_printf(&sb, "paintstudio_threads_busy %d\n", inflight_source ? inflight_source() : 0);
	prom_head(&sb, "paintstudio_threads", "gauge", "Worker threads.");
	strbuf_printf(&sb, "paintstudio_threads %d\n", cfg ? cfg->workers : 0);
	prom_head(&sb, "paintstudio_alert_firing", "gauge", "1 while an alert's threshold is crossed.");
	pthread_mutex_lock(&sample_mu);
	for (i = 0; i < NALERTS; i++)
		strbuf_printf(&sb, "paintstudio_alert_firing{alert=\"%s\"} %d\n", alert_names[i],
			      alerts[i].firing);
	pthread_mutex_unlock(&sample_mu);

	c->resp.status = 200;
	c->resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
	strbuf_reset(&c->resp.body);
	strbuf_append(&c->resp.body, sb.buf, sb.len);
	strbuf_free(&sb);
}

/* ---- /admin/metrics ------------------------------------------------------- */

static struct json_object *indicator(double value, const char *unit, const char *rule,
				     int pass)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "value", json_object_new_double(value));
	json_object_object_add(o, "unit", json_object_new_string(unit));
	json_object_object_add(o, "target", json_object_new_string(rule));
	json_object_object_add(o, "pass", json_object_new_boolean(pass));
	return o;
}

void metrics_admin(struct ctx *c)
{
	struct json_object *o = json_object_new_object(), *pool, *ind, *al, *q, *mem, *cache, *reqs;
	struct pool_stats ps;
	struct cache_stats cs;
	struct window_totals t;
	struct pool_conn *conn;
	struct pool_error err;
	char ts[40];
	double p50, p99, hit_rate, err_rate, usage;
	int i;

	pool_get_stats(c->app->pool, &ps);
	cache_get_stats(&cs);
	window_totals(&t);

	/* The guide's timed count, on its own short leash: monitoring must answer in an incident. */
	q = json_object_new_object();
	if (pool_checkout(c->app->pool, 0.5, "metrics.count", &conn, &err) == 0) {
		double t0 = now_mono();
		PGresult *r;

		PQclear(PQexec(pool_conn_pg(conn), "BEGIN READ ONLY"));
		PQclear(PQexec(pool_conn_pg(conn), "SET LOCAL statement_timeout = 1000"));
		r = PQexec(pool_conn_pg(conn), "SELECT count(*) FROM paints");
		if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			json_object_object_add(q, "paints", json_object_new_int64(strtoll(PQgetvalue(r, 0, 0), NULL, 10)));
			json_object_object_add(q, "query_ms", json_object_new_double((now_mono() - t0) * 1000.0));
		} else {
			json_object_object_add(q, "error", json_object_new_string("the count did not finish within 1 s"));
		}
		PQclear(r);
		PQclear(PQexec(pool_conn_pg(conn), "ROLLBACK"));
		pool_release(c->app->pool, conn);
	} else {
		json_object_object_add(q, "error", json_object_new_string(err.msg));
	}
	json_object_object_add(o, "database", q);

	pthread_mutex_lock(&sample_mu);
	mem = json_object_new_object();
	json_object_object_add(mem, "rss_bytes", json_object_new_double(sample.rss_bytes));
	json_object_object_add(mem, "limit_bytes", json_object_new_double(sample.mem_total_bytes));
	json_object_object_add(mem, "percent", json_object_new_double(
		sample.mem_total_bytes > 0 ? 100.0 * sample.rss_bytes / sample.mem_total_bytes : 0));
	json_object_object_add(o, "memory", mem);
	json_object_object_add(o, "cpu_percent", json_object_new_double(sample.cpu_percent));
	al = json_object_new_array();
	for (i = 0; i < NALERTS; i++) {
		struct json_object *a;

		if (!alerts[i].firing)
			continue;
		a = json_object_new_object();
		json_object_object_add(a, "alert", json_object_new_string(alert_names[i]));
		json_object_object_add(a, "value", json_object_new_double(alerts[i].value));
		json_object_object_add(a, "threshold", json_object_new_double(alerts[i].threshold));
		json_object_object_add(a, "unit", json_object_new_string(alert_units[i]));
		json_object_array_add(al, a);
	}
	usage = ps.max ? 100.0 * t.pool_peak / ps.max : 0;
	pthread_mutex_unlock(&sample_mu);

	pool = ops_pool_json(c->app->pool);
	json_object_object_add(o, "pool", pool);

	hit_rate = t.hits + t.misses ? 100.0 * (double)t.hits / (double)(t.hits + t.misses) : 0;
	err_rate = t.requests ? 100.0 * (double)t.errors / (double)t.requests : 0;
	cache = json_object_new_object();
	json_object_object_add(cache, "up", json_object_new_boolean(cs.up));
	json_object_object_add(cache, "hit_rate_percent", json_object_new_double(hit_rate));
	json_object_object_add(o, "cache", cache);
	reqs = json_object_new_object();
	json_object_object_add(reqs, "window_seconds", json_object_new_int(WINDOW_SECONDS));
	json_object_object_add(reqs, "count", json_object_new_int64((int64_t)t.requests));
	json_object_object_add(reqs, "rate_per_second",
			       json_object_new_double((double)t.requests / WINDOW_SECONDS));
	json_object_object_add(reqs, "error_rate_percent", json_object_new_double(err_rate));
	json_object_object_add(o, "requests", reqs);

	p50 = metrics_quantile(t.db, 0.50) * 1000.0;
	p99 = metrics_quantile(t.db, 0.99) * 1000.0;
	ind = json_object_new_object();
	json_object_object_add(ind, "query_p50", indicator(p50, "ms", "< 2000", p50 < 2000));
	json_object_object_add(ind, "query_p99", indicator(p99, "ms", "< 2000", p99 < 2000));
	json_object_object_add(ind, "pool_usage", indicator(usage, "%", "< 80", usage < 80));
	/* No lookups or no requests in the window: nothing failed. */
	json_object_object_add(ind, "cache_hit_rate", indicator(hit_rate, "%", "> 70",
								t.hits + t.misses == 0 || hit_rate > 70));
	json_object_object_add(ind, "error_rate", indicator(err_rate, "%", "< 1", err_rate < 1));
	json_object_object_add(ind, "server_connections",
			       indicator(ps.open, "count", "< 15", ps.open < 15));
	json_object_object_add(o, "indicators", ind);
	json_object_object_add(o, "alerts", al);
	format_iso8601(now_wall(), ts, sizeof(ts));
	json_object_object_add(o, "timestamp", json_object_new_string(ts));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}
