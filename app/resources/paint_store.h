/*
 * paint_store: where paints live in PostgreSQL. The prepared statements
 * of the paints resource, thin calls that run them, and the list query
 * builder, which turns a list's query parameters into parameterised SQL
 * from a table (one row per parameter: its kind, column, bound, message).
 *
 * Every write is one statement that also appends the paint's cache
 * invalidation to cache_outbox and its entry to audit_log, so the three
 * commit together or not at all.
 */
#ifndef PS_PAINT_STORE_H
#define PS_PAINT_STORE_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "db/pool.h"
#include "http/http.h"
#include "resources/paint_model.h"

/* The statements (registered by paints_resource): PAINT_STORE_NSTMTS of them. */
extern const struct pool_stmt paint_store_statements[];
#define PAINT_STORE_NSTMTS 10

/* What a paint's audit entry leaves out: the id (the entry's entity_id), bookkeeping and image_hash (image_url's). */
#define PAINT_AUDIT_SKIP "'{id,version,created_at,updated_at,image_hash}'::text[]"

/*
 * The transaction-level advisory lock every write of many paints at once
 * (an import, a bulk edit) takes before it reads what it will change, so
 * that two of them run one after the other. Single writes do not take
 * it: row locks (FOR UPDATE) order them with the bulk ones.
 */
#define PAINT_BULK_LOCK_KEY "7415028"
#define PAINT_BULK_LOCK_SQL "SELECT pg_advisory_xact_lock(" PAINT_BULK_LOCK_KEY ")"

/* Who writes, for the audit trail. */
struct paint_actor {
	int64_t id;		/* users.id */
	const char *name;	/* username */
};

/*
 * Writes. Each returns the statement's result (never NULL; caller
 * PQclears and checks PGRES_TUPLES_OK). A row that matched comes back as
 * PAINT_COLUMNS plus its outbox id (PAINT_COL_OUTBOX); none when the paint
 * is absent, If-Match's version (NULL: any) differs, or the stock bound
 * would be crossed. An entry in audit_log is written exactly when a row is
 * returned. paint_store_delete returns (id, outbox id).
 */
#define PAINT_COL_OUTBOX COL_COUNT
PGresult *paint_store_insert(PGconn *pg, const struct paint_input *in,
			     const struct paint_actor *who);
/* action: "put" or "patch", as recorded in the audit trail. */
PGresult *paint_store_update(PGconn *pg, const struct paint_input *in, const char *id,
			     const char *version, const char *action,
			     const struct paint_actor *who);
PGresult *paint_store_delete(PGconn *pg, const char *id, const char *version,
			     const struct paint_actor *who);
PGresult *paint_store_stock(PGconn *pg, const char *id, int64_t delta,
			    const struct paint_actor *who);

/* Reads: the paint (PAINT_COLUMNS; locked with for_update), (version, stock), the stats row. */
PGresult *paint_store_get(PGconn *pg, const char *id, int for_update);
PGresult *paint_store_version(PGconn *pg, const char *id);
PGresult *paint_store_stats(PGconn *pg);

/*
 * The low-stock sample with low_default the default threshold: one row,
 * (count, JSON array of the PAINT_LOW_SAMPLED lowest paints, each {id,
 * name, brand, stock, threshold}: stock, then id, ascending).
 */
#define PAINT_LOW_SAMPLED 10
PGresult *paint_store_low_stock(PGconn *pg, int64_t low_default);

/* ---- the list ------------------------------------------------------------ */

#define PAINT_LIST_MAX_PARAMS 16

/*
 * What a list query selects: one page, every matching paint (the
 * export), or the matching paints counted by facet.
 */
enum paint_list_scope {
	PAINT_LIST_PAGE,	/* limit and cursor apply: at most limit + 1 rows */
	PAINT_LIST_ALL,		/* the same filters and order, every row: no limit, no cursor */
	PAINT_LIST_FACETS,	/* the same filters, counted: no limit, no cursor; sort ignored */
};

/*
 * The list as SQL: run sql with params (ctx_exec_dynamic). For a page or
 * all, its rows are PAINT_COLUMNS, then the sort column as text (for the
 * next cursor), in the sort's order with the id breaking ties (a total
 * order); for a page, at most limit + 1 of them (one more tells there is
 * a next page). For the facets, rows (facet, value, count): first facet
 * 0 (value NULL, count: the paints matching every filter), then for
 * facet i (1-based: paint_facets[i - 1]) its values counted under every
 * filter but the facet's own (disjunctive facets), at most
 * PAINT_FACET_MAX + 1 of them (one more tells there are more), count
 * descending, then value. canon (the SQL, its values and the default
 * threshold) names the query exactly: the cache key.
 */
struct paint_list_query {
	struct strbuf sql;
	struct strbuf canon;
	struct strbuf where;	/* the conditions of the filters that are not facets */
	struct strbuf facet_where[PAINT_NFACETS];	/* each facet's own condition, or empty */
	const char *params[PAINT_LIST_MAX_PARAMS];
	int nparams;
	const struct paint_sort *sort;
	int64_t limit;
	char *like;		/* owned: q's LIKE pattern */
	char *cursor_value;	/* owned: the cursor's sort value */
	char cursor_id[24], limit_text[24], low_default_text[24];
};

/*
 * Build the query of scope from the request's parameters (the strings in
 * q must outlive lq), low_default the default low-stock threshold (for
 * low_stock=). Returns 0, or -1 with *errors a new JSON object naming
 * each bad or unknown parameter, and outside PAINT_LIST_PAGE limit and
 * cursor (caller puts it). Either way lq must be freed with
 * paint_list_query_free.
 */
int paint_list_query_build(struct paint_list_query *lq, const struct http_query *q,
			   enum paint_list_scope scope, int64_t low_default,
			   struct json_object **errors);
void paint_list_query_free(struct paint_list_query *lq);

#endif
