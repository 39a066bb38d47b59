/*
 * slowlog: the last SLOWLOG_MAX requests slower than SLOW_REQUEST_MS, kept
 * in memory for /admin/slow, each with where its time went: waiting to be
 * admitted, for a place at the gate and for a connection, in each of its
 * statements (by name), and in Redis.
 */
#ifndef PS_SLOWLOG_H
#define PS_SLOWLOG_H

#include <stdint.h>

#include "db/trace.h"

#define SLOWLOG_MAX 200

struct slow_request {
	double at;			/* when it ended, Unix seconds */
	char request_id[65];
	char method[8];
	char path[160];			/* cut at 159 bytes */
	char route[40];
	int status;
	int64_t user_id;
	double total, auth, queue, pool_wait, db, cache;	/* seconds */
	char shed[24];			/* why the gate turned it away, "" */
	struct trace trace;
};

/* Keep r (copied), dropping the oldest beyond SLOWLOG_MAX. */
void slowlog_add(const struct slow_request *r);

/*
 * Copy the kept requests into out (room for SLOWLOG_MAX), newest first.
 * Returns how many; *total is how many were ever added.
 */
int slowlog_list(struct slow_request *out, uint64_t *total);

#endif
