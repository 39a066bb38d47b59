/*
 * context: one request from accept to answer. ctx_handle parses, routes,
 * admits and runs the handler; handlers reach the database only through
 * ctx_db and ctx_exec_dynamic. The connection goes back to the pool before
 * the answer is written, and release_all frees whatever else the request
 * still holds, so a handler that returns early leaks nothing.
 */
#define _GNU_SOURCE
#include "http/context.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/strbuf.h"
#include "base/util.h"
#include "base/workers.h"
#include "cache/cache.h"
#include "db/replicas.h"
#include "http/fcgi_reply.h"
#include "obs/metrics.h"
#include "obs/slowlog.h"

static int read_body(struct ctx *c, FCGX_Request *r);
static void set_request_id(struct ctx *c);
static void log_request(const struct ctx *c, double total);
static void release_all(struct ctx *c);
static struct pool_conn *replica_checkout(struct ctx *c, double timeout);
static void note_write_position(struct ctx *c);
static void set_lsn_cookie(struct ctx *c);
static void final_headers(struct ctx *c);
static int stream_send(struct ctx *c);
static void stream_end(struct ctx *c);
static void log_db_fault(const struct ctx *c, enum log_level level, const char *what,
			 const char *state, const PGresult *r);

/* Seconds a client should wait before retrying after an overload 503. */
#define RETRY_AFTER 1
/* Longest wait for a replica's connection before the primary is asked instead. */
#define REPLICA_CHECKOUT_S 0.5

static void set_request_id(struct ctx *c)
{
	const char *given = http_param(&c->req, "REQUEST_ID");
	unsigned char raw[16];

	if (given && *given && strlen(given) < sizeof(c->request_id) &&
	    strspn(given, "0123456789abcdefABCDEF-") == strlen(given)) {
		strcpy(c->request_id, given);
		return;
	}
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(c->request_id, sizeof(c->request_id), raw, sizeof(raw));
}

/*
 * The request's Content-Length into *len (0 when absent), at most max
 * bytes: 0, or -1 with the 400 or 413 set.
 */
static int content_length(struct ctx *c, size_t max, int64_t *len)
{
	const char *cl = http_param(&c->req, "CONTENT_LENGTH");

	*len = 0;
	if (cl == NULL || *cl == '\0')
		return 0;
	if (parse_int64(cl, 0, INT64_MAX, len) != 0) {
		http_problem(&c->resp, 400, "Content-Length is not a number", NULL);
		return -1;
	}
	if ((uint64_t)*len > max) {
		char detail[96];

		snprintf(detail, sizeof(detail), "the body is larger than %zu bytes", max);
		http_problem(&c->resp, 413, detail, NULL);
		return -1;
	}
	return 0;
}

/*
 * Read exactly CONTENT_LENGTH bytes, within the configured bound; for a
 * route that streams its body, only check the length against the route's
 * bound and leave the bytes to ctx_body_read.
 */
