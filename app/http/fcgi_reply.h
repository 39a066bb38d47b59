/*
 * fcgi_reply: a request's whole FastCGI answer (its STDOUT records, the
 * end of STDOUT and FCGI_END_REQUEST) in one writev. libfcgi's own writer
 * copies the answer into an 8 KB buffer and writes each 8 KB as it fills,
 * then once more for the end: three writes for a list page, each able to
 * wake nginx. libfcgi still reads the request and owns the connection.
 */
#ifndef PS_FCGI_REPLY_H
#define PS_FCGI_REPLY_H

#include <fcgiapp.h>
#include <stddef.h>

/* One piece of the answer's bytes, sent in order. */
struct fcgi_part {
	const void *data;
	size_t len;
};

/*
 * Send parts[0..n) as the answer to r, then end the request. Afterwards
 * libfcgi writes nothing more for r (FCGX_Finish_r still frees it and
 * keeps or closes the connection). Nothing may have been written to r->out
 * before. 0, or -1 with errno set when the socket failed or its send
 * timeout ran out, or (ETIMEDOUT, nothing sent) when reading the request
 * ran into its deadline (fcgi_deadline.h); then r's connection is closed
 * by FCGX_Finish_r.
 */
int fcgi_reply(FCGX_Request *r, const struct fcgi_part *parts, int n);

/*
 * The framing alone, for tests and for fcgi_reply: write the records for
 * request id req_id carrying parts[0..n), and the end records, to fd.
 */
int fcgi_reply_fd(int fd, int req_id, const struct fcgi_part *parts, int n);

#endif
