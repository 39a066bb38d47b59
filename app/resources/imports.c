/*
 * imports: POST /admin/paints/import (imports.h). One transaction:
 *
 * 1. The body is read in pieces (ctx_body_read) and fed to the CSV
 *    reader; each line is checked in C (import_model) as it completes and
 *    sent on at once to a temporary table with COPY, so the process keeps
 *    neither the body nor the lines: memory is the codec's limits and one
 *    COPY buffer.
 * 2. Under PAINT_BULK_LOCK_KEY, set-based statements match each line to
 *    its paint (by id, else by brand and color_code), lock the paints to
 *    update (FOR UPDATE, in id order), sort the lines into create, update
 *    and unchanged, and find what only the database can tell (an unknown
 *    id, several paints matching, a version that moved, two lines on one
 *    paint).
 * 3. With no error and not a dry run: one operation row, one UPDATE and
 *    one INSERT for all the lines, each with its audit entries and cache
 *    outbox rows in the same statement; COMMIT; then the cache's
 *    invalidations (cache_after_writes) before the answer.
 *
 * Anything wrong rolls everything back: nothing is written unless the
 * whole file is. Unchanged lines write nothing at all.
 */
#define _GNU_SOURCE
#include "resources/imports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/csv.h"
#include "base/strbuf.h"
#include "base/util.h"
#include "cache/cache.h"
#include "db/trace.h"
#include "http/context.h"
#include "resources/import_model.h"
#include "resources/paint_store.h"

/* COPY data goes to PostgreSQL in pieces of about this many bytes. */
#define COPY_CHUNK 65536

#define FIELDS \
	"name, brand, color_code, color_type, color_family, image_url, description, " \
	"color_preview, stock, price"
#define CURRENT \
	"p.name, p.brand, p.color_code, p.color_type, p.color_family, p.image_url, " \
	"p.description, p.color_preview, p.stock, p.price"
/* A line's values over the paint's own where the file has no such column. */
#define MERGED \
	"coalesce(t.name, p.name), coalesce(t.brand, p.brand), coalesce(t.color_code, p.color_code), " \
	"coalesce(t.color_type, p.color_type), coalesce(t.color_family, p.color_family), " \
	"coalesce(t.image_url, p.image_url), coalesce(t.description, p.description), " \
	"coalesce(t.color_preview, p.color_preview), coalesce(t.stock, p.stock), " \
	"coalesce(t.price, p.price)"

/* The checked lines; status: create, update, unchanged, or error. */
#define SQL_TABLE \
	"CREATE TEMP TABLE import_rows (line int8 PRIMARY KEY, id int8, version int8, " \
	"name text, brand text, color_code text, color_type text, color_family text, " \
	"image_url text, description text, color_preview text, stock int4, price numeric(10,2), " \
	"matches int NOT NULL DEFAULT 0, target int8, cur_version int8, status text) ON COMMIT DROP"

#define SQL_COPY "COPY import_rows (" IMPORT_COPY_COLUMNS ") FROM STDIN"

/*
 * Each line's paints: by id; without one, by (brand, color_code) when the
 * file has both columns and the code is not empty. target: the one match.
 */
#define SQL_MATCH \
	"WITH m AS (SELECT t.line, p.id FROM import_rows t JOIN paints p ON p.id = t.id " \
	"UNION ALL SELECT t.line, p.id FROM import_rows t JOIN paints p " \
	"ON p.brand = t.brand AND p.color_code = t.color_code " \
	"WHERE t.id IS NULL AND t.color_code <> ''), " \
	"r AS (SELECT line, count(*) AS n, min(id) AS pid FROM m GROUP BY line) " \
	"UPDATE import_rows t SET matches = r.n, target = CASE WHEN r.n = 1 THEN r.pid END " \
	"FROM r WHERE r.line = t.line"

/* The paints to change stay as read until the commit; a PATCH waits, or went first. */
#define SQL_LOCK \
	"SELECT id FROM paints WHERE id IN (SELECT target FROM import_rows) ORDER BY id FOR UPDATE"

