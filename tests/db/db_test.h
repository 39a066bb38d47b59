/* Shared by the database tests: pool settings against the test stack. */
#ifndef PS_DB_TEST_H
#define PS_DB_TEST_H

#include <string.h>

#include "db/pool.h"

/*
 * Settings for a pool of size + overflow connections to DATABASE_URL
 * under application_name name: long recycle, leak and idle limits, so a
 * test sees only what it provokes. The caller may change any field after.
 */
static inline void db_test_pool_settings(struct pool_settings *s, const char *url, const char *name,
					 int size, int overflow, double timeout,
					 const struct pool_stmt *stmts, int nstmts)
{
	memset(s, 0, sizeof(*s));
	s->database_url = url;
	s->application_name = name;
	s->size = size;
	s->max_overflow = overflow;
	s->timeout = timeout;
	s->recycle = 3600;
	s->connect_timeout = 5;
	s->statement_timeout_ms = 10000;
	s->leak_threshold = 60;
	s->idle_timeout = 60;
	s->stmts = stmts;
	s->nstmts = nstmts;
}

#endif
