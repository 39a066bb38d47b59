/*
 * Unit tests of csv: quoting and formula neutralisation on the way out,
 * and their round trip; the reader's records, line numbers, errors and
 * limits, each input read whole, a byte at a time and in random chunks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/csv.h"
#include "base/strbuf.h"
#include "base/util.h"

static const struct csv_limits big = { 1 << 16, 1 << 10, 1 << 20 };

static uint32_t rng_state;

/* xorshift32: the same sequence on every machine, for repeatable tests. */
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static const char *error_name(enum csv_error e)
{
	static const char *const names[] = {
		"ok", "unterminated", "quote", "after_quote", "bare_cr", "nul", "utf8",
		"cell_size", "cell_count", "record_size", "stopped",
	};

	return names[e];
}

/* What a reader passed on, as text: "line:[cell][cell]\n" per record. */
struct collected {
	struct strbuf sb;
	size_t stop_at;		/* refuse this record (0: none) */
};

static int collect(const struct csv_record *rec, void *arg)
{
	struct collected *c = arg;
	size_t i;

	assert_true(rec->ncells >= 1);
	strbuf_printf(&c->sb, "%zu:", rec->line);
	for (i = 0; i < rec->ncells; i++) {
		assert_int_equal(strlen(rec->cells[i]), rec->lens[i]);
		strbuf_putc(&c->sb, '[');
		strbuf_append(&c->sb, rec->cells[i], rec->lens[i]);
		strbuf_putc(&c->sb, ']');
	}
	strbuf_putc(&c->sb, '\n');
	return rec->number == c->stop_at ? -1 : 0;
}

enum chunking { WHOLE, BYTES, RANDOM };

/*
 * in[0..len) read in chunks as told, what came out as text (caller frees):
 * the records, then "error <name> at <line>.<field>" if one stopped it.
 * A reader stopped stays stopped.
 */
static char *parse_as(const char *in, size_t len, const struct csv_limits *lim,
		      size_t stop_at, enum chunking how, uint32_t seed)
{
	struct csv_reader r;
	struct collected c = { .stop_at = stop_at };
	size_t pos = 0, n, before;
	int rc = 0;

	strbuf_init(&c.sb);
	rng_state = seed;
	csv_reader_init(&r, lim, collect, &c);
	while (pos < len && rc == 0) {
		n = how == WHOLE ? len : how == BYTES ? 1 : rng() % 17;	/* 0 too */
		if (n > len - pos)
			n = len - pos;
		rc = csv_reader_feed(&r, in + pos, n);
		pos += n;
	}
	if (rc == 0)
		rc = csv_reader_finish(&r);
	if (rc != 0) {
		assert_int_not_equal(r.error, CSV_OK);
		assert_true(r.err_msg[0] != '\0');
		before = c.sb.len;
		assert_int_equal(csv_reader_feed(&r, "x\ny\n", 4), -1);
		assert_int_equal(csv_reader_finish(&r), -1);
		assert_int_equal(c.sb.len, before);
		strbuf_printf(&c.sb, "error %s at %zu.%zu", error_name(r.error), r.err_line,
			      r.err_field);
	} else {
		assert_int_equal(r.error, CSV_OK);
	}
	assert_true(r.cap <= lim->max_record + lim->max_cells);
	assert_true(r.cells_cap <= lim->max_cells);
	csv_reader_free(&r);
	return strbuf_detach(&c.sb, NULL);
}

/* in read whole, then a byte at a time and in random chunks: the same every time. */
static char *parse_lim(const char *in, size_t len, const struct csv_limits *lim, size_t stop_at)
{
	char *whole = parse_as(in, len, lim, stop_at, WHOLE, 0), *other;
	uint32_t seed;

	other = parse_as(in, len, lim, stop_at, BYTES, 0);
	assert_string_equal(other, whole);
	free(other);
	for (seed = 1; seed <= 8; seed++) {
		other = parse_as(in, len, lim, stop_at, RANDOM, seed * 2654435761u);
		assert_string_equal(other, whole);
		free(other);
	}
	return whole;
}

