/*
 * bulk: bulk edits and their undo (bulk.h). One transaction each:
 *
 * 1. The paints chosen (by ids, or by the list's own query builder for a
 *    filter) go into a temporary table with their place in the list's
 *    order. An applied edit first takes PAINT_BULK_LOCK_SQL (an import or
 *    another bulk edit waits, or went first), then locks the paints FOR
 *    UPDATE in id order: a single PATCH waits, or went first and is read;
 *    a filter runs again once the locks are held (what a PATCH took out of
 *    it is left alone).
 * 2. Set-based statements judge each paint: its version, whether the
 *    change changes it, whether an added value leaves its bounds (then
 *    the whole edit is refused, those paints listed).
 * 3. One operation row (kind 'bulk'), then one UPDATE of the changed
 *    paints writing each one's audit entry (the changed fields' old and
 *    new values, and the version before and after, which the undo needs)
 *    and its cache outbox row; COMMIT; the cache's invalidations before
 *    the answer (cache_after_writes), as the import does.
 *
 * The undo reads the entries of its operation, locks their paints, and
 * writes back the old values of each paint still at the version the edit
 * left; the others were changed or deleted since, and are listed.
 */
#include "resources/bulk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "base/util.h"
#include "cache/cache.h"
#include "http/context.h"
#include "resources/bulk_model.h"
#include "resources/paint_store.h"

#define SQL_TABLE \
	"CREATE TEMP TABLE bulk_rows (id int8 PRIMARY KEY, ord int8 NOT NULL, version int8, " \
	"changed bool, bad bool) ON COMMIT DROP"

/* $1 the ids as an int8[] text; a repeated id keeps its first place. */
#define SQL_FILL_IDS \
	"INSERT INTO bulk_rows (id, ord) SELECT id, min(ord) FROM unnest($1::int8[]) " \
	"WITH ORDINALITY u(id, ord) GROUP BY id"

/* Ids that name no paint: each, and how many in all. */
#define SQL_UNKNOWN \
	"SELECT b.id, count(*) OVER () FROM bulk_rows b WHERE NOT EXISTS " \
	"(SELECT 1 FROM paints p WHERE p.id = b.id) ORDER BY b.ord LIMIT " PS_STR(BULK_MAX_LISTED)

#define SQL_LOCK_ROWS \
	"SELECT id FROM paints WHERE id IN (SELECT id FROM bulk_rows) ORDER BY id FOR UPDATE"

#define SQL_OUT_OF_BOUNDS \
	"SELECT id, count(*) OVER () FROM bulk_rows WHERE bad ORDER BY ord LIMIT " PS_STR(BULK_MAX_LISTED)

#define SQL_COUNTS \
	"SELECT count(*) FILTER (WHERE changed), count(*) FILTER (WHERE NOT changed) FROM bulk_rows"

/* $1 actor id, $2 actor name, $3 the summary (JSON). */
#define SQL_OPERATION \
	"INSERT INTO operations (kind, actor_id, actor, summary) " \
	"VALUES ('bulk', $1::int8, $2, $3::jsonb) RETURNING id"

/* An entry's changes: the fields' (audit_diff) and the version before and after. */
#define ENTRY_CHANGES \
	"audit_diff(to_jsonb(prev), to_jsonb(w), " PAINT_AUDIT_SKIP ") || jsonb_build_object('version', " \
	"jsonb_build_object('old', prev.version, 'new', w.version))"

/*
 * The write of a bulk edit and of an undo alike, in two halves around
 * the SET list and the table of rows: %s the assignments, %s the rows'
 * condition. $1 actor id, $2 actor name, $3 operation id, $4 the action.
 * Rows: (paint id, outbox id).
 */
#define SQL_WRITE \
	"WITH prev AS (SELECT p.* FROM paints p JOIN %1$s t ON t.id = p.id WHERE %2$s), " \
	"w AS (UPDATE paints p SET %3$s, version = p.version + 1, updated_at = now() " \
	"FROM %1$s t WHERE t.id = p.id AND %2$s AND p.version = t.version RETURNING p.*), " \
	"a AS (INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes, operation_id) " \
	"SELECT $1::int8, $2, 'paint', w.id, $4, " ENTRY_CHANGES ", $3::int8 FROM w JOIN prev ON prev.id = w.id), " \
	"o AS (INSERT INTO cache_outbox (paint_id) SELECT id FROM w RETURNING id, paint_id) " \
	"SELECT paint_id, id FROM o"