#define SQL_CLASSIFY \
	"WITH u AS (UPDATE import_rows t SET cur_version = p.version, status = CASE WHEN (" \
	CURRENT ") IS NOT DISTINCT FROM (" MERGED ") THEN 'unchanged' ELSE 'update' END " \
	"FROM paints p WHERE p.id = t.target RETURNING 1) " \
	"UPDATE import_rows SET status = 'create' WHERE target IS NULL AND matches = 0 AND id IS NULL"

/*
 * The errors only the database can tell, by line; their lines become
 * 'error'. $1 the field a new paint needs that the file lacks (NULL:
 * none), $2 its message, $3 the message for an unknown id, $4 how many
 * to list. Each row: line, field, message, how many in all.
 */
#define SQL_CHECK \
	"WITH e AS (" \
	"SELECT line, 'id' AS field, $3::text AS message FROM import_rows WHERE id IS NOT NULL AND matches = 0 " \
	"UNION ALL SELECT line, 'color_code', 'matches ' || matches || ' paints by brand and " \
	"color_code: give the id of the one to update' FROM import_rows WHERE matches > 1 " \
	"UNION ALL SELECT line, 'version', 'the paint changed since it was exported (version ' || " \
	"version || ' in the file, ' || cur_version || ' now): export it again' " \
	"FROM import_rows WHERE version <> cur_version " \
	"UNION ALL SELECT line, 'version', 'is given, but no paint matches this line' " \
	"FROM import_rows WHERE version IS NOT NULL AND status = 'create' " \
	"UNION ALL SELECT line, $1::text, $2::text FROM import_rows " \
	"WHERE status = 'create' AND $1::text IS NOT NULL " \
	"UNION ALL SELECT line, CASE WHEN id IS NULL THEN 'color_code' ELSE 'id' END, " \
	"'is the same paint as line ' || first || ': a file may change a paint once' FROM " \
	"(SELECT line, id, first_value(line) OVER (PARTITION BY target ORDER BY line) AS first " \
	"FROM import_rows WHERE target IS NOT NULL) d WHERE line <> first " \
	"UNION ALL SELECT line, 'color_code', 'creates the same paint (brand and color_code) as line ' " \
	"|| first FROM (SELECT line, first_value(line) OVER (PARTITION BY brand, color_code " \
	"ORDER BY line) AS first FROM import_rows WHERE status = 'create' AND color_code <> '') d " \
	"WHERE line <> first), " \
	"x AS (UPDATE import_rows t SET status = 'error' WHERE t.line IN (SELECT line FROM e)) " \
	"SELECT line, field, message, count(*) OVER () FROM e ORDER BY line LIMIT $4::int8"

#define SQL_COUNTS \
	"SELECT count(*) FILTER (WHERE status = 'create'), count(*) FILTER (WHERE status = 'update'), " \
	"count(*) FILTER (WHERE status = 'unchanged') FROM import_rows"

/* $1 actor id, $2 actor name, $3 the summary (JSON). */
#define SQL_OPERATION \
	"INSERT INTO operations (kind, actor_id, actor, summary) " \
	"VALUES ('import', $1::int8, $2, $3::jsonb) RETURNING id"

/*
 * $1 actor id, $2 actor name, $3 operation id. prev is each paint as the
 * lock left it, so each entry's old values are what the import replaced;
 * the version condition holds under the lock (a line whose paint moved
 * anyway is not written, and the count tells). Rows: (paint id, outbox id).
 */
#define SQL_UPDATE \
	"WITH prev AS (SELECT p.* FROM paints p JOIN import_rows t ON t.target = p.id " \
	"WHERE t.status = 'update'), " \
	"w AS (UPDATE paints p SET (" FIELDS ") = (" MERGED "), version = p.version + 1, " \
	"updated_at = now() FROM import_rows t WHERE t.target = p.id AND t.status = 'update' " \
	"AND p.version = t.cur_version RETURNING p.*), " \
	"a AS (INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes, operation_id) " \
	"SELECT $1::int8, $2, 'paint', w.id, 'import', audit_diff(to_jsonb(prev), to_jsonb(w), " \
	PAINT_AUDIT_SKIP "), $3::int8 FROM w JOIN prev ON prev.id = w.id), " \
	"o AS (INSERT INTO cache_outbox (paint_id) SELECT id FROM w RETURNING id, paint_id) " \
	"SELECT paint_id, id FROM o"

