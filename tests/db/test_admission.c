/*
 * The admission gate's queue with real threads and real waits (here, so
 * that it also runs under ThreadSanitizer; no database is needed): the
 * order in which waiters get a place, a full queue, CoDel's standing
 * queue, the last-resort wait, and shutdown.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "db/admission.h"

struct arrival {
	struct admission *a;
	enum admission_class cls;
	int rc;
	enum admission_shed why;
	double waited;
	double hold;			/* seconds to keep the place once admitted */
	pthread_t thread;
};

/* The order places were given in (each arrival appends itself). */
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static struct arrival *order[16];
static int norder;

static void *arrive(void *arg)
{
	struct arrival *r = arg;
	struct admission_ticket t;

	r->rc = admission_enter(r->a, r->cls, &t, &r->why, &r->waited);
	if (r->rc == 0) {
		pthread_mutex_lock(&order_mu);
		order[norder++] = r;
		pthread_mutex_unlock(&order_mu);
		if (r->hold > 0)
			usleep((useconds_t)(r->hold * 1e6));
		admission_leave(r->a, &t);
	}
	return NULL;
}

static struct admission *gate(int ceiling, int queue, double target, double max_wait)
{
	struct admission_settings s = {
		.mode = ADMISSION_FIXED, .floor = 1, .ceiling = ceiling, .queue_max = queue,
		.threads = 64, .target = target, .background_target = target, .interval = 0.1,
		.max_wait = max_wait,
		.buffer = 0.25,
	};

	norder = 0;
	return admission_create(&s);
}

static int queued(struct admission *a)
{
	struct admission_stats st;
	int c, n = 0;

	admission_get_stats(a, &st);
	for (c = 0; c < ADMISSION_NCLASS; c++)
		n += st.queued[c];
	return n;
}

/* Start r and wait (at most 2 s) until the queue holds want. */
static void start_queued(struct arrival *r, int want)
{
	int i;

	assert_int_equal(pthread_create(&r->thread, NULL, arrive, r), 0);
	for (i = 0; i < 200 && queued(r->a) < want; i++)
		usleep(10000);
	assert_int_equal(queued(r->a), want);
}

/* Waiters get places by class (session, person, background), each in arrival order. */
static void test_places_go_by_class_then_arrival(void **state)
{
	struct admission *a = gate(1, 8, 5.0, 5.0);
	struct admission_ticket mine, look_up;
	struct arrival r[4] = {
		{ .cls = ADMISSION_BACKGROUND }, { .cls = ADMISSION_PERSON },
		{ .cls = ADMISSION_PERSON }, { .cls = ADMISSION_SESSION },
	};
	enum admission_shed why;
	double waited;
	int i;

	(void)state;
	/* the one place, and the session look-ups' extra one */
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &mine, &why, &waited), 0);
	assert_int_equal(admission_enter(a, ADMISSION_SESSION, &look_up, &why, &waited), 0);
	for (i = 0; i < 4; i++) {
		r[i].a = a;
		start_queued(&r[i], i + 1);
	}
	admission_leave(a, &look_up);	/* each admitted one leaves at once: the next goes */
	admission_leave(a, &mine);
	for (i = 0; i < 4; i++)
		pthread_join(r[i].thread, NULL);
	assert_int_equal(norder, 4);
	assert_ptr_equal(order[0], &r[3]);	/* the session look-up */
	assert_ptr_equal(order[1], &r[1]);	/* the persons, first come first served */
	assert_ptr_equal(order[2], &r[2]);
	assert_ptr_equal(order[3], &r[0]);	/* the background refresh last */
	for (i = 0; i < 4; i++)
		assert_int_equal(r[i].rc, 0);
	assert_true(r[0].waited > r[3].waited);
	admission_destroy(a);
}

