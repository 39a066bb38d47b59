/* Unit tests of the replicas module's pure parts: LSNs, the cookie, lag, and the URL list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/config.h"
#include "db/replicas.h"

static void test_lsn_parse(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(replicas_lsn_parse("0/0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(replicas_lsn_parse("0/3000148", &v), 0);
	assert_true(v == 0x3000148);
	assert_int_equal(replicas_lsn_parse("16/B374D848", &v), 0);
	assert_true(v == ((uint64_t)0x16 << 32 | 0xB374D848u));
	assert_int_equal(replicas_lsn_parse("FFFFFFFF/FFFFFFFF", &v), 0);
	assert_true(v == UINT64_MAX);
	/* Order follows the numbers, not the text. */
	{
		uint64_t a, b;

		assert_int_equal(replicas_lsn_parse("1/0", &a), 0);
		assert_int_equal(replicas_lsn_parse("0/FFFFFFFF", &b), 0);
		assert_true(a > b);
	}
	assert_int_equal(replicas_lsn_parse("", &v), -1);
	assert_int_equal(replicas_lsn_parse("0", &v), -1);
	assert_int_equal(replicas_lsn_parse("0/", &v), -1);
	assert_int_equal(replicas_lsn_parse("/1", &v), -1);
	assert_int_equal(replicas_lsn_parse("0/1x", &v), -1);
	assert_int_equal(replicas_lsn_parse(" 0/1", &v), -1);
	assert_int_equal(replicas_lsn_parse("0/-1", &v), -1);
	assert_int_equal(replicas_lsn_parse("100000000/0", &v), -1);
	assert_int_equal(replicas_lsn_parse("0/100000000", &v), -1);
	assert_int_equal(replicas_lsn_parse(NULL, &v), -1);
}

static void test_cookie(void **state)
{
	unsigned char token[32], other[32];
	char value[REPLICAS_COOKIE_LEN], bad[REPLICAS_COOKIE_LEN];
	uint64_t lsn = 0;

	(void)state;
	memset(token, 7, sizeof(token));
	memset(other, 8, sizeof(other));
	replicas_cookie_make(token, 0x16B374D848ULL, value);
	assert_int_equal(strlen(value), REPLICAS_COOKIE_LEN - 1);
	assert_int_equal(replicas_cookie_read(token, value, &lsn), 0);
	assert_true(lsn == 0x16B374D848ULL);
	/* Another session's token: refused. */
	assert_int_equal(replicas_cookie_read(other, value, &lsn), -1);
	/* A position changed by the client: refused. */
	memcpy(bad, value, sizeof(bad));
	bad[15] = bad[15] == '0' ? '1' : '0';
	assert_int_equal(replicas_cookie_read(token, bad, &lsn), -1);
	/* A MAC changed: refused. */
	memcpy(bad, value, sizeof(bad));
	bad[30] = bad[30] == 'a' ? 'b' : 'a';
	assert_int_equal(replicas_cookie_read(token, bad, &lsn), -1);
	/* Cut short, too long, garbage. */
	assert_int_equal(replicas_cookie_read(token, "", &lsn), -1);
	value[REPLICAS_COOKIE_LEN - 2] = '\0';
	assert_int_equal(replicas_cookie_read(token, value, &lsn), -1);
	assert_int_equal(replicas_cookie_read(token, "zz", &lsn), -1);
	assert_int_equal(replicas_cookie_read(token, NULL, &lsn), -1);
}

