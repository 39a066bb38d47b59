/*
 * health: the operator's routes. /healthz says the process is alive (no
 * database), /readyz that it can reach PostgreSQL through the pool, and
 * /admin/pool shows the pool's figures.
 */
#ifndef PS_OPS_H
#define PS_OPS_H

#include <json-c/json.h>

#include "resource.h"

struct ctx;
struct pool;

/* The pool's figures as a new JSON object (caller puts it). */
/* The operator's routes: health, pool, cache and metrics views. */
extern const struct resource ops_resource;

struct json_object *ops_pool_json(struct pool *p);

void ops_live(struct ctx *c);
void ops_ready(struct ctx *c);
void ops_pool(struct ctx *c);
void ops_cache(struct ctx *c);

#endif
