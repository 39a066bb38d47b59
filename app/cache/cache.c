/*
 * cache: Redis cache-aside with leases, an outbox for invalidations, trust
 * leases and key-space epochs. app/cache/cache.h gives the shape; this header
 * says why the promise holds.
 *
 * THE PROMISE. Once any process has acknowledged a write W of paint P with
 * a 2xx, no read that starts after that moment, on any process, returns a
 * version of P older than W, nor a list or stats page computed before W.
 *
 * THE MODEL. Redis may fail in any way: refuse with an error reply
 * (READONLY, OOM, MISCONF, ...), stall (DEBUG SLEEP, CLIENT PAUSE), drop
 * connections (all of them, or one process's), stop, or restart with data
 * older than what it acknowledged (a restored snapshot, the last second of
 * appendfsync everysec, a promoted replica that missed writes). Assumed:
 * at any one time at most one Redis server accepts writes for REDIS_URL
 * (no split brain), and a server's run_id changes at every start and its
 * master_replid at every promotion (both are Redis's own behaviour). The
 * clocks of PostgreSQL and of the processes advance at the same rate
 * (CLOCK_MONOTONIC here; margins cover drift between machines).
 *
 * THE PIECES.
 *  K. Key space. Every key lives under "ps:" + run_id + master_replid of
 *     the server it is written to (cache_key_prefix). A server that
 *     restarts or is promoted gets a new, empty key space: anything it
 *     kept from before, including values that missed a DEL, is never read.
 *     A connection learns its server's identity when it connects, and only
 *     a connection to the identity the process trusts serves reads.
 *  L. Read leases (per key). A miss takes <prefix>lease:paint:{id} before
 *     reading PostgreSQL; an invalidation deletes value and lease; a store
 *     succeeds only while its own lease is still there (one Lua script).
 *     So after an invalidation is applied, a value can only be stored by a
 *     reader who took its lease after it, hence read PostgreSQL after it,
 *     hence after W committed. Pages: a reader reads the generation
 *     before the database and stores its page under the generation it
 *     read; an invalidation bumps it (INCR: it only grows within a key
 *     space). So a page stored under generation g was computed from a
 *     database read that began after its reader read gen == g. A lookup
 *     reads gen, then the page under the gen it read, on one connection,
 *     in that order (one pipeline; a second round trip when the gen is not
 *     the one the connection read last). If W's bump was applied before
 *     R started, the gen g that R reads is at least the bump's, and a page
 *     under g was computed after a reader read g, i.e. after the bump,
 *     hence after W committed. No atomicity between the two reads is
 *     needed: a bump between them only makes the page found older than
 *     the newest, never older than W.
 *  O. Outbox. W inserts its cache_outbox row in its own statement, so the
 *     row commits with W. A row is deleted only after its invalidation was
 *     applied to a Redis server X, and only by CACHE_OUTBOX_DONE_SQL, which
 *     refuses while any announced lease names another identity than X.
 *  T. Trust leases (per process). A drain: check Redis (a master, same
 *     identity, accepts a write); note t0 = now; announce the lease in
 *     cache_leases (holder, identity, until = PostgreSQL's now + TRUST_MS +
 *     margin) and commit; read the whole outbox (a snapshot taken after
 *     the announcement); apply every row to Redis with one more check;
 *     delete them. Only if all of that succeeded, and no Redis failure
 *     happened anywhere in the process since t0, may the process serve
 *     from Redis until t0 + TRUST_MS. Any failure sets that to 0 at once.
 *     The drainer drains every DRAIN_EVERY_MS (so a healthy process never
 *     lapses) and at once on NOTIFY.
 *  A. Acknowledgement. After W commits (time c, noted as w >= c), the
 *     writer applies the invalidation on its own connection, to server X,
 *     and deletes the row through CACHE_OUTBOX_DONE_SQL. If both worked, it
 *     acknowledges. Otherwise it sends NOTIFY and waits until one of:
 *     (1) the row is gone, (2) no announced lease is running, (3) its own
 *     clock passed w + TRUST_MS (+ margin). Only then does it answer.
 *
 * WHY IT HOLDS. Take a read R that starts after W was acknowledged, on a
 * process Q. If Q does not trust Redis at R's start, R reads PostgreSQL
 * (committed before, so it sees W). Otherwise Q's lease comes from a drain
 * D with t0 + TRUST_MS > start of R, and R's connection has D's identity.
 *  - If D's outbox snapshot contained W's row, D applied it to D's server
 *    before trusting it, and by (L) nothing older can be found there since.
 *  - If the row was already gone, someone applied it to a server X and
 *    deleted it while no announced lease named another identity (O). D
 *    announced its lease before its snapshot, and the deletion happened
 *    before that snapshot; if D's announcement was visible to the deletion,
 *    D's server is X. If not, D's check of its server came after the
 *    deletion, which followed a write accepted by X: D's server accepting
 *    writes later is either X or a server promoted since, whose key space
 *    is new (K) and holds nothing stored before the promotion, i.e. before
 *    that write; what readers stored there since was read after it (L).
 *  - If D's snapshot did not contain the row and it was not deleted, W
 *    committed after the snapshot, so c > t0 and Q's lease ends at
 *    t0 + TRUST_MS < c + TRUST_MS. The writer acknowledged at (1), (2) or
 *    (3). (3): its clock passed w + TRUST_MS >= c + TRUST_MS, so Q's lease
 *    had ended before R started: contradiction. (2): the writer saw no
 *    running lease, in a snapshot taken after c. D's announcement, if
 *    visible, was running no longer (it outlasts Q's lease), so Q's lease
 *    had ended: contradiction; if not visible, D announced after that
 *    snapshot, so D's outbox snapshot came after c and contained the row:
 *    contradiction. (1): the row was deleted, the previous case.
 *  - Lists and stats follow, with the generation in place of the key.
 *  - R. Replicas. "Read PostgreSQL after it" in (L) becomes "read a
 *    server that has replayed W". With DATABASE_REPLICA_URLS set, every
 *    invalidation first does ZADD <prefix>wal GT <p> (the value only
 *    grows), in the same pipeline and so before its DELs and INCR, where
 *    p is the primary's pg_current_wal_lsn() read after the rows
 *    committed: by the writer on its connection after W's commit, or by
 *    a drainer in the statement that read its outbox snapshot (a row is
 *    in the snapshot only if its write committed). A reader takes its
 *    lease, then reads <prefix>wal (pipelined after the SET NX; for pages
 *    right after the GET of the generation, in the same round trip, the
 *    generation read standing for the lease). If W's invalidation was
 *    applied before the lease (or that GET), its ZADD was too, so the
 *    value read is >= W's commit position: the fill reads a replica
 *    only if the housekeeper saw it replay at least that far (replica
 *    positions only grow while it runs; a lost or restarted replica
 *    fails its pooled connections and is left out until sampled again;
 *    docs/replicas.md names the sub-second window this leaves),
 *    otherwise the primary; a missing value (a new key space) means
 *    the primary. If the invalidation comes after the lease, it deletes
 *    the lease and the store is refused, as before. A request that read a replica chosen
 *    for less than its fill needs stores nothing (store_allowed). So (L)
 *    holds with replicas. Every process sharing the Redis must have the
 *    same replica setting: one without replicas records no position.
 * So R never sees anything older than W. A look-up that goes around
 * Redis (down, failing or not trusted) learns no position: with replicas
 * its read goes to the primary (bypassed()), since a replica, even a
 * synchronous standby (flushed is not replayed), may not have replayed W
 * yet. (With no Redis configured at all, paints are read as any route is:
 * another session's read may reach a replica within DB_REPLICA_MAX_LAG_MS.)
 * A value stored in Redis by a
 * stalled reader after a failure (a command delivered when Redis wakes up)
 * is covered by (L) and (T): the outbox row is applied, deleting value
 * and lease, before anyone trusts that server again.
 *
 * BAD VALUES. What Redis returns is input, checked before use (cache.h):
 * a bad value is never served, it is a miss. For a paint, the reader
 * deletes the value and its lease before taking the lease, as an
 * invalidation of that one key would; a deletion can only refuse a store
 * (L), never let an older value in. For a page, the fill stores under the
 * generation it read, as any fill. A bad generation is never repaired: a
 * reset could go back to a generation pages were stored under, so the
 * probe keeps that key space out of trust (T), as for a Redis failure.
 * What is stored in a bad value's place is stored by the rules above.
 *
 * THE COST. Normal path: reads check two atomics and the clock; a write
 * does one Redis round trip and one statement, as before. Each process
 * drains four times a second (a probe, an upsert of its lease row, an empty
 * outbox read). During a fault: reads bypass Redis (PostgreSQL answers);
 * a write waits until another process applied its row (milliseconds, via
 * NOTIFY), or at most TRUST_MS + 100 ms when no process can reach Redis,
 * and only while leases announced before the fault are still running, so
 * writes in a long outage are acknowledged at once again after TRUST_MS.
 */
