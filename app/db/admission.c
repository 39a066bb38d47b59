/*
 * admission: the gate in front of the pool (the contract is in
 * admission.h). One mutex guards the places, the queue and the limit's
 * measurements; nothing blocks while it is held. Each waiter lives on its
 * own thread's stack with its own condition variable, so a place given
 * back wakes exactly the waiter it goes to.
 */
#define _GNU_SOURCE
#include "db/admission.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "base/workers.h"

#define WINDOW 0.1		/* seconds between two updates of the limit */
#define MIN_RTT_EVERY 30.0	/* seconds between two measurements of min_rtt (+-15 %) */
#define MIN_RTT_SAMPLES 32	/* samples taken with the limit pinned at the floor */
#define MIN_RTT_LONGEST 2.0	/* seconds a measurement may pin the limit */
#define MIN_RTT_FEWEST 5	/* samples that still make a measurement when it ends early */
#define MIN_RTT_RISE 1.25	/* the most one measurement may raise min_rtt by */

/*
 * One request waiting for a place: on its thread's stack (cv), or, parked
 * without a thread, allocated by the gate (parked, t) and freed once done
 * is called.
 */
struct waiter {
	pthread_cond_t cv;
	int cls;
	double since;		/* monotonic: when it began to wait */
	int granted;		/* given a place (in_flight counts it already) */
	int shed;		/* -1, or the enum admission_shed it was turned away for */
	struct admission_parked *parked;	/* NULL for a thread's */
	struct admission_ticket *t;		/* parked: filled when granted */
	struct waiter *prev, *next;
};

struct admission {
	struct admission_settings set;

	/*
	 * mu guards everything below. While it is held: in_flight <= the
	 * limit, or the limit was lowered since (places are never taken
	 * back); a waiter is queued only while no place was free for it;
	 * nqueued is the sum of the classes' n.
	 */
	pthread_mutex_t mu;
	double limit;
	int in_flight;
	struct {
		struct waiter *head, *tail;
		int n;
	} q[ADMISSION_NCLASS];
	int nqueued;
	int nparked;			/* of nqueued, those without a thread */
	int closing;
	struct admission_codel codel;		/* a person's target */
	struct admission_codel bg_codel;	/* the background target */

	/* The adaptive limit's measurements. */
	double win_start;		/* when this window began */
	double win_sum;			/* hold times ended in it, summed */
	unsigned long nwin;		/* and counted */
	uint32_t rng;			/* xorshift: min_rtt's jitter */
	double sample_rtt, min_rtt;
	int measuring;			/* the limit is pinned at the floor */
	double measure_start, min_due, saved_limit;
	double mins_sum;		/* hold times of the measurement, summed */
	int nmins;			/* and counted */

	struct admission_stats st;	/* counters only (gauges from above) */
};

static void lock(struct admission *a);
static void unlock(struct admission *a);
static uint32_t rnd(struct admission *a);
static void note_sample_locked(struct admission *a, const struct admission_ticket *t, double now);
static void update_locked(struct admission *a, double now);
static void grant_locked(struct admission *a, double now);
static struct waiter *oldest_locked(struct admission *a);
static void unlink_locked(struct admission *a, struct waiter *w);
static void codel_locked(struct admission *a, double now, double sojourn);
static void finish_parked_locked(struct admission *a, struct waiter *w, double now, int granted,
				 enum admission_shed why);
static int wait_turn(struct admission *a, enum admission_class cls, double now,
		     struct admission_ticket *t, enum admission_shed *why, double *waited);

static void lock(struct admission *a)
{
	if (pthread_mutex_lock(&a->mu) != 0)
		die("admission: mutex lock failed");
}

static void unlock(struct admission *a)
{
	if (pthread_mutex_unlock(&a->mu) != 0)
		die("admission: mutex unlock failed");
}

static uint32_t rnd(struct admission *a)
{
	a->rng ^= a->rng << 13;
	a->rng ^= a->rng >> 17;
	a->rng ^= a->rng << 5;
	return a->rng;
}

const char *admission_mode_name(enum admission_mode m)
{
	return m == ADMISSION_ADAPTIVE ? "adaptive" : m == ADMISSION_FIXED ? "fixed" : "off";
}

const char *admission_class_name(enum admission_class c)
{
	static const char *const names[ADMISSION_NCLASS] = { "session", "person", "background" };

	return (unsigned)c < ADMISSION_NCLASS ? names[c] : "?";
}