static void test_lag(void **state)
{
	uint64_t lsn[4] = { 100, 200, 200, 300 };
	double at[4] = { 10.0, 11.0, 12.0, 13.0 };

	(void)state;
	/* Caught up with the newest sample: no lag, whatever the time. */
	assert_true(replicas_lag_ms(lsn, at, 4, 300, 13.2) == 0.0);
	assert_true(replicas_lag_ms(lsn, at, 4, 400, 13.2) == 0.0);
	/* Behind the newest only: lag since that sample. */
	assert_true(replicas_lag_ms(lsn, at, 4, 250, 13.5) > 499.0);
	assert_true(replicas_lag_ms(lsn, at, 4, 250, 13.5) < 501.0);
	/* Replayed 100, not 200: the primary was at 200 since 11.0. */
	assert_true(replicas_lag_ms(lsn, at, 4, 150, 13.0) > 1999.0);
	assert_true(replicas_lag_ms(lsn, at, 4, 150, 13.0) < 2001.0);
	/* Behind every sample: at least since the oldest. */
	assert_true(replicas_lag_ms(lsn, at, 4, 50, 14.0) >= 4000.0 - 0.001);
	/* One sample. */
	assert_true(replicas_lag_ms(lsn, at, 1, 100, 20.0) == 0.0);
	assert_true(replicas_lag_ms(lsn, at, 1, 99, 20.0) > 9999.0);
}

static void test_replica_urls(void **state)
{
	char err[512];

	(void)state;
	assert_int_equal(config_check_replica_urls("", err, sizeof(err)), 0);
	assert_int_equal(config_check_replica_urls("postgresql://u:p@127.0.0.1:5433/db", err, sizeof(err)), 1);
	assert_int_equal(config_check_replica_urls("postgres://h1/db, postgresql://h2:5434/db", err,
						   sizeof(err)), 2);
	err[0] = '\0';
	assert_int_equal(config_check_replica_urls("postgres://h1/db,mysql://h2/db", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "DATABASE_REPLICA_URLS"));
	assert_non_null(strstr(err, "entry 2"));
	assert_int_equal(config_check_replica_urls("postgres://h1/db,", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "entry 2"));
	assert_int_equal(config_check_replica_urls(",postgres://h1/db", err, sizeof(err)), -1);
	assert_int_equal(config_check_replica_urls("postgres://u:secret@h1:99999/db", err, sizeof(err)), -1);
	assert_null(strstr(err, "secret"));
	assert_int_equal(config_check_replica_urls(
		"postgres://a/d,postgres://a/d,postgres://a/d,postgres://a/d,postgres://a/d,"
		"postgres://a/d,postgres://a/d,postgres://a/d,postgres://a/d", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "at most"));
}

static void test_config_defaults(void **state)
{
	char *env[] = { NULL };
	char *bad[] = { "DB_REPLICA_MAX_LAG_MS=0", NULL };
	char *good[] = { "DATABASE_REPLICA_URLS=postgres://r1/db", "DB_REPLICA_MAX_LAG_MS=250",
			 "DB_REPLICAS_SYNCHRONOUS=1", NULL };
	char *badurl[] = { "DATABASE_REPLICA_URLS=http://r1/db", NULL };
	char *badsync[] = { "DB_REPLICAS_SYNCHRONOUS=yes", NULL };
	struct config cfg;
	char err[512];

	(void)state;
	assert_int_equal(config_load(&cfg, env, err, sizeof(err)), 0);
	assert_string_equal(cfg.replica_urls, "");
	assert_int_equal(cfg.replica_max_lag_ms, 1000);
	assert_int_equal(cfg.replicas_synchronous, 0);
	config_free(&cfg);
	assert_int_equal(config_load(&cfg, good, err, sizeof(err)), 0);
	assert_string_equal(cfg.replica_urls, "postgres://r1/db");
	assert_int_equal(cfg.replica_max_lag_ms, 250);
	assert_int_equal(cfg.replicas_synchronous, 1);
	config_free(&cfg);
	assert_int_equal(config_load(&cfg, bad, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "DB_REPLICA_MAX_LAG_MS"));
	assert_int_equal(config_load(&cfg, badurl, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "DATABASE_REPLICA_URLS"));
	assert_int_equal(config_load(&cfg, badsync, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "DB_REPLICAS_SYNCHRONOUS"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lsn_parse),
		cmocka_unit_test(test_cookie),
		cmocka_unit_test(test_lag),
		cmocka_unit_test(test_replica_urls),
		cmocka_unit_test(test_config_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
