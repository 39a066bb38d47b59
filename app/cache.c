/*
 * cache: Redis cache-aside with leases, an outbox for invalidations, trust
 * leases and key-space epochs. include/cache.h gives the shape; this header
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
 *     hence after W committed. Pages: the generation is read (with the
 *     page, atomically) before the database, and stored under that
 *     generation; an invalidation bumps it, so a page computed before the
 *     bump is never found after it.
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
 *    in the script that reads the generation). If W's invalidation was
 *    applied before the lease, its ZADD was too, so the value read is
 *    >= W's commit position: the fill reads a replica only if the
 *    housekeeper saw it replay at least that far (replica positions only
 *    grow while it runs; a lost or restarted replica fails its pooled
 *    connections and is left out until sampled again; README's "Read
 *    replicas" names the sub-second window this leaves), otherwise the
 *    primary; a missing value (a new key space) means the primary. If
 *    the invalidation comes after the lease, it deletes the lease and the
 *    store is refused, as before. A request that read a replica chosen
 *    for less than its fill needs stores nothing (store_allowed). So (L)
 *    holds with replicas. Every process sharing the Redis must have the
 *    same replica setting: one without replicas records no position.
 * So R never sees anything older than W. (With replicas, a read that
 * bypasses Redis and needs no fill may be served by a replica: for the
 * writer's own session only once it replayed W, for other sessions
 * within DB_REPLICA_MAX_LAG_MS; see README, "Read replicas".) A value stored in Redis by a
 * stalled reader after a failure (a command delivered when Redis wakes up)
 * is covered by (L) and (T): the outbox row is applied, deleting value
 * and lease, before anyone trusts that server again.
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
#include "cache.h"

#include <assert.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pool.h"
#include "replicas.h"
#include "util.h"

#define NEGATIVE_TTL 5		/* seconds an absent paint stays cached */
#define PAGE_TTL 60		/* seconds a list or stats page lives */
#define LEASE_MS 3000		/* longer than a read takes; shorter than patience */
#define LEASE_WAIT_STEPS 5	/* a loser polls this many times... */
#define LEASE_WAIT_STEP_MS 10	/* ...this far apart for the winner's value */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define DRAIN_BATCH 500
#define CLAIM_MARGIN_MS 100	/* an announced lease outlasts the local one by this */
#define ACK_MARGIN_MS 50	/* the writer's last-resort wait adds this... */
#define ACK_DRIFT_PPM 1000	/* ...and this share of TRUST_MS for clock rates */
#define ACK_POLL_MS 5		/* a waiting writer looks this often */
#define DRAIN_STATEMENT_MS 1000	/* the drainer's statements give up after this */
#define NOTIFY_CHANNEL "ps_cache_outbox"

/*
 * Store a value only while the reader's lease is still in place. The lease
 * stays until it expires or a write deletes it, so a reader that missed
 * just before the store cannot take a second lease and read again.
 */
static const char store_script[] =
	"if redis.call('GET', KEYS[2]) == ARGV[1] then "
	"  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) "
	"  return 1 "
	"end "
	"return 0";

/*
 * The generation, the WAL position of the last invalidation (piece R;
 * false when unknown) and the page under the generation, in one round trip.
 */
static const char page_script[] =
	"local g = redis.call('GET', KEYS[1]) or '0' "
	"return {g, redis.call('ZSCORE', KEYS[2], 'w') or false, "
	"redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])}";

/* Set once by cache_setup/cache_set_pool before threads start; read-only afterwards. */
static const struct config *cfg;
static struct pool *drain_pool;
static pthread_key_t conn_key;
static char holder[96];		/* this process in cache_leases */
static int wal_on;		/* replicas configured: invalidations record WAL positions */

/* A thread's own connection (hiredis contexts are not thread-safe). */
struct tconn {
	redisContext *rc;
	char ident[CACHE_IDENT_LEN];	/* the server's identity, learnt at connect */
	char prefix[CACHE_PREFIX_LEN];	/* its key space */
	unsigned seen_seq;		/* ident_seq when matches was computed */
	int matches;			/* ident == trusted_ident as of seen_seq */
	unsigned conn_no;		/* counts this thread's connections */
	/*
	 * SHA1s of store_script and page_script, loaded on this connection
	 * when it opened: EVALSHA spares Redis the script's text and hash on
	 * every call. A server that lost them (SCRIPT FLUSH) answers NOSCRIPT,
	 * an error reply like any other: the connection is dropped and the
	 * next one loads them again.
	 */
	char store_sha[41], page_sha[41];
};

/*
 * Trust (piece T). trusted_until_ms (monotonic ms) is when this process
 * stops serving from Redis; 0 after any failure. error_seq counts failures:
 * a drain grants trust only if it did not move since the drain's t0.
 * state_mu guards trusted_ident and serialises granting; ident_seq moves
 * whenever trusted_ident changes (read by connections without the lock to
 * know when to compare again). Nothing blocks while state_mu is held.
 */
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static char trusted_ident[CACHE_IDENT_LEN];
static atomic_uint ident_seq = 1;
static atomic_llong trusted_until_ms;
static atomic_ullong error_seq = 1;

