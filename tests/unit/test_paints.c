/* Unit tests of paint validation (pure: no database) and entity tags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "resources/paint_model.h"

static struct json_object *parse(const char *s)
{
	struct json_object *o = json_tokener_parse(s);

	if (o == NULL)
		fail_msg("test JSON does not parse: %s", s);
	return o;
}

/* Validate text; returns 0/-1 and, on -1, whether field is among the errors. */
static int validate(const char *body, const char *base, struct paint_input *in,
		    const char *bad_field)
{
	struct json_object *b = parse(body), *bs = base ? parse(base) : NULL, *errs = NULL;
	int rc = paint_validate(b, bs, in, &errs);

	if (rc != 0) {
		assert_non_null(errs);
		if (bad_field && !json_object_object_get_ex(errs, bad_field, NULL))
			fail_msg("%s not among errors %s", bad_field, json_object_to_json_string(errs));
		json_object_put(errs);
	} else {
		assert_null(errs);
	}
	json_object_put(b);
	if (bs)
		json_object_put(bs);
	return rc;
}

static void test_defaults_and_normalisation(void **state)
{
	struct paint_input in;

	(void)state;
	assert_int_equal(validate("{\"name\":\"  Ultramarine \\t\",\"color_preview\":\"#A1B2C3\"}",
				  NULL, &in, NULL), 0);
	assert_string_equal(in.value[PF_NAME], "Ultramarine");
	assert_string_equal(in.value[PF_PREVIEW], "#a1b2c3");
	assert_string_equal(in.value[PF_BRAND], "");
	assert_string_equal(in.value[PF_STOCK], "0");
	assert_string_equal(in.value[PF_PRICE], "0.00");
	paint_input_free(&in);
	assert_int_equal(validate("{\"name\":\"x\",\"color_preview\":null,\"stock\":null}",
				  NULL, &in, NULL), 0);
	assert_string_equal(in.value[PF_PREVIEW], "#cccccc");
	paint_input_free(&in);
}

static void test_price_kept_exact(void **state)
{
	struct paint_input in;

	(void)state;
	assert_int_equal(validate("{\"name\":\"x\",\"price\":19.99}", NULL, &in, NULL), 0);
	assert_string_equal(in.value[PF_PRICE], "19.99");
	paint_input_free(&in);
	assert_int_equal(validate("{\"name\":\"x\",\"price\":0.1}", NULL, &in, NULL), 0);
	assert_string_equal(in.value[PF_PRICE], "0.1");
	paint_input_free(&in);
	assert_int_equal(validate("{\"name\":\"x\",\"price\":99999999.99}", NULL, &in, NULL), 0);
	assert_string_equal(in.value[PF_PRICE], "99999999.99");
	paint_input_free(&in);
	assert_int_equal(validate("{\"name\":\"x\",\"price\":7}", NULL, &in, NULL), 0);
	assert_string_equal(in.value[PF_PRICE], "7");
	paint_input_free(&in);
}

static void test_price_rules(void **state)
{
	(void)state;
	assert_null(paint_price_error("0"));
	assert_null(paint_price_error("0.5"));
	assert_null(paint_price_error("12.34"));
	assert_null(paint_price_error("99999999.99"));
	assert_non_null(paint_price_error("100000000"));
	assert_non_null(paint_price_error("1.234"));
	assert_non_null(paint_price_error("-1"));
	assert_non_null(paint_price_error("1e2"));
	assert_non_null(paint_price_error("1."));
	assert_non_null(paint_price_error(".5"));
	assert_non_null(paint_price_error("01"));
	assert_non_null(paint_price_error(""));
	assert_non_null(paint_price_error("1,5"));
	assert_non_null(paint_price_error("NaN"));
}

