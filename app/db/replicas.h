/*
 * replicas: PostgreSQL streaming replicas that take the reads, and the
 * positions that keep them honest.
 *
 * - One bounded pool per replica (DATABASE_REPLICA_URLS), with the
 *   primary's settings; named "replica1", "replica2", ... in /admin/pool,
 *   /metrics and `paintstudio status` (ops.c renders replicas_get's
 *   snapshots).
 * - The housekeeper (replicas_sample, once a second) reads the primary's
 *   pg_current_wal_insert_lsn() and each replica's pg_last_wal_replay_lsn()
 *   on connections of its own (never a pool's, never on a request's path).
 *   A replica's lag is how long ago the primary was first seen at a
 *   position the replica has not replayed (0 when it has replayed the
 *   latest sample): no clocks of two machines are compared.
 * - A replica serves a read only while its last sample succeeded, its lag
 *   is at most DB_REPLICA_MAX_LAG_MS, it has replayed the position the
 *   read needs (the session's last write: read-your-writes), and no
 *   request has seen it fail since that sample. Otherwise the primary.
 * - After a write, the primary's position is given to the client in the
 *   cookie __Host-ps_lsn, MACed with a key derived from the session token
 *   (replicas_cookie_make): every process can check it, none keeps state,
 *   and a cookie from another session or altered is ignored.
 */
#ifndef PS_REPLICAS_H
#define PS_REPLICAS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct pool;
struct pool_settings;

#define REPLICAS_COOKIE "__Host-ps_lsn"
/* "<16 hex of the LSN>.<32 hex of the MAC>" and a NUL */
#define REPLICAS_COOKIE_LEN 50
#define REPLICAS_NAME_LEN 16

/* One replica as the operator sees it (replicas_get). */
struct replica_status {
	char name[REPLICAS_NAME_LEN];	/* "replica1" */
	struct pool *pool;
	int usable;		/* reachable and within the lag limit now */
	int reachable;		/* the last sample succeeded */
	double lag_ms;		/* -1 while unknown */
	uint64_t replay_lsn;	/* last sampled, 0 unknown */
	uint64_t primary_lsn;	/* the primary's last sampled position */
	uint64_t reads, fallbacks;	/* reads it served; requests it failed (sent to the primary) */
	uint64_t skipped_lag, skipped_position;	/* reads kept off it: lag, session position */
};

/*
 * Create a pool per replica of cfg (settings ps as for the primary, with
 * each replica's URL) and remember the primary's settings for sampling.
 * Call once before threads start; a no-op without replicas.
 */
void replicas_setup(const struct config *cfg, const struct pool_settings *ps);

/* Number of replicas configured (0: every read goes to the primary). */
int replicas_count(void);

/*
 * The housekeeper's tick: sample the primary's and every replica's
 * position (each bounded: half a second to connect, 1 s per statement), and
 * report leaks and reap idle connections of every replica pool.
 */
void replicas_housekeep(void);

/*
 * A replica for a read that needs position min_lsn (0: any) replayed.
 * Returns its pool and *index, or NULL when none qualifies now.
 */
struct pool *replicas_choose(uint64_t min_lsn, int *index);

/*
 * Replica index served a read (counts); or failed one (out until its next
 * good sample), why saying how (logged).
 */
void replicas_served(int index);
void replicas_failed(int index, const char *why);

/* The name of replica index ("replica1"); "primary" for -1. */
const char *replicas_name(int index);

/* A snapshot of replica index (0 <= index < replicas_count()). */
void replicas_get(int index, struct replica_status *st);

/* Close every replica pool (after the workers stopped). Returns connections still out. */
int replicas_shutdown(double grace);

/* ---- pure helpers (unit-tested) ------------------------------------------ */

/* Parse PostgreSQL's "X/Y" LSN text. 0 and *out, or -1. */
int replicas_lsn_parse(const char *s, uint64_t *out);

/* A cookie value for lsn, bound to the session token. */
void replicas_cookie_make(const unsigned char token[32], uint64_t lsn,
			  char out[REPLICAS_COOKIE_LEN]);

/* The LSN in a cookie value made by replicas_cookie_make for token; -1 if not one. */
int replicas_cookie_read(const unsigned char token[32], const char *value, uint64_t *lsn);

/*
 * Lag in ms of a replica that replayed replay, given the primary's samples
 * lsn[i] taken at monotonic seconds at[i], oldest first (n >= 1), at time
 * now: 0 when replay >= the newest sample, else now minus the time of the
 * oldest sample still beyond replay (at least now - at[0] when every
 * sample is beyond it).
 */
double replicas_lag_ms(const uint64_t *lsn, const double *at, int n, uint64_t replay, double now);

#endif