/* Back-off: while now < down_until_ms every thread bypasses Redis. */
static atomic_llong down_until_ms;
static atomic_int backoff_ms = BACKOFF_MIN_MS;
static atomic_int is_down;

static atomic_ullong n_hits, n_misses, n_bypasses, n_stores, n_refused, n_lease_waits,
	n_lease_wait_hits, n_invalidations, n_errors, n_drained, n_drains, n_ack_waits,
	n_ack_wait_ms;

/* The drainer thread (cache_start/cache_stop). */
static pthread_t drainer;
static int drainer_running;
static int stop_pipe[2] = { -1, -1 };
static struct pool_settings drainer_settings;
static char drainer_app_name[128];

static void conn_free(void *p);
static struct tconn *get_conn(int need_trust);
static void mark_failed(struct tconn *t, const char *what);
static int drain_on(PGconn *pg, int *applied);

static void conn_free(void *p)
{
	struct tconn *t = p;

	if (t->rc)
		redisFree(t->rc);
	free(t);
}

void cache_setup(const struct config *c)
{
	char host[64] = "";
	unsigned char raw[4];
	char hex[9];

	cfg = c;
	wal_on = c->replica_urls && c->replica_urls[0];
	if (pthread_key_create(&conn_key, conn_free) != 0)
		die("cache: pthread_key_create failed");
	gethostname(host, sizeof(host) - 1);
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	snprintf(holder, sizeof(holder), "%.60s/%d/%s", host, (int)getpid(), hex);
}

void cache_set_pool(struct pool *p)
{
	drain_pool = p;
}

const char *cache_result_name(enum cache_result r)
{
	return r == CACHE_HIT ? "hit" : r == CACHE_MISS ? "miss" : "bypass";
}

