#include "health.h"

#include <json-c/json.h>

#include "cache.h"
#include "context.h"
#include "util.h"

/* Readiness must answer quickly even when the pool is saturated. */
#define READY_TIMEOUT 2.0

void health_live(struct ctx *c)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "status", json_object_new_string("ok"));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

void health_ready(struct ctx *c)
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

void health_pool(struct ctx *c)
{
	struct pool_stats st;
	struct json_object *o = json_object_new_object();

	pool_get_stats(c->app->pool, &st);
	json_object_object_add(o, "size", json_object_new_int(st.size));
	json_object_object_add(o, "max_overflow", json_object_new_int(st.max_overflow));
	json_object_object_add(o, "max", json_object_new_int(st.max));
	json_object_object_add(o, "open", json_object_new_int(st.open));
	json_object_object_add(o, "checked_in", json_object_new_int(st.idle));
	json_object_object_add(o, "checked_out", json_object_new_int(st.checked_out));
	json_object_object_add(o, "overflow", json_object_new_int(st.overflow));
	json_object_object_add(o, "waiting", json_object_new_int(st.waiting));
	json_object_object_add(o, "checkouts", json_object_new_int64((int64_t)st.checkouts));
	json_object_object_add(o, "timeouts", json_object_new_int64((int64_t)st.timeouts));
	json_object_object_add(o, "opened", json_object_new_int64((int64_t)st.opened));
	json_object_object_add(o, "closed", json_object_new_int64((int64_t)st.closed));
	json_object_object_add(o, "recycled", json_object_new_int64((int64_t)st.recycled));
	json_object_object_add(o, "invalid", json_object_new_int64((int64_t)st.invalidated));
	json_object_object_add(o, "failed", json_object_new_int64((int64_t)st.failed));
	json_object_object_add(o, "leaks", json_object_new_int64((int64_t)st.leaks));
	json_object_object_add(o, "wait_seconds_total",
			       json_object_new_double(st.wait_seconds_total));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

void health_cache(struct ctx *c)
{
	struct cache_stats st;
	struct json_object *o = json_object_new_object();
	uint64_t lookups;

	cache_get_stats(&st);
	lookups = st.hits + st.misses;
	json_object_object_add(o, "enabled", json_object_new_boolean(st.enabled));
	json_object_object_add(o, "up", json_object_new_boolean(st.up));
	json_object_object_add(o, "hits", json_object_new_int64((int64_t)st.hits));
	json_object_object_add(o, "misses", json_object_new_int64((int64_t)st.misses));
	json_object_object_add(o, "bypasses", json_object_new_int64((int64_t)st.bypasses));
	json_object_object_add(o, "stores", json_object_new_int64((int64_t)st.stores));
	json_object_object_add(o, "stores_refused", json_object_new_int64((int64_t)st.stores_refused));
	json_object_object_add(o, "lease_waits", json_object_new_int64((int64_t)st.lease_waits));
	json_object_object_add(o, "lease_wait_hits", json_object_new_int64((int64_t)st.lease_wait_hits));
	json_object_object_add(o, "invalidations", json_object_new_int64((int64_t)st.invalidations));
	json_object_object_add(o, "errors", json_object_new_int64((int64_t)st.errors));
	json_object_object_add(o, "drained", json_object_new_int64((int64_t)st.drained));
	json_object_object_add(o, "hit_rate",
			       json_object_new_double(lookups ? (double)st.hits / (double)lookups : 0.0));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}
