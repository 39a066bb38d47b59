/*
 * Unit tests of the paints' export's pure parts: the list query for every
 * matching row (paint_store), the CSV of a paint row and the file name
 * (paint_model). No database: rows are made with libpq's PQsetvalue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base/csv.h"
#include "base/strbuf.h"
#include "http/http.h"
#include "resources/paint_model.h"
#include "resources/paint_store.h"

#include "paint_test.h"

static void test_all_has_the_page_filters_and_order_without_limit(void **state)
{
	struct paint_list_query page, all;
	char err[512];
	const char *qs = "brand=Golden&in_stock=true&q=50%25&min_price=1&sort=-price";
	const char *tail;

	(void)state;
	assert_int_equal(build(qs, PAINT_LIST_PAGE, &page, err, sizeof(err)), 0);
	assert_int_equal(build(qs, PAINT_LIST_ALL, &all, err, sizeof(err)), 0);
	/* The same SQL up to the page's LIMIT, which the export does not have. */
	tail = strstr(page.sql.buf, " LIMIT $");
	assert_non_null(tail);
	assert_int_equal(all.sql.len, (size_t)(tail - page.sql.buf));
	assert_memory_equal(all.sql.buf, page.sql.buf, all.sql.len);
	assert_null(strstr(all.sql.buf, "LIMIT"));
	/* A total order: the id breaks ties, in the sort's direction. */
	assert_non_null(strstr(all.sql.buf, " ORDER BY paints.price DESC, paints.id DESC"));
	/* The same values, less the page's limit. */
	assert_int_equal(all.nparams, page.nparams - 1);
	for (int i = 0; i < all.nparams; i++)
		assert_string_equal(all.params[i], page.params[i]);
	assert_string_equal(all.params[0], "Golden");
	assert_string_equal(all.params[1], "%50\\%%");
	paint_list_query_free(&page);
	paint_list_query_free(&all);
}

static void test_all_defaults_to_newest_first(void **state)
{
	struct paint_list_query all;
	char err[512];

	(void)state;
	assert_int_equal(build("", PAINT_LIST_ALL, &all, err, sizeof(err)), 0);
	assert_int_equal(all.nparams, 0);
	assert_non_null(strstr(all.sql.buf, " ORDER BY paints.created_at DESC, paints.id DESC"));
	assert_null(strstr(all.sql.buf, "$"));
	paint_list_query_free(&all);
}

static void test_all_refuses_limit_and_cursor(void **state)
{
	struct paint_list_query lq;
	char err[512];

	(void)state;
	assert_int_equal(build("limit=10&cursor=abc&brand=Golden", PAINT_LIST_ALL, &lq, err,
			       sizeof(err)), -1);
	assert_non_null(strstr(err, "\"limit\""));
	assert_non_null(strstr(err, "\"cursor\""));
	assert_null(strstr(err, "\"brand\""));
	paint_list_query_free(&lq);
	/* The page takes them (a bad cursor is its own error there). */
	assert_int_equal(build("limit=10", PAINT_LIST_PAGE, &lq, err, sizeof(err)), 0);
	paint_list_query_free(&lq);
}

/* The same bad parameters, the same errors, whichever the scope. */
static void test_bad_filters_are_the_lists_errors(void **state)
{
	static const char *const cases[] = {
		"sort=colour", "in_stock=maybe", "min_price=1.234", "brand=", "q=%01",
		"nope=1", "max_price=-1&sort=stock&color_type=",
	};
	struct paint_list_query a, b;
	char ea[512], eb[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(build(cases[i], PAINT_LIST_PAGE, &a, ea, sizeof(ea)), -1);
		assert_int_equal(build(cases[i], PAINT_LIST_ALL, &b, eb, sizeof(eb)), -1);
		assert_string_equal(ea, eb);
		paint_list_query_free(&a);
		paint_list_query_free(&b);
	}
}

static void test_header_names_the_json_fields(void **state)
{
	struct strbuf sb;
	struct csv_writer w;

	(void)state;
	strbuf_init(&sb);
	csv_writer_init(&w, &sb);
	paint_csv_header(&w);
	assert_string_equal(sb.buf, "id,name,brand,color_code,color_type,color_family,image_url,stock,"
			    "price,description,color_preview,created_at,updated_at,version,"
			    "low_stock_threshold\r\n");
	strbuf_free(&sb);
}

