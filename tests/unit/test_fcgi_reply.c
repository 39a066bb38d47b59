/* Unit tests of fcgi_reply: the records it writes, read back from a real socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fastcgi.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "http/fcgi_reply.h"

struct drain {
	int fd;
	unsigned char *buf;
	size_t len, cap;
};

/* Read fd to its end (the writer shuts down its side). */
static void *drain_main(void *arg)
{
	struct drain *d = arg;
	ssize_t n;

	for (;;) {
		if (d->len == d->cap) {
			d->cap = d->cap ? d->cap * 2 : 4096;
			d->buf = realloc(d->buf, d->cap);
		}
		n = read(d->fd, d->buf + d->len, d->cap - d->len);
		if (n <= 0)
			break;
		d->len += (size_t)n;
	}
	return NULL;
}

/* A socket pair whose sv[1] a thread reads into d; write to sv[0], then drain_end. */
static void drain_begin(struct drain *d, int sv[2], pthread_t *t)
{
	memset(d, 0, sizeof(*d));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	d->fd = sv[1];
	assert_int_equal(pthread_create(t, NULL, drain_main, d), 0);
}

/* Everything written to sv[0] is in d. */
static void drain_end(int sv[2], pthread_t t)
{
	shutdown(sv[0], SHUT_WR);
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
}

/* Everything fcgi_reply_fd(parts) writes for request id. */
static struct drain reply_bytes(int id, const struct fcgi_part *parts, int n)
{
	struct drain d;
	pthread_t t;
	int sv[2];

	drain_begin(&d, sv, &t);
	assert_int_equal(fcgi_reply_fd(sv[0], id, parts, n), 0);
	drain_end(sv, t);
	return d;
}

/*
 * Parse d as the records of one answer for id: its STDOUT content into
 * *out (malloc'd), checking every header, the empty STDOUT record, and
 * that FCGI_END_REQUEST (complete) is the last thing sent.
 */
static size_t parse_answer(const struct drain *d, int id, unsigned char **out)
{
	size_t pos = 0, got = 0, len;
	int ended_stdout = 0;

	*out = malloc(d->len + 1);
	for (;;) {
		const unsigned char *h = d->buf + pos;

		assert_true(pos + FCGI_HEADER_LEN <= d->len);
		assert_int_equal(h[0], FCGI_VERSION_1);
		assert_int_equal((h[2] << 8) | h[3], id);
		len = (size_t)((h[4] << 8) | h[5]);
		assert_true(pos + FCGI_HEADER_LEN + len + h[6] <= d->len);
		if (h[1] == FCGI_END_REQUEST) {
			assert_true(ended_stdout);
			assert_int_equal(len, 8);
			assert_memory_equal(h + FCGI_HEADER_LEN, "\0\0\0\0\0\0\0\0", 8);
			assert_int_equal(pos + 2 * FCGI_HEADER_LEN, d->len);
			return got;
		}
		assert_int_equal(h[1], FCGI_STDOUT);
		assert_false(ended_stdout);
		if (len == 0)
			ended_stdout = 1;
		memcpy(*out + got, h + FCGI_HEADER_LEN, len);
		got += len;
		pos += FCGI_HEADER_LEN + len + h[6];
	}
}

static void test_small_answer_exact_bytes(void **state)
{
	static const unsigned char want[] = {
		1, FCGI_STDOUT, 0x01, 0x2c, 0, 3, 0, 0, 'a', 'b', 'c',
		1, FCGI_STDOUT, 0x01, 0x2c, 0, 2, 0, 0, 'd', 'e',
		1, FCGI_STDOUT, 0x01, 0x2c, 0, 0, 0, 0,
		1, FCGI_END_REQUEST, 0x01, 0x2c, 0, 8, 0, 0, 0, 0, 0, 0, FCGI_REQUEST_COMPLETE, 0, 0, 0,
	};
	struct fcgi_part parts[] = { { "abc", 3 }, { "de", 2 }, { "", 0 } };
	struct drain d = reply_bytes(300, parts, 3);

	(void)state;
	assert_int_equal(d.len, sizeof(want));
	assert_memory_equal(d.buf, want, sizeof(want));
	free(d.buf);
}

