/*
 * fcgi_deadline: one deadline for reading a whole FastCGI request.
 *
 * libfcgi reads a request (its parameters inside FCGX_Accept_r, its body
 * through FCGX_GetStr) with blocking reads in its OS_Read. A socket's
 * receive timeout bounds each read, not the request: a peer sending a
 * byte every 29 s held a worker thread for as long as it liked. And when
 * libfcgi closes a connection, its OS_IpcClose lingers, reading until the
 * peer closes, 2 s per read with no bound on the number of reads.
 *
 * So this module defines OS_Read and OS_IpcClose itself. libfcgi's shared
 * library calls both through its PLT, so the program's definitions take
 * precedence (ELF symbol interposition); the prototypes come from
 * libfcgi's own <fcgios.h>, so a changed signature does not compile, and
 * fcgi_deadline_check proves at start that libfcgi does call them.
 *
 * While a thread has a deadline armed, its reads wait in poll() at most
 * until the deadline and then fail with ETIMEDOUT: libfcgi gives the
 * request up and closes the connection, without lingering. Any close
 * lingers FCGI_DEADLINE_LINGER seconds at most. Without a deadline a read
 * is a plain read(). A read interrupted by a signal fails with EINTR, as
 * before (the shutdown interrupts slow reads that way).
 */
#ifndef PS_FCGI_DEADLINE_H
#define PS_FCGI_DEADLINE_H

#include <stddef.h>

/* Seconds a close waits at most for the peer's end (libfcgi's 2 s, once). */
#define FCGI_DEADLINE_LINGER 2.0

/* This thread's libfcgi reads fail from at (now_mono() seconds) on, until disarmed. */
void fcgi_deadline_arm(double at);

/*
 * Disarm this thread's deadline. Returns 1 when a read ran into it since
 * fcgi_deadline_arm, with the connection's peer ("127.0.0.1:5000", "unix
 * peer pid 12") written into peer (at most len bytes); else 0.
 */
int fcgi_deadline_disarm(char *peer, size_t len);

/* 1 while this thread's armed deadline has been run into by a read, else 0. */
int fcgi_deadline_expired(void);

/*
 * How long a read at time now may wait for deadline at, in milliseconds
 * for poll(): 0 once it is reached, else the time left rounded up (at
 * least 1, so a wait never ends just before the deadline and spins), at
 * most INT_MAX.
 */
int fcgi_deadline_wait_ms(double at, double now);

/*
 * After FCGX_Init: feed libfcgi one request over a socket pair and check
 * that it read and closed it through this module. 0, or -1 with the reason
 * in err (then no deadline would hold: do not serve).
 */
int fcgi_deadline_check(char *err, size_t errlen);

#endif
