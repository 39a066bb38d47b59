/*
 * paint_store: the SQL of the paints resource, values only ever as
 * parameters. Each write is one statement whose CTEs also append the cache
 * invalidation (cache_outbox) and the audit entry (audit_log): they commit
 * with the write, at no extra round trip. The list query comes from list_params.
 */
#include "resources/paint_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cache/cache.h"
#include "db/pool.h"

/* Record the invalidation of the written row w; select it with its outbox id. */
#define OUTBOX_TAIL \
	", o AS (INSERT INTO cache_outbox (paint_id) SELECT id FROM w RETURNING id) " \
	"SELECT " PAINT_COLUMNS ", (SELECT id FROM o) FROM w"

/* $1..$11 are the writable fields in enum paint_field order. */
#define PAINT_FIELD_COLUMNS \
	"name, brand, color_code, color_type, color_family, image_url, description, " \
	"color_preview, stock, price, low_stock_threshold"
#define PAINT_VALUES "$1, $2, $3, $4, $5, $6, $7, $8, $9::int4, $10::numeric, $11::int4"


const struct pool_stmt paint_store_statements[] = {
	{ "paint_get", "SELECT " PAINT_COLUMNS " FROM paints WHERE id = $1" },
	{ "paint_get_for_update", "SELECT " PAINT_COLUMNS " FROM paints WHERE id = $1 FOR UPDATE" },
	/* $12 actor id, $13 actor name */
	{ "paint_insert",
	  "WITH w AS (INSERT INTO paints (" PAINT_FIELD_COLUMNS ") VALUES (" PAINT_VALUES ") RETURNING *), "
	  "a AS (INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes) "
	  "SELECT $12::int8, $13, 'paint', w.id, 'create', "
	  "audit_diff(NULL, to_jsonb(w), " PAINT_AUDIT_SKIP ") FROM w)"
	  OUTBOX_TAIL },
	/*
	 * $12 id, $13 the version If-Match demands (NULL: any), $14 actor id,
	 * $15 actor name, $16 action. prev locks the row first and is its
	 * state just before this write (a concurrent writer is waited for),
	 * so the entry's old values are exactly what the write replaced.
	 */
	{ "paint_update",
	  "WITH prev AS (SELECT * FROM paints WHERE id = $12 FOR UPDATE), "
	  "w AS (UPDATE paints p SET (" PAINT_FIELD_COLUMNS ") = (" PAINT_VALUES "), "
	  "version = p.version + 1, updated_at = now() FROM prev "
	  "WHERE p.id = prev.id AND ($13::int8 IS NULL OR p.version = $13::int8) RETURNING p.*), "
	  "a AS (INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes) "
	  "SELECT $14::int8, $15, 'paint', w.id, $16, "
	  "audit_diff(to_jsonb(prev), to_jsonb(w), " PAINT_AUDIT_SKIP ") FROM w JOIN prev ON prev.id = w.id)"
	  OUTBOX_TAIL },
	/* $1 id, $2 version (NULL: any), $3 actor id, $4 actor name */
	{ "paint_delete",
	  "WITH w AS (DELETE FROM paints WHERE id = $1 AND ($2::int8 IS NULL OR version = $2::int8) "
	  "RETURNING *), "
	  "a AS (INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes) "
	  "SELECT $3::int8, $4, 'paint', w.id, 'delete', "
	  "audit_diff(to_jsonb(w), NULL, " PAINT_AUDIT_SKIP ") FROM w), "
	  "o AS (INSERT INTO cache_outbox (paint_id) SELECT id FROM w RETURNING id) "
	  "SELECT w.id, (SELECT id FROM o) FROM w" },
	{ "paint_version", "SELECT version, stock FROM paints WHERE id = $1" },
	/*
	 * One statement: the check and the change cannot be split by another
	 * writer. $1 id, $2 delta, $3 actor id, $4 actor name; the old stock
	 * is the new one less the delta.
	 */
	{ "paint_stock",
	  "WITH w AS (UPDATE paints SET stock = stock + $2::int4, version = version + 1, "
	  "updated_at = now() WHERE id = $1 AND stock + $2::int4 BETWEEN 0 AND "
	  PAINT_MAX_STOCK_TEXT " RETURNING *), "
	  "a AS (INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes) "
	  "SELECT $3::int8, $4, 'paint', w.id, 'stock', jsonb_build_object('stock', "
	  "jsonb_build_object('old', w.stock - $2::int4, 'new', w.stock)) FROM w)"
	  OUTBOX_TAIL },
	/* cache_after_write's statement: see app/cache/cache.h. */
	{ "outbox_done", CACHE_OUTBOX_DONE_SQL },
	/* One statement, one snapshot: the figures agree with each other. */
	{ "paint_stats",
	  "SELECT count(*), count(*) FILTER (WHERE stock > 0), "
	  "coalesce(sum(stock * price), 0)::numeric(20,2)::text, "
	  "coalesce((SELECT json_object_agg(brand, n ORDER BY brand) FROM "
	  "  (SELECT brand, count(*) AS n FROM paints GROUP BY brand) b), '{}'), "
	  "coalesce((SELECT json_object_agg(color_family, n ORDER BY color_family) FROM "
	  "  (SELECT color_family, count(*) AS n FROM paints GROUP BY color_family) f), '{}') "
	  "FROM paints" },
	/*
	 * The metrics sampler's: how many paints are low with $1 the default
	 * threshold, and the PAINT_LOW_SAMPLED lowest (stock, then id) as a
	 * JSON array. Each arm of PAINT_LOW_SQL on its own, so that each is
	 * read from its partial index alone (migration 0014): well under a
	 * millisecond on 100,000 paints, where the OR of both scans the table.
	 */
	{ "paints_low_stock",
	  "SELECT (SELECT count(*) FROM paints WHERE " PAINT_LOW_DEFAULT_SQL("$1") ") + "
	  "(SELECT count(*) FROM paints WHERE " PAINT_LOW_OWN_SQL "), "
	  "coalesce((SELECT json_agg(json_build_object('id', id, 'name', name, 'brand', brand, "
	  "'stock', stock, 'threshold', coalesce(low_stock_threshold, $1::int4)) ORDER BY stock, id) FROM "
	  "(SELECT * FROM ((SELECT * FROM paints WHERE " PAINT_LOW_DEFAULT_SQL("$1")
	  " ORDER BY stock, id LIMIT " PS_STR(PAINT_LOW_SAMPLED) ") UNION ALL "
	  "(SELECT * FROM paints WHERE " PAINT_LOW_OWN_SQL " ORDER BY stock, id LIMIT "
	  PS_STR(PAINT_LOW_SAMPLED) ")) u ORDER BY stock, id LIMIT " PS_STR(PAINT_LOW_SAMPLED) ") l), '[]')" },
};