#define _GNU_SOURCE
#include "cache/cache.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "base/workers.h"
#include "cache/cache_internal.h"
#include "db/replicas.h"

#define NEGATIVE_TTL 5		/* seconds an absent paint stays cached */
#define PAGE_TTL 60		/* seconds a list or stats page lives */
#define LEASE_MS 3000		/* longer than a read takes; shorter than patience */
#define LEASE_WAIT_STEPS 5	/* a loser polls this many times... */
#define LEASE_WAIT_STEP_MS 10	/* ...this far apart for the winner's value */

void cache_setup(const struct config *c)
{
	cache_conn_setup(c);
	cache_outbox_setup();
}

void cache_start(const struct pool_settings *ps)
{
	cache_outbox_start(ps);
}

void cache_stop(void)
{
	cache_outbox_stop();
}

/*
 * Replicas (piece R in the header). fill_lsn: 0 when this thread's request
 * looked nothing up; else the WAL position a replica must have replayed
 * for what the request reads to be served or stored (UINT64_MAX: unknown,
 * read the primary), the largest of its look-ups'. read_replica/replica_at:
 * the request read a replica chosen as having replayed replica_at; it may
 * store only if that covers fill_lsn.
 */
static _Thread_local uint64_t fill_lsn, replica_at;
static _Thread_local int read_replica;