/* $1..$3 as SQL_UPDATE's; $4..$13 the fields' defaults (paint_field_default, NULL: required). */
#define SQL_INSERT \
	"WITH w AS (INSERT INTO paints (" FIELDS ") SELECT coalesce(t.name, $4), " \
	"coalesce(t.brand, $5), coalesce(t.color_code, $6), coalesce(t.color_type, $7), " \
	"coalesce(t.color_family, $8), coalesce(t.image_url, $9), coalesce(t.description, $10), " \
	"coalesce(t.color_preview, $11), coalesce(t.stock, $12::int4), coalesce(t.price, $13::numeric) " \
	"FROM import_rows t WHERE t.status = 'create' ORDER BY t.line RETURNING *), " \
	"a AS (INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes, operation_id) " \
	"SELECT $1::int8, $2, 'paint', w.id, 'create', audit_diff(NULL, to_jsonb(w), " \
	PAINT_AUDIT_SKIP "), $3::int8 FROM w), " \
	"o AS (INSERT INTO cache_outbox (paint_id) SELECT id FROM w RETURNING id, paint_id) " \
	"SELECT paint_id, id FROM o"

/* Why the record function stopped the reader. */
enum import_stop { STOP_NONE, STOP_HEADER, STOP_ROWS, STOP_COPY };

/* One import in progress: what the record function needs and what it found. */
struct import_run {
	PGconn *pg;
	struct import_header header;
	int have_header;
	struct json_object *header_errors;	/* the header's, when STOP_HEADER */
	struct import_errors errors;
	struct strbuf copy;			/* COPY text not sent yet */
	size_t rows;				/* data lines */
	enum import_stop stop;
	int64_t counts[3];			/* create, update, unchanged */
	struct strbuf outbox;			/* "{id,...}" of the outbox rows */
	int64_t *paints;			/* the changed paints, for the cache */
	int npaints;
};

static int copy_flush(struct import_run *run)
{
	int ok = run->copy.len == 0 ||
		 PQputCopyData(run->pg, run->copy.buf, (int)run->copy.len) == 1;

	strbuf_reset(&run->copy);
	return ok ? 0 : -1;
}

static int on_record(const struct csv_record *rec, void *arg)
{
	struct import_run *run = arg;
	struct import_row row;

	if (!run->have_header) {
		if (import_header_read(&run->header, rec, &run->header_errors) != 0) {
			run->stop = STOP_HEADER;
			return -1;
		}
		run->have_header = 1;
		return 0;
	}
	if (++run->rows > IMPORT_MAX_ROWS) {
		run->stop = STOP_ROWS;
		return -1;
	}
	if (import_row_read(&run->header, rec, &row, &run->errors) != 0)
		return 0;	/* noted; the line goes no further */
	import_row_copy(&row, &run->copy);
	import_row_free(&row);
	if (run->copy.len >= COPY_CHUNK && copy_flush(run) != 0) {
		run->stop = STOP_COPY;
		return -1;
	}
	return 0;
}

/* 1 when the request's Content-Type is text/csv (UTF-8, if a charset is named). */
static int is_csv(const char *ct)
{
	const char *cs;

	if (ct == NULL || strncasecmp(ct, "text/csv", 8) != 0 ||
	    (ct[8] != '\0' && ct[8] != ';' && ct[8] != ' '))
		return 0;
	if ((cs = strcasestr(ct, "charset=")) == NULL)
		return 1;
	cs += 8;
	cs += *cs == '"';
	return strncasecmp(cs, "utf-8", 5) == 0 || strncasecmp(cs, "utf8", 4) == 0;
}