#define EXPECT_LIM(lim, in, out) do {					\
		char *got_ = parse_lim(in, sizeof(in) - 1, lim, 0);	\
		assert_string_equal(got_, out);				\
		free(got_);						\
	} while (0)
#define EXPECT(in, out) EXPECT_LIM(&big, in, out)

/* The message of the error reading in whole. */
static void expect_message(const char *in, const struct csv_limits *lim, const char *msg)
{
	struct csv_reader r;
	struct collected c = { .stop_at = 0 };

	strbuf_init(&c.sb);
	csv_reader_init(&r, lim, collect, &c);
	if (csv_reader_feed(&r, in, strlen(in)) == 0)
		assert_int_equal(csv_reader_finish(&r), -1);
	assert_string_equal(r.err_msg, msg);
	csv_reader_free(&r);
	strbuf_free(&c.sb);
}

/* Writing. */

static char *write_record(const char *const *cells, size_t n, enum csv_cell kind)
{
	struct strbuf sb;
	struct csv_writer w;

	strbuf_init(&sb);
	csv_writer_init(&w, &sb);
	csv_write_record(&w, cells, NULL, n, kind);
	return strbuf_detach(&sb, NULL);
}

#define WRITES(kind, out, ...) do {						\
		const char *const cells_[] = { __VA_ARGS__ };			\
		char *got_ = write_record(cells_, sizeof(cells_) / sizeof(cells_[0]), kind); \
		assert_string_equal(got_, out);					\
		free(got_);							\
	} while (0)

static void test_write_quoting(void **state)
{
	(void)state;
	WRITES(CSV_TEXT, "a,\"b,c\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\rx\",\" lead\","
	       "\"trail \",,x\r\n",
	       "a", "b,c", "say \"hi\"", "two\nlines", "cr\rx", " lead", "trail ", "", "x");
	WRITES(CSV_TEXT, "\"\"\"\"\r\n", "\"");
	WRITES(CSV_TEXT, "plain text \xc3\xa9\r\n", "plain text \xc3\xa9");
	/* U+FEFF first is quoted: at the text's start it would read as a BOM */
	WRITES(CSV_TEXT, "\"\xef\xbb\xbf" "id\",a\xef\xbb\xbf\r\n", "\xef\xbb\xbf" "id", "a\xef\xbb\xbf");
	/* one empty cell is not an empty line; two are a comma */
	WRITES(CSV_TEXT, "\"\"\r\n", "");
	WRITES(CSV_NUMBER, "\"\"\r\n", "");
	WRITES(CSV_TEXT, ",\r\n", "", "");
	/* numbers as given, quoted only when they must be */
	WRITES(CSV_NUMBER, "-5,=1,\"1,5\",+3,12.50\r\n", "-5", "=1", "1,5", "+3", "12.50");
}

static void test_write_cells_and_records(void **state)
{
	struct strbuf sb;
	struct csv_writer w;

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb, "before:");
	csv_writer_init(&w, &sb);
	csv_write_end(&w);			/* no cells: nothing */
	csv_write_cell(&w, "", 0, CSV_TEXT);
	csv_write_end(&w);
	csv_write_cell(&w, "id", 2, CSV_TEXT);
	csv_write_cell(&w, "-1", 2, CSV_NUMBER);
	csv_write_cell(&w, "-1", 2, CSV_TEXT);
	csv_write_cell(&w, "x\0y", 1, CSV_TEXT);	/* the length is the cell */
	csv_write_end(&w);
	csv_write_cell(&w, "", 0, CSV_TEXT);
	csv_write_end(&w);
	assert_string_equal(sb.buf, "before:\"\"\r\nid,-1,'-1,x\r\n\"\"\r\n");
	strbuf_free(&sb);
}