_Static_assert(sizeof(paint_store_statements) / sizeof(paint_store_statements[0]) ==
	       PAINT_STORE_NSTMTS, "PAINT_STORE_NSTMTS must count paint_store_statements");

/* ---- statements ------------------------------------------------------------ */

static PGresult *run(PGconn *pg, const char *name, int n, const char *const *params)
{
	return pool_exec_prepared(pg, name, n, params, NULL, NULL, 0);
}

/* The acting user's id as a statement parameter, in buf. */
static const char *actor_param(const struct paint_actor *who, char buf[24])
{
	snprintf(buf, 24, "%lld", (long long)who->id);
	return buf;
}

/* Fill params with the writable fields in enum paint_field order. */
static void field_params(const struct paint_input *in, const char **params)
{
	int i;

	for (i = 0; i < PF_COUNT; i++)
		params[i] = in->value[i];
}

PGresult *paint_store_insert(PGconn *pg, const struct paint_input *in,
			     const struct paint_actor *who)
{
	const char *params[PF_COUNT + 2];
	char actor[24];

	field_params(in, params);
	params[PF_COUNT] = actor_param(who, actor);
	params[PF_COUNT + 1] = who->name;
	return run(pg, "paint_insert", PF_COUNT + 2, params);
}

PGresult *paint_store_update(PGconn *pg, const struct paint_input *in, const char *id,
			     const char *version, const char *action,
			     const struct paint_actor *who)
{
	const char *params[PF_COUNT + 5];
	char actor[24];

	field_params(in, params);
	params[PF_COUNT] = id;
	params[PF_COUNT + 1] = version;
	params[PF_COUNT + 2] = actor_param(who, actor);
	params[PF_COUNT + 3] = who->name;
	params[PF_COUNT + 4] = action;
	return run(pg, "paint_update", PF_COUNT + 5, params);
}

