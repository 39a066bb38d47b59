/* Unit tests of users_model (and the password policy it applies): bodies, rules, ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "resources/auth.h"
#include "resources/users_model.h"

/* Validate the JSON text body; returns the rc, *errors kept for the caller. */
static int check(const char *text, unsigned allowed, unsigned required, const char *policy_user,
		 struct user_input *in, struct json_object **body, struct json_object **errors)
{
	*body = json_tokener_parse(text);
	assert_non_null(*body);
	return users_validate(*body, allowed, required, policy_user, in, errors);
}

static void assert_error(struct json_object *errors, const char *field, const char *words)
{
	struct json_object *v;

	assert_non_null(errors);
	assert_true(json_object_object_get_ex(errors, field, &v));
	assert_non_null(strstr(json_object_get_string(v), words));
}

static void test_policy(void **state)
{
	char buf[300];

	(void)state;
	assert_non_null(strstr(auth_password_problem("bob", "a2345678901"), "at least 12"));
	assert_null(auth_password_problem("bob", "a23456789012"));
	/* characters, not bytes: 11 two-byte characters are too few, 12 enough */
	assert_non_null(auth_password_problem("bob", "ééééééééééé"));
	assert_null(auth_password_problem("bob", "éééééééééééé"));
	memset(buf, 'b', 256);
	buf[256] = '\0';
	assert_null(auth_password_problem("bob", buf));
	buf[256] = 'b';
	buf[257] = '\0';
	assert_non_null(strstr(auth_password_problem("bob", buf), "at most 256 bytes"));
	assert_non_null(strstr(auth_password_problem("LongUserName", "longusername"), "username"));
	assert_null(auth_password_problem(NULL, "longusername"));
}

static void test_create_body(void **state)
{
	const unsigned all = USER_USERNAME | USER_PASSWORD | USER_IS_ADMIN;
	const unsigned req = USER_USERNAME | USER_PASSWORD;
	struct json_object *body, *errors;
	struct user_input in;

	(void)state;
	assert_int_equal(check("{\"username\":\"ann\",\"password\":\"twelve chars\",\"is_admin\":true}",
			       all, req, NULL, &in, &body, &errors), 0);
	assert_null(errors);
	assert_string_equal(in.username, "ann");
	assert_true(in.is_admin);
	json_object_put(body);

	assert_int_equal(check("{\"username\":\"a b\",\"password\":\"x\",\"role\":1,\"is_admin\":\"y\"}",
			       all, req, NULL, &in, &body, &errors), -1);
	assert_error(errors, "username", "A-Z");
	assert_error(errors, "password", "at least 12");
	assert_error(errors, "role", "not a field");
	assert_error(errors, "is_admin", "true or false");
	assert_string_equal(users_errors_detail(errors), "some fields are invalid: see errors");
	json_object_put(errors);
	json_object_put(body);

	assert_int_equal(check("{\"username\":\"Annabelle\"}", all, req, NULL, &in, &body, &errors), -1);
	assert_error(errors, "password", "required");
	assert_string_equal(users_errors_detail(errors), "is required");
	json_object_put(errors);
	json_object_put(body);

	/* the policy compares with the body's username */
	assert_int_equal(check("{\"username\":\"Annabelle123\",\"password\":\"ANNABELLE123\"}",
			       all, req, NULL, &in, &body, &errors), -1);
	assert_error(errors, "password", "username");
	json_object_put(errors);
	json_object_put(body);
}

static void test_patch_and_change_bodies(void **state)
{
	const unsigned patch = USER_PASSWORD | USER_IS_ADMIN | USER_DISABLED;
	struct json_object *body, *errors;
	struct user_input in;

	(void)state;
	assert_int_equal(check("{}", patch, 0, "target", &in, &body, &errors), -1);
	assert_error(errors, "(body)", "at least one");
	json_object_put(errors);
	json_object_put(body);

	assert_int_equal(check("{\"disabled\":true}", patch, 0, "target", &in, &body, &errors), 0);
	assert_true(in.sent == USER_DISABLED && in.disabled);
	json_object_put(body);

	/* the target's username, not the caller's, is what the policy compares */
	assert_int_equal(check("{\"password\":\"TargetUser12\"}", patch, 0, "targetuser12",
			       &in, &body, &errors), -1);
	assert_error(errors, "password", "username");
	json_object_put(errors);
	json_object_put(body);

	assert_int_equal(check("{\"current_password\":\"x\",\"new_password\":\"short\"}",
			       USER_CURRENT_PASSWORD | USER_NEW_PASSWORD,
			       USER_CURRENT_PASSWORD | USER_NEW_PASSWORD, "me", &in, &body, &errors), -1);
	assert_error(errors, "new_password", "at least 12");
	json_object_put(errors);
	json_object_put(body);

	/* an embedded NUL is refused, not cut */
	assert_int_equal(check("{\"password\":\"abcdefghijkl\\u0000m\"}", patch, 0, "t",
			       &in, &body, &errors), -1);
	assert_error(errors, "password", "NUL");
	json_object_put(errors);
	json_object_put(body);
}