static long long now_ms(void)
{
	return (long long)(now_mono() * 1000.0);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
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

int cache_identity_parse(const char *info_server, const char *info_repl,
			 char out[CACHE_IDENT_LEN])
{
	char run_id[48], replid[48], role[16];

	out[0] = '\0';
	if (info_server == NULL || info_repl == NULL ||
	    info_field(info_server, "run_id", run_id, sizeof(run_id)) != 0 ||
	    info_field(info_repl, "role", role, sizeof(role)) != 0 ||
	    info_field(info_repl, "master_replid", replid, sizeof(replid)) != 0 ||
	    strcmp(role, "master") != 0 || strlen(run_id) < 12 || strlen(replid) < 12)
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

/* ---- connections ---------------------------------------------------------- */

/* Redis failed for this thread: drop the connection, withdraw trust, back off. */
static void mark_failed(struct tconn *t, const char *reason)
{
	int b = atomic_load(&backoff_ms);
	char what[128];

	/* reason may live in the context freed below: keep a copy. */
	snprintf(what, sizeof(what), "%s", reason ? reason : "");
	atomic_fetch_add(&n_errors, 1);
	if (t && t->rc) {
		redisFree(t->rc);
		t->rc = NULL;
	}
	/* First the sequence (a drain in flight cannot grant), then the lease. */
	atomic_fetch_add(&error_seq, 1);
	atomic_store(&trusted_until_ms, 0);
	atomic_store(&down_until_ms, now_ms() + b);
	atomic_store(&backoff_ms, b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2);
	if (atomic_exchange(&is_down, 1) == 0) {
		struct log_line l;

		log_begin(&l, LOG_WARN, "redis unavailable: serving from PostgreSQL");
		log_str(&l, "detail", what);
		log_int(&l, "retry_ms", b);
		log_end(&l);
	}
}

/* Time this thread spent on Redis, for the request's figures. */
static _Thread_local double redis_time;

/*
 * Replicas (piece R in the header). fill_lsn: 0 when this thread's request
 * holds no lease or page generation; else the WAL position a replica must
 * have replayed for the request's store to be safe (UINT64_MAX: unknown,
 * read the primary). read_replica/replica_at: the request read a replica
 * chosen as having replayed replica_at; it may store only if that covers
 * fill_lsn.
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

/* A ZSCORE reply of <prefix>wal as a position; UINT64_MAX when unknown. */
static uint64_t wal_reply(const redisReply *r)
{
	double d;

	if (!wal_on || r == NULL || r->type != REDIS_REPLY_STRING)
		return UINT64_MAX;
	d = strtod(r->str, NULL);
	return d > 0 && d < 9007199254740992.0 ? (uint64_t)d : UINT64_MAX;
}

/* The primary's WAL position on pg (after a commit); 0 when it cannot be read. */
static uint64_t primary_position(PGconn *pg)
{
	PGresult *r = PQexec(pg, "SELECT pg_current_wal_lsn()");
	uint64_t lsn = 0;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
	    replicas_lsn_parse(PQgetvalue(r, 0, 0), &lsn) != 0)
		lsn = 0;
	PQclear(r);
	return lsn;
}

double cache_take_time(void)
{
	double t = redis_time;

	redis_time = 0;
	return t;
}

static void note_success(void)
{
	if (atomic_load(&is_down) && atomic_exchange(&is_down, 0) == 1) {
		atomic_store(&backoff_ms, BACKOFF_MIN_MS);
		atomic_store(&down_until_ms, 0);
		log_msg(LOG_INFO, "redis reachable again: cache in use once the outbox is drained");
	}
}

/*
 * Read n pipelined replies into r[0..n). 0 when every one arrived and none
 * is an error reply; else -1 after marking Redis failed (t->rc is gone,
 * r[] freed). Every error reply counts: READONLY, OOM and MISCONF mean the
 * invalidations may not be landing.
 */
static int replies(struct tconn *t, redisReply **r, int n)
{
	double t0 = now_mono();
	int i, bad = -1;

	for (i = 0; i < n; i++)
		r[i] = NULL;
	for (i = 0; i < n; i++) {
		void *reply = NULL;

		if (redisGetReply(t->rc, &reply) != REDIS_OK || reply == NULL) {
			redis_time += now_mono() - t0;
			mark_failed(t, t->rc->errstr[0] ? t->rc->errstr : "no reply");
			goto fail;
		}
		r[i] = reply;
		if (r[i]->type == REDIS_REPLY_ERROR && bad < 0)
			bad = i;
	}
	redis_time += now_mono() - t0;
	if (bad >= 0) {
		mark_failed(t, r[bad]->str);
		goto fail;
	}
	note_success();
	return 0;
fail:
	for (i = 0; i < n; i++)
		if (r[i])
			freeReplyObject(r[i]);
	return -1;
}

/* One command's reply, or NULL after marking Redis failed (error replies too). */
static redisReply *command(struct tconn *t, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;
	int rc;

	va_start(ap, fmt);
	rc = redisvAppendCommand(t->rc, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK) {
		mark_failed(t, "cannot format a command");
		return NULL;
	}
	return replies(t, &r, 1) == 0 ? r : NULL;
}

/* Ask the server who it is (t->ident); -1 after marking failed. */
static int read_identity(struct tconn *t, char ident[CACHE_IDENT_LEN])
{
	redisReply *r[2];
	int rc;

	redisAppendCommand(t->rc, "INFO server");
	redisAppendCommand(t->rc, "INFO replication");
	if (replies(t, r, 2) != 0)
		return -1;
	rc = r[0]->type == REDIS_REPLY_STRING && r[1]->type == REDIS_REPLY_STRING
		? cache_identity_parse(r[0]->str, r[1]->str, ident) : -1;
	freeReplyObject(r[0]);
	freeReplyObject(r[1]);
	if (rc != 0)
		mark_failed(t, "not a writable master (INFO: no run_id, no master_replid, or role is not master)");
	return rc;
}

/* SCRIPT LOAD script into sha (41 bytes); -1 after marking failed. */
static int load_script(struct tconn *t, const char *script, char sha[41])
{
	redisReply *r = command(t, "SCRIPT LOAD %s", script);

	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_STRING || r->len != 40) {
		freeReplyObject(r);
		mark_failed(t, "SCRIPT LOAD did not answer a SHA1");
		return -1;
	}
	memcpy(sha, r->str, 41);
	freeReplyObject(r);
	return 0;
}

static int connect_thread(struct tconn *t)
{
	struct timeval tv = { cfg->cache_timeout_ms / 1000, (cfg->cache_timeout_ms % 1000) * 1000 };
	redisReply *r;

	t->rc = redisConnectWithTimeout(cfg->redis.host, cfg->redis.port, tv);
	if (t->rc == NULL || t->rc->err) {
		mark_failed(t, t->rc ? t->rc->errstr : "out of memory");
		return -1;
	}
	redisSetTimeout(t->rc, tv);
	if (cfg->redis.password) {
		r = cfg->redis.username
			? command(t, "AUTH %s %s", cfg->redis.username, cfg->redis.password)
			: command(t, "AUTH %s", cfg->redis.password);
		if (r == NULL)
			return -1;
		freeReplyObject(r);
	}
	if (cfg->redis.db) {
		if ((r = command(t, "SELECT %d", cfg->redis.db)) == NULL)
			return -1;
		freeReplyObject(r);
	}
	/* A name per process: operators (and the fault tests) can tell them apart. */
	if ((r = command(t, "CLIENT SETNAME paintstudio-%d", (int)getpid())) == NULL)
		return -1;
	freeReplyObject(r);
	if (load_script(t, store_script, t->store_sha) != 0 ||
	    load_script(t, page_script, t->page_sha) != 0)
		return -1;
	if (read_identity(t, t->ident) != 0)
		return -1;
	cache_key_prefix(t->ident, t->prefix);
	t->conn_no++;
	t->seen_seq = 0;	/* compare with the trusted identity on first use */
	return 0;
}

