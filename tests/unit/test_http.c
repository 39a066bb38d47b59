/* Unit tests of request parsing: paths, query strings, ids, UTF-8, JSON escapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "base/util.h"
#include "http/http.h"
#include "resources/paint_model.h"

static void test_decode_path(void **state)
{
	char *p;

	(void)state;
	assert_int_equal(http_decode_path("/admin/paints/1?x=1", &p), 0);
	assert_string_equal(p, "/admin/paints/1");
	free(p);
	assert_int_equal(http_decode_path("/a%20b/%C3%A9", &p), 0);
	assert_string_equal(p, "/a b/\xc3\xa9");
	free(p);
	assert_int_equal(http_decode_path("/a+b", &p), 0);
	assert_string_equal(p, "/a+b");	/* '+' is literal in paths */
	free(p);
	assert_int_equal(http_decode_path("/a%00b", &p), -1);
	assert_int_equal(http_decode_path("/a%2", &p), -1);
	assert_int_equal(http_decode_path("/a%zz", &p), -1);
	assert_int_equal(http_decode_path("/%ff", &p), -1);	/* not UTF-8 */
	assert_int_equal(http_decode_path("/%C0%AF", &p), -1);	/* overlong */
	assert_int_equal(http_decode_path("relative", &p), -1);
	assert_int_equal(http_decode_path("", &p), -1);
}

static void test_parse_query(void **state)
{
	struct http_query q;

	(void)state;
	assert_int_equal(http_parse_query("brand=Golden+Acrylics&q=%C3%A9t%C3%A9&flag&&x=", &q), 0);
	assert_int_equal(q.count, 4);
	assert_string_equal(http_query_get(&q, "brand"), "Golden Acrylics");
	assert_string_equal(http_query_get(&q, "q"), "\xc3\xa9t\xc3\xa9");
	assert_string_equal(http_query_get(&q, "flag"), "");
	assert_string_equal(http_query_get(&q, "x"), "");
	assert_null(http_query_get(&q, "missing"));
	http_query_free(&q);

	assert_int_equal(http_parse_query(NULL, &q), 0);
	assert_int_equal(q.count, 0);
	assert_int_equal(http_parse_query("", &q), 0);
	assert_int_equal(q.count, 0);
	assert_int_equal(http_parse_query("a=%00", &q), -1);
	assert_int_equal(q.count, 0);
	assert_int_equal(http_parse_query("a=%e9", &q), -1);
	assert_int_equal(http_parse_query("a=1&b=%", &q), -1);
}

static void test_query_param_limit(void **state)
{
	struct strbuf sb;
	struct http_query q;
	int i;

	(void)state;
	strbuf_init(&sb);
	for (i = 0; i < HTTP_MAX_PARAMS; i++)
		strbuf_printf(&sb, "p%d=%d&", i, i);
	assert_int_equal(http_parse_query(sb.buf, &q), 0);
	assert_int_equal(q.count, HTTP_MAX_PARAMS);
	http_query_free(&q);
	strbuf_puts(&sb, "one=more");
	assert_int_equal(http_parse_query(sb.buf, &q), -1);
	strbuf_free(&sb);
}

static void test_paint_ids(void **state)
{
	int64_t id;

	(void)state;
	assert_int_equal(paint_parse_id("1", 1, &id), 0);
	assert_int_equal(id, 1);
	assert_int_equal(paint_parse_id("9223372036854775807", 19, &id), 0);
	assert_int_equal(id, INT64_MAX);
	assert_int_equal(paint_parse_id("9223372036854775808", 19, &id), -1);
	assert_int_equal(paint_parse_id("99999999999999999999999", 23, &id), -1);
	assert_int_equal(paint_parse_id("0", 1, &id), -1);
	assert_int_equal(paint_parse_id("01", 2, &id), -1);
	assert_int_equal(paint_parse_id("-1", 2, &id), -1);
	assert_int_equal(paint_parse_id("+1", 2, &id), -1);
	assert_int_equal(paint_parse_id("1e3", 3, &id), -1);
	assert_int_equal(paint_parse_id("1 ", 2, &id), -1);
	assert_int_equal(paint_parse_id("abc", 3, &id), -1);
	assert_int_equal(paint_parse_id("", 0, &id), -1);
	/* only the first len bytes count */
	assert_int_equal(paint_parse_id("12/stock", 2, &id), 0);
	assert_int_equal(id, 12);
}

static void test_parse_int64_bounds(void **state)
{
	int64_t v;

	(void)state;
	assert_int_equal(parse_int64("-9223372036854775808", INT64_MIN, INT64_MAX, &v), 0);
	assert_true(v == INT64_MIN);
	assert_int_equal(parse_int64("-9223372036854775809", INT64_MIN, INT64_MAX, &v), -1);
	assert_int_equal(parse_int64("5", 1, 4, &v), -1);
	assert_int_equal(parse_int64("-", -5, 5, &v), -1);
	assert_int_equal(parse_int64(" 5", 0, 9, &v), -1);
}

