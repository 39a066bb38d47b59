/*
 * bulk_model: a bulk edit's body and its change as SQL (bulk_model.h).
 */
#include "resources/bulk_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static const char *const known[] = { "ids", "filter", "set", "add" };

/* The SQL type of field f's parameters. */
static const char *field_type(enum paint_field f)
{
	return f == PF_STOCK ? "int4" : f == PF_PRICE ? "numeric" : "text";
}

static void err(struct json_object *errs, const char *key, const char *msg)
{
	if (!json_object_object_get_ex(errs, key, NULL))
		json_object_object_add(errs, key, json_object_new_string(msg));
}

static int read_ids(struct json_object *v, struct bulk_request *out, struct json_object *errs)
{
	size_t i, n;

	if (!json_object_is_type(v, json_type_array) || (n = json_object_array_length(v)) == 0) {
		err(errs, "ids", "must be an array of 1 to " PS_STR(BULK_MAX_PAINTS) " paint ids");
		return -1;
	}
	if (n > BULK_MAX_PAINTS) {
		err(errs, "ids", "names more than " PS_STR(BULK_MAX_PAINTS) " paints: split the edit");
		return -1;
	}
	out->ids = xmalloc(n * sizeof(int64_t));
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);

		errno = 0;
		if (!json_object_is_type(e, json_type_int) ||
		    (out->ids[i] = json_object_get_int64(e)) < 1 || errno == ERANGE) {
			err(errs, "ids", "each must be a paint id: a whole number from 1 to 9223372036854775807");
			return -1;
		}
	}
	out->nids = (int)n;
	return 0;
}

/* The filter's members as query parameters; the list's builder judges names and values. */
static int read_filter(struct json_object *v, struct bulk_request *out, struct json_object *errs)
{
	struct http_query *q = &out->filter;

	if (!json_object_is_type(v, json_type_object)) {
		err(errs, "filter", "must be an object of the list's filters, as {\"brand\": \"...\"}");
		return -1;
	}
	json_object_object_foreach(v, key, val) {
		const char *text;

		if (val == NULL || json_object_is_type(val, json_type_object) ||
		    json_object_is_type(val, json_type_array)) {
			err(errs, "filter", "each filter must be a string, a number, true or false");
			return -1;
		}
		if (q->count == HTTP_MAX_PARAMS) {
			err(errs, "filter", "has too many members");
			return -1;
		}
		text = json_object_is_type(val, json_type_string)
			       ? json_object_get_string(val)
			       : json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN);
		if (json_object_is_type(val, json_type_string) &&
		    strlen(text) != (size_t)json_object_get_string_len(val)) {
			err(errs, "filter", "must not contain NUL characters");
			return -1;
		}
		q->params[q->count].key = xstrdup(key);
		q->params[q->count].value = xstrdup(text);
		q->count++;
	}
	out->by_filter = 1;
	out->filter_json = v;
	return 0;
}

/* An amount to add to stock or price: the text PostgreSQL receives, or NULL and *why. */
static char *add_value(enum paint_field f, struct json_object *v, const char **why)
{
	const char *text;
	int64_t n;

	if (f == PF_STOCK) {
		errno = 0;
		if (!json_object_is_type(v, json_type_int) || (n = json_object_get_int64(v)) == 0 ||
		    errno == ERANGE || n < -PAINT_MAX_STOCK || n > PAINT_MAX_STOCK) {
			*why = "must be a whole number other than 0, from -" PAINT_MAX_STOCK_TEXT
			       " to " PAINT_MAX_STOCK_TEXT;
			return NULL;
		}
		return xstrdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	}
	if (f != PF_PRICE) {
		*why = "cannot be added to: only stock and price can";
		return NULL;
	}
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) {
		*why = "must be a number";
		return NULL;
	}
	/* As written by the client, never through a double; a sign, then a price's rules. */
	text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	if ((*why = paint_price_error(text + (text[0] == '-'))) != NULL)
		return NULL;
	if (strspn(text + (text[0] == '-'), "0.") == strlen(text + (text[0] == '-'))) {
		*why = "must not be 0";
		return NULL;
	}
	return xstrdup(text);
}

static int read_change(const char *key, struct json_object *v, struct bulk_request *out,
		       struct json_object *errs)
{
	struct bulk_change *ch = &out->change;
	char name[64];
	int bad = 0;

