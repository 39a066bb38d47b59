/* Unit tests of the config module: defaults, profiles, bad values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "base/config.h"

static char err[512];

static int load(struct config *cfg, char **env)
{
	err[0] = '\0';
	return config_load(cfg, env, err, sizeof(err));
}

static void test_development_defaults(void **state)
{
	char *env[] = { NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, env), 0);
	assert_int_equal(cfg.env, APP_ENV_DEVELOPMENT);
	assert_int_equal(cfg.pool_size, 3);
	assert_int_equal(cfg.max_overflow, 5);
	assert_true(cfg.pool_timeout == 30.0);
	assert_int_equal(cfg.pool_recycle, 3600);
	assert_int_equal(cfg.pool_pre_ping, 0);
	assert_int_equal(cfg.connect_timeout, 10);
	assert_int_equal(cfg.statement_timeout_ms, 5000);
	assert_string_equal(cfg.application_name, "paint_studio");
	assert_null(cfg.sslmode);
	assert_int_equal(cfg.cache_ttl, 300);
	assert_int_equal(cfg.workers, 16);
	assert_int_equal(cfg.request_timeout, 30);
	assert_int_equal(cfg.idle_timeout, 75);
	assert_int_equal(cfg.log_level, LOG_INFO);
	assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
	assert_string_equal(cfg.redis.host, "127.0.0.1");
	assert_int_equal(cfg.redis.port, 56379);
	config_free(&cfg);
}

static void test_production_profile(void **state)
{
	char *env[] = { "APP_ENV=production", NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, env), 0);
	assert_int_equal(cfg.env, APP_ENV_PRODUCTION);
	assert_int_equal(cfg.pool_size, 5);
	assert_int_equal(cfg.max_overflow, 10);
	assert_true(cfg.pool_timeout == 20.0);
	assert_int_equal(cfg.pool_recycle, 300);
	assert_int_equal(cfg.pool_pre_ping, 1);
	assert_string_equal(cfg.sslmode, "require");
	config_free(&cfg);
}

static void test_railway_implies_production(void **state)
{
	char *env[] = { "RAILWAY_ENVIRONMENT=staging", NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, env), 0);
	assert_int_equal(cfg.env, APP_ENV_PRODUCTION);
	config_free(&cfg);
}

static void test_explicit_wins_over_profile(void **state)
{
	char *env[] = { "APP_ENV=production", "DB_POOL_SIZE=7", "DB_POOL_PRE_PING=0",
			"DB_MAX_OVERFLOW=0", NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, env), 0);
	assert_int_equal(cfg.pool_size, 7);
	assert_int_equal(cfg.pool_pre_ping, 0);
	assert_int_equal(cfg.max_overflow, 0);
	assert_int_equal(cfg.pool_recycle, 300);
	config_free(&cfg);
}

static void test_both_url_schemes(void **state)
{
	char *a[] = { "DATABASE_URL=postgres://u:p@db.example:5432/x", NULL };
	char *b[] = { "DATABASE_URL=postgresql://u@[::1]:5432/x?sslmode=disable", NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, a), 0);
	config_free(&cfg);
	assert_int_equal(load(&cfg, b), 0);
	config_free(&cfg);
}

/* A failover set: several hosts, as a URL or in libpq's key=value form. */
static void test_multi_host_database_url(void **state)
{
	static const char *const good[] = {
		"DATABASE_URL=postgresql://u:p@10.0.0.1:5432,10.0.0.2:5433/x?target_session_attrs=read-write",
		"DATABASE_URL=host=10.0.0.1,10.0.0.2 port=5432,5433 dbname=x user=u "
		"target_session_attrs=read-write",
		"DATABASE_URL=hostaddr=127.0.0.1 port=5432 dbname=x",
	};
	static const char *const bad[] = {
		"DATABASE_URL=dbname=x user=u",				/* no host */
		"DATABASE_URL=host=a,b port=5432,99999 dbname=x",	/* a bad port */
		"DATABASE_URL=host=a 'unterminated",			/* libpq cannot parse it */
		"DATABASE_URL=just words",				/* neither form */
	};
	struct config cfg;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *env[] = { (char *)good[i], NULL };

		if (load(&cfg, env) != 0)
			fail_msg("refused: %s (%s)", good[i], err);
		config_free(&cfg);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *env[] = { (char *)bad[i], NULL };

		if (load(&cfg, env) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(err, "DATABASE_URL is invalid"));
	}
}

