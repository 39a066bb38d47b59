/*
 * paints: the /admin/paints resource: its handlers and its one
 * registration (routes and prepared statements). What a paint is lives in
 * paint_model.h; how it is stored, in paint_store.h.
 */
#ifndef PS_PAINTS_H
#define PS_PAINTS_H

#include "resources/resources.h"

struct config;
struct ctx;
struct pool;

/*
 * The housekeeper's chore (every few seconds): count the paints low on
 * stock under cfg's default threshold, with the lowest few, on a
 * connection of p, and hand them to the metrics (metrics_low_stock).
 * 0, or -1 when the pool was busy or the query failed (the last sample
 * stands).
 */
int paints_low_stock_sample(struct pool *p, const struct config *cfg);

/* The /admin/paints routes and their statements. */
extern const struct resource paints_resource;

void paints_list(struct ctx *c);	/* GET /admin/paints */
void paints_create(struct ctx *c);	/* POST /admin/paints */
void paints_stats(struct ctx *c);	/* GET /admin/paints/stats */
void paints_export(struct ctx *c);	/* GET /admin/paints/export.csv */
void paints_facets(struct ctx *c);	/* GET /admin/paints/facets */
void paints_get(struct ctx *c);		/* GET /admin/paints/{id} */
void paints_put(struct ctx *c);		/* PUT /admin/paints/{id} */
void paints_patch(struct ctx *c);	/* PATCH /admin/paints/{id} */
void paints_delete(struct ctx *c);	/* DELETE /admin/paints/{id} */
void paints_stock(struct ctx *c);	/* POST /admin/paints/{id}/stock */
void paints_image_put(struct ctx *c);	/* POST /admin/paints/{id}/image */
void paints_image_delete(struct ctx *c);	/* DELETE /admin/paints/{id}/image */

#endif