/* ---- undo ------------------------------------------------------------------ */

/* $1 the operation: its kind, whether it is an undo, and the undo that undid it already (or NULL). */
#define SQL_UNDO_OPERATION \
	"SELECT kind, summary ? 'undoes', (SELECT min(u.id) FROM operations u WHERE u.kind = 'bulk' " \
	"AND u.summary ->> 'undoes' = $1::int8::text) FROM operations WHERE id = $1::int8"

#define SQL_UNDO_TABLE \
	"CREATE TEMP TABLE undo_rows (id int8 PRIMARY KEY, changes jsonb NOT NULL, after int8, " \
	"version int8, status text) ON COMMIT DROP"

#define SQL_UNDO_FILL \
	"INSERT INTO undo_rows (id, changes, after) SELECT entity_id, changes, " \
	"(changes -> 'version' ->> 'new')::int8 FROM audit_log WHERE operation_id = $1::int8 " \
	"AND entity = 'paint'"

#define SQL_UNDO_LOCK \
	"SELECT id FROM paints WHERE id IN (SELECT id FROM undo_rows) ORDER BY id FOR UPDATE"

#define SQL_UNDO_CLASSIFY \
	"UPDATE undo_rows u SET version = p.version, status = CASE WHEN p.id IS NULL THEN 'deleted' " \
	"WHEN p.version = u.after THEN 'restore' ELSE 'changed' END " \
	"FROM undo_rows x LEFT JOIN paints p ON p.id = x.id WHERE x.id = u.id"

#define SQL_UNDO_SKIPPED \
	"SELECT id, status, version, count(*) OVER () FROM undo_rows WHERE status <> 'restore' " \
	"ORDER BY id LIMIT " PS_STR(BULK_MAX_LISTED)

#define SQL_UNDO_COUNT "SELECT count(*) FROM undo_rows WHERE status = 'restore'"

/* A bulk edit in progress. */
struct bulk_run {
	struct bulk_request req;
	struct paint_list_query lq;
	int have_lq;
	struct bulk_sql sql;
	int64_t changed, unchanged;
	int64_t *paints;	/* the written paints, for the cache */
	int npaints;
	struct strbuf outbox;	/* "{id,...}" of their outbox rows */
};

/* The list's errors for the filter, each named "filter.<name>": a 422. */
static void filter_refused(struct ctx *c, struct json_object *list_errors)
{
	struct json_object *errs = json_object_new_object();
	char name[80];

	json_object_object_foreach(list_errors, key, val) {
		snprintf(name, sizeof(name), "filter.%.60s", key);
		json_object_object_add(errs, name, json_object_get(val));
	}
	json_object_put(list_errors);
	http_problem(&c->resp, 422, "the filter is not one the list takes: see errors", errs);
}

/* A 422 listing ids (rows of r: id, total) with detail's count. */
static void refuse_ids(struct ctx *c, const PGresult *r, const char *what, const char *member)
{
	struct json_object *m = json_object_new_object(), *ids = json_object_new_array();
	long long total = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	char detail[200];
	int i;

	for (i = 0; i < PQntuples(r); i++)
		json_object_array_add(ids, json_object_new_int64(strtoll(PQgetvalue(r, i, 0), NULL, 10)));
	json_object_object_add(m, member, ids);
	json_object_object_add(m, "count", json_object_new_int64(total));
	snprintf(detail, sizeof(detail), "%lld %s: nothing was changed", total, what);
	http_problem_with(&c->resp, 422, detail, m);
}

/* The ids as an int8[] literal: "{1,2,3}"; caller frees. */
static char *ids_array(const struct bulk_request *req)
{
	struct strbuf sb;
	int i;

	strbuf_init(&sb);
	strbuf_putc(&sb, '{');
	for (i = 0; i < req->nids; i++)
		strbuf_printf(&sb, "%s%lld", i ? "," : "", (long long)req->ids[i]);
	strbuf_putc(&sb, '}');
	return strbuf_detach(&sb, NULL);
}

