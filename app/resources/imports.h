/*
 * imports: POST /admin/paints/import, a CSV file of paints checked whole
 * and applied in one transaction, or not at all (issue 28; docs/api.md,
 * "Importing paints"). What a line is and how it is judged lives in
 * import_model.h.
 */
#ifndef PS_IMPORTS_H
#define PS_IMPORTS_H

#include "resources/resources.h"

struct ctx;

/* The import route; its statements run through ctx_exec_dynamic (they name a temporary table). */
extern const struct resource imports_resource;

/*
 * POST /admin/paints/import[?dry_run=1], a text/csv body read in pieces
 * as it arrives. Answers the report {import_id, dry_run, rows, create,
 * update, unchanged, errors, error_count}: 200 (a dry run, or applied),
 * 422 when a line is wrong (nothing written), 400 for a header or a
 * text that is not CSV, 413 past the size or line limits, 415 for
 * another content type.
 */
void paints_import(struct ctx *c);

#endif