static int read_body(struct ctx *c, FCGX_Request *r)
{
	size_t stream = c->match.route->body_stream;
	int64_t len;
	size_t got = 0;

	if (content_length(c, stream ? stream : c->app->cfg->max_body, &len) != 0)
		return -1;
	if (stream || len == 0) {
		c->body_left = (size_t)len;
		return 0;
	}
	c->req.body = xmalloc((size_t)len + 1);
	while (got < (size_t)len) {
		int n = FCGX_GetStr(c->req.body + got, (int)((size_t)len - got), r->in);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	c->req.body[got] = '\0';
	c->req.body_len = got;
	if (got != (size_t)len) {
		http_problem(&c->resp, 400, "the body ended before Content-Length bytes", NULL);
		return -1;
	}
	return 0;
}

long ctx_body_read(struct ctx *c, char *buf, size_t cap)
{
	int want = (int)(c->body_left < cap ? c->body_left : cap);
	int n;

	if (c->body_left == 0 || cap == 0)
		return 0;
	if (want > (1 << 20))
		want = 1 << 20;
	n = FCGX_GetStr(buf, want, c->fcgi->in);
	if (n <= 0) {
		c->body_left = 0;
		http_problem(&c->resp, 400, "the body ended before Content-Length bytes", NULL);
		return -1;
	}
	c->body_left -= (size_t)n;
	return n;
}

int ctx_body_read_all(struct ctx *c)
{
	size_t len = c->body_left, got = 0;
	long n;

	if (c->req.body != NULL)
		return 0;
	/* The length was held to the route's body_stream before the handler ran. */
	c->req.body = xmalloc(len + 1);
	while (got < len && (n = ctx_body_read(c, c->req.body + got, len - got)) > 0)
		got += (size_t)n;
	c->req.body[got] = '\0';
	c->req.body_len = got;
	return got == len ? 0 : -1;
}

/*
 * What a streaming handler left unread, read and dropped (bounded by the
 * route's Content-Length limit), so that the kept connection's next
 * request starts where it should.
 */
static void body_discard(struct ctx *c)
{
	char buf[16384];

	while (c->body_left > 0) {
		int n = FCGX_GetStr(buf, (int)(c->body_left < sizeof(buf) ? c->body_left : sizeof(buf)),
				    c->fcgi->in);

		if (n <= 0)
			break;
		c->body_left -= (size_t)n;
	}
	c->body_left = 0;
}

/* The session's last write position, from its cookie (0: none or not this session's). */
static uint64_t session_lsn(struct ctx *c)
{
	char value[REPLICAS_COOKIE_LEN + 8];

	if (!c->session_lsn_read) {
		c->session_lsn_read = 1;
		c->session_lsn = 0;
		if (c->user_id != 0 &&
		    http_cookie_get(http_param(&c->req, "HTTP_COOKIE"), REPLICAS_COOKIE, value,
				    sizeof(value)) == 0 &&
		    replicas_cookie_read(c->session_token, value, &c->session_lsn) != 0)
			c->session_lsn = 0;
	}
	return c->session_lsn;
}

/*
 * A connection of replica idx (pool p) within timeout (at most
 * REPLICA_CHECKOUT_S), or NULL. Busy (every connection taken: a
 * timeout) is no failure. A new connection slower to open than the read
 * waits is taken for one: a standby whose peer vanished (a killed
 * container) is reached by no packet, and the sampler may be stuck on it.
 * A refused one too, unless refused_ok: a promoted standby refuses new
 * connections as a replica, while those it has go on serving.
 */
static struct pool_conn *replica_conn(struct ctx *c, struct pool *p, int idx, double timeout,
				      int refused_ok)
{
	struct pool_conn *conn = NULL;
	struct pool_error err;
	double t0 = now_mono();

	if (timeout <= 0 || timeout > REPLICA_CHECKOUT_S)
		timeout = REPLICA_CHECKOUT_S;
	if (pool_checkout(p, timeout, c->route_name, &conn, &err) != 0) {
		c->pool_wait += now_mono() - t0;
		if (err.kind == POOL_ERR_CONNECT && (err.cut_short || !refused_ok))
			replicas_failed(idx, err.cut_short ? "slower to connect than a read waits"
							   : err.msg);
		return NULL;
	}
	c->pool_wait += now_mono() - t0;
	metrics_pool_wait(now_mono() - t0, 0);
	return conn;
}

/* The request's database is replica idx's connection conn (pool p); replayed: what it covers. */
static struct pool_conn *use_replica(struct ctx *c, struct pool *p, int idx, struct pool_conn *conn,
				     uint64_t replayed)
{
	c->db_pool = p;
	c->db_replica = idx;
	c->db_name = replicas_name(idx);
	if (c->admitted)
		cache_note_replica_read(replayed);
	replicas_served(idx);
	return conn;
}

/*
 * A replica's connection when this read may go to one (see ctx_db), or
 * NULL: then the primary. Never sets a response.
 */
static struct pool_conn *replica_checkout(struct ctx *c, double timeout)
{
	const struct route *rt = c->match.route;
	struct pool_conn *conn;
	struct pool *p;
	int idx;
	uint64_t need;

	if (replicas_count() == 0 || rt == NULL || !rt->read_only || rt->auth == AUTH_NONE ||
	    !c->admitted || c->no_replica)
		return NULL;
	/* The session's last write, and what a cache fill needs (cache.h). */
	need = session_lsn(c);
	if (cache_fill_position() > need)
		need = cache_fill_position();
	if (need == UINT64_MAX || (p = replicas_choose(need, &idx)) == NULL ||
	    (conn = replica_conn(c, p, idx, timeout, 0)) == NULL)
		return NULL;
	return use_replica(c, p, idx, conn, need);
}

/*
 * While the primary cannot be reached: a synchronous standby's connection
 * (DB_REPLICAS_SYNCHRONOUS: every replica is one) that has replayed all it
 * received, for the session look-up (the admission step) or a route that
 * only reads; NULL otherwise. Every write answered before the loss, a
 * revocation included, was flushed on every synchronous standby before
 * its answer (and a revocation is answered only SESSION_CACHE_SECONDS
 * after its commit, sessions.c), so a read that begins afterwards, on a
 * standby that has replayed what it flushed, sees it: no ended session
 * comes back and no paint goes back a version, and signed-in reads go on
 * through a failover. Such a read knows no position a cache store needs,
 * so what it reads is not stored (it covers position 0).
 */
static struct pool_conn *standby_fallback(struct ctx *c)
{
	const struct route *rt = c->match.route;
	struct pool_conn *conn;
	struct pool *p;
	PGresult *r;
	int idx, ok;

	if (!c->app->cfg->replicas_synchronous ||
	    (c->admitted && (rt == NULL || !rt->read_only || rt->auth == AUTH_NONE || c->no_replica)) ||
	    (p = replicas_choose(0, &idx)) == NULL || (conn = replica_conn(c, p, idx, 0, 1)) == NULL)
		return NULL;
	r = PQexec(pool_conn_pg(conn), "SELECT pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()");
	ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	     strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!ok) {
		pool_release(p, conn);
		return NULL;
	}
	return use_replica(c, p, idx, conn, 0);
}

/* The request's class at the gate (admission.h). */
static enum admission_class db_class(const struct ctx *c)
{
	const char *purpose;

	if (!c->admitted)
		return ADMISSION_SESSION;	/* the admission step: every request of the session waits on it */
	purpose = http_param(&c->req, "HTTP_X_REQUEST_PURPOSE");
	return purpose && strcasecmp(purpose, "background") == 0 ? ADMISSION_BACKGROUND
								 : ADMISSION_PERSON;
}

/* The gate turned the request away: 503 with Retry-After (the database is saturated, not down). */
static void shed_answer(struct ctx *c, enum admission_shed why)
{
	c->shed = admission_shed_name(why);
	http_resp_reset(&c->resp);
	http_resp_header(&c->resp, "Retry-After", "%d", RETRY_AFTER);
	http_problem(&c->resp, 503,
		     why == ADMISSION_SHED_CLOSED ? "the service is shutting down"
		     : "the service is busy: the database is saturated; try again shortly", NULL);
}

