/*
 * audit: writes entries of the audit trail for the other resources (the
 * diff of two rows is computed by PostgreSQL's audit_diff, so a paint's
 * writes can record their entry in the same statement) and serves the
 * trail to admins (GET /admin/audit: filters from a parameter table,
 * newest first, keyset pages by id).
 */
#include "resources/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cursor.h"
#include "base/strbuf.h"
#include "base/util.h"
#include "db/pool.h"
#include "http/context.h"
#include "resources/resources.h"

/* $1 actor id, $2 actor, $3 entity, $4 entity id, $5 action, $6 old, $7 new, $8 extra */
#define AUDIT_INSERT \
	"INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes) " \
	"VALUES ($1::int8, $2, $3, $4::int8, $5, " \
	"audit_diff($6::jsonb, $7::jsonb, " AUDIT_SKIP ") || coalesce($8::jsonb, '{}'))"

static const struct pool_stmt statements[] = {
	{ "audit_insert", AUDIT_INSERT },
};

const char *audit_entity_name(enum audit_entity e)
{
	return e == AUDIT_PAINT ? "paint" : e == AUDIT_USER ? "user" : "database";
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
	params[3] = entity_id > 0 ? id_text : NULL;
	params[4] = action;
	params[5] = json_or_null(old_row);
	params[6] = json_or_null(new_row);
	params[7] = json_or_null(extra);
	r = pool_exec_prepared(pg, "audit_insert", 8, params, NULL, NULL, 0);
	*failed = NULL;
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		*failed = r;
		return -1;
	}
	PQclear(r);
	return 0;
}

int audit_prepare(PGconn *pg, PGresult **failed)
{
	PGresult *r = PQprepare(pg, "audit_insert", AUDIT_INSERT, 0, NULL);

	*failed = NULL;
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		*failed = r;
		return -1;
	}
	PQclear(r);
	return 0;
}

/* ---- GET /admin/audit -------------------------------------------------------- */

#define AUDIT_DEFAULT_LIMIT 50
#define AUDIT_MAX_LIMIT 200
#define AUDIT_STR_(x) #x
#define AUDIT_STR(x) AUDIT_STR_(x)
#define AUDIT_MAX_PARAMS 8

/* One entry as the JSON object the API answers, built by PostgreSQL (keys in order). */
#define AUDIT_ITEM \
	"json_build_object('id', id, 'at', " \
	"to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
	"'actor', json_build_object('id', actor_id, 'username', actor), 'entity', entity, " \
	"'entity_id', entity_id, 'action', action, 'changes', changes, " \
	"'operation_id', operation_id)::text"

enum audit_param_kind {
	AP_ID,		/* a whole number 1..2^63-1: sql with $n */
	AP_TIME,	/* an ISO 8601 time with its zone: sql with $n */
	AP_LIMIT,	/* 1..AUDIT_MAX_LIMIT */
	AP_CURSOR,	/* the next_cursor of the previous page */
};

struct audit_param {
	const char *name;
	enum audit_param_kind kind;
	const char *sql;	/* the condition; "%d" is the value's $n */
	const char *message;	/* when bad */
};

static const struct audit_param audit_params[] = {
	{ "paint", AP_ID, " AND entity = 'paint' AND entity_id = $%d::int8",
	  "must be a paint id (a whole number from 1)" },
	{ "user", AP_ID, " AND entity = 'user' AND entity_id = $%d::int8",
	  "must be a user id (a whole number from 1)" },
	{ "actor", AP_ID, " AND actor_id = $%d::int8",
	  "must be a user id (a whole number from 1)" },
	{ "operation", AP_ID, " AND operation_id = $%d::int8",
	  "must be an operation id, such as an import's import_id (a whole number from 1)" },
	{ "since", AP_TIME, " AND at >= $%d::timestamptz",
	  "must be an ISO 8601 time with its zone, such as 2026-01-31T09:30:00Z "
	  "(write + as %2B)" },
	{ "until", AP_TIME, " AND at < $%d::timestamptz",
	  "must be an ISO 8601 time with its zone, such as 2026-01-31T09:30:00Z "
	  "(write + as %2B)" },
	{ "limit", AP_LIMIT, NULL, "must be a whole number from 1 to " AUDIT_STR(AUDIT_MAX_LIMIT) },
	{ "cursor", AP_CURSOR, " AND id < $%d::int8",
	  "is not a cursor of this list (it was altered)" },
};
#define NAUDIT_PARAMS (sizeof(audit_params) / sizeof(audit_params[0]))

/* n digits at *p (advanced), as a number within [lo, hi]; -1 when not. */
static int digits(const char **p, int n, int lo, int hi)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return v >= lo && v <= hi ? v : -1;
}

static int days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

int audit_time_valid(const char *s)
{
	const char *p = s;
	int y, m, d;

	if ((y = digits(&p, 4, 1, 9999)) < 0 || *p++ != '-' || (m = digits(&p, 2, 1, 12)) < 0 ||
	    *p++ != '-' || (d = digits(&p, 2, 1, 31)) < 0 || d > days_in_month(y, m))
		return 0;
	if (*p++ != 'T' || digits(&p, 2, 0, 23) < 0 || *p++ != ':' || digits(&p, 2, 0, 59) < 0)
		return 0;
	if (*p == ':') {
		p++;
		if (digits(&p, 2, 0, 59) < 0)
			return 0;
		if (*p == '.') {
			size_t n = strspn(++p, "0123456789");

			if (n < 1 || n > 6)
				return 0;
			p += n;
		}
	}
	if (*p == 'Z')
		return p[1] == '\0';
	if (*p != '+' && *p != '-')
		return 0;
	p++;
	return digits(&p, 2, 0, 15) >= 0 && *p++ == ':' && digits(&p, 2, 0, 59) >= 0 && *p == '\0';
}

