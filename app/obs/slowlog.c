/* slowlog: a ring of the last slow requests under one mutex (slowlog.h). */
#include "obs/slowlog.h"

#include <pthread.h>

static struct slow_request ring[SLOWLOG_MAX];
static uint64_t added;		/* ring[(added - 1) % SLOWLOG_MAX] is the newest */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void slowlog_add(const struct slow_request *r)
{
	pthread_mutex_lock(&mu);
	ring[added % SLOWLOG_MAX] = *r;
	added++;
	pthread_mutex_unlock(&mu);
}

int slowlog_list(struct slow_request *out, uint64_t *total)
{
	int n = 0;

	pthread_mutex_lock(&mu);
	while ((uint64_t)n < added && n < SLOWLOG_MAX) {
		out[n] = ring[(added - 1 - (uint64_t)n) % SLOWLOG_MAX];
		n++;
	}
	*total = added;
	pthread_mutex_unlock(&mu);
	return n;
}