/* Start the transaction, the table and its COPY: 0, or -1 with the response set. */
static int copy_begin(struct ctx *c, PGconn *pg)
{
	double t0;
	PGresult *r;
	int ok;

	if (ctx_db_exec(c, "BEGIN") != 0 || ctx_db_exec(c, SQL_TABLE) != 0)
		return -1;
	t0 = now_mono();
	r = PQexec(pg, SQL_COPY);
	trace_note("import_copy", t0, now_mono() - t0);
	ok = PQresultStatus(r) == PGRES_COPY_IN;
	if (!ok)
		ctx_db_error(c, r);
	PQclear(r);
	return ok ? 0 : -1;
}

/* End the COPY: sent whole (0), or given up (abort; -1 then). -1 with the response set on a fault. */
static int copy_end(struct ctx *c, PGconn *pg, const char *abort_reason)
{
	PGresult *r;
	int ok = 1;

	if (PQputCopyEnd(pg, abort_reason) != 1)
		ok = 0;
	while ((r = PQgetResult(pg)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			if (ok && abort_reason == NULL)
				ctx_db_error(c, r);
			ok = 0;
		}
		PQclear(r);
	}
	if (!ok && abort_reason == NULL && c->resp.status == 0)
		ctx_db_error(c, NULL);
	return ok && abort_reason == NULL ? 0 : -1;
}

/* The reader stopped on a problem of the text: the 400 or 413 that says so. */
static void refuse_text(struct ctx *c, struct import_run *run, const struct csv_reader *rd)
{
	struct json_object *m;
	char detail[200];

	if (run->stop == STOP_HEADER) {
		http_problem(&c->resp, 400, "the header names columns the import does not take: see errors",
			     run->header_errors);
		run->header_errors = NULL;
		return;
	}
	if (run->stop == STOP_ROWS) {
		http_problem(&c->resp, 413, "the file has more than " PS_STR(IMPORT_MAX_ROWS)
			     " lines of paints: split it", NULL);
		return;
	}
	snprintf(detail, sizeof(detail), "line %zu: %s", rd->err_line, rd->err_msg);
	m = json_object_new_object();
	json_object_object_add(m, "line", json_object_new_int64((int64_t)rd->err_line));
	json_object_object_add(m, "message", json_object_new_string(rd->err_msg));
	http_problem_with(&c->resp, 400, detail, m);
}

/*
 * Read the body into the reader (and through it into COPY). 0 when the
 * whole file was read and its header found; -1 with the response set
 * (the caller ends the COPY).
 */
static int read_file(struct ctx *c, struct import_run *run)
{
	static const struct csv_limits lim = { IMPORT_MAX_CELL, IMPORT_MAX_CELLS, IMPORT_MAX_RECORD };
	struct csv_reader rd;
	char buf[65536];
	long n;
	int rc = -1, bad = 0;

	csv_reader_init(&rd, &lim, on_record, run);
	while ((n = ctx_body_read(c, buf, sizeof(buf))) > 0)
		if ((bad = csv_reader_feed(&rd, buf, (size_t)n) != 0))
			break;
	if (n < 0)
		goto out;	/* the 400 is set */
	if (bad || csv_reader_finish(&rd) != 0) {
		if (run->stop == STOP_COPY)
			ctx_db_error(c, NULL);
		else
			refuse_text(c, run, &rd);
		goto out;
	}
	if (!run->have_header) {
		http_problem(&c->resp, 400, "the file is empty: a header line naming the columns comes first",
			     NULL);
		goto out;
	}
	rc = copy_flush(run);
	if (rc != 0)
		ctx_db_error(c, NULL);
out:
	csv_reader_free(&rd);
	return rc;
}

