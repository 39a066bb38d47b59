/*
 * analytics: what an operator asks on a slow day (analytics.h). Every
 * figure is PostgreSQL's own (pg_stat_statements, pg_stat_activity, the
 * statistics views) or the service's own (the slow-request log); the
 * service's statements are told by name through the comment the pool
 * leads each with (pool.c, prepare_tagged).
 */
#define _GNU_SOURCE
#include "resources/analytics.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cache/cache.h"
#include "db/trace.h"
#include "http/context.h"
#include "obs/slowlog.h"
#include "resources/audit.h"

/* Rows /admin/queries lists by default and at most. */
#define QUERIES_DEFAULT 25
#define QUERIES_MAX 200
/* statement_timeout of a plan's EXPLAIN ANALYZE. */
#define PLAN_TIMEOUT_MS 5000
/* How long /admin/slow waits for a connection to add the query ids; it answers without them. */
#define SLOW_IDS_WAIT 0.5
/* A table is large from this many live rows: sequential scans of it are listed. */
#define LARGE_TABLE_ROWS 10000

static const struct pool_stmt statements[] = {
	{ "queries_top",
	  "SELECT s.queryid::text, r.rolname, s.query, s.calls, s.total_exec_time, "
	  "s.mean_exec_time, s.max_exec_time, s.rows, s.shared_blks_hit, s.shared_blks_read "
	  "FROM pg_stat_statements s LEFT JOIN pg_roles r ON r.oid = s.userid "
	  "WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
	  "ORDER BY s.total_exec_time DESC LIMIT $1::int" },
	{ "queries_reset", "SELECT pg_stat_statements_reset()" },
	/* The query ids of each of the service's statements, by its name (the pool's comment). */
	{ "queries_ids",
	  "SELECT m[1], string_agg(queryid::text, ',' ORDER BY calls DESC) FROM ("
	  "SELECT regexp_match(query, '^/\\* ([a-z0-9_]+) \\*/') AS m, queryid, calls "
	  "FROM pg_stat_statements "
	  "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) s "
	  "WHERE m IS NOT NULL GROUP BY m[1]" },
	{ "activity_list",
	  "SELECT pid, usename, application_name, client_addr::text, backend_type, state, "
	  "wait_event_type, wait_event, extract(epoch FROM now() - query_start), "
	  "extract(epoch FROM now() - xact_start), left(query, 2000), pid = pg_backend_pid() "
	  "FROM pg_stat_activity WHERE datname = current_database() ORDER BY query_start NULLS LAST" },
	{ "activity_cancel",
	  "SELECT pg_cancel_backend(pid), usename, left(query, 200) FROM pg_stat_activity "
	  "WHERE pid = $1::int AND datname = current_database() AND pid <> pg_backend_pid()" },
	{ "health_database",
	  "SELECT blks_hit, blks_read, xact_commit, xact_rollback, deadlocks, temp_bytes, "
	  "pg_database_size(datid) FROM pg_stat_database WHERE datname = current_database()" },
	{ "health_tables",
	  "SELECT relname, n_live_tup, n_dead_tup, seq_scan, seq_tup_read, coalesce(idx_scan, 0), "
	  "to_char(last_vacuum AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	  "to_char(last_autovacuum AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	  "to_char(last_analyze AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	  "to_char(last_autoanalyze AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	  "pg_total_relation_size(relid) FROM pg_stat_user_tables ORDER BY relname" },
	{ "health_unused_indexes",
	  "SELECT s.relname, s.indexrelname, pg_relation_size(s.indexrelid) "
	  "FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid "
	  "WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary "
	  "ORDER BY pg_relation_size(s.indexrelid) DESC, s.indexrelname" },
	{ "health_replication",
	  "SELECT application_name, client_addr::text, state, "
	  "extract(epoch FROM replay_lag), pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) "
	  "FROM pg_stat_replication ORDER BY application_name" },
};

/* ---- small helpers ------------------------------------------------------ */

static struct json_object *text_or_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : json_object_new_string(PQgetvalue(r, row, col));
}

static struct json_object *int_or_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL
					 : json_object_new_int64(strtoll(PQgetvalue(r, row, col), NULL, 10));
}

/* A number column, rounded to 3 decimals (times in ms or seconds). */
static struct json_object *num_or_null(const PGresult *r, int row, int col)
{
	char buf[48];

