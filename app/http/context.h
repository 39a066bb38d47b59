/*
 * context: one request's life. ctx_handle parses the FastCGI request,
 * routes it, runs the handler, writes the response, logs one line and
 * then releases everything the request acquired (its database connection
 * above all), so a handler that returns early cannot leak.
 */
#ifndef PS_CONTEXT_H
#define PS_CONTEXT_H

#include <fcgiapp.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "base/config.h"
#include "cache/cache.h"
#include "db/admission.h"
#include "db/pool.h"
#include "db/trace.h"
#include "http/http.h"
#include "http/router.h"

struct ctx;

/* Where a streamed answer is (ctx_stream_begin). */
enum ctx_stream_state {
	CTX_STREAM_NONE,	/* not streamed: the answer goes out in one piece at the end */
	CTX_STREAM_OPEN,	/* the head is sent; the body goes out as it is made */
	CTX_STREAM_HEAD,	/* the head is sent to a HEAD request: no body follows */
	CTX_STREAM_GONE,	/* a write failed (the client or nginx went away): nothing more goes out */
	CTX_STREAM_CUT,		/* cut by a fault or the time bound: it ends without its end */
};

struct ctx_stream {
	enum ctx_stream_state state;
	double until;		/* monotonic: past it, ctx_stream_flush cuts the answer */
	double first_byte;	/* seconds from the request's start to its head going out */
	const char *why;	/* what cut it (CTX_STREAM_CUT): a static string */
};

/*
 * A housekeeping chore of the application, run by the server's
 * housekeeper thread every `every` seconds (rounded to its one-second
 * tick) with the primary's pool; what it returns is not looked at.
 */
struct app_chore {
	const char *name;
	int every;
	int (*run)(struct pool *p, const struct config *cfg);
};

/*
 * What every request may use; filled by main before serving, read-only
 * afterwards. Whatever this layer needs from a higher one is handed down
 * here, never called by name: the route table, the admission step and
 * the chores.
 */
struct app {
	const struct config *cfg;
	struct pool *pool;		/* the primary's (replicas.h has the others) */
	struct admission *gate;		/* in front of every pool: how many at once (admission.h) */
	const struct route *routes;	/* the router's table */
	size_t nroutes;
	/*
	 * Admit a routed request at its route's level before its handler
	 * runs: 0, or -1 with the 401/403/503 response set.
	 */
	int (*admit)(struct ctx *c, enum auth_level level);
	const struct app_chore *chores;
	size_t nchores;
};

struct ctx {
	struct app *app;
	FCGX_Request *fcgi;		/* the FastCGI request it answers */
	const struct ctx_parking *parking;	/* how to park it; NULL: never */
	struct admission_parked wait;	/* while parked: the gate's answer */
	int parked;			/* waiting for its place without a thread */
	int resumed;			/* was parked, runs again (never parks twice) */
	struct http_req req;
	struct http_resp resp;
	struct route_match match;
	const char *route_name;		/* "unmatched" until routed */
	struct pool_conn *db;		/* checked out by ctx_db, or NULL */
	struct pool *db_pool;		/* the pool db came from */
	int db_replica;			/* index of db's replica; -1: the primary */
	struct admission_ticket ticket;	/* db's place at the gate */
	int db_lending;			/* this thread's place is lent while db is held */
	double queue_wait;		/* seconds spent in the gate's queue */
	const char *shed;		/* why the gate turned the request away, or NULL */
	const char *db_name;		/* last pool used, for the log; NULL: none */
	/* Replica routing (ctx_db): */
	int admitted;			/* sessions_require let the handler run */
	int no_replica;			/* read the primary only (a replica failed this request) */
	int replica_failed;		/* a replica failed the handler: run it again on the primary */
	int session_lsn_read;		/* session_lsn holds the cookie's position */
	uint64_t session_lsn;		/* the session's last write (__Host-ps_lsn), 0 none */
	uint64_t write_lsn;		/* the primary's position after this request's writes */
	char request_id[65];
	double t_start;			/* monotonic */
	double pool_wait;		/* seconds spent waiting in checkout */
	double db_since;		/* monotonic time of the checkout */
	double db_time;			/* seconds the connection was held */
	double cache_time;		/* seconds spent talking to Redis */
	struct json_object *body_json;	/* parsed by ctx_json_body, or NULL */
	size_t body_left;		/* a streamed body's bytes not read yet */
	double auth_time;		/* seconds spent admitting the request */
	struct trace trace;		/* its statements (trace.h) */
	struct ctx_stream stream;	/* a streamed answer's state (ctx_stream_begin) */
	uint64_t body_bytes;		/* body bytes sent, for the log */
	enum cache_result cache;	/* CACHE_UNUSED unless the handler looked */
	/* Who is asking (set by sessions_require): */
	int64_t user_id;		/* 0: nobody */
	int is_admin;
	char username[65];
	unsigned char session_hash[32];
	unsigned char session_token[32];	/* the cookie's token; wiped at the end */
};

