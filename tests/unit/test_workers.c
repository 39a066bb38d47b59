/* Unit tests of the workers' watcher rule: when one more thread is unparked, and when one parks again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/workers.h"

/* boost, max_boost, progressed, busy, active, parked */
static void test_a_stall_unparks_one_per_tick(void **state)
{
	(void)state;
	/* 4 active threads, all inside requests, none finished: one more */
	assert_int_equal(workers_next_boost(0, 12, 0, 4, 4, 12), 1);
	/* still stuck at the next tick: another */
	assert_int_equal(workers_next_boost(1, 12, 0, 5, 5, 11), 2);
	/* never beyond the threads there are */
	assert_int_equal(workers_next_boost(12, 12, 0, 16, 16, 0), 12);
	assert_int_equal(workers_next_boost(3, 12, 0, 7, 7, 0), 3);
}

static void test_no_stall_no_unparking(void **state)
{
	(void)state;
	/* requests finish: no more threads, however busy */
	assert_int_equal(workers_next_boost(0, 12, 1, 4, 4, 12), 0);
	/* nothing finished, but an active thread is idle: it can take the next one */
	assert_int_equal(workers_next_boost(0, 12, 0, 3, 4, 12), 0);
	/* idle process */
	assert_int_equal(workers_next_boost(0, 12, 0, 0, 4, 12), 0);
}

static void test_extra_threads_park_once_requests_flow(void **state)
{
	(void)state;
	assert_int_equal(workers_next_boost(3, 12, 1, 7, 7, 9), 2);
	assert_int_equal(workers_next_boost(1, 12, 1, 0, 5, 11), 0);
	/* a stuck tick keeps what it has */
	assert_int_equal(workers_next_boost(2, 12, 0, 3, 6, 10), 2);
}

static void test_default_active_is_two_per_cpu(void **state)
{
	int n = workers_default_active();

	(void)state;
	assert_true(n >= 2);
	assert_int_equal(n % 2, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_stall_unparks_one_per_tick),
		cmocka_unit_test(test_no_stall_no_unparking),
		cmocka_unit_test(test_extra_threads_park_once_requests_flow),
		cmocka_unit_test(test_default_active_is_two_per_cpu),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
