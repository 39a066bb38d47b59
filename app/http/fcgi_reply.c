/*
 * fcgi_reply.c: a FastCGI answer framed into records and written with one
 * writev (more only for answers beyond 32 records of 64 KB, or when the
 * socket takes part of it). See app/http/fcgi_reply.h for why.
 */
#include "http/fcgi_reply.h"

#include <errno.h>
#include <fastcgi.h>
#include <sys/uio.h>

#include "http/fcgi_deadline.h"

#define BATCH 64		/* iovecs per writev: a header and its content per record */

static void header(unsigned char h[FCGI_HEADER_LEN], int type, int req_id, size_t len)
{
	h[0] = FCGI_VERSION_1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)((req_id >> 8) & 0xff);
	h[3] = (unsigned char)(req_id & 0xff);
	h[4] = (unsigned char)((len >> 8) & 0xff);
	h[5] = (unsigned char)(len & 0xff);
	h[6] = 0;		/* no padding */
	h[7] = 0;
}

/* Write iov[0..n) whole, resuming after partial writes. */
static int write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* The STDOUT records of parts[0..n), then, with end, the end of STDOUT and FCGI_END_REQUEST. */
static int records(int fd, int req_id, const struct fcgi_part *parts, int n, int end)
{
	unsigned char hdrs[BATCH / 2][FCGI_HEADER_LEN];
	/* The end of STDOUT, then FCGI_END_REQUEST: app status 0, complete. */
	unsigned char tail[3 * FCGI_HEADER_LEN] = { 0 };
	struct iovec iov[BATCH + 1];
	int niov = 0, i;
	size_t off, len;

	for (i = 0; i < n; i++) {
		for (off = 0; off < parts[i].len; off += len) {
			len = parts[i].len - off;
			if (len > FCGI_MAX_LENGTH)
				len = FCGI_MAX_LENGTH;
			if (niov == BATCH) {
				if (write_all(fd, iov, niov) != 0)
					return -1;
				niov = 0;
			}
			header(hdrs[niov / 2], FCGI_STDOUT, req_id, len);
			iov[niov].iov_base = hdrs[niov / 2];
			iov[niov++].iov_len = FCGI_HEADER_LEN;
			iov[niov].iov_base = (char *)parts[i].data + off;
			iov[niov++].iov_len = len;
		}
	}
	if (end) {
		header(tail, FCGI_STDOUT, req_id, 0);
		header(tail + FCGI_HEADER_LEN, FCGI_END_REQUEST, req_id, FCGI_HEADER_LEN);
		tail[2 * FCGI_HEADER_LEN + 4] = FCGI_REQUEST_COMPLETE;
		iov[niov].iov_base = tail;
		iov[niov++].iov_len = sizeof(tail);
	}
	return write_all(fd, iov, niov);
}

int fcgi_reply_fd(int fd, int req_id, const struct fcgi_part *parts, int n)
{
	return records(fd, req_id, parts, n, 1);
}

int fcgi_stream_fd(int fd, int req_id, const struct fcgi_part *parts, int n)
{
	return records(fd, req_id, parts, n, 0);
}

/*
 * The answer is ours: make libfcgi's FCGX_FClose a no-op for the out
 * stream (fields of its public FCGX_Stream), so that FCGX_Finish_r writes
 * no end of its own. Nothing was written to err, so closing it writes
 * nothing either.
 */
static void take_over(FCGX_Request *r)
{
	r->out->wasFCloseCalled = 1;
	r->out->isClosed = 1;
}

int fcgi_reply(FCGX_Request *r, const struct fcgi_part *parts, int n)
{
	int rc = -1;

	/* A request not read whole by its deadline is not answered: its connection closes. */
	if (fcgi_deadline_expired())
		errno = ETIMEDOUT;
	else
		rc = fcgi_reply_fd(r->ipcFd, r->requestId, parts, n);
	take_over(r);
	if (rc != 0)
		r->keepConnection = 0;	/* a half-written answer: close */
	return rc;
}

int fcgi_stream_write(FCGX_Request *r, const struct fcgi_part *parts, int n)
{
	int rc;

	take_over(r);
	rc = fcgi_stream_fd(r->ipcFd, r->requestId, parts, n);
	if (rc != 0)
		r->keepConnection = 0;
	return rc;
}

void fcgi_stream_abandon(FCGX_Request *r)
{
	take_over(r);
	r->keepConnection = 0;	/* no end was sent: the connection cannot carry another request */
}