/*
 * Whether the request may wait for its place without its thread: a
 * person's read (a GET of a read-only route, past the admission step,
 * holding nothing yet), whose handler has done nothing the run again from
 * its start (ctx_resume) would repeat wrongly; parked once at most.
 */
static int parkable(const struct ctx *c, enum admission_class cls)
{
	return c->parking != NULL && !c->resumed && cls == ADMISSION_PERSON && c->admitted &&
	       c->match.route != NULL && c->match.route->read_only && c->db == NULL &&
	       (strcmp(c->req.method, "GET") == 0 || strcmp(c->req.method, "HEAD") == 0);
}

/* The gate gave the parked request its place, or turned it away: the server goes on with it. */
static void parked_done(void *arg)
{
	struct ctx *c = arg;

	c->parking->resume(c->parking->job);
}

/*
 * Take the request's place at the gate and lend the thread's. 0; or -1
 * with the 503 set, or with nothing set and c->parked (the request waits
 * for its place without this thread: the handler returns and the server
 * runs it again later).
 */
static int db_admit(struct ctx *c)
{
	enum admission_class cls;
	enum admission_shed why;
	double waited;
	int rc;

	if (c->app->gate && !c->ticket.taken) {
		cls = db_class(c);
		if (parkable(c, cls)) {
			c->wait.done = parked_done;
			c->wait.arg = c;
			rc = admission_enter_async(c->app->gate, cls, &c->ticket, &c->wait, &why, &waited);
		} else {
			rc = admission_enter(c->app->gate, cls, &c->ticket, &why, &waited);
		}
		c->queue_wait += waited;
		if (rc == 1) {
			c->parked = 1;
			return -1;
		}
		if (rc != 0) {
			shed_answer(c, why);
			return -1;
		}
	}
	if (!c->db_lending) {
		workers_block_begin();
		c->db_lending = 1;
	}
	return 0;
}

/* Give the gate its place back and take the thread's place again. */
static void db_leave(struct ctx *c)
{
	if (c->app->gate)
		admission_leave(c->app->gate, &c->ticket);
	if (c->db_lending) {
		c->db_lending = 0;
		workers_block_end();
	}
}

/* ctx_db, through the gate (admit) or around it (the probes). */
static PGconn *db_checkout(struct ctx *c, double timeout, int admit)
{
	struct pool_error err;
	double t0;

	if (c->db)
		return pool_conn_pg(c->db);
	if (admit && db_admit(c) != 0)
		return NULL;
	/*
	 * A replica that replayed what the read needs; else, while the
	 * primary cannot be reached, a synchronous standby, before another
	 * attempt at the primary (one a second still makes it: a write, or a
	 * read once the attempt before is over a second old).
	 */
	if ((c->db = replica_checkout(c, timeout)) != NULL ||
	    (c->app->cfg->replicas_synchronous && pool_unreachable(c->app->pool) &&
	     (c->db = standby_fallback(c)) != NULL)) {
		c->db_since = now_mono();
		return pool_conn_pg(c->db);
	}
	t0 = now_mono();
	if (pool_checkout(c->app->pool, timeout, c->route_name, &c->db, &err) != 0) {
		c->pool_wait += now_mono() - t0;
		metrics_pool_wait(now_mono() - t0, err.kind == POOL_ERR_TIMEOUT);
		if (err.kind == POOL_ERR_CONNECT && (c->db = standby_fallback(c)) != NULL) {
			c->db_since = now_mono();
			return pool_conn_pg(c->db);
		}
		c->db = NULL;
		db_leave(c);
		http_resp_reset(&c->resp);
		http_resp_header(&c->resp, "Retry-After", "%d", RETRY_AFTER);
		http_problem(&c->resp, 503,
			     err.kind == POOL_ERR_TIMEOUT
				     ? "the service is busy: no database connection became free in time"
				     : err.kind == POOL_ERR_CLOSED
					       ? "the service is shutting down"
					       : "the database is unavailable",
			     NULL);
		if (err.kind == POOL_ERR_TIMEOUT) {
			struct log_line l;

			log_begin(&l, LOG_WARN, "pool timeout");
			log_str(&l, "request_id", c->request_id);
			log_str(&l, "route", c->route_name);
			log_str(&l, "detail", err.msg);
			log_end(&l);
		}
		return NULL;
	}
	c->pool_wait += now_mono() - t0;
	metrics_pool_wait(now_mono() - t0, 0);
	c->db_since = now_mono();
	c->db_pool = c->app->pool;
	c->db_replica = -1;
	c->db_name = "primary";
	return pool_conn_pg(c->db);
}

PGconn *ctx_db(struct ctx *c, double timeout)
{
	return db_checkout(c, timeout, 1);
}

PGconn *ctx_db_probe(struct ctx *c, double timeout)
{
	return db_checkout(c, timeout, 0);
}

PGresult *ctx_exec_dynamic(struct ctx *c, const char *name, const char *sql, int nparams,
			   const char *const *params)
{
	if (ctx_db(c, 0) == NULL)
		return NULL;
	return pool_exec_dynamic(c->db, name, sql, nparams, params);
}

int ctx_db_exec(struct ctx *c, const char *sql)
{
	PGconn *pg = ctx_db(c, 0);
	PGresult *r;
	double t0;
	int ok;

	if (pg == NULL)
		return -1;
	t0 = now_mono();
	r = PQexec(pg, sql);
	trace_note(sql, t0, now_mono() - t0);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		ctx_db_error(c, r);
	PQclear(r);
	return ok ? 0 : -1;
}

