/*
 * Unit tests of the admission gate's rules (app/db/admission.h): the
 * gradient controller's limit, CoDel's standing-queue detection, and the
 * gate's decisions that need no waiting (tests/db/test_admission.c has
 * the queue, with threads).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db/admission.h"

#define BUF 0.25

static void test_limit_grows_while_latency_keeps_its_floor(void **state)
{
	(void)state;
	/* sample == min_rtt: gradient 1.25, plus sqrt headroom */
	assert_true(admission_next_limit(4, 0.002, 0.002, BUF, 3, 50) > 5.0 * 1.0);
	assert_int_equal((int)admission_next_limit(4, 0.002, 0.002, BUF, 3, 50), 7);	/* 5 + sqrt 5 */
	/* never beyond the ceiling */
	assert_true(admission_next_limit(14, 0.002, 0.002, BUF, 3, 15) == 15.0);
	/* a faster window than min_rtt grows it at most twofold (plus headroom) */
	assert_true(admission_next_limit(4, 0.010, 0.001, BUF, 3, 100) <= 8.0 + 3.0);
}

static void test_limit_shrinks_when_latency_rises(void **state)
{
	(void)state;
	/* four times the no-load latency: halved at most per window (plus headroom) */
	assert_true(admission_next_limit(12, 0.002, 0.008, BUF, 3, 15) < 12.0);
	assert_true(admission_next_limit(12, 0.002, 0.008, BUF, 3, 15) >= 6.0);
	/* never below the floor, however slow */
	assert_true(admission_next_limit(3, 0.001, 10.0, BUF, 3, 15) == 3.0);
	/* within the buffer (25 %): no shrinking */
	assert_true(admission_next_limit(10, 0.004, 0.0049, BUF, 3, 15) >= 10.0);
}

/*
 * A database whose throughput is fixed (a CPU quota): a sample grows with
 * the requests inside it. The limit must settle low, where the database is
 * still kept busy, not at the ceiling where requests only queue inside it.
 */
static void test_limit_settles_low_on_a_saturated_database(void **state)
{
	const double per_second = 2000, service = 0.0008;	/* one alone: 0.8 ms */
	double limit = 15, min_rtt, sample;
	int i;

	(void)state;
	min_rtt = 3 / per_second > service ? 3 / per_second : service;	/* measured at the floor, 3 */
	for (i = 0; i < 100; i++) {
		sample = limit / per_second > service ? limit / per_second : service;
		limit = admission_next_limit(limit, min_rtt, sample, BUF, 3, 15);
	}
	assert_true(limit >= 3.0);
	assert_true(limit <= 8.0);
	/* and once the database is fast again (min_rtt the same), it grows back */
	for (i = 0; i < 20; i++)
		limit = admission_next_limit(limit, min_rtt, min_rtt, BUF, 3, 15);
	assert_true(limit == 15.0);
}

static void test_codel_a_burst_is_not_a_standing_queue(void **state)
{
	struct admission_codel q = { 0, 0, 0, 0, 0 };

	(void)state;
	/* above target, but for less than an interval */
	assert_int_equal(admission_codel_note(&q, 10.00, 0.080, 0.050, 0.100), 0);
	assert_int_equal(admission_codel_note(&q, 10.05, 0.090, 0.050, 0.100), 0);
	/* one request left within the target: the clock starts again */
	assert_int_equal(admission_codel_note(&q, 10.08, 0.010, 0.050, 0.100), 0);
	assert_int_equal(admission_codel_note(&q, 10.15, 0.090, 0.050, 0.100), 0);
	assert_int_equal(admission_codel_note(&q, 10.24, 0.090, 0.050, 0.100), 0);
}

static void test_codel_standing_queue_until_one_leaves_in_time(void **state)
{
	struct admission_codel q = { 0, 0, 0, 0, 0 };

	(void)state;
	assert_int_equal(admission_codel_note(&q, 20.00, 0.060, 0.050, 0.100), 0);
	assert_int_equal(admission_codel_note(&q, 20.06, 0.070, 0.050, 0.100), 0);
	/* still above target a whole interval later: standing */
	assert_int_equal(admission_codel_note(&q, 20.10, 0.055, 0.050, 0.100), 1);
	assert_int_equal(admission_codel_note(&q, 20.30, 0.200, 0.050, 0.100), 1);
	/* the queue drained: a request left within the target */
	assert_int_equal(admission_codel_note(&q, 20.31, 0.000, 0.050, 0.100), 0);
	assert_int_equal(q.first_above, 0);
}

