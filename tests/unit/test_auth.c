/* Unit tests of auth's pure parts: the login policy's address keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "resources/auth.h"

static void check(const char *addr, int rc, const char *want)
{
	char out[AUTH_ADDR_KEY_LEN];

	assert_int_equal(auth_addr_key(addr, out), rc);
	assert_string_equal(out, want);
}

static void test_ipv4_is_its_own_key(void **state)
{
	(void)state;
	check("127.0.0.1", 0, "addr:127.0.0.1");
	check("203.0.113.7", 0, "addr:203.0.113.7");
}

static void test_ipv6_counts_by_its_64(void **state)
{
	(void)state;
	/* every address of one /64 is one client: rotating the low bits buys nothing */
	check("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 0, "addr:2001:db8:1:2::/64");
	check("2001:db8:1:2::1", 0, "addr:2001:db8:1:2::/64");
	check("2001:DB8:1:2:0:0:0:FFFF", 0, "addr:2001:db8:1:2::/64");
	check("2001:db8:1:3::1", 0, "addr:2001:db8:1:3::/64");
	check("::1", 0, "addr:::/64");
}

static void test_ipv4_mapped_is_ipv4(void **state)
{
	(void)state;
	check("::ffff:198.51.100.4", 0, "addr:198.51.100.4");
}

static void test_not_an_address(void **state)
{
	(void)state;
	check(NULL, -1, "addr:unknown");
	check("", -1, "addr:unknown");
	check("localhost", -1, "addr:unknown");
	check("1.2.3.4 ", -1, "addr:unknown");
	check("1.2.3.4/24", -1, "addr:unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_is_its_own_key),
		cmocka_unit_test(test_ipv6_counts_by_its_64),
		cmocka_unit_test(test_ipv4_mapped_is_ipv4),
		cmocka_unit_test(test_not_an_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
