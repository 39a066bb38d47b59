/*
 * admission: how many database-bound requests run at once, who waits,
 * and who is turned away, so that a saturated PostgreSQL is given what it
 * can take and no more (issue #25, "the bad day").
 *
 * - A request takes a place before its first pool checkout and gives it
 *   back when it gives its connection back (admission_enter/_leave). At
 *   most `limit` places are taken at once, and one more by a session
 *   look-up (every request of that session waits on it, cached reads too:
 *   it must not wait behind statements).
 * - The limit adapts to the database's measured latency (mode adaptive),
 *   as Envoy's adaptive-concurrency gradient controller does: every
 *   window (100 ms) the mean time a place was held (sample) is compared
 *   with the mean measured with the limit pinned at the floor (min_rtt,
 *   measured at start and again every MIN_RTT_EVERY seconds; the mean, not
 *   the median: a database under a CPU quota answers most statements at
 *   once and stalls the rest for a whole period, which a median never
 *   sees, and the mean hold is what Little's law ties to throughput):
 *   gradient = clamp(min_rtt * (1 + buffer) / sample, 0.5, 2), and the new
 *   limit is gradient * limit + sqrt(that), within [floor, ceiling]. A
 *   database that takes longer because requests queue inside it gets
 *   fewer at once; one that keeps its speed gets more. Mode fixed keeps
 *   the limit at the ceiling; mode off admits every request at once (the
 *   pool alone bounds the load, as before).
 * - A request that finds the places taken waits in a short queue, ordered
 *   by class: the session look-up of the admission step first (every
 *   request of that session, cached reads included, waits on it), then a
 *   person's requests, then background refreshes (the UI's polls), first
 *   come first served within a class. Background requests take a place
 *   only while half the limit (at least one place) stays free
 *   (admission_background_places), as a telephone exchange reserves trunks
 *   for its priority calls: a person's request arriving while the polls
 *   keep the database busy finds a place at once, instead of waiting for
 *   a poll's statement to finish.
 * - The queue is bounded in length (queue_max, and the threads there are)
 *   and in delay, as CoDel bounds a router's queue. When the delay of the
 *   requests leaving it has stayed above the target for a whole interval
 *   (a standing queue, not a burst), arrivals that cannot be admitted at
 *   once are turned away with 503 and Retry-After (the newest), by CoDel's
 *   control law: one at once, the next an interval later, then ever more
 *   often (interval / sqrt(count)), until a request leaves the queue
 *   within the target again. A client told to retry later (Retry-After)
 *   thins the queue; one that retries at once gains nothing, and turning
 *   everyone away would only make such clients spin through 503s, which
 *   costs every other request its CPU: hence the control law, not a wall.
 * - Background requests are turned away first: while the queue has stood
 *   above background_target (short) for an interval, every one that
 *   cannot be admitted at once; otherwise they wait at most that long, and
 *   give their place in a full queue to a person's. A person's request
 *   waits at most max_wait (DB_POOL_TIMEOUT): the last resort for a
 *   database that does not answer at all.
 * - A person's read may wait without a thread (admission_enter_async: the
 *   request is parked, and the gate hands it back once it has a place or
 *   has been turned away): a queue of hundreds then costs no thread. Any
 *   other wait lends the thread's place among the active workers
 *   (workers.h), and so does holding a place, so requests that need no
 *   database (/healthz, cached reads) always find a thread.
 *
 * The figures (admission_get_stats) show the limit, the places taken, the
 * queue and every refusal by its reason and class.
 */
#ifndef PS_ADMISSION_H
#define PS_ADMISSION_H

#include <stdint.h>

enum admission_mode {
	ADMISSION_ADAPTIVE,	/* the limit follows the database's latency */
	ADMISSION_FIXED,	/* the limit stays at the ceiling; queue and classes as adaptive */
	ADMISSION_OFF,		/* everyone is admitted at once: the pool alone bounds the load */
};

enum admission_class {
	ADMISSION_SESSION,	/* the admission step's session look-up */
	ADMISSION_PERSON,	/* a person's request: the default */
	ADMISSION_BACKGROUND,	/* X-Request-Purpose: background (the UI's polls) */
	ADMISSION_NCLASS
};

enum admission_shed {
	ADMISSION_SHED_QUEUE_DELAY,	/* the queue stood above target for an interval */
	ADMISSION_SHED_QUEUE_FULL,	/* no room in the queue */
	ADMISSION_SHED_BACKGROUND,	/* a background request, under pressure */
	ADMISSION_SHED_WAIT_TIMEOUT,	/* waited max_wait: the database does not answer */
	ADMISSION_SHED_CLOSED,		/* shutting down */
	ADMISSION_NSHED
};

struct admission_settings {
	enum admission_mode mode;
	int floor;		/* fewest places (and the pinned limit while min_rtt is measured) */
	int ceiling;		/* most places: the pool's size + overflow, at most threads */
	int queue_max;		/* most waiting requests */
	int threads;		/* places + waiters never exceed this (the worker threads to spare) */
	double target;		/* seconds: CoDel's target queue delay for a person's requests */
	double background_target;	/* seconds: the same for background ones, and their longest wait */
	double interval;	/* seconds: how long the delay must stand above a target */
	double max_wait;	/* seconds: a person's longest wait */
	double buffer;		/* latency above min_rtt tolerated before the limit shrinks (0.25) */
};

/* One admitted request's place; filled by admission_enter. */
struct admission_ticket {
	double since;		/* monotonic seconds when admitted */
	int cls;		/* enum admission_class */
	int taken;		/* 1 between enter and leave */
	int unsampled;		/* its hold is no latency sample (a streamed answer's); leave clears it */
};

