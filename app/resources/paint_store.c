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

/* $1..$10 are the writable fields in enum paint_field order. */
#define PAINT_VALUES "$1, $2, $3, $4, $5, $6, $7, $8, $9::int4, $10::numeric"


const struct pool_stmt paint_store_statements[] = {
	{ "paint_get", "SELECT " PAINT_COLUMNS " FROM paints WHERE id = $1" },
	{ "paint_get_for_update", "SELECT " PAINT_COLUMNS " FROM paints WHERE id = $1 FOR UPDATE" },
	/* $11 actor id, $12 actor name */
	{ "paint_insert",
	  "WITH w AS (INSERT INTO paints (name, brand, color_code, color_type, color_family, "
	  "image_url, description, color_preview, stock, price) VALUES (" PAINT_VALUES ") RETURNING *), "
	  "a AS (INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes) "
	  "SELECT $11::int8, $12, 'paint', w.id, 'create', "
	  "audit_diff(NULL, to_jsonb(w), " PAINT_AUDIT_SKIP ") FROM w)"
	  OUTBOX_TAIL },
	/*
	 * $11 id, $12 the version If-Match demands (NULL: any), $13 actor id,
	 * $14 actor name, $15 action. prev locks the row first and is its
	 * state just before this write (a concurrent writer is waited for),
	 * so the entry's old values are exactly what the write replaced.
	 */
	{ "paint_update",
	  "WITH prev AS (SELECT * FROM paints WHERE id = $11 FOR UPDATE), "
	  "w AS (UPDATE paints p SET (name, brand, color_code, color_type, color_family, image_url, "
	  "description, color_preview, stock, price) = (" PAINT_VALUES "), "
	  "version = p.version + 1, updated_at = now() FROM prev "
	  "WHERE p.id = prev.id AND ($12::int8 IS NULL OR p.version = $12::int8) RETURNING p.*), "
	  "a AS (INSERT INTO audit_log (actor_id, actor, entity, entity_id, action, changes) "
	  "SELECT $13::int8, $14, 'paint', w.id, $15, "
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

/* ---- the list query ---------------------------------------------------------- */

#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 200

enum list_kind {
	LP_SORT,	/* one of the model's sort orders */
	LP_LIMIT,	/* a whole number 1..max */
	LP_EXACT,	/* text equal to column: 1..max characters */
	LP_BOOL,	/* "true" / "false": the condition when_true / when_false */
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
	int page_only;		/* a page's parameter, not the whole list's (PAINT_LIST_ALL) */
};

static const char *const like_columns[] = { "name", "brand", "color_code", NULL };

/*
 * In this order: sort and limit first (the cursor needs the sort), then
 * the filters in the order their conditions appear in the SQL, and the
 * cursor last. Errors come out in this order too.
 */
static const struct list_param list_params[] = {
	{ "sort", LP_SORT, NULL, NULL, NULL, NULL, NULL, 0,
	  "must be one of created_at, name, price, stock, each with an optional - for descending", 0 },
	{ "limit", LP_LIMIT, NULL, NULL, NULL, NULL, NULL, LIST_MAX_LIMIT,
	  "must be a whole number from 1 to " PS_STR(LIST_MAX_LIMIT), 1 },
	{ "brand", LP_EXACT, "brand", NULL, NULL, NULL, NULL, 100, "must be 1 to 100 characters", 0 },
	{ "color_family", LP_EXACT, "color_family", NULL, NULL, NULL, NULL, 100,
	  "must be 1 to 100 characters", 0 },
	{ "color_type", LP_EXACT, "color_type", NULL, NULL, NULL, NULL, 100,
	  "must be 1 to 100 characters", 0 },
	{ "in_stock", LP_BOOL, NULL, NULL, "stock > 0", "stock = 0", NULL, 0, "must be true or false", 0 },
	{ "q", LP_LIKE, NULL, NULL, NULL, NULL, like_columns, 100, "must be 1 to 100 characters", 0 },
	{ "min_price", LP_PRICE, "price", ">=", NULL, NULL, NULL, 0, NULL, 0 },
	{ "max_price", LP_PRICE, "price", "<=", NULL, NULL, NULL, 0, NULL, 0 },
	{ "cursor", LP_CURSOR, NULL, NULL, NULL, NULL, NULL, 0,
	  "is not a cursor of this list (it belongs to another sort, or was altered)", 1 },
};
#define NLIST_PARAMS (sizeof(list_params) / sizeof(list_params[0]))

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

/* Start the SQL once the sort is known; every condition follows "WHERE true". */
static void begin_sql(struct paint_list_query *lq)
{
	if (lq->sql.len > 0)
		return;
	strbuf_puts(&lq->sql, "SELECT " PAINT_COLUMNS ", ");
	strbuf_printf(&lq->sql, "paints.%s::text FROM paints WHERE true", lq->sort->column);
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
 * Apply one parameter's value v by its kind. Returns NULL, or why v is bad
 * (the row's message, else the checker's reason).
 */
static const char *apply(struct paint_list_query *lq, const struct list_param *p, const char *v)
{
	const char *why;
	int n;
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
		begin_sql(lq);
		strbuf_printf(&lq->sql, " AND %s = $%d", p->column, bind(lq, v));
		return NULL;
	case LP_BOOL:
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
			return p->message;
		begin_sql(lq);
		strbuf_printf(&lq->sql, " AND %s", strcmp(v, "true") == 0 ? p->when_true : p->when_false);
		return NULL;
	case LP_LIKE:
		if (!text_param_ok(v, p->max))
			return p->message;
		begin_sql(lq);
		lq->like = paint_like_pattern(v);
		n = bind(lq, lq->like);
		strbuf_puts(&lq->sql, " AND (");
		for (k = 0; p->columns[k]; k++)
			strbuf_printf(&lq->sql, "%s%s ILIKE $%d", k ? " OR " : "", p->columns[k], n);
		strbuf_putc(&lq->sql, ')');
		return NULL;
	case LP_PRICE:
		if ((why = paint_price_error(v)) != NULL)
			return p->message ? p->message : why;
		begin_sql(lq);
		strbuf_printf(&lq->sql, " AND %s %s $%d::numeric", p->column, p->op, bind(lq, v));
		return NULL;
	case LP_CURSOR:
		if (paint_cursor_read(v, lq->sort, &lq->cursor_value, lq->cursor_id) != 0)
			return p->message;
		begin_sql(lq);
		n = bind(lq, lq->cursor_value);
		bind(lq, lq->cursor_id);
		strbuf_printf(&lq->sql, " AND (paints.%s, paints.id) %s ($%d::%s, $%d::int8)",
			      lq->sort->column, lq->sort->desc ? "<" : ">", n, lq->sort->type, n + 1);
		return NULL;
	}
	return p->message;
}

int paint_list_query_build(struct paint_list_query *lq, const struct http_query *q,
			   enum paint_list_scope scope, struct json_object **errors)
{
	struct json_object *errs = json_object_new_object();
	const char *v, *why;
	size_t k;
	int i;

	memset(lq, 0, sizeof(*lq));
	strbuf_init(&lq->sql);
	lq->sort = paint_sort_default();
	lq->limit = LIST_DEFAULT_LIMIT;
	http_query_reject_unknown(q, &list_params[0].name, NLIST_PARAMS, sizeof(list_params[0]), errs);
	for (k = 0; k < NLIST_PARAMS; k++) {
		if ((v = http_query_get(q, list_params[k].name)) == NULL)
			continue;
		if (scope == PAINT_LIST_ALL && list_params[k].page_only)
			why = "is a parameter of the list's pages: the export has every matching paint";
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
	begin_sql(lq);
	/* Qualified: the output columns "price" and "stock" are text casts. The id makes the order total. */
	strbuf_printf(&lq->sql, " ORDER BY paints.%s %s, paints.id %s", lq->sort->column,
		      lq->sort->desc ? "DESC" : "ASC", lq->sort->desc ? "DESC" : "ASC");
	if (scope == PAINT_LIST_PAGE) {
		/* One row more than asked tells whether there is a next page. */
		snprintf(lq->limit_text, sizeof(lq->limit_text), "%lld", (long long)lq->limit + 1);
		strbuf_printf(&lq->sql, " LIMIT $%d", bind(lq, lq->limit_text));
	}
	/* The SQL and its values name the page exactly. */
	strbuf_init(&lq->canon);
	strbuf_append(&lq->canon, lq->sql.buf, lq->sql.len);
	for (i = 0; i < lq->nparams; i++) {
		strbuf_putc(&lq->canon, '\x1f');
		strbuf_puts(&lq->canon, lq->params[i]);
	}
	return 0;
}

void paint_list_query_free(struct paint_list_query *lq)
{
	strbuf_free(&lq->sql);
	if (lq->canon.buf)
		strbuf_free(&lq->canon);
	free(lq->like);
	free(lq->cursor_value);
	lq->like = lq->cursor_value = NULL;
}