static void test_neutralise(void **state)
{
	(void)state;
	WRITES(CSV_TEXT, "'=1+2,'+1,'-1,'@SUM(A1),'\tx,\"'\rx\",''x,'',a=b,\" =x\"\r\n",
	       "=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'x", "'", "a=b", " =x");
	WRITES(CSV_TEXT, "\"'=a,b\",\"'=\"\"\",\"'=\nx\"\r\n", "=a,b", "=\"", "=\nx");
	WRITES(CSV_TEXT, "'=\r\n", "=");
	WRITES(CSV_NUMBER, "=1+2,+1,-1,@x,\tx,\"\rx\",'x\r\n",
	       "=1+2", "+1", "-1", "@x", "\tx", "\rx", "'x");
}

#define UNNEUTRALISES(in, out) do {					\
		size_t n_;						\
		const char *t_ = csv_unneutralise(in, sizeof(in) - 1, &n_); \
		assert_int_equal(n_, sizeof(out) - 1);			\
		assert_memory_equal(t_, out, n_);			\
	} while (0)

static void test_unneutralise(void **state)
{
	(void)state;
	UNNEUTRALISES("'=1+2", "=1+2");
	UNNEUTRALISES("'+", "+");
	UNNEUTRALISES("'-1", "-1");
	UNNEUTRALISES("'@", "@");
	UNNEUTRALISES("'\tx", "\tx");
	UNNEUTRALISES("'\rx", "\rx");
	UNNEUTRALISES("''", "'");
	UNNEUTRALISES("'''", "''");
	UNNEUTRALISES("''x", "'x");
	/* anything else is the text itself */
	UNNEUTRALISES("'", "'");
	UNNEUTRALISES("'a", "'a");
	UNNEUTRALISES("' =", "' =");
	UNNEUTRALISES("=1", "=1");
	UNNEUTRALISES("", "");
	UNNEUTRALISES("a'=", "a'=");
}

/* Round trips: cells written, read back and (text) unneutralised are the cells. */

struct expected {
	const char *const *cells;
	size_t ncells;
	enum csv_cell kind;
	size_t seen;
};

static int check_record(const struct csv_record *rec, void *arg)
{
	struct expected *e = arg;
	size_t i, n;
	const char *t;

	assert_int_equal(rec->ncells, e->ncells);
	for (i = 0; i < rec->ncells; i++) {
		if (e->kind == CSV_TEXT) {
			t = csv_unneutralise(rec->cells[i], rec->lens[i], &n);
		} else {
			t = rec->cells[i];
			n = rec->lens[i];
		}
		assert_int_equal(n, strlen(e->cells[i]));
		assert_memory_equal(t, e->cells[i], n);
	}
	e->seen++;
	return 0;
}

static void round_trip(const char *const *cells, size_t n, enum csv_cell kind)
{
	struct expected e = { cells, n, kind, 0 };
	struct csv_reader r;
	char *text = write_record(cells, n, kind);

	csv_reader_init(&r, &big, check_record, &e);
	assert_int_equal(csv_reader_feed(&r, text, strlen(text)), 0);
	assert_int_equal(csv_reader_finish(&r), 0);
	assert_int_equal(e.seen, 1);
	csv_reader_free(&r);
	free(text);
}

