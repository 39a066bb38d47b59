/*
 * audit: the audit trail of writes to paints and users, and of logins,
 * failed logins and logouts (audit_log, migrations/0007_audit.sql, 0010). An entry names the actor, the entity, the
 * action and the changed fields with their old and new values; it is
 * written in the transaction of the write it describes, so it exists
 * exactly when the write committed.
 */
#ifndef PS_AUDIT_H
#define PS_AUDIT_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "resources/resources.h"

/* What an entry is about; AUDIT_DATABASE: the operator acted on PostgreSQL itself (analytics.h). */
enum audit_entity { AUDIT_PAINT, AUDIT_USER, AUDIT_DATABASE };

/* GET /admin/audit and the statements that write and read the trail. */
extern const struct resource audit_resource;

/* Keys audit_diff leaves out of every entry: bookkeeping, never changes. */
#define AUDIT_SKIP "'{version,updated_at,created_at,password_hash}'::text[]"

/*
 * Record one entry on pg, which must be inside the write's transaction
 * (BEGIN ... COMMIT by the caller). old_row and new_row are the entity
 * before and after as JSON objects (NULL for none: a create, a delete);
 * extra, when not NULL, is merged into the changes as given (e.g.
 * {"password": {"changed": true}}). actor_id and entity_id 0 stand for
 * none (an actor from the command line, a failed login naming no user).
 * Uses the prepared statement
 * "audit_insert". Returns 0, or -1 with the failed PGresult in *failed
 * (caller hands it to ctx_db_error and PQclears it).
 */
int audit_record(PGconn *pg, int64_t actor_id, const char *actor, enum audit_entity entity,
		 int64_t entity_id, const char *action, struct json_object *old_row,
		 struct json_object *new_row, struct json_object *extra, PGresult **failed);

/*
 * Prepare "audit_insert" on pg, a connection of no pool (the pools prepare
 * it on each of theirs), for audit_record in a one-shot command. Returns 0,
 * or -1 with the failed PGresult in *failed (caller PQclears it).
 */
int audit_prepare(PGconn *pg, PGresult **failed);

/* "paint", "user", "database" */
const char *audit_entity_name(enum audit_entity e);

struct ctx;

/*
 * GET /admin/audit: entries newest first (by id), {"items": [...],
 * "next_cursor": ...}; filters paint=<id> and user=<id> (entries about
 * that paint or user), actor=<user id> (entries by that user),
 * operation=<id> (the entries of one import, migration 0013), since
 * (inclusive) and until (exclusive) as ISO 8601 times, limit 1..200
 * (50), cursor. A bad or unknown parameter is a 400 naming it.
 */
void audit_list(struct ctx *c);

/*
 * 1 if s is an ISO 8601 time with its zone as the list accepts it:
 * YYYY-MM-DDTHH:MM[:SS[.ffffff]] then Z or +-HH:MM, every field in range
 * (days per month, leap years); else 0.
 */
int audit_time_valid(const char *s);

/* Decode a next_cursor of the list: 0 and the entry id as text, or -1. */
int audit_cursor_decode(const char *text, char id[24]);

#endif
