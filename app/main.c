/*
 * paintstudio: the Paint Studio admin service.
 *
 *   paintstudio serve                  run the FastCGI service
 *   paintstudio migrate [DIR]          apply pending migrations (default ./migrations)
 *   paintstudio create-admin USER [--if-missing]
 *   paintstudio check [DIR]            check settings, PostgreSQL, replicas, Redis, migrations
 *   paintstudio status                 pool, cache and alerts of the running process
 *
 * Settings come from the environment (docs/operations.md has them all).
 */
#define _GNU_SOURCE
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "base/workers.h"
#include "cache/cache.h"
#include "db/admission.h"
#include "db/migrate.h"
#include "db/pgconnect.h"
#include "db/pool.h"
#include "db/replicas.h"
#include "http/context.h"
#include "http/peers.h"
#include "http/router.h"
#include "http/server.h"
#include "obs/metrics.h"
#include "obs/status.h"
#include "resources/audit.h"
#include "resources/auth.h"
#include "resources/images.h"
#include "resources/paints.h"
#include "resources/resources.h"
#include "resources/sessions.h"
#include "resources/users_model.h"

extern char **environ;

#define DEFAULT_MIGRATIONS "migrations"

static void pool_settings_from(const struct config *cfg, struct pool_settings *ps)
{
	memset(ps, 0, sizeof(*ps));
	ps->database_url = cfg->database_url;
	ps->sslmode = cfg->sslmode;
	ps->application_name = cfg->application_name;
	ps->size = cfg->pool_size;
	ps->max_overflow = cfg->max_overflow;
	ps->timeout = cfg->pool_timeout;
	ps->recycle = cfg->pool_recycle;
	ps->pre_ping = cfg->pool_pre_ping;
	ps->idle_timeout = cfg->pool_idle_timeout;
	ps->connect_timeout = cfg->connect_timeout;
	ps->statement_timeout_ms = cfg->statement_timeout_ms;
	/* A request holding a connection past two statement timeouts leaks. */
	ps->leak_threshold = 2.0 * cfg->statement_timeout_ms / 1000.0;
	ps->stmts = resources_statements(&ps->nstmts);
}

/* A direct connection for the one-shot commands; NULL after printing why. */
static PGconn *connect_direct(const struct config *cfg, const char *what)
{
	struct pool_settings ps;
	struct pool_error err;
	PGconn *pg;

	pool_settings_from(cfg, &ps);
	ps.statement_timeout_ms = 0;	/* migrations may build large indexes */
	pg = pgconnect_open(&ps, cfg->connect_timeout, &err);
	if (pg == NULL)
		fprintf(stderr, "%s: cannot connect to PostgreSQL: %s\n", what, err.msg);
	return pg;
}

/*
 * Say at start who may speak FastCGI on a TCP listener: "*" (any peer) is
 * a warning, an empty list (this machine's loopback only) a notice.
 */
static void peers_announce(const struct config *cfg)
{
	if (strncmp(cfg->fcgi_listen, "unix:", 5) == 0)
		return;	/* the socket file's mode guards it */
	if (peers_any(cfg->web_server_addrs))
		log_msg(LOG_WARN, "FCGI_WEB_SERVER_ADDRS=*: any peer that reaches %s may speak "
			"FastCGI to the service; list nginx's addresses instead", cfg->fcgi_listen);
	else if (cfg->web_server_addrs[0] == '\0')
		log_msg(LOG_INFO, "FCGI_WEB_SERVER_ADDRS is empty: only 127.0.0.1 and ::1 may speak "
			"FastCGI on %s", cfg->fcgi_listen);
}

/* The application's housekeeping, run by the server's housekeeper. */
static const struct app_chore chores[] = {
	/* expired sessions and stale login counters */
	{ "auth.cleanup", 60, auth_cleanup },
	/* the low-stock gauge, alert and dashboard list (metrics_low_stock) */
	{ "paints.low_stock", 5, paints_low_stock_sample },
	/* stored images no paint has shown for a while (images.h) */
	{ "images.sweep", 3600, images_sweep },
};

/*
 * The admission gate in front of the pools (admission.h). Its places and
 * its queue together never take more threads than WORKERS beyond the
 * active ones: those stay free for requests that need no database.
 */
