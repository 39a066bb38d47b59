/* Unit tests of bulk_model: a bulk edit's body read and checked, and its change as SQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "resources/bulk_model.h"

/* Read the JSON text s as a bulk edit: its return; *errors kept for the caller (or put when NULL). */
static int read_text(const char *s, struct bulk_request *r, struct json_object **errors)
{
	struct json_object *body = json_tokener_parse(s), *errs;
	int rc;

	assert_non_null(body);
	rc = bulk_request_read(body, r, &errs);
	if (errors)
		*errors = errs ? json_object_get(errs) : NULL;
	if (errs)
		json_object_put(errs);
	bulk_request_free(r);
	json_object_put(body);
	return rc;
}

/* 1 when reading s fails with an error under key. */
static int refused_at(const char *s, const char *key)
{
	struct bulk_request r;
	struct json_object *errs;
	int found;

	if (read_text(s, &r, &errs) == 0)
		return 0;
	found = json_object_object_get_ex(errs, key, NULL);
	json_object_put(errs);
	return found;
}

static void test_ids_and_set(void **state)
{
	struct json_object *body = json_tokener_parse("{\"ids\": [3, 1, 2], \"set\": {\"price\": 9.99, "
						      "\"color_preview\": \"#ABCDEF\"}}"), *errs;
	struct bulk_request r;

	(void)state;
	assert_int_equal(bulk_request_read(body, &r, &errs), 0);
	assert_null(errs);
	assert_int_equal(r.nids, 3);
	assert_int_equal(r.ids[0], 3);
	assert_false(r.by_filter);
	assert_int_equal(r.change.op, BULK_SET);
	assert_string_equal(r.change.value[PF_PRICE], "9.99");
	assert_string_equal(r.change.value[PF_PREVIEW], "#abcdef");	/* paint_model's rule */
	assert_null(r.change.value[PF_STOCK]);
	bulk_request_free(&r);
	json_object_put(body);
}

static void test_filter_becomes_the_lists_parameters(void **state)
{
	struct json_object *body = json_tokener_parse("{\"filter\": {\"brand\": \"Winsor\", \"in_stock\": true, "
						      "\"min_price\": 2.5}, \"add\": {\"stock\": -3}}"), *errs;
	struct bulk_request r;

	(void)state;
	assert_int_equal(bulk_request_read(body, &r, &errs), 0);
	assert_true(r.by_filter);
	assert_string_equal(http_query_get(&r.filter, "brand"), "Winsor");
	assert_string_equal(http_query_get(&r.filter, "in_stock"), "true");
	assert_string_equal(http_query_get(&r.filter, "min_price"), "2.5");
	assert_int_equal(r.change.op, BULK_ADD);
	assert_string_equal(r.change.value[PF_STOCK], "-3");
	bulk_request_free(&r);
	json_object_put(body);
}

static void test_refusals_name_the_member(void **state)
{
	(void)state;
	assert_true(refused_at("{\"set\": {\"price\": 1}}", "ids"));
	assert_true(refused_at("{\"ids\": [1]}", "set"));
	assert_true(refused_at("{\"ids\": [1], \"filter\": {}, \"set\": {\"price\": 1}}", "ids"));
	assert_true(refused_at("{\"ids\": [1], \"set\": {\"price\": 1}, \"add\": {\"stock\": 1}}", "set"));
	assert_true(refused_at("{\"ids\": [], \"set\": {\"price\": 1}}", "ids"));
	assert_true(refused_at("{\"ids\": [0], \"set\": {\"price\": 1}}", "ids"));
	assert_true(refused_at("{\"ids\": [1.5], \"set\": {\"price\": 1}}", "ids"));
	assert_true(refused_at("{\"ids\": [1], \"set\": {\"price\": -1}}", "set.price"));
	assert_true(refused_at("{\"ids\": [1], \"set\": {\"name\": \"  \"}}", "set.name"));
	assert_true(refused_at("{\"ids\": [1], \"set\": {\"stock\": 1000001}}", "set.stock"));
	assert_true(refused_at("{\"ids\": [1], \"set\": {\"nope\": 1}}", "set.nope"));
	assert_true(refused_at("{\"ids\": [1], \"add\": {\"brand\": \"x\"}}", "add.brand"));
	assert_true(refused_at("{\"ids\": [1], \"add\": {\"stock\": 0}}", "add.stock"));
	assert_true(refused_at("{\"ids\": [1], \"add\": {\"stock\": 1000001}}", "add.stock"));
	assert_true(refused_at("{\"ids\": [1], \"add\": {\"price\": 0.0}}", "add.price"));
	assert_true(refused_at("{\"ids\": [1], \"add\": {\"price\": -1.005}}", "add.price"));
	assert_true(refused_at("{\"filter\": {\"brand\": null}, \"set\": {\"price\": 1}}", "filter"));
	assert_true(refused_at("{\"filter\": [1], \"set\": {\"price\": 1}}", "filter"));
	assert_true(refused_at("{\"ids\": [1], \"set\": {\"price\": 1}, \"x\": 1}", "x"));
}

