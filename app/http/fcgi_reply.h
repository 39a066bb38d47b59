/*
 * fcgi_reply: a request's whole FastCGI answer (its STDOUT records, the
 * end of STDOUT and FCGI_END_REQUEST) in one writev. libfcgi's own writer
 * copies the answer into an 8 KB buffer and writes each 8 KB as it fills,
 * then once more for the end: three writes for a list page, each able to
 * wake nginx. libfcgi still reads the request and owns the connection.
 * A streamed answer (an export) goes out the same way, a piece at a time.
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
 * A streamed answer, its body sent while it is made: fcgi_stream_write
 * sends parts[0..n) as STDOUT records at once, any number of times, and
 * then fcgi_reply sends the last parts (or none) and ends the request. Or
 * fcgi_stream_abandon leaves the answer without its end and has the
 * connection closed: nginx then cuts the client's answer short instead of
 * ending it, so a cut body never looks whole. Nothing may be written to
 * r->out around them. fcgi_stream_write returns 0, or -1 with errno set
 * when the socket failed or its send timeout ran out (then send nothing
 * more: FCGX_Finish_r closes the connection).
 */
int fcgi_stream_write(FCGX_Request *r, const struct fcgi_part *parts, int n);
void fcgi_stream_abandon(FCGX_Request *r);

/*
 * The framing alone, for tests and for the functions above: write the
 * records for request id req_id carrying parts[0..n) to fd, and then the
 * end records (fcgi_reply_fd) or not (fcgi_stream_fd). 0, or -1 with errno.
 */
int fcgi_reply_fd(int fd, int req_id, const struct fcgi_part *parts, int n);
int fcgi_stream_fd(int fd, int req_id, const struct fcgi_part *parts, int n);

#endif