/* Each bad value must fail and name its variable in one line. */
static void test_bad_values_name_the_variable(void **state)
{
	static const struct { const char *assign, *name; } bad[] = {
		{ "DB_POOL_SIZE=abc", "DB_POOL_SIZE" },
		{ "DB_POOL_SIZE=0", "DB_POOL_SIZE" },
		{ "DB_POOL_SIZE=", NULL },	/* empty means default: accepted */
		{ "WORKERS=0", "WORKERS" },
		{ "WORKERS=16x", "WORKERS" },
		{ "WORKERS_ACTIVE=-1", "WORKERS_ACTIVE" },
		{ "WORKERS_ACTIVE=two", "WORKERS_ACTIVE" },
		{ "WORKERS_ACTIVE=", NULL },
		{ "DB_POOL_TIMEOUT=-1", "DB_POOL_TIMEOUT" },
		{ "DB_POOL_RECYCLE=-5", "DB_POOL_RECYCLE" },
		{ "DB_MAX_OVERFLOW=-1", "DB_MAX_OVERFLOW" },
		{ "DB_POOL_PRE_PING=2", "DB_POOL_PRE_PING" },
		{ "DB_STATEMENT_TIMEOUT_MS=99999999999", "DB_STATEMENT_TIMEOUT_MS" },
		{ "CACHE_TTL=1.5", "CACHE_TTL" },
		{ "APP_ENV=staging", "APP_ENV" },
		{ "LOG_LEVEL=loud", "LOG_LEVEL" },
		{ "LOG_FORMAT=xml", "LOG_FORMAT" },
		{ "DATABASE_URL=mysql://x", "DATABASE_URL" },
		{ "DATABASE_URL=postgres://u@h:99999999/x", "DATABASE_URL" },
		{ "REDIS_URL=http://x", "REDIS_URL" },
		{ "REDIS_URL=redis://h:0", "REDIS_URL" },
		{ "REDIS_SENTINELS=h", "REDIS_SENTINELS" },
		{ "REDIS_SENTINELS=h:0", "REDIS_SENTINELS" },
		{ "REDIS_SENTINELS=:26379", "REDIS_SENTINELS" },
		{ "REDIS_SENTINELS=a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9", "REDIS_SENTINELS" },
		{ "REDIS_SENTINELS=h o:1", "REDIS_SENTINELS" },
		{ "FCGI_LISTEN=nowhere", "FCGI_LISTEN" },
		{ "FCGI_LISTEN=127.0.0.1:70000", "FCGI_LISTEN" },
		{ "FCGI_LISTEN=unix:", "FCGI_LISTEN" },
		{ "FCGI_REQUEST_TIMEOUT=0", "FCGI_REQUEST_TIMEOUT" },
		{ "FCGI_IDLE_TIMEOUT=1.5", "FCGI_IDLE_TIMEOUT" },
		{ "TARGET_POOL_USAGE=101", "TARGET_POOL_USAGE" },
		{ "TARGET_QUERY_MS=0", "TARGET_QUERY_MS" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *env[] = { (char *)bad[i].assign, NULL };
		struct config cfg;
		int rc = load(&cfg, env);

		if (bad[i].name == NULL) {
			assert_int_equal(rc, 0);
			config_free(&cfg);
			continue;
		}
		if (rc != -1)
			fail_msg("%s was accepted", bad[i].assign);
		if (strstr(err, bad[i].name) != err)
			fail_msg("error for %s does not start with the name: %s", bad[i].assign, err);
		assert_null(strchr(err, '\n'));
	}
}

/* /admin/metrics's targets: defaults, and explicit values win. */
static void test_targets(void **state)
{
	char *defaults[] = { NULL };
	char *env[] = { "TARGET_QUERY_MS=250", "TARGET_SERVER_CONNECTIONS=40", NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, defaults), 0);
	assert_true(cfg.target.query_ms == 2000 && cfg.target.pool_percent == 80 &&
		    cfg.target.cache_hit_percent == 70 && cfg.target.error_percent == 1 &&
		    cfg.target.server_connections == 15);
	config_free(&cfg);
	assert_int_equal(load(&cfg, env), 0);
	assert_true(cfg.target.query_ms == 250 && cfg.target.server_connections == 40);
	config_free(&cfg);
}

