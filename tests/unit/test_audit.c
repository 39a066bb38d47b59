/* Unit tests of the audit list's parsing (pure: no database): times and cursors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "resources/audit.h"

static void test_times(void **state)
{
	static const char *const good[] = {
		"2026-01-31T09:30:00Z", "2026-01-31T09:30Z", "2024-02-29T00:00:00Z",
		"2000-02-29T23:59:59.999999+15:59", "2026-12-31T00:00:00.5-05:30", "0001-01-01T00:00:00Z",
	};
	static const char *const bad[] = {
		"", "2026", "2026-01-31", "2026-01-31T09:30:00", "2026-01-31 09:30:00Z",
		"2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-02-29T00:00:00Z",
		"1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-01-01T24:00:00Z",
		"2026-01-01T10:60:00Z", "2026-01-01T10:00:60Z", "2026-01-01T10:00:00.Z",
		"2026-01-01T10:00:00.1234567Z", "2026-01-01T10:00:00+16:00", "2026-01-01T10:00:00+05",
		"2026-01-01T10:00:00Zjunk", "2026-01-01T10:00:00 01:00", "yesterday", "0000-01-01T00:00:00Z",
		"-2026-01-01T00:00:00Z", "2026-1-01T00:00:00Z",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!audit_time_valid(good[i]))
			fail_msg("refused: %s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (audit_time_valid(bad[i]))
			fail_msg("accepted: %s", bad[i]);
}

static void test_cursors(void **state)
{
	char id[24];

	(void)state;
	/* base64url("{\"a\":42}") */
	assert_int_equal(audit_cursor_decode("eyJhIjo0Mn0", id), 0);
	assert_string_equal(id, "42");
	assert_int_equal(audit_cursor_decode("", id), -1);
	assert_int_equal(audit_cursor_decode("eyJhIjowfQ", id), -1);		/* {"a":0} */
	assert_int_equal(audit_cursor_decode("eyJhIjoiNCJ9", id), -1);	/* {"a":"4"} */
	assert_int_equal(audit_cursor_decode("bm90LWEtY3Vyc29y", id), -1);	/* not-a-cursor */
	assert_int_equal(audit_cursor_decode("eyJhIjo0Mn0=", id), -1);	/* padding */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_cursors),
	};

	return cmocka_run_group_tests_name("audit", tests, NULL, NULL);
}
