/*
 * CSV import files (issue #28) as the import reads them: the reader with
 * the import's limits, the first record as the header, every other
 * through import_row_read and import_row_copy, then the errors' merge and
 * their JSON. Beyond not crashing, what the model promises:
 * - a line is either checked (0, no error noted) or refused (-1, at least
 *   one error noted at its line, nothing left in the row);
 * - its COPY text is one line of exactly 13 columns;
 * - the listed errors are in order of lines, at most IMPORT_MAX_ERRORS.
 */
#include <stdlib.h>
#include <string.h>

#include "base/csv.h"
#include "resources/import_model.h"
#include "fuzz.h"

struct run {
	struct import_header h;
	int have_header;
	struct import_errors es;
	struct strbuf copy;
};

static void check_copy_line(const struct strbuf *sb)
{
	size_t i, tabs = 0;

	if (sb->len == 0 || sb->buf[sb->len - 1] != '\n')
		abort();
	for (i = 0; i + 1 < sb->len; i++) {
		if (sb->buf[i] == '\n' || sb->buf[i] == '\r' || sb->buf[i] == '\0')
			abort();
		tabs += sb->buf[i] == '\t';
	}
	if (tabs != 12)
		abort();
}

static int on_record(const struct csv_record *rec, void *arg)
{
	struct run *run = arg;
	struct json_object *errors = NULL;
	struct import_row row;
	size_t before = run->es.total;
	int f;

	if (!run->have_header) {
		if (import_header_read(&run->h, rec, &errors) != 0) {
			if (errors == NULL || json_object_object_length(errors) == 0)
				abort();
			json_object_put(errors);
			return -1;
		}
		run->have_header = 1;
		return 0;
	}
	if (import_row_read(&run->h, rec, &row, &run->es) != 0) {
		if (run->es.total == before || row.id || row.version)
			abort();
		for (f = 0; f < PF_COUNT; f++)
			if (row.value[f])
				abort();
		return 0;
	}
	if (run->es.total != before || row.line != rec->line)
		abort();
	strbuf_reset(&run->copy);
	import_row_copy(&row, &run->copy);
	check_copy_line(&run->copy);
	import_row_free(&row);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct csv_limits lim = { IMPORT_MAX_CELL, IMPORT_MAX_CELLS, IMPORT_MAX_RECORD };
	struct csv_reader rd;
	struct run run;
	size_t i;

	memset(&run, 0, sizeof(run));
	import_errors_init(&run.es);
	strbuf_init(&run.copy);
	csv_reader_init(&rd, &lim, on_record, &run);
	if (csv_reader_feed(&rd, data, size) == 0)
		csv_reader_finish(&rd);
	csv_reader_free(&rd);
	/* As the database's errors would come: a second list in order of lines. */
	import_errors_merge_start(&run.es);
	import_errors_add(&run.es, 2, "id", "no paint has this id");
	import_errors_add(&run.es, 7, "version", "moved");
	import_errors_sort(&run.es);
	if (run.es.n > IMPORT_MAX_ERRORS)
		abort();
	for (i = 1; i < run.es.n; i++)
		if (run.es.e[i - 1].line > run.es.e[i].line)
			abort();
	json_object_put(import_errors_json(&run.es));
	import_errors_free(&run.es);
	strbuf_free(&run.copy);
	return 0;
}
