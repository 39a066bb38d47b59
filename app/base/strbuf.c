/*
 * strbuf: growable, always NUL-terminated buffers (strbuf.h). Growth is
 * overflow-checked and aborts on exhaustion, so appends cannot fail;
 * printf-style appends and JSON string escaping build responses and logs.
 */
#include "base/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define STRBUF_MIN 64

static void strbuf_grow(struct strbuf *sb, size_t extra);

void strbuf_init(struct strbuf *sb)
{
	sb->cap = STRBUF_MIN;
	sb->buf = xmalloc(sb->cap);
	sb->buf[0] = '\0';
	sb->len = 0;
}

void strbuf_free(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}

void strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	sb->buf[0] = '\0';
}

/* Make room for extra more bytes plus the NUL. */
static void strbuf_grow(struct strbuf *sb, size_t extra)
{
	size_t need = size_add(size_add(sb->len, extra), 1);
	size_t cap = sb->cap;

	if (need <= cap)
		return;
	while (cap < need)
		cap = size_mul(cap, 2);
	sb->buf = xrealloc(sb->buf, cap);
	sb->cap = cap;
}

void strbuf_append(struct strbuf *sb, const void *data, size_t len)
{
	strbuf_grow(sb, len);
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

void strbuf_puts(struct strbuf *sb, const char *s)
{
	strbuf_append(sb, s, strlen(s));
}

void strbuf_putc(struct strbuf *sb, char c)
{
	strbuf_append(sb, &c, 1);
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("strbuf_printf: bad format");
	if ((size_t)n >= sb->cap - sb->len) {
		strbuf_grow(sb, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
		va_end(ap);
	}
	sb->len += (size_t)n;
}

void strbuf_json_string(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p, *end = (const unsigned char *)s + strlen(s);

	strbuf_putc(sb, '"');
	for (p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': strbuf_puts(sb, "\\\""); break;
		case '\\': strbuf_puts(sb, "\\\\"); break;
		case '\n': strbuf_puts(sb, "\\n"); break;
		case '\r': strbuf_puts(sb, "\\r"); break;
		case '\t': strbuf_puts(sb, "\\t"); break;
		default:
			if (*p >= 0x80) {
				size_t n = utf8_seq_len(p, (size_t)(end - p));

				if (n == 0) {
					/* Not UTF-8: keep the output valid JSON. */
					strbuf_puts(sb, "\\ufffd");
				} else {
					strbuf_append(sb, p, n);
					p += n - 1;
				}
			} else if (*p < 0x20 || *p == 0x7f) {
				char esc[7] = { '\\', 'u', '0', '0',
						hex[*p >> 4], hex[*p & 15], 0 };
				strbuf_puts(sb, esc);
			} else {
				strbuf_putc(sb, (char)*p);
			}
		}
	}
	strbuf_putc(sb, '"');
}

char *strbuf_detach(struct strbuf *sb, size_t *len)
{
	char *b = sb->buf;

	if (len)
		*len = sb->len;
	sb->buf = NULL;
	sb->len = sb->cap = 0;
	return b;
}