/* A full queue: a person takes a background waiter's place; else the newest is turned away. */
static void test_full_queue(void **state)
{
	struct admission *a = gate(1, 2, 5.0, 5.0);
	struct admission_ticket mine, t3;
	struct arrival bg = { .cls = ADMISSION_BACKGROUND }, p1 = { .cls = ADMISSION_PERSON },
		       p2 = { .cls = ADMISSION_PERSON }, p3 = { .cls = ADMISSION_PERSON };
	struct admission_stats st;
	enum admission_shed why;
	double waited, t0;

	(void)state;
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &mine, &why, &waited), 0);
	bg.a = p1.a = p2.a = p3.a = a;
	start_queued(&bg, 1);
	start_queued(&p1, 2);
	/* full: p2 takes the background request's place, which is turned away */
	assert_int_equal(pthread_create(&p2.thread, NULL, arrive, &p2), 0);
	pthread_join(bg.thread, NULL);
	assert_int_equal(bg.rc, -1);
	assert_int_equal(bg.why, ADMISSION_SHED_BACKGROUND);
	/* full of persons: the newest is turned away at once */
	t0 = now_mono();
	p3.rc = admission_enter(a, ADMISSION_PERSON, &t3, &p3.why, &p3.waited);
	assert_int_equal(p3.rc, -1);
	assert_int_equal(p3.why, ADMISSION_SHED_QUEUE_FULL);
	assert_true(now_mono() - t0 < 0.5);
	admission_leave(a, &mine);
	pthread_join(p1.thread, NULL);
	pthread_join(p2.thread, NULL);
	assert_int_equal(p1.rc, 0);
	assert_int_equal(p2.rc, 0);
	admission_get_stats(a, &st);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(st.shed[ADMISSION_SHED_BACKGROUND][ADMISSION_BACKGROUND], 1);
	assert_int_equal(st.shed[ADMISSION_SHED_QUEUE_FULL][ADMISSION_PERSON], 1);
	admission_destroy(a);
}

/*
 * A queue that stands above the target for an interval: arrivals are
 * turned away at once (the newest), the waiters keep their turn, and once
 * the queue has drained, arrivals are admitted again.
 */
static void test_standing_queue_sheds_arrivals(void **state)
{
	struct admission *a = gate(1, 8, 0.05, 5.0);
	struct admission_ticket mine, t, look_up;
	struct arrival w1 = { .cls = ADMISSION_PERSON }, w2 = { .cls = ADMISSION_PERSON };
	struct admission_stats st;
	enum admission_shed why;
	double waited, t0;

	(void)state;
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &mine, &why, &waited), 0);
	w1.a = w2.a = a;
	start_queued(&w1, 1);
	start_queued(&w2, 2);
	usleep(100000);
	/*
	 * The oldest has waited more than the target: a background arrival
	 * (which waits at most the target) starts CoDel's interval...
	 */
	assert_int_equal(admission_enter(a, ADMISSION_BACKGROUND, &t, &why, &waited), -1);
	assert_int_equal(why, ADMISSION_SHED_BACKGROUND);
	usleep(120000);
	/* ...and an interval later, the queue stands: the newest goes at once */
	t0 = now_mono();
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &t, &why, &waited), -1);
	assert_int_equal(why, ADMISSION_SHED_QUEUE_DELAY);
	assert_true(waited == 0);
	assert_true(now_mono() - t0 < 0.5);
	admission_get_stats(a, &st);
	assert_int_equal(st.overloaded, 1);
	/* a session look-up still gets in, by its extra place: every request of its session waits on it */
	assert_int_equal(admission_enter(a, ADMISSION_SESSION, &look_up, &why, &waited), 0);
	admission_leave(a, &look_up);
	admission_leave(a, &mine);
	pthread_join(w1.thread, NULL);
	pthread_join(w2.thread, NULL);
	assert_int_equal(w1.rc, 0);
	assert_int_equal(w2.rc, 0);
	/* drained: a place free and nobody waiting, so admitted, and the queue no longer stands */
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &t, &why, &waited), 0);
	admission_get_stats(a, &st);
	assert_int_equal(st.overloaded, 0);
	admission_leave(a, &t);
	admission_destroy(a);
}

