/*
 * paints: the /admin/paints resource: its handlers and its one
 * registration (routes and prepared statements). What a paint is lives in
 * paint_model.h; how it is stored, in paint_store.h.
 */
#ifndef PS_PAINTS_H
#define PS_PAINTS_H

#include "resources/resources.h"

struct ctx;

/* The /admin/paints routes and their statements. */
extern const struct resource paints_resource;

void paints_list(struct ctx *c);	/* GET /admin/paints */
void paints_create(struct ctx *c);	/* POST /admin/paints */
void paints_stats(struct ctx *c);	/* GET /admin/paints/stats */
void paints_export(struct ctx *c);	/* GET /admin/paints/export.csv */
void paints_get(struct ctx *c);		/* GET /admin/paints/{id} */
void paints_put(struct ctx *c);		/* PUT /admin/paints/{id} */
void paints_patch(struct ctx *c);	/* PATCH /admin/paints/{id} */
void paints_delete(struct ctx *c);	/* DELETE /admin/paints/{id} */
void paints_stock(struct ctx *c);	/* POST /admin/paints/{id}/stock */

#endif