/* A body over many 64 KB records and more than one writev batch. */
static void test_large_answer_round_trips(void **state)
{
	size_t body_len = 40 * 65535 + 17, i, got;
	unsigned char *body = malloc(body_len), *out;
	const char head[] = "Status: 200 OK\r\nContent-Type: application/json\r\n\r\n";
	struct fcgi_part parts[2];
	struct drain d;

	(void)state;
	for (i = 0; i < body_len; i++)
		body[i] = (unsigned char)(i * 7 + i / 251);
	parts[0].data = head;
	parts[0].len = strlen(head);
	parts[1].data = body;
	parts[1].len = body_len;
	d = reply_bytes(1, parts, 2);
	got = parse_answer(&d, 1, &out);
	assert_int_equal(got, strlen(head) + body_len);
	assert_memory_equal(out, head, strlen(head));
	assert_memory_equal(out + strlen(head), body, body_len);
	free(out);
	free(d.buf);
	free(body);
}

/* A streamed answer: pieces, then the end, are the bytes of the same answer in one piece. */
static void test_stream_pieces_then_end(void **state)
{
	struct fcgi_part whole[] = { { "head\r\n\r\n", 8 }, { "abc", 3 }, { "defgh", 5 } };
	struct drain one = reply_bytes(7, whole, 3), pieces;
	unsigned char *a, *b;
	size_t alen, blen;
	pthread_t t;
	int sv[2];

	(void)state;
	drain_begin(&pieces, sv, &t);
	assert_int_equal(fcgi_stream_fd(sv[0], 7, &whole[0], 1), 0);
	assert_int_equal(fcgi_stream_fd(sv[0], 7, &whole[1], 1), 0);
	assert_int_equal(fcgi_reply_fd(sv[0], 7, &whole[2], 1), 0);
	drain_end(sv, t);
	alen = parse_answer(&one, 7, &a);
	blen = parse_answer(&pieces, 7, &b);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	free(a);
	free(b);
	free(one.buf);
	free(pieces.buf);
}

/* Without fcgi_reply_fd, nothing ends the request: only STDOUT records with content. */
static void test_stream_alone_has_no_end(void **state)
{
	static const unsigned char want[] = {
		1, FCGI_STDOUT, 0, 2, 0, 2, 0, 0, 'h', 'i',
	};
	struct drain d;
	struct fcgi_part part = { "hi", 2 };
	pthread_t t;
	int sv[2];

	(void)state;
	drain_begin(&d, sv, &t);
	assert_int_equal(fcgi_stream_fd(sv[0], 2, &part, 1), 0);
	assert_int_equal(fcgi_stream_fd(sv[0], 2, NULL, 0), 0);	/* nothing: writes nothing */
	drain_end(sv, t);
	assert_int_equal(d.len, sizeof(want));
	assert_memory_equal(d.buf, want, sizeof(want));
	free(d.buf);
}

/* A peer that never reads: the send timeout ends the write with an error. */
static void test_unread_socket_times_out(void **state)
{
	size_t body_len = 8 << 20;
	char *body = calloc(1, body_len);
	struct fcgi_part part = { body, body_len };
	struct timeval tv = { 0, 100000 };
	int sv[2], rc;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	rc = fcgi_reply_fd(sv[0], 1, &part, 1);
	assert_int_equal(rc, -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	close(sv[0]);
	close(sv[1]);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_answer_exact_bytes),
		cmocka_unit_test(test_large_answer_round_trips),
		cmocka_unit_test(test_unread_socket_times_out),
		cmocka_unit_test(test_stream_pieces_then_end),
		cmocka_unit_test(test_stream_alone_has_no_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
