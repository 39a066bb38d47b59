#include "ops.h"

#include <json-c/json.h>

#include "cache.h"
#include "context.h"
#include "metrics.h"
#include "replicas.h"
#include "util.h"

/* Readiness must answer quickly even when the pool is saturated. */
#define READY_TIMEOUT 2.0

void ops_live(struct ctx *c)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "status", json_object_new_string("ok"));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

void ops_ready(struct ctx *c)
{
	double timeout = c->app->cfg->pool_timeout < READY_TIMEOUT
				 ? c->app->cfg->pool_timeout : READY_TIMEOUT;
	struct json_object *o;
	PGconn *pg = ctx_db(c, timeout);
	PGresult *r;

	if (pg == NULL)
		return;	/* 503 set by ctx_db */
	r = PQexec(pg, "SELECT 1");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	PQclear(r);
	o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string("ready"));
	json_object_object_add(o, "database", json_object_new_string("ok"));
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
	return o;
}

void ops_pool(struct ctx *c)
{
	struct json_object *o = ops_pool_json(c->app->pool);

	/* The primary's figures stay at the top level; each replica's pool beside them. */
	json_object_object_add(o, "name", json_object_new_string("primary"));
	json_object_object_add(o, "replicas", replicas_json());
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

void ops_cache(struct ctx *c)
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
	json_object_object_add(o, "hit_rate",
			       json_object_new_double(lookups ? (double)st.hits / (double)lookups : 0.0));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

/* Every /admin/ route is AUTH_ADMIN: the unit tests hold the table to it. */
static const struct route routes[] = {
	{ "GET", "/healthz", ops_live, "healthz", AUTH_NONE, true },
	{ "GET", "/readyz", ops_ready, "readyz", AUTH_NONE, true },
	{ "GET", "/metrics", metrics_prometheus, "metrics", AUTH_LOOPBACK_OR_ADMIN, true },
	{ "GET", "/admin/pool", ops_pool, "admin.pool", AUTH_ADMIN, true },
	{ "GET", "/admin/cache", ops_cache, "admin.cache", AUTH_ADMIN, true },
	{ "GET", "/admin/metrics", metrics_admin, "admin.metrics", AUTH_ADMIN, true },
};

const struct resource ops_resource = {
	"ops", routes, RESOURCE_ARRAY_LEN(routes), NULL, 0,
};
