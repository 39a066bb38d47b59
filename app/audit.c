/*
 * audit: writes entries of the audit trail for the other resources (the
 * diff of two rows is computed by PostgreSQL's audit_diff, so a paint's
 * writes can record their entry in the same statement) and serves the
 * trail to admins.
 */
#include "audit.h"

#include <stdio.h>

#include "resource.h"

static const struct pool_stmt statements[] = {
	/* $1 actor id, $2 actor, $3 entity, $4 entity id, $5 action, $6 old, $7 new, $8 extra */
	{ "audit_insert",
	  "INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes) "
	  "VALUES ($1::int8, $2, $3, $4::int8, $5, "
	  "audit_diff($6::jsonb, $7::jsonb, " AUDIT_SKIP ") || coalesce($8::jsonb, '{}'))" },
};

const char *audit_entity_name(enum audit_entity e)
{
	return e == AUDIT_PAINT ? "paint" : "user";
}

static const char *json_or_null(struct json_object *o)
{
	return o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
}

int audit_record(PGconn *pg, int64_t actor_id, const char *actor, enum audit_entity entity,
		 int64_t entity_id, const char *action, struct json_object *old_row,
		 struct json_object *new_row, struct json_object *extra, PGresult **failed)
{
	char actor_text[24], id_text[24];
	const char *params[8];
	PGresult *r;

	snprintf(actor_text, sizeof(actor_text), "%lld", (long long)actor_id);
	snprintf(id_text, sizeof(id_text), "%lld", (long long)entity_id);
	params[0] = actor_id > 0 ? actor_text : NULL;
	params[1] = actor;
	params[2] = audit_entity_name(entity);
	params[3] = id_text;
	params[4] = action;
	params[5] = json_or_null(old_row);
	params[6] = json_or_null(new_row);
	params[7] = json_or_null(extra);
	r = PQexecPrepared(pg, "audit_insert", 8, params, NULL, NULL, 0);
	*failed = NULL;
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		*failed = r;
		return -1;
	}
	PQclear(r);
	return 0;
}

const struct resource audit_resource = {
	"audit", NULL, 0, statements, RESOURCE_ARRAY_LEN(statements),
};