static void test_each_bad_value_names_its_field(void **state)
{
	static const struct { const char *body, *field; } bad[] = {
		{ "{}", "name" },
		{ "{\"name\":\"\"}", "name" },
		{ "{\"name\":null}", "name" },
		{ "{\"name\":12}", "name" },
		{ "{\"name\":\"a\\u0000b\"}", "name" },
		{ "{\"name\":\"a\\nb\"}", "name" },
		{ "{\"name\":\"x\",\"brand\":[]}", "brand" },
		{ "{\"name\":\"x\",\"color_preview\":\"#abc\"}", "color_preview" },
		{ "{\"name\":\"x\",\"image_url\":\"data:image/png;base64,xx\"}", "image_url" },
		{ "{\"name\":\"x\",\"image_url\":\"http://a b\"}", "image_url" },
		{ "{\"name\":\"x\",\"image_url\":\"/etc/passwd\"}", "image_url" },
		{ "{\"name\":\"x\",\"image_url\":\"/images/../x.webp\"}", "image_url" },
		{ "{\"name\":\"x\",\"stock\":-1}", "stock" },
		{ "{\"name\":\"x\",\"stock\":1000001}", "stock" },
		{ "{\"name\":\"x\",\"stock\":2.0}", "stock" },
		{ "{\"name\":\"x\",\"stock\":99999999999999999999}", "stock" },
		{ "{\"name\":\"x\",\"price\":\"1\"}", "price" },
		{ "{\"name\":\"x\",\"price\":1.001}", "price" },
		{ "{\"name\":\"x\",\"price\":1e400}", "price" },
		{ "{\"name\":\"x\",\"extra\":1}", "extra" },
	};
	struct paint_input in;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (validate(bad[i].body, NULL, &in, bad[i].field) != -1)
			fail_msg("accepted: %s", bad[i].body);
}