static struct admission *gate_create(const struct config *cfg)
{
	struct admission_settings s;
	int active = cfg->workers_active ? cfg->workers_active : workers_default_active();
	struct admission *a;

	if (active > cfg->workers)
		active = cfg->workers;
	memset(&s, 0, sizeof(s));
	s.mode = (enum admission_mode)cfg->db_admission;	/* config.h keeps its order */
	s.floor = cfg->db_admission_min;
	s.threads = cfg->workers - active;
	/* One connection of the pool stays for the session look-ups' extra place. */
	s.ceiling = cfg->pool_size + cfg->max_overflow - 1;
	if (s.ceiling > s.threads)
		s.ceiling = s.threads;
	s.queue_max = cfg->db_admission_queue;
	s.target = cfg->db_admission_target_ms / 1000.0;
	s.background_target = cfg->db_admission_background_ms / 1000.0;
	s.interval = cfg->db_admission_interval_ms / 1000.0;
	s.max_wait = cfg->pool_timeout;
	s.buffer = 0.25;
	a = admission_create(&s);
	{
		struct admission_stats st;

		admission_get_stats(a, &st);
		log_msg(LOG_INFO, "admission: %s, %d to %d requests at the database at once, a queue of "
			"%d (targets %d ms, background %d ms; interval %d ms)",
			admission_mode_name(st.mode), st.floor, st.ceiling, st.queue_max,
			cfg->db_admission_target_ms, cfg->db_admission_background_ms,
			cfg->db_admission_interval_ms);
	}
	return a;
}

static int cmd_serve(const struct config *cfg)
{
	struct pool_settings ps;
	struct app app;
	char err[512];
	int fd, rc, left;

	fd = server_listen(cfg->fcgi_listen, err, sizeof(err));
	if (fd < 0) {
		log_msg(LOG_ERROR, "%s", err);
		return 1;
	}
	pool_settings_from(cfg, &ps);
	/*
	 * Peers are checked by peers_allowed (IPv6 and host names too).
	 * libfcgi would apply FCGI_WEB_SERVER_ADDRS itself, to IPv4 only and
	 * without names (refusing compose's "nginx"): keep it from seeing it.
	 */
	peers_setup(cfg->web_server_addrs);
	unsetenv("FCGI_WEB_SERVER_ADDRS");
	peers_announce(cfg);
	auth_setup(cfg);
	cache_setup(cfg);
	/* What the layers below need from the resources, handed down. */
	memset(&app, 0, sizeof(app));
	app.cfg = cfg;
	app.routes = resources_routes(&app.nroutes);
	app.admit = sessions_require;
	app.chores = chores;
	app.nchores = sizeof(chores) / sizeof(chores[0]);
	metrics_setup(cfg, app.nroutes);
	app.pool = pool_create(&ps);
	app.gate = gate_create(cfg);
	replicas_setup(cfg, &ps);
	cache_set_pool(app.pool);
	/* Redis is trusted only after the drainer's first drain of the outbox. */
	cache_start(&ps);
	rc = server_run(&app, fd);
	admission_close(app.gate);
	sessions_stop();	/* its refresher holds a connection at times */
	cache_stop();
	left = pool_shutdown(app.pool, 1.0);
	if (left == 0)
		pool_destroy(app.pool);
	if (left == 0)
		admission_destroy(app.gate);	/* no request is left inside */
	left += replicas_shutdown(1.0);
	log_msg(LOG_INFO, "stopped");
	return rc == 0 && left == 0 ? 0 : 1;
}

/*
 * Query analytics read pg_stat_statements (analytics.h): install it where
 * the role may (a superuser's, as in compose), and say so either way; it
 * is no migration, since a database without it works all the same.
 */
