/*
 * pgconnect: opening one libpq connection the way every part of the
 * service needs it: non-blocking, with the pool's settings, under a
 * deadline, retrying with jittered back-off only while the error can pass.
 * The pool, the cache's drainer and the operator commands all open theirs
 * here.
 */
#define _GNU_SOURCE
#include "db/pgconnect.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"

/* Whether a failed connection attempt may succeed if tried again. */
static int connect_error_is_transient(const char *msg)
{
	static const char *const permanent[] = {
		"authentication failed", "pg_hba.conf", "does not exist",
		"password is required", "invalid", "no password supplied",
		"permission denied",
	};
	size_t i;

	for (i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
		if (strstr(msg, permanent[i]))
			return 0;
	return 1;
}

/*
 * One non-blocking connection attempt that gives up at deadline (or after
 * connect_timeout). Returns the connection, good or bad (PQfinish it), or
 * NULL when the attempt ran out of time: *cut_short then says whether
 * deadline came before connect_timeout.
 */
static PGconn *connect_once(const struct pool_settings *set, double deadline, int *cut_short)
{
	char timeout[16], options[64];
	const char *keys[8], *vals[8];
	double attempt_end = now_mono() + set->connect_timeout;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	PGconn *pg;
	int n = 0;

	*cut_short = attempt_end > deadline;
	if (*cut_short)
		attempt_end = deadline;
	snprintf(timeout, sizeof(timeout), "%d", set->connect_timeout);
	snprintf(options, sizeof(options), "-c statement_timeout=%d",
		 set->statement_timeout_ms);
	/* Keywords before dbname yield to the URL; those after it win. */
	if (set->sslmode) {
		keys[n] = "sslmode"; vals[n++] = set->sslmode;
	}
	keys[n] = "dbname"; vals[n++] = set->database_url;
	keys[n] = "application_name"; vals[n++] = set->application_name;
	keys[n] = "connect_timeout"; vals[n++] = timeout;
	keys[n] = "options"; vals[n++] = options;
	keys[n] = NULL; vals[n] = NULL;

	pg = PQconnectStartParams(keys, vals, 1);
	if (pg == NULL)
		die("pool: out of memory starting a connection");
	if (PQstatus(pg) == CONNECTION_BAD)
		return pg;
	for (;;) {
		struct pollfd pfd;
		double left;
		int rc;

		if (st == PGRES_POLLING_OK || st == PGRES_POLLING_FAILED)
			break;
		left = attempt_end - now_mono();
		if (left <= 0) {
			PQfinish(pg);
			return NULL;
		}
		pfd.fd = PQsocket(pg);
		pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		pfd.revents = 0;
		rc = poll(&pfd, 1, (int)(left * 1000.0) + 1);
		if (rc < 0 && errno != EINTR)
			break;
		if (rc > 0)
			st = PQconnectPoll(pg);
	}
	return pg;
}

/* When a failure to connect was last logged (log_allowed). */
static atomic_llong failure_logged_ms;

PGconn *pgconnect_until(const struct pool_settings *set, double deadline,
			struct pool_error *err)
{
	return pgconnect_tries(set, deadline, deadline, err, NULL, NULL);
}

/* One attempt: the connection, or NULL with err filled. */
static PGconn *try_once(const struct pool_settings *set, double deadline, struct pool_error *err)
{
	int cut_short;
	PGconn *pg = connect_once(set, deadline, &cut_short);

	err->kind = POOL_ERR_CONNECT;
	err->cut_short = 0;
	if (pg == NULL) {
		err->cut_short = cut_short;
		snprintf(err->msg, sizeof(err->msg), "timed out connecting to PostgreSQL");
		return NULL;
	}
	if (PQstatus(pg) == CONNECTION_OK) {
		err->kind = POOL_ERR_NONE;
		return pg;
	}
	snprintf(err->msg, sizeof(err->msg), "%s", PQerrorMessage(pg));
	err->msg[strcspn(err->msg, "\n")] = '\0';
	PQfinish(pg);
	return NULL;
}

PGconn *pgconnect_probe(const struct pool_settings *set, double timeout, struct pool_error *err)
{
	return try_once(set, now_mono() + timeout, err);
}

PGconn *pgconnect_tries(const struct pool_settings *set, double deadline, double retry_until,
			struct pool_error *err, void (*failed)(void *arg), void *arg)
{
	static _Thread_local unsigned seed;
	double backoff = 0.05;
	int attempt;

	if (seed == 0)
		seed = (unsigned)(now_wall() * 1e6) ^ (unsigned)pthread_self();
	for (attempt = 1;; attempt++) {
		PGconn *pg = try_once(set, deadline, err);
		double sleep_for, left;
		struct timespec ts;

		if (pg != NULL)
			return pg;
		if (failed)
			failed(arg);
		left = (retry_until < deadline ? retry_until : deadline) - now_mono();
		if (!connect_error_is_transient(err->msg) || left <= 0.001)
			break;
		sleep_for = backoff * ((double)(rand_r(&seed) % 1000) / 1000.0);
		if (sleep_for > left)
			sleep_for = left;
		ts.tv_sec = (time_t)sleep_for;
		ts.tv_nsec = (long)((sleep_for - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
		if (deadline - now_mono() <= 0.001)
			break;	/* no time for another: the last attempt's error stands (refused is not "timed out") */
		if (backoff < 2.0)
			backoff *= 2;
	}
	/* Once a second at most: while it is down, every request finds it so. */
	if (log_allowed(&failure_logged_ms, 1.0))
		log_msg(LOG_WARN, "pool: cannot connect to PostgreSQL (attempt %d): %s", attempt,
			err->msg);
	return NULL;
}

PGconn *pgconnect_open(const struct pool_settings *set, double timeout,
		       struct pool_error *err)
{
	return pgconnect_until(set, now_mono() + timeout, err);
}


void pgconnect_side_settings(struct pool_settings *out, const struct pool_settings *base,
			     const char *suffix, char *name, size_t namelen, int statement_timeout_ms)
{
	*out = *base;
	snprintf(name, namelen, "%s %s", base->application_name ? base->application_name : "paint_studio",
		 suffix);
	out->application_name = name;
	out->statement_timeout_ms = statement_timeout_ms;
	out->stmts = NULL;
	out->nstmts = 0;
}