void cache_request_reset(void)
{
	fill_lsn = 0;
	replica_at = 0;
	read_replica = 0;
}

uint64_t cache_fill_position(void)
{
	return fill_lsn;
}

/* A look-up needs position lsn replayed before the database is read. */
static void need_position(uint64_t lsn)
{
	if (lsn > fill_lsn)
		fill_lsn = lsn;
}

/*
 * A look-up that went around Redis (down, failing, not trusted): with
 * replicas, the position of the last invalidation is unknown, so the read
 * goes to the primary (piece R). Without any Redis configured there is
 * no position to know: reads are as any route's (docs/replicas.md).
 */
static enum cache_result bypassed(void)
{
	if (cache_conn_wal_on() && cache_conn_enabled())
		fill_lsn = UINT64_MAX;
	atomic_fetch_add(&cache_n.bypasses, 1);
	return CACHE_BYPASS;
}

void cache_note_replica_read(uint64_t replayed)
{
	if (!read_replica || replayed < replica_at)
		replica_at = replayed;
	read_replica = 1;
}

/* Whether a store of what this request read is safe (piece R). */
static int store_allowed(void)
{
	return !read_replica || replica_at >= fill_lsn;
}

int cache_wal_parse(const char *s, size_t len, uint64_t *lsn)
{
	char buf[32], *end;
	double d;

	if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len) != NULL)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	d = strtod(buf, &end);
	/* (NaN fails every comparison; infinities the bounds.) */
	if (end != buf + len || !(d >= 1.0 && d < 9007199254740992.0) || d != (double)(uint64_t)d)
		return -1;
	*lsn = (uint64_t)d;
	return 0;
}