	if (PQgetisnull(r, row, col))
		return NULL;
	snprintf(buf, sizeof(buf), "%.3f", strtod(PQgetvalue(r, row, col), NULL));
	return json_object_new_double_s(strtod(buf, NULL), buf);
}

/* A column of a result as a JSON member: its key and how its text reads. */
struct column {
	const char *key;
	struct json_object *(*value)(const PGresult *r, int row, int col);
};

/* Every row of r as an object of the columns, in order. */
static struct json_object *rows_json(const PGresult *r, const struct column *cols, int ncols)
{
	struct json_object *a = json_object_new_array();
	int i, k;

	for (i = 0; i < PQntuples(r); i++) {
		struct json_object *x = json_object_new_object();

		for (k = 0; k < ncols; k++)
			json_object_object_add(x, cols[k].key, cols[k].value(r, i, k));
		json_object_array_add(a, x);
	}
	return a;
}

/* part's share of part + rest (a hit ratio, dead rows' share), or null when both are 0. */
static struct json_object *share(int64_t part, int64_t rest)
{
	return part + rest > 0 ? json_object_new_double((double)part / (double)(part + rest)) : NULL;
}

/* PostgreSQL's message of a failed result, one line. */
static void pg_message(const PGresult *r, char *out, size_t len)
{
	const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	snprintf(out, len, "%s", m ? m : "the database did not answer");
}

/* r's SQLSTATE is state, or of its class when state is two characters ("22"). */
static int sqlstate_is(const PGresult *r, const char *state)
{
	const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	return s && strncmp(s, state, strlen(state)) == 0;
}

/* pg_stat_statements is missing (42P01, 42883) or not loaded (55000). */
static int stats_missing(const PGresult *r)
{
	return sqlstate_is(r, "42P01") || sqlstate_is(r, "42883") || sqlstate_is(r, "55000");
}

#define HOW_TO_ENABLE                                                                         \
	"set shared_preload_libraries = 'pg_stat_statements' in postgresql.conf, restart "    \
	"PostgreSQL, and run CREATE EXTENSION pg_stat_statements in the service's database " \
	"(docs/operations.md, \"Query analytics\")"

