/*
 * health: the operator's routes. /healthz says the process is alive (no
 * database), /readyz that it can reach PostgreSQL through the pool, and
 * /admin/pool shows the pool's figures.
 */
#ifndef PS_HEALTH_H
#define PS_HEALTH_H

#include <json-c/json.h>

struct ctx;
struct pool;

/* The pool's figures as a new JSON object (caller puts it). */
struct json_object *health_pool_json(struct pool *p);

void health_live(struct ctx *c);
void health_ready(struct ctx *c);
void health_pool(struct ctx *c);
void health_cache(struct ctx *c);

#endif
