/*
 * trace: statements by name (trace.h). The request's trace is this
 * thread's pointer; the histograms are slots claimed once under a mutex
 * and counted lock-free afterwards.
 */
#include "db/trace.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static _Thread_local struct trace *current;

struct slot {
	char name[TRACE_NAME_LEN];
	struct hist h;
};

static struct slot slots[TRACE_NAMES_MAX];
static atomic_int nslots;		/* slots[0..nslots) are named */
static atomic_int other_used;		/* the last slot, "other", is named and counts */
static pthread_mutex_t claim_mu = PTHREAD_MUTEX_INITIALIZER;

void trace_begin(struct trace *t, double t0, int fresh)
{
	if (fresh) {
		memset(t, 0, sizeof(*t));
		t->t0 = t0;
	}
	current = t;
}

void trace_end(void)
{
	current = NULL;
}

/* src cut to fit a name's TRACE_NAME_LEN bytes. */
static void copy_name(char dst[TRACE_NAME_LEN], const char *src)
{
	size_t n = strnlen(src, TRACE_NAME_LEN - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The slot of name, claimed when new; the last slot ("other") when all are taken. */
static struct slot *slot_of(const char *name)
{
	int i, n = atomic_load_explicit(&nslots, memory_order_acquire);

	for (i = 0; i < n; i++)
		if (strncmp(slots[i].name, name, TRACE_NAME_LEN - 1) == 0)
			return &slots[i];
	pthread_mutex_lock(&claim_mu);
	n = atomic_load_explicit(&nslots, memory_order_relaxed);
	for (i = 0; i < n; i++)
		if (strncmp(slots[i].name, name, TRACE_NAME_LEN - 1) == 0)
			break;
	if (i == n) {
		if (n == TRACE_NAMES_MAX - 1) {
			i = n;	/* the last slot: named once, shared */
			if (!atomic_load_explicit(&other_used, memory_order_relaxed)) {
				copy_name(slots[i].name, "other");
				atomic_store_explicit(&other_used, 1, memory_order_release);
			}
		} else {
			copy_name(slots[i].name, name);
			atomic_store_explicit(&nslots, n + 1, memory_order_release);
		}
	}
	pthread_mutex_unlock(&claim_mu);
	return &slots[i];
}

void trace_note(const char *name, double start, double seconds)
{
	struct trace *t = current;

	hist_observe(&slot_of(name)->h, seconds);
	if (t == NULL)
		return;
	t->seconds += seconds;
	if (seconds > t->slowest_seconds || t->slowest[0] == '\0') {
		copy_name(t->slowest, name);
		t->slowest_seconds = seconds;
	}
	if (t->n == TRACE_MAX) {
		t->more++;
		return;
	}
	copy_name(t->e[t->n].name, name);
	t->e[t->n].at = start - t->t0;
	t->e[t->n].seconds = seconds;
	t->n++;
}

int trace_stats(struct trace_stat *out, int max)
{
	int i, k = 0, n = atomic_load_explicit(&nslots, memory_order_acquire);

	if (atomic_load_explicit(&other_used, memory_order_acquire))
		n = TRACE_NAMES_MAX;
	for (i = 0; i < n && k < max; i++) {
		copy_name(out[k].name, slots[i].name);
		hist_copy(&slots[i].h, out[k].counts, &out[k].sum);
		k++;
	}
	return k;
}