/*
 * A ZSCORE reply of <prefix>wal on t as a position; UINT64_MAX when
 * unknown (nothing recorded yet in this key space, or a bad value,
 * counted): the fill then reads the primary.
 */
static uint64_t wal_reply(const struct cache_conn *t, const redisReply *r)
{
	char key[CACHE_PREFIX_LEN + 4];
	uint64_t lsn;

	if (!cache_conn_wal_on() || r == NULL || r->type == REDIS_REPLY_NIL)
		return UINT64_MAX;
	if (r->type == REDIS_REPLY_STRING && cache_wal_parse(r->str, r->len, &lsn) == 0)
		return lsn;
	snprintf(key, sizeof(key), "%swal", t->prefix);
	cache_bad_value("wal position", key);
	return UINT64_MAX;
}

int cache_gen_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > CACHE_GEN_LEN || (s[0] == '0' && len > 1))
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/*
 * Whether r (a GETRANGE reply, cache_conn_read_value) can hold a value
 * at all: 1 a string of a length this cache stores; 0 none (a missing
 * key reads as ""); -1 not one of ours (another type of key, too long).
 */
static int value_reply(const redisReply *r)
{
	if (r->type != REDIS_REPLY_STRING || r->len > CACHE_VALUE_MAX)
		return -1;
	return r->len > 0;
}

const char *cache_result_name(enum cache_result r)
{
	switch (r) {
	case CACHE_HIT:
		return "hit";
	case CACHE_MISS:
		return "miss";
	case CACHE_BYPASS:
		return "bypass";
	case CACHE_UNUSED:
		break;
	}
	return "none";
}

/* ---- identity and key space (piece K) ------------------------------------ */