/* 200 {"available": false, ...} when pg_stat_statements cannot answer. */
static void stats_unavailable(struct ctx *c, const PGresult *r)
{
	struct json_object *o = json_object_new_object();
	char msg[256];

	pg_message(r, msg, sizeof(msg));
	json_object_object_add(o, "available", json_object_new_boolean(0));
	json_object_object_add(o, "reason", json_object_new_string(msg));
	json_object_object_add(o, "how_to_enable", json_object_new_string(HOW_TO_ENABLE));
	json_object_object_add(o, "items", json_object_new_array());
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

int analytics_statement_tag(const char *query, char *name, size_t len, const char **rest)
{
	const char *p, *end;
	size_t n;

	*rest = query;
	if (strncmp(query, "/* ", 3) != 0)
		return -1;
	p = query + 3;
	for (end = p; *end && (islower((unsigned char)*end) || isdigit((unsigned char)*end) ||
			       *end == '_');
	     end++)
		;
	n = (size_t)(end - p);
	if (n == 0 || n >= len || strncmp(end, " */ ", 4) != 0)
		return -1;
	memcpy(name, p, n);
	name[n] = '\0';
	*rest = end + 4;
	return 0;
}

/* Audit an action on the database itself; 0, or -1 with the response set. */
static int audit_database(struct ctx *c, PGconn *pg, int64_t pid, const char *action,
			  struct json_object *extra)
{
	PGresult *failed;

	if (audit_record(pg, c->user_id, c->username, AUDIT_DATABASE, pid, action, NULL, NULL,
			 extra, &failed) == 0)
		return 0;
	ctx_db_error(c, failed);
	PQclear(failed);
	return -1;
}

/* ---- GET /admin/queries, POST /admin/queries/reset ------------------------- */

static void queries_list(struct ctx *c)
{
	const char *limit_s = http_query_get(&c->req.query, "limit");
	int64_t limit = QUERIES_DEFAULT;
	struct json_object *o, *items;
	char limit_text[24];
	const char *params[1];
	PGconn *pg;
	PGresult *r;
	int i;

	if (limit_s && parse_int64(limit_s, 1, QUERIES_MAX, &limit) != 0) {
		http_problem(&c->resp, 400, "limit must be a whole number from 1 to " PS_STR(QUERIES_MAX),
			     NULL);
		return;
	}
	c->no_replica = 1;	/* the primary's statistics: where the writes run too */
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	snprintf(limit_text, sizeof(limit_text), "%lld", (long long)limit);
	params[0] = limit_text;
	r = pool_exec_prepared(pg, "queries_top", 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		if (stats_missing(r))
			stats_unavailable(c, r);
		else
			ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	items = json_object_new_array();
	for (i = 0; i < PQntuples(r); i++) {
		struct json_object *q = json_object_new_object();
		char name[TRACE_NAME_LEN];
		const char *text;
		int64_t hit = strtoll(PQgetvalue(r, i, 8), NULL, 10);
		int64_t read = strtoll(PQgetvalue(r, i, 9), NULL, 10);

		json_object_object_add(q, "name",
				       analytics_statement_tag(PQgetvalue(r, i, 2), name, sizeof(name),
							       &text) == 0
					       ? json_object_new_string(name) : NULL);
		json_object_object_add(q, "queryid", text_or_null(r, i, 0));
		json_object_object_add(q, "role", text_or_null(r, i, 1));
		json_object_object_add(q, "query", json_object_new_string(text));
		json_object_object_add(q, "calls", int_or_null(r, i, 3));
		json_object_object_add(q, "total_ms", num_or_null(r, i, 4));
		json_object_object_add(q, "mean_ms", num_or_null(r, i, 5));
		json_object_object_add(q, "max_ms", num_or_null(r, i, 6));
		json_object_object_add(q, "rows", int_or_null(r, i, 7));
		json_object_object_add(q, "shared_blks_hit", json_object_new_int64(hit));
		json_object_object_add(q, "shared_blks_read", json_object_new_int64(read));
		json_object_object_add(q, "hit_ratio", share(hit, read));
		json_object_array_add(items, q);
	}
	PQclear(r);
	o = json_object_new_object();
	json_object_object_add(o, "available", json_object_new_boolean(1));
	json_object_object_add(o, "items", items);
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

static void queries_reset(struct ctx *c)
{
	PGconn *pg;
	PGresult *r;

	if ((pg = ctx_db(c, 0)) == NULL || ctx_db_exec(c, "BEGIN") != 0)
		return;
	if (audit_database(c, pg, 0, "reset_query_stats", NULL) != 0)
		return;
	r = pool_exec_prepared(pg, "queries_reset", 0, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		if (stats_missing(r)) {
			http_problem(&c->resp, 409, "pg_stat_statements is not available: " HOW_TO_ENABLE,
				     NULL);
		} else if (sqlstate_is(r, "42501")) {
			http_problem(&c->resp, 403,
				     "the service's database role may not reset pg_stat_statements: "
				     "GRANT EXECUTE ON FUNCTION pg_stat_statements_reset TO it",
				     NULL);
		} else {
			ctx_db_error(c, r);
		}
		PQclear(r);
		return;	/* the transaction is rolled back when the connection goes back */
	}
	PQclear(r);
	if (ctx_db_exec(c, "COMMIT") != 0)
		return;
	c->resp.status = 204;
}

/* ---- GET /admin/slow ------------------------------------------------------ */

/* The shared log's entries, each checked (slowlog_entry_parse) before it is listed. */
static int take_slow(const char *value, size_t len, void *arg)
{
	struct json_object *o = slowlog_entry_parse(value, len);

	if (o == NULL)
		return -1;
	json_object_array_add(arg, o);
	return 0;
}

/*
 * Each statement of each slow request gets the query ids PostgreSQL gave
 * its name (pg_stat_statements, most called first): what the log line's
 * names join to. Best effort, on the operator's probe connection with a
 * short wait (the page must answer in an incident): without the database
 * or the extension, the list is answered without them.
 */
static void add_query_ids(struct ctx *c, struct json_object *items)
{
	PGconn *pg = ctx_db_probe(c, SLOW_IDS_WAIT);
	struct json_object *ids;
	PGresult *r;
	size_t i, k;
	int row;

	if (pg == NULL) {
		http_resp_reset(&c->resp);	/* the failed checkout's 503 */
		return;
	}
	r = pool_exec_prepared(pg, "queries_ids", 0, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return;
	}
	ids = json_object_new_object();
	for (row = 0; row < PQntuples(r); row++) {
		struct json_object *a = json_object_new_array();
		char *list = xstrdup(PQgetvalue(r, row, 1)), *save = NULL, *id;

		for (id = strtok_r(list, ",", &save); id; id = strtok_r(NULL, ",", &save))
			json_object_array_add(a, json_object_new_string(id));
		free(list);
		json_object_object_add(ids, PQgetvalue(r, row, 0), a);
	}
	PQclear(r);
	for (i = 0; i < json_object_array_length(items); i++) {
		struct json_object *st = json_object_object_get(json_object_array_get_idx(items, i),
								"statements");

		for (k = 0; k < json_object_array_length(st); k++) {
			struct json_object *e = json_object_array_get_idx(st, k), *found;

			if (json_object_object_get_ex(ids, json_object_get_string(
							      json_object_object_get(e, "name")), &found))
				json_object_object_add(e, "queryids", json_object_get(found));
		}
	}
	json_object_put(ids);
}

static void slow_list(struct ctx *c)
{
	struct json_object *o = json_object_new_object(), *items = json_object_new_array();
	int64_t total = -1;
	const char *source = "all processes";

	if (cache_log_read(SLOWLOG_SHARED, SLOWLOG_MAX, take_slow, items) < 0) {
		/* Redis is not in use now: what this process saw itself. */
		struct slow_request *all = xcalloc(SLOWLOG_MAX, sizeof(*all));
		uint64_t seen;
		int i, n = slowlog_list(all, &seen);

		json_object_put(items);
		items = json_object_new_array();
		for (i = 0; i < n; i++)
			json_object_array_add(items, slowlog_json(&all[i]));
		free(all);
		total = (int64_t)seen;
		source = "this process";
	}
	add_query_ids(c, items);
	json_object_object_add(o, "threshold_ms", json_object_new_double(c->app->cfg->slow_request_ms));
	json_object_object_add(o, "kept", json_object_new_int(SLOWLOG_MAX));
	json_object_object_add(o, "source", json_object_new_string(source));
	json_object_object_add(o, "process_total", total >= 0 ? json_object_new_int64(total) : NULL);
	json_object_object_add(o, "items", items);
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

/* ---- GET /admin/activity, POST /admin/activity/{pid}/cancel --------------- */

/* activity_list's first columns; the query (tag taken off) and this_request follow. */
static const struct column activity_columns[] = {
	{ "pid", int_or_null }, { "user", text_or_null }, { "application", text_or_null },
	{ "client_addr", text_or_null }, { "backend_type", text_or_null }, { "state", text_or_null },
	{ "wait_event_type", text_or_null }, { "wait_event", text_or_null },
	{ "query_seconds", num_or_null }, { "transaction_seconds", num_or_null },
};

static void activity_list(struct ctx *c)
{
	struct json_object *o, *items;
	PGconn *pg;
	PGresult *r;
	int i;

	c->no_replica = 1;
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	r = pool_exec_prepared(pg, "activity_list", 0, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	items = rows_json(r, activity_columns, (int)RESOURCE_ARRAY_LEN(activity_columns));
	for (i = 0; i < PQntuples(r); i++) {
		struct json_object *a = json_object_array_get_idx(items, (size_t)i);
		char name[TRACE_NAME_LEN];
		const char *text = PQgetvalue(r, i, 10);

		json_object_object_add(a, "statement",
				       !PQgetisnull(r, i, 10) &&
				       analytics_statement_tag(text, name, sizeof(name), &text) == 0
					       ? json_object_new_string(name) : NULL);
		json_object_object_add(a, "query", PQgetisnull(r, i, 10) ? NULL
								       : json_object_new_string(text));
		json_object_object_add(a, "this_request",
				       json_object_new_boolean(strcmp(PQgetvalue(r, i, 11), "t") == 0));
	}
	PQclear(r);
	o = json_object_new_object();
	json_object_object_add(o, "items", items);
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

static void activity_cancel(struct ctx *c)
{
	char pid_text[16];
	const char *params[1];
	struct json_object *extra;
	int64_t pid;
	PGconn *pg;
	PGresult *r;

	snprintf(pid_text, sizeof(pid_text), "%.*s", (int)c->match.varlen[0], c->match.var[0]);
	if (c->match.varlen[0] >= sizeof(pid_text) || parse_int64(pid_text, 1, 2147483647, &pid) != 0) {
		http_problem(&c->resp, 404, "no such backend: a pid is a positive whole number", NULL);
		return;
	}
	params[0] = pid_text;
	if ((pg = ctx_db(c, 0)) == NULL || ctx_db_exec(c, "BEGIN") != 0)
		return;
	r = pool_exec_prepared(pg, "activity_cancel", 1, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		if (sqlstate_is(r, "42501"))
			http_problem(&c->resp, 403,
				     "the service's database role may not cancel that backend's "
				     "statement (grant it pg_signal_backend)", NULL);
		else
			ctx_db_error(c, r);
		PQclear(r);
		return;
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		http_problem(&c->resp, 404,
			     "no such backend in this database (or it is this request's own)", NULL);
		return;
	}
	extra = json_object_new_object();
	json_object_object_add(extra, "user", text_or_null(r, 0, 1));
	json_object_object_add(extra, "query", text_or_null(r, 0, 2));
	json_object_object_add(extra, "signalled",
			       json_object_new_boolean(strcmp(PQgetvalue(r, 0, 0), "t") == 0));
	PQclear(r);
	if (audit_database(c, pg, pid, "cancel", extra) != 0) {
		json_object_put(extra);
		return;
	}
	json_object_put(extra);
	if (ctx_db_exec(c, "COMMIT") != 0)
		return;
	c->resp.status = 204;
}

/* ---- GET /admin/database ---------------------------------------------------- */

/* Run a health statement; NULL (with the response set) when it failed. */
static PGresult *health(struct ctx *c, PGconn *pg, const char *name)
{
	PGresult *r = pool_exec_prepared(pg, name, 0, NULL, NULL, NULL, 0);

	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	ctx_db_error(c, r);
	PQclear(r);
	return NULL;
}

static struct json_object *health_database(const PGresult *r)
{
	struct json_object *o = json_object_new_object();
	int64_t hit, read;

	if (PQntuples(r) == 0)
		return o;
	hit = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	read = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	json_object_object_add(o, "buffer_hit_ratio", share(hit, read));
	json_object_object_add(o, "blocks_hit", json_object_new_int64(hit));
	json_object_object_add(o, "blocks_read", json_object_new_int64(read));
	json_object_object_add(o, "commits", int_or_null(r, 0, 2));
	json_object_object_add(o, "rollbacks", int_or_null(r, 0, 3));
	json_object_object_add(o, "deadlocks", int_or_null(r, 0, 4));
	json_object_object_add(o, "temp_bytes", int_or_null(r, 0, 5));
	json_object_object_add(o, "size_bytes", int_or_null(r, 0, 6));
	return o;
}

/* Every user table, and those whose sequential scans read many rows of a large table. */
static void health_tables(const PGresult *r, struct json_object **tables,
			  struct json_object **seq_scans)
{
	int i;

	*tables = json_object_new_array();
	*seq_scans = json_object_new_array();
	for (i = 0; i < PQntuples(r); i++) {
		struct json_object *t = json_object_new_object();
		int64_t live = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		int64_t dead = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		int64_t seq = strtoll(PQgetvalue(r, i, 3), NULL, 10);
		int64_t seq_read = strtoll(PQgetvalue(r, i, 4), NULL, 10);

		json_object_object_add(t, "table", text_or_null(r, i, 0));
		json_object_object_add(t, "live_rows", json_object_new_int64(live));
		json_object_object_add(t, "dead_rows", json_object_new_int64(dead));
		json_object_object_add(t, "dead_ratio", share(dead, live));
		json_object_object_add(t, "seq_scans", json_object_new_int64(seq));
		json_object_object_add(t, "seq_rows_read", json_object_new_int64(seq_read));
		json_object_object_add(t, "index_scans", int_or_null(r, i, 5));
		json_object_object_add(t, "last_vacuum", text_or_null(r, i, 6));
		json_object_object_add(t, "last_autovacuum", text_or_null(r, i, 7));
		json_object_object_add(t, "last_analyze", text_or_null(r, i, 8));
		json_object_object_add(t, "last_autoanalyze", text_or_null(r, i, 9));
		json_object_object_add(t, "size_bytes", int_or_null(r, i, 10));
		if (live >= LARGE_TABLE_ROWS && seq > 0 && seq_read / seq >= LARGE_TABLE_ROWS / 2)
			json_object_array_add(*seq_scans, json_object_get(t));
		json_object_array_add(*tables, t);
	}
}

static const struct column unused_index_columns[] = {
	{ "table", text_or_null }, { "index", text_or_null }, { "size_bytes", int_or_null },
};

static const struct column replication_columns[] = {
	{ "name", text_or_null }, { "client_addr", text_or_null }, { "state", text_or_null },
	{ "replay_lag_seconds", num_or_null }, { "replay_lag_bytes", int_or_null },
};

static void database_health(struct ctx *c)
{
	static const char *const names[] = {
		"health_database", "health_tables", "health_unused_indexes", "health_replication",
	};
	PGresult *r[RESOURCE_ARRAY_LEN(names)] = { NULL };
	struct json_object *o, *tables, *seq_scans;
	PGconn *pg;
	size_t i;

	c->no_replica = 1;
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	for (i = 0; i < RESOURCE_ARRAY_LEN(names); i++)
		if ((r[i] = health(c, pg, names[i])) == NULL)
			break;
	if (i == RESOURCE_ARRAY_LEN(names)) {
		o = json_object_new_object();
		health_tables(r[1], &tables, &seq_scans);
		json_object_object_add(o, "database", health_database(r[0]));
		json_object_object_add(o, "tables", tables);
		json_object_object_add(o, "large_table_seq_scans", seq_scans);
		json_object_object_add(o, "unused_indexes",
				       rows_json(r[2], unused_index_columns,
						 (int)RESOURCE_ARRAY_LEN(unused_index_columns)));
		json_object_object_add(o, "replication",
				       rows_json(r[3], replication_columns,
						 (int)RESOURCE_ARRAY_LEN(replication_columns)));
		http_resp_json(&c->resp, 200, o);
		json_object_put(o);
	}
	for (i = 0; i < RESOURCE_ARRAY_LEN(names); i++)
		PQclear(r[i]);
}

/* ---- GET /admin/queries/{name}/plan ---------------------------------------- */

/* name is one of the service's statements (resources_statements). */
static int own_statement(const char *name)
{
	int i, n;
	const struct pool_stmt *all = resources_statements(&n);

	for (i = 0; i < n; i++)
		if (strcmp(all[i].name, name) == 0)
			return 1;
	return 0;
}

/*
 * "EXPLAIN (FORMAT JSON[, ANALYZE, BUFFERS]) EXECUTE name('v1', ...)":
 * the values quoted by libpq. 0, or -1 (out of memory in libpq).
 */
static int explain_sql(PGconn *pg, const char *name, int analyze, const struct http_query *q,
		       struct strbuf *sql)
{
	int i, n = 0;

	strbuf_printf(sql, "EXPLAIN (FORMAT JSON%s) EXECUTE %s", analyze ? ", ANALYZE, BUFFERS" : "",
		      name);
	for (i = 0; i < q->count; i++) {
		char *lit;

		if (strcmp(q->params[i].key, "param") != 0)
			continue;
		if ((lit = PQescapeLiteral(pg, q->params[i].value, strlen(q->params[i].value))) == NULL)
			return -1;
		strbuf_printf(sql, "%s%s", n++ ? ", " : "(", lit);
		PQfreemem(lit);
	}
	if (n)
		strbuf_printf(sql, ")");
	return 0;
}

/* How many param= values the request gives. */
static int count_params(const struct http_query *q)
{
	int i, n = 0;

	for (i = 0; i < q->count; i++)
		n += strcmp(q->params[i].key, "param") == 0;
	return n;
}

/* Run the EXPLAIN in a read-only transaction under PLAN_TIMEOUT_MS; answer its plan. */
static void run_explain(struct ctx *c, PGconn *pg, const char *sql, int analyze)
{
	PGresult *r;
	char msg[256];

	if (ctx_db_exec(c, "BEGIN READ ONLY") != 0 ||
	    ctx_db_exec(c, "SET LOCAL statement_timeout = " PS_STR(PLAN_TIMEOUT_MS)) != 0)
		return;
	r = PQexec(pg, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		pg_message(r, msg, sizeof(msg));
		if (sqlstate_is(r, "25006")) {
			http_problem(&c->resp, 422, "analyze runs only read-only statements: this one "
				     "writes (ask for the plan without analyze)", NULL);
		} else if (sqlstate_is(r, "57014")) {
			http_problem(&c->resp, 422, "the statement ran longer than the plan's "
				     PS_STR(PLAN_TIMEOUT_MS) " ms limit", NULL);
		} else if (sqlstate_is(r, "22") || sqlstate_is(r, "42")) {
			/* data exceptions (a value of the wrong type) and the like: the parameters */
			char detail[320];

			snprintf(detail, sizeof(detail), "PostgreSQL refused the parameters: %s", msg);
			http_problem(&c->resp, 422, detail, NULL);
		} else {
			ctx_db_error(c, r);
		}
		PQclear(r);
		return;
	}
	{
		struct json_object *plan = json_tokener_parse(PQgetvalue(r, 0, 0));
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "analyze", json_object_new_boolean(analyze));
		json_object_object_add(o, "plan", plan);
		http_resp_json(&c->resp, 200, o);
		json_object_put(o);
	}
	PQclear(r);
	/* The read-only transaction is rolled back as the connection goes back (pool.h). */
}

static void query_plan(struct ctx *c)
{
	const char *analyze_s = http_query_get(&c->req.query, "analyze");
	char name[TRACE_NAME_LEN];
	struct strbuf sql;
	PGresult *failed = NULL, *d;
	PGconn *pg;
	int analyze, want, have = count_params(&c->req.query);

	snprintf(name, sizeof(name), "%.*s", (int)c->match.varlen[0], c->match.var[0]);
	if (c->match.varlen[0] >= sizeof(name) || !own_statement(name)) {
		http_problem(&c->resp, 404, "no such statement of the service's (GET /admin/queries "
			     "names them)", NULL);
		return;
	}
	analyze = analyze_s && strcmp(analyze_s, "true") == 0;
	if (analyze_s && !analyze && strcmp(analyze_s, "false") != 0) {
		http_problem(&c->resp, 400, "analyze is true or false", NULL);
		return;
	}
	c->no_replica = 1;
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	if (pool_prepare(pg, name, &failed) != 0) {
		ctx_db_error(c, failed);
		PQclear(failed);
		return;
	}
	d = PQdescribePrepared(pg, name);
	if (PQresultStatus(d) != PGRES_COMMAND_OK) {
		ctx_db_error(c, d);
		PQclear(d);
		return;
	}
	want = PQnparams(d);
	PQclear(d);
	if (have != want) {
		char detail[128];

		snprintf(detail, sizeof(detail), "%s takes %d parameter%s (param=...), %d given", name,
			 want, want == 1 ? "" : "s", have);
		http_problem(&c->resp, 400, detail, NULL);
		return;
	}
	strbuf_init(&sql);
	if (explain_sql(pg, name, analyze, &c->req.query, &sql) == 0)
		run_explain(c, pg, sql.buf, analyze);
	else
		http_problem(&c->resp, 400, "a parameter could not be quoted", NULL);
	strbuf_free(&sql);
}

static const struct route routes[] = {
	{ "GET", "/admin/queries", queries_list, "admin.queries", AUTH_ADMIN, true, 0 },
	{ "POST", "/admin/queries/reset", queries_reset, "admin.queries.reset", AUTH_ADMIN, false, 0 },
	{ "GET", "/admin/queries/{name}/plan", query_plan, "admin.queries.plan", AUTH_ADMIN, true, 0 },
	{ "GET", "/admin/slow", slow_list, "admin.slow", AUTH_ADMIN, true, 0 },
	{ "GET", "/admin/activity", activity_list, "admin.activity", AUTH_ADMIN, true, 0 },
	{ "POST", "/admin/activity/{pid}/cancel", activity_cancel, "admin.activity.cancel",
	  AUTH_ADMIN, false, 0 },
	{ "GET", "/admin/database", database_health, "admin.database", AUTH_ADMIN, true, 0 },
};

const struct resource analytics_resource = {
	"analytics", routes, RESOURCE_ARRAY_LEN(routes), statements, RESOURCE_ARRAY_LEN(statements),
};