/* A stored image's address: exactly /images/<64 lower-case hex>.webp. */
static void test_image_url_hash(void **state)
{
	static const char hex[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	static const char *const bad[] = {
		"", "/images/", "/images/.webp", "images/X.webp",
		"/images/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeF.webp",
		"/images/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde.webp",
		"/images/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0.webp",
		"/images/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.thumb.webp",
		"/images/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.webp?x",
		"/images/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.png",
		"https://x.example/images/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.webp",
	};
	char url[128], hash[PAINT_IMAGE_HASH_LEN + 1];
	struct paint_input in;
	char body[256];
	size_t i;

	(void)state;
	snprintf(url, sizeof(url), "/images/%s.webp", hex);
	assert_int_equal(paint_image_url_hash(url, hash), 0);
	assert_string_equal(hash, hex);
	assert_int_equal(paint_image_url_hash(url, NULL), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (paint_image_url_hash(bad[i], hash) != -1)
			fail_msg("taken as a stored image's address: %s", bad[i]);
	/* A paint may name one. */
	snprintf(body, sizeof(body), "{\"name\":\"x\",\"image_url\":\"%s\"}", url);
	assert_int_equal(validate(body, NULL, &in, NULL), 0);
	assert_string_equal(in.value[PF_IMAGE], url);
	paint_input_free(&in);
}

static void test_length_counts_characters(void **state)
{
	struct paint_input in;
	char body[1024];
	int i;

	(void)state;
	/* 200 two-byte characters are 200 characters, not 400 */
	strcpy(body, "{\"name\":\"");
	for (i = 0; i < 200; i++)
		strcat(body, "\xc3\xa9");
	strcat(body, "\"}");
	assert_int_equal(validate(body, NULL, &in, NULL), 0);
	paint_input_free(&in);
	body[strlen(body) - 2] = '\0';
	strcat(body, "\xc3\xa9\"}");
	assert_int_equal(validate(body, NULL, &in, "name"), -1);
}

static void test_merge_patch(void **state)
{
	const char *base = "{\"id\":3,\"name\":\"Old\",\"brand\":\"B\",\"stock\":4,\"price\":2.50,"
			   "\"description\":\"d\",\"color_preview\":\"#010203\",\"version\":2}";
	struct paint_input in;

	(void)state;
	assert_int_equal(validate("{\"stock\":9,\"description\":null}", base, &in, NULL), 0);
	assert_string_equal(in.value[PF_NAME], "Old");
	assert_string_equal(in.value[PF_BRAND], "B");
	assert_string_equal(in.value[PF_STOCK], "9");
	assert_string_equal(in.value[PF_PRICE], "2.50");
	assert_string_equal(in.value[PF_DESCRIPTION], "");
	assert_string_equal(in.value[PF_PREVIEW], "#010203");
	paint_input_free(&in);
	assert_int_equal(validate("{\"name\":null}", base, &in, "name"), -1);
}

static void test_like_pattern(void **state)
{
	char *p;

	(void)state;
	p = paint_like_pattern("50%_off\\");
	assert_string_equal(p, "%50\\%\\_off\\\\%");
	free(p);
	p = paint_like_pattern("");
	assert_string_equal(p, "%%");
	free(p);
}

static void test_stock_delta(void **state)
{
	static const struct { const char *body; int ok; } cases[] = {
		{ "{\"delta\":5}", 1 }, { "{\"delta\":-1000000}", 1 }, { "{\"delta\":1000000}", 1 },
		{ "{\"delta\":0}", 0 }, { "{\"delta\":1000001}", 0 }, { "{\"delta\":1.5}", 0 },
		{ "{\"delta\":\"3\"}", 0 }, { "{}", 0 }, { "{\"delta\":null}", 0 },
		{ "{\"delta\":1,\"x\":2}", 0 },
	};
	struct json_object *b, *errs;
	int64_t d;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		b = parse(cases[i].body);
		if ((paint_validate_delta(b, &d, &errs) == 0) != cases[i].ok)
			fail_msg("wrong verdict: %s", cases[i].body);
		if (errs)
			json_object_put(errs);
		json_object_put(b);
	}
	b = parse("{\"delta\":2000000}");
	assert_int_equal(paint_validate_delta(b, &d, &errs), -1);
	assert_string_equal(json_object_get_string(json_object_object_get(errs, "delta")),
			    "must be a non-zero whole number from -1000000 to 1000000");
	json_object_put(errs);
	json_object_put(b);
}

static void test_cursor_round_trip(void **state)
{
	const struct paint_sort *s = paint_sort_find("-price");
	struct json_object *c;
	char *value = NULL, id[24];

	(void)state;
	assert_non_null(s);
	assert_null(paint_sort_find("colour"));
	assert_string_equal(paint_sort_default()->param, "-created_at");
	c = paint_cursor_make(s, "12.50", "77");
	assert_int_equal(paint_cursor_read(json_object_get_string(c), s, &value, id), 0);
	assert_string_equal(value, "12.50");
	assert_string_equal(id, "77");
	free(value);
	/* a cursor belongs to its sort */
	assert_int_equal(paint_cursor_decode(json_object_get_string(c), "price", &value, id), -1);
	json_object_put(c);
}

static void test_etags(void **state)
{
	(void)state;
	assert_true(http_etag_matches("\"v3\"", "\"v3\"", 0));
	assert_true(http_etag_matches("\"v1\", \"v3\"", "\"v3\"", 0));
	assert_true(http_etag_matches("*", "\"v3\"", 0));
	assert_true(http_etag_matches("W/\"v3\"", "\"v3\"", 1));	/* weak compare */
	assert_false(http_etag_matches("W/\"v3\"", "\"v3\"", 0));	/* strong compare */
	assert_false(http_etag_matches("\"v4\"", "\"v3\"", 1));
	assert_false(http_etag_matches("\"v33\"", "\"v3\"", 1));
	assert_false(http_etag_matches("v3", "\"v3\"", 1));
	assert_false(http_etag_matches("\"v3", "\"v3\"", 1));
	assert_false(http_etag_matches(NULL, "\"v3\"", 1));
	assert_false(http_etag_matches("", "\"v3\"", 1));
}

/* The entries paints caches in Redis, read back: the shapes it writes pass, nothing else. */
#define PAINT_BODY(id, version) "{\"id\":" id ",\"name\":\"Blue \\\"deep\\\" \\u00e9\",\"brand\":\"\"," \
	"\"stock\":3,\"price\":12.50,\"description\":\"a\\nb\",\"color_preview\":\"#cccccc\"," \
	"\"created_at\":\"2024-01-01T00:00:00.000000Z\",\"version\":" version "}"
#define PAINT_ENTRY_OK(s, id) assert_int_equal(paint_cached_paint_check(s, sizeof(s) - 1, id), 0)
#define PAINT_ENTRY_BAD(s, id) assert_int_equal(paint_cached_paint_check(s, sizeof(s) - 1, id), -1)

static void test_cached_paint_entries(void **state)
{
	(void)state;
	PAINT_ENTRY_OK("12\n" PAINT_BODY("42", "12"), 42);
	PAINT_ENTRY_OK("-", 42);				/* known absent */
	PAINT_ENTRY_OK("9223372036854775807\n" PAINT_BODY("9223372036854775807", "9223372036854775807"),
		       INT64_MAX);
	PAINT_ENTRY_BAD("12\n" PAINT_BODY("43", "12"), 42);	/* another paint's */
	PAINT_ENTRY_BAD("13\n" PAINT_BODY("42", "12"), 42);	/* a version the body does not say */
	PAINT_ENTRY_BAD("12\n" PAINT_BODY("42.0", "12"), 42);
	PAINT_ENTRY_BAD("12\n" PAINT_BODY("\"42\"", "12"), 42);
	PAINT_ENTRY_BAD("12\n{\"id\":42}", 42);		/* no version */
	PAINT_ENTRY_BAD("12\n{\"version\":12}", 42);		/* no id */
	PAINT_ENTRY_BAD("12\n{\"id\":42,\"version\":12,\"id\":43}", 42);
	PAINT_ENTRY_BAD("012\n" PAINT_BODY("42", "012"), 42);	/* not how versions are written */
	PAINT_ENTRY_BAD("0\n" PAINT_BODY("42", "0"), 42);
	PAINT_ENTRY_BAD("-1\n" PAINT_BODY("42", "-1"), 42);
	PAINT_ENTRY_BAD("9223372036854775808\n" PAINT_BODY("42", "9223372036854775808"), 42);
	PAINT_ENTRY_BAD("1\r\n" PAINT_BODY("42", "1"), 42);	/* a CR for the ETag header */
	PAINT_ENTRY_BAD("1\r\nX-Injected: yes\n" PAINT_BODY("42", "1"), 42);
	PAINT_ENTRY_BAD("12\n" PAINT_BODY("42", "12") " trailing", 42);
	PAINT_ENTRY_BAD("12\n[1,2,3]", 42);
	PAINT_ENTRY_BAD("12\n{not json", 42);
	PAINT_ENTRY_BAD("12\n", 42);
	PAINT_ENTRY_BAD("12", 42);
	PAINT_ENTRY_BAD("", 42);
	PAINT_ENTRY_BAD("-\r\n", 42);
	PAINT_ENTRY_BAD("--", 42);
	PAINT_ENTRY_BAD("\n" PAINT_BODY("42", "12"), 42);
	PAINT_ENTRY_BAD("12\0\n{\"id\":42,\"version\":12}", 42);	/* a NUL in the version */
}

#define ETAG "\"0123456789abcdef0123456789abcdef\"\n"
#define LIST_OK(s) assert_int_equal(paint_cached_list_check(s, sizeof(s) - 1), 0)
#define LIST_BAD(s) assert_int_equal(paint_cached_list_check(s, sizeof(s) - 1), -1)
#define STATS_OK(s) assert_int_equal(paint_cached_stats_check(s, sizeof(s) - 1), 0)
#define STATS_BAD(s) assert_int_equal(paint_cached_stats_check(s, sizeof(s) - 1), -1)

static void test_cached_pages(void **state)
{
	(void)state;
	LIST_OK(ETAG "{\"items\":[" PAINT_BODY("1", "2") "," PAINT_BODY("3", "1") "],\"next_cursor\":null}");
	LIST_OK(ETAG "{\"items\":[],\"next_cursor\":\"eyJ2IjoiMSJ9\"}");
	LIST_OK(ETAG "{\"next_cursor\":null,\"items\":[],\"later\":{\"a\":1}}");	/* members added later */
	LIST_BAD(ETAG "{\"items\":[]}");
	LIST_BAD(ETAG "{\"next_cursor\":null}");
	LIST_BAD(ETAG "{\"items\":5,\"next_cursor\":null}");
	LIST_BAD(ETAG "{\"items\":[1],\"next_cursor\":null}");
	LIST_BAD(ETAG "{\"items\":[{\"name\":\"no id\"}],\"next_cursor\":null}");
	LIST_BAD(ETAG "{\"items\":[{\"id\":0}],\"next_cursor\":null}");
	LIST_BAD(ETAG "{\"items\":[{\"id\":-1}],\"next_cursor\":null}");
	LIST_BAD(ETAG "{\"items\":[],\"next_cursor\":5}");
	LIST_BAD(ETAG "{\"items\":[],\"next_cursor\":null");
	LIST_BAD(ETAG "[1,2,3]");
	LIST_BAD(ETAG "{not json");
	LIST_BAD(ETAG);
	LIST_BAD("\"0123456789abcdef0123456789abcdef\"");
	LIST_BAD("{\"items\":[],\"next_cursor\":null}");
	LIST_BAD("\"abc\r\nX-Injected: yes\"\n{\"items\":[],\"next_cursor\":null}");
	LIST_BAD("\"abc\"\r\n{\"items\":[],\"next_cursor\":null}");
	LIST_BAD("W/\"abc\"\n{\"items\":[],\"next_cursor\":null}");
	LIST_BAD("\"\"\n{\"items\":[],\"next_cursor\":null}");
	LIST_BAD("");
	STATS_OK(ETAG "{\"total\":3,\"in_stock\":2,\"stock_value\":12.50,\"by_brand\":{\"A\":2,\"\":1},"
		 "\"by_family\":{}}");
	STATS_BAD(ETAG "{\"total\":3,\"in_stock\":2,\"stock_value\":12.50,\"by_brand\":{}}");
	STATS_BAD(ETAG "{\"total\":\"3\",\"in_stock\":2,\"stock_value\":1,\"by_brand\":{},\"by_family\":{}}");
	STATS_BAD(ETAG "{\"total\":3,\"in_stock\":2,\"stock_value\":1,\"by_brand\":[],\"by_family\":{}}");
	STATS_BAD(ETAG "{\"items\":[],\"next_cursor\":null}");	/* a list is not the stats */
	LIST_BAD(ETAG "{\"total\":3,\"in_stock\":2,\"stock_value\":1,\"by_brand\":{},\"by_family\":{}}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_normalisation),
		cmocka_unit_test(test_price_kept_exact),
		cmocka_unit_test(test_price_rules),
		cmocka_unit_test(test_each_bad_value_names_its_field),
		cmocka_unit_test(test_image_url_hash),
		cmocka_unit_test(test_length_counts_characters),
		cmocka_unit_test(test_merge_patch),
		cmocka_unit_test(test_like_pattern),
		cmocka_unit_test(test_stock_delta),
		cmocka_unit_test(test_cursor_round_trip),
		cmocka_unit_test(test_etags),
		cmocka_unit_test(test_cached_paint_entries),
		cmocka_unit_test(test_cached_pages),
	};

	return cmocka_run_group_tests_name("paints", tests, NULL, NULL);
}