/* Copy the value of "field:" in an INFO reply into out; -1 if absent. */
static int info_field(const char *info, const char *field, char *out, size_t outlen)
{
	size_t flen = strlen(field);
	const char *p = info;

	while (p && *p) {
		if (strncmp(p, field, flen) == 0 && p[flen] == ':') {
			size_t n = strcspn(p + flen + 1, "\r\n");

			if (n == 0 || n >= outlen)
				return -1;
			memcpy(out, p + flen + 1, n);
			out[n] = '\0';
			return 0;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

/* Whether s holds only letters and digits (ids that name keys and rows). */
static int alnum(const char *s)
{
	return s[strspn(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")] == '\0';
}

int cache_identity_parse(const char *info_server, const char *info_repl,
			 char out[CACHE_IDENT_LEN])
{
	char run_id[48], replid[48], role[16];

	out[0] = '\0';
	if (info_server == NULL || info_repl == NULL ||
	    info_field(info_server, "run_id", run_id, sizeof(run_id)) != 0 ||
	    info_field(info_repl, "role", role, sizeof(role)) != 0 ||
	    info_field(info_repl, "master_replid", replid, sizeof(replid)) != 0 ||
	    strcmp(role, "master") != 0 || strlen(run_id) < 12 || strlen(replid) < 12 ||
	    !alnum(run_id) || !alnum(replid))
		return -1;
	snprintf(out, CACHE_IDENT_LEN, "%s/%s", run_id, replid);
	return 0;
}

void cache_key_prefix(const char *ident, char out[CACHE_PREFIX_LEN])
{
	const char *slash = strchr(ident, '/');

	/* 48 random bits of each id: a new key space per start and promotion. */
	snprintf(out, CACHE_PREFIX_LEN, "ps:%.12s%.12s:", ident, slash ? slash + 1 : "");
}

static void paint_keys(const struct cache_conn *t, int64_t id, char key[128], char lease[128])
{
	snprintf(key, 128, "%spaint:%lld", t->prefix, (long long)id);
	snprintf(lease, 128, "%slease:paint:%lld", t->prefix, (long long)id);
}

/* ---- paints ----------------------------------------------------------------- */

/*
 * Try to take the read lease lkey for this request (a new random token in
 * lease). With replicas, the last invalidation's position is read right
 * after it, in the same pipeline (piece R), and binds this request's
 * reads whether the lease is ours or not. With bad_key (a bad value was
 * found there), first delete it and lkey, as an invalidation of that one
 * key would: the lease a fill left behind (it outlives the fill) would
 * otherwise keep the bad value in place until it expires, and deleting
 * a value or a lease only ever refuses a store, never lets an older one
 * in. 1: the lease is ours; 0: someone else holds it (lease emptied); -1:
 * Redis failed.
 */
static int take_lease(struct cache_conn *t, const char *lkey, const char *bad_key,
		      char lease[CACHE_LEASE_TOKEN])
{
	unsigned char raw[16];
	redisReply *rr[3];
	int wal_on = cache_conn_wal_on(), first = bad_key != NULL, n = 1 + first + wal_on, i, ours;

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(lease, CACHE_LEASE_TOKEN, raw, sizeof(raw));
	if (bad_key)
		redisAppendCommand(t->rc, "DEL %s %s", bad_key, lkey);
	redisAppendCommand(t->rc, "SET %s %s NX PX %d", lkey, lease, LEASE_MS);
	if (wal_on)
		redisAppendCommand(t->rc, "ZSCORE %swal w", t->prefix);
	if (cache_conn_replies(t, rr, n) != 0)
		return -1;
	ours = rr[first]->type == REDIS_REPLY_STATUS && strcmp(rr[first]->str, "OK") == 0;
	/*
	 * The position binds the read whether or not the lease is ours: a
	 * request that finds another's lease (a fill on another process, or
	 * its own first run's, left when it was parked at the admission gate)
	 * still reads what it serves from a server that replayed the last
	 * invalidation, as a hit would have served.
	 */
	need_position(wal_reply(t, wal_on ? rr[first + 1] : NULL));
	if (!ours)
		lease[0] = '\0';
	for (i = 0; i < n; i++)
		freeReplyObject(rr[i]);
	return ours;
}

/*
 * The paint value in r (read under key): 1 when there is one check
 * accepts, appended to value; 0 when there is none; -1 when there is a
 * bad one (counted unless *counted: once per lookup).
 */
static int paint_value(const redisReply *r, const char *key, int64_t id, cache_paint_check check,
		       struct strbuf *value, int *counted)
{
	int got = value_reply(r);

	if (got > 0 && check && check(r->str, r->len, id) != 0)
		got = -1;
	if (got > 0)
		strbuf_append(value, r->str, r->len);
	else if (got < 0 && !*counted) {
		cache_bad_value("paint", key);
		*counted = 1;
	}
	return got;
}

enum cache_result cache_paint_get(int64_t id, cache_paint_check check, struct strbuf *value,
				  char lease[CACHE_LEASE_TOKEN])
{
	struct cache_conn *t = cache_conn_get(1);
	char key[128], lkey[128];
	redisReply *r;
	int i, got, counted = 0;

	lease[0] = '\0';
	if (t == NULL)
		return bypassed();
	paint_keys(t, id, key, lkey);
	if ((r = cache_conn_read_value(t, key)) == NULL)
		goto bypass;
	got = paint_value(r, key, id, check, value, &counted);
	freeReplyObject(r);
	if (got > 0) {
		atomic_fetch_add(&cache_n.hits, 1);
		return CACHE_HIT;
	}
	/* Missing or bad alike: a miss, and the fill under a lease stores a good value. */
	atomic_fetch_add(&cache_n.misses, 1);
	switch (take_lease(t, lkey, got < 0 ? key : NULL, lease)) {
	case 1:
		return CACHE_MISS;
	case -1:
		goto bypass;
	}
	/*
	 * Someone else is reading the database for this key: wait a little,
	 * the thread's place lent meanwhile (workers.h): when the database is
	 * saturated that reader may wait its turn, and many may wait on it.
	 */
	atomic_fetch_add(&cache_n.lease_waits, 1);
	workers_block_begin();
	for (i = 0; i < LEASE_WAIT_STEPS; i++) {
		cache_sleep_ms(LEASE_WAIT_STEP_MS);
		/* The wait may outlive the trust: check it again. */
		if ((t = cache_conn_get(1)) == NULL || (r = cache_conn_read_value(t, key)) == NULL)
			break;
		got = paint_value(r, key, id, check, value, &counted);
		freeReplyObject(r);
		if (got > 0)
			break;
	}
	workers_block_end();
	if (i < LEASE_WAIT_STEPS && got > 0) {
		atomic_fetch_add(&cache_n.lease_wait_hits, 1);
		return CACHE_HIT;
	}
	if (i < LEASE_WAIT_STEPS)
		goto bypass;
	return CACHE_MISS;
bypass:
	lease[0] = '\0';
	return bypassed();
}

/* Delete KEYS[1] if it still holds ARGV[1]: one lease given back, never another reader's. */
#define RELEASE_LUA "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

void cache_paint_release(int64_t id, const char *lease)
{
	struct cache_conn *t;
	char key[128], lkey[128];
	redisReply *r;

	if (lease == NULL || lease[0] == '\0' || (t = cache_conn_get(1)) == NULL)
		return;
	paint_keys(t, id, key, lkey);
	r = cache_conn_command(t, "EVAL %s 1 %s %s", RELEASE_LUA, lkey, lease);
	if (r)
		freeReplyObject(r);
}

int cache_paint_store(int64_t id, const char *lease, const char *value, size_t len)
{
	struct cache_conn *t;
	char key[128], lkey[128], ttl[16];
	redisReply *r;
	int stored;

	if (lease == NULL || lease[0] == '\0' || len > CACHE_VALUE_MAX || !store_allowed() ||
	    (t = cache_conn_get(1)) == NULL)
		return 0;
	paint_keys(t, id, key, lkey);
	snprintf(ttl, sizeof(ttl), "%d", len == 1 && value[0] == '-' ? NEGATIVE_TTL : cache_conn_config()->cache_ttl);
	r = cache_conn_command(t, "EVALSHA %s 2 %s %s %s %b %s", t->store_sha, key, lkey, lease, value, len, ttl);
	if (r == NULL)
		return 0;
	stored = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	atomic_fetch_add(stored ? &cache_n.stores : &cache_n.refused, 1);
	return stored;
}

/*
 * Apply an invalidation on t (its key space). With replicas, lsn (the
 * primary's position after the writes committed) is recorded first, in
 * the same pipeline, so a lease or generation read after any of the
 * deletions also reads a position covering them (piece R). 0 when every
 * reply was good.
 */
int cache_invalidate_on(struct cache_conn *t, const int64_t *ids, int n, uint64_t lsn)
{
	redisReply *r[CACHE_DRAIN_BATCH + 2];
	int i, extra = 0;

	/* n is a count of outbox rows (LIMIT CACHE_DRAIN_BATCH); r[] is sized by it. */
	if (n < 0 || n > CACHE_DRAIN_BATCH) {
		cache_trust_withdraw();
		return -1;
	}
	if (cache_conn_wal_on() && lsn) {
		redisAppendCommand(t->rc, "ZADD %swal GT %llu w", t->prefix, (unsigned long long)lsn);
		extra = 1;
	}
	for (i = 0; i < n; i++) {
		char key[128], lkey[128];

		paint_keys(t, ids[i], key, lkey);
		redisAppendCommand(t->rc, "DEL %s %s", key, lkey);
	}
	redisAppendCommand(t->rc, "INCR %sgen", t->prefix);
	if (cache_conn_replies(t, r, n + 1 + extra) != 0)
		return -1;
	for (i = 0; i <= n + extra; i++)
		freeReplyObject(r[i]);
	atomic_fetch_add(&cache_n.invalidations, (unsigned long long)n);
	return 0;
}

int cache_invalidate(const int64_t *ids, int n)
{
	struct cache_conn *t = cache_conn_get(0);

	/* No position known here: a write path with replicas uses cache_after_write. */
	return t && !cache_conn_wal_on() ? cache_invalidate_on(t, ids, n, 0) : -1;
}

/* ---- lists and stats ----------------------------------------------------- */

/* A short, fixed-size name for a canonical query. */
static void query_hash(const char *query, char out[33])
{
	unsigned char h[16];

	crypto_generichash(h, sizeof(h), (const unsigned char *)query, strlen(query), NULL, 0);
	sodium_bin2hex(out, 33, h, sizeof(h));
}

/*
 * The generation in r (a read of <prefix>gen on t) into g: its length, 1
 * for a missing one ("0": a new key space), 0 for a bad one (counted).
 */
static unsigned gen_reply(const struct cache_conn *t, const redisReply *r, char g[CACHE_GEN_LEN])
{
	char key[CACHE_PREFIX_LEN + 4];
	int got = value_reply(r);

	if (got == 0) {
		g[0] = '0';
		return 1;
	}
	if (got > 0 && cache_gen_valid(r->str, r->len)) {
		memcpy(g, r->str, r->len);
		return (unsigned)r->len;
	}
	snprintf(key, sizeof(key), "%sgen", t->prefix);
	cache_bad_value("generation", key);
	return 0;
}

/* As paint_value, for the page in r (read under key). */
static int page_value(const redisReply *r, const char *key, cache_page_check check,
		      struct strbuf *value)
{
	int got = value_reply(r);

	if (got > 0 && check && check(r->str, r->len) != 0)
		got = -1;
	if (got > 0)
		strbuf_append(value, r->str, r->len);
	else if (got < 0)
		cache_bad_value("page", key);
	return got;
}

/* The key of page kind/hash under generation g[0..glen). */
static void page_key(const struct cache_conn *t, const char *kind, const char *g, size_t glen,
		     const char *hash, char key[192])
{
	snprintf(key, 192, "%s%s:%.*s:%s", t->prefix, kind, (int)glen, g, hash);
}

/*
 * gen is "<generation>.<connection>": a page is stored only through the
 * connection its generation was read on, so never into another key space
 * (the thread may reconnect in between, even to another server).
 *
 * One pipeline, in this order: GET <prefix>gen, ZSCORE <prefix>wal w
 * (with replicas, piece R), GET of the page under the generation this
 * connection read last. When the generation read is that one, the page
 * reply is the answer; when a write bumped it since, a second round trip
 * reads the page under the new one (another thread may have filled it
 * already: after a write, each connection pays one extra round trip, not
 * a miss). Nothing here needs the two GETs to be atomic: see piece L.
 * (The GETs are GETRANGEs, cache_conn_read_value: bounded, and a key of
 * another type is a bad value, not a Redis failure.)
 */
enum cache_result cache_page_get(const char *kind, const char *query, cache_page_check check,
				 struct strbuf *value, char gen[24])
{
	struct cache_conn *t = cache_conn_get(1);
	char hash[33], g[CACHE_GEN_LEN], key[192];
	redisReply *r[3] = { NULL, NULL, NULL }, *page, *fetched = NULL;
	int wal_on = cache_conn_wal_on(), n = 0, i;
	unsigned glen;
	enum cache_result res = CACHE_BYPASS;

	gen[0] = '\0';
	if (t == NULL)
		goto out;
	query_hash(query, hash);
	snprintf(key, sizeof(key), "%sgen", t->prefix);
	cache_conn_append_read_value(t, key);
	if (wal_on)
		redisAppendCommand(t->rc, "ZSCORE %swal w", t->prefix);
	if (t->last_gen_len > 0) {
		page_key(t, kind, t->last_gen, t->last_gen_len, hash, key);
		cache_conn_append_read_value(t, key);
	}
	n = 1 + wal_on + (t->last_gen_len > 0);
	/* The generation and the page are values (input); the position read is Redis's own. */
	if (cache_conn_replies_values(t, r, n, 1u | (t->last_gen_len > 0 ? 1u << (n - 1) : 0)) != 0) {
		n = 0;	/* freed */
		goto out;
	}
	if ((glen = gen_reply(t, r[0], g)) == 0) {
		/* Nothing to store under: a miss that stores nothing. */
		need_position(wal_reply(t, wal_on ? r[1] : NULL));
		res = CACHE_MISS;
		goto out;
	}
	page_key(t, kind, g, glen, hash, key);
	if (t->last_gen_len == glen && memcmp(t->last_gen, g, glen) == 0) {
		page = r[n - 1];
	} else {
		memcpy(t->last_gen, g, glen);
		t->last_gen_len = glen;
		if ((fetched = cache_conn_read_value(t, key)) == NULL)
			goto out;
		page = fetched;
	}
	snprintf(gen, 24, "%.*s.%x", (int)glen, g, t->conn_no);
	if (page_value(page, key, check, value) > 0) {
		res = CACHE_HIT;
	} else {	/* missing or bad: the fill stores over it, under the generation read */
		need_position(wal_reply(t, wal_on ? r[1] : NULL));
		res = CACHE_MISS;
	}
out:
	if (fetched)
		freeReplyObject(fetched);
	for (i = 0; i < n; i++)
		freeReplyObject(r[i]);
	if (res == CACHE_BYPASS)
		return bypassed();
	atomic_fetch_add(res == CACHE_HIT ? &cache_n.hits : &cache_n.misses, 1);
	return res;
}

void cache_page_store(const char *kind, const char *query, const char *gen,
		      const char *value, size_t len)
{
	struct cache_conn *t;
	char hash[33], key[192];
	const char *dot;
	redisReply *r;

	if (!store_allowed() || gen == NULL || len > CACHE_VALUE_MAX || (dot = strrchr(gen, '.')) == NULL ||
	    dot == gen || (t = cache_conn_get(1)) == NULL || strtoul(dot + 1, NULL, 16) != t->conn_no)
		return;
	query_hash(query, hash);
	/*
	 * The generation was read before the database, on this very
	 * connection: a write since bumped it.
	 */
	snprintf(key, sizeof(key), "%s%s:%.*s:%s", t->prefix, kind, (int)(dot - gen), gen, hash);
	r = cache_conn_command(t, "SET %s %b EX %d", key, value, len, PAGE_TTL);
	if (r) {
		atomic_fetch_add(&cache_n.stores, 1);
		freeReplyObject(r);
	}
}


void cache_get_stats(struct cache_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->enabled = cache_conn_enabled();
	st->hits = atomic_load(&cache_n.hits);
	st->misses = atomic_load(&cache_n.misses);
	st->bypasses = atomic_load(&cache_n.bypasses);
	st->stores = atomic_load(&cache_n.stores);
	st->stores_refused = atomic_load(&cache_n.refused);
	st->lease_waits = atomic_load(&cache_n.lease_waits);
	st->lease_wait_hits = atomic_load(&cache_n.lease_wait_hits);
	st->invalidations = atomic_load(&cache_n.invalidations);
	st->errors = atomic_load(&cache_n.errors);
	st->drained = atomic_load(&cache_n.drained);
	st->drains = atomic_load(&cache_n.drains);
	st->ack_waits = atomic_load(&cache_n.ack_waits);
	st->ack_wait_ms = atomic_load(&cache_n.ack_wait_ms);
	st->bad_values = atomic_load(&cache_n.bad_values);
	st->up = st->enabled && cache_trust_up();
}