/* While the queue stands, arrivals are turned away ever more often, never all of them. */
static void test_codel_control_law_spaces_its_sheds(void **state)
{
	struct admission_codel q = { 0, 0, 0, 0, 0 };
	double t;
	int n = 0;

	(void)state;
	assert_int_equal(admission_codel_shed(&q, 30.00, 0.1), 0);	/* no standing queue */
	admission_codel_note(&q, 30.00, 0.4, 0.3, 0.1);
	assert_int_equal(admission_codel_note(&q, 30.10, 0.4, 0.3, 0.1), 1);
	/* the first arrival at once, the next only an interval later, then sooner */
	assert_int_equal(admission_codel_shed(&q, 30.10, 0.1), 1);
	assert_int_equal(admission_codel_shed(&q, 30.15, 0.1), 0);
	assert_int_equal(admission_codel_shed(&q, 30.201, 0.1), 1);	/* next: + 0.1 / sqrt 2 */
	assert_int_equal(admission_codel_shed(&q, 30.25, 0.1), 0);
	assert_int_equal(admission_codel_shed(&q, 30.28, 0.1), 1);
	/* a standing second of arrivals every millisecond: dozens turned away, not a thousand */
	for (t = 30.30; t < 31.30; t += 0.001)
		n += admission_codel_shed(&q, t, 0.1);
	assert_true(n >= 20 && n <= 80);
	/* a request leaves within the target: the spell ends */
	assert_int_equal(admission_codel_note(&q, 31.31, 0.01, 0.3, 0.1), 0);
	assert_int_equal(admission_codel_shed(&q, 31.32, 0.1), 0);
	/* a new spell soon after starts near the last one's rate */
	admission_codel_note(&q, 31.40, 0.4, 0.3, 0.1);
	admission_codel_note(&q, 31.50, 0.4, 0.3, 0.1);
	assert_int_equal(admission_codel_shed(&q, 31.50, 0.1), 1);
	assert_true(q.count > 20);
}

static struct admission *gate(enum admission_mode mode, int ceiling, int queue)
{
	struct admission_settings s = {
		.mode = mode, .floor = 1, .ceiling = ceiling, .queue_max = queue,
		.threads = ceiling + queue, .target = 0.05, .background_target = 0.05, .interval = 0.1,
		.max_wait = 1.0,
		.buffer = BUF,
	};

	return admission_create(&s);
}

/* A min_rtt falls at once and rises by at most a quarter a measurement. */
static void test_min_rtt_rises_slowly(void **state)
{
	(void)state;
	assert_true(admission_next_min_rtt(0, 0.004) == 0.004);	/* the first measurement */
	assert_true(admission_next_min_rtt(0.002, 0.001) == 0.001);
	assert_true(admission_next_min_rtt(0.002, 0.0024) == 0.0024);
	assert_true(fabs(admission_next_min_rtt(0.001, 0.004) - 0.00125) < 1e-12);	/* an overload's */
	assert_true(fabs(admission_next_min_rtt(admission_next_min_rtt(0.001, 0.004), 0.004) - 0.0015625) < 1e-12);
}

/* Background requests leave half the limit (at least one place) to the others. */
static void test_background_places(void **state)
{
	(void)state;
	assert_int_equal(admission_background_places(1), 1);	/* never none */
	assert_int_equal(admission_background_places(2), 1);
	assert_int_equal(admission_background_places(3), 2);
	assert_int_equal(admission_background_places(4), 2);
	assert_int_equal(admission_background_places(7), 4);
	assert_int_equal(admission_background_places(12), 6);
}

/*
 * Once only the reserved places are left, a background request is turned
 * away at once; a person's takes a reserved place.
 */
static void test_background_is_shed_at_the_limit(void **state)
{
	struct admission *a = gate(ADMISSION_FIXED, 4, 0);
	struct admission_ticket t1, t2, t3, t4, t5;
	struct admission_stats st;
	enum admission_shed why;
	double waited;

	(void)state;
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &t1, &why, &waited), 0);
	assert_int_equal(admission_enter(a, ADMISSION_BACKGROUND, &t2, &why, &waited), 0);
	/* two of four places taken: the other two are kept for persons */
	assert_int_equal(admission_enter(a, ADMISSION_BACKGROUND, &t3, &why, &waited), -1);
	assert_int_equal(why, ADMISSION_SHED_BACKGROUND);
	assert_true(waited == 0);
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &t3, &why, &waited), 0);
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &t4, &why, &waited), 0);
	/* no room in a queue of 0: a person's is turned away too, for that reason */
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &t5, &why, &waited), -1);
	assert_int_equal(why, ADMISSION_SHED_QUEUE_FULL);
	admission_leave(a, &t2);
	admission_leave(a, &t2);	/* a second leave gives nothing back */
	/* one place free, but a reserved one */
	assert_int_equal(admission_enter(a, ADMISSION_BACKGROUND, &t5, &why, &waited), -1);
	admission_leave(a, &t3);
	admission_leave(a, &t4);
	assert_int_equal(admission_enter(a, ADMISSION_BACKGROUND, &t5, &why, &waited), 0);
	admission_get_stats(a, &st);
	assert_int_equal(st.in_flight, 2);
	assert_int_equal(st.limit, 4);
	assert_int_equal(st.background_places, 2);
	assert_int_equal(st.admitted[ADMISSION_PERSON], 3);
	assert_int_equal(st.admitted[ADMISSION_BACKGROUND], 2);
	assert_int_equal(st.shed[ADMISSION_SHED_BACKGROUND][ADMISSION_BACKGROUND], 2);
	assert_int_equal(st.shed[ADMISSION_SHED_QUEUE_FULL][ADMISSION_PERSON], 1);
	admission_leave(a, &t1);
	admission_leave(a, &t5);
	admission_get_stats(a, &st);
	assert_int_equal(st.in_flight, 0);
	admission_destroy(a);
}