/* PATCH of your own password: the current one is required, sent only with it, and differs. */
static void test_own_password_rules(void **state)
{
	const unsigned own = USER_PASSWORD | USER_IS_ADMIN | USER_DISABLED | USER_CURRENT_PASSWORD;
	static const struct {
		const char *body, *field, *words;	/* field NULL: passes */
	} cases[] = {
		{ "{\"password\":\"a-new-password\"}", "current_password", "required" },
		{ "{\"current_password\":\"an-old-password\",\"disabled\":false}",
		  "current_password", "only with" },
		{ "{\"password\":\"the-same-password\",\"current_password\":\"the-same-password\"}",
		  "password", "differ" },
		{ "{\"password\":\"a-new-password\",\"current_password\":\"x\"}", NULL, NULL },
		{ "{\"is_admin\":true}", NULL, NULL },
	};
	struct json_object *body, *errors;
	struct user_input in;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(check(cases[i].body, own, 0, "me", &in, &body, &errors), 0);
		errors = users_own_password_errors(&in);
		if (cases[i].field) {
			assert_error(errors, cases[i].field, cases[i].words);
			assert_int_equal(json_object_object_length(errors), 1);
			json_object_put(errors);
		} else {
			assert_null(errors);
		}
		json_object_put(body);
	}
}

/* The list's limit and cursor: defaults, bounds, and a cursor made by the list or not. */
static void test_list_page(void **state)
{
	static const struct {
		const char *limit, *cursor, *bad;	/* bad: the one field refused, or NULL */
	} cases[] = {
		{ "0", NULL, "limit" }, { "201", NULL, "limit" }, { "5x", NULL, "limit" },
		{ "", NULL, "limit" }, { NULL, "", "cursor" }, { NULL, "bm90LWEtY3Vyc29y", "cursor" },
		{ NULL, "eyJhIjo5fQ", "cursor" },	/* {"a":9}: the audit list's */
		{ NULL, "eyJ1IjowfQ", "cursor" },	/* {"u":0} */
		{ NULL, "eyJ1IjoiOSJ9", "cursor" },	/* {"u":"9"} */
	};
	struct json_object *errors;
	struct users_page p;
	char *next;
	size_t i;

	(void)state;
	errors = json_object_new_object();
	assert_int_equal(users_page_parse(NULL, NULL, &p, errors), 0);
	assert_true(p.after == 0 && p.limit == 50);
	assert_int_equal(users_page_parse("200", NULL, &p, errors), 0);
	assert_int_equal(p.limit, 200);
	next = users_cursor_make(9223372036854775807LL);
	assert_int_equal(users_page_parse("1", next, &p, errors), 0);
	assert_true(p.after == 9223372036854775807LL && p.limit == 1);
	free(next);
	assert_int_equal(json_object_object_length(errors), 0);
	json_object_put(errors);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		errors = json_object_new_object();
		assert_int_equal(users_page_parse(cases[i].limit, cases[i].cursor, &p, errors), -1);
		assert_int_equal(json_object_object_length(errors), 1);
		assert_true(json_object_object_get_ex(errors, cases[i].bad, NULL));
		json_object_put(errors);
	}
}

static void test_ids(void **state)
{
	int64_t id;

	(void)state;
	assert_int_equal(users_parse_id("42", 2, &id), 0);
	assert_int_equal(id, 42);
	assert_int_equal(users_parse_id("9223372036854775807", 19, &id), 0);
	assert_int_equal(users_parse_id("9223372036854775808", 19, &id), -1);
	assert_int_equal(users_parse_id("0", 1, &id), -1);
	assert_int_equal(users_parse_id("-1", 2, &id), -1);
	assert_int_equal(users_parse_id("1x", 2, &id), -1);
	assert_int_equal(users_parse_id("", 0, &id), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_create_body),
		cmocka_unit_test(test_patch_and_change_bodies),
		cmocka_unit_test(test_own_password_rules),
		cmocka_unit_test(test_list_page),
		cmocka_unit_test(test_ids),
	};

	return cmocka_run_group_tests_name("users", tests, NULL, NULL);
}