/* The paints a filter matches into bulk_rows, in the list's order; 0, or -1 with the response set. */
static int fill_filter(struct ctx *c, struct bulk_run *run)
{
	struct json_object *m;
	struct strbuf sql;
	PGresult *r;
	long long n;
	char detail[200];
	int rc = -1;

	strbuf_init(&sql);
	strbuf_printf(&sql, "INSERT INTO bulk_rows (id, ord) SELECT l.id, row_number() OVER () FROM (%s "
		      "LIMIT %d) l", run->lq.sql.buf, BULK_MAX_PAINTS + 1);
	r = ctx_exec_expect(c, "bulk_fill_filter", sql.buf, run->lq.nparams, run->lq.params,
			    PGRES_COMMAND_OK);
	if (r == NULL)
		goto out;
	n = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	if (n > BULK_MAX_PAINTS) {
		strbuf_reset(&sql);
		strbuf_printf(&sql, "SELECT count(*) FROM (%s) l", run->lq.sql.buf);
		if ((r = ctx_exec_expect(c, "bulk_count_filter", sql.buf, run->lq.nparams, run->lq.params,
					 PGRES_TUPLES_OK)) == NULL)
			goto out;
		n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		snprintf(detail, sizeof(detail), "the filter matches %lld paints, more than a bulk edit "
			 "changes (" PS_STR(BULK_MAX_PAINTS) "): narrow it", n);
		m = json_object_new_object();
		json_object_object_add(m, "count", json_object_new_int64(n));
		http_problem_with(&c->resp, 422, detail, m);
		goto out;
	}
	rc = 0;
out:
	strbuf_free(&sql);
	return rc;
}

/* Choose the paints: into bulk_rows, each known. 0, or -1 with the response set. */
static int choose(struct ctx *c, struct bulk_run *run)
{
	const char *params[1];
	char *ids;
	PGresult *r;
	int rc;

	if (ctx_exec_ok(c, "bulk_table", SQL_TABLE, 0, NULL, PGRES_COMMAND_OK) != 0)
		return -1;
	if (run->req.by_filter)
		return fill_filter(c, run);
	params[0] = ids = ids_array(&run->req);
	rc = ctx_exec_ok(c, "bulk_fill_ids", SQL_FILL_IDS, 1, params, PGRES_COMMAND_OK);
	free(ids);
	if (rc != 0 || (r = ctx_exec_expect(c, "bulk_unknown", SQL_UNKNOWN, 0, NULL, PGRES_TUPLES_OK)) == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		refuse_ids(c, r, "of the ids name no paint", "unknown");
		rc = -1;
	}
	PQclear(r);
	return rc;
}

/*
 * After the row locks: a paint chosen by the filter that a write which
 * went first took out of it (its brand changed, say) is no longer chosen.
 * The filter runs again, reading what committed; 0, or -1 with the response set.
 */
static int recheck_filter(struct ctx *c, struct bulk_run *run)
{
	struct strbuf sql;
	int rc;

	strbuf_init(&sql);
	strbuf_printf(&sql, "DELETE FROM bulk_rows WHERE id NOT IN (SELECT l.id FROM (%s) l)", run->lq.sql.buf);
	rc = ctx_exec_ok(c, "bulk_recheck_filter", sql.buf, run->lq.nparams, run->lq.params,
			 PGRES_COMMAND_OK);
	strbuf_free(&sql);
	return rc;
}

/*
 * Lock the paints (unless a preview), then judge each: its version,
 * changed or not, out of bounds. 0 with the counts, or -1 with the
 * response set (a 422 listing the paints an add would take out of bounds).
 */
