/*
 * json_scan: a cursor that checks JSON text as it steps through it
 * (app/base/json_scan.h). Every read is bounded by len; recursion by
 * JSON_SCAN_MAX_DEPTH.
 */
#include "base/json_scan.h"

#include <stdint.h>
#include <string.h>

#include "base/util.h"

static void skip_ws(struct json_scan *js);
static long hex4(const char *s);
static size_t escape_len(const char *s, size_t len, size_t pos);
static size_t plain_run(const char *s, size_t len, size_t pos);
static size_t digits(const char *s, size_t len, size_t pos);
static int scan_string(struct json_scan *js);
static int scan_number(struct json_scan *js);
static int scan_literal(struct json_scan *js, const char *word, size_t n);
static int first_in_container(const struct json_scan *js, char open);
static int next_item(struct json_scan *js, char open, char close);

void json_scan_init(struct json_scan *js, const char *s, size_t len)
{
	js->s = s;
	js->len = len;
	js->pos = 0;
	js->depth = 0;
	js->tok = NULL;
	js->toklen = 0;
}

static void skip_ws(struct json_scan *js)
{
	while (js->pos < js->len) {
		char c = js->s[js->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		js->pos++;
	}
}

/* The value of the four hex digits at s, or -1. */
static long hex4(const char *s)
{
	long v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* The escape at s[pos] ('\\'): its length (2, 6 or 12), or 0 when malformed. */
static size_t escape_len(const char *s, size_t len, size_t pos)
{
	long cp, lo;

	if (pos + 1 >= len)
		return 0;
	if (strchr("\"\\/bfnrt", s[pos + 1]) != NULL && s[pos + 1] != '\0')
		return 2;
	if (s[pos + 1] != 'u' || pos + 6 > len || (cp = hex4(s + pos + 2)) < 0)
		return 0;
	if (cp >= 0xDC00 && cp <= 0xDFFF)
		return 0;	/* a low surrogate alone */
	if (cp < 0xD800 || cp > 0xDBFF)
		return 6;
	/* A high surrogate: its low half must follow at once. */
	if (pos + 12 > len || s[pos + 6] != '\\' || s[pos + 7] != 'u')
		return 0;
	lo = hex4(s + pos + 8);
	return lo >= 0xDC00 && lo <= 0xDFFF ? 12 : 0;
}

/*
 * The end of the run of plain bytes (printable ASCII but '"' and '\\')
 * from pos: eight at a time while all eight are plain, then one at a
 * time. Word tricks from "Bit Twiddling Hacks" (S. E. Anderson): a byte
 * below 0x20, or equal to one of the two, sets its top bit in the mask.
 */
static size_t plain_run(const char *s, size_t len, size_t pos)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;

	while (pos + 8 <= len) {
		uint64_t w, q, b;

		memcpy(&w, s + pos, 8);
		q = w ^ (ones * '"');
		b = w ^ (ones * '\\');
		if ((w & highs) || ((w - ones * 0x20) & ~w & highs) ||
		    ((q - ones) & ~q & highs) || ((b - ones) & ~b & highs))
			break;
		pos += 8;
	}
	while (pos < len) {
		unsigned char c = (unsigned char)s[pos];

		if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
			break;
		pos++;
	}
	return pos;
}

/* The string at the cursor ('"'); 0 and tok set, the cursor past it; or -1. */
static int scan_string(struct json_scan *js)
{
	const char *s = js->s;
	size_t pos = js->pos + 1, start = pos, n;

	while (pos < js->len) {
		unsigned char c = (unsigned char)s[pos];

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			pos = plain_run(s, js->len, pos + 1);	/* the common case */
			continue;
		}
		if (c == '"') {
			js->tok = s + start;
			js->toklen = pos - start;
			js->pos = pos + 1;
			return 0;
		}
		if (c < 0x20)
			return -1;	/* control bytes (NUL included) must be escaped */
		if (c == '\\')
			n = escape_len(s, js->len, pos);
		else
			n = utf8_seq_len((const unsigned char *)s + pos, js->len - pos);
		if (n == 0)
			return -1;
		pos += n;
	}
	return -1;	/* unterminated */
}