static void test_round_trip(void **state)
{
	static const char *const heads[] = {
		"", "=", "+", "-", "@", "\t", "\r", "'", "''", "'''", "'=", "'a", " ", "\"",
		",", "\n", "\r\n", "a", "\xc3\xa9", "=1+2", "-5", "@SUM(A1)", "'\t", "'\r",
		"\xef\xbb\xbf", "\xef\xbb\xbf\xef\xbb\xbf",	/* U+FEFF, at the text's start too */
	};
	static const char *const tails[] = {
		"", "a", "'", "=", "+", "\"", "\"\"", ",", "\r\n", "\n", " ", "x y", "\r",
	};
	static const char alphabet[] = "'=+-@\t\r\n\",; a\xc3\xa9";
	char s[64], cells[6][32];
	const char *row[6];
	size_t h, t, i, j, k, n;

	(void)state;
	for (h = 0; h < sizeof(heads) / sizeof(heads[0]); h++) {
		for (t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			const char *three[3] = { s, "=mid", s };

			snprintf(s, sizeof(s), "%s%s", heads[h], tails[t]);
			round_trip(three, 1, CSV_TEXT);		/* alone */
			round_trip(three, 3, CSV_TEXT);		/* first, last */
			round_trip(three + 1, 2, CSV_TEXT);
			round_trip(three, 1, CSV_NUMBER);
			round_trip(three, 3, CSV_NUMBER);
		}
	}
	/* random cells of the troublesome bytes (and é, whole) */
	rng_state = 12345;
	for (i = 0; i < 3000; i++) {
		n = 1 + rng() % 6;
		for (j = 0; j < n; j++) {
			size_t len = rng() % 12, pos = 0;

			for (k = 0; k < len; k++) {
				char c = alphabet[rng() % (sizeof(alphabet) - 1)];

				if ((unsigned char)c >= 0x80) {
					cells[j][pos++] = '\xc3';
					c = '\xa9';
				}
				cells[j][pos++] = c;
			}
			cells[j][pos] = '\0';
			row[j] = cells[j];
		}
		round_trip(row, n, CSV_TEXT);
		round_trip(row, n, CSV_NUMBER);
	}
}

/* Reading. */

static void test_read_records(void **state)
{
	(void)state;
	EXPECT("a,b\r\nc,d\r\n", "1:[a][b]\n2:[c][d]\n");
	EXPECT("a,b\nc,d\n", "1:[a][b]\n2:[c][d]\n");
	EXPECT("a,b\r\nc,d\ne\r\n", "1:[a][b]\n2:[c][d]\n3:[e]\n");	/* mixed */
	EXPECT("a,b\nc,d", "1:[a][b]\n2:[c][d]\n");		/* no final line end */
	EXPECT("", "");
	EXPECT("\n", "");
	EXPECT("\r\n", "");
	EXPECT("a\n\nb\n\r\n\n", "1:[a]\n3:[b]\n");	/* empty lines: no records */
	EXPECT(",\n", "1:[][]\n");
	EXPECT("a,\n", "1:[a][]\n");
	EXPECT("a,", "1:[a][]\n");
	EXPECT(",,", "1:[][][]\n");
	EXPECT("\"\"\n", "1:[]\n");
	EXPECT("\"\"", "1:[]\n");
	EXPECT("a,\"\"", "1:[a][]\n");
	EXPECT("\"\"\"\"", "1:[\"]\n");
	EXPECT("\"a,b\",\"c\"\"d\",e\n", "1:[a,b][c\"d][e]\n");
	EXPECT(" a , b \n", "1:[ a ][ b ]\n");		/* spaces are text */
	EXPECT("\"a\rb\"\n", "1:[a\rb]\n");		/* CR in quotes is text */
	EXPECT("'=1,''\n", "1:['=1]['']\n");		/* neutralised as read */
	EXPECT("\xc3\xa9,\xe2\x82\xac,\xf0\x9f\x98\x80,\xf4\x8f\xbf\xbf,\xed\x9f\xbf,\xee\x80\x80\n",
	       "1:[\xc3\xa9][\xe2\x82\xac][\xf0\x9f\x98\x80][\xf4\x8f\xbf\xbf][\xed\x9f\xbf]"
	       "[\xee\x80\x80]\n");
}

static void test_quoted_newlines_and_lines(void **state)
{
	(void)state;
	EXPECT("a,\"x\ny\"\nb\n", "1:[a][x\ny]\n3:[b]\n");
	EXPECT("\"1\r\n2\r\n3\"\r\nz", "1:[1\r\n2\r\n3]\n4:[z]\n");
	EXPECT("\n\n\"a\n\n\",b\n\nc", "3:[a\n\n][b]\n7:[c]\n");
	EXPECT("x\n\"a\nb\nc\"d", "1:[x]\nerror after_quote at 4.1");
	EXPECT("x,\"\n\n\"\"", "error unterminated at 3.2");
}

