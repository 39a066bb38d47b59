/*
 * Unit tests of fcgi_deadline: its arithmetic, and libfcgi itself reading
 * and closing over a socket pair whose other end trickles bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "http/fcgi_deadline.h"

/* Bytes of FastCGI records, built up by add_record. */
struct wire {
	unsigned char b[4096];
	size_t len;
};

static void add_record(struct wire *w, int type, const void *content, size_t len)
{
	unsigned char h[FCGI_HEADER_LEN] = { FCGI_VERSION_1, (unsigned char)type, 0, 1,
					      (unsigned char)(len >> 8), (unsigned char)len, 0, 0 };

	assert_true(w->len + sizeof(h) + len <= sizeof(w->b));
	memcpy(w->b + w->len, h, sizeof(h));
	memcpy(w->b + w->len + sizeof(h), content, len);
	w->len += sizeof(h) + len;
}

/* A request as nginx sends it: begin (keep the connection), parameters, body_len body bytes. */
static struct wire request_with_body(size_t body_len)
{
	static const unsigned char begin[8] = { 0, FCGI_RESPONDER, FCGI_KEEP_CONN };
	struct wire w = { .len = 0 };
	unsigned char params[256], body[512];
	size_t n = 0;
	int i;

	for (i = 0; i < 8; i++) {	/* eight NAMEi=value-of-some-length pairs */
		params[n++] = 5;
		params[n++] = 20;
		memcpy(params + n, "NAME", 4);
		params[n + 4] = (unsigned char)('0' + i);
		memset(params + n + 5, 'v', 20);
		n += 25;
	}
	add_record(&w, FCGI_BEGIN_REQUEST, begin, sizeof(begin));
	add_record(&w, FCGI_PARAMS, params, n);
	add_record(&w, FCGI_PARAMS, "", 0);
	assert_true(body_len <= sizeof(body));
	memset(body, 'b', body_len);
	if (body_len > 0)
		add_record(&w, FCGI_STDIN, body, body_len);
	add_record(&w, FCGI_STDIN, "", 0);
	return w;
}

/*
 * The far end of a socket pair: sends bytes[sent..len) one at a time,
 * every interval seconds. The tests keep it and its bytes in static
 * storage: a failed assertion leaves a test while its thread still runs.
 */
struct trickler {
	pthread_t thread;
	int fd;
	const unsigned char *bytes;
	size_t len, sent;
	double interval;
	atomic_int stop;
};

static void *trickle_main(void *arg)
{
	struct trickler *t = arg;
	struct timespec ts = { 0, (long)(t->interval * 1e9) };

	while (t->sent < t->len && !atomic_load(&t->stop)) {
		if (send(t->fd, t->bytes + t->sent, 1, MSG_NOSIGNAL) != 1)
			break;	/* the reader closed */
		t->sent++;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void trickle_start(struct trickler *t, int fd, const void *bytes, size_t len, double interval)
{
	t->fd = fd;
	t->bytes = bytes;
	t->len = len;
	t->sent = 0;
	t->interval = interval;
	atomic_store(&t->stop, 0);
	assert_int_equal(pthread_create(&t->thread, NULL, trickle_main, t), 0);
}

static void trickle_stop(struct trickler *t)
{
	atomic_store(&t->stop, 1);
	pthread_join(t->thread, NULL);
}

/* A request on sv[0] as server.c serves one: the connection is open, never accepted. */
static int nolisten = -1;

static void serve_on(FCGX_Request *r, int fd)
{
	assert_int_equal(FCGX_InitRequest(r, nolisten, 0), 0);
	r->ipcFd = fd;
	r->keepConnection = 1;
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(FCGX_Init(), 0);
	nolisten = socket(AF_UNIX, SOCK_STREAM, 0);
	return nolisten < 0;
}

static int teardown(void **state)
{
	(void)state;
	close(nolisten);
	return 0;
}

static void test_wait_ms(void **state)
{
	(void)state;
	assert_int_equal(fcgi_deadline_wait_ms(101.5, 100.0), 1500);
	assert_int_equal(fcgi_deadline_wait_ms(100.0001, 100.0), 1);	/* rounded up, never 0 early */
	assert_int_equal(fcgi_deadline_wait_ms(100.0015, 100.0), 2);
	assert_int_equal(fcgi_deadline_wait_ms(100.0, 100.0), 0);	/* reached */
	assert_int_equal(fcgi_deadline_wait_ms(99.0, 100.0), 0);	/* passed */
	assert_int_equal(fcgi_deadline_wait_ms(1e12, 0.0), INT_MAX);
	assert_int_equal(fcgi_deadline_wait_ms(NAN, 0.0), 0);
}

/* The build's libfcgi really calls our OS_Read and OS_IpcClose (the server checks this at start). */
static void test_libfcgi_reads_through_us(void **state)
{
	char err[256] = "";

	(void)state;
	assert_int_equal(fcgi_deadline_check(err, sizeof(err)), 0);
}

/* Parameters a byte every 20 ms (4 s in all): the read fails at the 0.3 s deadline, without lingering. */
static void test_trickled_parameters_end_at_the_deadline(void **state)
{
	static struct wire w;
	static struct trickler t;
	FCGX_Request r;
	char peer[64] = "";
	int sv[2], rc;
	double t0, took;

	(void)state;
	w = request_with_body(0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	trickle_start(&t, sv[1], w.b, w.len, 0.02);
	serve_on(&r, sv[0]);
	t0 = now_mono();
	fcgi_deadline_arm(t0 + 0.3);
	rc = FCGX_Accept_r(&r);	/* libfcgi closes sv[0] when it fails */
	took = now_mono() - t0;
	assert_int_not_equal(rc, 0);
	assert_true(took >= 0.29 && took < 3.0);	/* the whole trickle takes 5 s */
	assert_int_equal(fcgi_deadline_disarm(peer, sizeof(peer)), 1);
	assert_true(strncmp(peer, "unix peer pid ", 14) == 0);
	trickle_stop(&t);
	assert_true(t.sent < w.len);
	FCGX_Free(&r, 0);
	close(sv[1]);
}

/* The parameters at once, the body a byte every 20 ms: the body's read fails at the deadline. */
static void test_trickled_body_ends_at_the_deadline(void **state)
{
	static struct wire w;
	static struct trickler t;
	size_t head;
	FCGX_Request r;
	char body[200], peer[64];
	int sv[2], got;
	double t0;

	(void)state;
	w = request_with_body(200);
	head = w.len - 200 - 2 * FCGI_HEADER_LEN;	/* up to the body's record */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], w.b, head), (ssize_t)head);
	trickle_start(&t, sv[1], w.b + head, w.len - head, 0.02);
	serve_on(&r, sv[0]);
	t0 = now_mono();
	fcgi_deadline_arm(t0 + 0.3);
	assert_int_equal(FCGX_Accept_r(&r), 0);
	got = FCGX_GetStr(body, sizeof(body), r.in);
	assert_true(got < (int)sizeof(body));
	assert_int_equal(FCGX_GetError(r.in), ETIMEDOUT);
	assert_int_equal(fcgi_deadline_expired(), 1);
	FCGX_Finish_r(&r);	/* closes sv[0] at once: no lingering after the deadline */
	assert_true(now_mono() - t0 < 3.0);	/* the whole trickle takes 4 s */
	assert_int_equal(fcgi_deadline_disarm(peer, sizeof(peer)), 1);
	assert_int_equal(fcgi_deadline_expired(), 0);
	trickle_stop(&t);
	close(sv[1]);
}