struct admission;

/*
 * A request waiting for a place without a thread (admission_enter_async).
 * The caller sets done and arg; the gate calls done(arg) once the request
 * has a place (granted 1, its ticket taken) or was turned away (granted 0,
 * why), from whichever thread gave the place or turned it away and with
 * the gate's mutex held: done must only hand the request on (queue it for
 * a worker), never block nor call the gate. It lives in the caller's
 * memory from admission_enter_async until done.
 */
struct admission_parked {
	void (*done)(void *arg);
	void *arg;
	int granted;
	enum admission_shed why;
	double waited;		/* seconds in the queue */
};

/*
 * Create the gate (settings copied; the ceiling at least 1, the floor
 * brought within 1..ceiling). Never fails.
 */
struct admission *admission_create(const struct admission_settings *s);

/* Free it; no request may be inside. */
void admission_destroy(struct admission *a);

/*
 * Take a place for a request of class cls, waiting in the queue when
 * there is none (the thread's place lent meanwhile). Returns 0 with t
 * filled, or -1 with *why set (503: the caller answers with Retry-After).
 * *waited gets the seconds spent queued either way. Each 0 must be
 * matched by one admission_leave.
 */
int admission_enter(struct admission *a, enum admission_class cls, struct admission_ticket *t,
		    enum admission_shed *why, double *waited);

/*
 * As admission_enter, but a person's request that must wait is parked
 * instead of waiting on this thread: returns 1 then, and p->done is called
 * later (at the latest once it has waited max_wait: admission_expire).
 * 0 (admitted now) and -1 (turned away now) as admission_enter. Other
 * classes never park: they wait on the thread as admission_enter does.
 */
int admission_enter_async(struct admission *a, enum admission_class cls, struct admission_ticket *t,
			  struct admission_parked *p, enum admission_shed *why, double *waited);

/*
 * Turn away the parked requests that have waited max_wait (their done is
 * called). The server's housekeeper calls it once a second.
 */
void admission_expire(struct admission *a);

/*
 * Give t's place back (no-op if t holds none). The time it was held is
 * the latency sample of the adaptive limit, unless t->unsampled (a
 * holder whose time is its answer's size, not the database's latency);
 * a waiter takes the place.
 */
void admission_leave(struct admission *a, struct admission_ticket *t);

/* Turn away every waiter and every later arrival (shutdown). */
void admission_close(struct admission *a);

struct admission_stats {
	enum admission_mode mode;
	int limit, floor, ceiling, queue_max;
	int background_places;		/* of the limit, what background requests may take */
	int in_flight;
	int queued[ADMISSION_NCLASS];
	int parked;			/* of the queued, those waiting without a thread */
	int overloaded;			/* the queue stands above target now: persons turned away */
	int pressed;			/* it stands above background_target: background turned away */
	int measuring;			/* the limit is pinned at the floor to measure min_rtt */
	double min_rtt, sample_rtt;	/* seconds; 0 until measured */
	double target, background_target, interval;
	uint64_t admitted[ADMISSION_NCLASS];
	uint64_t queued_total;			/* admitted after waiting */
	double queue_seconds_total;		/* time the admitted waited */
	uint64_t shed[ADMISSION_NSHED][ADMISSION_NCLASS];	/* by reason and class */
	uint64_t limit_changes;
};

/* A consistent snapshot. */
void admission_get_stats(struct admission *a, struct admission_stats *st);

/* Names for the views and logs: "adaptive"...; "session"...; "queue_delay"... */
const char *admission_mode_name(enum admission_mode m);
const char *admission_class_name(enum admission_class c);
const char *admission_shed_name(enum admission_shed s);

/* ---- the rules, pure, for their unit tests ---- */

/*
 * Of limit places, how many background requests may fill: all but half
 * (at least one) kept for the session look-ups and a person's requests;
 * at least one.
 */
int admission_background_places(int limit);

/*
 * The gradient controller's next limit from the current one, the no-load
 * latency min_rtt and this window's sample (seconds, both > 0): within
 * [floor, ceiling].
 */
double admission_next_limit(double limit, double min_rtt, double sample, double buffer,
			    int floor, int ceiling);

/*
 * min_rtt after a measurement of it: the measurement, but at most 25 %
 * above the last value. The floor's few places still wait for a
 * saturated database (a CPU quota stalls them a whole period), so a
 * measurement taken in an overload reads high, and a min_rtt four times
 * too high let the limit climb to the ceiling, where the capped database
 * served 28 % fewer statements. A database that really became slower is
 * followed within a few measurements (x1.25 each, every ~30 s).
 */
double admission_next_min_rtt(double min_rtt, double measured);

/*
 * CoDel. Detection: first_above is 0 while the delay is below target,
 * else the time at which a delay still above target means a standing
 * queue. Feed admission_codel_note every request leaving the queue
 * (sojourn: its wait) and the oldest waiter's age at each arrival; it
 * returns 1 while the queue stands, 0 otherwise (and a delay below the
 * target ends a dropping spell). Control law: admission_codel_shed, at an
 * arrival that cannot be admitted at once, returns 1 when that arrival is
 * to be turned away: while the queue stands, the first at once, then one
 * at each drop_next, interval / sqrt(count) after the previous one; a
 * spell that begins soon after the last one resumes near its count.
 */
struct admission_codel {
	double first_above;
	int standing;
	int dropping;
	unsigned count;		/* sheds of this (or the last) dropping spell */
	double drop_next;
};
int admission_codel_note(struct admission_codel *q, double now, double sojourn, double target,
			 double interval);
int admission_codel_shed(struct admission_codel *q, double now, double interval);

#endif