static void test_bom(void **state)
{
	(void)state;
	EXPECT("\xef\xbb\xbf" "a,b\n", "1:[a][b]\n");
	EXPECT("\xef\xbb\xbf", "");
	EXPECT("\xef\xbb\xbf\n", "");
	EXPECT("\xef\xbb\xbf\"q\"", "1:[q]\n");
	/* only at the very start: elsewhere it is text (U+FEFF) */
	EXPECT("\xef\xbb\xbf\xef\xbb\xbf" "a", "1:[\xef\xbb\xbf" "a]\n");
	EXPECT("a\n\xef\xbb\xbf" "b", "1:[a]\n2:[\xef\xbb\xbf" "b]\n");
	EXPECT("\n\xef\xbb\xbf", "2:[\xef\xbb\xbf]\n");
	/* the start of one, and then not */
	EXPECT("\xef\xbb", "error utf8 at 1.1");
	EXPECT("\xef", "error utf8 at 1.1");
	EXPECT("\xef\xbb" "x", "error utf8 at 1.1");
	EXPECT("\xef\xbf\xbf", "1:[\xef\xbf\xbf]\n");	/* U+FFFF, not a BOM */
	EXPECT("\xef\xbb\xbe", "1:[\xef\xbb\xbe]\n");
}

static void test_errors(void **state)
{
	(void)state;
	/* a quoted field open at the end */
	EXPECT("a\nb\n\"c", "1:[a]\n2:[b]\nerror unterminated at 3.1");
	EXPECT("\"", "error unterminated at 1.1");
	EXPECT("a,\"b\"\"", "error unterminated at 1.2");
	/* '"' in an unquoted field */
	EXPECT("ab\"c\n", "error quote at 1.1");
	EXPECT("x\na,b\"c", "1:[x]\nerror quote at 2.2");
	EXPECT("a \"b\"\n", "error quote at 1.1");
	/* after a closing quote */
	EXPECT("\"a\"b", "error after_quote at 1.1");
	EXPECT("\"a\" ,b", "error after_quote at 1.1");
	EXPECT("x,\"a\"\"\"b", "error after_quote at 1.2");
	/* CR outside quotes */
	EXPECT("a\rb", "error bare_cr at 1.1");
	EXPECT("a\r", "error bare_cr at 1.1");
	EXPECT("\r", "error bare_cr at 1.0");
	EXPECT("\rx", "error bare_cr at 1.0");
	EXPECT("\"a\"\rb", "error bare_cr at 1.1");
	EXPECT("a,b\r\r\n", "error bare_cr at 1.2");
	EXPECT("a\n\n,\r,", "1:[a]\nerror bare_cr at 3.2");
	/* NUL */
	EXPECT("a\nb\0", "1:[a]\nerror nul at 2.1");
	EXPECT("\0", "error nul at 1.1");
	EXPECT("\"a\n\0\"", "error nul at 2.1");
	EXPECT("a,\xc3\0", "error nul at 1.2");
	/* not UTF-8 */
	EXPECT("\xc0\xaf", "error utf8 at 1.1");		/* overlong */
	EXPECT("\xc1\xbf", "error utf8 at 1.1");
	EXPECT("\xe0\x80\x80", "error utf8 at 1.1");
	EXPECT("\xe0\x9f\xbf", "error utf8 at 1.1");
	EXPECT("\xf0\x80\x80\x80", "error utf8 at 1.1");
	EXPECT("\xf0\x8f\xbf\xbf", "error utf8 at 1.1");
	EXPECT("\xed\xa0\x80", "error utf8 at 1.1");		/* surrogates */
	EXPECT("\xed\xbf\xbf", "error utf8 at 1.1");
	EXPECT("\xf4\x90\x80\x80", "error utf8 at 1.1");	/* past U+10FFFF */
	EXPECT("\xf5\x80\x80\x80", "error utf8 at 1.1");
	EXPECT("\xff", "error utf8 at 1.1");
	EXPECT("\x80", "error utf8 at 1.1");			/* continuation alone */
	EXPECT("a\n\xc3", "1:[a]\nerror utf8 at 2.1");	/* cut by the end */
	EXPECT("\xe2\x82", "error utf8 at 1.1");
	EXPECT("\xc3" "a", "error utf8 at 1.1");		/* cut by ASCII */
	EXPECT("a,\xc3,", "error utf8 at 1.2");
	EXPECT("\"\xc3\"", "error utf8 at 1.1");
	EXPECT("\"a\nb\xe2\x82\n\"", "error utf8 at 2.1");
}