/* A session look-up has one place beyond the limit; only one. */
static void test_session_look_ups_have_an_extra_place(void **state)
{
	struct admission *a = gate(ADMISSION_FIXED, 1, 0);
	struct admission_ticket p, s1;
	enum admission_shed why;
	double waited;

	(void)state;
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &p, &why, &waited), 0);
	assert_int_equal(admission_enter(a, ADMISSION_SESSION, &s1, &why, &waited), 0);
	/* (a second one would wait, beyond the queue's bound: tests/db/test_admission.c) */
	admission_leave(a, &p);
	/* the look-up holds the one place left: a person's request waits (here: no queue) */
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &p, &why, &waited), -1);
	admission_leave(a, &s1);
	admission_destroy(a);
}

/* A place held by a streamed answer (unsampled) says nothing of the database's latency. */
static void test_unsampled_holds_are_no_samples(void **state)
{
	struct admission *a = gate(ADMISSION_ADAPTIVE, 4, 0);
	struct admission_ticket t = { 0 };
	struct admission_stats st;
	enum admission_shed why;
	double waited;
	int i;

	(void)state;
	for (i = 0; i < 100; i++) {
		assert_int_equal(admission_enter(a, ADMISSION_PERSON, &t, &why, &waited), 0);
		t.unsampled = 1;
		admission_leave(a, &t);
		assert_int_equal(t.unsampled, 0);	/* leave clears it */
	}
	admission_get_stats(a, &st);
	assert_true(st.measuring);	/* min_rtt still waits for its samples */
	assert_true(st.min_rtt == 0);
	for (i = 0; i < 100; i++) {
		assert_int_equal(admission_enter(a, ADMISSION_PERSON, &t, &why, &waited), 0);
		admission_leave(a, &t);
	}
	admission_get_stats(a, &st);
	assert_false(st.measuring);
	admission_destroy(a);
}

static void test_off_admits_everyone(void **state)
{
	struct admission *a = gate(ADMISSION_OFF, 1, 0);
	struct admission_ticket t[5];
	struct admission_stats st;
	enum admission_shed why;
	double waited;
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		assert_int_equal(admission_enter(a, ADMISSION_BACKGROUND, &t[i], &why, &waited), 0);
	admission_get_stats(a, &st);
	assert_int_equal(st.in_flight, 5);
	assert_int_equal(st.limit, 0);	/* shown as "no limit" */
	for (i = 0; i < 5; i++)
		admission_leave(a, &t[i]);
	admission_close(a);
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &t[0], &why, &waited), -1);
	assert_int_equal(why, ADMISSION_SHED_CLOSED);
	admission_destroy(a);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(admission_mode_name(ADMISSION_ADAPTIVE), "adaptive");
	assert_string_equal(admission_mode_name(ADMISSION_OFF), "off");
	assert_string_equal(admission_class_name(ADMISSION_BACKGROUND), "background");
	assert_string_equal(admission_shed_name(ADMISSION_SHED_QUEUE_DELAY), "queue_delay");
	assert_string_equal(admission_shed_name(ADMISSION_SHED_WAIT_TIMEOUT), "wait_timeout");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_grows_while_latency_keeps_its_floor),
		cmocka_unit_test(test_limit_shrinks_when_latency_rises),
		cmocka_unit_test(test_limit_settles_low_on_a_saturated_database),
		cmocka_unit_test(test_codel_a_burst_is_not_a_standing_queue),
		cmocka_unit_test(test_codel_standing_queue_until_one_leaves_in_time),
		cmocka_unit_test(test_codel_control_law_spaces_its_sheds),
		cmocka_unit_test(test_min_rtt_rises_slowly),
		cmocka_unit_test(test_background_places),
		cmocka_unit_test(test_background_is_shed_at_the_limit),
		cmocka_unit_test(test_session_look_ups_have_an_extra_place),
		cmocka_unit_test(test_unsampled_holds_are_no_samples),
		cmocka_unit_test(test_off_admits_everyone),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