const char *admission_shed_name(enum admission_shed s)
{
	static const char *const names[ADMISSION_NSHED] = {
		"queue_delay", "queue_full", "background", "wait_timeout", "closed",
	};

	return (unsigned)s < ADMISSION_NSHED ? names[s] : "?";
}

/* ---- the rules ---------------------------------------------------------------- */

double admission_next_limit(double limit, double min_rtt, double sample, double buffer,
			    int floor, int ceiling)
{
	double g = sample > 0 ? min_rtt * (1.0 + buffer) / sample : 2.0;
	double next;

	if (g < 0.5)
		g = 0.5;
	if (g > 2.0)
		g = 2.0;
	next = g * limit;
	next += sqrt(next);	/* headroom: room to notice that more would be faster */
	if (next < floor)
		next = floor;
	if (next > ceiling)
		next = ceiling;
	return next;
}

double admission_next_min_rtt(double min_rtt, double measured)
{
	if (min_rtt > 0 && measured > min_rtt * MIN_RTT_RISE)
		return min_rtt * MIN_RTT_RISE;
	return measured;
}

int admission_codel_note(struct admission_codel *q, double now, double sojourn, double target,
			 double interval)
{
	if (sojourn < target) {
		q->first_above = 0;
		q->standing = 0;
		q->dropping = 0;
	} else if (q->first_above == 0) {
		q->first_above = now + interval;
	} else if (now >= q->first_above) {
		q->standing = 1;
	}
	return q->standing;
}

int admission_codel_shed(struct admission_codel *q, double now, double interval)
{
	if (!q->standing)
		return 0;
	if (!q->dropping) {
		/* As CoDel: a spell soon after the last one starts near its rate. */
		q->count = q->count > 2 && now - q->drop_next < 8 * interval ? q->count - 2 : 1;
		q->dropping = 1;
		q->drop_next = now + interval / sqrt((double)q->count);
		return 1;
	}
	if (now < q->drop_next)
		return 0;
	q->count++;
	q->drop_next += interval / sqrt((double)q->count);
	return 1;
}

/* ---- the gate --------------------------------------------------------------- */

struct admission *admission_create(const struct admission_settings *s)
{
	struct admission *a = xcalloc(1, sizeof(*a));

	a->set = *s;
	if (a->set.ceiling < 1)
		a->set.ceiling = 1;
	if (a->set.floor > a->set.ceiling)
		a->set.floor = a->set.ceiling;
	if (a->set.floor < 1)
		a->set.floor = 1;
	if (a->set.threads < a->set.ceiling)
		a->set.threads = a->set.ceiling;
	pthread_mutex_init(&a->mu, NULL);
	a->limit = a->set.ceiling;	/* until the first measurement says otherwise */
	a->rng = (uint32_t)(now_wall() * 1e6) | 1u;
	a->min_due = 0;			/* measure at the first request */
	return a;
}

void admission_destroy(struct admission *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->mu);
	free(a);
}

/* The waiter that has waited longest, of any class; NULL when none. */
static struct waiter *oldest_locked(struct admission *a)
{
	struct waiter *best = NULL;
	int c;

	for (c = 0; c < ADMISSION_NCLASS; c++)
		if (a->q[c].head && (best == NULL || a->q[c].head->since < best->since))
			best = a->q[c].head;
	return best;
}

static void unlink_locked(struct admission *a, struct waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		a->q[w->cls].head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		a->q[w->cls].tail = w->prev;
	w->prev = w->next = NULL;
	a->q[w->cls].n--;
	a->nqueued--;
	if (w->parked)
		a->nparked--;
}

/*
 * A parked waiter (already unlinked) got its place (the caller counted it
 * in in_flight) or was turned away: fill its ticket and report, tell its
 * owner, free it.
 */
static void finish_parked_locked(struct admission *a, struct waiter *w, double now, int granted,
				 enum admission_shed why)
{
	struct admission_parked *p = w->parked;

	p->granted = granted;
	p->waited = now - w->since;
	p->why = why;
	if (granted) {
		w->t->since = now;
		w->t->cls = w->cls;
		w->t->taken = 1;
		a->st.admitted[w->cls]++;
		a->st.queued_total++;
		a->st.queue_seconds_total += p->waited;
	} else {
		a->st.shed[why][w->cls]++;
	}
	free(w);
	p->done(p->arg);
}