static void install_statement_stats(PGconn *pg)
{
	PGresult *r = PQexec(pg, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");

	if (PQresultStatus(r) == PGRES_COMMAND_OK)
		printf("migrate: pg_stat_statements is installed (query analytics also need it in "
		       "shared_preload_libraries)\n");
	else
		printf("migrate: pg_stat_statements is not installed, query analytics are off: %s",
		       PQresultErrorMessage(r));
	PQclear(r);
}

static int cmd_migrate(const struct config *cfg, const char *dir)
{
	struct migrate_report rep;
	char err[1024];
	PGconn *pg = connect_direct(cfg, "migrate");
	int rc;

	if (pg == NULL)
		return 1;
	rc = migrate_run(pg, dir, &rep, err, sizeof(err));
	if (rc == 0)
		install_statement_stats(pg);
	PQfinish(pg);
	if (rc != 0) {
		fprintf(stderr, "migrate: %s\n", err);
		return 1;
	}
	if (rep.applied == 0)
		printf("migrate: nothing to apply (%d already applied)\n", rep.present);
	else
		printf("migrate: %d applied, %d were already applied\n", rep.applied, rep.present);
	return 0;
}

/* Read a line from the terminal without echo; 0 or -1. */
static int prompt_secret(const char *prompt, char *buf, size_t len)
{
	struct termios old, quiet;
	int ok;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) != 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	ok = fgets(buf, (int)len, stdin) != NULL;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

/* The actor of create-admin's audit entries: no user id, and no username looks like it. */
#define CLI_ACTOR "(cli)"

/* Copy the first line of r's error into err, then PQclear r. Returns -1. */
static int pg_failed(PGresult *r, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", r ? PQresultErrorMessage(r) : "out of memory");
	err[strcspn(err, "\n")] = '\0';
	PQclear(r);
	return -1;
}

static int exec_command(PGconn *pg, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(pg, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return pg_failed(r, err, errlen);
	PQclear(r);
	return 0;
}

/*
 * The user named username as audit entries compare it (id, username,
 * is_admin, disabled), its row locked: a result of 0 or 1 row, or NULL
 * with err filled.
 */
static PGresult *admin_row(PGconn *pg, const char *username, char *err, size_t errlen)
{
	const char *params[1] = { username };
	PGresult *r = PQexecParams(pg, "SELECT id, username, is_admin, disabled FROM users "
				   "WHERE username = $1 FOR NO KEY UPDATE", 1, NULL, params,
				   NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_failed(r, err, errlen);
		return NULL;
	}
	return r;
}

/*
 * Record create-admin's change: "create" for a new user, "reset" for an
 * existing one (a new password, made an enabled admin again). before is
 * the row before the change (0 rows: none). 0, or -1 with err filled.
 */
static int audit_admin(PGconn *pg, const char *username, int created, const PGresult *before,
		       char *err, size_t errlen)
{
	struct json_object *b = NULL, *a = NULL, *extra = NULL;
	PGresult *after, *failed;
	int rc = -1;

	if ((after = admin_row(pg, username, err, errlen)) == NULL)
		return -1;
	if (PQntuples(after) != 1) {
		snprintf(err, errlen, "user %s vanished before its audit entry", username);
		goto out;
	}
	b = PQntuples(before) == 1 ? users_audit_json(before, 0) : NULL;
	a = users_audit_json(after, 0);
	extra = created ? NULL : json_tokener_parse("{\"password\": {\"changed\": true}}");
	if (audit_record(pg, 0, CLI_ACTOR, AUDIT_USER, strtoll(PQgetvalue(after, 0, 0), NULL, 10),
			 created ? "create" : "reset", b, a, extra, &failed) != 0)
		pg_failed(failed, err, errlen);
	else
		rc = 0;
out:
	if (b)
		json_object_put(b);
	if (a)
		json_object_put(a);
	if (extra)
		json_object_put(extra);
	PQclear(after);
	return rc;
}

/*
 * auth_create_admin and its audit entry in one transaction: both commit
 * or neither. Nothing is recorded when --if-missing left the user as it
 * was. 0, or -1 with err filled.
 */
static int create_admin_audited(PGconn *pg, const char *username, const char *password,
				int if_missing, int *created, char *err, size_t errlen)
{
	PGresult *before = NULL, *failed;
	int rc = -1;

	*created = 0;
	if (audit_prepare(pg, &failed) != 0)
		return pg_failed(failed, err, errlen);
	if (exec_command(pg, "BEGIN", err, errlen) != 0)
		return -1;
	if ((before = admin_row(pg, username, err, errlen)) != NULL &&
	    auth_create_admin(pg, username, password, if_missing, created, err, errlen) == 0 &&
	    ((if_missing && !*created) || audit_admin(pg, username, *created, before, err, errlen) == 0))
		rc = exec_command(pg, "COMMIT", err, errlen);
	if (rc != 0)
		PQclear(PQexec(pg, "ROLLBACK"));
	PQclear(before);
	return rc;
}

static int cmd_create_admin(const struct config *cfg, const char *username, int if_missing)
{
	const char *given = getenv("ADMIN_PASSWORD");
	char password[256], again[256], err[512];
	int generated = 0, created, rc;
	PGconn *pg;

	if (given && *given) {
		snprintf(password, sizeof(password), "%s", given);
	} else if (isatty(STDIN_FILENO)) {
		if (prompt_secret("New password: ", password, sizeof(password)) ||
		    prompt_secret("Again: ", again, sizeof(again))) {
			fprintf(stderr, "create-admin: no password read\n");
			return 1;
		}
		if (strcmp(password, again) != 0) {
			fprintf(stderr, "create-admin: the passwords differ\n");
			return 1;
		}
		sodium_memzero(again, sizeof(again));
	} else {
		auth_generate_password(password, 21);
		generated = 1;
	}
	pg = connect_direct(cfg, "create-admin");
	if (pg == NULL)
		return 1;
	rc = create_admin_audited(pg, username, password, if_missing, &created, err, sizeof(err));
	PQfinish(pg);
	if (rc != 0) {
		fprintf(stderr, "create-admin: %s\n", err);
	} else if (if_missing && !created) {
		printf("create-admin: user %s exists; left unchanged\n", username);
	} else {
		printf("create-admin: %s admin user %s\n", created ? "created" : "updated", username);
		if (generated)
			printf("create-admin: password (shown once): %s\n", password);
	}
	sodium_memzero(password, sizeof(password));
	return rc == 0 ? 0 : 1;
}

/* The check's PostgreSQL and migrations lines; returns the failures. */
static int check_database(const struct config *cfg, const char *dir)
{
	struct migrate_report rep;
	char err[1024];
	int failed = 0;
	PGconn *pg = connect_direct(cfg, "check");
	PGresult *r;

	if (pg == NULL) {
		printf("%-12s FAIL  cannot connect\n", "postgresql");
		printf("%-12s FAIL  database unreachable\n", "migrations");
		return 2;
	}
	r = PQexec(pg, "SELECT current_setting('server_version')");
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		printf("%-12s OK    server %s\n", "postgresql", PQgetvalue(r, 0, 0));
	} else {
		printf("%-12s FAIL  %s", "postgresql", PQresultErrorMessage(r));
		failed++;
	}
	PQclear(r);
	if (migrate_status(pg, dir, &rep, err, sizeof(err)) != 0) {
		printf("%-12s FAIL  %s\n", "migrations", err);
		failed++;
	} else if (rep.pending) {
		printf("%-12s FAIL  %d pending (run paintstudio migrate)\n", "migrations", rep.pending);
		failed++;
	} else {
		printf("%-12s OK    %d applied, none pending\n", "migrations", rep.present);
	}
	PQfinish(pg);
	return failed;
}

/* The check's Redis line; returns the failures. */
static int check_redis(const struct config *cfg)
{
	redisContext *rc;
	redisReply *rep = NULL;
	struct redis_url u;
	char where[160], why[200] = "", host[CACHE_HOST_MAX];
	int failed = 0;

	if (!redis_url_given(&cfg->redis)) {
		printf("%-12s SKIP  REDIS_URL is empty: cache disabled\n", "redis");
		return 0;
	}
	if (cache_master_url(cfg, &u, host, why, sizeof(why)) != 0) {
		printf("%-12s FAIL  sentinels: %s\n", "redis", why);
		return 1;
	}
	redis_url_where(&u, where, sizeof(where));
	rc = cache_redis_connect(&u, 2000, why, sizeof(why));
	if (rc)
		rep = redisCommand(rc, "PING");
	if (rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0) {
		printf("%-12s OK    %s\n", "redis", where);
	} else {
		printf("%-12s FAIL  %s: %s\n", "redis", where,
		       rc == NULL ? why : rc->err ? rc->errstr
			     : rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "no answer");
		failed++;
	}
	if (rep)
		freeReplyObject(rep);
	if (rc)
		redisFree(rc);
	return failed;
}

/* The check's line per replica (DATABASE_REPLICA_URLS); returns the failures. */
static int check_replicas(const struct config *cfg)
{
	const char *p = cfg->replica_urls, *item;
	struct pool_settings ps;
	size_t len;
	int n = 0, failed = 0;

	pool_settings_from(cfg, &ps);
	while (p && (item = list_next(&p, &len)) != NULL) {
		struct pool_error err;
		char name[24], *url = xstrndup(item, len);
		PGconn *pg;
		PGresult *r = NULL;

		snprintf(name, sizeof(name), "replica%d", ++n);
		ps.database_url = url;
		if ((pg = pgconnect_open(&ps, cfg->connect_timeout, &err)) == NULL) {
			printf("%-12s FAIL  cannot connect: %s\n", name, err.msg);
			failed++;
		} else if (PQresultStatus(r = PQexec(pg, "SELECT pg_is_in_recovery(), "
						    "pg_last_wal_replay_lsn()")) != PGRES_TUPLES_OK) {
			printf("%-12s FAIL  %s", name, PQresultErrorMessage(r));
			failed++;
		} else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
			printf("%-12s FAIL  not a standby (pg_is_in_recovery() is false)\n", name);
			failed++;
		} else {
			printf("%-12s OK    streaming, replayed %s\n", name, PQgetvalue(r, 0, 1));
		}
		PQclear(r);
		if (pg)
			PQfinish(pg);
		free(url);
	}
	return failed;
}