static void test_error_messages(void **state)
{
	static const struct csv_limits small = { 4, 3, 10 };

	(void)state;
	expect_message("ok\n\"a\nb", &big, "quoted field opened on line 2 not closed");
	expect_message("a\"", &big, "'\"' inside an unquoted field");
	expect_message("\"a\"b", &big, "expected ',' or a line end after a closing '\"'");
	expect_message("a\rb", &big, "CR not followed by LF");
	expect_message("\xff", &big, "invalid UTF-8");
	expect_message("\xc3", &big, "invalid UTF-8 (cut short at the end)");
	expect_message("abcde", &small, "cell longer than 4 bytes");
	expect_message("a,b,c,d", &small, "more than 3 fields in a record");
	expect_message("abcd,abcd,abc", &small, "record longer than 10 bytes");
}

static void test_limits(void **state)
{
	static const struct csv_limits small = { 4, 3, 10 };
	static const struct csv_limits one = { 1, 1, 1 };
	char *got, *huge;
	size_t n = 1 << 20;

	(void)state;
	EXPECT_LIM(&small, "abcd\n", "1:[abcd]\n");
	EXPECT_LIM(&small, "abcde\n", "error cell_size at 1.1");
	EXPECT_LIM(&small, "x\nabcde", "1:[x]\nerror cell_size at 2.1");
	EXPECT_LIM(&small, "\"a\"\"b\"\n", "1:[a\"b]\n");	/* text as read: 3 bytes */
	EXPECT_LIM(&small, "\"ab\"\"cd\"\n", "error cell_size at 1.1");
	EXPECT_LIM(&small, "\"a\nbc\"\n", "1:[a\nbc]\n");
	EXPECT_LIM(&small, "\"a\r\nbc\"\n", "error cell_size at 2.1");	/* CR LF: 2 bytes */
	EXPECT_LIM(&small, "a,b,c\n", "1:[a][b][c]\n");
	EXPECT_LIM(&small, ",,\n", "1:[][][]\n");
	EXPECT_LIM(&small, "a,b,c,d\n", "error cell_count at 1.4");
	EXPECT_LIM(&small, "a,b,c,", "error cell_count at 1.4");
	EXPECT_LIM(&small, "abcd,abcd,ab\n", "1:[abcd][abcd][ab]\n");
	EXPECT_LIM(&small, "abcd,abcd,abc\n", "error record_size at 1.3");
	/* the limits are a record's: the next one starts afresh */
	EXPECT_LIM(&small, "abcd,abcd,ab\nabcd,abcd,ab\n",
		   "1:[abcd][abcd][ab]\n2:[abcd][abcd][ab]\n");
	EXPECT_LIM(&one, "a\nb\n\"c\"\n", "1:[a]\n2:[b]\n3:[c]\n");
	EXPECT_LIM(&one, "a,\n", "error cell_count at 1.2");
	EXPECT_LIM(&one, "ab\n", "error cell_size at 1.1");

	/* a megabyte in one cell holds no more than the limits' memory */
	huge = xmalloc(n);
	memset(huge, 'a', n);
	got = parse_as(huge, n, &small, 0, WHOLE, 0);
	assert_string_equal(got, "error cell_size at 1.1");
	free(got);
	memset(huge, ',', n);
	got = parse_as(huge, n, &big, 0, RANDOM, 7);
	assert_string_equal(got, "error cell_count at 1.1025");
	free(got);
	memset(huge, '\n', n);	/* empty lines: no records, just lines */
	memcpy(huge + n - 2, "\"", 1);
	got = parse_as(huge, n, &big, 0, WHOLE, 0);
	assert_string_equal(got, "error unterminated at 1048576.1");
	free(got);
	free(huge);
}