static void test_range_in_message(void **state)
{
	char *env[] = { "WORKERS=0", NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, env), -1);
	assert_non_null(strstr(err, "1 to 1024"));
}

static void test_redis_url_forms(void **state)
{
	struct redis_url u;
	char e[200];

	(void)state;
	assert_int_equal(redis_url_parse("redis://localhost", &u, e, sizeof(e)), 0);
	assert_string_equal(u.host, "localhost");
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 0);
	assert_null(u.password);
	redis_url_free(&u);

	assert_int_equal(redis_url_parse("redis://:s%40cret@cache:6380/2", &u, e, sizeof(e)), 0);
	assert_string_equal(u.host, "cache");
	assert_int_equal(u.port, 6380);
	assert_int_equal(u.db, 2);
	assert_string_equal(u.password, "s@cret");
	assert_null(u.username);
	redis_url_free(&u);

	assert_int_equal(redis_url_parse("redis://default:pw@[fd00::1]:6379", &u, e, sizeof(e)), 0);
	assert_string_equal(u.host, "fd00::1");
	assert_string_equal(u.username, "default");
	assert_string_equal(u.password, "pw");
	redis_url_free(&u);

	assert_int_equal(redis_url_parse("redis://", &u, e, sizeof(e)), -1);
	assert_int_equal(redis_url_parse("redis://h:", &u, e, sizeof(e)), -1);
	assert_int_equal(redis_url_parse("redis://h:12ab", &u, e, sizeof(e)), -1);
	assert_int_equal(redis_url_parse("redis://h/x", &u, e, sizeof(e)), -1);
	assert_int_equal(redis_url_parse("redis://:%zz@h", &u, e, sizeof(e)), -1);
	assert_int_equal(redis_url_parse("redis://:%00@h", &u, e, sizeof(e)), -1);
	assert_int_equal(redis_url_parse("redis://[::1", &u, e, sizeof(e)), -1);
	assert_int_equal(redis_url_parse("redis://h o/", &u, e, sizeof(e)), -1);
}