static int cmd_check(const struct config *cfg, const char *dir)
{
	int failed;

	printf("%-12s OK    %s profile, pool %d+%d, %d workers\n", "config",
	       config_env_name(cfg->env), cfg->pool_size, cfg->max_overflow, cfg->workers);
	failed = check_database(cfg, dir);
	failed += check_replicas(cfg);
	failed += check_redis(cfg);
	return failed ? 1 : 0;
}

static void usage(FILE *f)
{
	fputs("usage: paintstudio serve\n"
	      "       paintstudio migrate [DIR]\n"
	      "       paintstudio create-admin USERNAME [--if-missing]\n"
	      "       paintstudio check [DIR]\n"
	      "       paintstudio status          (asks the process at FCGI_LISTEN)\n"
	      "Settings come from the environment; see docs/operations.md.\n", f);
}

int main(int argc, char **argv)
{
	struct config cfg;
	char err[512];
	const char *cmd = argc > 1 ? argv[1] : "";
	int rc;

	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "serve") && strcmp(cmd, "migrate") && strcmp(cmd, "status") &&
	    strcmp(cmd, "create-admin") && strcmp(cmd, "check")) {
		usage(stderr);
		return 2;
	}
	if (strcmp(cmd, "create-admin") == 0 &&
	    (argc < 3 || (argc == 4 && strcmp(argv[3], "--if-missing")) || argc > 4)) {
		usage(stderr);
		return 2;
	}
	if (config_load(&cfg, environ, err, sizeof(err)) != 0) {
		fprintf(stderr, "paintstudio: configuration error: %s\n", err);
		return 2;
	}
	if (auth_init() != 0) {
		fprintf(stderr, "paintstudio: libsodium failed to initialise\n");
		config_free(&cfg);
		return 1;
	}
	log_setup(cfg.log_level, cfg.log_format);

	if (strcmp(cmd, "serve") == 0)
		rc = cmd_serve(&cfg);
	else if (strcmp(cmd, "migrate") == 0)
		rc = cmd_migrate(&cfg, argc > 2 ? argv[2] : DEFAULT_MIGRATIONS);
	else if (strcmp(cmd, "status") == 0)
		rc = status_run(cfg.fcgi_listen);
	else if (strcmp(cmd, "create-admin") == 0)
		rc = cmd_create_admin(&cfg, argv[2], argc == 4);
	else
		rc = cmd_check(&cfg, argc > 2 ? argv[2] : DEFAULT_MIGRATIONS);
	config_free(&cfg);
	return rc;
}
