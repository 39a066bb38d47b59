/* Unit tests of import_model: the header's columns, a line's checks, COPY text, the errors' list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base/csv.h"
#include "base/strbuf.h"
#include "resources/import_model.h"

/* A record of n NUL-terminated cells starting on line. */
static struct csv_record record(const char *const *cells, size_t n, size_t line, size_t *lens)
{
	struct csv_record rec;
	size_t i;

	for (i = 0; i < n; i++)
		lens[i] = strlen(cells[i]);
	rec.cells = cells;
	rec.lens = lens;
	rec.ncells = n;
	rec.line = line;
	rec.number = 1;
	return rec;
}

static void header(struct import_header *h, const char *const *cells, size_t n)
{
	size_t lens[IMPORT_MAX_CELLS];
	struct csv_record rec = record(cells, n, 1, lens);
	struct json_object *errors;

	assert_int_equal(import_header_read(h, &rec, &errors), 0);
	assert_null(errors);
}

/* Read the line cells[0..n) (on line) under the header head[0..nh). */
static int read_line(const char *const *head, size_t nh, const char *const *cells, size_t n,
		     size_t line, struct import_row *row, struct import_errors *es)
{
	size_t lens[IMPORT_MAX_CELLS];
	struct csv_record rec = record(cells, n, line, lens);
	struct import_header h;

	header(&h, head, nh);
	return import_row_read(&h, &rec, row, es);
}

static void test_header_maps_the_export_columns(void **state)
{
	static const char *const cells[] = {
		"id", "name", "brand", "color_code", "color_type", "color_family", "image_url",
		"stock", "price", "description", "color_preview", "created_at", "updated_at", "version",
	};
	struct import_header h;

	(void)state;
	header(&h, cells, 14);
	assert_int_equal(h.at[IC_ID], 0);
	assert_int_equal(h.at[PF_NAME], 1);
	assert_int_equal(h.at[PF_PRICE], 8);
	assert_int_equal(h.at[IC_VERSION], 13);
	assert_int_equal(h.column[7], PF_STOCK);
	assert_int_equal(import_header_missing_required(&h), -1);
}

static void test_header_refuses_unknown_and_repeated_by_name(void **state)
{
	static const char *const cells[] = { "name", "colour", "price", "name", "Size" };
	size_t lens[5];
	struct csv_record rec = record(cells, 5, 1, lens);
	struct import_header h;
	struct json_object *errors, *v;

	(void)state;
	assert_int_equal(import_header_read(&h, &rec, &errors), -1);
	assert_int_equal(json_object_object_length(errors), 3);
	assert_true(json_object_object_get_ex(errors, "colour", &v));
	assert_string_equal(json_object_get_string(v), "is not a column of the import");
	assert_true(json_object_object_get_ex(errors, "name", &v));
	assert_string_equal(json_object_get_string(v), "is given more than once");
	assert_true(json_object_object_get_ex(errors, "Size", &v));
	json_object_put(errors);
}

static void test_missing_required_column(void **state)
{
	static const char *const cells[] = { "brand", "color_code", "price" };
	struct import_header h;

	(void)state;
	header(&h, cells, 3);
	assert_int_equal(import_header_missing_required(&h), PF_NAME);
}

static void test_row_values_as_postgresql_takes_them(void **state)
{
	static const char *const head[] = { "id", "name", "stock", "price", "color_preview",
					    "description", "version", "updated_at" };
	static const char *const cells[] = { "", "  '=SUM(A1)  ", "7", "19.9", "#ABCDEF",
					     "a\tb\\c\nd", "3", "whatever" };
	struct import_errors es;
	struct import_row row;
	struct strbuf out;

	(void)state;
	import_errors_init(&es);
	assert_int_equal(read_line(head, 8, cells, 8, 5, &row, &es), 0);
	assert_int_equal(es.total, 0);
	assert_null(row.id);
	assert_string_equal(row.version, "3");
	/* The cell is unneutralised before it is trimmed: its leading spaces keep the ' in. */
	assert_string_equal(row.value[PF_NAME], "'=SUM(A1)");
	assert_string_equal(row.value[PF_STOCK], "7");
	assert_string_equal(row.value[PF_PRICE], "19.9");
	assert_string_equal(row.value[PF_PREVIEW], "#abcdef");
	assert_null(row.value[PF_BRAND]);
	strbuf_init(&out);
	import_row_copy(&row, &out);
	assert_string_equal(out.buf, "5\t\\N\t3\t'=SUM(A1)\t\\N\t\\N\t\\N\t\\N\t\\N\t"
			    "a\\tb\\\\c\\nd\t#abcdef\t7\t19.9\n");
	strbuf_free(&out);
	import_row_free(&row);
	import_errors_free(&es);
}

