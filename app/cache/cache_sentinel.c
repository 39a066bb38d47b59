/*
 * cache_sentinel: where the Redis master is, when Redis Sentinel watches
 * it (REDIS_SENTINELS). hiredis has no Sentinel client; this follows the
 * documented client rules (redis.io, "Sentinel client spec"):
 *
 *  1. Ask the sentinels in turn, the last one that answered first,
 *     SENTINEL get-master-addr-by-name <name>, each under the cache's
 *     timeout; the first that names an address is believed (and asked
 *     first next time).
 *  2. Connect there and verify it is a master: every new connection reads
 *     INFO replication and refuses a server whose role is not master
 *     (cache_conn.c, read_identity), the spec's ROLE check.
 *  3. On any error of a connection (lost, timed out, an error reply such
 *     as READONLY from a demoted master), ask again before the next
 *     connection: cache_conn_failed calls cache_master_suspect.
 *
 * Nothing here decides who the master is: the sentinels do. What keeps
 * the cache exact across a switch is the key-space rule (cache.h, K): a
 * promoted replica has a new replication id, so the new master's keys are
 * a new, empty key space, and trust (T) must be granted again by a drain
 * there before anything is served from it.
 *
 * Without sentinels, REDIS_URL's server is the master and nothing here
 * talks to the network.
 */
#include "cache/cache_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

/*
 * mu guards everything below. Nothing blocks while it is held: the
 * sentinels are asked without it, and the answer stored after.
 */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char master_host[CACHE_HOST_MAX];
static int master_port;		/* 0: not known yet */
static int stale;		/* a connection failed since it was learnt: ask again */
static int first;		/* the sentinel to ask first */
/* monotonic: the first failure since a connection to the master last worked; 0 none */
static double lost_at;
static struct cache_master_stats st;

static void lock(void)
{
	if (pthread_mutex_lock(&mu) != 0)
		die("cache_sentinel: mutex lock failed");
}

static void unlock(void)
{
	pthread_mutex_unlock(&mu);
}

int cache_sentinel_reply(const redisReply *r, char host[CACHE_HOST_MAX], int *port)
{
	int64_t p;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
		return -1;
	if (r->element[0]->len == 0 || r->element[0]->len >= CACHE_HOST_MAX ||
	    strspn(r->element[0]->str, "0123456789abcdefghijklmnopqrstuvwxyz"
				       "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:") != r->element[0]->len)
		return -1;
	if (r->element[1]->len > 5 || parse_int64(r->element[1]->str, 1, 65535, &p) != 0)
		return -1;
	memcpy(host, r->element[0]->str, r->element[0]->len + 1);
	*port = (int)p;
	return 0;
}

/* Ask sentinel i; 0 with the master's address, else -1 with why. */
static int ask(const struct config *cfg, int i, char host[CACHE_HOST_MAX], int *port,
	       char *why, size_t whylen)
{
	const struct redis_sentinels *s = &cfg->sentinels;
	struct redis_url u = { .host = s->host[i], .port = s->port[i], .password = s->password };
	redisContext *rc;
	redisReply *r;
	int ok;

	rc = cache_redis_connect(&u, cfg->cache_timeout_ms, why, whylen);
	if (rc == NULL)
		return -1;
	r = redisCommand(rc, "SENTINEL get-master-addr-by-name %s", s->master);
	ok = cache_sentinel_reply(r, host, port) == 0;
	if (!ok)
		snprintf(why, whylen, "%s",
			 r == NULL ? (rc->err ? rc->errstr : "no answer")
			 : r->type == REDIS_REPLY_ERROR ? r->str
			 : r->type == REDIS_REPLY_NIL ? "it watches no master by that name"
			 : "an answer that is not an address");
	if (r)
		freeReplyObject(r);
	redisFree(rc);
	return ok ? 0 : -1;
}

/* Note what the sentinels said (i answered): a switch is counted and logged. */
static void learnt(int i, const char *host, int port)
{
	struct log_line l;
	char was[CACHE_HOST_MAX + 8] = "";
	int moved;

	lock();
	moved = master_port != 0 && (master_port != port || strcmp(master_host, host) != 0);
	if (moved) {
		snprintf(was, sizeof(was), "%s:%d", master_host, master_port);
		st.switches++;
		st.last_switch_seconds = lost_at > 0 ? now_mono() - lost_at : 0;
		lost_at = 0;
	}
	snprintf(master_host, sizeof(master_host), "%s", host);
	master_port = port;
	stale = 0;
	first = i;
	snprintf(st.master, sizeof(st.master), "%s:%d", host, port);
	unlock();
	if (moved) {
		log_begin(&l, LOG_WARN, "redis: the sentinels name a new master");
		log_str(&l, "master", st.master);
		log_str(&l, "was", was);
		log_num(&l, "seconds_since_lost", st.last_switch_seconds);
		log_end(&l);
	}
}

int cache_master_url(const struct config *cfg, struct redis_url *u, char host[CACHE_HOST_MAX],
		     char *err, size_t errlen)
{
	const struct redis_sentinels *s = &cfg->sentinels;
	char why[160] = "";
	int i, k, start, port;

	*u = cfg->redis;
	if (s->n == 0)
		return 0;
	lock();
	if (master_port != 0 && !stale) {
		snprintf(host, CACHE_HOST_MAX, "%s", master_host);
		u->host = host;
		u->port = master_port;
		unlock();
		return 0;
	}
	start = first;
	unlock();
	for (k = 0; k < s->n; k++) {
		i = (start + k) % s->n;
		if (ask(cfg, i, host, &port, why, sizeof(why)) == 0) {
			learnt(i, host, port);
			u->host = host;
			u->port = port;
			return 0;
		}
		lock();
		st.sentinel_errors++;
		unlock();
	}
	snprintf(err, errlen, "no sentinel named the master \"%s\" (last: %s)", s->master, why);
	return -1;
}

void cache_master_suspect(void)
{
	lock();
	if (lost_at == 0)
		lost_at = now_mono();
	stale = 1;
	unlock();
}

void cache_master_ok(void)
{
	lock();
	if (!stale)
		lost_at = 0;
	unlock();
}

void cache_master_get_stats(struct cache_master_stats *out)
{
	lock();
	*out = st;
	unlock();
}