static void test_redis_unix_socket_forms(void **state)
{
	/* 107 bytes: the longest path sun_path holds with its NUL */
	char longest[200] = "unix:///", too_long[sizeof(longest) + 1];
	struct redis_url u;
	char e[200], where[160];

	(void)state;
	assert_int_equal(redis_url_parse("unix:///run/redis/redis.sock", &u, e, sizeof(e)), 0);
	assert_string_equal(u.path, "/run/redis/redis.sock");
	assert_null(u.host);
	assert_null(u.password);
	assert_null(u.username);
	assert_int_equal(u.db, 0);
	assert_true(redis_url_given(&u));
	assert_string_equal(redis_url_where(&u, where, sizeof(where)), "unix:/run/redis/redis.sock");
	redis_url_free(&u);

	assert_int_equal(redis_url_parse("unix://:s%40cret@/tmp/r%20s.sock?db=3", &u, e, sizeof(e)), 0);
	assert_string_equal(u.path, "/tmp/r s.sock");
	assert_string_equal(u.password, "s@cret");
	assert_null(u.username);
	assert_int_equal(u.db, 3);
	redis_url_free(&u);

	assert_int_equal(redis_url_parse("unix://app:pw@/var/run/redis.sock?db=0", &u, e, sizeof(e)), 0);
	assert_string_equal(u.username, "app");
	assert_string_equal(u.password, "pw");
	assert_string_equal(u.path, "/var/run/redis.sock");
	redis_url_free(&u);

	memset(longest + 8, 'a', REDIS_URL_PATH_MAX - 1);
	assert_int_equal(redis_url_parse(longest, &u, e, sizeof(e)), 0);
	assert_int_equal(strlen(u.path), REDIS_URL_PATH_MAX);
	redis_url_free(&u);
	snprintf(too_long, sizeof(too_long), "%sa", longest);
	assert_int_equal(redis_url_parse(too_long, &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "longer than 107 bytes"));
	assert_null(u.path);

	assert_int_equal(redis_url_parse("unix://", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "missing the socket's path"));
	assert_int_equal(redis_url_parse("unix://:pw@", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "missing the socket's path"));
	assert_null(u.password);	/* freed on failure */
	assert_int_equal(redis_url_parse("unix://?db=1", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "missing the socket's path"));
	assert_int_equal(redis_url_parse("unix://var/run/redis.sock", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "must be absolute"));
	assert_int_equal(redis_url_parse("unix://redis.sock", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "must be absolute"));
	assert_int_equal(redis_url_parse("unix:///", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "names a directory"));
	assert_int_equal(redis_url_parse("unix:///tmp/r.sock?password=x", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "only ?db=N"));
	assert_null(strstr(e, "password=x"));
	assert_int_equal(redis_url_parse("unix:///tmp/r.sock?db=1&timeout=2", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "only ?db=N"));
	assert_int_equal(redis_url_parse("unix:///tmp/r.sock?db=", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "0 to 999"));
	assert_int_equal(redis_url_parse("unix:///tmp/r.sock?db=1000", &u, e, sizeof(e)), -1);
	assert_int_equal(redis_url_parse("unix:///tmp/r.sock?db=x", &u, e, sizeof(e)), -1);
	assert_int_equal(redis_url_parse("unix:///tmp/r%zz.sock", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "%-escape"));
	assert_int_equal(redis_url_parse("unix:///tmp/r%00.sock", &u, e, sizeof(e)), -1);
	assert_int_equal(redis_url_parse("unix:/tmp/r.sock", &u, e, sizeof(e)), -1);
	assert_non_null(strstr(e, "unix://"));
	assert_int_equal(redis_url_parse("rediss://h", &u, e, sizeof(e)), -1);
}

static void test_redis_unix_url_from_the_environment(void **state)
{
	char good[] = "REDIS_URL=unix:///srv/stack/run/redis.sock?db=2";
	char bad[] = "REDIS_URL=unix://run/redis.sock";
	char *env_good[] = { good, NULL }, *env_bad[] = { bad, NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, env_good), 0);
	assert_string_equal(cfg.redis.path, "/srv/stack/run/redis.sock");
	assert_null(cfg.redis.host);
	assert_int_equal(cfg.redis.db, 2);
	assert_true(redis_url_given(&cfg.redis));
	config_free(&cfg);

	assert_int_equal(load(&cfg, env_bad), -1);
	assert_non_null(strstr(err, "REDIS_URL is invalid"));
	assert_non_null(strstr(err, "must be absolute"));
}

static void test_redis_where_tcp(void **state)
{
	struct redis_url u;
	char e[200], where[160];

	(void)state;
	assert_int_equal(redis_url_parse("redis://:pw@cache:6380/1", &u, e, sizeof(e)), 0);
	assert_null(u.path);
	assert_string_equal(redis_url_where(&u, where, sizeof(where)), "cache:6380");
	redis_url_free(&u);
	assert_int_equal(redis_url_parse("redis://[::1]:6379", &u, e, sizeof(e)), 0);
	assert_string_equal(redis_url_where(&u, where, sizeof(where)), "[::1]:6379");
	redis_url_free(&u);
}

static void test_empty_redis_disables_cache(void **state)
{
	char *env[] = { "REDIS_URL=", NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, env), 0);
	assert_null(cfg.redis.host);
	assert_null(cfg.redis.path);
	assert_false(redis_url_given(&cfg.redis));
	config_free(&cfg);
}