/* A request left the queue after sojourn seconds (or the oldest has waited that long). */
static void codel_locked(struct admission *a, double now, double sojourn)
{
	admission_codel_note(&a->codel, now, sojourn, a->set.target, a->set.interval);
	admission_codel_note(&a->bg_codel, now, sojourn, a->set.background_target, a->set.interval);
}

/*
 * The places a request of class c may take: the limit; for the session
 * look-ups one more, so that they (which every request of the session
 * waits on, cached reads too) never wait behind statements; for
 * background ones fewer, so that a person's request finds a place free.
 */
static int places_locked(const struct admission *a, int c)
{
	int limit = (int)a->limit;

	if (c == ADMISSION_SESSION)
		return limit + 1;
	if (c == ADMISSION_BACKGROUND)
		return admission_background_places(limit);
	return limit;
}

int admission_background_places(int limit)
{
	int reserved = limit / 2 > 1 ? limit / 2 : 1;

	return limit - reserved > 1 ? limit - reserved : 1;
}

/* Give free places to waiters, the first class first, each first come first served. */
static void grant_locked(struct admission *a, double now)
{
	int c;

	for (c = 0; c < ADMISSION_NCLASS; c++) {
		while (a->q[c].head && a->in_flight < places_locked(a, c)) {
			struct waiter *w = a->q[c].head;

			unlink_locked(a, w);
			a->in_flight++;
			codel_locked(a, now, now - w->since);
			if (w->parked) {
				finish_parked_locked(a, w, now, 1, ADMISSION_SHED_CLOSED);
				continue;
			}
			w->granted = 1;
			pthread_cond_signal(&w->cv);
		}
	}
}

/*
 * The adaptive limit: pin it at the floor to measure min_rtt when due;
 * otherwise, once a window is over, move it by the gradient.
 */
static void update_locked(struct admission *a, double now)
{
	if (a->set.mode != ADMISSION_ADAPTIVE)
		return;
	if (a->measuring) {
		int enough = a->nmins >= MIN_RTT_SAMPLES;

		if (!enough && now - a->measure_start < MIN_RTT_LONGEST)
			return;
		if (a->nmins >= MIN_RTT_FEWEST)
			a->min_rtt = admission_next_min_rtt(a->min_rtt, a->mins_sum / a->nmins);
		a->measuring = 0;
		a->limit = a->saved_limit;
		/* The next one in MIN_RTT_EVERY, +-15 %, so processes do not pin together. */
		a->min_due = now + MIN_RTT_EVERY * (0.85 + 0.3 * (double)(rnd(a) % 1000) / 1000.0);
		a->win_start = now;
		a->win_sum = 0;
		a->nwin = 0;
		return;
	}
	if (now >= a->min_due) {
		a->measuring = 1;
		a->measure_start = now;
		a->nmins = 0;
		a->mins_sum = 0;
		a->saved_limit = a->limit;
		a->limit = a->set.floor;
		return;
	}
	if (now - a->win_start < WINDOW)
		return;
	if (a->nwin > 0 && a->min_rtt > 0) {
		double next;

		a->sample_rtt = a->win_sum / (double)a->nwin;
		next = admission_next_limit(a->limit, a->min_rtt, a->sample_rtt, a->set.buffer,
					    a->set.floor, a->set.ceiling);
		if ((int)next != (int)a->limit)
			a->st.limit_changes++;
		a->limit = next;
	}
	a->win_start = now;
	a->win_sum = 0;
	a->nwin = 0;
}

/* Keep t's hold time for the limit: the min_rtt measurement's, or the window's. */
static void note_sample_locked(struct admission *a, const struct admission_ticket *t, double now)
{
	double held = now - t->since;

	if (a->set.mode != ADMISSION_ADAPTIVE)
		return;
	if (a->measuring) {
		/* Only requests admitted under the pinned limit say what no load costs. */
		if (t->since >= a->measure_start && a->nmins < MIN_RTT_SAMPLES) {
			a->mins_sum += held;
			a->nmins++;
		}
		return;
	}
	a->win_sum += held;
	a->nwin++;
}

/*
 * No place was free: wait for one in cls's queue, or be turned away.
 * Called and returns with a->mu held (the wait releases it).
 */
