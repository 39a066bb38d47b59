/*
 * csv: RFC 4180 text for the paints' export and import (issue #28),
 * written into a strbuf and read back incrementally from a body that
 * arrives in pieces. Pure: no I/O, no database, no JSON.
 *
 * Writing. Cells are separated by ',' and records end with CRLF. A cell is
 * quoted when it holds ',', '"', CR or LF, begins or ends with a space or
 * begins with U+FEFF (at the start of the text it would read as a byte
 * order mark); a '"' inside is doubled. A record of one empty cell is written as "" so
 * that it is not an empty line (which the reader skips). A text cell
 * whose first byte is one of = + - @ TAB CR (which a spreadsheet may run
 * as a formula) or ' gets one ' put before it; csv_unneutralise takes it
 * off again, so any text exported reads back the same. Numeric cells
 * (CSV_NUMBER) are written as given: only for text the program formatted
 * as a number itself.
 *
 * Reading. The caller feeds bytes in chunks of any size; each complete
 * record goes to the caller's function as it completes, the same whatever
 * the chunking. Fields are separated by ','; records end with CRLF or LF;
 * a quoted field may hold ',', CR, LF and "" (one '"'). A UTF-8 byte order
 * mark at the very start is skipped; a final record without a line ending
 * counts; an empty line (nothing between two line endings, or after the
 * last) is no record and is skipped. Lines are counted by LF, from 1.
 *
 * The input is hostile. The text must be UTF-8 as util.h's utf8_seq_len
 * has it (no overlong forms, surrogates or code points past U+10FFFF,
 * nothing cut short) without NUL bytes; a '"' in an unquoted field,
 * anything but ',' or a line ending after a closing quote, a CR outside
 * quotes not followed by LF, and a quoted field still open at the end are
 * errors; so is exceeding one of the caller's limits. Memory is bounded by
 * the limits: at most max_record + max_cells bytes of text and three
 * arrays of max_cells entries, grown as needed. The first error stops the
 * reader for good (the import is refused whole); it records what, on
 * which line and in which field.
 */
#ifndef PS_CSV_H
#define PS_CSV_H

#include <stddef.h>

#include "base/strbuf.h"

/* Writing. */

/* UTF-8's byte order mark: put before the first record, it tells spreadsheets the text is UTF-8. */
#define CSV_BOM "\xef\xbb\xbf"

enum csv_cell {
	CSV_TEXT,	/* neutralised when it could start a formula */
	CSV_NUMBER,	/* written as given */
};

/* A writer appending records to out (not owned: out must outlive it). */
struct csv_writer {
	struct strbuf *out;
	size_t cells;		/* cells in the record being written */
	size_t mark;		/* out->len where that record began */
};

void csv_writer_init(struct csv_writer *w, struct strbuf *out);

/*
 * Append the cell s[0..len) to the current record, with the ',' before it
 * when it is not the record's first, quoted and neutralised as above. s
 * should be UTF-8 without NUL bytes, or the reader refuses the result.
 */
void csv_write_cell(struct csv_writer *w, const char *s, size_t len, enum csv_cell kind);

/* End the current record with CRLF (a record of no cells writes nothing). */
void csv_write_end(struct csv_writer *w);

/*
 * A whole record: n cells of one kind, then CRLF. lens NULL: the cells are
 * NUL-terminated strings.
 */
void csv_write_record(struct csv_writer *w, const char *const *cells, const size_t *lens,
		      size_t n, enum csv_cell kind);

/*
 * A text cell as read, without the ' a writer put before it: when
 * cell[0..len) is ' followed by one of = + - @ TAB CR ', the text after
 * that ' (len - 1 bytes); otherwise cell itself. Nothing is copied.
 */
const char *csv_unneutralise(const char *cell, size_t len, size_t *out_len);

/* Reading. */

/* Each at least 1. Sizes are of the cells' text as read (quotes undone). */
struct csv_limits {
	size_t max_cell;	/* bytes in one cell */
	size_t max_cells;	/* cells in one record */
	size_t max_record;	/* bytes in one record's cells together */
};

