/*
 * analytics: the operator's questions on a slow day, admin only.
 *
 *   GET  /admin/queries               top statements by total time
 *                                     (pg_stat_statements), each with the
 *                                     service's name for it; ?limit=1..200
 *   POST /admin/queries/reset         empty those statistics (audited)
 *   GET  /admin/queries/{name}/plan   EXPLAIN (FORMAT JSON) of one of the
 *                                     service's own statements, with its
 *                                     parameters given as repeated param=;
 *                                     analyze=true runs it, in a read-only
 *                                     transaction under a statement timeout
 *   GET  /admin/slow                  the last requests slower than
 *                                     SLOW_REQUEST_MS and where their time went
 *   GET  /admin/activity              the database's sessions (pg_stat_activity)
 *   POST /admin/activity/{pid}/cancel cancel one's statement (audited)
 *   GET  /admin/database              the schema's health: buffer hit ratio,
 *                                     tables (dead rows, vacuum, scans),
 *                                     unused indexes, replication lag
 *
 * Where pg_stat_statements is not installed, /admin/queries answers
 * {"available": false, "reason", "how_to_enable"} and the rest works.
 */
#ifndef PS_ANALYTICS_H
#define PS_ANALYTICS_H

#include <stddef.h>

#include "resources/resources.h"

extern const struct resource analytics_resource;

/*
 * The service's name of a statement from its text as PostgreSQL shows it
 * (led by the pool's comment: "/" "* name *" "/ SELECT ..."): 0 with name
 * filled (a-z, 0-9, _; shorter than len) and *rest at the text after the
 * comment; else -1 with *rest = query.
 */
int analytics_statement_tag(const char *query, char *name, size_t len, const char **rest);

#endif
