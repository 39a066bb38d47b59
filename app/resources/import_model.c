/*
 * import_model: the import's header, lines and errors (import_model.h).
 * A line is checked cell by cell with paint_model's rules, so a CSV cell
 * and a JSON member are judged by the same words.
 */
#include "resources/import_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* The columns after the writable fields, in enum import_column order. */
static const char *const extra_columns[IC_COUNT - PF_CATALOGUE] = {
	"id", "version", "created_at", "updated_at", "low_stock_threshold",
};

static const char *column_name(int col)
{
	return col < PF_CATALOGUE ? paint_field_name((enum paint_field)col)
				  : extra_columns[col - PF_CATALOGUE];
}

static int column_find(const char *name)
{
	int col;

	for (col = 0; col < IC_COUNT; col++)
		if (strcmp(name, column_name(col)) == 0)
			return col;
	return -1;
}

int import_header_read(struct import_header *h, const struct csv_record *rec,
		       struct json_object **errors)
{
	struct json_object *errs = json_object_new_object();
	size_t i;
	int col;

	memset(h, 0, sizeof(*h));
	for (col = 0; col < IC_COUNT; col++)
		h->at[col] = -1;
	h->ncells = rec->ncells;
	for (i = 0; i < rec->ncells && i < IMPORT_MAX_CELLS; i++) {
		const char *name = rec->cells[i];

		if ((col = column_find(name)) < 0)
			json_object_object_add(errs, name, json_object_new_string(
				"is not a column of the import"));
		else if (h->at[col] >= 0)
			json_object_object_add(errs, name, json_object_new_string(
				"is given more than once"));
		else
			h->at[col] = (int)i;
		h->column[i] = col;
	}
	if (json_object_object_length(errs) > 0) {
		*errors = errs;
		return -1;
	}
	json_object_put(errs);
	*errors = NULL;
	return 0;
}

int import_header_missing_required(const struct import_header *h)
{
	int f;

	for (f = 0; f < PF_CATALOGUE; f++)
		if (h->at[f] < 0 && paint_field_default((enum paint_field)f) == NULL)
			return f;
	return -1;
}

/* ---- errors ------------------------------------------------------------------ */

void import_errors_init(struct import_errors *es)
{
	memset(es, 0, sizeof(*es));
	es->limit = IMPORT_MAX_ERRORS;
}

void import_errors_merge_start(struct import_errors *es)
{
	es->split = es->n;
	es->limit = es->n + IMPORT_MAX_ERRORS;
}

void import_errors_add(struct import_errors *es, size_t line, const char *field,
		       const char *message)
{
	struct import_error *e;

	es->total++;
	if (es->n == es->limit)
		return;
	if (es->n == es->cap) {
		es->cap = es->cap ? 2 * es->cap : 16;
		es->e = xrealloc(es->e, es->cap * sizeof(*es->e));
	}
	e = &es->e[es->n++];
	e->line = line;
	snprintf(e->field, sizeof(e->field), "%s", field);
	snprintf(e->message, sizeof(e->message), "%s", message);
}

void import_errors_sort(struct import_errors *es)
{
	size_t i = 0, j = es->split, k = 0, n = es->n < IMPORT_MAX_ERRORS ? es->n : IMPORT_MAX_ERRORS;
	struct import_error *out;

	if (es->split == 0 || es->split == es->n) {
		es->n = n;
		return;
	}
	/* Merge the two lists, each in order of lines; the first list first among equal lines. */
	out = xmalloc(n * sizeof(*out));
	while (k < n)
		out[k++] = j == es->n || (i < es->split && es->e[i].line <= es->e[j].line) ? es->e[i++]
											  : es->e[j++];
	free(es->e);
	es->e = out;
	es->n = es->cap = n;
	es->split = 0;
}

struct json_object *import_errors_json(const struct import_errors *es)
{
	struct json_object *a = json_object_new_array_ext((int)es->n);
	size_t i;

	for (i = 0; i < es->n; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "line", json_object_new_int64((int64_t)es->e[i].line));
		json_object_object_add(o, "field", json_object_new_string(es->e[i].field));
		json_object_object_add(o, "message", json_object_new_string(es->e[i].message));
		json_object_array_add(a, o);
	}
	return a;
}

void import_errors_free(struct import_errors *es)
{
	free(es->e);
	import_errors_init(es);
}

/* ---- lines ------------------------------------------------------------------- */

void import_row_free(struct import_row *row)
{
	int f;

	free(row->id);
	free(row->version);
	for (f = 0; f < PF_COUNT; f++)
		free(row->value[f]);
	memset(row, 0, sizeof(*row));
}

/* An id or version cell: NULL when empty, else the number as text, or NULL + *why. */
static char *number_cell(int col, const char *s, size_t len, const char **why)
{
	int64_t v;
	char buf[24];

	*why = NULL;
	if (len == 0)
		return NULL;
	if (paint_parse_id(s, len, &v) != 0) {
		*why = col == IC_ID ? "must be a paint id (a whole number from 1)"
				    : "must be a version (a whole number from 1)";
		return NULL;
	}
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return xstrdup(buf);
}

int import_row_read(const struct import_header *h, const struct csv_record *rec,
		    struct import_row *row, struct import_errors *es)
{
	size_t before = es->total, i, len;
	const char *why, *s;
	char msg[96];
	int col;

	memset(row, 0, sizeof(*row));
	row->line = rec->line;
	if (rec->ncells != h->ncells) {
		snprintf(msg, sizeof(msg), "has %zu cells where the header has %zu", rec->ncells,
			 h->ncells);
		import_errors_add(es, rec->line, "", msg);
		return -1;
	}
	for (i = 0; i < rec->ncells; i++) {
		col = h->column[i];
		why = NULL;
		if (col == IC_ID)
			row->id = number_cell(col, rec->cells[i], rec->lens[i], &why);
		else if (col == IC_VERSION)
			row->version = number_cell(col, rec->cells[i], rec->lens[i], &why);
		else if (col < PF_CATALOGUE) {
			s = csv_unneutralise(rec->cells[i], rec->lens[i], &len);
			row->value[col] = paint_field_from_text((enum paint_field)col, s, &why);
		}
		if (why)
			import_errors_add(es, rec->line, column_name(col), why);
	}
	if (es->total != before) {
		import_row_free(row);
		return -1;
	}
	return 0;
}

/* s in COPY's text format: backslash, tab, CR and LF escaped; NULL as \N. */
static void copy_value(struct strbuf *out, const char *s)
{
	if (s == NULL) {
		strbuf_puts(out, "\\N");
		return;
	}
	for (; *s; s++) {
		switch (*s) {
		case '\\': strbuf_puts(out, "\\\\"); break;
		case '\t': strbuf_puts(out, "\\t"); break;
		case '\n': strbuf_puts(out, "\\n"); break;
		case '\r': strbuf_puts(out, "\\r"); break;
		default: strbuf_putc(out, *s);
		}
	}
}

void import_row_copy(const struct import_row *row, struct strbuf *out)
{
	int f;

	strbuf_printf(out, "%zu\t", row->line);
	copy_value(out, row->id);
	strbuf_putc(out, '\t');
	copy_value(out, row->version);
	for (f = 0; f < PF_CATALOGUE; f++) {
		strbuf_putc(out, '\t');
		copy_value(out, row->value[f]);
	}
	strbuf_putc(out, '\n');
}
