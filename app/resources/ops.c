/*
 * ops: the operator's views. Every figure comes from a snapshot
 * (pool_get_stats, cache_get_stats, metrics_snapshot) taken as the view
 * is rendered; the views format, they never count. The only database
 * work here is the readiness and latency probe, "SELECT 1".
 */
#define _GNU_SOURCE
#include "resources/ops.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/strbuf.h"
#include "base/util.h"
#include "base/workers.h"
#include "cache/cache.h"
#include "db/admission.h"
#include "db/replicas.h"
#include "db/trace.h"
#include "http/context.h"
#include "obs/metrics.h"

static void ops_live(struct ctx *c);
static void ops_ready(struct ctx *c);
static void ops_pool(struct ctx *c);
static void ops_cache(struct ctx *c);
static void ops_prometheus(struct ctx *c);
static void ops_admin_metrics(struct ctx *c);
static struct json_object *replicas_json(void);
static void add_count(struct json_object *o, const char *key, uint64_t v);
static void prom_replicas(struct strbuf *sb);

/*
 * Values read from Redis that were not what the service writes (cache.h):
 * one name for /admin/cache and /admin/metrics' cache section.
 */
#define BAD_VALUES "bad_values"

/* Readiness must answer quickly even when the pool is saturated. */
#define READY_TIMEOUT 2.0

static void ops_live(struct ctx *c)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "status", json_object_new_string("ok"));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

/*
 * What the last readiness probe found. ready_mu guards both; nothing
 * blocks while it is held. One probe at a time per process: a request
 * that comes while one runs is answered with the last probe's finding, so
 * a flood of /readyz (which needs no login) holds at most one connection.
 */
static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static int ready_ok, ready_probing;

/* One probe: 1 if "SELECT 1" answered, else 0 (the response is left set). */
static int ready_probe(struct ctx *c)
{
	double timeout = c->app->cfg->pool_timeout < READY_TIMEOUT
				 ? c->app->cfg->pool_timeout : READY_TIMEOUT;
	PGconn *pg = ctx_db_probe(c, timeout);
	PGresult *r;
	int ok;

	if (pg == NULL)
		return 0;	/* 503 set by ctx_db */
	r = PQexec(pg, "SELECT 1");
	ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		ctx_db_error(c, r);
	PQclear(r);
	return ok;
}

/*
 * Whether the database answers: a probe when none runs (which may leave a
 * response set when it failed), else the last probe's finding.
 */
static int database_ready(struct ctx *c)
{
	int ok, probe;

	pthread_mutex_lock(&ready_mu);
	probe = !ready_probing;
	ready_probing |= probe;
	ok = ready_ok;
	pthread_mutex_unlock(&ready_mu);
	if (probe) {
		ok = ready_probe(c);
		pthread_mutex_lock(&ready_mu);
		ready_ok = ok;
		ready_probing = 0;
		pthread_mutex_unlock(&ready_mu);
	}
	return ok;
}

/*
 * Not ready: a 503 that says what the pool knows. A primary that cannot
 * be reached, or one that failed a connection (read-only, shutting down),
 * is a primary going away: a failover, or a database down.
 */
static void not_ready(struct ctx *c)
{
	struct pool_stats st;
	struct json_object *db = json_object_new_object(), *members = json_object_new_object();
	char detail[300];

	pool_get_stats(c->app->pool, &st);
	if (st.unreachable_seconds > 0)
		snprintf(detail, sizeof(detail),
			 "the database primary cannot be reached (last %s) for %.1f s: it is failing "
			 "over or down; try again shortly", st.server[0] ? st.server : "none",
			 st.unreachable_seconds);
	else
		snprintf(detail, sizeof(detail), "the database is unavailable; try again shortly");
	json_object_object_add(db, "server", json_object_new_string(st.server));
	json_object_object_add(db, "unreachable_seconds",
			       json_object_new_double(st.unreachable_seconds));
	add_count(db, "failovers", st.failovers);
	json_object_object_add(members, "database", db);
	http_resp_reset(&c->resp);
	http_resp_header(&c->resp, "Retry-After", "1");
	http_problem_with(&c->resp, 503, detail, members);
}

static void ops_ready(struct ctx *c)
{
	struct json_object *o;
	struct pool_stats st;

	if (!database_ready(c)) {
		not_ready(c);
		return;
	}
	pool_get_stats(c->app->pool, &st);
	o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string("ready"));
	json_object_object_add(o, "database", json_object_new_string("ok"));
	json_object_object_add(o, "database_server", json_object_new_string(st.server));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

