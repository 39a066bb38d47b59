/*
 * bulk: POST /admin/paints/bulk, one change made to many paints (chosen
 * by ids or by the list's filters) in one transaction, and
 * POST /admin/paints/bulk/{id}/undo (issue 28; docs/api.md, "Bulk
 * edits"). What a bulk edit's body is and its change as SQL live in
 * bulk_model.h.
 */
#ifndef PS_BULK_H
#define PS_BULK_H

#include "resources/resources.h"

struct ctx;

/* The bulk routes; their statements run through ctx_exec_dynamic (they name temporary tables). */
extern const struct resource bulk_resource;

/*
 * POST /admin/paints/bulk[?preview=1]: {"ids" or "filter", "set" or
 * "add"}. A preview answers {count, matched, unchanged, sample} and
 * writes nothing; applied, {id, count, unchanged}. 422 for a bad body,
 * unknown ids, too many paints or a value out of its bounds (nothing
 * written).
 */
void paints_bulk(struct ctx *c);

/*
 * POST /admin/paints/bulk/{id}/undo: the paints that bulk edit changed
 * back to their values before it, except those changed or deleted since
 * (listed). {id, undoes, count, skipped, skipped_count}; 404 for no such
 * operation, 409 when undone already, 422 for an import or an undo.
 */
void paints_bulk_undo(struct ctx *c);

#endif
