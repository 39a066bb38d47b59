/*
 * hist: a latency histogram that threads add to without a lock (relaxed
 * atomics), with the one set of bucket bounds every histogram of the
 * service shares, so that any two can be summed or compared.
 */
#ifndef PS_HIST_H
#define PS_HIST_H

#include <stdatomic.h>

/* Upper bounds (seconds) of the buckets; one more bucket, +Inf, follows. */
#define HIST_NBUCKETS 14
extern const double hist_buckets[HIST_NBUCKETS];

/* Non-cumulative counts, +Inf last; the sum in microseconds. Zeroed: empty. */
struct hist {
	atomic_ullong counts[HIST_NBUCKETS + 1];
	atomic_ullong sum_us;
};

/* The bucket seconds falls in (HIST_NBUCKETS: +Inf). */
int hist_bucket(double seconds);

/* Count one observation. */
void hist_observe(struct hist *h, double seconds);

/* Copy the counts (non-cumulative) and the sum in seconds. */
void hist_copy(struct hist *h, unsigned long long counts[HIST_NBUCKETS + 1], double *sum);

#endif