static void test_formula_cells_lose_the_exports_quote(void **state)
{
	static const char *const head[] = { "name" };
	static const char *const cells[][1] = { { "'=1+2" }, { "'-5 drops" }, { "''quoted" },
						{ "'plain" } };
	static const char *const want[] = { "=1+2", "-5 drops", "'quoted", "'plain" };
	struct import_header h;
	struct import_errors es;
	struct import_row row;
	size_t i, lens[1];

	(void)state;
	header(&h, head, 1);
	import_errors_init(&es);
	for (i = 0; i < 4; i++) {
		struct csv_record rec = record(cells[i], 1, 2, lens);

		assert_int_equal(import_row_read(&h, &rec, &row, &es), 0);
		assert_string_equal(row.value[PF_NAME], want[i]);
		import_row_free(&row);
	}
	import_errors_free(&es);
}

static void test_every_bad_cell_of_a_line_is_reported(void **state)
{
	static const char *const head[] = { "id", "name", "stock", "price", "image_url", "version" };
	static const char *const cells[] = { "0x1", "", "1.5", "1.234", "ftp://x", "-2" };
	struct import_errors es;
	struct import_row row;

	(void)state;
	import_errors_init(&es);
	assert_int_equal(read_line(head, 6, cells, 6, 9, &row, &es), -1);
	assert_int_equal(es.total, 6);
	assert_string_equal(es.e[0].field, "id");
	assert_string_equal(es.e[1].field, "name");
	assert_string_equal(es.e[1].message, "must not be empty");
	assert_string_equal(es.e[2].message, "must be a whole number");
	assert_string_equal(es.e[3].message, "must have at most 2 decimals");
	assert_string_equal(es.e[4].field, "image_url");
	assert_string_equal(es.e[5].field, "version");
	assert_int_equal(es.e[5].line, 9);
	assert_null(row.value[PF_NAME]);
	import_errors_free(&es);
}

static void test_stock_as_text(void **state)
{
	const char *why;
	char *v;

	(void)state;
	assert_null(paint_field_from_text(PF_STOCK, "", &why));
	assert_string_equal(why, "must be a number");
	assert_null(paint_field_from_text(PF_STOCK, "-1", &why));
	assert_string_equal(why, "must be from 0 to 1000000");
	assert_null(paint_field_from_text(PF_STOCK, "1000001", &why));
	assert_null(paint_field_from_text(PF_STOCK, "99999999999999999999", &why));
	assert_string_equal(why, "must be from 0 to 1000000");
	assert_null(paint_field_from_text(PF_STOCK, "2e3", &why));
	assert_string_equal(why, "must be a whole number");
	assert_null(paint_field_from_text(PF_STOCK, "three", &why));
	v = paint_field_from_text(PF_STOCK, "1000000", &why);
	assert_string_equal(v, "1000000");
	free(v);
}

static void test_a_line_of_another_width(void **state)
{
	static const char *const head[] = { "name", "price" };
	static const char *const cells[] = { "x" };
	struct import_errors es;
	struct import_row row;

	(void)state;
	import_errors_init(&es);
	assert_int_equal(read_line(head, 2, cells, 1, 4, &row, &es), -1);
	assert_string_equal(es.e[0].message, "has 1 cells where the header has 2");
	import_errors_free(&es);
}

static void test_errors_merge_by_line_and_cut(void **state)
{
	struct import_errors es;
	size_t i;

	(void)state;
	import_errors_init(&es);
	for (i = 0; i < IMPORT_MAX_ERRORS + 5; i++)
		import_errors_add(&es, 10 + 2 * i, "price", "bad");
	assert_int_equal(es.n, IMPORT_MAX_ERRORS);
	import_errors_merge_start(&es);
	import_errors_add(&es, 3, "id", "unknown");
	import_errors_add(&es, 10, "version", "moved");
	import_errors_add(&es, 11, "id", "twice");
	import_errors_sort(&es);
	assert_int_equal(es.total, IMPORT_MAX_ERRORS + 8);
	assert_int_equal(es.n, IMPORT_MAX_ERRORS);
	assert_int_equal(es.e[0].line, 3);
	assert_string_equal(es.e[1].field, "price");	/* the lines' own first on one line */
	assert_string_equal(es.e[2].field, "version");
	assert_int_equal(es.e[3].line, 11);
	assert_int_equal(es.e[4].line, 12);
	for (i = 1; i < es.n; i++)
		assert_true(es.e[i - 1].line <= es.e[i].line);
	import_errors_free(&es);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_maps_the_export_columns),
		cmocka_unit_test(test_header_refuses_unknown_and_repeated_by_name),
		cmocka_unit_test(test_missing_required_column),
		cmocka_unit_test(test_row_values_as_postgresql_takes_them),
		cmocka_unit_test(test_formula_cells_lose_the_exports_quote),
		cmocka_unit_test(test_every_bad_cell_of_a_line_is_reported),
		cmocka_unit_test(test_stock_as_text),
		cmocka_unit_test(test_a_line_of_another_width),
		cmocka_unit_test(test_errors_merge_by_line_and_cut),
	};

	return cmocka_run_group_tests_name("import_model", tests, NULL, NULL);
}
