/*
 * csv: RFC 4180 written into a strbuf and read incrementally (csv.h).
 *
 * The reader is a state machine stepped one byte at a time, so a record
 * read in one chunk or in a thousand comes out the same: the only state
 * between chunks is the machine's, a UTF-8 sequence in progress and up to
 * three bytes held back while they may still be a byte order mark. Every
 * byte passes the NUL and UTF-8 checks first, then the grammar; a byte
 * kept in a cell is counted against the limits before it is stored, so
 * the buffers never grow past them.
 */
#include "base/csv.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* The reader's states: where in the grammar the next byte falls. */
enum {
	ST_CELL,	/* at a cell's start (or a line's, when no record is open) */
	ST_PLAIN,	/* in an unquoted cell */
	ST_QUOTED,	/* in a quoted cell */
	ST_QUOTE,	/* after a '"' in a quoted cell: its end, or "" */
	ST_CR,		/* after a CR outside quotes: only LF may follow */
};

static const char bom[] = CSV_BOM;
#define BOM_LEN (sizeof(bom) - 1)

static int formula_start(char c);
static int needs_quotes(const char *s, size_t len);
static int fail(struct csv_reader *r, enum csv_error e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int utf8_step(struct csv_reader *r, unsigned char c);
static void reserve(struct csv_reader *r, size_t extra);
static int put_byte(struct csv_reader *r, unsigned char c);
static void end_cell(struct csv_reader *r);
static int next_cell(struct csv_reader *r);
static int end_line(struct csv_reader *r);
static int ends_cell(unsigned char c);
static int cell_end_byte(struct csv_reader *r, unsigned char c);
static int plain_byte(struct csv_reader *r, unsigned char c);
static int step(struct csv_reader *r, unsigned char c);
static int release_bom(struct csv_reader *r);

/* Writing. */

/* 1 when a cell starting with c could be read as a formula, or is ' (so it reads back). */
static int formula_start(char c)
{
	return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r' ||
	       c == '\'';
}

static int needs_quotes(const char *s, size_t len)
{
	size_t i;

	if (len > 0 && (s[0] == ' ' || s[len - 1] == ' '))
		return 1;
	/* At the start of the text, U+FEFF would be read as a byte order mark. */
	if (len >= BOM_LEN && memcmp(s, bom, BOM_LEN) == 0)
		return 1;
	for (i = 0; i < len; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
			return 1;
	return 0;
}

void csv_writer_init(struct csv_writer *w, struct strbuf *out)
{
	w->out = out;
	w->cells = 0;
	w->mark = out->len;
}

void csv_write_cell(struct csv_writer *w, const char *s, size_t len, enum csv_cell kind)
{
	int prefix = kind == CSV_TEXT && len > 0 && formula_start(s[0]);
	const char *q, *end = s + len;

	if (w->cells++ > 0)
		strbuf_putc(w->out, ',');
	if (!needs_quotes(s, len)) {
		if (prefix)
			strbuf_putc(w->out, '\'');
		strbuf_append(w->out, s, len);
		return;
	}
	strbuf_putc(w->out, '"');
	if (prefix)
		strbuf_putc(w->out, '\'');
	while ((q = memchr(s, '"', (size_t)(end - s))) != NULL) {
		strbuf_append(w->out, s, (size_t)(q - s) + 1);
		strbuf_putc(w->out, '"');
		s = q + 1;
	}
	strbuf_append(w->out, s, (size_t)(end - s));
	strbuf_putc(w->out, '"');
}

void csv_write_end(struct csv_writer *w)
{
	if (w->cells == 0)
		return;
	if (w->cells == 1 && w->out->len == w->mark)
		strbuf_puts(w->out, "\"\"");	/* not an empty line */
	strbuf_puts(w->out, "\r\n");
	w->cells = 0;
	w->mark = w->out->len;
}

void csv_write_record(struct csv_writer *w, const char *const *cells, const size_t *lens,
		      size_t n, enum csv_cell kind)
{
	size_t i;

	for (i = 0; i < n; i++)
		csv_write_cell(w, cells[i], lens ? lens[i] : strlen(cells[i]), kind);
	csv_write_end(w);
}

const char *csv_unneutralise(const char *cell, size_t len, size_t *out_len)
{
	if (len >= 2 && cell[0] == '\'' && formula_start(cell[1])) {
		*out_len = len - 1;
		return cell + 1;
	}
	*out_len = len;
	return cell;
}

/* Reading. */

void csv_reader_init(struct csv_reader *r, const struct csv_limits *lim,
		     csv_record_fn fn, void *arg)
{
	assert(lim->max_cell > 0 && lim->max_cells > 0 && lim->max_record > 0);
	memset(r, 0, sizeof(*r));
	r->lim = *lim;
	r->fn = fn;
	r->arg = arg;
	r->state = ST_CELL;
	r->line = 1;
	/* The most the buffer can need: every byte of text and a NUL per cell. */
	(void)size_add(lim->max_record, lim->max_cells);
	(void)size_mul(lim->max_cells, sizeof(size_t));
}

void csv_reader_free(struct csv_reader *r)
{
	free(r->buf);
	free(r->starts);
	free(r->lens);
	free(r->ptrs);
	r->buf = NULL;
	r->starts = r->lens = NULL;
	r->ptrs = NULL;
}

/*
 * Stop the reader with error e, found on the current line in the current
 * field (none when no record is open). Always -1.
 */
static int fail(struct csv_reader *r, enum csv_error e, const char *fmt, ...)
{
	va_list ap;

	r->error = e;
	r->err_line = r->line;
	r->err_field = r->in_record ? r->ncells + 1 : 0;
	va_start(ap, fmt);
	vsnprintf(r->err_msg, sizeof(r->err_msg), fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Check c as the next byte of UTF-8 text: -1 when it cannot be. The same
 * rules as utf8_seq_len, one byte at a time: u8_need continuation bytes
 * are still due, the next in [u8_lo, u8_hi] (narrowed after E0, ED, F0
 * and F4, which is what shuts out overlong forms, surrogates and code
 * points past U+10FFFF).
 */
static int utf8_step(struct csv_reader *r, unsigned char c)
{
	if (r->u8_need > 0) {
		if (c < r->u8_lo || c > r->u8_hi)
			return -1;
		r->u8_need--;
		r->u8_lo = 0x80;
		r->u8_hi = 0xbf;
		return 0;
	}
	if (c < 0x80)
		return 0;
	r->u8_lo = 0x80;
	r->u8_hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		r->u8_need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		r->u8_need = 2;
		if (c == 0xe0)
			r->u8_lo = 0xa0;	/* else overlong */
		else if (c == 0xed)
			r->u8_hi = 0x9f;	/* else a surrogate */
	} else if (c >= 0xf0 && c <= 0xf4) {
		r->u8_need = 3;
		if (c == 0xf0)
			r->u8_lo = 0x90;	/* else overlong */
		else if (c == 0xf4)
			r->u8_hi = 0x8f;	/* else past U+10FFFF */
	} else {
		return -1;	/* a continuation byte alone, C0, C1, F5..FF */
	}
	return 0;
}

/*
 * Room for extra more bytes in buf. The limits are checked before, so the
 * need never passes max_record + max_cells, and neither does the buffer.
 */
static void reserve(struct csv_reader *r, size_t extra)
{
	size_t need = size_add(r->len, extra);
	size_t most = r->lim.max_record + r->lim.max_cells;	/* checked at init */
	size_t cap;

	if (need <= r->cap)
		return;
	if (need > most)
		die("csv: %zu bytes needed, past the limits' %zu", need, most);
	cap = r->cap < 64 ? 64 : r->cap;
	while (cap < need)
		cap = cap > most / 2 ? most : cap * 2;
	if (cap > most)
		cap = most;
	r->buf = xrealloc(r->buf, cap);
	r->cap = cap;
}

/* Keep c in the current cell, within the limits. */
static int put_byte(struct csv_reader *r, unsigned char c)
{
	if (r->len - r->cell_start >= r->lim.max_cell)
		return fail(r, CSV_ERR_CELL_SIZE, "cell longer than %zu bytes", r->lim.max_cell);
	/* The buffer holds the record's text and a NUL per cell ended. */
	if (r->len - r->ncells >= r->lim.max_record)
		return fail(r, CSV_ERR_RECORD_SIZE, "record longer than %zu bytes",
			    r->lim.max_record);
	reserve(r, 1);
	r->buf[r->len++] = (char)c;
	return 0;
}

/* End the current cell (there is room: next_cell checked the count). */
static void end_cell(struct csv_reader *r)
{
	size_t n = r->ncells;

	if (n == r->cells_cap) {
		size_t cap = n < 8 ? 8 : n > r->lim.max_cells / 2 ? r->lim.max_cells : n * 2;

		if (cap > r->lim.max_cells)
			cap = r->lim.max_cells;
		if (cap <= n)
			die("csv: cell %zu past the limit of %zu", n + 1, r->lim.max_cells);
		r->starts = xrealloc(r->starts, size_mul(cap, sizeof(*r->starts)));
		r->lens = xrealloc(r->lens, size_mul(cap, sizeof(*r->lens)));
		r->ptrs = xrealloc(r->ptrs, size_mul(cap, sizeof(*r->ptrs)));
		r->cells_cap = cap;
	}
	reserve(r, 1);
	r->starts[n] = r->cell_start;
	r->lens[n] = r->len - r->cell_start;
	r->buf[r->len++] = '\0';
	r->ncells = n + 1;
	r->cell_start = r->len;
}

/* A ',': end the cell, and another begins. */
static int next_cell(struct csv_reader *r)
{
	end_cell(r);
	if (r->ncells >= r->lim.max_cells)
		return fail(r, CSV_ERR_CELL_COUNT, "more than %zu fields in a record",
			    r->lim.max_cells);
	r->state = ST_CELL;
	return 0;
}

/* The end of a line or of the input: the record, if one is open, to fn. */
static int end_line(struct csv_reader *r)
{
	struct csv_record rec;
	size_t i;

	r->state = ST_CELL;
	if (!r->in_record)
		return 0;	/* an empty line: no record */
	end_cell(r);
	for (i = 0; i < r->ncells; i++)
		r->ptrs[i] = r->buf + r->starts[i];
	rec.cells = r->ptrs;
	rec.lens = r->lens;
	rec.ncells = r->ncells;
	rec.line = r->rec_line;
	rec.number = ++r->records;
	r->in_record = 0;
	r->len = r->cell_start = r->ncells = 0;
	if (r->fn(&rec, r->arg) != 0) {
		fail(r, CSV_ERR_STOPPED, "record %zu refused", rec.number);
		r->err_line = rec.line;
		return -1;
	}
	return 0;
}

/* 1 when c ends a cell outside quotes (',', or a line ending's LF or CR). */
static int ends_cell(unsigned char c)
{
	return c == ',' || c == '\n' || c == '\r';
}

/* Read c, which ends a cell outside quotes. */
static int cell_end_byte(struct csv_reader *r, unsigned char c)
{
	if (c == ',')
		return next_cell(r);
	if (c == '\r') {
		r->state = ST_CR;
		return 0;
	}
	if (end_line(r) < 0)
		return -1;
	r->line++;
	return 0;
}

/* Read c in an unquoted cell (or at its start, when c is not '"'). */
static int plain_byte(struct csv_reader *r, unsigned char c)
{
	if (ends_cell(c))
		return cell_end_byte(r, c);
	if (c == '"')
		return fail(r, CSV_ERR_QUOTE, "'\"' inside an unquoted field");
	r->state = ST_PLAIN;
	return put_byte(r, c);
}

/* Read the input's next byte c. */
static int step(struct csv_reader *r, unsigned char c)
{
	if (r->state == ST_CELL && !r->in_record && c != '\n' && c != '\r') {
		r->in_record = 1;	/* (before the checks, for their field number) */
		r->rec_line = r->line;
	}
	if (c == '\0')
		return fail(r, CSV_ERR_NUL, "NUL byte");
	if (utf8_step(r, c) < 0)
		return fail(r, CSV_ERR_UTF8, "invalid UTF-8");
	switch (r->state) {
	case ST_CELL:
		if (!r->in_record)
			return cell_end_byte(r, c);	/* an empty line's CR or LF */
		if (c != '"')
			return plain_byte(r, c);
		r->state = ST_QUOTED;
		r->quote_line = r->line;
		return 0;
	case ST_PLAIN:
		return plain_byte(r, c);
	case ST_QUOTED:
		if (c == '"') {
			r->state = ST_QUOTE;
			return 0;
		}
		if (put_byte(r, c) < 0)
			return -1;
		if (c == '\n')
			r->line++;
		return 0;
	case ST_QUOTE:
		if (c == '"') {
			r->state = ST_QUOTED;
			return put_byte(r, c);	/* "" inside quotes */
		}
		if (ends_cell(c))
			return cell_end_byte(r, c);
		return fail(r, CSV_ERR_AFTER_QUOTE,
			    "expected ',' or a line end after a closing '\"'");
	case ST_CR:
		if (c != '\n')
			return fail(r, CSV_ERR_BARE_CR, "CR not followed by LF");
		return cell_end_byte(r, c);
	}
	die("csv: state %d", r->state);
}

/* Bytes held as a possible byte order mark are input after all: read them. */
static int release_bom(struct csv_reader *r)
{
	size_t i, n = r->bom_len;

	r->bom_done = 1;
	r->bom_len = 0;
	for (i = 0; i < n; i++)
		if (step(r, (unsigned char)bom[i]) < 0)
			return -1;
	return 0;
}

int csv_reader_feed(struct csv_reader *r, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i = 0;

	if (r->error != CSV_OK)
		return -1;
	while (!r->bom_done && i < len) {
		if (p[i] == (unsigned char)bom[r->bom_len]) {
			i++;
			if (++r->bom_len == BOM_LEN) {
				r->bom_len = 0;	/* a byte order mark: dropped */
				r->bom_done = 1;
			}
		} else if (release_bom(r) < 0) {
			return -1;
		}
	}
	for (; i < len; i++)
		if (step(r, p[i]) < 0)
			return -1;
	return 0;
}

int csv_reader_finish(struct csv_reader *r)
{
	if (r->error != CSV_OK)
		return -1;
	if (!r->bom_done && release_bom(r) < 0)
		return -1;
	if (r->u8_need > 0)
		return fail(r, CSV_ERR_UTF8, "invalid UTF-8 (cut short at the end)");
	switch (r->state) {
	case ST_QUOTED:
		return fail(r, CSV_ERR_UNTERMINATED, "quoted field opened on line %zu not closed",
			    r->quote_line);
	case ST_CR:
		return fail(r, CSV_ERR_BARE_CR, "CR not followed by LF");
	default:
		return end_line(r);
	}
}