/* Whether t's server is the one this process's trust was granted for. */
static int conn_matches_trust(struct tconn *t)
{
	if (t->seen_seq != atomic_load(&ident_seq)) {
		pthread_mutex_lock(&state_mu);
		t->matches = strcmp(t->ident, trusted_ident) == 0;
		t->seen_seq = atomic_load(&ident_seq);
		pthread_mutex_unlock(&state_mu);
	}
	return t->matches;
}

/*
 * This thread's usable connection, or NULL to bypass Redis (disabled,
 * backing off, failed to connect, or, with need_trust, not trusted now or
 * connected to another server than the trusted one).
 */
static struct tconn *get_conn(int need_trust)
{
	struct tconn *t;
	long long until, now = 0;

	if (cfg == NULL || cfg->redis.host == NULL)
		return NULL;
	until = atomic_load(&down_until_ms);
	if (until && (now = now_ms()) < until)
		return NULL;
	if (need_trust) {
		if (now == 0)
			now = now_ms();
		if (now >= atomic_load(&trusted_until_ms))
			return NULL;
	}
	t = pthread_getspecific(conn_key);
	if (t == NULL) {
		t = xcalloc(1, sizeof(*t));
		pthread_setspecific(conn_key, t);
	}
	if (t->rc == NULL && connect_thread(t) != 0)
		return NULL;
	if (need_trust && !conn_matches_trust(t)) {
		/* Opened to a server we no longer trust: open a new one next time. */
		redisFree(t->rc);
		t->rc = NULL;
		return NULL;
	}
	return t;
}

static void paint_keys(const struct tconn *t, int64_t id, char key[128], char lease[128])
{
	snprintf(key, 128, "%spaint:%lld", t->prefix, (long long)id);
	snprintf(lease, 128, "%slease:paint:%lld", t->prefix, (long long)id);
}

/* ---- paints ----------------------------------------------------------------- */

enum cache_result cache_paint_get(int64_t id, struct strbuf *value, char lease[CACHE_LEASE_TOKEN])
{
	struct tconn *t = get_conn(1);
	char key[128], lkey[128];
	unsigned char raw[16];
	redisReply *r;
	int i;

	lease[0] = '\0';
	if (t == NULL) {
		atomic_fetch_add(&n_bypasses, 1);
		return CACHE_BYPASS;
	}
	paint_keys(t, id, key, lkey);
	if ((r = command(t, "GET %s", key)) == NULL)
		goto bypass;
	if (r->type == REDIS_REPLY_STRING) {
		strbuf_append(value, r->str, r->len);
		freeReplyObject(r);
		atomic_fetch_add(&n_hits, 1);
		return CACHE_HIT;
	}
	freeReplyObject(r);
	atomic_fetch_add(&n_misses, 1);
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(lease, CACHE_LEASE_TOKEN, raw, sizeof(raw));
	/* With replicas, the last invalidation's position is read after the lease: piece R. */
	redisAppendCommand(t->rc, "SET %s %s NX PX %d", lkey, lease, LEASE_MS);
	if (wal_on)
		redisAppendCommand(t->rc, "ZSCORE %swal w", t->prefix);
	{
		redisReply *rr[2];

		if (replies(t, rr, wal_on ? 2 : 1) != 0)
			goto bypass;
		r = rr[0];
		if (r->type == REDIS_REPLY_STATUS) {	/* "OK": the lease is ours */
			fill_lsn = wal_reply(wal_on ? rr[1] : NULL);
			freeReplyObject(r);
			if (wal_on)
				freeReplyObject(rr[1]);
			return CACHE_MISS;
		}
		if (wal_on)
			freeReplyObject(rr[1]);
	}
	freeReplyObject(r);
	lease[0] = '\0';
	/* Someone else is reading the database for this key: wait a little. */
	atomic_fetch_add(&n_lease_waits, 1);
	for (i = 0; i < LEASE_WAIT_STEPS; i++) {
		sleep_ms(LEASE_WAIT_STEP_MS);
		/* The wait may outlive the trust: check it again. */
		if ((t = get_conn(1)) == NULL || (r = command(t, "GET %s", key)) == NULL)
			goto bypass;
		if (r->type == REDIS_REPLY_STRING) {
			strbuf_append(value, r->str, r->len);
			freeReplyObject(r);
			atomic_fetch_add(&n_lease_wait_hits, 1);
			return CACHE_HIT;
		}
		freeReplyObject(r);
	}
	return CACHE_MISS;
bypass:
	lease[0] = '\0';
	atomic_fetch_add(&n_bypasses, 1);
	return CACHE_BYPASS;
}