	if (!json_object_is_type(v, json_type_object) || json_object_object_length(v) == 0) {
		err(errs, key, "must be an object of at least one field and its value");
		return -1;
	}
	ch->op = strcmp(key, "add") == 0 ? BULK_ADD : BULK_SET;
	out->change_json = v;
	json_object_object_foreach(v, field, val) {
		int f = paint_field_find(field);
		const char *why = NULL;

		snprintf(name, sizeof(name), "%s.%.40s", key, field);
		if (f < 0) {
			err(errs, name, "is not a field of a paint");
			bad = 1;
			continue;
		}
		if (f >= PF_CATALOGUE) {
			err(errs, name, "is not changed by bulk edits: set it in the paint's editor");
			bad = 1;
			continue;
		}
		ch->value[f] = ch->op == BULK_ADD ? add_value((enum paint_field)f, val, &why)
						  : paint_field_from_json((enum paint_field)f, val, &why);
		if (ch->value[f] == NULL) {
			err(errs, name, why);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

int bulk_request_read(struct json_object *body, struct bulk_request *out,
		      struct json_object **errors)
{
	struct json_object *errs = json_object_new_object(), *v;
	int nwhich = 0, nchange = 0;
	size_t k;

	memset(out, 0, sizeof(*out));
	json_object_object_foreach(body, key, val) {
		(void)val;
		for (k = 0; k < sizeof(known) / sizeof(known[0]) && strcmp(key, known[k]) != 0; k++)
			;
		if (k == sizeof(known) / sizeof(known[0]))
			err(errs, key, "is not a member of a bulk edit (ids or filter, and set or add)");
	}
	if (json_object_object_get_ex(body, "ids", &v) && ++nwhich)
		read_ids(v, out, errs);
	if (json_object_object_get_ex(body, "filter", &v) && ++nwhich)
		read_filter(v, out, errs);
	if (json_object_object_get_ex(body, "set", &v) && ++nchange)
		read_change("set", v, out, errs);
	if (json_object_object_get_ex(body, "add", &v) && ++nchange)
		read_change("add", v, out, errs);
	if (nwhich != 1)
		err(errs, "ids", "give either ids or filter: the paints to change");
	if (nchange != 1)
		err(errs, "set", "give either set or add: the one change to make");
	if (json_object_object_length(errs) > 0) {
		*errors = errs;
		return -1;
	}
	json_object_put(errs);
	*errors = NULL;
	return 0;
}

void bulk_request_free(struct bulk_request *r)
{
	int f;

	free(r->ids);
	r->ids = NULL;
	http_query_free(&r->filter);
	for (f = 0; f < PF_COUNT; f++) {
		free(r->change.value[f]);
		r->change.value[f] = NULL;
	}
}

void bulk_change_sql(const struct bulk_change *ch, int first, struct bulk_sql *out)
{
	int f, n = 0;

	memset(out, 0, sizeof(*out));
	strbuf_init(&out->assign);
	strbuf_init(&out->old);
	strbuf_init(&out->new);
	strbuf_init(&out->bounds);
	strbuf_init(&out->before);
	strbuf_init(&out->after);
	strbuf_puts(&out->old, "(");
	strbuf_puts(&out->new, "(");
	strbuf_puts(&out->bounds, "false");
	strbuf_puts(&out->before, "jsonb_build_object(");
	strbuf_puts(&out->after, "jsonb_build_object(");
	for (f = 0; f < PF_COUNT; f++) {
		const char *col = paint_field_name((enum paint_field)f), *sep = n ? ", " : "";
		char expr[160];
		int k = first + n;

		if (ch->value[f] == NULL)
			continue;
		if (ch->op == BULK_ADD)
			snprintf(expr, sizeof(expr), "p.%s + $%d::%s", col, k, field_type((enum paint_field)f));
		else
			snprintf(expr, sizeof(expr), "$%d::%s", k, field_type((enum paint_field)f));
		strbuf_printf(&out->assign, "%s%s = %s", sep, col, expr);
		strbuf_printf(&out->old, "%sp.%s", sep, col);
		strbuf_printf(&out->new, "%s%s", sep, expr);
		strbuf_printf(&out->before, "%s'%s', p.%s", sep, col, col);
		strbuf_printf(&out->after, "%s'%s', %s", sep, col, expr);
		if (ch->op == BULK_ADD)
			strbuf_printf(&out->bounds, " OR NOT (%s BETWEEN 0 AND %s)", expr,
				      f == PF_STOCK ? PAINT_MAX_STOCK_TEXT : BULK_MAX_PRICE_TEXT);
		out->params[n++] = ch->value[f];
	}
	strbuf_putc(&out->old, ')');
	strbuf_putc(&out->new, ')');
	strbuf_putc(&out->before, ')');
	strbuf_putc(&out->after, ')');
	out->nparams = n;
}

void bulk_sql_free(struct bulk_sql *s)
{
	strbuf_free(&s->assign);
	strbuf_free(&s->old);
	strbuf_free(&s->new);
	strbuf_free(&s->bounds);
	strbuf_free(&s->before);
	strbuf_free(&s->after);
}

void bulk_undo_assign(struct strbuf *out)
{
	int f;

	for (f = 0; f < PF_CATALOGUE; f++) {	/* what a bulk edit may change */
		const char *col = paint_field_name((enum paint_field)f);

		strbuf_printf(out, "%s%s = CASE WHEN t.changes ? '%s' THEN (t.changes -> '%s' ->> 'old')::%s "
			      "ELSE p.%s END", f ? ", " : "", col, col, col, field_type((enum paint_field)f), col);
	}
}
