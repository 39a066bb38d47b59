/*
 * CSV import bodies (issue #28) as the reader takes them. The first byte
 * picks the limits (its low two bits) and how the body is cut into chunks;
 * the rest is the body. Beyond not crashing, what the reader promises:
 * - read whole and read in chunks, the body gives the same records and
 *   the same error (what, line, field, message);
 * - every cell is UTF-8 without NUL, as long as its length says;
 * - the records read, written back and read again are the same cells:
 *   written as numbers, exactly; written as text, once unneutralised;
 *   within the limits plus the one byte a ' adds to a cell.
 */
#include <stdlib.h>
#include <string.h>

#include "base/csv.h"
#include "base/strbuf.h"
#include "base/util.h"
#include "fuzz.h"

static const struct csv_limits limits[4] = {
	{ 4, 3, 10 },
	{ 16, 8, 64 },
	{ 64, 32, 512 },
	{ 1 << 16, 1 << 10, 1 << 20 },
};

struct run {
	struct strbuf lines;	/* each record: its line, then its cells */
	struct strbuf cells;	/* each record's cells only */
	struct csv_writer *as_number, *as_text;	/* or NULL */
	int unneutralise;	/* read the cells as text written by us */
};

static void put_cell(struct strbuf *sb, const char *s, size_t len)
{
	strbuf_printf(sb, "%zu:", len);
	strbuf_append(sb, s, len);
	strbuf_putc(sb, ';');
}

static int on_record(const struct csv_record *rec, void *arg)
{
	struct run *run = arg;
	const char *s;
	size_t i, len;

	if (rec->ncells == 0)
		abort();
	strbuf_printf(&run->lines, "%zu#%zu ", rec->number, rec->line);
	for (i = 0; i < rec->ncells; i++) {
		s = rec->cells[i];
		len = rec->lens[i];
		if (strlen(s) != len || !utf8_valid(s, len))
			abort();
		put_cell(&run->lines, s, len);
		if (run->unneutralise)
			s = csv_unneutralise(s, len, &len);
		put_cell(&run->cells, s, len);
		if (run->as_number)
			csv_write_cell(run->as_number, rec->cells[i], rec->lens[i], CSV_NUMBER);
		if (run->as_text)
			csv_write_cell(run->as_text, rec->cells[i], rec->lens[i], CSV_TEXT);
	}
	strbuf_putc(&run->lines, '\n');
	strbuf_putc(&run->cells, '\n');
	if (run->as_number)
		csv_write_end(run->as_number);
	if (run->as_text)
		csv_write_end(run->as_text);
	return 0;
}

/*
 * Read data[0..size) into run in chunks of up to max_chunk bytes (0: at
 * once), cut by a xorshift from seed; the error, if any, at the end of
 * run->lines. 0, or -1 on an error.
 */
static int read_all(const uint8_t *data, size_t size, const struct csv_limits *lim,
		    size_t max_chunk, uint32_t seed, struct run *run)
{
	struct csv_reader r;
	size_t pos = 0, n;
	int rc = 0;

	csv_reader_init(&r, lim, on_record, run);
	while (pos < size && rc == 0) {
		n = size - pos;
		if (max_chunk > 0) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			if (n > seed % (max_chunk + 1))
				n = seed % (max_chunk + 1);
		}
		rc = csv_reader_feed(&r, data + pos, n);
		pos += n;
	}
	if (rc == 0)
		rc = csv_reader_finish(&r);
	if (rc != 0) {
		if (r.error == CSV_OK || r.err_line == 0)
			abort();
		strbuf_printf(&run->lines, "error %d at %zu.%zu: %s", (int)r.error, r.err_line,
			      r.err_field, r.err_msg);
	}
	if (r.cap > lim->max_record + lim->max_cells || r.cells_cap > lim->max_cells)
		abort();
	csv_reader_free(&r);
	return rc;
}

static void run_init(struct run *run)
{
	memset(run, 0, sizeof(*run));
	strbuf_init(&run->lines);
	strbuf_init(&run->cells);
}

static void run_free(struct run *run)
{
	strbuf_free(&run->lines);
	strbuf_free(&run->cells);
}

static void same(const struct strbuf *a, const struct strbuf *b)
{
	if (a->len != b->len || memcmp(a->buf, b->buf, a->len) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct csv_limits *lim;
	struct csv_limits wider;
	struct run whole, chunked, again;
	struct strbuf num_out, text_out;
	struct csv_writer as_number, as_text;

	if (size == 0)
		return 0;
	lim = &limits[data[0] & 3];
	wider = (struct csv_limits){ lim->max_cell + 1, lim->max_cells,
				     lim->max_record + lim->max_cells };
	strbuf_init(&num_out);
	strbuf_init(&text_out);
	csv_writer_init(&as_number, &num_out);
	csv_writer_init(&as_text, &text_out);

	run_init(&whole);
	whole.as_number = &as_number;
	whole.as_text = &as_text;
	read_all(data + 1, size - 1, lim, 0, 0, &whole);

	run_init(&chunked);
	read_all(data + 1, size - 1, lim, 1 + (data[0] >> 4), (data[0] + 1u) * 2654435761u, &chunked);
	same(&whole.lines, &chunked.lines);
	run_free(&chunked);

	run_init(&again);
	if (read_all((const uint8_t *)num_out.buf, num_out.len, &wider, 0, 0, &again) != 0)
		abort();
	same(&whole.cells, &again.cells);
	run_free(&again);

	run_init(&again);
	again.unneutralise = 1;
	if (read_all((const uint8_t *)text_out.buf, text_out.len, &wider, 0, 0, &again) != 0)
		abort();
	same(&whole.cells, &again.cells);
	run_free(&again);

	run_free(&whole);
	strbuf_free(&num_out);
	strbuf_free(&text_out);
	return 0;
}
