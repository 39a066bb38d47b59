/*
 * config: every setting of the service, read once from the environment,
 * given its default (per profile), validated, and then passed read-only to
 * the modules that need it. Nothing else reads the environment.
 */
#ifndef PS_CONFIG_H
#define PS_CONFIG_H

#include <stddef.h>

#include "base/log.h"

enum app_env { APP_ENV_DEVELOPMENT, APP_ENV_PRODUCTION };

/*
 * A parsed REDIS_URL: a TCP server (host, port) or a unix socket (path).
 * Both are NULL when the cache is disabled (redis_url_given).
 */
#define REDIS_URL_PATH_MAX 107	/* bytes: sun_path holds 108 with its NUL */
struct redis_url {
	char *host;	/* NULL for a unix socket */
	int port;
	char *path;	/* the unix socket's absolute path; NULL for TCP */
	char *username;	/* NULL: none (Redis 6 ACL user) */
	char *password;	/* NULL: none */
	int db;
};

/*
 * Redis Sentinel (REDIS_SENTINELS): where to ask for the master's address
 * (cache_sentinel.c). n is 0 without sentinels: REDIS_URL's server is
 * the master. With them, REDIS_URL gives the credentials and database
 * only; its host and port are asked of the sentinels.
 */
#define REDIS_SENTINELS_MAX 8
struct redis_sentinels {
	int n;
	char *host[REDIS_SENTINELS_MAX];
	int port[REDIS_SENTINELS_MAX];
	char *master;		/* REDIS_SENTINEL_MASTER: the name they watch it by */
	char *password;		/* REDIS_SENTINEL_PASSWORD: the sentinels' own; NULL none */
};

struct config {
	enum app_env env;

	/* PostgreSQL */
	char *database_url;	/* as given (may contain a password: never log) */
	int pool_size;
	int max_overflow;
	double pool_timeout;	/* seconds */
	int pool_recycle;	/* seconds */
	int pool_pre_ping;	/* 0 or 1 */
	int pool_idle_timeout;	/* seconds an overflow connection may stay idle */
	int connect_timeout;	/* seconds */
	int statement_timeout_ms;
	char *application_name;
	char *sslmode;		/* added when the URL names none; NULL: libpq's */

	/* The admission gate in front of the pool (db/admission.h) */
	int db_admission;		/* DB_ADMISSION: 0 adaptive, 1 fixed, 2 off (enum admission_mode) */
	int db_admission_min;		/* DB_ADMISSION_MIN: the fewest places */
	int db_admission_queue;		/* DB_ADMISSION_QUEUE: the most waiting requests */
	int db_admission_target_ms;	/* DB_ADMISSION_TARGET_MS: CoDel's target queue delay (a person's) */
	int db_admission_background_ms;	/* DB_ADMISSION_BACKGROUND_MS: the same for background requests */
	int db_admission_interval_ms;	/* DB_ADMISSION_INTERVAL_MS: CoDel's interval */

	/* Read replicas (replicas.h) */
	char *replica_urls;	/* DATABASE_REPLICA_URLS as given: comma-separated; "" none */
	int replica_max_lag_ms;	/* DB_REPLICA_MAX_LAG_MS: a replica further behind serves nothing */
	/*
	 * DB_REPLICAS_SYNCHRONOUS: every replica is a synchronous standby
	 * (each commit waits for its flush): while the primary cannot be
	 * reached, sessions may be checked on one (sessions.c).
	 */
	int replicas_synchronous;

	/* Redis */
	char *redis_url_text;	/* as given (never log) */
	struct redis_url redis;
	struct redis_sentinels sentinels;
	int cache_ttl;		/* seconds */
	int cache_timeout_ms;	/* Redis connect and command timeout */

	/* Server */
	char *fcgi_listen;	/* "unix:/path" or "host:port" */
	char *web_server_addrs;	/* FCGI_WEB_SERVER_ADDRS: TCP peers allowed; "" loopback, "*" any */
	int workers;
	int workers_active;	/* of them taking requests at once; 0: two per CPU */
	int shutdown_timeout;	/* seconds in-flight requests get on SIGTERM */
	int request_timeout;	/* FCGI_REQUEST_TIMEOUT: seconds to read a whole request */
	int idle_timeout;	/* FCGI_IDLE_TIMEOUT: seconds a kept connection may stay idle */
	size_t max_body;	/* bytes */

	/* Authentication */
	int session_idle;	/* seconds without a request before a session ends */
	int session_absolute;	/* seconds after login when a session ends anyway */
	int login_max_failures;	/* per username and per client address... */
	int login_window;	/* ...in this many seconds */
	char *allowed_origins;	/* extra Origins for writes, comma-separated */
	char *metrics_token;	/* bearer token for /metrics without a session; "" none */

	/* Observability */
	double slow_request_ms;	/* requests slower than this log a warning */
	double alert_query_ms, alert_pool_percent, alert_memory_percent,
	       alert_error_percent, alert_pool_timeouts,
	       alert_low_stock;	/* ALERT_LOW_STOCK_PAINTS: low paints that fire the alert */
	struct {			/* what /admin/metrics's indicators are held to */
		double query_ms;		/* p50 and p99 database time below */
		double pool_percent;		/* peak pool use below */
		double cache_hit_percent;	/* hit rate above */
		double error_percent;		/* 5xx rate below */
		double server_connections;	/* PostgreSQL connections open below */
	} target;

	/* The catalogue */
	int low_stock_threshold;	/* LOW_STOCK_THRESHOLD: for paints without their own; 0 none */

	/* Logging */
	enum log_level log_level;
	enum log_format log_format;
};

/*
 * Fill cfg from envp (a NULL-terminated "NAME=value" array like environ),
 * applying the profile named by APP_ENV (or implied by RAILWAY_ENVIRONMENT)
 * and then explicit variables, which win. Returns 0, or -1 with one line in
 * err naming the variable and what it accepts; cfg then holds nothing to
 * free. On success the caller owns cfg and calls config_free.
 */
int config_load(struct config *cfg, char *const *envp, char *err, size_t errlen);
void config_free(struct config *cfg);

/*
 * Parse redis://[[user]:password@]host[:port][/db] (host may be [v6]) or
 * unix://[[user]:password@]/absolute/path[?db=N] (redis-py's and Lettuce's
 * form; the path at most REDIS_URL_PATH_MAX bytes once %-decoded).
 * Returns 0 and fills out (caller frees with redis_url_free), or -1 with
 * the reason in err (never the password).
 */
int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen);
void redis_url_free(struct redis_url *u);

/* Whether u names a server (TCP or unix socket): else the cache is off. */
int redis_url_given(const struct redis_url *u);

/*
 * Where u points, for people: "unix:/path" or "host:port" ([v6]:port),
 * never the password. Writes at most len bytes into buf; returns buf.
 */
const char *redis_url_where(const struct redis_url *u, char *buf, size_t len);

/*
 * Check DATABASE_REPLICA_URLS: empty, or postgres:// URLs separated by
 * commas (at most CONFIG_MAX_REPLICAS), each as DATABASE_URL accepts it.
 * Returns the count, or -1 with one line in err naming the variable and
 * the position of the bad entry (never the URL: it may hold a password).
 */
#define CONFIG_MAX_REPLICAS 8
int config_check_replica_urls(const char *list, char *err, size_t errlen);

/* "development" / "production" */
const char *config_env_name(enum app_env env);

#endif