static void test_too_many_ids(void **state)
{
	struct strbuf sb;
	int i;

	(void)state;
	strbuf_init(&sb);
	strbuf_puts(&sb, "{\"set\": {\"stock\": 1}, \"ids\": [1");
	for (i = 1; i < BULK_MAX_PAINTS; i++)
		strbuf_puts(&sb, ",1");
	strbuf_puts(&sb, "]}");
	assert_false(refused_at(sb.buf, "ids"));
	sb.len -= 2;
	strbuf_puts(&sb, ",1]}");
	assert_true(refused_at(sb.buf, "ids"));
	strbuf_free(&sb);
}

static void test_change_as_sql(void **state)
{
	struct bulk_change ch = { BULK_ADD, { NULL } };
	struct bulk_sql s;

	(void)state;
	ch.value[PF_STOCK] = "5";
	ch.value[PF_PRICE] = "-0.5";
	bulk_change_sql(&ch, 4, &s);
	assert_string_equal(s.assign.buf, "stock = p.stock + $4::int4, price = p.price + $5::numeric");
	assert_string_equal(s.old.buf, "(p.stock, p.price)");
	assert_string_equal(s.new.buf, "(p.stock + $4::int4, p.price + $5::numeric)");
	assert_string_equal(s.bounds.buf, "false OR NOT (p.stock + $4::int4 BETWEEN 0 AND 1000000) "
			    "OR NOT (p.price + $5::numeric BETWEEN 0 AND 99999999.99)");
	assert_string_equal(s.after.buf, "jsonb_build_object('stock', p.stock + $4::int4, 'price', "
			    "p.price + $5::numeric)");
	assert_int_equal(s.nparams, 2);
	assert_string_equal(s.params[1], "-0.5");
	bulk_sql_free(&s);

	ch.op = BULK_SET;
	ch.value[PF_STOCK] = NULL;
	ch.value[PF_NAME] = "Red";
	bulk_change_sql(&ch, 1, &s);
	assert_string_equal(s.assign.buf, "name = $1::text, price = $2::numeric");
	assert_string_equal(s.bounds.buf, "false");
	assert_string_equal(s.before.buf, "jsonb_build_object('name', p.name, 'price', p.price)");
	bulk_sql_free(&s);
}

static void test_undo_restores_every_field_it_recorded(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	bulk_undo_assign(&sb);
	assert_non_null(strstr(sb.buf, "name = CASE WHEN t.changes ? 'name' THEN "
			       "(t.changes -> 'name' ->> 'old')::text ELSE p.name END, "));
	assert_non_null(strstr(sb.buf, "price = CASE WHEN t.changes ? 'price' THEN "
			       "(t.changes -> 'price' ->> 'old')::numeric ELSE p.price END"));
	assert_null(strstr(sb.buf, "version"));
	strbuf_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_and_set),
		cmocka_unit_test(test_filter_becomes_the_lists_parameters),
		cmocka_unit_test(test_refusals_name_the_member),
		cmocka_unit_test(test_too_many_ids),
		cmocka_unit_test(test_change_as_sql),
		cmocka_unit_test(test_undo_restores_every_field_it_recorded),
	};

	return cmocka_run_group_tests_name("bulk_model", tests, NULL, NULL);
}