static size_t digits(const char *s, size_t len, size_t pos)
{
	size_t n = 0;

	while (pos + n < len && s[pos + n] >= '0' && s[pos + n] <= '9')
		n++;
	return n;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? at the cursor; 0 or -1. */
static int scan_number(struct json_scan *js)
{
	const char *s = js->s;
	size_t len = js->len, pos = js->pos, n;

	if (pos < len && s[pos] == '-')
		pos++;
	n = digits(s, len, pos);
	if (n == 0 || (n > 1 && s[pos] == '0'))
		return -1;
	pos += n;
	if (pos < len && s[pos] == '.') {
		if ((n = digits(s, len, pos + 1)) == 0)
			return -1;
		pos += 1 + n;
	}
	if (pos < len && (s[pos] == 'e' || s[pos] == 'E')) {
		pos++;
		if (pos < len && (s[pos] == '+' || s[pos] == '-'))
			pos++;
		if ((n = digits(s, len, pos)) == 0)
			return -1;
		pos += n;
	}
	js->tok = s + js->pos;
	js->toklen = pos - js->pos;
	js->pos = pos;
	return 0;
}

static int scan_literal(struct json_scan *js, const char *word, size_t n)
{
	if (js->len - js->pos < n || memcmp(js->s + js->pos, word, n) != 0)
		return -1;
	js->tok = js->s + js->pos;
	js->toklen = n;
	js->pos += n;
	return 0;
}

enum json_kind json_scan_value(struct json_scan *js)
{
	const char *key;
	size_t keylen;
	int r;

	skip_ws(js);
	if (js->pos >= js->len)
		return JSON_BAD;
	switch (js->s[js->pos]) {
	case '{':
		if (json_scan_enter(js, JSON_OBJECT) != 0)
			return JSON_BAD;
		while ((r = json_scan_member(js, &key, &keylen)) == 1)
			if (json_scan_value(js) == JSON_BAD)
				return JSON_BAD;
		return r == 0 ? JSON_OBJECT : JSON_BAD;
	case '[':
		if (json_scan_enter(js, JSON_ARRAY) != 0)
			return JSON_BAD;
		while ((r = json_scan_element(js)) == 1)
			if (json_scan_value(js) == JSON_BAD)
				return JSON_BAD;
		return r == 0 ? JSON_ARRAY : JSON_BAD;
	case '"':
		return scan_string(js) == 0 ? JSON_STRING : JSON_BAD;
	case 't':
		return scan_literal(js, "true", 4) == 0 ? JSON_TRUE : JSON_BAD;
	case 'f':
		return scan_literal(js, "false", 5) == 0 ? JSON_FALSE : JSON_BAD;
	case 'n':
		return scan_literal(js, "null", 4) == 0 ? JSON_NULL : JSON_BAD;
	default:
		return scan_number(js) == 0 ? JSON_NUMBER : JSON_BAD;
	}
}

int json_scan_enter(struct json_scan *js, enum json_kind kind)
{
	char open = kind == JSON_OBJECT ? '{' : kind == JSON_ARRAY ? '[' : '\0';

	skip_ws(js);
	if (open == '\0' || js->pos >= js->len || js->s[js->pos] != open ||
	    js->depth >= JSON_SCAN_MAX_DEPTH)
		return -1;
	js->pos++;
	js->depth++;
	return 0;
}

/*
 * Whether the cursor (past whitespace) is right after the opening bracket
 * open: no value can end with one, so looking back tells "first item"
 * from "after an item" without keeping a stack.
 */
static int first_in_container(const struct json_scan *js, char open)
{
	size_t i = js->pos;

	while (i > 0) {
		char c = js->s[--i];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			return c == open;
	}
	return 0;
}

/*
 * The step shared by members and elements: 0 after the closing bracket,
 * 1 with the cursor at the next item (past its comma), -1 when not JSON.
 */
static int next_item(struct json_scan *js, char open, char close)
{
	int first;

	skip_ws(js);
	if (js->depth == 0 || js->pos >= js->len)
		return -1;
	first = first_in_container(js, open);
	if (js->s[js->pos] == close) {
		js->pos++;
		js->depth--;
		return 0;
	}
	if (!first) {
		if (js->s[js->pos] != ',')
			return -1;
		js->pos++;
		skip_ws(js);
		if (js->pos >= js->len || js->s[js->pos] == close)
			return -1;	/* a trailing comma */
	}
	return 1;
}

int json_scan_member(struct json_scan *js, const char **key, size_t *keylen)
{
	int r = next_item(js, '{', '}');

	if (r != 1)
		return r;
	if (js->s[js->pos] != '"' || scan_string(js) != 0)
		return -1;
	*key = js->tok;
	*keylen = js->toklen;
	skip_ws(js);
	if (js->pos >= js->len || js->s[js->pos] != ':')
		return -1;
	js->pos++;
	return 1;
}

int json_scan_element(struct json_scan *js)
{
	return next_item(js, '[', ']');
}

int json_scan_end(struct json_scan *js)
{
	skip_ws(js);
	return js->depth == 0 && js->pos == js->len ? 0 : -1;
}

int json_scan_check(const char *s, size_t len)
{
	struct json_scan js;

	json_scan_init(&js, s, len);
	return json_scan_value(&js) != JSON_BAD && json_scan_end(&js) == 0 ? 0 : -1;
}
