/*
 * pool: the bounded pool of libpq connections shared by all worker threads
 * of one process (SQLAlchemy QueuePool semantics).
 *
 * - At most size + max_overflow connections are open at any instant,
 *   counting connections being opened. Opening happens outside the lock.
 * - A checkout takes an idle connection, else opens one when under the
 *   bound, else waits first come, first served, for at most its timeout.
 * - A release returns the connection clean (a transaction left open is
 *   rolled back, a broken connection is discarded) and keeps it, even
 *   beyond size: a connection costs a TCP connect, a SCRAM exchange and a
 *   backend fork, so a busy pool opens none. Connections beyond size that
 *   stay idle for idle_timeout seconds are closed by pool_reap_idle (the
 *   housekeeper), never on a request's path.
 * - A connection older than recycle seconds is replaced before use; with
 *   pre_ping, one idle for more than PREPING_IDLE seconds is checked first
 *   and replaced when dead, so callers never see a stale connection.
 *   Without pre_ping, once one connection is found broken, every older one
 *   is checked before its next use (a server restart drops them all), so
 *   at most one request per restart sees the error.
 * - Every connection has the pool's named statements, each prepared on
 *   that connection the first time it is used (pool_exec_prepared), never
 *   when it opens: a table locked exclusively then holds up only the
 *   requests that need it, not every new connection.
 */
#ifndef PS_POOL_H
#define PS_POOL_H

#include <libpq-fe.h>
#include <stdint.h>

/* A statement prepared on every connection: PQexecPrepared(pg, name, ...). */
struct pool_stmt {
	const char *name;
	const char *sql;
};

struct pool_settings {
	const char *database_url;	/* postgres:// URL */
	const char *sslmode;		/* used unless the URL names one; NULL */
	const char *application_name;
	int size;
	int max_overflow;
	double timeout;			/* default checkout wait, seconds */
	int recycle;			/* seconds */
	int pre_ping;
	int connect_timeout;		/* seconds, per attempt */
	int statement_timeout_ms;
	double leak_threshold;		/* seconds held before a warning */
	double idle_timeout;		/* seconds idle before overflow closes */
	const struct pool_stmt *stmts;	/* not copied: must outlive the pool */
	int nstmts;
	/*
	 * The primary's pool: its connections must reach a server that
	 * takes writes. A connection vetted before use (pre_ping, or after
	 * a failure made older ones suspect) is checked with
	 * pg_is_in_recovery(), so one left on a demoted primary is closed.
	 */
	int primary;
};

enum pool_errkind {
	POOL_ERR_NONE,
	POOL_ERR_TIMEOUT,	/* waited the whole timeout: overload */
	POOL_ERR_CONNECT,	/* could not open a connection in time */
	POOL_ERR_CLOSED,	/* the pool is shutting down */
};

struct pool_error {
	enum pool_errkind kind;
	/*
	 * POOL_ERR_CONNECT: the last attempt was cut short by the caller's
	 * deadline, not refused nor timed out by connect_timeout: the server
	 * was slower than the caller would wait (busy, far, or a peer that
	 * vanished). Said in the log; it is still a failure to connect.
	 */
	int cut_short;
	char msg[256];
};

/* A checked-out connection; its libpq handle is pool_conn_pg's. */
struct pool_conn;

struct pool_stats {
	int size, max_overflow, max;
	int open;		/* open or being opened */
	int idle;		/* checked in */
	int checked_out;
	int overflow;		/* open beyond size */
	int waiting;
	uint64_t checkouts, timeouts, opened, closed, recycled, failed,
		 invalidated, leaks, reaped;
	double wait_seconds_total;
	/*
	 * The server its connections reach, and its changes. server is the
	 * "host:port" (libpq's PQhost, PQport) of the last connection opened;
	 * "" before the first. A failover is a connection opened to another
	 * server than the last; failover_seconds the last one's time from the
	 * service's view: from the first failure (a lost or refused
	 * connection, a read-only or shut-down server) to that connection.
	 * unreachable_seconds: how long opening has failed, 0 while it works.
	 */
	char server[128];
	uint64_t failovers;
	double failover_seconds;
	double unreachable_seconds;
};

struct pool;

/* Idle time after which pre-ping checks a connection before handing it out. */
#define POOL_PREPING_IDLE 1.0

/*
 * Opening a connection: attempts are retried (with jittered back-off,
 * errors that can pass only) for at most POOL_OPEN_RETRY seconds, within
 * the checkout's deadline; and for POOL_FAILFAST seconds after an
 * attempt failed (an open still retrying included), a checkout makes one
 * attempt only. So while the database is down or failing over, one
 * request at most rides out a blip for POOL_OPEN_RETRY and the others
 * are answered in about one connection attempt (a 503 with Retry-After,
 * or a session checked and a read served on a synchronous standby),
 * never held for the pool's timeout.
 */