/*
 * One record, valid only while the record function runs. Every cell is
 * NUL-terminated, valid UTF-8 and holds no NUL (so lens[i] is also its
 * strlen).
 */
struct csv_record {
	const char *const *cells;
	const size_t *lens;
	size_t ncells;		/* at least 1 */
	size_t line;		/* the physical line the record starts on */
	size_t number;		/* 1 for the first record, and so on */
};

/*
 * Called for each record in order: 0 to go on, or -1 to stop the reader
 * (CSV_ERR_STOPPED; csv_reader_feed and csv_reader_finish then return -1).
 */
typedef int (*csv_record_fn)(const struct csv_record *rec, void *arg);

enum csv_error {
	CSV_OK = 0,
	CSV_ERR_UNTERMINATED,	/* a quoted field open at the end of input */
	CSV_ERR_QUOTE,		/* a '"' inside an unquoted field */
	CSV_ERR_AFTER_QUOTE,	/* not ',' or a line ending after a closing quote */
	CSV_ERR_BARE_CR,	/* CR outside quotes not followed by LF */
	CSV_ERR_NUL,		/* a NUL byte */
	CSV_ERR_UTF8,		/* not UTF-8 */
	CSV_ERR_CELL_SIZE,	/* a cell over max_cell */
	CSV_ERR_CELL_COUNT,	/* a record over max_cells */
	CSV_ERR_RECORD_SIZE,	/* a record over max_record */
	CSV_ERR_STOPPED,	/* the record function returned -1 */
};

/*
 * The reader. The caller reads error, err_line, err_field and err_msg
 * once csv_reader_feed or csv_reader_finish has returned -1; the rest is
 * the reader's own.
 */
struct csv_reader {
	enum csv_error error;	/* CSV_OK until the first error */
	size_t err_line;	/* 1-based physical line where it was found */
	size_t err_field;	/* 1-based field it was found in, 0 if in none */
	char err_msg[96];	/* short, human, without the line: "invalid UTF-8" */

	struct csv_limits lim;
	csv_record_fn fn;
	void *arg;
	int state;		/* where in the grammar the next byte falls */
	int in_record;		/* a record has begun and not ended */
	int bom_done;		/* past where a byte order mark may be */
	size_t bom_len;		/* bytes of a byte order mark held back */
	unsigned char u8_need, u8_lo, u8_hi;	/* the UTF-8 sequence in progress */
	size_t line;		/* the line of the next byte */
	size_t rec_line;	/* the line the current record began on */
	size_t quote_line;	/* the line the current quoted field opened on */
	size_t records;		/* records passed to fn */
	char *buf;		/* the record's cells, each NUL-terminated */
	size_t len, cap;
	size_t cell_start;	/* buf offset of the cell being read */
	size_t ncells, cells_cap;	/* cells ended in this record; room for */
	size_t *starts, *lens;	/* their offsets in buf and lengths */
	const char **ptrs;	/* buf + starts[i], made for fn */
};

/*
 * Start a reader passing records to fn(rec, arg). Limits of 0 are a bug.
 * Pair with csv_reader_free.
 */
void csv_reader_init(struct csv_reader *r, const struct csv_limits *lim,
		     csv_record_fn fn, void *arg);

/*
 * Read data[0..len), the next bytes of the input, passing each record it
 * completes to fn. 0, or -1 on an error (now or before: the reader reads
 * no more), described in r's error fields.
 */
int csv_reader_feed(struct csv_reader *r, const void *data, size_t len);

/*
 * The end of the input: the last record when it had no line ending goes
 * to fn; an open quoted field or a cut UTF-8 sequence is an error. 0, or
 * -1 as for csv_reader_feed. Feed nothing after it.
 */
int csv_reader_finish(struct csv_reader *r);

void csv_reader_free(struct csv_reader *r);

#endif
