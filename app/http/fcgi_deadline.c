/*
 * fcgi_deadline.c: libfcgi's reads and closes, bounded in time (see
 * app/http/fcgi_deadline.h for why they are defined here). Every state is
 * the calling thread's own: a worker arms, reads, closes and disarms on
 * its own thread, so nothing here is shared or locked.
 */
#define _GNU_SOURCE
#include "http/fcgi_deadline.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <fcgios.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"

static void expire(int fd);
static void describe_peer(int fd, char *out, size_t len);
static void linger(int fd, double until);

static _Thread_local struct {
	int armed, expired;
	double at;			/* now_mono() seconds */
	char peer[64];			/* described when the deadline was run into */
	unsigned long reads, closes;	/* through this module: for fcgi_deadline_check */
} me;

void fcgi_deadline_arm(double at)
{
	me.at = at;
	me.armed = 1;
	me.expired = 0;
}

int fcgi_deadline_disarm(char *peer, size_t len)
{
	int hit = me.armed && me.expired;

	me.armed = me.expired = 0;
	if (hit)
		snprintf(peer, len, "%s", me.peer);
	return hit;
}

int fcgi_deadline_expired(void)
{
	return me.armed && me.expired;
}

int fcgi_deadline_wait_ms(double at, double now)
{
	double ms = (at - now) * 1000.0;
	int whole;

	if (!(ms > 0))		/* reached, or not a number */
		return 0;
	if (ms >= (double)INT_MAX)
		return INT_MAX;
	whole = (int)ms;
	return whole < ms ? whole + 1 : whole;
}

/*
 * libfcgi's read of a request's bytes. Armed, no read starts past the
 * deadline (bytes that keep coming do not keep a request going: each read
 * checks the clock, which costs no system call), and one that would block
 * waits in poll() for the time left instead; either way it then fails
 * with ETIMEDOUT. A read that finds bytes waiting costs one recv(), as
 * the read() it replaces did.
 */
int OS_Read(int fd, char *buf, size_t len)
{
	me.reads++;
	if (!me.armed)
		return (int)read(fd, buf, len);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int ms = fcgi_deadline_wait_ms(me.at, now_mono());
		ssize_t n;

		if (ms == 0) {
			expire(fd);
			errno = ETIMEDOUT;
			return -1;
		}
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return (int)n;
		if (poll(&p, 1, ms) < 0)
			return -1;	/* EINTR: a signal meant to interrupt the read */
	}
}

/*
 * libfcgi's close of a connection: shut our side, then read and drop what
 * the peer still sends until it closes its side (so the kernel does not
 * answer late bytes with a reset that could cost the peer our answer), as
 * libfcgi does, but for FCGI_DEADLINE_LINGER seconds in all; not at all
 * after a deadline was run into. Returns close()'s result.
 */
int OS_IpcClose(int fd, int shutdown_ok)
{
	if (fd < 0)
		return 0;
	me.closes++;
	if (shutdown_ok && !(me.armed && me.expired) && shutdown(fd, SHUT_WR) == 0)
		linger(fd, now_mono() + FCGI_DEADLINE_LINGER);
	return close(fd);
}

static void linger(int fd, double until)
{
	char trash[1024];
	int ms;

	while ((ms = fcgi_deadline_wait_ms(until, now_mono())) > 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, ms) <= 0 || recv(fd, trash, sizeof(trash), MSG_DONTWAIT) <= 0)
			break;
	}
}

static void expire(int fd)
{
	me.expired = 1;
	describe_peer(fd, me.peer, sizeof(me.peer));
}

/* "address:port", "[v6]:port", "unix peer pid N"; never fails (says what it could not find). */
static void describe_peer(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	struct ucred cred;
	socklen_t cl = sizeof(cred);

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
		snprintf(out, len, "an unknown peer (%s)", strerror(errno));
		return;
	}
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, (unsigned)ntohs(a->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
	} else if (ss.ss_family == AF_UNIX &&
		   getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) {
		snprintf(out, len, "unix peer pid %d", (int)cred.pid);
	} else {
		snprintf(out, len, "a peer of address family %d", (int)ss.ss_family);
	}
}

int fcgi_deadline_check(char *err, size_t errlen)
{
	/* BEGIN_REQUEST (responder, no keep-alive), empty PARAMS, empty STDIN; request id 1. */
	static const unsigned char request[] = {
		FCGI_VERSION_1, FCGI_BEGIN_REQUEST, 0, 1, 0, 8, 0, 0,
		0, FCGI_RESPONDER, 0, 0, 0, 0, 0, 0,
		FCGI_VERSION_1, FCGI_PARAMS, 0, 1, 0, 0, 0, 0,
		FCGI_VERSION_1, FCGI_STDIN, 0, 1, 0, 0, 0, 0,
	};
	unsigned long reads = me.reads, closes = me.closes;
	FCGX_Request r;
	int sv[2], nolisten, rc = -1;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(err, errlen, "fcgi_deadline_check: socketpair: %s", strerror(errno));
		return -1;
	}
	/* Never listens: should libfcgi try to accept, it fails at once. */
	nolisten = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (nolisten >= 0 && write(sv[1], request, sizeof(request)) == (ssize_t)sizeof(request) &&
	    shutdown(sv[1], SHUT_WR) == 0 &&	/* the close below finds our end at once */
	    FCGX_InitRequest(&r, nolisten, 0) == 0) {
		r.ipcFd = sv[0];	/* as server.c serves a connection it owns */
		r.keepConnection = 1;
		rc = FCGX_Accept_r(&r);
		r.keepConnection = 0;
		FCGX_Finish_r(&r);	/* closes sv[0], or libfcgi already did */
	} else {
		close(sv[0]);
	}
	close(sv[1]);
	if (nolisten >= 0)
		close(nolisten);
	if (rc != 0)
		snprintf(err, errlen, "libfcgi did not take a well-formed request over a socket pair (%d)", rc);
	else if (me.reads == reads || me.closes == closes)
		snprintf(err, errlen, "libfcgi does not read and close connections through this "
			 "program's OS_Read and OS_IpcClose: no request deadline would hold");
	else
		return 0;
	return -1;
}