#define POOL_OPEN_RETRY 2.0
#define POOL_FAILFAST 1.0

/* Create an empty pool (connections open on demand). Never fails. */
struct pool *pool_create(const struct pool_settings *settings);

/*
 * Whether p's server could not be reached a moment ago: an attempt to
 * open failed within POOL_FAILFAST seconds, and no open succeeded since.
 * A read that a standby may serve goes there first (context.c).
 */
int pool_unreachable(struct pool *p);

/*
 * Check out a connection for holder, waiting at most timeout seconds
 * (<= 0: the pool's default). Returns 0 and *out, or -1 with err filled:
 * POOL_ERR_TIMEOUT when the pool stayed exhausted, POOL_ERR_CONNECT when
 * PostgreSQL could not be reached in time, POOL_ERR_CLOSED on shutdown.
 * The caller must hand *out back with pool_release.
 */
int pool_checkout(struct pool *p, double timeout, const char *holder,
		  struct pool_conn **out, struct pool_error *err);

/* The libpq connection of a checked-out c (owned by the pool). */
PGconn *pool_conn_pg(const struct pool_conn *c);

/*
 * c, checked out from p, may be held for up to seconds more from now by a
 * holder bounded by other means (a streamed answer): pool_report_leaks
 * and pool_release call it a leak only once it is held past that and the
 * pool's leak threshold. Never shortens what was allowed before.
 */
void pool_conn_expect(struct pool *p, struct pool_conn *c, double seconds);

/* Return a connection; it is cleaned, kept, handed to a waiter or closed. */
void pool_release(struct pool *p, struct pool_conn *c);

/*
 * Log, once each, connections checked out for longer than the leak
 * threshold, with the route holding them. Called periodically by the
 * server's housekeeping thread; returns how many it logged.
 */
int pool_report_leaks(struct pool *p);

/*
 * Close the connections beyond size that have been idle for idle_timeout
 * seconds or more, least recently used first, leaving at least size open.
 * Called once a second by the server's housekeeping thread; returns how
 * many it closed. Never blocks on a lock while closing.
 */
int pool_reap_idle(struct pool *p);

/*
 * The most connections checked out at once since the previous call (then
 * reset to the current number): utilisation peaks between samples.
 */
int pool_take_peak(struct pool *p);

/* A consistent snapshot of the pool's figures. */
void pool_get_stats(struct pool *p, struct pool_stats *st);

/*
 * Refuse new checkouts, fail the waiters at once, wait up to grace seconds
 * for checked-out connections to come back, and close every idle one.
 * Returns the number still checked out when it gave up (0 normally).
 */
int pool_shutdown(struct pool *p, double grace);

/*
 * Execute sql (built only from fixed fragments: values go in params) as a
 * prepared statement on c, preparing it the first time this connection
 * sees that text; at most POOL_DYN_MAX shapes are kept per connection.
 * label names it in the trace (trace.h): the caller's name for the query.
 * Returns the result (caller PQclears; check its status), never NULL.
 */
PGresult *pool_exec_dynamic(struct pool_conn *c, const char *label, const char *sql,
			    int nparams, const char *const *params);


/*
 * PQexecPrepared of the pool's named statement name (pool_settings.stmts)
 * on pg, a checked-out connection's, preparing it there first if this
 * connection has not yet. On a connection not from a pool, exactly
 * PQexecPrepared. Returns the result (caller PQclears), never NULL; a
 * failed preparation's result when that failed.
 */
PGresult *pool_exec_prepared(PGconn *pg, const char *name, int nparams,
			     const char *const *values, const int *lengths, const int *formats,
			     int result_format);

/*
 * Prepare the pool's named statement name on pg (a checked-out
 * connection's) unless it is already. 0 when it is prepared there; -1
 * when name is none of the pool's or pg is no pool's (*failed NULL), or
 * when preparing failed (*failed: the result, which the caller PQclears).
 */
int pool_prepare(PGconn *pg, const char *name, PGresult **failed);

/*
 * c's server failed it in a way that says it may no longer be the one to
 * use (read-only, shutting down, the connection lost): c is closed when
 * it comes back, and every connection opened before now is vetted before
 * its next use. Call while c is checked out.
 */
void pool_conn_discard(struct pool *p, struct pool_conn *c);

/* Free the pool; every connection must be back (after pool_shutdown). */
void pool_destroy(struct pool *p);

#endif
