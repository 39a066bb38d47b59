/* Unit tests of json_scan: JSON checked without building it, and stepped through for shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/json_scan.h"

#define OK(s) assert_int_equal(json_scan_check(s, sizeof(s) - 1), 0)
#define BAD(s) assert_int_equal(json_scan_check(s, sizeof(s) - 1), -1)

static void test_values(void **state)
{
	(void)state;
	OK("{}");
	OK("[]");
	OK(" \t\r\n{ \"a\" : [ 1 , -2.5e+3 , 0 , -0 , 1E9 ] , \"b\" : { \"c\" : null } } \n");
	OK("true");
	OK("false");
	OK("null");
	OK("\"\"");
	OK("0.25");
	OK("[[[]],{}]");
	BAD("");
	BAD("   ");
	BAD("{");
	BAD("}");
	BAD("[1,]");
	BAD("[,1]");
	BAD("{\"a\":1,}");
	BAD("{,}");
	BAD("{\"a\" 1}");
	BAD("{\"a\":}");
	BAD("{1:2}");
	BAD("[1 2]");
	BAD("{\"a\":1 \"b\":2}");
	BAD("1 2");
	BAD("{} x");
	BAD("tru");
	BAD("nul");
	BAD("True");
	BAD("'a'");
	BAD("01");
	BAD("-");
	BAD("1.");
	BAD(".5");
	BAD("1e");
	BAD("+1");
	BAD("0x10");
	BAD("NaN");
	BAD("Infinity");
}

static void test_strings(void **state)
{
	(void)state;
	OK("\"plain ascii, quite a long one to cross the eight-byte steps\"");
	OK("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"");
	OK("\"\\u00e9 \\u0000 \\uD83D\\uDE00\"");	/* a pair of surrogates */
	OK("\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");	/* é € and an emoji, raw */
	OK("\"\x7f\"");					/* DEL needs no escape */
	BAD("\"unterminated");
	BAD("\"a\nb\"");				/* raw control bytes */
	BAD("\"a\rb\"");
	BAD("\"\x01\"");
	BAD("\"\\x41\"");
	BAD("\"\\u12\"");
	BAD("\"\\u12G4\"");
	BAD("\"\\uD83D\"");				/* a high surrogate alone */
	BAD("\"\\uDE00\"");				/* a low one alone */
	BAD("\"\\uD83D\\u0041\"");
	BAD("\"\xc3\"");				/* cut UTF-8 */
	BAD("\"\xc0\xaf\"");				/* overlong */
	BAD("\"\xed\xa0\x80\"");			/* a surrogate in UTF-8 */
	BAD("\"\xf4\x90\x80\x80\"");			/* beyond U+10FFFF */
	BAD("\"\xff\"");
	/* a NUL, raw, anywhere */
	assert_int_equal(json_scan_check("\"a\0b\"", 5), -1);
	assert_int_equal(json_scan_check("[1,\0]", 5), -1);
	assert_int_equal(json_scan_check("{}\0", 3), -1);
	/* the length is the end: the bytes beyond are never read */
	assert_int_equal(json_scan_check("[1]]]", 3), 0);
	assert_int_equal(json_scan_check("\"abc\"", 4), -1);
}

static void test_depth_is_bounded(void **state)
{
	char deep[2 * (JSON_SCAN_MAX_DEPTH + 1)];

	(void)state;
	memset(deep, '[', JSON_SCAN_MAX_DEPTH);
	memset(deep + JSON_SCAN_MAX_DEPTH, ']', JSON_SCAN_MAX_DEPTH);
	assert_int_equal(json_scan_check(deep, 2 * JSON_SCAN_MAX_DEPTH), 0);
	memset(deep, '[', JSON_SCAN_MAX_DEPTH + 1);
	memset(deep + JSON_SCAN_MAX_DEPTH + 1, ']', JSON_SCAN_MAX_DEPTH + 1);
	assert_int_equal(json_scan_check(deep, sizeof(deep)), -1);
}

/* Stepping through {"id": 7, "tags": ["a", "b"], "x": {"y": 1}} member by member. */
static void test_stepping_through_a_shape(void **state)
{
	static const char text[] = "{\"id\": 7, \"tags\": [\"a\", \"b\"], \"x\": {\"y\": 1}}";
	struct json_scan js;
	const char *key;
	size_t keylen;

	(void)state;
	json_scan_init(&js, text, sizeof(text) - 1);
	assert_int_equal(json_scan_enter(&js, JSON_ARRAY), -1);	/* not an array */
	assert_int_equal(json_scan_enter(&js, JSON_OBJECT), 0);
	assert_int_equal(json_scan_member(&js, &key, &keylen), 1);
	assert_int_equal(keylen, 2);
	assert_memory_equal(key, "id", 2);
	assert_int_equal(json_scan_value(&js), JSON_NUMBER);
	assert_int_equal(js.toklen, 1);
	assert_memory_equal(js.tok, "7", 1);
	assert_int_equal(json_scan_member(&js, &key, &keylen), 1);
	assert_memory_equal(key, "tags", 4);
	assert_int_equal(json_scan_enter(&js, JSON_ARRAY), 0);
	assert_int_equal(json_scan_element(&js), 1);
	assert_int_equal(json_scan_value(&js), JSON_STRING);
	assert_memory_equal(js.tok, "a", 1);
	assert_int_equal(json_scan_element(&js), 1);
	assert_int_equal(json_scan_value(&js), JSON_STRING);
	assert_int_equal(json_scan_element(&js), 0);	/* ']' */
	assert_int_equal(json_scan_member(&js, &key, &keylen), 1);
	assert_memory_equal(key, "x", 1);
	assert_int_equal(json_scan_value(&js), JSON_OBJECT);	/* stepped over whole */
	assert_int_equal(json_scan_member(&js, &key, &keylen), 0);	/* '}' */
	assert_int_equal(json_scan_end(&js), 0);
	assert_int_equal(js.depth, 0);
}

/* A caller that does not step over a member's value finds a bad text, not a wrong shape. */
static void test_a_skipped_value_is_an_error(void **state)
{
	static const char text[] = "{\"a\": 1, \"b\": 2}";
	struct json_scan js;
	const char *key;
	size_t keylen;

	(void)state;
	json_scan_init(&js, text, sizeof(text) - 1);
	assert_int_equal(json_scan_enter(&js, JSON_OBJECT), 0);
	assert_int_equal(json_scan_member(&js, &key, &keylen), 1);
	assert_int_equal(json_scan_member(&js, &key, &keylen), -1);
	/* and the end of an unfinished text is not an end */
	json_scan_init(&js, text, sizeof(text) - 1);
	assert_int_equal(json_scan_enter(&js, JSON_OBJECT), 0);
	assert_int_equal(json_scan_end(&js), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_depth_is_bounded),
		cmocka_unit_test(test_stepping_through_a_shape),
		cmocka_unit_test(test_a_skipped_value_is_an_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
