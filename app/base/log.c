/*
 * log: each line is built in memory (JSON, or text for humans) and written
 * to stderr with one write(2), so lines from many threads never interleave
 * and no lock is held across the write. A filtered-out level costs one
 * comparison: the builders do nothing when the line is off.
 */
#define _GNU_SOURCE
#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

/* Set once at start-up, before any thread exists; read-only afterwards. */
static enum log_level threshold = LOG_INFO;
static enum log_format format = LOG_FORMAT_JSON;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level level, enum log_format fmt)
{
	threshold = level;
	format = fmt;
}

int log_enabled(enum log_level level)
{
	return level >= threshold;
}

void log_begin(struct log_line *l, enum log_level level, const char *msg)
{
	char ts[40];

	l->on = log_enabled(level);
	if (!l->on)
		return;
	strbuf_init(&l->sb);
	format_iso8601(now_wall(), ts, sizeof(ts));
	if (format == LOG_FORMAT_JSON) {
		strbuf_printf(&l->sb, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":",
			      ts, level_names[level]);
		strbuf_json_string(&l->sb, msg);
	} else {
		strbuf_printf(&l->sb, "%s %-5s %s", ts, level_names[level], msg);
	}
}

/* Text values are quoted when they hold spaces, quotes or control bytes. */
static void text_value(struct strbuf *sb, const char *v)
{
	const char *p;

	for (p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=')
			break;
	if (*p == '\0' && *v != '\0')
		strbuf_puts(sb, v);
	else
		strbuf_json_string(sb, v);
}

void log_str(struct log_line *l, const char *key, const char *value)
{
	if (!l->on)
		return;
	if (value == NULL)
		value = "";
	if (format == LOG_FORMAT_JSON) {
		strbuf_printf(&l->sb, ",\"%s\":", key);
		strbuf_json_string(&l->sb, value);
	} else {
		strbuf_printf(&l->sb, " %s=", key);
		text_value(&l->sb, value);
	}
}

void log_int(struct log_line *l, const char *key, long long value)
{
	if (!l->on)
		return;
	if (format == LOG_FORMAT_JSON)
		strbuf_printf(&l->sb, ",\"%s\":%lld", key, value);
	else
		strbuf_printf(&l->sb, " %s=%lld", key, value);
}

void log_num(struct log_line *l, const char *key, double value)
{
	if (!l->on)
		return;
	if (format == LOG_FORMAT_JSON)
		strbuf_printf(&l->sb, ",\"%s\":%.3f", key, value);
	else
		strbuf_printf(&l->sb, " %s=%.3f", key, value);
}

void log_end(struct log_line *l)
{
	size_t off = 0;

	if (!l->on)
		return;
	if (format == LOG_FORMAT_JSON)
		strbuf_putc(&l->sb, '}');
	strbuf_putc(&l->sb, '\n');
	/* One write per line; retry only what a signal or a full pipe cut. */
	while (off < l->sb.len) {
		ssize_t n = write(STDERR_FILENO, l->sb.buf + off, l->sb.len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;	/* stderr gone: nothing better to do */
		}
		off += (size_t)n;
	}
	strbuf_free(&l->sb);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	struct log_line l;
	char msg[1024];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_begin(&l, level, msg);
	log_end(&l);
}

int log_allowed(atomic_llong *next_ms, double interval_s)
{
	long long now = (long long)(now_mono() * 1000.0), next = atomic_load(next_ms);

	/* Of the threads that find the time passed, the one whose exchange lands logs. */
	return now >= next &&
	       atomic_compare_exchange_strong(next_ms, &next, now + (long long)(interval_s * 1000.0));
}
