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

#include "cache/cache.h"
#include "cache/cache_internal.h"

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

/* What INCR and ZADD write, read back: anything else is a bad value. */
static void test_generations_and_positions_read_back(void **state)
{
	uint64_t lsn = 0;

	(void)state;
	assert_true(cache_gen_valid("0", 1));
	assert_true(cache_gen_valid("12", 2));
	assert_true(cache_gen_valid("99999999999999", 14));
	assert_false(cache_gen_valid("100000000000000", 15));	/* too long for a page key's gen[] */
	assert_false(cache_gen_valid("", 0));
	assert_false(cache_gen_valid("012", 3));
	assert_false(cache_gen_valid("-5", 2));
	assert_false(cache_gen_valid("+5", 2));
	assert_false(cache_gen_valid("1e3", 3));
	assert_false(cache_gen_valid("12\r\nX", 5));
	assert_false(cache_gen_valid("1 ", 2));
	assert_false(cache_gen_valid("1\0", 2));
	assert_false(cache_gen_valid("12", 3));	/* reads no further than its length... */
	assert_true(cache_gen_valid("12x", 2));		/* ...and only that far */

	assert_int_equal(cache_wal_parse("123456", 6, &lsn), 0);
	assert_int_equal(lsn, 123456);
	assert_int_equal(cache_wal_parse("9007199254740991", 16, &lsn), 0);
	assert_int_equal(lsn, 9007199254740991ULL);
	assert_int_equal(cache_wal_parse("9007199254740992", 16, &lsn), -1);	/* beyond a double's integers */
	assert_int_equal(cache_wal_parse("0", 1, &lsn), -1);
	assert_int_equal(cache_wal_parse("-5", 2, &lsn), -1);
	assert_int_equal(cache_wal_parse("inf", 3, &lsn), -1);
	assert_int_equal(cache_wal_parse("nan", 3, &lsn), -1);
	assert_int_equal(cache_wal_parse("1.5", 3, &lsn), -1);
	assert_int_equal(cache_wal_parse("12abc", 5, &lsn), -1);
	assert_int_equal(cache_wal_parse("", 0, &lsn), -1);
	assert_int_equal(cache_wal_parse("12\0", 3, &lsn), -1);
	assert_int_equal(cache_wal_parse("123456789012345678901234567890123", 33, &lsn), -1);
}

/* An identity names keys and rows: letters and digits only. */
static void test_an_identity_with_other_bytes_is_refused(void **state)
{
	char ident[CACHE_IDENT_LEN];

	(void)state;
	assert_int_equal(cache_identity_parse("run_id:5d0c1f6e0a2b 7f4e9c3d\r\n", "role:master\r\n" REPL, ident), -1);
	assert_int_equal(cache_identity_parse("run_id:5d0c1f6e0a2b:7f4e9c3d\r\n", "role:master\r\n" REPL, ident), -1);
	assert_int_equal(cache_identity_parse(RUN, "role:master\r\nmaster_replid:8b1e4c7a0d3f\x01" "b9e2c5a\r\n", ident), -1);
}

/* A reply made here, as hiredis would hand it over: strings (NULL: nil). */
static redisReply *reply(int type, int n, const char *a, const char *b)
{
	static redisReply top, el[2];
	static redisReply *els[2] = { &el[0], &el[1] };
	const char *v[2] = { a, b };
	int i;

	memset(&top, 0, sizeof(top));
	top.type = type;
	top.elements = (size_t)n;
	top.element = els;
	for (i = 0; i < 2; i++) {
		memset(&el[i], 0, sizeof(el[i]));
		el[i].type = v[i] ? REDIS_REPLY_STRING : REDIS_REPLY_NIL;
		el[i].str = (char *)v[i];
		el[i].len = v[i] ? strlen(v[i]) : 0;
	}
	return &top;
}

/* SENTINEL get-master-addr-by-name: read from Redis, so checked like any input. */
static void test_sentinel_replies(void **state)
{
	static const struct { const char *host, *port; } bad[] = {
		{ "", "6379" }, { "10.0.0.1", "" }, { "10.0.0.1", "0" }, { "10.0.0.1", "65536" },
		{ "10.0.0.1", "63790000" }, { "10.0.0.1", "-1" }, { "10.0.0.1", "6379x" },
		{ "evil host", "6379" }, { "a\r\nb", "6379" }, { "10.0.0.1", NULL }, { NULL, "6379" },
	};
	char host[CACHE_HOST_MAX], longest[CACHE_HOST_MAX + 1];
	int port = 0;
	size_t i;

	(void)state;
	assert_int_equal(cache_sentinel_reply(reply(REDIS_REPLY_ARRAY, 2, "127.0.0.1", "56380"),
					      host, &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 56380);
	assert_int_equal(cache_sentinel_reply(reply(REDIS_REPLY_ARRAY, 2, "fe80::1", "6379"),
					      host, &port), 0);
	assert_string_equal(host, "fe80::1");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cache_sentinel_reply(reply(REDIS_REPLY_ARRAY, 2, bad[i].host, bad[i].port),
					 host, &port) != -1)
			fail_msg("taken: %s %s", bad[i].host ? bad[i].host : "(nil)",
				 bad[i].port ? bad[i].port : "(nil)");
	assert_int_equal(cache_sentinel_reply(NULL, host, &port), -1);
	assert_int_equal(cache_sentinel_reply(reply(REDIS_REPLY_NIL, 0, NULL, NULL), host, &port), -1);
	assert_int_equal(cache_sentinel_reply(reply(REDIS_REPLY_ARRAY, 1, "h", "1"), host, &port), -1);
	memset(longest, 'a', CACHE_HOST_MAX);
	longest[CACHE_HOST_MAX] = '\0';
	assert_int_equal(cache_sentinel_reply(reply(REDIS_REPLY_ARRAY, 2, longest, "1"), host, &port),
			 -1);
	longest[CACHE_HOST_MAX - 1] = '\0';
	assert_int_equal(cache_sentinel_reply(reply(REDIS_REPLY_ARRAY, 2, longest, "1"), host, &port),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_of_a_master),
		cmocka_unit_test(test_sentinel_replies),
		cmocka_unit_test(test_a_replica_or_a_bad_reply_has_no_identity),
		cmocka_unit_test(test_each_start_and_promotion_has_its_own_key_space),
		cmocka_unit_test(test_generations_and_positions_read_back),
		cmocka_unit_test(test_an_identity_with_other_bytes_is_refused),
	};

	return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
