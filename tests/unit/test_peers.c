/* Unit tests of the peers module: FCGI_WEB_SERVER_ADDRS on real sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/peers.h"

/* An accepted TCP connection from src to a listener on dst (family af). */
static int accepted_from(int af, const char *dst, const char *src, int *client)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int l = socket(af, SOCK_STREAM, 0), fd;

	assert_true(l >= 0);
	memset(&ss, 0, sizeof(ss));
	if (af == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		inet_pton(AF_INET, dst, &in->sin_addr);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, dst, &in6->sin6_addr);
		len = sizeof(*in6);
	}
	if (bind(l, (struct sockaddr *)&ss, len) != 0) {
		close(l);
		return -1;	/* no IPv6 here */
	}
	assert_int_equal(listen(l, 4), 0);
	len = sizeof(ss);
	assert_int_equal(getsockname(l, (struct sockaddr *)&ss, &len), 0);
	*client = socket(af, SOCK_STREAM, 0);
	if (src) {
		struct sockaddr_in in;

		memset(&in, 0, sizeof(in));
		in.sin_family = AF_INET;
		inet_pton(AF_INET, src, &in.sin_addr);
		assert_int_equal(bind(*client, (struct sockaddr *)&in, sizeof(in)), 0);
	}
	assert_int_equal(connect(*client, (struct sockaddr *)&ss, len), 0);
	fd = accept(l, NULL, NULL);
	assert_true(fd >= 0);
	close(l);
	return fd;
}

static void test_ipv4_list(void **state)
{
	int client, fd = accepted_from(AF_INET, "127.0.0.1", "127.0.0.3", &client);

	(void)state;
	peers_setup("*");
	assert_int_equal(peers_allowed(fd), 1);		/* "*": anyone */
	peers_setup("127.0.0.2");
	assert_int_equal(peers_allowed(fd), 0);
	peers_setup("127.0.0.2, 127.0.0.3");
	assert_int_equal(peers_allowed(fd), 1);
	peers_setup("::1");
	assert_int_equal(peers_allowed(fd), 0);
	close(fd);
	close(client);
}

static void test_ipv6_is_checked_too(void **state)
{
	int client, fd = accepted_from(AF_INET6, "::1", NULL, &client);

	(void)state;
	if (fd < 0)
		skip();
	peers_setup("127.0.0.1");	/* libfcgi itself would let any IPv6 peer in */
	assert_int_equal(peers_allowed(fd), 0);
	peers_setup("127.0.0.1,::1");
	assert_int_equal(peers_allowed(fd), 1);
	close(fd);
	close(client);
}

static void test_names_resolve(void **state)
{
	int c1, c3, from1 = accepted_from(AF_INET, "127.0.0.1", "127.0.0.1", &c1);
	int from3 = accepted_from(AF_INET, "127.0.0.1", "127.0.0.3", &c3);

	(void)state;
	peers_setup("localhost");	/* /etc/hosts: 127.0.0.1 (and ::1) */
	assert_int_equal(peers_allowed(from1), 1);
	assert_int_equal(peers_allowed(from3), 0);
	close(from1);
	close(from3);
	close(c1);
	close(c3);
}

/* Fail closed: no list is this machine's loopback (127.0.0.1, ::1), not anyone. */
static void test_empty_list_is_loopback_only(void **state)
{
	int c1, c3, c6, from1 = accepted_from(AF_INET, "127.0.0.1", "127.0.0.1", &c1);
	int from3 = accepted_from(AF_INET, "127.0.0.1", "127.0.0.3", &c3);
	int from6 = accepted_from(AF_INET6, "::1", NULL, &c6);

	(void)state;
	peers_setup("");
	assert_int_equal(peers_allowed(from1), 1);
	assert_int_equal(peers_allowed(from3), 0);
	if (from6 >= 0)
		assert_int_equal(peers_allowed(from6), 1);
	peers_setup(NULL);
	assert_int_equal(peers_allowed(from1), 1);
	assert_int_equal(peers_allowed(from3), 0);
	peers_setup("*");
	assert_int_equal(peers_allowed(from3), 1);
	assert_int_equal(peers_any("*"), 1);
	assert_int_equal(peers_any(""), 0);
	assert_int_equal(peers_any(NULL), 0);
	assert_int_equal(peers_any("127.0.0.1"), 0);
	close(from1);
	close(from3);
	close(c1);
	close(c3);
	if (from6 >= 0) {
		close(from6);
		close(c6);
	}
	peers_reset();
}

static void test_unix_sockets_pass(void **state)
{
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	peers_setup("127.0.0.2");
	assert_int_equal(peers_allowed(sv[0]), 1);	/* the file's mode guards it */
	assert_int_equal(peers_allowed(-1), 0);		/* no peer: refused */
	close(sv[0]);
	close(sv[1]);
	peers_reset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_list),
		cmocka_unit_test(test_ipv6_is_checked_too),
		cmocka_unit_test(test_names_resolve),
		cmocka_unit_test(test_empty_list_is_loopback_only),
		cmocka_unit_test(test_unix_sockets_pass),
	};

	return cmocka_run_group_tests_name("peers", tests, NULL, NULL);
}