static int wait_turn(struct admission *a, enum admission_class cls, double now,
		     struct admission_ticket *t, enum admission_shed *why, double *waited)
{
	struct waiter w;
	struct timespec ts;
	pthread_condattr_t ca;
	double deadline = now + (cls == ADMISSION_BACKGROUND ? a->set.background_target
							     : a->set.max_wait);
	int full = a->nqueued >= a->set.queue_max ||
		   a->in_flight + a->nqueued - a->nparked >= a->set.threads;

	if (cls == ADMISSION_BACKGROUND && (a->bg_codel.standing || full)) {
		*why = ADMISSION_SHED_BACKGROUND;
		return -1;
	}
	if (cls == ADMISSION_PERSON && admission_codel_shed(&a->codel, now, a->set.interval)) {
		*why = ADMISSION_SHED_QUEUE_DELAY;	/* the newest goes */
		return -1;
	}
	if (full && cls == ADMISSION_SESSION) {
		full = 0;	/* a session look-up waits beyond the bounds: every request of the session waits on it */
	} else if (full && a->q[ADMISSION_BACKGROUND].tail == NULL) {
		*why = ADMISSION_SHED_QUEUE_FULL;
		return -1;
	}
	if (full) {
		/* A person's request takes the newest background request's place. */
		struct waiter *b = a->q[ADMISSION_BACKGROUND].tail;

		unlink_locked(a, b);
		b->shed = ADMISSION_SHED_BACKGROUND;
		pthread_cond_signal(&b->cv);
	}
	memset(&w, 0, sizeof(w));
	w.cls = cls;
	w.since = now;
	w.shed = -1;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cv, &ca);
	pthread_condattr_destroy(&ca);
	w.prev = a->q[cls].tail;
	if (a->q[cls].tail)
		a->q[cls].tail->next = &w;
	else
		a->q[cls].head = &w;
	a->q[cls].tail = &w;
	a->q[cls].n++;
	a->nqueued++;
	ts.tv_sec = (time_t)deadline;
	ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
	workers_block_begin();
	while (!w.granted && w.shed < 0 && !a->closing) {
		if (pthread_cond_timedwait(&w.cv, &a->mu, &ts) == ETIMEDOUT)
			break;
	}
	workers_block_end();
	pthread_cond_destroy(&w.cv);
	now = now_mono();
	*waited = now - w.since;
	if (w.granted) {
		t->since = now;
		t->cls = cls;
		t->taken = 1;
		a->st.queued_total++;
		a->st.queue_seconds_total += *waited;
		return 0;
	}
	if (w.shed < 0) {	/* still queued: timed out, or closing */
		unlink_locked(a, &w);
		w.shed = a->closing ? ADMISSION_SHED_CLOSED
			 : cls == ADMISSION_BACKGROUND ? ADMISSION_SHED_BACKGROUND
						      : ADMISSION_SHED_WAIT_TIMEOUT;
		if (!a->closing)
			codel_locked(a, now, *waited);
	}
	*why = (enum admission_shed)w.shed;
	return -1;
}

/*
 * Bring the limit and the queue up to date, then take a place for a
 * request of class cls if one is free and nobody of its class or before
 * waits (mode off: always). 1 with t filled, else 0.
 */
static int admit_now_locked(struct admission *a, enum admission_class cls, double now,
			    struct admission_ticket *t)
{
	struct waiter *old;
	int c, ahead = 0;

	update_locked(a, now);
	grant_locked(a, now);	/* the limit may have grown: the queue's first */
	/* A queue that does not move stands too: its oldest waiter's age says so. */
	if ((old = oldest_locked(a)) != NULL)
		codel_locked(a, now, now - old->since);
	for (c = 0; c <= (int)cls; c++)
		ahead += a->q[c].n;
	if (a->set.mode != ADMISSION_OFF && (a->in_flight >= places_locked(a, cls) || ahead > 0))
		return 0;
	if (a->nqueued == 0)
		codel_locked(a, now, 0);
	a->in_flight++;
	t->since = now;
	t->cls = cls;
	t->taken = 1;
	return 1;
}

int admission_enter(struct admission *a, enum admission_class cls, struct admission_ticket *t,
		    enum admission_shed *why, double *waited)
{
	double now = now_mono();
	int rc = 0;

