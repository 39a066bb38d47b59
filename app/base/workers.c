/*
 * workers: which worker threads take requests: a few active, the rest
 * parked until a wait or a stall needs them (app/base/workers.h says why).
 */
#define _GNU_SOURCE
#include "base/workers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define IDLE_WATCH_MS 50	/* the watcher's tick while no request is in progress */

/*
 * mu guards parking: parked threads wait on park_cv for room (active <
 * wanted()), the watcher waits on watch_cv for its tick or the stop. The
 * counters are sequentially consistent atomics so that the common path
 * (no parking needed) reads them without the lock: a thread that adds to
 * wanted() and then sees no parked thread, and a thread that parks and
 * then reads wanted(), cannot both miss the other.
 */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t watch_cv;
static atomic_int on;			/* between workers_start and workers_stop */
static int total, base;			/* WORKERS, WORKERS_ACTIVE: set before on */
static atomic_int active;		/* threads not parked */
static atomic_int parked;
static atomic_int blocked;		/* threads between workers_block_begin and _end */
static atomic_int boost;		/* unparked by the watcher */
static atomic_ullong completed;		/* requests answered */
static atomic_ullong unparks;		/* by the watcher */
static atomic_ullong lends;		/* outermost workers_block_begin calls */
static int (*inflight_fn)(void);
static pthread_t watcher;
static _Thread_local int is_worker;	/* set at a worker's first settle */
static _Thread_local int lending;	/* this thread's nested block_begin calls */

static int wanted(void)
{
	int w = base + atomic_load(&blocked) + atomic_load(&boost);

	return w < total ? w : total;
}

/* Give a parked thread room, if one is parked. */
static void unpark_one(void)
{
	if (atomic_load(&parked) == 0)
		return;
	pthread_mutex_lock(&mu);
	pthread_cond_signal(&park_cv);
	pthread_mutex_unlock(&mu);
}

void workers_settle(void)
{
	is_worker = 1;
	if (!atomic_load(&on) || atomic_load(&active) <= wanted())
		return;
	pthread_mutex_lock(&mu);
	while (atomic_load(&on) && atomic_load(&active) > wanted()) {
		atomic_fetch_sub(&active, 1);
		atomic_fetch_add(&parked, 1);
		while (atomic_load(&on) && atomic_load(&active) >= wanted())
			pthread_cond_wait(&park_cv, &mu);
		atomic_fetch_sub(&parked, 1);
		atomic_fetch_add(&active, 1);
	}
	pthread_mutex_unlock(&mu);
}

void workers_get_stats(struct workers_stats *st)
{
	st->threads = atomic_load(&on) ? total : 0;
	st->base = atomic_load(&on) ? base : 0;
	st->active = atomic_load(&active);
	st->parked = atomic_load(&parked);
	st->lent = atomic_load(&blocked);
	st->extra = atomic_load(&boost);
	st->unparks = atomic_load(&unparks);
	st->lends = atomic_load(&lends);
}

void workers_request_done(void)
{
	atomic_fetch_add_explicit(&completed, 1, memory_order_relaxed);
}

/*
 * Only a worker's wait counts (the drainer's or a sampler's takes no
 * worker's place), and only its outermost one (a pool wait inside a write).
 */
void workers_block_begin(void)
{
	if (!is_worker || lending++ > 0)
		return;
	atomic_fetch_add(&blocked, 1);
	atomic_fetch_add_explicit(&lends, 1, memory_order_relaxed);
	if (atomic_load(&on))
		unpark_one();
}

void workers_block_end(void)
{
	/* A surplus thread parks at the top of its loop, after its request. */
	if (is_worker && --lending == 0)
		atomic_fetch_sub(&blocked, 1);
}

int workers_next_boost(int boost_now, int max_boost, int progressed, int busy, int active_now,
		       int parked_now)
{
	if (!progressed && busy >= active_now && parked_now > 0 && boost_now < max_boost)
		return boost_now + 1;	/* every active thread is stuck in a request */
	if (progressed && boost_now > 0)
		return boost_now - 1;	/* requests flow: one extra thread may park again */
	return boost_now;
}

/* Every tick: unpark one more thread when requests stopped finishing. */
static void *watch_main(void *arg)
{
	unsigned long long last = atomic_load(&completed), now;
	double last_logged = 0;

	(void)arg;
	pthread_mutex_lock(&mu);
	while (atomic_load(&on)) {
		struct timespec ts;
		long ms = inflight_fn() > 0 ? WORKERS_WATCH_MS : IDLE_WATCH_MS;
		int b, nb;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&watch_cv, &mu, &ts);
		if (!atomic_load(&on))
			break;
		now = atomic_load(&completed);
		b = atomic_load(&boost);
		nb = workers_next_boost(b, total - base, now != last, inflight_fn(),
					atomic_load(&active), atomic_load(&parked));
		last = now;
		if (nb == b)
			continue;
		atomic_store(&boost, nb);
		if (nb > b) {
			atomic_fetch_add(&unparks, 1);
			pthread_cond_signal(&park_cv);
			if (now_mono() - last_logged >= 1.0) {
				last_logged = now_mono();
				log_msg(LOG_WARN, "workers: no request finished in %d ms with every "
					"active thread inside one: unparked one more (%d beyond %d)",
					WORKERS_WATCH_MS, nb, base);
			}
		}
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

int workers_start(int total_threads, int active_threads, int (*inflight)(void))
{
	pthread_condattr_t ca;

	total = total_threads;
	base = active_threads < 1 ? 1 : active_threads > total ? total : active_threads;
	inflight_fn = inflight;
	atomic_store(&active, total);	/* the surplus parks at its first settle */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&watch_cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_store(&on, 1);
	if (pthread_create(&watcher, NULL, watch_main, NULL) != 0)
		die("cannot start the workers' watcher thread");
	return base;
}

void workers_stop(void)
{
	if (!atomic_load(&on))
		return;
	pthread_mutex_lock(&mu);
	atomic_store(&on, 0);
	pthread_cond_broadcast(&park_cv);
	pthread_cond_signal(&watch_cv);
	pthread_mutex_unlock(&mu);
	pthread_join(watcher, NULL);
	pthread_cond_destroy(&watch_cv);
	log_msg(LOG_INFO, "workers: the watcher unparked a thread %llu times",
		(unsigned long long)atomic_load(&unparks));
}

int workers_default_active(void)
{
	cpu_set_t set;
	long long quota, period;
	int cpus = 0;
	FILE *f;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		cpus = CPU_COUNT(&set);
	if (cpus < 1)
		cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	/* A container's CPU quota (cgroup v2 "quota period", or "max period"). */
	if ((f = fopen("/sys/fs/cgroup/cpu.max", "r")) != NULL) {
		if (fscanf(f, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0 &&
		    (quota + period - 1) / period < cpus)
			cpus = (int)((quota + period - 1) / period);
		fclose(f);
	}
	return 2 * (cpus < 1 ? 1 : cpus);
}