static void test_json_string_escapes(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_json_string(&sb, "a\"b\\c\n\x01\xc3\xa9\xff");
	assert_string_equal(sb.buf, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\\ufffd\"");
	strbuf_free(&sb);
}

static void test_utf8(void **state)
{
	(void)state;
	assert_true(utf8_valid("plain", 5));
	assert_true(utf8_valid("\xe2\x82\xac", 3));
	assert_true(utf8_valid("\xf0\x9f\x8e\xa8", 4));
	assert_false(utf8_valid("\xed\xa0\x80", 3));	/* surrogate */
	assert_false(utf8_valid("\xe2\x82", 2));		/* truncated */
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4));	/* > U+10FFFF */
	assert_false(utf8_valid("a\0b", 3));
}

static void test_problem_shape(void **state)
{
	struct http_resp r;
	struct json_object *o, *v;

	(void)state;
	http_resp_init(&r);
	http_problem(&r, 404, "no paint has this id", NULL);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.content_type, "application/problem+json");
	o = json_tokener_parse(r.body.buf);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "title", &v));
	assert_string_equal(json_object_get_string(v), "Not Found");
	assert_true(json_object_object_get_ex(o, "error", &v));
	assert_string_equal(json_object_get_string(v), "Not Found");
	assert_true(json_object_object_get_ex(o, "status", &v));
	assert_int_equal(json_object_get_int(v), 404);
	assert_true(json_object_object_get_ex(o, "detail", &v));
	json_object_put(o);
	http_resp_free(&r);
}

static void test_serialise(void **state)
{
	struct http_resp r;
	struct strbuf out;

	(void)state;
	http_resp_init(&r);
	http_resp_json_raw(&r, 200, "{}", 2);
	http_resp_header(&r, "X-Test", "%d", 7);
	strbuf_init(&out);
	http_resp_serialise(&r, 0, &out);
	assert_string_equal(out.buf, "Status: 200 OK\r\nContent-Type: application/json\r\n"
				     "Content-Length: 2\r\nX-Test: 7\r\n\r\n{}");
	strbuf_reset(&out);
	http_resp_serialise(&r, 1, &out);	/* HEAD: headers only */
	assert_null(strstr(out.buf, "{}"));
	assert_non_null(strstr(out.buf, "Content-Length: 2"));
	strbuf_reset(&out);
	r.status = 304;
	http_resp_serialise(&r, 0, &out);
	assert_string_equal(out.buf, "Status: 304 Not Modified\r\nX-Test: 7\r\n\r\n");
	strbuf_free(&out);
	http_resp_free(&r);
}

/* A header is never split or cut: one with a control byte, a bad name or too long a value is dropped. */
static void test_headers_refuse_control_bytes(void **state)
{
	struct http_resp r;
	struct strbuf out;
	char big[1100];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	http_resp_init(&r);
	assert_int_equal(http_resp_header(&r, "ETag", "\"v%s\"", "1\r\nX-Injected: yes"), -1);
	assert_int_equal(http_resp_header(&r, "ETag", "%s", "\"a\nb\""), -1);
	assert_int_equal(http_resp_header(&r, "ETag", "%s", "\"a\rb\""), -1);
	assert_int_equal(http_resp_header(&r, "ETag", "%s", "\"a\x01\""), -1);
	assert_int_equal(http_resp_header(&r, "ETag", "%s", "\"a\x7f\""), -1);
	assert_int_equal(http_resp_header(&r, "X-Bad\r\nX-Injected", "%d", 1), -1);
	assert_int_equal(http_resp_header(&r, "X Bad", "%d", 1), -1);
	assert_int_equal(http_resp_header(&r, "", "%d", 1), -1);
	assert_int_equal(http_resp_header(&r, "X-Big", "%s", big), -1);
	assert_int_equal(r.headers.len, 0);	/* nothing of them was added */
	assert_int_equal(http_resp_header(&r, "X-Tab", "a\tb \xc3\xa9"), 0);	/* tab and UTF-8 are allowed */
	http_resp_json_raw(&r, 200, "{}", 2);
	strbuf_init(&out);
	http_resp_serialise(&r, 0, &out);
	assert_string_equal(out.buf, "Status: 200 OK\r\nContent-Type: application/json\r\n"
				     "Content-Length: 2\r\nX-Tab: a\tb \xc3\xa9\r\n\r\n{}");
	strbuf_free(&out);
	http_resp_free(&r);
}