static int judge(struct ctx *c, struct bulk_run *run, int preview)
{
	struct strbuf sql;
	PGresult *r;
	int rc = -1;

	strbuf_init(&sql);
	strbuf_printf(&sql, "UPDATE bulk_rows b SET version = p.version, changed = %s IS DISTINCT FROM %s, "
		      "bad = %s FROM paints p WHERE p.id = b.id", run->sql.old.buf, run->sql.new.buf,
		      run->sql.bounds.buf);
	if ((!preview && (ctx_exec_ok(c, "bulk_lock", PAINT_BULK_LOCK_SQL, 0, NULL, PGRES_TUPLES_OK) != 0 ||
			  ctx_exec_ok(c, "bulk_lock_rows", SQL_LOCK_ROWS, 0, NULL, PGRES_TUPLES_OK) != 0 ||
			  (run->req.by_filter && recheck_filter(c, run) != 0))) ||
	    ctx_exec_ok(c, "bulk_judge", sql.buf, run->sql.nparams, run->sql.params, PGRES_COMMAND_OK) != 0 ||
	    (r = ctx_exec_expect(c, "bulk_out_of_bounds", SQL_OUT_OF_BOUNDS, 0, NULL, PGRES_TUPLES_OK)) == NULL)
		goto out;
	if (PQntuples(r) > 0) {
		refuse_ids(c, r, "paints would leave their field's bounds", "out_of_bounds");
		PQclear(r);
		goto out;
	}
	PQclear(r);
	if ((r = ctx_exec_expect(c, "bulk_counts", SQL_COUNTS, 0, NULL, PGRES_TUPLES_OK)) == NULL)
		goto out;
	run->changed = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	run->unchanged = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	rc = 0;
out:
	strbuf_free(&sql);
	return rc;
}

/* Text of r's cell as a JSON value (jsonb text PostgreSQL wrote); NULL when unreadable. */
static struct json_object *cell_json(const PGresult *r, int row, int col)
{
	return json_tokener_parse(PQgetvalue(r, row, col));
}