/*
 * After a signed-in user's writes on the primary: the position a replica
 * must replay before it may serve that user (read-your-writes). Read on
 * the writing connection once it is idle, so after the commit.
 */
static void note_write_position(struct ctx *c)
{
	PGconn *pg = pool_conn_pg(c->db);
	uint64_t lsn = 0;
	PGresult *r;

	if (replicas_count() == 0 || c->db_replica >= 0 || c->user_id == 0 || !c->admitted ||
	    sodium_is_zero(c->session_token, sizeof(c->session_token)) ||
	    c->match.route == NULL || c->match.route->read_only ||
	    PQtransactionStatus(pg) != PQTRANS_IDLE)
		return;
	r = PQexec(pg, "SELECT pg_current_wal_lsn()");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
	    replicas_lsn_parse(PQgetvalue(r, 0, 0), &lsn) != 0) {
		/* Unknown: send this session's reads to the primary until its next write. */
		log_msg(LOG_WARN, "replicas: no WAL position after a write: the session reads the primary");
		lsn = UINT64_MAX;
	}
	PQclear(r);
	if (lsn > c->write_lsn)
		c->write_lsn = lsn;
}

void ctx_db_release(struct ctx *c)
{
	if (c->db) {
		note_write_position(c);
		c->db_time += now_mono() - c->db_since;
		pool_release(c->db_pool, c->db);
		c->db = NULL;
	}
	db_leave(c);	/* a place given to a parked request that then needed no connection, too */
}