/* Match, lock (unless a dry run), sort and check the lines: 0, or -1 with the response set. */
static int judge(struct ctx *c, struct import_run *run, int dry_run)
{
	int missing = import_header_missing_required(&run->header), i;
	const char *params[4] = { missing >= 0 ? paint_field_name((enum paint_field)missing) : NULL,
				  "is required for a new paint", PAINT_NOT_FOUND,
				  PS_STR(IMPORT_MAX_ERRORS) };
	PGresult *r;

	if (ctx_db_exec(c, "ANALYZE import_rows") != 0 ||
	    ctx_exec_ok(c, "import_lock", PAINT_BULK_LOCK_SQL, 0, NULL, PGRES_TUPLES_OK) != 0 ||
	    ctx_exec_ok(c, "import_match", SQL_MATCH, 0, NULL, PGRES_COMMAND_OK) != 0 ||
	    (!dry_run && ctx_exec_ok(c, "import_lock_rows", SQL_LOCK, 0, NULL, PGRES_TUPLES_OK) != 0) ||
	    ctx_exec_ok(c, "import_classify", SQL_CLASSIFY, 0, NULL, PGRES_COMMAND_OK) != 0 ||
	    ctx_db_exec(c, "ANALYZE import_rows") != 0)	/* again: the plans below need the statuses */
		return -1;
	if ((r = ctx_exec_expect(c, "import_check", SQL_CHECK, 4, params, PGRES_TUPLES_OK)) == NULL)
		return -1;
	import_errors_merge_start(&run->errors);
	for (i = 0; i < PQntuples(r); i++)
		import_errors_add(&run->errors, (size_t)strtoull(PQgetvalue(r, i, 0), NULL, 10),
				  PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
	/* Those beyond the listed ones are only counted. */
	if (PQntuples(r) > 0)
		run->errors.total += strtoull(PQgetvalue(r, 0, 3), NULL, 10) - (size_t)PQntuples(r);
	PQclear(r);
	if ((r = ctx_exec_expect(c, "import_counts", SQL_COUNTS, 0, NULL, PGRES_TUPLES_OK)) == NULL)
		return -1;
	for (i = 0; i < 3; i++)
		run->counts[i] = strtoll(PQgetvalue(r, 0, i), NULL, 10);
	PQclear(r);
	import_errors_sort(&run->errors);
	return 0;
}

/* Note the (paint id, outbox id) rows of r for the cache; their number. */
static int note_changed(struct import_run *run, const PGresult *r)
{
	int i, n = PQntuples(r);

	run->paints = xrealloc(run->paints, (size_t)(run->npaints + n) * sizeof(int64_t));
	for (i = 0; i < n; i++) {
		run->paints[run->npaints++] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		strbuf_puts(&run->outbox, run->outbox.len > 1 ? "," : "");
		strbuf_puts(&run->outbox, PQgetvalue(r, i, 1));
	}
	return n;
}

/*
 * Write the changes: the operation, the updates, the creates, each paint
 * with its audit entry and outbox row; COMMIT. 0 with import_id set, or
 * -1 with the response set (the caller rolls back).
 */
static int apply(struct ctx *c, struct import_run *run, char import_id[24])
{
	char actor[24], summary[160];
	const char *params[3 + PF_CATALOGUE];
	PGresult *r;
	int f, n;

	snprintf(actor, sizeof(actor), "%lld", (long long)c->user_id);
	snprintf(summary, sizeof(summary),
		 "{\"rows\": %zu, \"create\": %lld, \"update\": %lld, \"unchanged\": %lld}", run->rows,
		 (long long)run->counts[0], (long long)run->counts[1], (long long)run->counts[2]);
	params[0] = actor;
	params[1] = c->username;
	params[2] = summary;
	if ((r = ctx_exec_expect(c, "import_operation", SQL_OPERATION, 3, params, PGRES_TUPLES_OK)) == NULL)
		return -1;
	snprintf(import_id, 24, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	params[2] = import_id;
	for (f = 0; f < PF_CATALOGUE; f++)
		params[3 + f] = paint_field_default((enum paint_field)f);
	strbuf_putc(&run->outbox, '{');
	if ((r = ctx_exec_expect(c, "import_update", SQL_UPDATE, 3, params, PGRES_TUPLES_OK)) == NULL)
		return -1;
	n = note_changed(run, r);
	PQclear(r);
	if (n != run->counts[1]) {
		/* The row locks make this unreachable; if it were not, writing less than reported would be wrong. */
		http_problem(&c->resp, 409, "paints changed while the import ran: nothing was imported; "
			     "try again", NULL);
		return -1;
	}
	if ((r = ctx_exec_expect(c, "import_insert", SQL_INSERT, 13, params, PGRES_TUPLES_OK)) == NULL)
		return -1;
	note_changed(run, r);
	PQclear(r);
	strbuf_putc(&run->outbox, '}');
	return ctx_db_exec(c, "COMMIT");
}

/* The report's members: {import_id, dry_run, rows, create, update, unchanged, errors, error_count}. */
static struct json_object *report(const struct import_run *run, const char *import_id, int dry_run)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "import_id", import_id ? json_object_new_int64(strtoll(import_id, NULL, 10))
							 : NULL);
	json_object_object_add(o, "dry_run", json_object_new_boolean(dry_run));
	json_object_object_add(o, "rows", json_object_new_int64((int64_t)run->rows));
	json_object_object_add(o, "create", json_object_new_int64(run->counts[0]));
	json_object_object_add(o, "update", json_object_new_int64(run->counts[1]));
	json_object_object_add(o, "unchanged", json_object_new_int64(run->counts[2]));
	json_object_object_add(o, "errors", import_errors_json(&run->errors));
	json_object_object_add(o, "error_count", json_object_new_int64((int64_t)run->errors.total));
	return o;
}