/* The preview's answer: the counts and the first BULK_SAMPLE paints, before and after. */
static void preview_answer(struct ctx *c, struct bulk_run *run)
{
	struct json_object *o, *sample;
	struct strbuf sql;
	PGresult *r;
	int i;

	strbuf_init(&sql);
	strbuf_printf(&sql, "SELECT " PAINT_COLUMNS ", %s::text, %s::text FROM paints p JOIN "
		      "(SELECT id AS bid, ord FROM bulk_rows) b ON b.bid = p.id ORDER BY b.ord LIMIT %d",
		      run->sql.before.buf, run->sql.after.buf, BULK_SAMPLE);
	r = ctx_exec_expect(c, "bulk_sample", sql.buf, run->sql.nparams, run->sql.params, PGRES_TUPLES_OK);
	strbuf_free(&sql);
	if (r == NULL)
		return;
	o = json_object_new_object();
	json_object_object_add(o, "count", json_object_new_int64(run->changed));
	json_object_object_add(o, "matched", json_object_new_int64(run->changed + run->unchanged));
	json_object_object_add(o, "unchanged", json_object_new_int64(run->unchanged));
	sample = json_object_new_array();
	for (i = 0; i < PQntuples(r); i++) {
		struct json_object *p = paint_row_json(r, i, c->app->cfg->low_stock_threshold);

		json_object_object_add(p, "before", cell_json(r, i, COL_COUNT));
		json_object_object_add(p, "after", cell_json(r, i, COL_COUNT + 1));
		json_object_array_add(sample, p);
	}
	json_object_object_add(o, "sample", sample);
	PQclear(r);
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

/* Note the (paint id, outbox id) rows of r for the cache; their number. */
static int note_written(int64_t **paints, int *npaints, struct strbuf *outbox, const PGresult *r)
{
	int i, n = PQntuples(r);

	*paints = xrealloc(*paints, (size_t)(*npaints + n + 1) * sizeof(int64_t));
	strbuf_putc(outbox, '{');
	for (i = 0; i < n; i++) {
		(*paints)[(*npaints)++] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		strbuf_printf(outbox, "%s%s", i ? "," : "", PQgetvalue(r, i, 1));
	}
	strbuf_putc(outbox, '}');
	return n;
}

/*
 * Insert the operation (summary consumed) and write the rows of table
 * where cond holds with assign: 0 with op_id and the written paints noted,
 * or -1 with the response set. extra: more parameters from $5 on.
 */
static int write_rows(struct ctx *c, struct json_object *summary, const char *table, const char *cond,
		      const char *assign, const char *action, const char *const *extra, int nextra,
		      char op_id[24], int64_t **paints, int *npaints, struct strbuf *outbox)
{
	const char *params[4 + PF_COUNT];
	char actor[24];
	struct strbuf sql;
	PGresult *r;
	int i, rc = -1;

	snprintf(actor, sizeof(actor), "%lld", (long long)c->user_id);
	params[0] = actor;
	params[1] = c->username;
	params[2] = json_object_to_json_string_ext(summary, JSON_C_TO_STRING_PLAIN);
	r = ctx_exec_expect(c, "bulk_operation", SQL_OPERATION, 3, params, PGRES_TUPLES_OK);
	json_object_put(summary);
	if (r == NULL)
		return -1;
	snprintf(op_id, 24, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	params[2] = op_id;
	params[3] = action;
	for (i = 0; i < nextra; i++)
		params[4 + i] = extra[i];
	strbuf_init(&sql);
	strbuf_printf(&sql, SQL_WRITE, table, cond, assign);
	r = ctx_exec_expect(c, "bulk_write", sql.buf, 4 + nextra, params, PGRES_TUPLES_OK);
	strbuf_free(&sql);
	if (r != NULL) {
		note_written(paints, npaints, outbox, r);
		PQclear(r);
		rc = 0;
	}
	return rc;
}

/* The edit's summary for its operation row: the change, how chosen, the counts. */
static struct json_object *edit_summary(const struct bulk_run *run)
{
	struct json_object *s = json_object_new_object();

	json_object_object_add(s, run->req.change.op == BULK_ADD ? "add" : "set",
			       json_object_get(run->req.change_json));
	if (run->req.by_filter)
		json_object_object_add(s, "filter", json_object_get(run->req.filter_json));
	else
		json_object_object_add(s, "ids", json_object_new_int64(run->req.nids));
	json_object_object_add(s, "count", json_object_new_int64(run->changed));
	json_object_object_add(s, "unchanged", json_object_new_int64(run->unchanged));
	return s;
}

/* Write the changed paints and commit: 0 with op_id set, or -1 with the response set. */
static int apply(struct ctx *c, struct bulk_run *run, char op_id[24])
{
	/* The change's parameters follow the write's four. */
	bulk_sql_free(&run->sql);
	bulk_change_sql(&run->req.change, 5, &run->sql);
	if (write_rows(c, edit_summary(run), "bulk_rows", "t.changed", run->sql.assign.buf, "bulk",
		       run->sql.params, run->sql.nparams, op_id, &run->paints, &run->npaints,
		       &run->outbox) != 0)
		return -1;
	if (run->npaints != run->changed) {
		/* The row locks make this unreachable; were it not, writing less than judged would be wrong. */
		http_problem(&c->resp, 409, "paints changed while the bulk edit ran: nothing was changed; "
			     "try again", NULL);
		return -1;
	}
	return ctx_db_exec(c, "COMMIT");
}

static void edit(struct ctx *c, PGconn *pg, struct bulk_run *run, int preview)
{
	char op_id[24] = "";
	struct json_object *o;

	if (ctx_db_exec(c, "BEGIN") != 0 || choose(c, run) != 0 || judge(c, run, preview) != 0)
		return;
	if (preview) {
		preview_answer(c, run);
		return;
	}
	/* Nothing to change: nothing is written, not even the operation. */
	if (run->changed > 0 && apply(c, run, op_id) != 0)
		return;
	if (run->npaints > 0)
		cache_after_writes(pg, run->paints, run->npaints, run->outbox.buf);
	o = json_object_new_object();
	json_object_object_add(o, "id", op_id[0] ? json_object_new_int64(strtoll(op_id, NULL, 10)) : NULL);
	json_object_object_add(o, "count", json_object_new_int64(run->changed));
	json_object_object_add(o, "unchanged", json_object_new_int64(run->unchanged));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

/* The body, read whole (the route streams it for its own bound): NULL with the response set. */
static struct json_object *body_json(struct ctx *c)
{
	if (ctx_body_read_all(c) != 0)
		return NULL;
	return ctx_json_body(c, 0);
}

void paints_bulk(struct ctx *c)
{
	struct json_object *body, *errors;
	struct bulk_run run;
	int preview;
	PGconn *pg;

	memset(&run, 0, sizeof(run));
	strbuf_init(&run.outbox);
	if ((preview = ctx_flag_param(c, "preview")) < 0 || (body = body_json(c)) == NULL)
		goto out;
	if (bulk_request_read(body, &run.req, &errors) != 0) {
		http_problem(&c->resp, 422, "the bulk edit is invalid: see errors", errors);
		goto out;
	}
	if (run.req.by_filter) {
		run.have_lq = 1;
		if (paint_list_query_build(&run.lq, &run.req.filter, PAINT_LIST_ALL, c->app->cfg->low_stock_threshold, &errors) != 0) {
			filter_refused(c, errors);
			goto out;
		}
	}
	bulk_change_sql(&run.req.change, 1, &run.sql);
	if ((pg = ctx_db(c, 0)) != NULL) {
		edit(c, pg, &run, preview);
		/* A preview, a refusal or a fault: the transaction (and its table) goes. */
		if (PQtransactionStatus(pg) != PQTRANS_IDLE)
			PQclear(PQexec(pg, "ROLLBACK"));
	}
	bulk_sql_free(&run.sql);
out:
	bulk_request_free(&run.req);
	if (run.have_lq)
		paint_list_query_free(&run.lq);
	strbuf_free(&run.outbox);
	free(run.paints);
}

/* ---- undo ------------------------------------------------------------------ */

/* An undo in progress. */
struct undo_run {
	char id[24];		/* the operation undone */
	int64_t restored;
	struct json_object *skipped;
	int64_t nskipped;
	int64_t *paints;
	int npaints;
	struct strbuf outbox;
};

/* May the operation be undone? 0, or -1 with the 404, 409 or 422 set. */
static int undoable(struct ctx *c, struct undo_run *run)
{
	const char *params[1] = { run->id };
	char detail[160];
	PGresult *r;
	int rc = -1;

	if ((r = ctx_exec_expect(c, "bulk_undo_operation", SQL_UNDO_OPERATION, 1, params,
				 PGRES_TUPLES_OK)) == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		http_problem(&c->resp, 404, "no operation has this id", NULL);
	} else if (strcmp(PQgetvalue(r, 0, 0), "bulk") != 0) {
		http_problem(&c->resp, 422, "only a bulk edit can be undone: this operation is an import",
			     NULL);
	} else if (strcmp(PQgetvalue(r, 0, 1), "t") == 0) {
		http_problem(&c->resp, 422, "this operation is an undo, which cannot be undone: "
			     "make the bulk edit again", NULL);
	} else if (!PQgetisnull(r, 0, 2)) {
		snprintf(detail, sizeof(detail), "this bulk edit was undone already, by operation %s",
			 PQgetvalue(r, 0, 2));
		http_problem(&c->resp, 409, detail, NULL);
	} else {
		rc = 0;
	}
	PQclear(r);
	return rc;
}

/* The paints to restore and those skipped (listed in run): 0, or -1 with the response set. */
static int undo_judge(struct ctx *c, struct undo_run *run)
{
	const char *params[1] = { run->id };
	PGresult *r;
	int i;

	if (ctx_exec_ok(c, "bulk_undo_table", SQL_UNDO_TABLE, 0, NULL, PGRES_COMMAND_OK) != 0 ||
	    ctx_exec_ok(c, "bulk_undo_fill", SQL_UNDO_FILL, 1, params, PGRES_COMMAND_OK) != 0 ||
	    ctx_exec_ok(c, "bulk_undo_lock_rows", SQL_UNDO_LOCK, 0, NULL, PGRES_TUPLES_OK) != 0 ||
	    ctx_exec_ok(c, "bulk_undo_classify", SQL_UNDO_CLASSIFY, 0, NULL, PGRES_COMMAND_OK) != 0 ||
	    (r = ctx_exec_expect(c, "bulk_undo_skipped", SQL_UNDO_SKIPPED, 0, NULL, PGRES_TUPLES_OK)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r); i++) {
		struct json_object *s = json_object_new_object();

		json_object_object_add(s, "id", json_object_new_int64(strtoll(PQgetvalue(r, i, 0), NULL, 10)));
		json_object_object_add(s, "reason", json_object_new_string(PQgetvalue(r, i, 1)));
		json_object_object_add(s, "version", PQgetisnull(r, i, 2) ? NULL
					: json_object_new_int64(strtoll(PQgetvalue(r, i, 2), NULL, 10)));
		json_object_array_add(run->skipped, s);
		run->nskipped = strtoll(PQgetvalue(r, i, 3), NULL, 10);
	}
	PQclear(r);
	if ((r = ctx_exec_expect(c, "bulk_undo_count", SQL_UNDO_COUNT, 0, NULL, PGRES_TUPLES_OK)) == NULL)
		return -1;
	run->restored = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

static void undo(struct ctx *c, PGconn *pg, struct undo_run *run)
{
	struct json_object *summary, *o;
	struct strbuf assign;
	char op_id[24];
	int rc;

	if (ctx_db_exec(c, "BEGIN") != 0 ||
	    ctx_exec_ok(c, "bulk_lock", PAINT_BULK_LOCK_SQL, 0, NULL, PGRES_TUPLES_OK) != 0 ||
	    undoable(c, run) != 0 || undo_judge(c, run) != 0)
		return;
	/* Written even when every paint is skipped: the edit counts as undone. */
	summary = json_object_new_object();
	json_object_object_add(summary, "undoes", json_object_new_int64(strtoll(run->id, NULL, 10)));
	json_object_object_add(summary, "count", json_object_new_int64(run->restored));
	json_object_object_add(summary, "skipped", json_object_new_int64(run->nskipped));
	strbuf_init(&assign);
	bulk_undo_assign(&assign);
	rc = write_rows(c, summary, "undo_rows", "t.status = 'restore'", assign.buf, "undo", NULL, 0,
			op_id, &run->paints, &run->npaints, &run->outbox);
	strbuf_free(&assign);
	if (rc != 0)
		return;
	if (run->npaints != run->restored) {
		http_problem(&c->resp, 409, "paints changed while the undo ran: nothing was changed; "
			     "try again", NULL);
		return;
	}
	if (ctx_db_exec(c, "COMMIT") != 0)
		return;
	if (run->npaints > 0)
		cache_after_writes(pg, run->paints, run->npaints, run->outbox.buf);
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(strtoll(op_id, NULL, 10)));
	json_object_object_add(o, "undoes", json_object_new_int64(strtoll(run->id, NULL, 10)));
	json_object_object_add(o, "count", json_object_new_int64(run->restored));
	json_object_object_add(o, "skipped", json_object_get(run->skipped));
	json_object_object_add(o, "skipped_count", json_object_new_int64(run->nskipped));
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

void paints_bulk_undo(struct ctx *c)
{
	struct undo_run run;
	int64_t id;
	PGconn *pg;

	memset(&run, 0, sizeof(run));
	if (paint_parse_id(c->match.var[0], c->match.varlen[0], &id) != 0) {
		http_problem(&c->resp, 400, "the operation id must be a whole number from 1 to "
			     "9223372036854775807", NULL);
		return;
	}
	snprintf(run.id, sizeof(run.id), "%lld", (long long)id);
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	run.skipped = json_object_new_array();
	strbuf_init(&run.outbox);
	undo(c, pg, &run);
	if (PQtransactionStatus(pg) != PQTRANS_IDLE)
		PQclear(PQexec(pg, "ROLLBACK"));
	json_object_put(run.skipped);
	strbuf_free(&run.outbox);
	free(run.paints);
}

static const struct route routes[] = {
	{ "POST", "/admin/paints/bulk", paints_bulk, "paints.bulk", AUTH_ADMIN, false, BULK_MAX_BODY },
	{ "POST", "/admin/paints/bulk/{id}/undo", paints_bulk_undo, "paints.bulk_undo", AUTH_ADMIN, false, 0 },
};

const struct resource bulk_resource = {
	"bulk", routes, RESOURCE_ARRAY_LEN(routes), NULL, 0,
};