int cache_paint_store(int64_t id, const char *lease, const char *value, size_t len)
{
	struct tconn *t;
	char key[128], lkey[128], ttl[16];
	redisReply *r;
	int stored;

	if (lease == NULL || lease[0] == '\0' || !store_allowed() || (t = get_conn(1)) == NULL)
		return 0;
	paint_keys(t, id, key, lkey);
	snprintf(ttl, sizeof(ttl), "%d", len == 1 && value[0] == '-' ? NEGATIVE_TTL : cfg->cache_ttl);
	r = command(t, "EVALSHA %s 2 %s %s %s %b %s", t->store_sha, key, lkey, lease, value, len, ttl);
	if (r == NULL)
		return 0;
	stored = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	atomic_fetch_add(stored ? &n_stores : &n_refused, 1);
	return stored;
}

/*
 * Apply an invalidation on t (its key space). With replicas, lsn (the
 * primary's position after the writes committed) is recorded first, in
 * the same pipeline, so a lease or generation read after any of the
 * deletions also reads a position covering them (piece R). 0 when every
 * reply was good.
 */
static int invalidate_on(struct tconn *t, const int64_t *ids, int n, uint64_t lsn)
{
	redisReply *r[DRAIN_BATCH + 2];
	int i, extra = 0;

	assert(n >= 0 && n <= DRAIN_BATCH);
	if (wal_on && lsn) {
		redisAppendCommand(t->rc, "ZADD %swal GT %llu w", t->prefix, (unsigned long long)lsn);
		extra = 1;
	}
	for (i = 0; i < n; i++) {
		char key[128], lkey[128];

		paint_keys(t, ids[i], key, lkey);
		redisAppendCommand(t->rc, "DEL %s %s", key, lkey);
	}
	redisAppendCommand(t->rc, "INCR %sgen", t->prefix);
	if (replies(t, r, n + 1 + extra) != 0)
		return -1;
	for (i = 0; i <= n + extra; i++)
		freeReplyObject(r[i]);
	atomic_fetch_add(&n_invalidations, (unsigned long long)n);
	return 0;
}