/*
 * How the server lets a request wait for the database without its thread:
 * resume(job) is called (from any thread, with the admission gate's lock
 * held: it must only queue the job for a worker) once the parked request
 * may go on.
 */
struct ctx_parking {
	void (*resume)(void *job);
	void *job;
};

/*
 * Serve one accepted request. Never fails: errors become responses.
 * Returns NULL once it is answered. A person's read that must wait for
 * its place at the admission gate is parked instead (with parking given;
 * NULL: never): ctx_handle returns its context, r stays untouched (the
 * request is not answered), and once parking->resume(parking->job) has
 * been called, a worker calls ctx_resume with that context. parking must
 * live until then.
 */
struct ctx *ctx_handle(struct app *app, FCGX_Request *r, const struct ctx_parking *parking);

/*
 * Go on with a parked request on this worker thread: its handler runs
 * again from its start with the place it was given (it may find the cache
 * filled meanwhile), or it is answered 503 with Retry-After when the gate
 * turned it away. It is answered, and c freed, when this returns.
 */
void ctx_resume(struct ctx *c);

/*
 * The request's database connection, checked out on first use (waiting at
 * most timeout seconds; <= 0 for the pool's default). Returns NULL after
 * setting a 503 problem response with Retry-After; the handler just returns.
 *
 * First the request takes a place at the admission gate (app->gate), in
 * its class: the session look-up of the admission step, a person's
 * request, or a background refresh (X-Request-Purpose: background; a
 * client can only lower its own priority with it). It may wait there, or
 * be turned away (the 503). From then until the connection goes back, the
 * thread's place among the active workers is lent (workers.h): a request
 * waiting on PostgreSQL never holds a thread that a cached read needs.
 *
 * Which server: a replica (replicas_choose) when the route is read_only
 * and needs a signed-in user, the handler is running, no cache fill is
 * pending (cache.h), and the replica replayed the session's last write;
 * otherwise the primary. A replica that cannot give a connection within
 * half a second is passed over for the primary.
 */
PGconn *ctx_db(struct ctx *c, double timeout);

/*
 * As ctx_db, but without a place at the admission gate: only for the
 * operator's probes of the database itself (readiness, the metrics'
 * "SELECT 1"), which must answer in an incident and never flood it (one
 * at a time, or behind an admin session). The pool still bounds them.
 */
PGconn *ctx_db_probe(struct ctx *c, double timeout);

/*
 * Run sql (fixed fragments only: every value in params) on the request's
 * connection, checked out as by ctx_db, as a statement prepared once per
 * connection (pool_exec_dynamic), called name in traces and analytics. Returns the result (caller PQclears and
 * checks its status: a failure goes to ctx_db_error), or NULL after ctx_db
 * set the 503. Handlers reach the database only through ctx_db and this.
 */
PGresult *ctx_exec_dynamic(struct ctx *c, const char *name, const char *sql, int nparams,
			   const char *const *params);

/*
 * A route whose one query parameter is the flag name (1, true, 0 or
 * false): 1 when set, 0 when absent or off, or -1 with a 400 set naming
 * a bad value or any other parameter.
 */
int ctx_flag_param(struct ctx *c, const char *name);

/*
 * ctx_exec_dynamic, expecting status want: the result (caller PQclears),
 * or NULL with the response set (ctx_db_error; the result cleared).
 * ctx_exec_ok runs it for its effect alone: 0, or -1 with the response set.
 */
PGresult *ctx_exec_expect(struct ctx *c, const char *name, const char *sql, int nparams,
			  const char *const *params, ExecStatusType want);
int ctx_exec_ok(struct ctx *c, const char *name, const char *sql, int nparams,
		const char *const *params, ExecStatusType want);

/*
 * Run a command that returns no rows (BEGIN, COMMIT) on the request's
 * connection, checked out as by ctx_db. 0, or -1 with the response set
 * (ctx_db's 503, or ctx_db_error's).
 */
