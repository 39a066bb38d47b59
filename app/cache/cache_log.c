/*
 * cache_log: short lists that every process of the service adds to and
 * reads, kept in Redis (cache.h, "Shared logs"). Their entries are input
 * when read back: the caller validates each.
 */
#include "cache/cache_internal.h"

#include <hiredis/hiredis.h>

int cache_log_push(const char *name, const char *value, size_t len, int keep, int ttl)
{
	struct cache_conn *t = cache_conn_get(0);
	redisReply *r[3];
	int i, bad, attempt;

	if (t == NULL || keep < 1 || len > CACHE_LOG_VALUE_MAX)
		return -1;
	for (attempt = 0; attempt < 2; attempt++) {
		redisAppendCommand(t->rc, "LPUSH %s%s %b", t->prefix, name, value, len);
		redisAppendCommand(t->rc, "LTRIM %s%s 0 %d", t->prefix, name, keep - 1);
		redisAppendCommand(t->rc, "EXPIRE %s%s %d", t->prefix, name, ttl);
		/* A key of another type under the name (WRONGTYPE) is a bad value, not a failed Redis. */
		if (cache_conn_replies_values(t, r, 3, 0x7) != 0)
			return -1;
		bad = cache_reply_bad(r[0]);
		for (i = 0; i < 3; i++)
			freeReplyObject(r[i]);
		if (!bad)
			return 0;
		/* Not a list this service wrote: it goes, and this entry starts a new one. */
		if ((r[0] = cache_conn_command(t, "DEL %s%s", t->prefix, name)) == NULL)
			return -1;
		freeReplyObject(r[0]);
	}
	return -1;
}

int cache_log_read(const char *name, int max, cache_log_entry each, void *arg)
{
	struct cache_conn *t = cache_conn_get(0);
	redisReply *r;
	size_t i;
	int n = 0;

	if (t == NULL || max < 1)
		return -1;
	redisAppendCommand(t->rc, "LRANGE %s%s 0 %d", t->prefix, name, max - 1);
	if (cache_conn_replies_values(t, &r, 1, 0x1) != 0)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY) {	/* WRONGTYPE: no list of ours */
		freeReplyObject(r);
		return -1;
	}
	for (i = 0; i < r->elements && n < max; i++) {
		const redisReply *e = r->element[i];

		if (e->type == REDIS_REPLY_STRING && e->len <= CACHE_LOG_VALUE_MAX &&
		    each(e->str, e->len, arg) == 0)
			n++;
	}
	freeReplyObject(r);
	return n;
}
