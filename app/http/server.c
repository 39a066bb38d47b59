/*
 * server.c: the FastCGI listener, the worker threads' event loop over
 * kept-alive nginx connections, the housekeeping thread (leak reports,
 * idle-connection reaping, cache drain, metrics samples) and the drain on
 * SIGTERM. Design notes at the idle table below. Every request is read
 * under one deadline (FCGI_REQUEST_TIMEOUT, fcgi_deadline.h); a kept
 * connection idle for FCGI_IDLE_TIMEOUT is closed by the housekeeper.
 */
#define _GNU_SOURCE
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "base/workers.h"
#include "cache/cache.h"
#include "db/admission.h"
#include "db/replicas.h"
#include "http/fcgi_deadline.h"
#include "http/peers.h"
#include "obs/metrics.h"

struct worker {
	pthread_t thread;
	struct app *app;
	int index;
	atomic_int running;	/* 0 once the thread has left its loop */
};

/*
 * One request from its first byte to its answer, with its own
 * FCGX_Request: a request parked by the admission gate (context.h) keeps
 * it while no thread serves it, and any worker takes it up again.
 */
struct job {
	FCGX_Request req;
	struct ctx_parking parking;	/* how ctx parks it (resume: job_ready) */
	struct ctx *c;			/* the parked request's context */
	int registered;			/* its socket fits the idle table */
	int let_go;			/* ready_mu: the thread that parked it is done with it */
	int ready_early;		/* ready_mu: resumed before that */
	struct job *next;		/* ready list */
};

/*
 * Shared with the workers: stopping is set once by the signal thread;
 * inflight counts requests between the first byte read and the answer.
 * drain_mu/drain_cv let the signal thread sleep until inflight reaches 0.
 */
static atomic_int stopping;
static atomic_int inflight;
static atomic_int parked;	/* of inflight, the requests parked by the gate (no thread) */

/*
 * Parked requests ready to go on: ready_mu guards the list and each job's
 * let_go and ready_early; ready_fd (an eventfd counting semaphore in
 * epfd) tells a worker that one is there. Nothing blocks while ready_mu
 * is held: job_ready runs with the admission gate's lock held.
 */
static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static struct job *ready_head, *ready_tail;
static int ready_fd = -1;
static pthread_mutex_t drain_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drain_cv = PTHREAD_COND_INITIALIZER;

/*
 * The event loop the workers share. epfd holds the listening socket and
 * every kept-alive connection that is idle, each EPOLLONESHOT: an event
 * goes to exactly one worker, which owns that socket until it re-arms or
 * closes it, so a kept-alive connection never pins a thread while idle.
 * wake_fd (level-triggered, never re-armed) tells every worker to leave.
 *
 * idle[fd] is 1 while fd is armed in epfd and owned by nobody; whoever
 * swaps it to 0 (a worker given its event, or the housekeeper or shutdown
 * closing idle connections) owns the socket. Sockets numbered past nidle
 * are served once and closed. idle_since[fd] stamps (now_ms32) when fd
 * last became idle; it is written before idle[fd] is set, so whoever
 * swaps idle[fd] to 0 then reads the stamp of the idle spell it took, and
 * written again once fd is armed. The housekeeper takes only spells
 * FCGI_IDLE_TIMEOUT old, whose thread has long finished arming them; it
 * reads the stamp with acquire, which tells ThreadSanitizer so.
 */
static int epfd = -1, wake_fd = -1, listen_sock = -1;
static int dead_sock = -1;	/* never listens: libfcgi's own accept fails at once */
static atomic_char *idle;
static atomic_uint *idle_since;
static int nidle;

static void *worker_main(void *arg);
static int inflight_now(void);
static void *housekeeping_main(void *arg);
static void wake_handler(int sig);
static int arm(int fd, int op);
static void serve_connection(struct worker *w, int fd);
static void finish_job(struct worker *w, struct job *j, int served);
static void job_ready(void *arg);
static void take_ready(struct worker *w);
static void accept_some(struct worker *w);
static void refuse_peer(int fd);
static int peer_closed(int fd);
static void close_idle_connections(void);
static void close_stale_connections(int timeout);
static void give_back(int fd);
static unsigned now_ms32(void);
static void events_setup(int listen_fd);
static void events_teardown(void);