/* A database that does not answer: a person waits max_wait, a background request the target. */
static void test_waits_are_bounded(void **state)
{
	struct admission *a = gate(1, 8, 0.05, 0.3);
	struct admission_ticket mine;
	struct arrival p = { .cls = ADMISSION_PERSON }, b = { .cls = ADMISSION_BACKGROUND };
	enum admission_shed why;
	double waited;

	(void)state;
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &mine, &why, &waited), 0);
	p.a = b.a = a;
	start_queued(&p, 1);
	start_queued(&b, 2);
	pthread_join(b.thread, NULL);
	pthread_join(p.thread, NULL);
	assert_int_equal(b.rc, -1);
	assert_int_equal(b.why, ADMISSION_SHED_BACKGROUND);
	assert_true(b.waited >= 0.04 && b.waited < 0.25);
	assert_int_equal(p.rc, -1);
	assert_int_equal(p.why, ADMISSION_SHED_WAIT_TIMEOUT);
	assert_true(p.waited >= 0.28 && p.waited < 1.0);
	admission_leave(a, &mine);
	admission_destroy(a);
}

static void test_close_turns_waiters_away(void **state)
{
	struct admission *a = gate(1, 8, 5.0, 5.0);
	struct admission_ticket mine;
	struct arrival p = { .cls = ADMISSION_PERSON };
	enum admission_shed why;
	double waited;

	(void)state;
	assert_int_equal(admission_enter(a, ADMISSION_PERSON, &mine, &why, &waited), 0);
	p.a = a;
	start_queued(&p, 1);
	admission_close(a);
	pthread_join(p.thread, NULL);
	assert_int_equal(p.rc, -1);
	assert_int_equal(p.why, ADMISSION_SHED_CLOSED);
	admission_leave(a, &mine);
	admission_destroy(a);
}

/* Many threads through a small gate: never more inside than the limit, all counted. */
#define CROWD 12
static atomic_int inside, most_inside;

static void *crowd_one(void *arg)
{
	struct admission *a = arg;
	struct admission_ticket t;
	enum admission_shed why;
	double waited;
	int i, n;

	for (i = 0; i < 20; i++) {
		if (admission_enter(a, i % 3 == 0 ? ADMISSION_BACKGROUND : ADMISSION_PERSON, &t, &why,
				    &waited) != 0)
			continue;
		n = atomic_fetch_add(&inside, 1) + 1;
		for (int m = atomic_load(&most_inside); n > m;)
			if (atomic_compare_exchange_weak(&most_inside, &m, n))
				break;
		usleep(1000);
		atomic_fetch_sub(&inside, 1);
		admission_leave(a, &t);
	}
	return NULL;
}

static void test_crowd(void **state)
{
	struct admission *a = gate(3, 4, 0.05, 5.0);
	pthread_t th[CROWD];
	struct admission_stats st;
	uint64_t shed = 0, admitted = 0;
	int i, r, c;

	(void)state;
	for (i = 0; i < CROWD; i++)
		assert_int_equal(pthread_create(&th[i], NULL, crowd_one, a), 0);
	for (i = 0; i < CROWD; i++)
		pthread_join(th[i], NULL);
	admission_get_stats(a, &st);
	assert_true(atomic_load(&most_inside) <= 3);
	assert_int_equal(st.in_flight, 0);
	for (c = 0; c < ADMISSION_NCLASS; c++) {
		admitted += st.admitted[c];
		assert_int_equal(st.queued[c], 0);
		for (r = 0; r < ADMISSION_NSHED; r++)
			shed += st.shed[r][c];
	}
	assert_int_equal(admitted + shed, CROWD * 20);
	admission_destroy(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_places_go_by_class_then_arrival),
		cmocka_unit_test(test_full_queue),
		cmocka_unit_test(test_standing_queue_sheds_arrivals),
		cmocka_unit_test(test_waits_are_bounded),
		cmocka_unit_test(test_close_turns_waiters_away),
		cmocka_unit_test(test_crowd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
