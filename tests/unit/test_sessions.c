/* Unit tests of the session cache's rule: served, refreshed once in the background, expired. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "resources/sessions.h"

static void test_fresh_entry_is_served(void **state)
{
	int refreshing = 0;

	(void)state;
	assert_int_equal(sessions_cache_serves(0.0, &refreshing), 1);
	assert_int_equal(sessions_cache_serves(0.24, &refreshing), 1);
	assert_int_equal(refreshing, 0);
}

static void test_one_caller_refreshes_the_others_are_served(void **state)
{
	int refreshing = 0, i, readers = 0;

	(void)state;
	/*
	 * 16 callers see an entry 0.4 s old: all are served, and one (2) has
	 * it read again in the background.
	 */
	for (i = 0; i < 16; i++) {
		int rule = sessions_cache_serves(0.4, &refreshing);

		assert_true(rule == 1 || rule == 2);
		readers += rule == 2;
	}
	assert_int_equal(readers, 1);
	assert_int_equal(refreshing, 1);
	assert_int_equal(sessions_cache_serves(0.49, &refreshing), 1);
}

static void test_expired_entry_is_never_served(void **state)
{
	int refreshing, i;

	(void)state;
	for (i = 0; i < 2; i++) {
		refreshing = i;	/* whether or not a refresh is under way */
		assert_int_equal(sessions_cache_serves(0.5, &refreshing), 0);
		assert_int_equal(sessions_cache_serves(5.0, &refreshing), 0);
		/* a clock that went backwards is no reason to trust an entry */
		assert_int_equal(sessions_cache_serves(-0.5, &refreshing), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_entry_is_served),
		cmocka_unit_test(test_one_caller_refreshes_the_others_are_served),
		cmocka_unit_test(test_expired_entry_is_never_served),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
