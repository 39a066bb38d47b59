/*
 * strbuf: a growable, always NUL-terminated byte buffer. Growth is
 * overflow-checked and aborts on out-of-memory, so appends cannot fail.
 * Pair every strbuf_init with strbuf_free.
 */
#ifndef PS_STRBUF_H
#define PS_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *buf;	/* NUL-terminated; never NULL after init */
	size_t len;	/* bytes used, excluding the NUL */
	size_t cap;	/* bytes allocated */
};

void strbuf_init(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);
/* Empty the buffer, keeping its memory. */
void strbuf_reset(struct strbuf *sb);
void strbuf_append(struct strbuf *sb, const void *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included, escaping as needed. */
void strbuf_json_string(struct strbuf *sb, const char *s);
/*
 * Length of the valid UTF-8 sequence starting at p (1..4), reading at most
 * avail bytes, or 0 if the bytes there are not valid UTF-8 (overlong,
 * surrogate, beyond U+10FFFF, or cut short by avail or a NUL).
 */
size_t utf8_seq_len(const unsigned char *p, size_t avail);
/* 1 if s[0..len) is valid UTF-8 without NUL bytes, else 0; reads no further. */
int utf8_valid(const char *s, size_t len);
/* Hand the buffer to the caller (who frees it); sb needs strbuf_init again. */
char *strbuf_detach(struct strbuf *sb, size_t *len);

#endif