int cache_invalidate(const int64_t *ids, int n)
{
	struct tconn *t = get_conn(0);

	/* No position known here: a write path with replicas uses cache_after_write. */
	return t && !wal_on ? invalidate_on(t, ids, n, 0) : -1;
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
 * gen is "<generation>.<connection>": a page is stored only through the
 * connection its generation was read on, so never into another key space
 * (the thread may reconnect in between, even to another server).
 */
enum cache_result cache_page_get(const char *kind, const char *query, struct strbuf *value,
				 char gen[24])
{
	struct tconn *t = get_conn(1);
	char prefix[96], hash[33];
	redisReply *r;
	enum cache_result res = CACHE_MISS;

	gen[0] = '\0';
	if (t == NULL) {
		atomic_fetch_add(&n_bypasses, 1);
		return CACHE_BYPASS;
	}
	snprintf(prefix, sizeof(prefix), "%s%s:", t->prefix, kind);
	query_hash(query, hash);
	r = command(t, "EVALSHA %s 2 %sgen %swal %s %s", t->page_sha, t->prefix, t->prefix, prefix, hash);
	if (r == NULL) {
		atomic_fetch_add(&n_bypasses, 1);
		return CACHE_BYPASS;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len <= 14) {
		snprintf(gen, 24, "%.*s.%x", (int)r->element[0]->len, r->element[0]->str,
			 t->conn_no);
		if (r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
			strbuf_append(value, r->element[2]->str, r->element[2]->len);
			res = CACHE_HIT;
		} else if (r->elements >= 2) {
			fill_lsn = wal_reply(r->element[1]);
		} else {
			fill_lsn = UINT64_MAX;
		}
	} else {
		atomic_fetch_add(&n_errors, 1);
		res = CACHE_BYPASS;
	}
	freeReplyObject(r);
	atomic_fetch_add(res == CACHE_HIT ? &n_hits : res == CACHE_MISS ? &n_misses : &n_bypasses, 1);
	return res;
}

void cache_page_store(const char *kind, const char *query, const char *gen,
		      const char *value, size_t len)
{
	struct tconn *t;
	char hash[33], key[192];
	const char *dot;
	redisReply *r;

	if (!store_allowed() || gen == NULL || (dot = strrchr(gen, '.')) == NULL || dot == gen ||
	    (t = get_conn(1)) == NULL || strtoul(dot + 1, NULL, 16) != t->conn_no)
		return;
	query_hash(query, hash);
	/*
	 * The generation was read before the database, on this very
	 * connection: a write since bumped it.
	 */
	snprintf(key, sizeof(key), "%s%s:%.*s:%s", t->prefix, kind, (int)(dot - gen), gen, hash);
	r = command(t, "SET %s %b EX %d", key, value, len, PAGE_TTL);
	if (r) {
		atomic_fetch_add(&n_stores, 1);
		freeReplyObject(r);
	}
}

/* ---- drains (piece T) -------------------------------------------------------- */

/*
 * Check t's server: still the identity t connected to, a master, and it
 * accepts a write (INCRBY 0 fails under READONLY, OOM, MISCONF, a paused
 * or sleeping server). -1 after marking failed.
 */
static int probe(struct tconn *t)
{
	redisReply *r[3];
	char ident[CACHE_IDENT_LEN];
	int rc = 0;

	redisAppendCommand(t->rc, "INFO server");
	redisAppendCommand(t->rc, "INFO replication");
	redisAppendCommand(t->rc, "INCRBY %sgen 0", t->prefix);
	if (replies(t, r, 3) != 0)
		return -1;
	if (r[0]->type != REDIS_REPLY_STRING || r[1]->type != REDIS_REPLY_STRING ||
	    cache_identity_parse(r[0]->str, r[1]->str, ident) != 0 || strcmp(ident, t->ident) != 0)
		rc = -1;
	freeReplyObject(r[0]);
	freeReplyObject(r[1]);
	freeReplyObject(r[2]);
	if (rc != 0)
		mark_failed(t, "Redis is no longer the master it was when connected");
	return rc;
}

/* Run a statement with text parameters; 0 if it reached want. */
static int pg_ok(PGconn *pg, const char *sql, int n, const char *const *params,
		 ExecStatusType want, PGresult **out)
{
	PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
	int ok = PQresultStatus(r) == want;

	if (!ok) {
		log_msg(LOG_WARN, "cache: PostgreSQL: %s", PQresultErrorMessage(r));
		PQclear(r);
		r = NULL;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return ok ? 0 : -1;
}

/*
 * One drain on pg (autocommit, idle) and this thread's Redis connection.
 * Returns 0 and *applied rows when trust was granted; -1 when Redis or
 * PostgreSQL failed (then trust is not granted; Redis failures withdraw
 * it).
 */
static int drain_on(PGconn *pg, int *applied)
{
	struct tconn *t;
	unsigned long long target;
	long long t0;
	char ident[CACHE_IDENT_LEN], ttl[16];
	int total = 0;

	*applied = 0;
	atomic_fetch_add(&n_drains, 1);
	/* First a check, so that a failing Redis is not announced as trusted. */
	if ((t = get_conn(0)) == NULL || probe(t) != 0)
		return -1;
	memcpy(ident, t->ident, sizeof(ident));
	target = atomic_load(&error_seq);
	t0 = now_ms();
	/* Announce (and commit) before the outbox snapshot: piece T. */
	snprintf(ttl, sizeof(ttl), "%d", CACHE_TRUST_MS + CLAIM_MARGIN_MS);
	{
		const char *params[3] = { holder, ident, ttl };

		if (pg_ok(pg, "INSERT INTO cache_leases (holder, redis, until) "
			  "VALUES ($1, $2, clock_timestamp() + $3::int * interval '1 millisecond') "
			  "ON CONFLICT (holder) DO UPDATE SET redis = EXCLUDED.redis, until = EXCLUDED.until",
			  3, params, PGRES_COMMAND_OK, NULL) != 0)
			return -1;
	}
	for (;;) {
		PGresult *r;
		int64_t ids[DRAIN_BATCH];
		struct strbuf list;
		int n, i, deleted;

		uint64_t lsn = 0;

		/* The position is read after the snapshot: it covers every row's commit (piece R). */
		if (pg_ok(pg, "SELECT id, paint_id, pg_current_wal_lsn() FROM cache_outbox ORDER BY id LIMIT 500",
			  0, NULL, PGRES_TUPLES_OK, &r) != 0)
			return -1;
		n = PQntuples(r);
		if (n > 0 && wal_on && replicas_lsn_parse(PQgetvalue(r, 0, 2), &lsn) != 0) {
			PQclear(r);
			return -1;
		}
		strbuf_init(&list);
		strbuf_putc(&list, '{');
		for (i = 0; i < n; i++) {
			ids[i] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
			strbuf_printf(&list, "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
		}
		strbuf_putc(&list, '}');
		PQclear(r);
		/* Applied first, deleted after: a failure in between repeats, never loses. */
		if ((t = get_conn(0)) == NULL || strcmp(t->ident, ident) != 0 ||
		    (n > 0 && invalidate_on(t, ids, n, lsn) != 0) || probe(t) != 0) {
			strbuf_free(&list);
			return -1;
		}
		if (n == 0) {
			strbuf_free(&list);
			break;
		}
		{
			const char *params[2] = { list.buf, ident };

			r = NULL;
			if (pg_ok(pg, "DELETE FROM cache_outbox WHERE id = ANY($1::int8[]) AND NOT EXISTS "
				  "(SELECT 1 FROM cache_leases WHERE until > clock_timestamp() AND redis <> $2)",
				  2, params, PGRES_COMMAND_OK, &r) != 0) {
				strbuf_free(&list);
				return -1;
			}
			deleted = atoi(PQcmdTuples(r));
			PQclear(r);
		}
		strbuf_free(&list);
		total += n;
		if (n < DRAIN_BATCH)
			break;	/* this snapshot held every pending row: all applied */
		/*
		 * A full batch the guard kept (another key space is announced):
		 * the rows after it were never read, so no trust from this drain.
		 */
		if (deleted < n)
			return -1;
	}
	*applied = total;
	atomic_fetch_add(&n_drained, (unsigned long long)total);
	pthread_mutex_lock(&state_mu);
	/* A failure since t0 leaves error_seq ahead: no trust from this drain. */
	if (atomic_load(&error_seq) == target) {
		if (strcmp(trusted_ident, ident) != 0) {
			memcpy(trusted_ident, ident, sizeof(ident));
			atomic_fetch_add(&ident_seq, 1);
		}
		if (atomic_load(&trusted_until_ms) < t0 + CACHE_TRUST_MS)
			atomic_store(&trusted_until_ms, t0 + CACHE_TRUST_MS);
	}
	pthread_mutex_unlock(&state_mu);
	return 0;
}

int cache_drain(struct pool *p)
{
	struct pool_conn *c;
	struct pool_error err;
	int applied, rc;

	if (p == NULL)
		p = drain_pool;
	if (p == NULL || cfg == NULL || cfg->redis.host == NULL)
		return -1;
	if (pool_checkout(p, 1.0, "cache.drain", &c, &err) != 0)
		return -1;
	rc = drain_on(pool_conn_pg(c), &applied);
	pool_release(p, c);
	return rc == 0 ? applied : -1;
}

/* ---- the writer's acknowledgement (piece A) ------------------------------ */

void cache_after_write(PGconn *pg, int64_t paint_id, const char *outbox_id)
{
	long long w = now_ms(), deadline, waited;
	struct tconn *t = get_conn(0);
	char applied[CACHE_IDENT_LEN] = "";
	const char *params[2] = { outbox_id, applied };
	PGresult *r;
	int done = 0;
	uint64_t lsn = wal_on ? primary_position(pg) : 0;

	/* With replicas and no position, leave the row to a drainer (it reads one). */
	if (t && (!wal_on || lsn) && invalidate_on(t, &paint_id, 1, lsn) == 0) {
		memcpy(applied, t->ident, sizeof(applied));
		r = PQexecPrepared(pg, "outbox_done", 2, params, NULL, NULL, 0);
		done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
		PQclear(r);
		if (done)
			return;	/* the normal path */
	}
	/* Not applied (Redis failed, or the cache is off here): the row stays. */

	/* A fault: let the other processes drain it now, then wait for a way out. */
	atomic_fetch_add(&n_ack_waits, 1);
	PQclear(PQexec(pg, "NOTIFY " NOTIFY_CHANNEL));
	deadline = w + CACHE_TRUST_MS + CACHE_TRUST_MS * ACK_DRIFT_PPM / 1000000 + ACK_MARGIN_MS;
	while (now_ms() < deadline) {
		const char *p1[1] = { outbox_id };
		int pending, running;

		if (applied[0]) {	/* ours landed: done once no other key space is announced */
			r = PQexecPrepared(pg, "outbox_done", 2, params, NULL, NULL, 0);
			done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
			PQclear(r);
			if (done)
				break;
		}
		r = PQexecParams(pg, "SELECT EXISTS (SELECT 1 FROM cache_outbox WHERE id = $1), "
				 "EXISTS (SELECT 1 FROM cache_leases WHERE until > clock_timestamp())",
				 1, NULL, p1, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			/* PostgreSQL failed: only the clock can tell now. */
			PQclear(r);
			while (now_ms() < deadline)
				sleep_ms(ACK_POLL_MS);
			break;
		}
		pending = PQgetvalue(r, 0, 0)[0] == 't';
		running = PQgetvalue(r, 0, 1)[0] == 't';
		PQclear(r);
		if (!pending || !running)
			break;
		sleep_ms(ACK_POLL_MS);
	}
	waited = now_ms() - w;
	atomic_fetch_add(&n_ack_wait_ms, (unsigned long long)(waited > 0 ? waited : 0));
}

/* ---- the drainer thread ------------------------------------------------------- */

static PGconn *drainer_connect(void)
{
	struct pool_error err;
	PGconn *pg = pool_connect(&drainer_settings, 2.0, &err);
	PGresult *r;

	if (pg == NULL)
		return NULL;
	r = PQexec(pg, "LISTEN " NOTIFY_CHANNEL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		PQfinish(pg);
		return NULL;
	}
	PQclear(r);
	return pg;
}

/* Sleep up to ms, waking early on a notice or cache_stop. 1 when stopping. */
static int drainer_wait(PGconn *pg, int ms)
{
	struct pollfd fds[2];
	int n = 1;
	PGnotify *note;

	memset(fds, 0, sizeof(fds));
	fds[0].fd = stop_pipe[0];
	fds[0].events = POLLIN;
	if (pg && PQsocket(pg) >= 0) {
		fds[1].fd = PQsocket(pg);
		fds[1].events = POLLIN;
		n = 2;
	}
	if (poll(fds, (nfds_t)n, ms) < 0 && errno != EINTR)
		sleep_ms(ms);
	if (fds[0].revents)
		return 1;
	if (n == 2 && fds[1].revents) {
		PQconsumeInput(pg);
		while ((note = PQnotifies(pg)) != NULL)
			PQfreemem(note);
	}
	return 0;
}

static void *drainer_main(void *arg)
{
	PGconn *pg = NULL;
	long long last_prune = 0;
	int applied;

	(void)arg;
	for (;;) {
		int pause = CACHE_DRAIN_EVERY_MS;

		if (pg == NULL && (pg = drainer_connect()) == NULL)
			pause = 1000;
		if (pg) {
			drain_on(pg, &applied);
			if (now_ms() - last_prune > 60000) {	/* leases of processes long gone */
				PQclear(PQexec(pg, "DELETE FROM cache_leases WHERE until < now() - interval '1 hour'"));
				last_prune = now_ms();
			}
			if (PQstatus(pg) != CONNECTION_OK) {
				PQfinish(pg);
				pg = NULL;
				pause = 0;
			}
		}
		if (drainer_wait(pg, pause))
			break;
	}
	atomic_store(&trusted_until_ms, 0);
	if (pg) {
		const char *params[1] = { holder };

		pg_ok(pg, "DELETE FROM cache_leases WHERE holder = $1", 1, params, PGRES_COMMAND_OK, NULL);
		PQfinish(pg);
	}
	return NULL;
}

void cache_start(const struct pool_settings *ps)
{
	if (cfg == NULL || cfg->redis.host == NULL || drainer_running)
		return;
	drainer_settings = *ps;
	snprintf(drainer_app_name, sizeof(drainer_app_name), "%s cache",
		 ps->application_name ? ps->application_name : "paint_studio");
	drainer_settings.application_name = drainer_app_name;
	drainer_settings.statement_timeout_ms = DRAIN_STATEMENT_MS;
	drainer_settings.stmts = NULL;
	drainer_settings.nstmts = 0;
	if (pipe(stop_pipe) != 0)
		die("cache: pipe failed: %s", strerror(errno));
	/*
	 * The thread inherits a mask blocking the signals the main thread
	 * sigwaits for (it may start before server_run blocks them), and
	 * SIGPIPE (before server_run ignores it, a write to a closed Redis
	 * socket must fail with EPIPE, not end the process).
	 */
	{
		sigset_t block, old;

		sigemptyset(&block);
		sigaddset(&block, SIGTERM);
		sigaddset(&block, SIGINT);
		sigaddset(&block, SIGHUP);
		sigaddset(&block, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &block, &old);
		if (pthread_create(&drainer, NULL, drainer_main, NULL) != 0)
			die("cache: cannot start the drainer thread");
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	drainer_running = 1;
}

void cache_stop(void)
{
	if (!drainer_running)
		return;
	if (write(stop_pipe[1], "x", 1) != 1)
		log_msg(LOG_WARN, "cache: cannot wake the drainer");
	pthread_join(drainer, NULL);
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	stop_pipe[0] = stop_pipe[1] = -1;
	drainer_running = 0;
}

void cache_get_stats(struct cache_stats *st)
{
	long long until = atomic_load(&down_until_ms), now = now_ms();

	memset(st, 0, sizeof(*st));
	st->enabled = cfg && cfg->redis.host;
	st->hits = atomic_load(&n_hits);
	st->misses = atomic_load(&n_misses);
	st->bypasses = atomic_load(&n_bypasses);
	st->stores = atomic_load(&n_stores);
	st->stores_refused = atomic_load(&n_refused);
	st->lease_waits = atomic_load(&n_lease_waits);
	st->lease_wait_hits = atomic_load(&n_lease_wait_hits);
	st->invalidations = atomic_load(&n_invalidations);
	st->errors = atomic_load(&n_errors);
	st->drained = atomic_load(&n_drained);
	st->drains = atomic_load(&n_drains);
	st->ack_waits = atomic_load(&n_ack_waits);
	st->ack_wait_ms = atomic_load(&n_ack_wait_ms);
	st->up = st->enabled && !(until && now < until) && now < atomic_load(&trusted_until_ms);
}