/* Add an unsigned counter (JSON has no unsigned: counters stay far below 2^63). */
static void add_count(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

struct json_object *ops_pool_json(struct pool *p)
{
	struct pool_stats st;
	struct json_object *o = json_object_new_object();

	pool_get_stats(p, &st);
	add_count(o, "size", (uint64_t)st.size);
	add_count(o, "max_overflow", (uint64_t)st.max_overflow);
	add_count(o, "max", (uint64_t)st.max);
	add_count(o, "open", (uint64_t)st.open);
	add_count(o, "checked_in", (uint64_t)st.idle);
	add_count(o, "checked_out", (uint64_t)st.checked_out);
	add_count(o, "overflow", (uint64_t)st.overflow);
	add_count(o, "waiting", (uint64_t)st.waiting);
	add_count(o, "checkouts", st.checkouts);
	add_count(o, "timeouts", st.timeouts);
	add_count(o, "opened", st.opened);
	add_count(o, "closed", st.closed);
	add_count(o, "recycled", st.recycled);
	add_count(o, "reaped", st.reaped);
	add_count(o, "invalid", st.invalidated);
	add_count(o, "failed", st.failed);
	add_count(o, "leaks", st.leaks);
	json_object_object_add(o, "wait_seconds_total", json_object_new_double(st.wait_seconds_total));
	/* The server it reaches, and failovers (pool.h). */
	json_object_object_add(o, "server", json_object_new_string(st.server));
	add_count(o, "failovers", st.failovers);
	json_object_object_add(o, "failover_seconds", json_object_new_double(st.failover_seconds));
	json_object_object_add(o, "unreachable_seconds",
			       json_object_new_double(st.unreachable_seconds));
	return o;
}

/* The admission gate as the operator sees it (admission.h): /admin/pool and /admin/metrics. */
static struct json_object *admission_json(struct admission *a)
{
	struct admission_stats st;
	struct json_object *o = json_object_new_object(), *queued, *admitted, *shed, *by_class;
	int k, r;

	admission_get_stats(a, &st);
	queued = json_object_new_object();
	admitted = json_object_new_object();
	shed = json_object_new_object();
	by_class = json_object_new_object();
	for (k = 0; k < ADMISSION_NCLASS; k++) {
		uint64_t n = 0;

		for (r = 0; r < ADMISSION_NSHED; r++)
			n += st.shed[r][k];
		add_count(queued, admission_class_name(k), (uint64_t)st.queued[k]);
		add_count(admitted, admission_class_name(k), st.admitted[k]);
		add_count(by_class, admission_class_name(k), n);
	}
	for (r = 0; r < ADMISSION_NSHED; r++) {
		uint64_t n = 0;

		for (k = 0; k < ADMISSION_NCLASS; k++)
			n += st.shed[r][k];
		add_count(shed, admission_shed_name(r), n);
	}
	json_object_object_add(o, "mode", json_object_new_string(admission_mode_name(st.mode)));
	add_count(o, "limit", (uint64_t)st.limit);
	add_count(o, "floor", (uint64_t)st.floor);
	add_count(o, "ceiling", (uint64_t)st.ceiling);
	add_count(o, "background_places", (uint64_t)st.background_places);
	add_count(o, "in_flight", (uint64_t)st.in_flight);
	json_object_object_add(o, "queued", queued);
	add_count(o, "parked", (uint64_t)st.parked);
	add_count(o, "queue_max", (uint64_t)st.queue_max);
	json_object_object_add(o, "overloaded", json_object_new_boolean(st.overloaded));
	json_object_object_add(o, "pressed", json_object_new_boolean(st.pressed));
	json_object_object_add(o, "measuring_min_rtt", json_object_new_boolean(st.measuring));
	json_object_object_add(o, "min_rtt_ms", json_object_new_double(st.min_rtt * 1000.0));
	json_object_object_add(o, "sample_rtt_ms", json_object_new_double(st.sample_rtt * 1000.0));
	json_object_object_add(o, "target_ms", json_object_new_double(st.target * 1000.0));
	json_object_object_add(o, "background_target_ms",
			       json_object_new_double(st.background_target * 1000.0));
	json_object_object_add(o, "interval_ms", json_object_new_double(st.interval * 1000.0));
	json_object_object_add(o, "admitted", admitted);
	add_count(o, "admitted_after_waiting", st.queued_total);
	json_object_object_add(o, "queue_seconds_total", json_object_new_double(st.queue_seconds_total));
	json_object_object_add(o, "shed", shed);
	json_object_object_add(o, "shed_by_class", by_class);
	add_count(o, "limit_changes", st.limit_changes);
	return o;
}

static void ops_pool(struct ctx *c)
{
	struct json_object *o = ops_pool_json(c->app->pool);

	/* The primary's figures stay at the top level; each replica's pool beside them. */
	json_object_object_add(o, "name", json_object_new_string("primary"));
	json_object_object_add(o, "replicas", replicas_json());
	json_object_object_add(o, "admission", admission_json(c->app->gate));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

/* What the sentinels said (REDIS_SENTINELS): the master, and its switches. */
static struct json_object *sentinels_json(void)
{
	struct cache_master_stats ms;
	struct json_object *o = json_object_new_object();

	cache_master_get_stats(&ms);
	json_object_object_add(o, "master", json_object_new_string(ms.master));
	add_count(o, "switches", ms.switches);
	json_object_object_add(o, "last_switch_seconds",
			       json_object_new_double(ms.last_switch_seconds));
	add_count(o, "sentinel_errors", ms.sentinel_errors);
	return o;
}

static void ops_cache(struct ctx *c)
{
	struct cache_stats st;
	struct json_object *o = json_object_new_object();
	uint64_t lookups;

	cache_get_stats(&st);
	lookups = st.hits + st.misses;
	json_object_object_add(o, "enabled", json_object_new_boolean(st.enabled));
	json_object_object_add(o, "up", json_object_new_boolean(st.up));
	add_count(o, "hits", st.hits);
	add_count(o, "misses", st.misses);
	add_count(o, "bypasses", st.bypasses);
	add_count(o, "stores", st.stores);
	add_count(o, "stores_refused", st.stores_refused);
	add_count(o, "lease_waits", st.lease_waits);
	add_count(o, "lease_wait_hits", st.lease_wait_hits);
	add_count(o, "invalidations", st.invalidations);
	add_count(o, "errors", st.errors);
	add_count(o, "drained", st.drained);
	add_count(o, "drains", st.drains);
	add_count(o, "ack_waits", st.ack_waits);
	add_count(o, "ack_wait_ms", st.ack_wait_ms);
	add_count(o, BAD_VALUES, st.bad_values);
	json_object_object_add(o, "hit_rate",
			       json_object_new_double(lookups ? (double)st.hits / (double)lookups : 0.0));
	if (c->app->cfg->sentinels.n > 0)
		json_object_object_add(o, "sentinels", sentinels_json());
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

/* ---- /metrics: Prometheus text ---------------------------------------------- */

static void prom_head(struct strbuf *sb, const char *name, const char *type, const char *help)
{
	strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram from non-cumulative counts; labels "" for none. */
static void prom_histogram(struct strbuf *sb, const char *name, const char *labels,
			   const unsigned long long *counts, double sum)
{
	const char *sep = *labels ? "," : "";
	unsigned long long cum = 0;
	char set[128];
	int i;

	for (i = 0; i <= HIST_NBUCKETS; i++) {
		cum += counts[i];
		if (i < HIST_NBUCKETS)
			strbuf_printf(sb, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
				      hist_buckets[i], cum);
		else
			strbuf_printf(sb, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cum);
	}
	/* "{labels}", or nothing for a histogram without labels. */
	snprintf(set, sizeof(set), *labels ? "{%s}" : "%s", labels);
	strbuf_printf(sb, "%s_sum%s %.6f\n", name, set, sum);
	strbuf_printf(sb, "%s_count%s %llu\n", name, set, cum);
}

/* A metric without labels: its HELP, TYPE and one sample. */
static void prom_value(struct strbuf *sb, const char *name, const char *type, const char *help,
		       double v)
{
	prom_head(sb, name, type, help);
	strbuf_printf(sb, "%s %.17g\n", name, v);
}

static void prom_routes(struct strbuf *sb, const struct metrics_snapshot *m)
{
	size_t nr, i;
	const struct route *table = resources_routes(&nr);

	prom_head(sb, "paintstudio_http_requests_total", "counter",
		  "Answered requests by route and status class.");
	for (i = 0; i <= m->nroutes; i++) {
		const char *name = i < nr ? table[i].name : "unmatched";
		int k;

		for (k = 1; k <= 5; k++)
			if (m->routes[i].by_class[k])
				strbuf_printf(sb, "paintstudio_http_requests_total{route=\"%s\",status=\"%dxx\"} %llu\n",
					      name, k, m->routes[i].by_class[k]);
	}
	prom_head(sb, "paintstudio_http_request_duration_seconds", "histogram",
		  "Time to answer, by route, method and status class.");
	for (i = 0; i <= m->nroutes; i++) {
		int k;

		for (k = 1; k <= 5; k++) {
			char labels[128];

			if (m->routes[i].by_class[k] == 0)
				continue;
			snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",status=\"%dxx\"",
				 i < nr ? table[i].name : "unmatched", i < nr ? table[i].method : "",
				 k);
			prom_histogram(sb, "paintstudio_http_request_duration_seconds", labels,
				       m->routes[i].latency[k], m->routes[i].latency_sum[k]);
		}
	}
}

/* Each statement's time, by the service's name for it (trace.h). */
static void prom_statements(struct strbuf *sb)
{
	static const char N[] = "paintstudio_db_statement_duration_seconds";
	struct trace_stat *st = xcalloc(TRACE_NAMES_MAX, sizeof(*st));
	int i, n = trace_stats(st, TRACE_NAMES_MAX);

	prom_head(sb, N, "histogram",
		  "Time of each statement the service ran, by its name (BEGIN and COMMIT included).");
	for (i = 0; i < n; i++) {
		char labels[80];

		snprintf(labels, sizeof(labels), "statement=\"%s\"", st[i].name);
		prom_histogram(sb, N, labels, st[i].counts, st[i].sum);
	}
	free(st);
}

static void prom_pool(struct strbuf *sb, const struct pool_stats *ps, const struct metrics_snapshot *m)
{
	static const char P[] = "paintstudio_pool_connections";

	prom_value(sb, "paintstudio_pool_connections_active", "gauge", "Connections checked out.", ps->checked_out);
	prom_value(sb, "paintstudio_pool_connections_idle", "gauge", "Connections checked in.", ps->idle);
	prom_value(sb, "paintstudio_pool_connections_pending", "gauge", "Requests waiting for a connection.", ps->waiting);
	prom_value(sb, P, "gauge", "Connections open (or opening).", ps->open);
	prom_value(sb, "paintstudio_pool_connections_max", "gauge", "Pool size plus overflow.", ps->max);
	prom_value(sb, "paintstudio_pool_connections_min", "gauge", "Pool size kept open.", ps->size);
	prom_value(sb, "paintstudio_pool_connections_timeout_total", "counter",
		   "Checkouts that waited the whole pool timeout.", (double)ps->timeouts);
	prom_value(sb, "paintstudio_pool_connections_created_total", "counter", "Connections opened.", (double)ps->opened);
	prom_value(sb, "paintstudio_pool_connections_closed_total", "counter", "Connections closed.", (double)ps->closed);
	prom_value(sb, "paintstudio_pool_connections_invalid_total", "counter",
		   "Connections found broken and discarded.", (double)ps->invalidated);
	prom_value(sb, "paintstudio_pool_connections_failed_total", "counter",
		   "Connections that could not be opened (PostgreSQL unreachable or refusing).",
		   (double)ps->failed);
	prom_head(sb, "paintstudio_database_server_info", "gauge",
		  "The server the primary's pool opened its last connection to (host:port).");
	strbuf_printf(sb, "paintstudio_database_server_info{server=\"%s\"} 1\n", ps->server);
	prom_value(sb, "paintstudio_database_failovers_total", "counter",
		   "Connections opened to another server than the last (a failover followed).",
		   (double)ps->failovers);
	prom_value(sb, "paintstudio_database_failover_seconds", "gauge",
		   "The last failover, from the first failure seen to a connection to the new primary.",
		   ps->failover_seconds);
	prom_value(sb, "paintstudio_database_unreachable_seconds", "gauge",
		   "How long opening a connection to the primary has failed; 0 while it works.",
		   ps->unreachable_seconds);
	prom_head(sb, "paintstudio_pool_connections_acquire_seconds", "histogram",
		  "Time a request waited for a connection.");
	prom_histogram(sb, "paintstudio_pool_connections_acquire_seconds", "", m->pool_acquire,
		       m->pool_acquire_sum);
}

/* The admission gate: its limit, places, queue, and what it admitted and turned away. */
static void prom_admission(struct strbuf *sb, struct admission *a)
{
	static const char Q[] = "paintstudio_admission_queued";
	static const char A[] = "paintstudio_admission_admitted_total";
	static const char S[] = "paintstudio_admission_shed_total";
	struct admission_stats st;
	int k, r;

	admission_get_stats(a, &st);
	prom_value(sb, "paintstudio_admission_limit", "gauge",
		   "Database-bound requests admitted at once now (0: admission off).", st.limit);
	prom_value(sb, "paintstudio_admission_in_flight", "gauge",
		   "Database-bound requests holding a place now.", st.in_flight);
	prom_head(sb, Q, "gauge", "Requests waiting for a place, by class.");
	for (k = 0; k < ADMISSION_NCLASS; k++)
		strbuf_printf(sb, "%s{class=\"%s\"} %d\n", Q, admission_class_name(k), st.queued[k]);
	prom_value(sb, "paintstudio_admission_parked", "gauge",
		   "Of the queued, those waiting without a thread (a person's reads).", st.parked);
	prom_value(sb, "paintstudio_admission_overloaded", "gauge",
		   "1 while the queue's delay stands above its target (a person's arrivals are shed).",
		   st.overloaded);
	prom_value(sb, "paintstudio_admission_pressed", "gauge",
		   "1 while it stands above the background target (background arrivals are shed).",
		   st.pressed);
	prom_value(sb, "paintstudio_admission_min_rtt_seconds", "gauge",
		   "Median time a place is held with the limit at its floor (the no-load latency).",
		   st.min_rtt);
	prom_value(sb, "paintstudio_admission_sample_rtt_seconds", "gauge",
		   "Median time a place was held in the last window.", st.sample_rtt);
	prom_head(sb, A, "counter", "Requests given a place, by class.");
	for (k = 0; k < ADMISSION_NCLASS; k++)
		strbuf_printf(sb, "%s{class=\"%s\"} %llu\n", A, admission_class_name(k),
			      (unsigned long long)st.admitted[k]);
	prom_value(sb, "paintstudio_admission_queue_seconds_total", "counter",
		   "Time admitted requests waited in the queue.", st.queue_seconds_total);
	prom_head(sb, S, "counter", "Requests turned away with 503 and Retry-After, by reason and class.");
	for (r = 0; r < ADMISSION_NSHED; r++)
		for (k = 0; k < ADMISSION_NCLASS; k++)
			strbuf_printf(sb, "%s{reason=\"%s\",class=\"%s\"} %llu\n", S,
				      admission_shed_name(r), admission_class_name(k),
				      (unsigned long long)st.shed[r][k]);
}

static void prom_cache(struct strbuf *sb, const struct cache_stats *cs)
{
	prom_value(sb, "paintstudio_cache_hits_total", "counter", "Cache lookups answered by Redis.", (double)cs->hits);
	prom_value(sb, "paintstudio_cache_misses_total", "counter", "Cache lookups that read PostgreSQL.", (double)cs->misses);
	prom_value(sb, "paintstudio_cache_bypasses_total", "counter",
		   "Lookups that skipped Redis (down, disabled or not yet trusted).", (double)cs->bypasses);
	prom_value(sb, "paintstudio_cache_errors_total", "counter", "Redis failures.", (double)cs->errors);
	prom_value(sb, "paintstudio_cache_bad_values_total", "counter",
		   "Values read from Redis that were not what the service writes: read as misses.",
		   (double)cs->bad_values);
	prom_value(sb, "paintstudio_cache_invalidations_total", "counter", "Paints invalidated.",
		   (double)cs->invalidations);
	prom_value(sb, "paintstudio_redis_up", "gauge", "1 when the cache is in use.", cs->up);
}

/* With REDIS_SENTINELS: the master they name, and how often it changed. */
static void prom_sentinels(struct strbuf *sb)
{
	struct cache_master_stats ms;

	cache_master_get_stats(&ms);
	prom_head(sb, "paintstudio_redis_master_info", "gauge",
		  "The Redis master the sentinels named last (address label).");
	strbuf_printf(sb, "paintstudio_redis_master_info{address=\"%s\"} 1\n", ms.master);
	prom_value(sb, "paintstudio_redis_master_switches_total", "counter",
		   "Times the sentinels named another Redis master.", (double)ms.switches);
	prom_value(sb, "paintstudio_redis_master_last_switch_seconds", "gauge",
		   "The last switch, from the first Redis failure seen to the new master's address.",
		   ms.last_switch_seconds);
	prom_value(sb, "paintstudio_redis_sentinel_errors_total", "counter",
		   "Sentinels that did not answer when asked for the master.",
		   (double)ms.sentinel_errors);
}

static void prom_process(struct strbuf *sb, const struct metrics_snapshot *m)
{
	int i;

	prom_value(sb, "process_resident_memory_bytes", "gauge", "Resident memory.", m->rss_bytes);
	prom_value(sb, "process_cpu_seconds_total", "counter", "User and system CPU time.", m->cpu_seconds);
	prom_value(sb, "process_start_time_seconds", "gauge", "Start time since the Unix epoch.", m->started_wall);
	prom_value(sb, "paintstudio_threads_busy", "gauge", "Worker threads serving a request.", m->threads_busy);
	prom_value(sb, "paintstudio_threads", "gauge", "Worker threads.", m->threads);
	/* Unknown until the first sample (a few seconds after start): no series rather than a false 0. */
	if (m->low_stock >= 0)
		prom_value(sb, "paintstudio_paints_low_stock", "gauge",
			   "Paints at or below their low-stock threshold (sampled every few seconds).",
			   (double)m->low_stock);
	prom_head(sb, "paintstudio_alert_firing", "gauge", "1 while an alert's threshold is crossed.");
	for (i = 0; i < METRICS_NALERTS; i++)
		strbuf_printf(sb, "paintstudio_alert_firing{alert=\"%s\"} %d\n", m->alerts[i].name,
			      m->alerts[i].firing);
}

/* Connections the server closed on a timeout, one series per reason. */
static void prom_fastcgi(struct strbuf *sb, const struct metrics_snapshot *m)
{
	static const char N[] = "paintstudio_fastcgi_connections_closed_total";
	int i;

	prom_head(sb, N, "counter", "FastCGI connections the service closed: a request not read "
		  "whole within FCGI_REQUEST_TIMEOUT, or a kept one idle for FCGI_IDLE_TIMEOUT.");
	for (i = 0; i < METRICS_FCGI_NCLOSE; i++)
		strbuf_printf(sb, "%s{reason=\"%s\"} %llu\n", N, m->fcgi_closed[i].reason,
			      m->fcgi_closed[i].count);
}

static void ops_prometheus(struct ctx *c)
{
	struct metrics_snapshot m;
	struct pool_stats ps;
	struct cache_stats cs;
	struct strbuf *sb = &c->resp.body;
	int database_up;

	/* The readiness probe's finding, as Prometheus's database-down alert reads it. */
	database_up = database_ready(c);
	http_resp_reset(&c->resp);	/* a failed probe's 503 */
	metrics_snapshot(&m);
	pool_get_stats(c->app->pool, &ps);
	cache_get_stats(&cs);
	strbuf_reset(sb);
	prom_head(sb, "paintstudio_info", "gauge", "The process: its pid and start time.");
	strbuf_printf(sb, "paintstudio_info{pid=\"%d\"} 1\n", (int)getpid());
	prom_routes(sb, &m);
	prom_value(sb, "paintstudio_database_up", "gauge",
		   "1 when the primary answered the readiness probe (SELECT 1), else 0.", database_up);
	prom_pool(sb, &ps, &m);
	prom_statements(sb);
	prom_admission(sb, c->app->gate);
	prom_replicas(sb);
	prom_cache(sb, &cs);
	if (c->app->cfg->sentinels.n > 0)
		prom_sentinels(sb);
	prom_process(sb, &m);
	prom_fastcgi(sb, &m);
	metrics_snapshot_free(&m);
	c->resp.status = 200;
	c->resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void lsn_text(uint64_t lsn, char out[24])
{
	snprintf(out, 24, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xffffffffu));
}

/* Each replica as the operator sees it: its pool (ops_pool_json's shape), state, lag, positions, routing. */
static struct json_object *replicas_json(void)
{
	struct json_object *a = json_object_new_array();
	int i;

	for (i = 0; i < replicas_count(); i++) {
		struct replica_status st;
		struct json_object *o;
		char text[24];

		replicas_get(i, &st);
		o = ops_pool_json(st.pool);
		json_object_object_add(o, "name", json_object_new_string(st.name));
		json_object_object_add(o, "usable", json_object_new_boolean(st.usable));
		json_object_object_add(o, "reachable", json_object_new_boolean(st.reachable));
		json_object_object_add(o, "lag_ms", st.lag_ms < 0 ? NULL : json_object_new_double(st.lag_ms));
		lsn_text(st.replay_lsn, text);
		json_object_object_add(o, "replay_lsn", json_object_new_string(text));
		lsn_text(st.primary_lsn, text);
		json_object_object_add(o, "primary_lsn", json_object_new_string(text));
		json_object_object_add(o, "reads", json_object_new_int64((int64_t)st.reads));
		json_object_object_add(o, "fallbacks", json_object_new_int64((int64_t)st.fallbacks));
		json_object_object_add(o, "skipped_lag", json_object_new_int64((int64_t)st.skipped_lag));
		json_object_object_add(o, "skipped_position",
				       json_object_new_int64((int64_t)st.skipped_position));
		json_object_array_add(a, o);
	}
	return a;
}

/* The replicas' series, each with a pool="replicaN" label. */
static void prom_replicas(struct strbuf *sb)
{
	static const struct { const char *name, *type, *help; } series[] = {
		{ "paintstudio_replica_up", "gauge", "1 while the replica takes reads (reachable, within the lag limit)." },
		{ "paintstudio_replica_lag_seconds", "gauge", "Replay lag as last sampled (-1 unknown)." },
		{ "paintstudio_replica_reads_total", "counter", "Reads the replica served." },
		{ "paintstudio_replica_fallbacks_total", "counter", "Requests the replica failed, served by the primary." },
		{ "paintstudio_replica_pool_connections_active", "gauge", "Connections checked out." },
		{ "paintstudio_replica_pool_connections_idle", "gauge", "Connections checked in." },
		{ "paintstudio_replica_pool_connections_pending", "gauge", "Requests waiting for a connection." },
		{ "paintstudio_replica_pool_connections_max", "gauge", "Pool size plus overflow." },
		{ "paintstudio_replica_pool_connections_timeout_total", "counter", "Checkouts that waited the whole timeout." },
		{ "paintstudio_replica_pool_connections_created_total", "counter", "Connections opened." },
		{ "paintstudio_replica_pool_connections_closed_total", "counter", "Connections closed." },
	};
	size_t k;
	int i;

	if (replicas_count() == 0)
		return;
	for (k = 0; k < sizeof(series) / sizeof(series[0]); k++) {
		strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help,
			      series[k].name, series[k].type);
		for (i = 0; i < replicas_count(); i++) {
			struct replica_status st;
			struct pool_stats ps;
			double v;

			replicas_get(i, &st);
			pool_get_stats(st.pool, &ps);
			switch (k) {
			case 0: v = st.usable; break;
			case 1: v = st.lag_ms < 0 ? -1 : st.lag_ms / 1000.0; break;
			case 2: v = (double)st.reads; break;
			case 3: v = (double)st.fallbacks; break;
			case 4: v = ps.checked_out; break;
			case 5: v = ps.idle; break;
			case 6: v = ps.waiting; break;
			case 7: v = ps.max; break;
			case 8: v = (double)ps.timeouts; break;
			case 9: v = (double)ps.opened; break;
			default: v = (double)ps.closed; break;
			}
			strbuf_printf(sb, "%s{pool=\"%s\"} %.15g\n", series[k].name, st.name, v);
		}
	}
}

/* ---- /admin/metrics: JSON ---------------------------------------------------- */

/* An indicator held to a target: below it (below = 1) or above it. */
static struct json_object *indicator(double value, const char *unit, double target, int below,
				     int pass)
{
	struct json_object *o = json_object_new_object();
	char rule[48];

	snprintf(rule, sizeof(rule), "%s %g", below ? "<" : ">", target);
	json_object_object_add(o, "value", json_object_new_double(value));
	json_object_object_add(o, "unit", json_object_new_string(unit));
	json_object_object_add(o, "target", json_object_new_string(rule));
	json_object_object_add(o, "pass", json_object_new_boolean(pass));
	return o;
}

/*
 * A timed "SELECT 1" on its own short leash (monitoring must answer in an
 * incident): {query_ms} or {error}. A failed checkout's 503 is undone.
 */
static struct json_object *database_probe(struct ctx *c)
{
	struct json_object *q = json_object_new_object();
	double t0 = now_mono();
	PGconn *pg = ctx_db_probe(c, 0.5);
	PGresult *r;

	if (pg == NULL) {
		http_resp_reset(&c->resp);
		json_object_object_add(q, "error", json_object_new_string("no database connection within 0.5 s"));
		return q;
	}
	r = PQexec(pg, "SELECT 1");
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		json_object_object_add(q, "query_ms", json_object_new_double((now_mono() - t0) * 1000.0));
	else
		json_object_object_add(q, "error", json_object_new_string(PQresultErrorMessage(r)));
	PQclear(r);
	ctx_db_release(c);
	return q;
}

static struct json_object *indicators(const struct config *cfg, const struct metrics_window *t,
				      const struct pool_stats *ps)
{
	struct json_object *ind = json_object_new_object();
	double p50 = metrics_quantile(t->db, 0.50) * 1000.0, p99 = metrics_quantile(t->db, 0.99) * 1000.0;
	double usage = ps->max ? 100.0 * t->pool_peak / ps->max : 0;
	unsigned long long lookups = t->cache_hits + t->cache_misses;
	double hit_rate = lookups ? 100.0 * (double)t->cache_hits / (double)lookups : 0;
	double err_rate = t->requests ? 100.0 * (double)t->errors / (double)t->requests : 0;

	json_object_object_add(ind, "query_p50", indicator(p50, "ms", cfg->target.query_ms, 1,
							   p50 < cfg->target.query_ms));
	json_object_object_add(ind, "query_p99", indicator(p99, "ms", cfg->target.query_ms, 1,
							   p99 < cfg->target.query_ms));
	json_object_object_add(ind, "pool_usage", indicator(usage, "%", cfg->target.pool_percent, 1,
							    usage < cfg->target.pool_percent));
	/* No lookups in the window: nothing failed. */
	json_object_object_add(ind, "cache_hit_rate",
			       indicator(hit_rate, "%", cfg->target.cache_hit_percent, 0,
					 lookups == 0 || hit_rate > cfg->target.cache_hit_percent));
	json_object_object_add(ind, "error_rate", indicator(err_rate, "%", cfg->target.error_percent, 1,
							    err_rate < cfg->target.error_percent));
	json_object_object_add(ind, "server_connections",
			       indicator(ps->open, "count", cfg->target.server_connections, 1,
					 ps->open < cfg->target.server_connections));
	return ind;
}

static struct json_object *alerts_json(const struct metrics_snapshot *m)
{
	struct json_object *al = json_object_new_array();
	int i;

	for (i = 0; i < METRICS_NALERTS; i++) {
		struct json_object *a;

		if (!m->alerts[i].firing)
			continue;
		a = json_object_new_object();
		json_object_object_add(a, "alert", json_object_new_string(m->alerts[i].name));
		json_object_object_add(a, "value", json_object_new_double(m->alerts[i].value));
		json_object_object_add(a, "threshold", json_object_new_double(m->alerts[i].threshold));
		json_object_object_add(a, "unit", json_object_new_string(m->alerts[i].unit));
		json_object_array_add(al, a);
	}
	return al;
}

/* The worker threads: how many take requests, parked, lent, unparked by the watcher. */
static struct json_object *workers_json(void)
{
	struct workers_stats st;
	struct json_object *o = json_object_new_object();

	workers_get_stats(&st);
	add_count(o, "threads", (uint64_t)st.threads);
	add_count(o, "active_wanted", (uint64_t)st.base);
	add_count(o, "active", (uint64_t)st.active);
	add_count(o, "parked", (uint64_t)st.parked);
	add_count(o, "lent", (uint64_t)st.lent);
	add_count(o, "extra", (uint64_t)st.extra);
	add_count(o, "unparked_by_watcher", st.unparks);
	add_count(o, "lends", st.lends);
	return o;
}

/* FastCGI connections the server closed on a timeout, by reason. */
static struct json_object *fastcgi_json(const struct metrics_snapshot *m)
{
	struct json_object *o = json_object_new_object(), *closed = json_object_new_object();
	int i;

	for (i = 0; i < METRICS_FCGI_NCLOSE; i++)
		add_count(closed, m->fcgi_closed[i].reason, m->fcgi_closed[i].count);
	json_object_object_add(o, "connections_closed", closed);
	return o;
}

/*
 * The catalogue's low stock as last sampled: {count (null until the first
 * sample), default_threshold, sampled_at, lowest: [{id, name, brand,
 * stock, threshold}]}, the lowest first.
 */
static struct json_object *low_stock_json(const struct config *cfg, const struct metrics_snapshot *m)
{
	struct json_object *o = json_object_new_object(), *lowest = json_object_new_array();
	char ts[40];
	int i;

	json_object_object_add(o, "count", m->low_stock >= 0 ? json_object_new_int64(m->low_stock) : NULL);
	json_object_object_add(o, "default_threshold", json_object_new_int(cfg->low_stock_threshold));
	if (m->low_stock >= 0) {
		format_iso8601(m->low_stock_at, ts, sizeof(ts));
		json_object_object_add(o, "sampled_at", json_object_new_string(ts));
	} else {
		json_object_object_add(o, "sampled_at", NULL);
	}
	for (i = 0; i < m->nlow; i++) {
		struct json_object *p = json_object_new_object();

		json_object_object_add(p, "id", json_object_new_int64(m->low[i].id));
		json_object_object_add(p, "name", json_object_new_string(m->low[i].name));
		json_object_object_add(p, "brand", json_object_new_string(m->low[i].brand));
		json_object_object_add(p, "stock", json_object_new_int64(m->low[i].stock));
		json_object_object_add(p, "threshold", json_object_new_int64(m->low[i].threshold));
		json_object_array_add(lowest, p);
	}
	json_object_object_add(o, "lowest", lowest);
	return o;
}

static void ops_admin_metrics(struct ctx *c)
{
	struct json_object *o = json_object_new_object(), *mem, *cache, *reqs;
	const struct metrics_window *t;
	struct metrics_snapshot m;
	struct pool_stats ps;
	struct cache_stats cs;
	unsigned long long lookups;
	char ts[40];

	json_object_object_add(o, "database", database_probe(c));
	metrics_snapshot(&m);
	pool_get_stats(c->app->pool, &ps);
	cache_get_stats(&cs);
	t = &m.window;
	mem = json_object_new_object();
	json_object_object_add(mem, "rss_bytes", json_object_new_double(m.rss_bytes));
	json_object_object_add(mem, "limit_bytes", json_object_new_double(m.mem_limit_bytes));
	json_object_object_add(mem, "percent", json_object_new_double(
		m.mem_limit_bytes > 0 ? 100.0 * m.rss_bytes / m.mem_limit_bytes : 0));
	json_object_object_add(o, "memory", mem);
	json_object_object_add(o, "cpu_percent", json_object_new_double(m.cpu_percent));
	json_object_object_add(o, "pool", ops_pool_json(c->app->pool));
	json_object_object_add(o, "workers", workers_json());
	json_object_object_add(o, "admission", admission_json(c->app->gate));
	json_object_object_add(o, "fastcgi", fastcgi_json(&m));
	lookups = t->cache_hits + t->cache_misses;
	cache = json_object_new_object();
	json_object_object_add(cache, "up", json_object_new_boolean(cs.up));
	json_object_object_add(cache, "hit_rate_percent", json_object_new_double(
		lookups ? 100.0 * (double)t->cache_hits / (double)lookups : 0));
	add_count(cache, BAD_VALUES, cs.bad_values);
	json_object_object_add(o, "cache", cache);
	reqs = json_object_new_object();
	json_object_object_add(reqs, "window_seconds", json_object_new_int(t->seconds));
	json_object_object_add(reqs, "count", json_object_new_int64((int64_t)t->requests));
	json_object_object_add(reqs, "rate_per_second",
			       json_object_new_double((double)t->requests / t->seconds));
	json_object_object_add(reqs, "error_rate_percent", json_object_new_double(
		t->requests ? 100.0 * (double)t->errors / (double)t->requests : 0));
	json_object_object_add(o, "requests", reqs);
	json_object_object_add(o, "indicators", indicators(c->app->cfg, t, &ps));
	json_object_object_add(o, "alerts", alerts_json(&m));
	json_object_object_add(o, "low_stock", low_stock_json(c->app->cfg, &m));
	format_iso8601(now_wall(), ts, sizeof(ts));
	json_object_object_add(o, "timestamp", json_object_new_string(ts));
	metrics_snapshot_free(&m);
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

/* Every /admin/ route is AUTH_ADMIN: the unit tests hold the table to it. */
static const struct route routes[] = {
	{ "GET", "/healthz", ops_live, "healthz", AUTH_NONE, true, 0 },
	{ "GET", "/readyz", ops_ready, "readyz", AUTH_NONE, true, 0 },
	{ "GET", "/metrics", ops_prometheus, "metrics", AUTH_LOOPBACK_OR_ADMIN, true, 0 },
	{ "GET", "/admin/pool", ops_pool, "admin.pool", AUTH_ADMIN, true, 0 },
	{ "GET", "/admin/cache", ops_cache, "admin.cache", AUTH_ADMIN, true, 0 },
	{ "GET", "/admin/metrics", ops_admin_metrics, "admin.metrics", AUTH_ADMIN, true, 0 },
};

const struct resource ops_resource = {
	"ops", routes, RESOURCE_ARRAY_LEN(routes), NULL, 0,
};