int ctx_db_exec(struct ctx *c, const char *sql);

/*
 * Give the request's connection back to the pool now (no-op without one),
 * e.g. before slow work that needs no database; ctx_db checks out again.
 */
void ctx_db_release(struct ctx *c);

/*
 * Turn a failed PGresult (or a NULL one) into the response: 503 with
 * Retry-After for faults that pass (connection lost, statement timeout,
 * serialization failure, server shutting down), 403 when the acting admin
 * lost its rights meanwhile (SQLSTATE PSA01, migration 0010), 422 when a
 * foreign key refused the write (23503: it names a stored image that is
 * not, migration 0015), 500 for the rest, which are bugs and are logged. Once a streamed answer's head is
 * out, it logs the fault and cuts the stream instead. Does not clear r.
 */
void ctx_db_error(struct ctx *c, const PGresult *r);

/*
 * Streamed answers, for a body too large to hold in memory (the paints'
 * export). Every other answer is made whole in c->resp and sent in one
 * piece when the handler returns.
 *
 * ctx_stream_begin sends the status and headers set in c->resp at once,
 * with those every answer gets (X-Request-Id, Server-Timing so far,
 * Cache-Control). The handler then appends the body to c->resp.body a
 * piece at a time and calls ctx_stream_flush after each piece: once
 * CTX_STREAM_CHUNK bytes or more have gathered, they are sent and the
 * buffer emptied, so memory stays bounded by the chunk and the piece.
 * What is left when the handler returns is sent and the request ended
 * (after the database connection went back). The status cannot change
 * once the head is out: a fault after that is ctx_stream_cut (and
 * ctx_db_error cuts a stream instead of setting a response), which ends
 * the answer without its end, so nginx cuts the client's answer short
 * and a cut body never looks whole.
 *
 * A stream is bounded: its total time by max_seconds from the request's
 * start (ctx_stream_flush cuts it past that), each write by the socket's
 * send timeout. The request's read deadline (fcgi_deadline.h) has no
 * part in it: the request was read whole before the handler ran. The
 * connection it holds meanwhile is expected to be held that long (no
 * leak report before then: pool_conn_expect) and its place at the gate
 * is no latency sample of the adaptive limit (admission.h). The access
 * log line says how the stream ended ("stream": complete, head,
 * client_gone, cut), its body bytes and when its head went out
 * (first_byte_ms, which alone makes it a slow request); the metrics
 * count it by its status, except a cut as 500 and a client gone as 499,
 * with its statements' time as its database time.
 */
#define CTX_STREAM_CHUNK (64 * 1024)

/*
 * Send the head of a streamed answer (c->resp.status set, nothing sent
 * yet). 0 when the body is wanted; -1 when it is not (a HEAD request, or
 * the head could not be sent): the handler stops, and what it holds goes
 * back as for any answer.
 */
int ctx_stream_begin(struct ctx *c, double max_seconds);

/*
 * Send c->resp.body when it holds CTX_STREAM_CHUNK bytes or more. 0 to go
 * on; -1 once the stream is over (the client went away, or the time
 * bound cut it): the handler stops.
 */
int ctx_stream_flush(struct ctx *c);

/* Cut an open stream (why: static, for the log); nothing more is sent. */
void ctx_stream_cut(struct ctx *c, const char *why);

/*
 * The next bytes of the body of a route that streams it (router.h's
 * body_stream), at most cap, into buf: how many (> 0), 0 at its end, or
 * -1 with a 400 set when it ended before Content-Length bytes. What the
 * handler leaves unread is read and dropped after it returns.
 */
long ctx_body_read(struct ctx *c, char *buf, size_t cap);

/*
 * For a route that streams its body but wants it whole (a body bounded
 * by its body_stream rather than MAX_BODY_KB): read the rest of it into
 * the request's body, as if read before the handler, so ctx_json_body
 * takes it. Returns 0, or -1 with a 400 set when it ended early.
 */
int ctx_body_read_all(struct ctx *c);

/*
 * The request body as a JSON object, parsed once and owned by the request.
 * Requires Content-Type application/json (or, with merge_patch,
 * application/merge-patch+json). Returns NULL after setting the error
 * response: 415 for another type, 400 for an empty, malformed, too deeply
 * nested or non-UTF-8 body or one with a \u escape that is not valid
 * Unicode (naming the field in errors), 422 for JSON that is not an object.
 */
struct json_object *ctx_json_body(struct ctx *c, int merge_patch);

#endif