static void test_metrics_token_and_peers(void **state)
{
	char tok[] = "METRICS_TOKEN=0123456789abcdef0123456789abcdef";
	char peers[] = "FCGI_WEB_SERVER_ADDRS=127.0.0.1, ::1,nginx";
	char *good[] = { tok, peers, NULL };
	char *short_tok[] = { "METRICS_TOKEN=tooshort", NULL };
	char *space_tok[] = { "METRICS_TOKEN=0123456789abcdef 0123456789abcdef0", NULL };
	char *bad_peers[] = { "FCGI_WEB_SERVER_ADDRS=10.0.0.1;rm", NULL };
	char *empty_entry[] = { "FCGI_WEB_SERVER_ADDRS=,", NULL };
	char *none[] = { NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, none), 0);
	assert_string_equal(cfg.metrics_token, "");
	assert_string_equal(cfg.web_server_addrs, "");
	config_free(&cfg);
	assert_int_equal(load(&cfg, good), 0);
	assert_string_equal(cfg.metrics_token, "0123456789abcdef0123456789abcdef");
	assert_string_equal(cfg.web_server_addrs, "127.0.0.1, ::1,nginx");
	config_free(&cfg);
	assert_int_equal(load(&cfg, short_tok), -1);
	assert_non_null(strstr(err, "METRICS_TOKEN"));
	assert_int_equal(load(&cfg, space_tok), -1);
	assert_non_null(strstr(err, "METRICS_TOKEN"));
	assert_int_equal(load(&cfg, bad_peers), -1);
	assert_non_null(strstr(err, "FCGI_WEB_SERVER_ADDRS"));
	assert_int_equal(load(&cfg, empty_entry), -1);
	assert_non_null(strstr(err, "FCGI_WEB_SERVER_ADDRS"));
}

/* "*" (any peer) is accepted only alone: it must be asked for on purpose. */
static void test_any_peer_is_spelled_out(void **state)
{
	char *star[] = { "FCGI_WEB_SERVER_ADDRS=*", NULL };
	char *mixed[] = { "FCGI_WEB_SERVER_ADDRS=nginx,*", NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, star), 0);
	assert_string_equal(cfg.web_server_addrs, "*");
	config_free(&cfg);
	assert_int_equal(load(&cfg, mixed), -1);
	assert_non_null(strstr(err, "FCGI_WEB_SERVER_ADDRS"));
	assert_non_null(strstr(err, "stand alone"));
}

/* Production refuses the passwords example files carry, naming the variable. */
static void test_production_refuses_placeholder_passwords(void **state)
{
	static const char *const placeholders[] = {
		"change-me", "changeme", "CHANGE_ME", "password", "postgres", "example",
		"placeholder", "your-password-here", "Change-Me-Now",
	};
	char db[256], redis[256], replicas[512];
	struct config cfg;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++) {
		char *env_db[] = { "APP_ENV=production", db, NULL };
		char *env_redis[] = { "APP_ENV=production", redis, NULL };
		char *env_dev[] = { db, redis, NULL };

		snprintf(db, sizeof(db), "DATABASE_URL=postgresql://paintstudio:%s@db:5432/paintstudio",
			 placeholders[i]);
		snprintf(redis, sizeof(redis), "REDIS_URL=redis://:%s@redis:6379/0", placeholders[i]);
		assert_int_equal(load(&cfg, env_db), -1);
		assert_non_null(strstr(err, "DATABASE_URL"));
		assert_non_null(strstr(err, "placeholder"));
		if (i > 0 && strcmp(placeholders[i], "password") != 0 &&
		    strcmp(placeholders[i], "placeholder") != 0)
			assert_null(strstr(err, placeholders[i]));	/* never quoted */
		assert_int_equal(load(&cfg, env_redis), -1);
		assert_non_null(strstr(err, "REDIS_URL"));
		/* development (the local stack, tests) lets them be */
		assert_int_equal(load(&cfg, env_dev), 0);
		config_free(&cfg);
	}
	/* the password as a parameter, the unix socket form, a replica */
	{
		char *param[] = { "RAILWAY_ENVIRONMENT=production",
				  "DATABASE_URL=postgres://u@db/app?password=changeme", NULL };
		char *sock[] = { "APP_ENV=production", "REDIS_URL=unix://:password@/run/redis.sock?db=1",
				 NULL };
		char *rep[] = { "APP_ENV=production", replicas, NULL };

		assert_int_equal(load(&cfg, param), -1);
		assert_non_null(strstr(err, "DATABASE_URL"));
		assert_int_equal(load(&cfg, sock), -1);
		assert_non_null(strstr(err, "REDIS_URL"));
		snprintf(replicas, sizeof(replicas), "DATABASE_REPLICA_URLS=postgresql://u:9f1c2e@r1/app, "
			 "postgresql://u:change-me@r2/app");
		assert_int_equal(load(&cfg, rep), -1);
		assert_non_null(strstr(err, "DATABASE_REPLICA_URLS"));
	}
	/* real passwords (and none at all) pass */
	{
		char *good[] = { "APP_ENV=production",
				 "DATABASE_URL=postgresql://paintstudio:8b1d0c55e2a94f7c@db/paintstudio",
				 "REDIS_URL=redis://:2f9e4a7b1c3d5e6f@redis:6379/0",
				 "DATABASE_REPLICA_URLS=postgresql://u:5a6b7c8d@r1/app", NULL };
		char *none[] = { "APP_ENV=production", "DATABASE_URL=postgresql://u@db/app",
				 "REDIS_URL=unix:///run/redis.sock", NULL };

		assert_int_equal(load(&cfg, good), 0);
		config_free(&cfg);
		assert_int_equal(load(&cfg, none), 0);
		config_free(&cfg);
	}
}