/* The cursor after entry id: base64url of {"a": id}. */
static void cursor_make(struct strbuf *out, const char *id)
{
	struct json_object *o = json_object_new_object();
	char *enc;

	json_object_object_add(o, "a", json_object_new_int64(strtoll(id, NULL, 10)));
	enc = cursor_encode(o);
	strbuf_printf(out, "\"%s\"", enc);
	free(enc);
	json_object_put(o);
}

int audit_cursor_decode(const char *text, char id[24])
{
	struct json_object *o = cursor_decode(text, 80);
	int rc = o ? cursor_get_id(o, "a", id) : -1;

	if (o)
		json_object_put(o);
	return rc;
}

/* The query of one page: SQL and its values (borrowed from the request, or ids/limit). */
struct audit_query {
	struct strbuf sql;
	const char *params[AUDIT_MAX_PARAMS];
	char ids[AUDIT_MAX_PARAMS][24];
	int n;
	int64_t limit;
};

/* Apply one parameter's value v; 0, or -1 when v is bad. */
static int audit_apply(struct audit_query *aq, const struct audit_param *p, const char *v)
{
	int64_t id;

	switch (p->kind) {
	case AP_LIMIT:
		return parse_int64(v, 1, AUDIT_MAX_LIMIT, &aq->limit);
	case AP_ID:
		if (*v == '0' || parse_int64(v, 1, INT64_MAX, &id) != 0)
			return -1;
		snprintf(aq->ids[aq->n], 24, "%lld", (long long)id);
		aq->params[aq->n] = aq->ids[aq->n];
		break;
	case AP_TIME:
		if (!audit_time_valid(v))
			return -1;
		aq->params[aq->n] = v;	/* the request's string: outlives the query */
		break;
	case AP_CURSOR:
		if (audit_cursor_decode(v, aq->ids[aq->n]) != 0)
			return -1;
		aq->params[aq->n] = aq->ids[aq->n];
		break;
	}
	aq->n++;
	strbuf_printf(&aq->sql, p->sql, aq->n);
	return 0;
}

/* Build the page's SQL from the request; -1 with *errors (caller puts) when bad. */
static int audit_query_build(struct audit_query *aq, const struct http_query *q,
			     struct json_object **errors)
{
	struct json_object *errs = json_object_new_object();
	const char *v;
	size_t k;

	aq->n = 0;
	aq->limit = AUDIT_DEFAULT_LIMIT;
	strbuf_puts(&aq->sql, "SELECT id, " AUDIT_ITEM " FROM audit_log WHERE true");
	http_query_reject_unknown(q, &audit_params[0].name, NAUDIT_PARAMS, sizeof(audit_params[0]), errs);
	for (k = 0; k < NAUDIT_PARAMS; k++)
		if ((v = http_query_get(q, audit_params[k].name)) != NULL &&
		    audit_apply(aq, &audit_params[k], v) != 0)
			json_object_object_add(errs, audit_params[k].name,
					       json_object_new_string(audit_params[k].message));
	if (json_object_object_length(errs) > 0) {
		*errors = errs;
		return -1;
	}
	json_object_put(errs);
	/* One row more than asked tells whether there is a next page. */
	snprintf(aq->ids[aq->n], 24, "%lld", (long long)aq->limit + 1);
	aq->params[aq->n] = aq->ids[aq->n];
	aq->n++;
	strbuf_printf(&aq->sql, " ORDER BY id DESC LIMIT $%d", aq->n);
	return 0;
}

/* {"items": [...], "next_cursor": ...} from the rows of r (id, item JSON). */
static void audit_send_page(struct ctx *c, const struct audit_query *aq, const PGresult *r)
{
	struct strbuf *b = &c->resp.body;
	int rows = PQntuples(r), i;

	c->resp.status = 200;
	c->resp.content_type = "application/json";
	strbuf_reset(b);
	strbuf_puts(b, "{\"items\":[");
	for (i = 0; i < rows && i < aq->limit; i++) {
		if (i > 0)
			strbuf_putc(b, ',');
		strbuf_puts(b, PQgetvalue(r, i, 1));
	}
	strbuf_puts(b, "],\"next_cursor\":");
	if (rows > aq->limit)
		cursor_make(b, PQgetvalue(r, (int)aq->limit - 1, 0));
	else
		strbuf_puts(b, "null");
	strbuf_putc(b, '}');
	http_resp_header(&c->resp, "Cache-Control", "private, no-cache");
}

void audit_list(struct ctx *c)
{
	struct audit_query aq;
	struct json_object *errors;
	PGresult *r;

	strbuf_init(&aq.sql);
	if (audit_query_build(&aq, &c->req.query, &errors) != 0) {
		http_problem(&c->resp, 400, "some query parameters are invalid: see errors", errors);
		goto out;
	}
	if ((r = ctx_exec_dynamic(c, "audit_list", aq.sql.buf, aq.n, aq.params)) == NULL)
		goto out;
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		audit_send_page(c, &aq, r);
	else if (PQresultErrorField(r, PG_DIAG_SQLSTATE) &&
		 strncmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22", 2) == 0)
		http_problem(&c->resp, 400, "a time is out of range", NULL);	/* class 22: data */
	else
		ctx_db_error(c, r);
	PQclear(r);
out:
	strbuf_free(&aq.sql);
}

static const struct route routes[] = {
	{ "GET", "/admin/audit", audit_list, "audit.list", AUTH_ADMIN, true, 0 },
};

const struct resource audit_resource = {
	"audit", routes, RESOURCE_ARRAY_LEN(routes), statements, RESOURCE_ARRAY_LEN(statements),
};