/* Requests a thread is inside (the watcher's measure): parked ones have none. */
static int inflight_now(void)
{
	return atomic_load(&inflight) - atomic_load(&parked);
}

/* Milliseconds on CLOCK_MONOTONIC modulo 2^32: idle spells are compared by difference. */
static unsigned now_ms32(void)
{
	return (unsigned)(long long)(now_mono() * 1000.0);
}

/* SIGUSR1 only interrupts a blocking call (a slow read): no work here. */
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
	/* On Linux the socket's own mode becomes the file's at bind: never wider. */
	if (fd >= 0)
		fchmod(fd, 0660);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		snprintf(err, errlen, "FCGI_LISTEN: cannot bind %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/*
	 * Owner and group only: nginx reaches it as the same user, or through
	 * the group of a setgid folder (scripts/stack.sh). Anyone else who
	 * could connect could set REMOTE_ADDR and every other parameter.
	 */
	if (chmod(path, 0660) != 0) {
		snprintf(err, errlen, "FCGI_LISTEN: cannot chmod %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
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

/* (Re-)arm fd for one event with op (EPOLL_CTL_ADD or _MOD). 0, or -1. */
static int arm(int fd, int op)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
	ev.data.fd = fd;
	return epoll_ctl(epfd, op, fd, &ev);
}

/* Whether the peer has closed fd with nothing left to read. */
static int peer_closed(int fd)
{
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* This thread's read deadline is over: count and log a request it cut. */
static void deadline_done(struct worker *w, int timeout)
{
	char peer[64];

	if (fcgi_deadline_disarm(peer, sizeof(peer))) {
		metrics_fcgi_closed(METRICS_FCGI_REQUEST_TIMEOUT, 1);
		log_msg(LOG_WARN, "worker %d: closed the FastCGI connection from %s: its request was "
			"not read whole within FCGI_REQUEST_TIMEOUT (%d s)", w->index, peer, timeout);
	}
}

/* Add j to the ready list; ready_mu held (the caller then signals ready_fd). */
static void ready_push_locked(struct job *j)
{
	j->next = NULL;
	if (ready_tail)
		ready_tail->next = j;
	else
		ready_head = j;
	ready_tail = j;
}

static void ready_signal(void)
{
	if (eventfd_write(ready_fd, 1) != 0)
		die("eventfd_write: %s", strerror(errno));
}

/*
 * The gate's word on a parked request (ctx_parking.resume): queue it for
 * a worker, unless the thread that parked it is still on its way out of
 * it, which then queues it itself (so ctx_resume never runs beside it).
 */
static void job_ready(void *arg)
{
	struct job *j = arg;
	int now;

	pthread_mutex_lock(&ready_mu);
	now = j->let_go;
	if (now)
		ready_push_locked(j);
	else
		j->ready_early = 1;
	pthread_mutex_unlock(&ready_mu);
	if (now)
		ready_signal();
}

/* ready_fd fired: take one parked request and serve the rest of it. */
static void take_ready(struct worker *w)
{
	eventfd_t one;
	struct job *j = NULL;
	int got = eventfd_read(ready_fd, &one) == 0;	/* a semaphore: 1 each */

	if (arm(ready_fd, EPOLL_CTL_MOD) != 0)
		die("epoll_ctl (ready): %s", strerror(errno));
	if (!got)
		return;		/* another worker took it */
	pthread_mutex_lock(&ready_mu);
	if ((j = ready_head) != NULL) {
		ready_head = j->next;
		if (ready_head == NULL)
			ready_tail = NULL;
	}
	pthread_mutex_unlock(&ready_mu);
	if (j == NULL)
		return;
	atomic_fetch_sub(&parked, 1);
	ctx_resume(j->c);
	finish_job(w, j, 1);
}

/*
 * Serve the request waiting on fd, which this worker owns. libfcgi reads
 * it (FCGX_Accept_r uses an open ipcFd instead of accepting; with
 * keepConnection set it does not close that fd first) into a job of its
 * own. A request the admission gate parks stays in its job, its socket
 * owned by it, until a worker takes it up again (take_ready). Relies on
 * FCGX_Request's ipcFd and keepConnection, unchanged in libfcgi since
 * 2.4.0.
 */
static void serve_connection(struct worker *w, int fd)
{
	struct job *j = xcalloc(1, sizeof(*j));
	int rc, timeout = w->app->cfg->request_timeout, early;

	/* libfcgi accepts only when a connection fails: make that fail at once. */
	if (FCGX_InitRequest(&j->req, dead_sock, 0) != 0)
		die("FCGX_InitRequest failed");
	j->registered = fd < nidle;
	j->parking.resume = job_ready;
	j->parking.job = j;
	j->req.ipcFd = fd;
	j->req.keepConnection = 1;
	atomic_fetch_add(&inflight, 1);
	/* From here to the request's end, no read waits past the deadline. */
	fcgi_deadline_arm(now_mono() + timeout);
	rc = FCGX_Accept_r(&j->req);	/* 0, or -errno: libfcgi closed the socket */
	if (rc == 0 && (j->c = ctx_handle(w->app, &j->req, &j->parking)) != NULL) {
		/* Parked: its request is read whole; let it go to whoever takes it up. */
		deadline_done(w, timeout);
		atomic_fetch_add(&parked, 1);
		pthread_mutex_lock(&ready_mu);
		j->let_go = 1;
		if ((early = j->ready_early) != 0)
			ready_push_locked(j);
		pthread_mutex_unlock(&ready_mu);
		if (early)
			ready_signal();
		return;
	}
	finish_job(w, j, rc == 0);
}

/*
 * After the answer (served) or a failed accept: a connection nginx keeps
 * (FCGI_KEEP_CONN) goes back into epfd, idle; any other is closed by
 * FCGX_Finish_r. Then the job is freed.
 */
static void finish_job(struct worker *w, struct job *j, int served)
{
	FCGX_Request *req = &j->req;
	int fd;

	if (served) {
		if (atomic_load(&stopping) || !j->registered || fcgi_deadline_expired())
			req->keepConnection = 0;	/* FCGX_Finish_r closes it */
		FCGX_Finish_r(req);
		workers_request_done();
		fd = req->ipcFd;
		req->ipcFd = -1;
		if (fd >= 0) {
			unsigned stamp = now_ms32();

			atomic_store_explicit(&idle_since[fd], stamp, memory_order_relaxed);
			atomic_store(&idle[fd], 1);
			if (arm(fd, EPOLL_CTL_MOD) != 0 &&
			    (errno != ENOENT || arm(fd, EPOLL_CTL_ADD) != 0)) {
				log_msg(LOG_WARN, "worker %d: epoll_ctl: %s", w->index, strerror(errno));
				if (atomic_exchange(&idle[fd], 0))
					close(fd);
			} else {
				atomic_store_explicit(&idle_since[fd], stamp, memory_order_release);
			}
		}
	}
	deadline_done(w, w->app->cfg->request_timeout);	/* a resumed job's thread has none armed */
	req->ipcFd = -1;
	FCGX_Free(req, 0);
	free(j);
	if (atomic_fetch_sub(&inflight, 1) == 1 && atomic_load(&stopping)) {
		pthread_mutex_lock(&drain_mu);
		pthread_cond_signal(&drain_cv);
		pthread_mutex_unlock(&drain_mu);
	}
}

/*
 * A FastCGI peer not in FCGI_WEB_SERVER_ADDRS: closed before a byte is
 * read or answered. Logged at most once a second.
 */
static void refuse_peer(int fd)
{
	static atomic_llong last_logged;
	long long now = (long long)now_mono();

	if (atomic_exchange(&last_logged, now) != now)
		log_msg(LOG_WARN, "refused a FastCGI connection from a peer not in FCGI_WEB_SERVER_ADDRS");
	close(fd);
}

/*
 * Settings of a newly accepted connection; 0, or -1 after refusing it.
 * Reads are bounded by the request's deadline (fcgi_deadline), each write
 * by the send timeout; the receive timeout is a backstop.
 */
static int admit(int fd)
{
	struct timeval tv = { 30, 0 };
	int one = 1;

	if (!peers_allowed(fd)) {
		refuse_peer(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));	/* fails on unix: fine */
	return 0;
}

/*
 * The listening socket is readable: take one connection to serve, and put
 * the others already waiting (up to ACCEPT_BATCH) into the epoll set like
 * idle kept-alive ones. nginx opens a connection per request beyond its
 * cache of kept ones; taken one per event of the listening socket, which
 * went round behind every ready kept-alive connection, a few of them
 * waited in the backlog for a second at 512 clients.
 */
#define ACCEPT_BATCH 64

static void accept_some(struct worker *w)
{
	int fd = accept4(listen_sock, NULL, NULL, SOCK_CLOEXEC), err = errno, more, n;
	unsigned stamp;

	/* Let another worker take the next connection while this one serves. */
	if (!atomic_load(&stopping) && arm(listen_sock, EPOLL_CTL_MOD) != 0)
		log_msg(LOG_ERROR, "worker %d: cannot re-arm the listening socket: %s",
			w->index, strerror(errno));
	if (fd < 0) {
		if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
			log_msg(LOG_WARN, "worker %d: accept failed: %s", w->index, strerror(err));
			nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);	/* do not spin */
		}
		return;	/* EAGAIN (another worker took it), ECONNABORTED, shutdown */
	}
	for (n = 0; n < ACCEPT_BATCH; n++) {
		if ((more = accept4(listen_sock, NULL, NULL, SOCK_CLOEXEC)) < 0)
			break;
		if (admit(more) != 0)
			continue;
		if (more >= nidle) {	/* no idle slot: served once, at once, then closed */
			serve_connection(w, more);
			continue;
		}
		stamp = now_ms32();
		atomic_store_explicit(&idle_since[more], stamp, memory_order_relaxed);
		atomic_store(&idle[more], 1);
		if (arm(more, EPOLL_CTL_ADD) != 0) {
			if (atomic_exchange(&idle[more], 0))
				close(more);
		} else {
			atomic_store_explicit(&idle_since[more], stamp, memory_order_release);
		}
	}
	if (admit(fd) == 0)
		serve_connection(w, fd);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		struct epoll_event ev;
		int n, fd;

		workers_settle();	/* a surplus thread parks here */
		n = epoll_wait(epfd, &ev, 1, -1);

		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		if (n <= 0)
			continue;
		fd = ev.data.fd;
		if (fd == wake_fd)
			break;
		if (fd == listen_sock) {
			accept_some(w);
		} else if (fd == ready_fd) {
			take_ready(w);
		} else if (atomic_exchange(&idle[fd], 0)) {
			/* nginx closed an idle kept-alive connection: no request to read. */
			if ((ev.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && peer_closed(fd))
				close(fd);
			else
				serve_connection(w, fd);
		}
	}
	atomic_store(&w->running, 0);
	return NULL;
}

/* At shutdown: close every kept-alive connection that is idle now. */
static void close_idle_connections(void)
{
	int fd;

	for (fd = 0; fd < nidle; fd++) {
		if (atomic_load(&idle[fd]) && atomic_exchange(&idle[fd], 0)) {
			epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
			close(fd);
		}
	}
}

/* Whether bytes (a request) wait on fd. */
static int has_input(int fd)
{
	char b;

	return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Put fd, owned by the caller, back into epfd as idle (its stamp unchanged); closed if that fails. */
static void give_back(int fd)
{
	atomic_store(&idle[fd], 1);
	if (arm(fd, EPOLL_CTL_MOD) != 0 && atomic_exchange(&idle[fd], 0))
		close(fd);
}

/*
 * Whether an idle spell stamped since has lasted limit_ms at now (stamps
 * modulo 2^32 ms; a stamp taken after now reads as a spell just begun).
 */
static int idle_over(unsigned since, unsigned now, unsigned limit_ms)
{
	unsigned spell = now - since;

	return spell >= limit_ms && spell < 0x80000000u;
}

/*
 * Close every kept connection idle for timeout seconds or more (nginx
 * closes its own sooner, at its keepalive_timeout; this reaps the ones a
 * vanished or misbehaving peer left). Taken as a worker takes one, by
 * swapping its idle flag; one that a request has just reached is given
 * back, so its event fires again for a worker. Each is counted as it is
 * closed, before its peer can see the close.
 */
static void close_stale_connections(int timeout)
{
	unsigned now = now_ms32(), limit = (unsigned)timeout * 1000u;
	int fd, closed = 0;

	for (fd = 0; fd < nidle; fd++) {
		if (!atomic_load_explicit(&idle[fd], memory_order_relaxed) ||
		    !idle_over(atomic_load_explicit(&idle_since[fd], memory_order_relaxed), now, limit) ||
		    !atomic_exchange(&idle[fd], 0))
			continue;
		/* Owned now; the stamp read again is the spell's taken (see idle_since). */
		if (!idle_over(atomic_load_explicit(&idle_since[fd], memory_order_acquire), now, limit) ||
		    has_input(fd)) {
			give_back(fd);
			continue;
		}
		metrics_fcgi_closed(METRICS_FCGI_IDLE_TIMEOUT, 1);
		epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
		close(fd);
		closed++;
	}
	if (closed > 0)
		log_msg(LOG_INFO, "closed %d kept FastCGI connections idle for FCGI_IDLE_TIMEOUT (%d s)",
			closed, timeout);
}

/*
 * Periodic chores that must not wait for a request: closing kept
 * connections idle too long, reporting connections held past the leak
 * threshold, the pools' and replicas' upkeep, and the application's own
 * chores (app->chores). Sleeps on drain_cv so shutdown wakes it.
 */
static void *housekeeping_main(void *arg)
{
	struct app *app = arg;
	unsigned ticks = 0;
	size_t i;

	pthread_mutex_lock(&drain_mu);
	while (!atomic_load(&stopping)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&drain_cv, &drain_mu, &ts);
		if (atomic_load(&stopping))
			break;
		pthread_mutex_unlock(&drain_mu);
		close_stale_connections(app->cfg->idle_timeout);	/* first: the chores below may wait */
		pool_report_leaks(app->pool);
		if (app->gate)
			admission_expire(app->gate);	/* parked requests that waited DB_POOL_TIMEOUT */
		pool_reap_idle(app->pool);
		metrics_sample(app->pool);
		replicas_housekeep();	/* replay positions and lag; the replica pools' chores */
		ticks++;
		for (i = 0; i < app->nchores; i++)	/* the application's own */
			if (ticks % app->chores[i].every == 0)
				app->chores[i].run(app->pool, app->cfg);
		pthread_mutex_lock(&drain_mu);
	}
	pthread_mutex_unlock(&drain_mu);
	return NULL;
}

/* The shared epoll set: the listening socket, the wake-up, the idle table. */
static void events_setup(int listen_fd)
{
	struct epoll_event ev;
	struct rlimit rl;
	int flags = fcntl(listen_fd, F_GETFL);

	listen_sock = listen_fd;
	if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0)
		die("cannot make the listening socket non-blocking: %s", strerror(errno));
	epfd = epoll_create1(EPOLL_CLOEXEC);
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	dead_sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (epfd < 0 || wake_fd < 0 || ready_fd < 0 || dead_sock < 0)
		die("cannot set up the event loop: %s", strerror(errno));
	/*
	 * Every kept-alive nginx connection is a descriptor: raise the soft
	 * limit to the hard one (1024 is a common soft default), then size
	 * the idle table for every descriptor the process may open, within
	 * reason (a connection numbered beyond it is served, then closed).
	 */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	nidle = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
			rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
	idle = xcalloc((size_t)nidle, sizeof(*idle));
	idle_since = xcalloc((size_t)nidle, sizeof(*idle_since));
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;	/* level-triggered: once written, wakes every worker */
	ev.data.fd = wake_fd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, wake_fd, &ev) != 0 ||
	    arm(listen_fd, EPOLL_CTL_ADD) != 0 || arm(ready_fd, EPOLL_CTL_ADD) != 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void events_teardown(void)
{
	close(epfd);
	close(wake_fd);
	close(ready_fd);
	close(dead_sock);
	free(idle);
	free(idle_since);
	idle = NULL;
	idle_since = NULL;
	epfd = wake_fd = ready_fd = dead_sock = listen_sock = -1;
}