/* A request that arrives whole is read whole; nothing expires. */
static void test_whole_request_is_read(void **state)
{
	struct wire w = request_with_body(100);
	FCGX_Request r;
	char body[200], peer[64];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], w.b, w.len), (ssize_t)w.len);
	serve_on(&r, sv[0]);
	fcgi_deadline_arm(now_mono() + 5);
	assert_int_equal(FCGX_Accept_r(&r), 0);
	assert_string_equal(FCGX_GetParam("NAME3", r.envp), "vvvvvvvvvvvvvvvvvvvv");
	assert_int_equal(FCGX_GetStr(body, sizeof(body), r.in), 100);
	assert_int_equal(FCGX_GetError(r.in), 0);
	assert_int_equal(fcgi_deadline_disarm(peer, sizeof(peer)), 0);
	FCGX_Finish_r(&r);	/* kept: not closed */
	assert_int_equal(r.ipcFd, sv[0]);
	close(sv[0]);
	close(sv[1]);
}

/* Bytes waiting do not extend the deadline: past it, no read starts (a fast endless stream ends too). */
static void test_no_read_past_the_deadline(void **state)
{
	struct wire w = request_with_body(100);
	FCGX_Request r;
	char peer[64];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], w.b, w.len), (ssize_t)w.len);
	serve_on(&r, sv[0]);
	fcgi_deadline_arm(now_mono() - 0.001);
	assert_int_not_equal(FCGX_Accept_r(&r), 0);
	assert_int_equal(fcgi_deadline_disarm(peer, sizeof(peer)), 1);
	FCGX_Free(&r, 0);
	close(sv[1]);
}

/*
 * A connection closed after its answer while the peer trickles bytes and
 * never closes: libfcgi's own close read on for as long as they came;
 * ours gives up after FCGI_DEADLINE_LINGER.
 */
static void test_close_lingers_a_bounded_time(void **state)
{
	static unsigned char junk[400];
	static struct trickler t;
	struct wire w = request_with_body(0);
	FCGX_Request r;
	int sv[2];
	double t0, took;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], w.b, w.len), (ssize_t)w.len);
	serve_on(&r, sv[0]);
	assert_int_equal(FCGX_Accept_r(&r), 0);
	trickle_start(&t, sv[1], junk, sizeof(junk), 0.02);	/* 8 s of it */
	r.keepConnection = 0;
	t0 = now_mono();
	FCGX_Finish_r(&r);
	took = now_mono() - t0;
	assert_true(took >= FCGI_DEADLINE_LINGER - 0.1 && took < FCGI_DEADLINE_LINGER + 2.5);
	trickle_stop(&t);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wait_ms),
		cmocka_unit_test(test_libfcgi_reads_through_us),
		cmocka_unit_test(test_trickled_parameters_end_at_the_deadline),
		cmocka_unit_test(test_trickled_body_ends_at_the_deadline),
		cmocka_unit_test(test_whole_request_is_read),
		cmocka_unit_test(test_no_read_past_the_deadline),
		cmocka_unit_test(test_close_lingers_a_bounded_time),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
