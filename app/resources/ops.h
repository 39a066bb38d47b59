/*
 * ops: the operator's routes, which render snapshots and own no state.
 * /healthz says the process is alive (no database), /readyz that it can
 * reach PostgreSQL through the pool; /admin/pool and /admin/cache show the
 * pool's and the cache's figures; /metrics (Prometheus text) and
 * /admin/metrics (JSON: key indicators over a sliding five-minute window,
 * held to the configured targets, and the alerts) render the collector's
 * snapshot (metrics.h).
 */
#ifndef PS_OPS_H
#define PS_OPS_H

#include <json-c/json.h>

#include "resources/resources.h"

struct pool;

/* The operator's routes: health, pool, cache and metrics views. */
extern const struct resource ops_resource;

/* The pool's figures as a new JSON object (caller puts it). */
struct json_object *ops_pool_json(struct pool *p);

#endif