PGresult *paint_store_delete(PGconn *pg, const char *id, const char *version,
			     const struct paint_actor *who)
{
	char actor[24];
	const char *params[4] = { id, version, actor_param(who, actor), who->name };

	return run(pg, "paint_delete", 4, params);
}

PGresult *paint_store_stock(PGconn *pg, const char *id, int64_t delta,
			    const struct paint_actor *who)
{
	char actor[24], delta_text[24];
	const char *params[4] = { id, delta_text, actor_param(who, actor), who->name };

	snprintf(delta_text, sizeof(delta_text), "%lld", (long long)delta);
	return run(pg, "paint_stock", 4, params);
}

PGresult *paint_store_get(PGconn *pg, const char *id, int for_update)
{
	const char *params[1] = { id };

	return run(pg, for_update ? "paint_get_for_update" : "paint_get", 1, params);
}

PGresult *paint_store_version(PGconn *pg, const char *id)
{
	const char *params[1] = { id };

	return run(pg, "paint_version", 1, params);
}

PGresult *paint_store_stats(PGconn *pg)
{
	return run(pg, "paint_stats", 0, NULL);
}

PGresult *paint_store_low_stock(PGconn *pg, int64_t low_default)
{
	char d[24];
	const char *params[1] = { d };

	snprintf(d, sizeof(d), "%lld", (long long)low_default);
	return run(pg, "paints_low_stock", 1, params);
}

/* ---- the list query ---------------------------------------------------------- */

#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 200

enum list_kind {
	LP_SORT,	/* one of the model's sort orders */
	LP_LIMIT,	/* a whole number 1..max */
	LP_EXACT,	/* text equal to column: 1..max characters */
	LP_BOOL,	/* true / false (or 1 / 0): the condition when_true / when_false */
	LP_LOW,		/* true / false (or 1 / 0): low on stock (PAINT_LOW_SQL) or not */
	LP_LIKE,	/* case-insensitive substring of any of columns */
	LP_PRICE,	/* a price bound: column op value */
	LP_CURSOR,	/* the next_cursor of the previous page (after sort) */
};

struct list_param {
	const char *name;
	enum list_kind kind;
	const char *column;	/* LP_EXACT, LP_PRICE */
	const char *op;		/* LP_PRICE: ">=", "<=" */
	const char *when_true, *when_false;	/* LP_BOOL */
	const char *const *columns;		/* LP_LIKE, NULL-terminated */
	size_t max;		/* LP_EXACT, LP_LIKE: characters; LP_LIMIT: the highest */
	const char *message;	/* when bad; NULL: the checker's own reason */
	int page_only;		/* a page's parameter, not the whole list's (PAINT_LIST_ALL, _FACETS) */
	int facet;		/* LP_EXACT: 1 + its index in paint_facets; 0: not a facet */
};

static const char *const like_columns[] = { "name", "brand", "color_code", NULL };

#define BOOL_MESSAGE "must be true or false (or 1 or 0)"

