/*
 * import_model: what a CSV import of paints is, apart from the request and
 * the database (POST /admin/paints/import, issue 28): its limits, the
 * header's columns, one line checked into the values PostgreSQL receives,
 * the line as COPY text, and the list of errors a report carries. Pure
 * (no I/O); the unit tests and fuzz_import call it directly.
 *
 * Columns are the export's: the writable fields (paint_model's names),
 * id, version, and created_at and updated_at, accepted and ignored so an
 * exported file imports unchanged. A cell of a writable column is judged
 * by paint_field_from_text after csv_unneutralise took off the ' the
 * export puts before a formula-like text; id and version are numbers,
 * empty for none.
 */
#ifndef PS_IMPORT_MODEL_H
#define PS_IMPORT_MODEL_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "base/csv.h"
#include "base/strbuf.h"
#include "resources/paint_model.h"

/* Limits: the body (nginx's client_max_body_size for the route says the same), data lines, listed errors. */
#define IMPORT_MAX_BODY (8u << 20)
#define IMPORT_MAX_BODY_TEXT "8 MiB"
#define IMPORT_MAX_ROWS 20000
#define IMPORT_MAX_ERRORS 1000
/* The codec's: a cell, cells in a line, a line's cells together. */
#define IMPORT_MAX_CELL 65536
#define IMPORT_MAX_CELLS 32
#define IMPORT_MAX_RECORD (256 * 1024)

/*
 * The columns beyond the fields an import writes (0..PF_CATALOGUE-1):
 * created_at, updated_at and low_stock_threshold are read and ignored.
 */
enum import_column {
	IC_ID = PF_CATALOGUE, IC_VERSION, IC_CREATED_AT, IC_UPDATED_AT, IC_LOW_THRESHOLD, IC_COUNT
};

/* The header: which column each cell position holds, and where each column is. */
struct import_header {
	int column[IMPORT_MAX_CELLS];	/* enum paint_field or import_column */
	size_t ncells;
	int at[IC_COUNT];		/* a column's position, -1 when absent */
};

/*
 * Read the header record. 0 with h filled, or -1 with *errors a new JSON
 * object naming each unknown column ("is not a column of the import") and
 * each one given twice ("is given more than once"); caller puts it.
 */
int import_header_read(struct import_header *h, const struct csv_record *rec,
		       struct json_object **errors);

/* The first writable field a new paint needs that h has no column for, or -1. */
int import_header_missing_required(const struct import_header *h);

/* One error of a report: the line it starts on, the field (or ""), why. */
struct import_error {
	size_t line;
	char field[24];
	char message[120];
};

/*
 * The errors of one import, all counted: the first IMPORT_MAX_ERRORS
 * kept of each of two lists, each added in order of lines (the lines'
 * own, then the database's), and the first IMPORT_MAX_ERRORS of both
 * together listed.
 */
struct import_errors {
	struct import_error *e;
	size_t n, cap;
	size_t limit;		/* keep while n is below */
	size_t split;		/* where the second list begins (0: none yet) */
	size_t total;
};

void import_errors_init(struct import_errors *es);
/* Note an error (kept while its list has fewer than IMPORT_MAX_ERRORS; always counted). */
void import_errors_add(struct import_errors *es, size_t line, const char *field,
		       const char *message);
/* The errors added from now on are the second list. */
void import_errors_merge_start(struct import_errors *es);
/* Merge the two lists by line (the first's before the second's) and keep the first IMPORT_MAX_ERRORS. */
void import_errors_sort(struct import_errors *es);
/* The kept errors as a new JSON array of {line, field, message}; caller puts it. */
struct json_object *import_errors_json(const struct import_errors *es);
void import_errors_free(struct import_errors *es);

/* A checked line: NULL for a column the file does not have (or an empty id or version). */
struct import_row {
	size_t line;
	char *id, *version;
	char *value[PF_COUNT];	/* as PostgreSQL receives them */
};

/*
 * Check a data record against the header h. 0 with row filled (free with
 * import_row_free), or -1 after adding every problem of the line to es
 * (row then holds nothing).
 */
int import_row_read(const struct import_header *h, const struct csv_record *rec,
		    struct import_row *row, struct import_errors *es);
void import_row_free(struct import_row *row);

/* The columns import_row_copy writes, in its order, for COPY ... (IMPORT_COPY_COLUMNS). */
#define IMPORT_COPY_COLUMNS \
	"line, id, version, name, brand, color_code, color_type, color_family, image_url, " \
	"description, color_preview, stock, price"

/* Append row as one line of COPY's text format (NULL as \N) to out. */
void import_row_copy(const struct import_row *row, struct strbuf *out);

#endif