static void test_handler_stops(void **state)
{
	char *got;

	(void)state;
	got = parse_lim("a\n\"b\nc\"\nd\n", 10, &big, 2);
	assert_string_equal(got, "1:[a]\n2:[b\nc]\nerror stopped at 2.0");
	free(got);
	got = parse_lim("a\nb", 3, &big, 2);	/* the last record, at the end */
	assert_string_equal(got, "1:[a]\n2:[b]\nerror stopped at 2.0");
	free(got);
}

/* The reader's UTF-8 rules are util.h's, chunk boundaries or not. */
static void test_utf8_as_util(void **state)
{
	static const unsigned char bytes[] = {
		'a', 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
		0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff,
	};
	char s[8], *got;
	size_t i, j, len;
	int valid, accepted;

	(void)state;
	rng_state = 99;
	for (i = 0; i < 20000; i++) {
		len = rng() % sizeof(s);
		for (j = 0; j < len; j++)
			s[j] = (char)bytes[rng() % sizeof(bytes)];
		valid = utf8_valid(s, len);
		got = parse_as(s, len, &big, 0, i % 2 ? BYTES : WHOLE, 0);
		accepted = strncmp(got, "error", 5) != 0;
		if (valid != accepted)
			fail_msg("input %zu of %zu bytes: util says %d, csv %s", i, len, valid, got);
		free(got);
	}
}

/* A longer text of every kind of cell, and a BOM: whole, bytes and chunks agree. */
static void test_chunked(void **state)
{
	static const char *const kinds[] = {
		"plain", "", "with,comma", "with \"quotes\"", "multi\nline", "cr\r\nlf",
		"=formula", "'quote", "\xc3\xa9t\xc3\xa9", " spaced ", "\"", "''",
	};
	struct strbuf sb;
	struct csv_writer w;
	char *got;
	size_t i, j, n;

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb, "\xef\xbb\xbf");
	csv_writer_init(&w, &sb);
	rng_state = 4242;
	for (i = 0; i < 200; i++) {
		n = 1 + rng() % 8;
		for (j = 0; j < n; j++) {
			const char *k = kinds[rng() % (sizeof(kinds) / sizeof(kinds[0]))];

			csv_write_cell(&w, k, strlen(k), rng() % 2 ? CSV_TEXT : CSV_NUMBER);
		}
		csv_write_end(&w);
		if (rng() % 10 == 0)
			strbuf_puts(&sb, rng() % 2 ? "\n" : "\r\n");	/* an empty line */
	}
	got = parse_lim(sb.buf, sb.len, &big, 0);
	assert_true(strncmp(got + strlen(got) - 1, "\n", 1) == 0);
	assert_null(strstr(got, "error"));
	free(got);
	/* and the same text with an error at its end */
	strbuf_puts(&sb, "\"x\"y");
	got = parse_lim(sb.buf, sb.len, &big, 0);
	assert_non_null(strstr(got, "error after_quote"));
	free(got);
	strbuf_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_quoting),
		cmocka_unit_test(test_write_cells_and_records),
		cmocka_unit_test(test_neutralise),
		cmocka_unit_test(test_unneutralise),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_read_records),
		cmocka_unit_test(test_quoted_newlines_and_lines),
		cmocka_unit_test(test_bom),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_messages),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_handler_stops),
		cmocka_unit_test(test_utf8_as_util),
		cmocka_unit_test(test_chunked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
