#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cache.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

struct worker {
	pthread_t thread;
	struct app *app;
	int listen_fd;
	int index;
	atomic_int running;	/* 0 once the thread has left its loop */
};

/*
 * Shared with the workers: stopping is set once by the signal thread;
 * inflight counts requests between accept and finish. drain_mu/drain_cv
 * let the signal thread sleep until inflight reaches 0.
 */
static atomic_int stopping;
static atomic_int inflight;
static pthread_mutex_t drain_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drain_cv = PTHREAD_COND_INITIALIZER;

static void *worker_main(void *arg);
static int inflight_now(void);

static int inflight_now(void)
{
	return atomic_load(&inflight);
}
static void *housekeeping_main(void *arg);
static void wake_handler(int sig);

/* SIGUSR1 only interrupts a blocking call (accept, read): no work here. */
static void wake_handler(int sig)
{
	(void)sig;
}

static int listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "FCGI_LISTEN: socket path too long");
		return -1;
	}
	strcpy(sa.sun_path, path);
	/* Remove a stale socket left by a crash, never any other file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "FCGI_LISTEN: %s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		snprintf(err, errlen, "FCGI_LISTEN: cannot bind %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* nginx may run as another user; access is governed by the folder. */
	chmod(path, 0666);
	return fd;
}

static int listen_tcp(const char *spec, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints, *res = NULL, *ai;
	size_t hlen = (size_t)(colon - spec);
	int fd = -1, rc, one = 1;

	if (hlen >= sizeof(host)) {
		snprintf(err, errlen, "FCGI_LISTEN: host too long");
		return -1;
	}
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	if (host[0] == '[' && hlen >= 2 && host[hlen - 1] == ']') {
		memmove(host, host + 1, hlen - 2);
		host[hlen - 2] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "FCGI_LISTEN: cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		snprintf(err, errlen, "FCGI_LISTEN: cannot bind %s: %s", spec, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

int server_listen(const char *spec, char *err, size_t errlen)
{
	int fd;

	if (strncmp(spec, "unix:", 5) == 0)
		fd = listen_unix(spec + 5, err, errlen);
	else
		fd = listen_tcp(spec, err, errlen);
	if (fd >= 0 && listen(fd, 1024) != 0) {
		snprintf(err, errlen, "FCGI_LISTEN: listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	FCGX_Request req;

	if (FCGX_InitRequest(&req, w->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0)
		die("FCGX_InitRequest failed");
	while (!atomic_load(&stopping)) {
		int rc = FCGX_Accept_r(&req);	/* 0, or -errno */

		if (rc < 0) {
			if (atomic_load(&stopping))
				break;
			if (rc != -EINTR) {
				log_msg(LOG_WARN, "worker %d: accept failed: %s",
					w->index, strerror(-rc));
				/* EMFILE and the like: do not spin. */
				nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
			}
			continue;
		}
		atomic_fetch_add(&inflight, 1);
		ctx_handle(w->app, &req);
		FCGX_Finish_r(&req);
		if (atomic_fetch_sub(&inflight, 1) == 1 && atomic_load(&stopping)) {
			pthread_mutex_lock(&drain_mu);
			pthread_cond_signal(&drain_cv);
			pthread_mutex_unlock(&drain_mu);
		}
	}
	FCGX_Free(&req, 1);
	atomic_store(&w->running, 0);
	return NULL;
}

/*
 * Periodic chores that must not wait for a request: reporting connections
 * held past the leak threshold. Sleeps on drain_cv so shutdown wakes it.
 */
static void *housekeeping_main(void *arg)
{
	struct app *app = arg;
	unsigned ticks = 0;

	pthread_mutex_lock(&drain_mu);
	while (!atomic_load(&stopping)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&drain_cv, &drain_mu, &ts);
		if (atomic_load(&stopping))
			break;
		pthread_mutex_unlock(&drain_mu);
		pool_report_leaks(app->pool);
		metrics_sample(app->pool);
		if (++ticks % 60 == 0)	/* once a minute */
			auth_cleanup(app->pool, app->cfg);
		pthread_mutex_lock(&drain_mu);
	}
	pthread_mutex_unlock(&drain_mu);
	return NULL;
}

int server_run(struct app *app, int listen_fd)
{
	const struct config *cfg = app->cfg;
	struct worker *workers = xcalloc((size_t)cfg->workers, sizeof(*workers));
	struct sigaction sa;
	sigset_t set;
	struct timespec deadline;
	pthread_t housekeeper;
	int i, sig, left, rc = 0, stuck = 0;
	double t0;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_handler;	/* no SA_RESTART: interrupt blocking calls */
	sigaction(SIGUSR1, &sa, NULL);

	FCGX_Init();
	metrics_set_inflight_source(inflight_now);
	if (pthread_create(&housekeeper, NULL, housekeeping_main, app) != 0)
		die("cannot start the housekeeping thread");
	for (i = 0; i < cfg->workers; i++) {
		workers[i].app = app;
		workers[i].listen_fd = listen_fd;
		workers[i].index = i;
		atomic_store(&workers[i].running, 1);
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
			die("cannot start worker thread %d", i);
	}
	log_msg(LOG_INFO, "serving on %s with %d workers (%s profile, pool %d+%d)",
		cfg->fcgi_listen, cfg->workers, config_env_name(cfg->env),
		cfg->pool_size, cfg->max_overflow);

	for (;;) {
		if (sigwait(&set, &sig) != 0)
			die("sigwait failed");
		if (sig != SIGHUP)
			break;
		log_msg(LOG_INFO, "SIGHUP ignored: restart the process to apply new settings");
	}
	t0 = now_mono();
	log_msg(LOG_INFO, "%s received: draining %d in-flight requests (at most %d s)",
		sig == SIGTERM ? "SIGTERM" : "SIGINT", atomic_load(&inflight),
		cfg->shutdown_timeout);
	pthread_mutex_lock(&drain_mu);
	atomic_store(&stopping, 1);
	pthread_cond_broadcast(&drain_cv);	/* the housekeeper leaves */
	pthread_mutex_unlock(&drain_mu);
	pthread_join(housekeeper, NULL);
	/* Wake every thread blocked in accept(): new connections are refused. */
	shutdown(listen_fd, SHUT_RDWR);

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += cfg->shutdown_timeout;
	pthread_mutex_lock(&drain_mu);
	while (atomic_load(&inflight) > 0) {
		if (pthread_cond_timedwait(&drain_cv, &drain_mu, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&drain_mu);
	left = atomic_load(&inflight);
	if (left > 0) {
		log_msg(LOG_WARN, "shutdown timeout: %d requests still running", left);
		rc = -1;
	}

	/* Threads idle on a kept-alive nginx connection sit in read(): interrupt them. */
	for (i = 0; i < cfg->workers; i++)
		if (atomic_load(&workers[i].running))
			pthread_kill(workers[i].thread, SIGUSR1);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 2;
	for (i = 0; i < cfg->workers; i++) {
		if (pthread_timedjoin_np(workers[i].thread, NULL, &deadline) != 0) {
			log_msg(LOG_WARN, "worker %d did not stop; leaving it", i);
			stuck++;
		}
	}
	close(listen_fd);
	if (strncmp(cfg->fcgi_listen, "unix:", 5) == 0)
		unlink(cfg->fcgi_listen + 5);
	log_msg(LOG_INFO, "drained in %.0f ms", (now_mono() - t0) * 1000.0);
	/* A stuck thread may still read its struct worker: keep them all. */
	if (stuck == 0)
		free(workers);
	return stuck ? -1 : rc;
}