/* Give the session its new position (never lower than the one it sent). */
static void set_lsn_cookie(struct ctx *c)
{
	char value[REPLICAS_COOKIE_LEN];
	uint64_t lsn = c->write_lsn;

	/* Only a session the admission step admitted (a login answers before it has one). */
	if (lsn == 0 || c->user_id == 0 || sodium_is_zero(c->session_token, sizeof(c->session_token)))
		return;
	if (session_lsn(c) > lsn)
		lsn = session_lsn(c);
	replicas_cookie_make(c->session_token, lsn, value);
	http_resp_header(&c->resp, "Set-Cookie",
			 REPLICAS_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict", value);
}

/* Log the request's database fault: its SQLSTATE and, with r, the first line of r's message. */
static void log_db_fault(const struct ctx *c, enum log_level level, const char *what,
			 const char *state, const PGresult *r)
{
	struct log_line l;
	char msg[256];

	log_begin(&l, level, what);
	log_str(&l, "request_id", c->request_id);
	log_str(&l, "route", c->route_name);
	log_str(&l, "sqlstate", state ? state : "none");
	if (r) {
		snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
		msg[strcspn(msg, "\n")] = '\0';
		log_str(&l, "error", msg);
	}
	log_end(&l);
}

void ctx_db_error(struct ctx *c, const PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	int transient, gone;

	/*
	 * The server may no longer be the one to use: the connection lost
	 * (08, or none), the server shutting down (57P01-57P03), or read-only
	 * (25006: a primary demoted in a failover).
	 */
	gone = state == NULL || PQstatus(c->db ? pool_conn_pg(c->db) : NULL) != CONNECTION_OK ||
	       strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0 ||
	       strcmp(state, "25006") == 0;
	/* And those that pass: 53 resources, 57 operator/timeout, 40 rollback. */
	transient = gone || strncmp(state, "53", 2) == 0 || strncmp(state, "57", 2) == 0 ||
		    strncmp(state, "40", 2) == 0;
	if (gone && c->db && c->db_replica < 0) {
		/*
		 * Closed when it comes back, and the pool's older connections
		 * vetted before use (pool.h). A read-only route runs once more
		 * on a fresh connection (run_handler); a write is never run
		 * again: it may have committed, and the client is told 503.
		 */
		pool_conn_discard(c->db_pool, c->db);
		if (c->stream.state == CTX_STREAM_NONE && !c->primary_retried)
			c->primary_failed = 1;
	}
	if (c->db && c->db_replica >= 0) {
		/*
		 * A replica failed a read (lost, shutting down, a recovery
		 * conflict): ctx_handle runs the handler again on the primary.
		 * A broken connection also keeps the replica out until the
		 * housekeeper reaches it again.
		 */
		if (c->stream.state == CTX_STREAM_NONE)
			c->replica_failed = 1;	/* a streamed answer's head is out: no second run */
		if (PQstatus(pool_conn_pg(c->db)) != CONNECTION_OK || state == NULL ||
		    strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
			replicas_failed(c->db_replica, state ? state : "the connection lost");
	}
	if (c->stream.state != CTX_STREAM_NONE) {
		log_db_fault(c, LOG_WARN, "database fault in a streamed answer", state, r);
		ctx_stream_cut(c, "database fault");
		return;
	}
	http_resp_reset(&c->resp);
	if (state && strcmp(state, "PSA01") == 0) {
		/* Migration 0010: the actor lost its admin rights while the write ran. */
		http_problem(&c->resp, 403,
			     "your admin rights were withdrawn: the change was not made", NULL);
	} else if (state && strcmp(state, "23503") == 0) {
		/* A foreign key: the write names what is not stored (a removed image). */
		log_db_fault(c, LOG_INFO, "write refused by a foreign key", state, r);
		http_problem(&c->resp, 422,
			     "the change refers to something that is not stored "
			     "(an image that was removed?): nothing was changed", NULL);
	} else if (transient) {
		log_db_fault(c, LOG_WARN, "database fault", state, NULL);
		http_resp_header(&c->resp, "Retry-After", "%d", RETRY_AFTER);
		http_problem(&c->resp, 503, "the database is unavailable; try again shortly", NULL);
	} else {
		log_db_fault(c, LOG_ERROR, "database error", state, r);
		http_problem(&c->resp, 500, "an internal error occurred; it has been logged", NULL);
	}
}

/* Deep enough for any paint; shallow enough that nesting cannot hurt. */
#define JSON_MAX_DEPTH 16

/* The media type of a Content-Type value equals type (case-insensitive). */
static int media_type_is(const char *ct, const char *type)
{
	size_t n = strlen(type);

	ct += strspn(ct, " \t");
	return strncasecmp(ct, type, n) == 0 &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/*
 * json-c turns a lone surrogate escape into U+FFFD: refuse it instead.
 * 1 with the 400 set (naming the member), else 0.
 */
static int bad_unicode_escape(struct ctx *c)
{
	struct json_object *errors;
	char field[80], detail[160];

	if (http_json_escapes_ok(c->req.body, c->req.body_len, field, sizeof(field)) == 0)
		return 0;
	errors = json_object_new_object();
	json_object_object_add(errors, field, json_object_new_string(
		"has a \\u escape that is not valid Unicode (a lone surrogate or a bad hex digit)"));
	snprintf(detail, sizeof(detail),
		 "the body is not valid JSON: %s has a \\u escape that is not valid Unicode", field);
	http_problem(&c->resp, 400, detail, errors);	/* takes errors */
	return 1;
}

struct json_object *ctx_json_body(struct ctx *c, int merge_patch)
{
	const char *ct = http_param(&c->req, "CONTENT_TYPE");
	struct json_tokener *tok;
	struct json_object *o;
	enum json_tokener_error jerr;
	size_t end;

	if (c->body_json)
		return c->body_json;
	if (ct == NULL || !(media_type_is(ct, "application/json") ||
			    (merge_patch && media_type_is(ct, "application/merge-patch+json")))) {
		http_problem(&c->resp, 415, merge_patch
			     ? "send the body as application/json or application/merge-patch+json"
			     : "send the body as application/json", NULL);
		return NULL;
	}
	if (c->req.body == NULL || c->req.body_len == 0) {
		http_problem(&c->resp, 400, "the body is empty: a JSON object is expected", NULL);
		return NULL;
	}
	/* json-c lets UTF-8-encoded surrogates through: check the bytes first. */
	if (!utf8_valid(c->req.body, c->req.body_len)) {
		http_problem(&c->resp, 400, "the body is not valid UTF-8", NULL);
		return NULL;
	}
	if (bad_unicode_escape(c))
		return NULL;
	tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	if (tok == NULL)
		die("json_tokener_new_ex: out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, c->req.body, (int)c->req.body_len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (jerr != json_tokener_success || o == NULL ||
	    end + strspn(c->req.body + end, " \t\r\n") != c->req.body_len) {
		char detail[160];

		if (o)
			json_object_put(o);
		snprintf(detail, sizeof(detail), "the body is not valid JSON: %s",
			 jerr == json_tokener_success ? "unexpected data after the value"
			 : jerr == json_tokener_continue ? "it ends too early"
			 : jerr == json_tokener_error_depth ? "nested too deeply"
			 : json_tokener_error_desc(jerr));
		http_problem(&c->resp, 400, detail, NULL);
		return NULL;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		http_problem(&c->resp, 422, "the body must be a JSON object", NULL);
		return NULL;
	}
	c->body_json = o;
	return o;
}

/* The statements' names and times, "name 1.2ms, ..." (the slow request's log line). */
static void statements_text(const struct trace *t, char *out, size_t len)
{
	size_t used = 0;
	int i;

	out[0] = '\0';
	for (i = 0; i < t->n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s %.1fms", i ? ", " : "",
					 t->e[i].name, t->e[i].seconds * 1000.0);
	if (t->more && used < len)
		snprintf(out + used, len - used, ", and %d more", t->more);
}

/* Keep a slow request for /admin/slow (slowlog.h). */
static void keep_slow(const struct ctx *c, int status, double total)
{
	struct slow_request *r = xcalloc(1, sizeof(*r));

	r->at = now_wall();
	snprintf(r->request_id, sizeof(r->request_id), "%s", c->request_id);
	snprintf(r->method, sizeof(r->method), "%s", c->req.method);
	snprintf(r->path, sizeof(r->path), "%s", c->req.path ? c->req.path : "");
	snprintf(r->route, sizeof(r->route), "%s", c->route_name);
	snprintf(r->shed, sizeof(r->shed), "%s", c->shed ? c->shed : "");
	r->status = status;
	r->user_id = c->user_id;
	r->total = total;
	r->auth = c->auth_time;
	r->queue = c->queue_wait;
	r->pool_wait = c->pool_wait;
	r->db = c->trace.seconds;
	r->cache = c->cache_time;
	r->trace = c->trace;
	slowlog_add(r);
	free(r);
}

/* How a streamed answer ended, for the log; NULL for one not streamed. */
static const char *stream_name(enum ctx_stream_state st)
{
	switch (st) {
	case CTX_STREAM_NONE:
		return NULL;
	case CTX_STREAM_OPEN:
		return "complete";
	case CTX_STREAM_HEAD:
		return "head";
	case CTX_STREAM_GONE:
		return "client_gone";
	case CTX_STREAM_CUT:
		return "cut";
	}
	return NULL;
}

static void log_request(const struct ctx *c, double total)
{
	struct log_line l;
	int status = c->resp.status ? c->resp.status : 500;
	const char *stream = stream_name(c->stream.state);
	/* A streamed answer's time is its size's: its head is what a client waits for. */
	double waited = stream ? c->stream.first_byte : total;
	int slow = waited * 1000.0 > c->app->cfg->slow_request_ms;
	enum log_level level = status >= 500 || slow || c->stream.state == CTX_STREAM_CUT
				       ? LOG_WARN : LOG_INFO;

	log_begin(&l, level, slow ? "slow request" : "request");
	log_str(&l, "request_id", c->request_id);
	log_str(&l, "method", c->req.method);
	log_str(&l, "path", c->req.path ? c->req.path : "");
	log_str(&l, "route", c->route_name);
	log_int(&l, "status", status);
	log_int(&l, "bytes", (long long)c->body_bytes);
	if (stream) {
		log_str(&l, "stream", stream);
		if (c->stream.why)
			log_str(&l, "cut_by", c->stream.why);
		log_num(&l, "first_byte_ms", c->stream.first_byte * 1000.0);
	}
	log_int(&l, "user_id", (long long)c->user_id);
	log_str(&l, "cache", cache_result_name(c->cache));
	log_str(&l, "db", c->db_name ? c->db_name : "none");
	log_num(&l, "auth_ms", c->auth_time * 1000.0);
	log_num(&l, "queue_ms", c->queue_wait * 1000.0);
	if (c->shed)
		log_str(&l, "shed", c->shed);
	log_num(&l, "pool_wait_ms", c->pool_wait * 1000.0);
	log_num(&l, "db_ms", c->db_time * 1000.0);
	log_num(&l, "statements_ms", c->trace.seconds * 1000.0);
	log_num(&l, "cache_ms", c->cache_time * 1000.0);
	log_num(&l, "total_ms", total * 1000.0);
	if (slow) {
		char text[1024];

		statements_text(&c->trace, text, sizeof(text));
		log_str(&l, "statements", text);
		if (c->trace.slowest[0])
			log_str(&l, "slowest_statement", c->trace.slowest);
	}
	log_end(&l);
	if (slow)
		keep_slow(c, status, total);
}

/* seconds as milliseconds with three decimals ("12.345"), without floating-point formatting. */
static void ms3(double seconds, char out[32])
{
	long long us = seconds > 0 ? (long long)(seconds * 1e6 + 0.5) : 0;

	snprintf(out, 32, "%lld.%03lld", us / 1000, us % 1000);
}

/*
 * Server-Timing on a signed-in user's answers: where the request's time
 * went, for a browser's developer tools (durations in milliseconds). On
 * every such answer, so formatted with integers only (printf's floating
 * point showed in the hot read's profile).
 */
static void server_timing(struct ctx *c)
{
	char auth[32], queue[32], pool[32], db[32], cache[32], total[32];

	if (c->user_id == 0)
		return;
	ms3(c->auth_time, auth);
	ms3(c->queue_wait, queue);
	ms3(c->pool_wait, pool);
	ms3(c->trace.seconds, db);
	ms3(c->cache_time, cache);
	ms3(now_mono() - c->t_start, total);
	http_resp_header(&c->resp, "Server-Timing",
			 "auth;dur=%s;desc=\"session\", queue;dur=%s;desc=\"admission\", "
			 "pool;dur=%s;desc=\"connection wait\", db;dur=%s;desc=\"%d statements\", "
			 "cache;dur=%s;desc=\"Redis\", total;dur=%s",
			 auth, queue, pool, db, c->trace.n + c->trace.more, cache, total);
}

/* Give back everything the request holds. */
static void release_all(struct ctx *c)
{
	ctx_db_release(c);	/* normally done before the answer already */
	sodium_memzero(c->session_token, sizeof(c->session_token));
	if (c->body_json)
		json_object_put(c->body_json);
	c->body_json = NULL;
	http_query_free(&c->req.query);
	free(c->req.path);
	free(c->req.body);
	http_resp_free(&c->resp);
}

/* A read-only handler that failed on its connection, from its start on another. */
static void run_again(struct ctx *c)
{
	ctx_db_release(c);
	http_resp_reset(&c->resp);
	c->match.route->handler(c);
}

/*
 * Run the admitted request's handler. A read-only route may be served by a
 * replica: the session lookup's primary connection is returned first, and
 * when the replica fails the request, the handler (which only reads) runs
 * again on the primary; when the primary's connection fails it (lost, a
 * failover: ctx_db_error), once more on a fresh one. Any other route writes, and a write waits for
 * PostgreSQL's disk flush at its commit (milliseconds): a parked worker
 * thread takes this one's place meanwhile (workers.h).
 */
static void run_handler(struct ctx *c)
{
	c->admitted = 1;
	/*
	 * The session look-up's connection goes back: it came through the
	 * gate's extra place for look-ups, and the handler's own statements
	 * take a place in the request's class (and choose their server: the
	 * look-up's may be a standby, standby_fallback).
	 */
	if (c->db && ((c->match.route->read_only && replicas_count() > 0) || c->db_replica >= 0 ||
		      (c->ticket.taken && c->ticket.cls == ADMISSION_SESSION)))
		ctx_db_release(c);
	if (!c->match.route->read_only) {
		workers_block_begin();
		c->match.route->handler(c);
		workers_block_end();
		return;
	}
	c->match.route->handler(c);
	if (c->replica_failed) {
		c->replica_failed = 0;
		c->no_replica = 1;
		run_again(c);
	}
	if (c->primary_failed) {
		/* Once: the connection it failed on is gone (ctx_db_error). */
		c->primary_failed = 0;
		c->primary_retried = 1;
		run_again(c);
	}
}

/* Parse the path and query, route, read the body, admit, run the handler. */
static void dispatch(struct ctx *c, FCGX_Request *r, const struct route *table, size_t nroutes)
{
	const char *uri = http_param(&c->req, "REQUEST_URI");
	const char *qs = http_param(&c->req, "QUERY_STRING");

	if (uri == NULL || http_decode_path(uri, &c->req.path) != 0) {
		http_problem(&c->resp, 400, "the request path is malformed", NULL);
		return;
	}
	if (http_parse_query(qs, &c->req.query) != 0) {
		http_problem(&c->resp, 400,
			     "the query string is malformed (bad %-escape, invalid UTF-8 or too many parameters)",
			     NULL);
		return;
	}
	switch (router_match(table, nroutes, c->req.method, c->req.path, &c->match)) {
	case ROUTE_FOUND:
		c->route_name = c->match.route->name;
		if (read_body(c, r) == 0 && c->app->admit(c, c->match.route->auth) == 0)
			run_handler(c);
		body_discard(c);
		break;
	case ROUTE_METHOD_NOT_ALLOWED:
		http_resp_header(&c->resp, "Allow", "%s", c->match.allow);
		http_problem(&c->resp, 405, "this method is not allowed here", NULL);
		break;
	case ROUTE_NOT_FOUND:
		http_problem(&c->resp, 404, "no such resource", NULL);
		break;
	}
}

/* The headers every answer gets, added last (a streamed one's before its head goes out). */
static void final_headers(struct ctx *c)
{
	set_lsn_cookie(c);
	c->cache_time += cache_take_time();
	http_resp_header(&c->resp, "X-Request-Id", "%s", c->request_id);
	server_timing(c);
	if (c->cache != CACHE_UNUSED)
		http_resp_header(&c->resp, "X-Cache", "%s", cache_result_name(c->cache));
	/* Everything here is live data: not stored unless a handler says so. */
	if (strstr(c->resp.headers.buf, "Cache-Control:") == NULL)
		http_resp_header(&c->resp, "Cache-Control", "no-store");
}

/* Send the whole answer in c->resp. */
static void send_whole(struct ctx *c)
{
	struct strbuf out;
	int with_body;

	/* The head from a small buffer, the body from where it lies: no copy of it. */
	strbuf_init(&out);
	with_body = http_resp_head(&c->resp, strcmp(c->req.method, "HEAD") == 0, &out);
	{
		struct fcgi_part parts[2] = { { out.buf, out.len },
					      { c->resp.body.buf, c->resp.body.len } };

		if (fcgi_reply(c->fcgi, parts, with_body ? 2 : 1) != 0)
			log_msg(LOG_DEBUG, "the answer was not delivered: %s", strerror(errno));
		else if (with_body)
			c->body_bytes = c->resp.body.len;
	}
	strbuf_free(&out);
}

/* The status the metrics count: a stream that did not end well is no success. */
static int metrics_status(const struct ctx *c)
{
	if (c->stream.state == CTX_STREAM_CUT)
		return 500;
	if (c->stream.state == CTX_STREAM_GONE)
		return 499;	/* nginx's "client closed request" */
	return c->resp.status;
}

/* Answer the request (it has its response, or gets a 500), log it, free it. */
static void answer(struct ctx *c)
{
	struct app *app = c->app;
	double total;

	if (c->stream.state != CTX_STREAM_NONE) {
		ctx_db_release(c);	/* back before the last piece, as below */
		stream_end(c);
	} else {
		if (c->resp.status == 0)
			http_problem(&c->resp, 500, "the handler produced no response", NULL);
		/* Return the connection before the client is answered: it is free sooner. */
		ctx_db_release(c);
		final_headers(c);
		send_whole(c);
	}
	total = now_mono() - c->t_start;
	/* A streamed answer's database time is its statements': holding is not latency. */
	metrics_request(c->match.route ? (size_t)(c->match.route - app->routes) : app->nroutes,
			metrics_status(c), total,
			c->stream.state != CTX_STREAM_NONE ? c->trace.seconds
			: c->db_time > 0 ? c->db_time : -1.0, c->cache);
	log_request(c, total);
	trace_end();
	release_all(c);
	free(c);
}

int ctx_stream_begin(struct ctx *c, double max_seconds)
{
	struct strbuf out;
	int with_body;
	double now;

	assert(c->stream.state == CTX_STREAM_NONE && c->resp.status != 0);
	final_headers(c);
	c->resp.streamed = 1;
	strbuf_init(&out);
	with_body = http_resp_head(&c->resp, strcmp(c->req.method, "HEAD") == 0, &out);
	{
		struct fcgi_part part = { out.buf, out.len };

		c->stream.state = fcgi_stream_write(c->fcgi, &part, 1) != 0 ? CTX_STREAM_GONE
				  : with_body ? CTX_STREAM_OPEN : CTX_STREAM_HEAD;
	}
	strbuf_free(&out);
	now = now_mono();
	c->stream.first_byte = now - c->t_start;
	c->stream.until = c->t_start + max_seconds;
	if (c->db)
		pool_conn_expect(c->db_pool, c->db, c->stream.until - now);
	if (c->ticket.taken)
		c->ticket.unsampled = 1;
	return c->stream.state == CTX_STREAM_OPEN ? 0 : -1;
}

/* Send what c->resp.body holds: 0, or -1 with the stream over (the client went away). */
static int stream_send(struct ctx *c)
{
	struct fcgi_part part = { c->resp.body.buf, c->resp.body.len };

	if (part.len == 0)
		return 0;
	if (fcgi_stream_write(c->fcgi, &part, 1) != 0) {
		log_msg(LOG_DEBUG, "a streamed answer was not delivered: %s", strerror(errno));
		c->stream.state = CTX_STREAM_GONE;
		strbuf_reset(&c->resp.body);
		return -1;
	}
	c->body_bytes += part.len;
	strbuf_reset(&c->resp.body);
	return 0;
}

int ctx_stream_flush(struct ctx *c)
{
	if (c->stream.state != CTX_STREAM_OPEN)
		return -1;
	if (now_mono() > c->stream.until) {
		ctx_stream_cut(c, "time bound");
		return -1;
	}
	return c->resp.body.len >= CTX_STREAM_CHUNK ? stream_send(c) : 0;
}

void ctx_stream_cut(struct ctx *c, const char *why)
{
	if (c->stream.state != CTX_STREAM_OPEN)
		return;
	c->stream.state = CTX_STREAM_CUT;
	c->stream.why = why;
	strbuf_reset(&c->resp.body);
}

/* The end of a streamed answer: the rest of the body and the request's end, or no end when it failed. */
static void stream_end(struct ctx *c)
{
	struct fcgi_part part = { c->resp.body.buf, c->resp.body.len };

	switch (c->stream.state) {
	case CTX_STREAM_OPEN:
		if (fcgi_reply(c->fcgi, &part, part.len > 0 ? 1 : 0) != 0) {
			log_msg(LOG_DEBUG, "a streamed answer was not delivered: %s", strerror(errno));
			c->stream.state = CTX_STREAM_GONE;
		} else {
			c->body_bytes += part.len;
		}
		break;
	case CTX_STREAM_HEAD:
		if (fcgi_reply(c->fcgi, NULL, 0) != 0)
			c->stream.state = CTX_STREAM_GONE;
		break;
	case CTX_STREAM_NONE:
	case CTX_STREAM_GONE:
	case CTX_STREAM_CUT:
		fcgi_stream_abandon(c->fcgi);
		break;
	}
}

struct ctx *ctx_handle(struct app *app, FCGX_Request *r, const struct ctx_parking *parking)
{
	struct ctx *c = xcalloc(1, sizeof(*c));

	c->cache = CACHE_UNUSED;
	c->app = app;
	c->fcgi = r;
	c->parking = parking;
	c->t_start = now_mono();
	c->route_name = "unmatched";
	c->req.envp = r->envp;
	c->db_replica = -1;
	trace_begin(&c->trace, c->t_start, 1);
	cache_request_reset();
	http_resp_init(&c->resp);
	set_request_id(c);
	c->req.method = http_param(&c->req, "REQUEST_METHOD");
	if (c->req.method == NULL)
		c->req.method = "GET";
	dispatch(c, r, app->routes, app->nroutes);
	if (c->parked) {
		c->cache_time += cache_take_time();
		trace_end();
		return c;	/* parked_done hands it back to the server */
	}
	answer(c);
	return NULL;
}

void ctx_resume(struct ctx *c)
{
	c->parked = 0;
	c->resumed = 1;
	c->queue_wait += c->wait.waited;
	trace_begin(&c->trace, c->t_start, 0);
	cache_request_reset();	/* this thread's: the handler runs again from its start */
	if (c->wait.granted) {
		http_resp_reset(&c->resp);
		c->cache = CACHE_UNUSED;
		run_handler(c);
	} else {
		shed_answer(c, c->wait.why);
	}
	answer(c);
}

PGresult *ctx_exec_expect(struct ctx *c, const char *name, const char *sql, int nparams,
			  const char *const *params, ExecStatusType want)
{
	PGresult *r = ctx_exec_dynamic(c, name, sql, nparams, params);

	if (r == NULL)
		return NULL;
	if (PQresultStatus(r) != want) {
		ctx_db_error(c, r);
		PQclear(r);
		return NULL;
	}
	return r;
}

int ctx_exec_ok(struct ctx *c, const char *name, const char *sql, int nparams,
		const char *const *params, ExecStatusType want)
{
	PGresult *r = ctx_exec_expect(c, name, sql, nparams, params, want);

	PQclear(r);
	return r ? 0 : -1;
}

int ctx_flag_param(struct ctx *c, const char *name)
{
	struct json_object *errs = json_object_new_object();
	const char *v = http_query_get(&c->req.query, name);

	http_query_reject_unknown(&c->req.query, &name, 1, sizeof(name), errs);
	if (v && strcmp(v, "1") != 0 && strcmp(v, "true") != 0 && strcmp(v, "0") != 0 &&
	    strcmp(v, "false") != 0)
		json_object_object_add(errs, name, json_object_new_string("must be 1, true, 0 or false"));
	if (json_object_object_length(errs) > 0) {
		http_problem(&c->resp, 400, "some query parameters are invalid: see errors", errs);
		return -1;
	}
	json_object_put(errs);
	return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}