/* Read, judge, and (no error, no dry run) apply: the answer set either way. */
static void import_file(struct ctx *c, PGconn *pg, struct import_run *run, int dry_run)
{
	char import_id[24] = "", detail[120];
	struct json_object *o;

	if (copy_begin(c, pg) != 0)
		return;
	if (read_file(c, run) != 0) {
		copy_end(c, pg, "the import was refused");
		return;
	}
	if (copy_end(c, pg, NULL) != 0 || judge(c, run, dry_run) != 0)
		return;
	if (run->errors.total > 0 && !dry_run) {
		snprintf(detail, sizeof(detail), "%zu %s: nothing was imported", run->errors.total,
			 run->errors.total == 1 ? "line has an error" : "errors in the file");
		http_problem_with(&c->resp, 422, detail, report(run, NULL, 0));
		return;
	}
	/* A dry run, or nothing to change: nothing is written, not even the operation. */
	if (!dry_run && run->counts[0] + run->counts[1] > 0 && apply(c, run, import_id) != 0)
		return;
	if (run->npaints > 0)
		cache_after_writes(pg, run->paints, run->npaints, run->outbox.buf);
	o = report(run, import_id[0] ? import_id : NULL, dry_run);
	http_resp_json(&c->resp, 200, o);
	json_object_put(o);
}

void paints_import(struct ctx *c)
{
	struct import_run run;
	int dry_run;
	PGconn *pg;

	if ((dry_run = ctx_flag_param(c, "dry_run")) < 0)
		return;
	if (!is_csv(http_param(&c->req, "CONTENT_TYPE"))) {
		http_problem(&c->resp, 415, "send the file as text/csv (UTF-8)", NULL);
		return;
	}
	if ((pg = ctx_db(c, 0)) == NULL)
		return;
	memset(&run, 0, sizeof(run));
	run.pg = pg;
	import_errors_init(&run.errors);
	strbuf_init(&run.copy);
	strbuf_init(&run.outbox);
	import_file(c, pg, &run, dry_run);
	/* Refused, a dry run or a fault: the transaction (and its table) goes. */
	if (PQtransactionStatus(pg) != PQTRANS_IDLE)
		PQclear(PQexec(pg, "ROLLBACK"));
	if (run.header_errors)
		json_object_put(run.header_errors);
	import_errors_free(&run.errors);
	strbuf_free(&run.copy);
	strbuf_free(&run.outbox);
	free(run.paints);
}

static const struct route routes[] = {
	{ "POST", "/admin/paints/import", paints_import, "paints.import", AUTH_ADMIN, false,
	  IMPORT_MAX_BODY },
};

const struct resource imports_resource = {
	"imports", routes, RESOURCE_ARRAY_LEN(routes), NULL, 0,
};
