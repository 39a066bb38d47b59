/*
 * slowlog: the last SLOWLOG_MAX requests slower than SLOW_REQUEST_MS, for
 * /admin/slow, each with where its time went: waiting to be admitted, for
 * a place at the gate and for a connection, in each of its statements (by
 * name), and in Redis. Each process keeps its own in memory, and adds
 * each as JSON to a log in Redis that every process shares (cache.h,
 * "Shared logs"), so that one look shows them all whichever process
 * answers; without Redis, a process shows its own.
 */
#ifndef PS_SLOWLOG_H
#define PS_SLOWLOG_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "db/trace.h"

#define SLOWLOG_MAX 200
#define SLOWLOG_SHARED "slow"		/* the shared log's name */
#define SLOWLOG_SHARED_TTL (7 * 86400)	/* seconds it outlives its last entry */

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

/* Keep r (copied), dropping the oldest beyond SLOWLOG_MAX, here and in the shared log. */
void slowlog_add(const struct slow_request *r);

/* r as the JSON object /admin/slow lists (caller puts it). */
struct json_object *slowlog_json(const struct slow_request *r);

/*
 * An entry of the shared log, read back from Redis (input): the object
 * when it is one slowlog_json makes (the fields and their types, bounded
 * sizes), else NULL.
 */
struct json_object *slowlog_entry_parse(const char *value, size_t len);

/*
 * Copy the kept requests into out (room for SLOWLOG_MAX), newest first.
 * Returns how many; *total is how many were ever added.
 */
int slowlog_list(struct slow_request *out, uint64_t *total);

#endif
