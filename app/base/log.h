/*
 * log: structured log lines on stderr, one line per event, JSON by default
 * (LOG_FORMAT=text for humans). A line is built in memory and written with
 * a single write(2): no lock is held across the write, and lines shorter
 * than PIPE_BUF never interleave. Secrets are the caller's duty: never pass
 * passwords, tokens, cookies or connection URLs.
 */
#ifndef PS_LOG_H
#define PS_LOG_H

#include <stdatomic.h>

#include "base/strbuf.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_JSON, LOG_FORMAT_TEXT };

struct log_line {
	struct strbuf sb;
	int on;		/* 0 when the level is filtered out: calls are no-ops */
};

/* Set the threshold and format; call once before threads start. */
void log_setup(enum log_level level, enum log_format format);
int log_enabled(enum log_level level);

/* Start a line with its level and message; finish it with log_end. */
void log_begin(struct log_line *l, enum log_level level, const char *msg);
void log_str(struct log_line *l, const char *key, const char *value);
void log_int(struct log_line *l, const char *key, long long value);
/* A number with three decimals (milliseconds and the like). */
void log_num(struct log_line *l, const char *key, double value);
/* Write the line and free it. */
void log_end(struct log_line *l);

/*
 * For a line that data can repeat (a bad value met by every request would
 * otherwise write one line per request): 1 when the caller may log now,
 * which then counts as the last time; 0 while less than interval_s seconds
 * passed since. *next_ms is the caller's, a static atomic_llong starting
 * at 0 (the first call may log). Lock-free.
 */
int log_allowed(atomic_llong *next_ms, double interval_s);

/* A line with only a formatted message. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