static void test_etag_tokens(void **state)
{
	char tag[HTTP_ETAG_MAX + 1];

	(void)state;
	assert_true(http_etag_valid("\"v12\"", 5));
	assert_true(http_etag_valid("\"0123456789abcdef0123456789abcdef\"", 34));
	assert_true(http_etag_valid("\"a-b_c.d/e:f\"", 13));
	assert_false(http_etag_valid("\"\"", 2));
	assert_false(http_etag_valid("\"a", 2));
	assert_false(http_etag_valid("a\"", 2));
	assert_false(http_etag_valid("W/\"a\"", 6));
	assert_false(http_etag_valid("\"a b\"", 5));
	assert_false(http_etag_valid("\"a\rb\"", 5));
	assert_false(http_etag_valid("\"a\nb\"", 5));
	assert_false(http_etag_valid("\"a\"b\"", 5));
	assert_false(http_etag_valid("\"a\0b\"", 5));
	assert_false(http_etag_valid("\"\xc3\xa9\"", 4));
	memset(tag, 'a', sizeof(tag));
	tag[0] = '"';
	tag[HTTP_ETAG_MAX - 1] = '"';
	assert_true(http_etag_valid(tag, HTTP_ETAG_MAX));
	tag[HTTP_ETAG_MAX - 1] = 'a';
	tag[HTTP_ETAG_MAX] = '"';
	assert_false(http_etag_valid(tag, HTTP_ETAG_MAX + 1));
}

static void test_cookies(void **state)
{
	char v[64];

	(void)state;
	assert_int_equal(http_cookie_get("a=1; __Host-ps_session=abc; b=2", "__Host-ps_session",
					 v, sizeof(v)), 0);
	assert_string_equal(v, "abc");
	assert_int_equal(http_cookie_get("__Host-ps_session=x", "__Host-ps_session", v, sizeof(v)), 0);
	assert_string_equal(v, "x");
	assert_int_equal(http_cookie_get("x__Host-ps_session=no", "__Host-ps_session", v, sizeof(v)), -1);
	assert_int_equal(http_cookie_get("__Host-ps_session=", "__Host-ps_session", v, sizeof(v)), -1);
	assert_int_equal(http_cookie_get("__Host-ps_sessionX=1", "__Host-ps_session", v, sizeof(v)), -1);
	assert_int_equal(http_cookie_get(NULL, "a", v, sizeof(v)), -1);
	assert_int_equal(http_cookie_get("a=0123456789", "a", v, 5), -1);	/* too long */
	assert_int_equal(http_cookie_get(";;; a = 1", "a", v, sizeof(v)), -1);	/* "a " is another name */
	assert_int_equal(http_cookie_get(";;;a=1 ", "a", v, sizeof(v)), 0);
	assert_string_equal(v, "1");
}

static int escapes(const char *json, char *field)
{
	return http_json_escapes_ok(json, strlen(json), field, 32);
}

static void test_json_unicode_escapes(void **state)
{
	char f[32];

	(void)state;
	assert_int_equal(escapes("{\"name\":\"plain\"}", f), 0);
	assert_int_equal(escapes("{\"name\":\"\\u00e9 \\ud83c\\udfa8\"}", f), 0);	/* é, a surrogate pair */
	assert_int_equal(escapes("{\"name\":\"\\\\ud800\"}", f), 0);	/* an escaped backslash, then text */
	assert_int_equal(escapes("{\"name\":\"a\\ud800b\"}", f), -1);	/* lone high */
	assert_string_equal(f, "name");
	assert_int_equal(escapes("{\"brand\":\"x\", \"description\" : \"\\udc00\"}", f), -1);	/* lone low */
	assert_string_equal(f, "description");
	assert_int_equal(escapes("{\"a\":\"\\ud800\\u0041\"}", f), -1);	/* high, then not a low */
	assert_string_equal(f, "a");
	assert_int_equal(escapes("{\"a\":\"\\ud800\"}", f), -1);	/* high at the end */
	assert_int_equal(escapes("{\"a\":\"\\u12G4\"}", f), -1);	/* not hex */
	assert_int_equal(escapes("{\"k\\udfffey\":1}", f), -1);	/* in a key: the key is named */
	assert_string_equal(f, "k\\udfffey");
	assert_int_equal(escapes("[\"\\ud800\"]", f), -1);
	assert_string_equal(f, "(body)");
	assert_int_equal(escapes("{\"a\":\"\\ud8", f), -1);	/* cut short */
	assert_int_equal(escapes("{\"a\":\"x", f), 0);	/* unterminated: for the parser */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_path),
		cmocka_unit_test(test_parse_query),
		cmocka_unit_test(test_query_param_limit),
		cmocka_unit_test(test_paint_ids),
		cmocka_unit_test(test_parse_int64_bounds),
		cmocka_unit_test(test_json_string_escapes),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_problem_shape),
		cmocka_unit_test(test_serialise),
		cmocka_unit_test(test_cookies),
		cmocka_unit_test(test_headers_refuse_control_bytes),
		cmocka_unit_test(test_etag_tokens),
		cmocka_unit_test(test_json_unicode_escapes),
	};

	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
