/*
 * The cache's pure pieces: which Redis a connection talks to (its
 * identity, from INFO) and the key space that identity names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "cache.h"

#define RUN "run_id:5d0c1f6e0a2b7f4e9c3d8a1b6e0f2c4d7a9b3e5f\r\n"
#define REPL "master_replid:8b1e4c7a0d3f6b9e2c5a8d1f4b7e0a3c6d9f2b5e\r\n"

static void test_identity_of_a_master(void **state)
{
	char ident[CACHE_IDENT_LEN];

	(void)state;
	assert_int_equal(cache_identity_parse("# Server\r\nredis_version:7.0.15\r\n" RUN "tcp_port:6379\r\n",
					      "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n" REPL
					      "master_replid2:0000000000000000000000000000000000000000\r\n",
					      ident), 0);
	assert_string_equal(ident, "5d0c1f6e0a2b7f4e9c3d8a1b6e0f2c4d7a9b3e5f/"
				   "8b1e4c7a0d3f6b9e2c5a8d1f4b7e0a3c6d9f2b5e");
}

static void test_a_replica_or_a_bad_reply_has_no_identity(void **state)
{
	char ident[CACHE_IDENT_LEN];

	(void)state;
	/* READONLY after REPLICAOF: never trusted, never written to */
	assert_int_equal(cache_identity_parse(RUN, "role:slave\r\nmaster_host:127.0.0.1\r\n" REPL, ident), -1);
	assert_int_equal(cache_identity_parse("redis_version:7\r\n", "role:master\r\n" REPL, ident), -1);
	assert_int_equal(cache_identity_parse(RUN, "role:master\r\n", ident), -1);
	assert_int_equal(cache_identity_parse(RUN, NULL, ident), -1);
	assert_int_equal(cache_identity_parse("run_id:\r\n", "role:master\r\n" REPL, ident), -1);
	assert_int_equal(cache_identity_parse("run_id:abc\r\n", "role:master\r\n" REPL, ident), -1);
	/* a field name that only ends like one does not count */
	assert_int_equal(cache_identity_parse("xrun_id:5d0c1f6e0a2b7f4e9c3d\r\n", "role:master\r\n" REPL, ident), -1);
	/* a value too long for the buffer is refused, not cut */
	assert_int_equal(cache_identity_parse("run_id:0123456789012345678901234567890123456789012345678901234567\r\n",
					      "role:master\r\n" REPL, ident), -1);
}

static void test_each_start_and_promotion_has_its_own_key_space(void **state)
{
	char a[CACHE_PREFIX_LEN], b[CACHE_PREFIX_LEN], c[CACHE_PREFIX_LEN];

	(void)state;
	cache_key_prefix("5d0c1f6e0a2b7f4e9c3d8a1b6e0f2c4d7a9b3e5f/8b1e4c7a0d3f6b9e2c5a8d1f4b7e0a3c6d9f2b5e", a);
	assert_string_equal(a, "ps:5d0c1f6e0a2b8b1e4c7a0d3f:");
	/* restarted: a new run_id */
	cache_key_prefix("77aa1f6e0a2b7f4e9c3d8a1b6e0f2c4d7a9b3e5f/8b1e4c7a0d3f6b9e2c5a8d1f4b7e0a3c6d9f2b5e", b);
	/* promoted (or REPLICAOF NO ONE): a new replication id */
	cache_key_prefix("5d0c1f6e0a2b7f4e9c3d8a1b6e0f2c4d7a9b3e5f/11111c7a0d3f6b9e2c5a8d1f4b7e0a3c6d9f2b5e", c);
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_not_equal(b, c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_of_a_master),
		cmocka_unit_test(test_a_replica_or_a_bad_reply_has_no_identity),
		cmocka_unit_test(test_each_start_and_promotion_has_its_own_key_space),
	};

	return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
