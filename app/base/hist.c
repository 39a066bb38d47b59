/* hist: lock-free latency histograms (hist.h). */
#include "base/hist.h"

const double hist_buckets[HIST_NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

int hist_bucket(double seconds)
{
	int i;

	for (i = 0; i < HIST_NBUCKETS && seconds > hist_buckets[i]; i++)
		;
	return i;
}

void hist_observe(struct hist *h, double seconds)
{
	if (seconds < 0)
		seconds = 0;
	atomic_fetch_add_explicit(&h->counts[hist_bucket(seconds)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)(seconds * 1e6),
				  memory_order_relaxed);
}

void hist_copy(struct hist *h, unsigned long long counts[HIST_NBUCKETS + 1], double *sum)
{
	int i;

	for (i = 0; i <= HIST_NBUCKETS; i++)
		counts[i] = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
	*sum = (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6;
}
