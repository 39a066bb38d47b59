/*
 * pgconnect: one libpq connection opened under a deadline: pgconnect_open
 * for one-shot users (migrations, operator commands, side connections),
 * pgconnect_until for the pools, which open their own.
 */
#ifndef PS_PGCONNECT_H
#define PS_PGCONNECT_H

#include <libpq-fe.h>
#include <stddef.h>

#include "db/pool.h"

/*
 * Connect with set's URL, sslmode, application_name, connect_timeout and
 * statement_timeout, retrying with exponential back-off and full jitter
 * while the error can pass (refused, too many clients, starting up), never
 * past deadline (monotonic seconds); fail at once on errors that cannot
 * pass (authentication, no such database). Returns the connection (caller
 * PQfinishes), or NULL with err filled.
 */
PGconn *pgconnect_until(const struct pool_settings *set, double deadline,
			struct pool_error *err);

/*
 * As pgconnect_until, but no attempt starts after retry_until (an
 * attempt under way may last until deadline): retry_until now makes one
 * attempt. failed(arg), when not NULL, is called after each attempt that
 * failed, before the next (so others can know at once, not when this
 * gives up).
 */
PGconn *pgconnect_tries(const struct pool_settings *set, double deadline, double retry_until,
			struct pool_error *err, void (*failed)(void *arg), void *arg);

/*
 * One attempt, not retried and not logged: for a sampler that tries again
 * on its next round and reports its own state changes (a read replica
 * named with target_session_attrs=standby refuses every attempt while
 * it is the primary).
 */
PGconn *pgconnect_probe(const struct pool_settings *set, double timeout, struct pool_error *err);

/*
 * Settings for a side connection (not a pool's): base with application
 * name "<base's name> <suffix>" (written into name, namelen bytes, which
 * must outlive out), the given statement timeout and no statements to
 * prepare. For the cache's drainer and the replicas' sampler.
 */
void pgconnect_side_settings(struct pool_settings *out, const struct pool_settings *base,
			     const char *suffix, char *name, size_t namelen, int statement_timeout_ms);

/*
 * One connection outside any pool (migrations, operator commands), with
 * the same settings, retries and deadline (timeout seconds from now).
 * Returns it (caller PQfinishes), or NULL with err filled.
 */
PGconn *pgconnect_open(const struct pool_settings *set, double timeout,
		       struct pool_error *err);

#endif