	*waited = 0;
	t->taken = 0;
	lock(a);
	if (a->closing) {
		*why = ADMISSION_SHED_CLOSED;
		rc = -1;
		goto out;
	}
	if (!admit_now_locked(a, cls, now, t))
		rc = wait_turn(a, cls, now, t, why, waited);
out:
	if (rc == 0) {
		a->st.admitted[cls]++;
	} else {
		a->st.shed[*why][cls]++;
	}
	unlock(a);
	return rc;
}

void admission_leave(struct admission *a, struct admission_ticket *t)
{
	double now;

	if (!t->taken)
		return;
	t->taken = 0;
	now = now_mono();
	lock(a);
	a->in_flight--;
	if (!t->unsampled)
		note_sample_locked(a, t, now);
	t->unsampled = 0;
	update_locked(a, now);
	grant_locked(a, now);
	unlock(a);
}

void admission_close(struct admission *a)
{
	struct waiter *w, *next;
	double now = now_mono();
	int c;

	lock(a);
	a->closing = 1;
	for (c = 0; c < ADMISSION_NCLASS; c++) {
		for (w = a->q[c].head; w; w = next) {
			next = w->next;
			if (w->parked) {
				unlink_locked(a, w);
				finish_parked_locked(a, w, now, 0, ADMISSION_SHED_CLOSED);
			} else {
				pthread_cond_signal(&w->cv);
			}
		}
	}
	unlock(a);
}

int admission_enter_async(struct admission *a, enum admission_class cls, struct admission_ticket *t,
			  struct admission_parked *p, enum admission_shed *why, double *waited)
{
	double now = now_mono();
	struct waiter *w;
	int full;

	if (cls != ADMISSION_PERSON || a->set.mode == ADMISSION_OFF)
		return admission_enter(a, cls, t, why, waited);
	*waited = 0;
	t->taken = 0;
	lock(a);
	if (!a->closing && admit_now_locked(a, cls, now, t)) {
		a->st.admitted[cls]++;
		unlock(a);
		return 0;
	}
	full = a->nqueued >= a->set.queue_max;
	if (a->closing || full || admission_codel_shed(&a->codel, now, a->set.interval)) {
		*why = a->closing ? ADMISSION_SHED_CLOSED
		       : full ? ADMISSION_SHED_QUEUE_FULL : ADMISSION_SHED_QUEUE_DELAY;
		a->st.shed[*why][cls]++;
		unlock(a);
		return -1;
	}
	w = xcalloc(1, sizeof(*w));
	w->cls = cls;
	w->since = now;
	w->shed = -1;
	w->parked = p;
	w->t = t;
	w->prev = a->q[cls].tail;
	if (a->q[cls].tail)
		a->q[cls].tail->next = w;
	else
		a->q[cls].head = w;
	a->q[cls].tail = w;
	a->q[cls].n++;
	a->nqueued++;
	a->nparked++;
	unlock(a);
	return 1;
}

void admission_expire(struct admission *a)
{
	double now = now_mono();
	struct waiter *w, *next;

	lock(a);
	/* A person's waiters are in the order of their deadlines (since + max_wait). */
	for (w = a->q[ADMISSION_PERSON].head; w && now - w->since >= a->set.max_wait; w = next) {
		next = w->next;
		if (!w->parked)
			continue;	/* a thread's wait ends by itself */
		unlink_locked(a, w);
		codel_locked(a, now, now - w->since);
		finish_parked_locked(a, w, now, 0, ADMISSION_SHED_WAIT_TIMEOUT);
	}
	unlock(a);
}

void admission_get_stats(struct admission *a, struct admission_stats *st)
{
	int c;

	lock(a);
	*st = a->st;
	st->mode = a->set.mode;
	st->limit = a->set.mode == ADMISSION_OFF ? 0 : (int)a->limit;
	st->background_places = a->set.mode == ADMISSION_OFF ? 0 : admission_background_places(st->limit);
	st->floor = a->set.floor;
	st->ceiling = a->set.ceiling;
	st->queue_max = a->set.queue_max;
	st->in_flight = a->in_flight;
	for (c = 0; c < ADMISSION_NCLASS; c++)
		st->queued[c] = a->q[c].n;
	st->parked = a->nparked;
	st->overloaded = a->codel.standing;
	st->pressed = a->bg_codel.standing;
	st->measuring = a->measuring;
	st->min_rtt = a->min_rtt;
	st->sample_rtt = a->sample_rtt;
	st->target = a->set.target;
	st->background_target = a->set.background_target;
	st->interval = a->set.interval;
	unlock(a);
}