/* REDIS_SENTINELS: host:port lists (IPv6 in brackets), the master's name, its password. */
static void test_redis_sentinels(void **state)
{
	char *env[] = { "REDIS_URL=redis://:pw@ignored:6379/2",
			"REDIS_SENTINELS=10.0.0.1:26379, s2.example:26380,[::1]:26381",
			"REDIS_SENTINEL_MASTER=shop-cache", "REDIS_SENTINEL_PASSWORD=spw", NULL };
	char *bad_name[] = { "REDIS_SENTINELS=h:1", "REDIS_SENTINEL_MASTER=a b", NULL };
	char *unix_url[] = { "REDIS_URL=unix:///run/redis.sock", "REDIS_SENTINELS=h:1", NULL };
	char *defaults[] = { "REDIS_SENTINELS=h:1", NULL };
	struct config cfg;

	(void)state;
	assert_int_equal(load(&cfg, env), 0);
	assert_int_equal(cfg.sentinels.n, 3);
	assert_string_equal(cfg.sentinels.host[0], "10.0.0.1");
	assert_int_equal(cfg.sentinels.port[0], 26379);
	assert_string_equal(cfg.sentinels.host[1], "s2.example");
	assert_int_equal(cfg.sentinels.port[1], 26380);
	assert_string_equal(cfg.sentinels.host[2], "::1");
	assert_int_equal(cfg.sentinels.port[2], 26381);
	assert_string_equal(cfg.sentinels.master, "shop-cache");
	assert_string_equal(cfg.sentinels.password, "spw");
	assert_string_equal(cfg.redis.password, "pw");
	assert_int_equal(cfg.redis.db, 2);
	config_free(&cfg);
	assert_int_equal(load(&cfg, defaults), 0);
	assert_string_equal(cfg.sentinels.master, "paintstudio");
	assert_null(cfg.sentinels.password);
	config_free(&cfg);
	assert_int_equal(load(&cfg, bad_name), -1);
	assert_non_null(strstr(err, "REDIS_SENTINEL_MASTER"));
	assert_int_equal(load(&cfg, unix_url), -1);
	assert_non_null(strstr(err, "REDIS_SENTINELS needs a redis://"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_development_defaults),
		cmocka_unit_test(test_production_profile),
		cmocka_unit_test(test_railway_implies_production),
		cmocka_unit_test(test_explicit_wins_over_profile),
		cmocka_unit_test(test_both_url_schemes),
		cmocka_unit_test(test_multi_host_database_url),
		cmocka_unit_test(test_bad_values_name_the_variable),
		cmocka_unit_test(test_range_in_message),
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_redis_url_forms),
		cmocka_unit_test(test_redis_unix_socket_forms),
		cmocka_unit_test(test_redis_sentinels),
		cmocka_unit_test(test_redis_unix_url_from_the_environment),
		cmocka_unit_test(test_redis_where_tcp),
		cmocka_unit_test(test_empty_redis_disables_cache),
		cmocka_unit_test(test_metrics_token_and_peers),
		cmocka_unit_test(test_any_peer_is_spelled_out),
		cmocka_unit_test(test_production_refuses_placeholder_passwords),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