/*
 * In this order: sort and limit first (the cursor needs the sort), then
 * the filters in the order their conditions appear in the SQL, and the
 * cursor last. Errors come out in this order too.
 */
static const struct list_param list_params[] = {
	{ "sort", LP_SORT, NULL, NULL, NULL, NULL, NULL, 0,
	  "must be one of created_at, name, price, stock, each with an optional - for descending", 0, 0 },
	{ "limit", LP_LIMIT, NULL, NULL, NULL, NULL, NULL, LIST_MAX_LIMIT,
	  "must be a whole number from 1 to " PS_STR(LIST_MAX_LIMIT), 1, 0 },
	{ "brand", LP_EXACT, "brand", NULL, NULL, NULL, NULL, 100, "must be 1 to 100 characters", 0, 1 },
	{ "color_family", LP_EXACT, "color_family", NULL, NULL, NULL, NULL, 100,
	  "must be 1 to 100 characters", 0, 2 },
	{ "color_type", LP_EXACT, "color_type", NULL, NULL, NULL, NULL, 100,
	  "must be 1 to 100 characters", 0, 3 },
	{ "in_stock", LP_BOOL, NULL, NULL, "stock > 0", "stock = 0", NULL, 0, BOOL_MESSAGE, 0, 0 },
	{ "low_stock", LP_LOW, NULL, NULL, NULL, NULL, NULL, 0, BOOL_MESSAGE, 0, 0 },
	{ "q", LP_LIKE, NULL, NULL, NULL, NULL, like_columns, 100, "must be 1 to 100 characters", 0, 0 },
	{ "min_price", LP_PRICE, "price", ">=", NULL, NULL, NULL, 0, NULL, 0, 0 },
	{ "max_price", LP_PRICE, "price", "<=", NULL, NULL, NULL, 0, NULL, 0, 0 },
	{ "cursor", LP_CURSOR, NULL, NULL, NULL, NULL, NULL, 0,
	  "is not a cursor of this list (it belongs to another sort, or was altered)", 1, 0 },
};
#define NLIST_PARAMS (sizeof(list_params) / sizeof(list_params[0]))

_Static_assert(PAINT_NFACETS == 3, "list_params names each facet (its facet field)");

