/*
 * util: allocation that aborts on exhaustion, overflow-checked sizes, and
 * clocks. Out of memory is treated as a bug-class failure (the process
 * cannot do anything useful without memory), so callers never check.
 */
#ifndef PS_UTIL_H
#define PS_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A macro's value as a string literal: PS_STR(500) is "500" (for SQL text). */
#define PS_STR_(x) #x
#define PS_STR(x) PS_STR_(x)

/* Return fresh memory or abort the process with a message. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* a + b, aborting if the sum does not fit in size_t. */
size_t size_add(size_t a, size_t b);
/* a * b, aborting if the product does not fit in size_t. */
size_t size_mul(size_t a, size_t b);

/* Seconds on CLOCK_MONOTONIC (never jumps). */
double now_mono(void);
/* Seconds since the Unix epoch on CLOCK_REALTIME. */
double now_wall(void);
/* Format a Unix time (seconds) as ISO 8601 UTC with milliseconds into buf. */
void format_iso8601(double t, char *buf, size_t len);

/*
 * Parse a whole decimal integer in [min, max] from s (no sign for min >= 0,
 * no spaces, no trailing bytes). Returns 0 and stores it in *out, or -1.
 */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/*
 * Decode %XX escapes in s[0..n) ('+' as space when plus_is_space). Fails
 * (-1) on a truncated or non-hex escape, a NUL (raw or encoded) and invalid
 * UTF-8 in the result; on success (0) *out is malloc'd, caller frees.
 */
int pct_decode(const char *s, size_t n, int plus_is_space, char **out);

/* UTF-8. */
/*
 * Length of the valid UTF-8 sequence starting at p (1..4), reading at most
 * avail bytes, or 0 if the bytes there are not valid UTF-8 (overlong,
 * surrogate, beyond U+10FFFF, or cut short by avail or a NUL).
 */
size_t utf8_seq_len(const unsigned char *p, size_t avail);
/* 1 if s[0..len) is valid UTF-8 without NUL bytes, else 0; reads no further. */
int utf8_valid(const char *s, size_t len);
/* Code points in the valid UTF-8 string s (continuation bytes not counted). */
size_t utf8_chars(const char *s);

/*
 * Walk a comma-separated list: the next item at *p (its trailing spaces
 * excluded) with its length in *len, moving *p past it and the separator.
 * NULL at the end of the list.
 */
const char *list_next(const char **p, size_t *len);

/* Abort with a message: for broken invariants only (bugs, not faults). */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