/* Block the signals the main thread waits for; interrupt, never restart, on SIGUSR1. */
static void signals_setup(sigset_t *set)
{
	struct sigaction sa;

	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_handler;	/* no SA_RESTART: interrupt blocking calls */
	sigaction(SIGUSR1, &sa, NULL);
}

/* Wait until SIGTERM or SIGINT (SIGHUP is logged and ignored); returns it. */
static int wait_for_stop(sigset_t *set)
{
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			die("sigwait failed");
		if (sig != SIGHUP)
			return sig;
		log_msg(LOG_INFO, "SIGHUP ignored: restart the process to apply new settings");
	}
}

/*
 * Stop taking work and let requests in flight finish, for at most timeout
 * seconds. New connections are refused; idle kept-alive ones are closed,
 * so nginx sends new requests elsewhere. A request already on its way over
 * a kept connection is still served, then that connection closes. Returns
 * the requests still running at the deadline.
 */
static int drain_requests(int listen_fd, int timeout)
{
	struct timespec deadline;

	epoll_ctl(epfd, EPOLL_CTL_DEL, listen_fd, NULL);
	shutdown(listen_fd, SHUT_RDWR);
	close_idle_connections();
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout;
	pthread_mutex_lock(&drain_mu);
	while (atomic_load(&inflight) > 0) {
		if (pthread_cond_timedwait(&drain_cv, &drain_mu, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&drain_mu);
	close_idle_connections();	/* re-armed while the drain began */
	return atomic_load(&inflight);
}

/*
 * Every worker leaves its loop; one stuck in a slow read is interrupted.
 * Returns how many did not stop within 2 s (left running, never freed).
 */
static int stop_workers(struct worker *workers, int n)
{
	struct timespec deadline;
	int i, stuck = 0;

	if (eventfd_write(wake_fd, 1) != 0)
		die("eventfd_write: %s", strerror(errno));
	for (i = 0; i < n; i++)
		if (atomic_load(&workers[i].running))
			pthread_kill(workers[i].thread, SIGUSR1);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 2;
	for (i = 0; i < n; i++) {
		if (pthread_timedjoin_np(workers[i].thread, NULL, &deadline) != 0) {
			log_msg(LOG_WARN, "worker %d did not stop; leaving it", i);
			stuck++;
		}
	}
	return stuck;
}

int server_run(struct app *app, int listen_fd)
{
	const struct config *cfg = app->cfg;
	struct worker *workers = xcalloc((size_t)cfg->workers, sizeof(*workers));
	int active;
	sigset_t set;
	pthread_t housekeeper;
	int i, sig, left, stuck;
	double t0;

	signals_setup(&set);
	FCGX_Init();
	{
		char err[256];

		if (fcgi_deadline_check(err, sizeof(err)) != 0)
			die("%s", err);
	}
	events_setup(listen_fd);
	metrics_set_inflight_source(inflight_now);
	if (pthread_create(&housekeeper, NULL, housekeeping_main, app) != 0)
		die("cannot start the housekeeping thread");
	active = workers_start(cfg->workers, cfg->workers_active ? cfg->workers_active
							       : workers_default_active(),
			       inflight_now);
	for (i = 0; i < cfg->workers; i++) {
		workers[i].app = app;
		workers[i].index = i;
		atomic_store(&workers[i].running, 1);
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
			die("cannot start worker thread %d", i);
	}
	log_msg(LOG_INFO, "serving on %s with %d workers, %d of them active (%s profile, pool %d+%d)",
		cfg->fcgi_listen, cfg->workers, active, config_env_name(cfg->env),
		cfg->pool_size, cfg->max_overflow);

	sig = wait_for_stop(&set);
	t0 = now_mono();
	log_msg(LOG_INFO, "%s received: draining %d in-flight requests (at most %d s)",
		sig == SIGTERM ? "SIGTERM" : "SIGINT", atomic_load(&inflight),
		cfg->shutdown_timeout);
	pthread_mutex_lock(&drain_mu);
	atomic_store(&stopping, 1);
	pthread_cond_broadcast(&drain_cv);	/* the housekeeper leaves */
	pthread_mutex_unlock(&drain_mu);
	pthread_join(housekeeper, NULL);
	if ((left = drain_requests(listen_fd, cfg->shutdown_timeout)) > 0)
		log_msg(LOG_WARN, "shutdown timeout: %d requests still running", left);
	workers_stop();	/* parked threads wake and leave */
	stuck = stop_workers(workers, cfg->workers);
	close(listen_fd);
	if (stuck == 0)
		events_teardown();
	if (strncmp(cfg->fcgi_listen, "unix:", 5) == 0)
		unlink(cfg->fcgi_listen + 5);
	log_msg(LOG_INFO, "drained in %.0f ms", (now_mono() - t0) * 1000.0);
	/* A stuck thread may still read its struct worker: keep them all. */
	if (stuck == 0)
		free(workers);
	return stuck || left > 0 ? -1 : 0;
}