/* A text filter: non-empty, at most max characters, no control bytes. */
static int text_param_ok(const char *v, size_t max)
{
	const unsigned char *p;

	if (*v == '\0' || utf8_chars(v) > max)
		return 0;
	for (p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* A boolean parameter: 1 for true or 1, 0 for false or 0, -1 otherwise. */
static int bool_param(const char *v)
{
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		return 1;
	if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		return 0;
	return -1;
}

/* The next $n for value v (which must outlive lq). */
static int bind(struct paint_list_query *lq, const char *v)
{
	if (lq->nparams == PAINT_LIST_MAX_PARAMS)
		die("list query: raise PAINT_LIST_MAX_PARAMS");
	lq->params[lq->nparams++] = v;
	return lq->nparams;
}

/*
 * Apply one parameter's value v by its kind: its condition goes to its
 * facet's own buffer, or to the common ones. Returns NULL, or why v is
 * bad (the row's message, else the checker's reason).
 */
static const char *apply(struct paint_list_query *lq, const struct list_param *p, const char *v)
{
	struct strbuf *w = p->facet ? &lq->facet_where[p->facet - 1] : &lq->where;
	const char *why;
	char d[24];
	int n, b;
	size_t k;

	switch (p->kind) {
	case LP_SORT:
		if ((lq->sort = paint_sort_find(v)) == NULL) {
			lq->sort = paint_sort_default();
			return p->message;
		}
		return NULL;
	case LP_LIMIT:
		return parse_int64(v, 1, (int64_t)p->max, &lq->limit) == 0 ? NULL : p->message;
	case LP_EXACT:
		if (!text_param_ok(v, p->max))
			return p->message;
		strbuf_printf(w, " AND %s = $%d", p->column, bind(lq, v));
		return NULL;
	case LP_BOOL:
		if ((b = bool_param(v)) < 0)
			return p->message;
		strbuf_printf(w, " AND %s", b ? p->when_true : p->when_false);
		return NULL;
	case LP_LOW:
		if ((b = bool_param(v)) < 0)
			return p->message;
		snprintf(d, sizeof(d), "$%d", bind(lq, lq->low_default_text));
		strbuf_printf(w, b ? " AND " PAINT_LOW_SQL("%s") : " AND NOT " PAINT_LOW_SQL("%s"), d, d);
		return NULL;
	case LP_LIKE:
		if (!text_param_ok(v, p->max))
			return p->message;
		lq->like = paint_like_pattern(v);
		n = bind(lq, lq->like);
		strbuf_puts(w, " AND (");
		for (k = 0; p->columns[k]; k++)
			strbuf_printf(w, "%s%s ILIKE $%d", k ? " OR " : "", p->columns[k], n);
		strbuf_putc(w, ')');
		return NULL;
	case LP_PRICE:
		if ((why = paint_price_error(v)) != NULL)
			return p->message ? p->message : why;
		strbuf_printf(w, " AND %s %s $%d::numeric", p->column, p->op, bind(lq, v));
		return NULL;
	case LP_CURSOR:
		if (paint_cursor_read(v, lq->sort, &lq->cursor_value, lq->cursor_id) != 0)
			return p->message;
		n = bind(lq, lq->cursor_value);
		bind(lq, lq->cursor_id);
		strbuf_printf(w, " AND (paints.%s, paints.id) %s ($%d::%s, $%d::int8)",
			      lq->sort->column, lq->sort->desc ? "<" : ">", n, lq->sort->type, n + 1);
		return NULL;
	}
	return p->message;
}

/* Every facet's own condition but skip's (-1: all of them), into sb. */
static void facet_conditions(const struct paint_list_query *lq, int skip, struct strbuf *sb)
{
	int i;

	for (i = 0; i < PAINT_NFACETS; i++)
		if (i != skip)
			strbuf_append(sb, lq->facet_where[i].buf, lq->facet_where[i].len);
}

/* The list's SQL (a page, or every row) from the conditions applied. */
static void list_sql(struct paint_list_query *lq, enum paint_list_scope scope)
{
	strbuf_puts(&lq->sql, "SELECT " PAINT_COLUMNS ", ");
	strbuf_printf(&lq->sql, "paints.%s::text FROM paints WHERE true", lq->sort->column);
	facet_conditions(lq, -1, &lq->sql);
	strbuf_append(&lq->sql, lq->where.buf, lq->where.len);
	/* Qualified: the output columns "price" and "stock" are text casts. The id makes the order total. */
	strbuf_printf(&lq->sql, " ORDER BY paints.%s %s, paints.id %s", lq->sort->column,
		      lq->sort->desc ? "DESC" : "ASC", lq->sort->desc ? "DESC" : "ASC");
	if (scope == PAINT_LIST_PAGE) {
		/* One row more than asked tells whether there is a next page. */
		snprintf(lq->limit_text, sizeof(lq->limit_text), "%lld", (long long)lq->limit + 1);
		strbuf_printf(&lq->sql, " LIMIT $%d", bind(lq, lq->limit_text));
	}
}

/*
 * The facets' SQL: one scan of the paints that pass the common filters,
 * grouped by the three facets' values (a few thousand groups at most),
 * then from those groups: the total under every filter, and each facet's
 * values under every filter but its own (disjunctive facets), each
 * facet's PAINT_FACET_MAX + 1 largest (count descending, then value).
 */
static void facets_sql(struct paint_list_query *lq)
{
	int i;

	strbuf_puts(&lq->sql, "WITH g AS MATERIALIZED (SELECT brand, color_family, color_type, "
		    "count(*) AS n FROM paints WHERE true");
	strbuf_append(&lq->sql, lq->where.buf, lq->where.len);
	strbuf_puts(&lq->sql, " GROUP BY 1, 2, 3), f AS (SELECT 0 AS facet, NULL::text AS value, "
		    "coalesce(sum(n), 0) AS n FROM g WHERE true");
	facet_conditions(lq, -1, &lq->sql);
	for (i = 0; i < PAINT_NFACETS; i++) {
		strbuf_printf(&lq->sql, " UNION ALL SELECT %d, %s, sum(n) FROM g WHERE true", i + 1,
			      paint_facets[i]);
		facet_conditions(lq, i, &lq->sql);
		strbuf_printf(&lq->sql, " GROUP BY %s", paint_facets[i]);
	}
	strbuf_puts(&lq->sql, ") SELECT facet, value, n FROM (SELECT facet, value, n, row_number() "
		    "OVER (PARTITION BY facet ORDER BY n DESC, value) AS rank FROM f) r "
		    "WHERE rank <= " PS_STR(PAINT_FACET_MAX) " + 1 ORDER BY facet, rank");
}

int paint_list_query_build(struct paint_list_query *lq, const struct http_query *q,
			   enum paint_list_scope scope, int64_t low_default,
			   struct json_object **errors)
{
	struct json_object *errs = json_object_new_object();
	const char *v, *why;
	size_t k;
	int i;

	memset(lq, 0, sizeof(*lq));
	strbuf_init(&lq->sql);
	strbuf_init(&lq->canon);
	strbuf_init(&lq->where);
	for (i = 0; i < PAINT_NFACETS; i++)
		strbuf_init(&lq->facet_where[i]);
	lq->sort = paint_sort_default();
	lq->limit = LIST_DEFAULT_LIMIT;
	snprintf(lq->low_default_text, sizeof(lq->low_default_text), "%lld", (long long)low_default);
	http_query_reject_unknown(q, &list_params[0].name, NLIST_PARAMS, sizeof(list_params[0]), errs);
	for (k = 0; k < NLIST_PARAMS; k++) {
		if ((v = http_query_get(q, list_params[k].name)) == NULL)
			continue;
		if (scope != PAINT_LIST_PAGE && list_params[k].page_only)
			why = scope == PAINT_LIST_ALL
				? "is a parameter of the list's pages: the export has every matching paint"
				: "is a parameter of the list's pages: the facets count every matching paint";
		else
			why = apply(lq, &list_params[k], v);
		if (why != NULL)
			json_object_object_add(errs, list_params[k].name, json_object_new_string(why));
	}
	if (json_object_object_length(errs) > 0) {
		*errors = errs;
		return -1;
	}
	json_object_put(errs);
	*errors = NULL;
	if (scope == PAINT_LIST_FACETS)
		facets_sql(lq);
	else
		list_sql(lq, scope);
	/*
	 * The SQL and its values name the answer exactly; and the default
	 * threshold, which every paint's "low_stock" depends on.
	 */
	strbuf_append(&lq->canon, lq->sql.buf, lq->sql.len);
	for (i = 0; i < lq->nparams; i++) {
		strbuf_putc(&lq->canon, '\x1f');
		strbuf_puts(&lq->canon, lq->params[i]);
	}
	strbuf_printf(&lq->canon, "\x1flow_default=%s", lq->low_default_text);
	return 0;
}

void paint_list_query_free(struct paint_list_query *lq)
{
	int i;

	strbuf_free(&lq->sql);
	strbuf_free(&lq->canon);
	strbuf_free(&lq->where);
	for (i = 0; i < PAINT_NFACETS; i++)
		strbuf_free(&lq->facet_where[i]);
	free(lq->like);
	free(lq->cursor_value);
	lq->like = lq->cursor_value = NULL;
}