static void test_row_text_neutralised_numbers_as_given(void **state)
{
	const char *values[COL_COUNT] = {
		[COL_ID] = "17", [COL_NAME] = "=HYPERLINK(\"x\")", [COL_BRAND] = "+Brand, Inc.",
		[COL_CODE] = "-12", [COL_TYPE] = "@type", [COL_FAMILY] = NULL,
		[COL_IMAGE] = "", [COL_STOCK] = "0", [COL_PRICE] = "12.50",
		[COL_DESCRIPTION] = "line one\nline \"two\"", [COL_PREVIEW] = "#cccccc",
		[COL_CREATED] = "2025-10-06T13:47:38.079025Z", [COL_UPDATED] = "2025-10-06T13:47:38.079025Z",
		[COL_VERSION] = "3", [COL_LOW_THRESHOLD] = NULL,
	};
	PGresult *r = paint_row(values);
	struct strbuf sb;
	struct csv_writer w;

	(void)state;
	strbuf_init(&sb);
	csv_writer_init(&w, &sb);
	paint_row_csv(&w, r, 0);
	assert_string_equal(sb.buf,
			    "17,\"'=HYPERLINK(\"\"x\"\")\",\"'+Brand, Inc.\",'-12,'@type,,,0,12.50,"
			    "\"line one\nline \"\"two\"\"\",#cccccc,2025-10-06T13:47:38.079025Z,"
			    "2025-10-06T13:47:38.079025Z,3,\r\n");
	strbuf_free(&sb);
	PQclear(r);
}

struct got {
	size_t records;
	char cells[COL_COUNT][64];
};

static int keep(const struct csv_record *rec, void *arg)
{
	struct got *g = arg;
	size_t i, len;
	const char *s;

	assert_int_equal(rec->ncells, COL_COUNT);
	for (i = 0; i < rec->ncells; i++) {
		s = csv_unneutralise(rec->cells[i], rec->lens[i], &len);
		assert_true(len < sizeof(g->cells[i]));
		memcpy(g->cells[i], s, len);
		g->cells[i][len] = '\0';
	}
	g->records++;
	return 0;
}

/* Every text reads back as it was, once the writer's ' is taken off. */
static void test_row_reads_back(void **state)
{
	const char *values[COL_COUNT] = {
		[COL_ID] = "9223372036854775807", [COL_NAME] = "'quoted' \xc3\xa9t\xc3\xa9",
		[COL_BRAND] = " padded ", [COL_CODE] = "\t tab", [COL_TYPE] = "a,b",
		[COL_FAMILY] = "\xef\xbb\xbf\x62om" /* BOM, "bom" */, [COL_IMAGE] = "https://example.com/x?a=1&b=2",
		[COL_STOCK] = "1000000", [COL_PRICE] = "99999999.99", [COL_DESCRIPTION] = "\r\n",
		[COL_PREVIEW] = "#ABCDEF", [COL_CREATED] = "", [COL_UPDATED] = "-",
		[COL_VERSION] = "1", [COL_LOW_THRESHOLD] = "7",
	};
	struct csv_limits lim = { 1024, 64, 8192 };
	PGresult *r = paint_row(values);
	struct csv_reader rd;
	struct got g = { 0 };
	struct strbuf sb;
	struct csv_writer w;
	int i;

	(void)state;
	strbuf_init(&sb);
	csv_writer_init(&w, &sb);
	paint_row_csv(&w, r, 0);
	csv_reader_init(&rd, &lim, keep, &g);
	assert_int_equal(csv_reader_feed(&rd, sb.buf, sb.len), 0);
	assert_int_equal(csv_reader_finish(&rd), 0);
	csv_reader_free(&rd);
	assert_int_equal(g.records, 1);
	for (i = 0; i < COL_COUNT; i++)
		assert_string_equal(g.cells[i], values[i]);
	strbuf_free(&sb);
	PQclear(r);
}

static void test_file_name(void **state)
{
	char name[PAINT_EXPORT_NAME_LEN];

	(void)state;
	paint_export_filename(1759758458, name);	/* 2025-10-06 13:47:38 UTC */
	assert_string_equal(name, "paints-20251006-134738.csv");
	paint_export_filename(0, name);
	assert_string_equal(name, "paints-19700101-000000.csv");
	paint_export_filename((time_t)253402300800LL, name);	/* year 10000 */
	assert_string_equal(name, "paints.csv");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_all_has_the_page_filters_and_order_without_limit, free_queries),
		cmocka_unit_test_teardown(test_all_defaults_to_newest_first, free_queries),
		cmocka_unit_test_teardown(test_all_refuses_limit_and_cursor, free_queries),
		cmocka_unit_test_teardown(test_bad_filters_are_the_lists_errors, free_queries),
		cmocka_unit_test(test_header_names_the_json_fields),
		cmocka_unit_test(test_row_text_neutralised_numbers_as_given),
		cmocka_unit_test(test_row_reads_back),
		cmocka_unit_test(test_file_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
