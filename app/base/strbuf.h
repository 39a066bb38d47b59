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
/* Hand the buffer to the caller (who frees it); sb needs strbuf_init again. */
char *strbuf_detach(struct strbuf *sb, size_t *len);

#endif
