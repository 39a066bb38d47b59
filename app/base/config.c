/*
 * config: every setting read once from the environment (nothing else
 * reads it), given the profile's default, validated with a one-line
 * message that names the variable, and stored in struct config. One small
 * loader per section (database, cache, server, auth, observability); the
 * REDIS_URL parser (redis:// and unix://) lives here too.
 */
#define _GNU_SOURCE
#include "base/config.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define LOCAL_DATABASE_URL "postgresql://paintstudio@127.0.0.1:55432/paintstudio"
#define LOCAL_REDIS_URL "redis://127.0.0.1:56379/0"
#define LOCAL_FCGI_LISTEN "unix:var/run/paintstudio.sock"

/* The profile-dependent pool defaults (the configuration reference, "Configuration"). */
struct profile {
	int pool_size, max_overflow, pool_timeout, pool_recycle, pre_ping;
	const char *sslmode;
};

static const struct profile development = { 3, 5, 30, 3600, 0, NULL };
static const struct profile production = { 5, 10, 20, 300, 1, "require" };

static const char *env_get(char *const *envp, const char *name);
static int get_int(char *const *envp, const char *name, int def, int min,
		   int max, int *out, char *err, size_t errlen);
static int get_str(char *const *envp, const char *name, const char *def,
		   size_t maxlen, char **out, char *err, size_t errlen);
static int check_database_url(const char *url, int keywords, char *err, size_t errlen);
static int check_listen(const char *s, char *err, size_t errlen);
static int check_token(const char *s, char *err, size_t errlen);
static int check_peer_list(const char *s, char *err, size_t errlen);
static int is_placeholder(const char *password);
static int check_pg_password(const char *name, const char *url, char *err, size_t errlen);
static int check_placeholders(const struct config *cfg, char *err, size_t errlen);
static int load_admission(struct config *cfg, char *const *envp, char *err, size_t errlen);

const char *config_env_name(enum app_env env)
{
	return env == APP_ENV_PRODUCTION ? "production" : "development";
}

/* The value of name in envp, or NULL when unset. */
static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

static int get_int(char *const *envp, const char *name, int def, int min,
		   int max, int *out, char *err, size_t errlen)
{
	const char *v = env_get(envp, name);
	int64_t n;

	if (v == NULL || *v == '\0') {
		*out = def;
		return 0;
	}
	if (parse_int64(v, min, max, &n) != 0) {
		snprintf(err, errlen, "%s=%s is invalid: expected a whole number from %d to %d",
			 name, v, min, max);
		return -1;
	}
	*out = (int)n;
	return 0;
}

static int get_str(char *const *envp, const char *name, const char *def,
		   size_t maxlen, char **out, char *err, size_t errlen)
{
	const char *v = env_get(envp, name);

	if (v == NULL)
		v = def;
	if (strlen(v) > maxlen) {
		snprintf(err, errlen, "%s is too long: at most %zu characters", name, maxlen);
		return -1;
	}
	*out = xstrdup(v);
	return 0;
}

/*
 * Accept postgres:// and postgresql:// URLs that libpq can parse, and
 * with keywords libpq's "key=value ..." form too (naming a host): either
 * may list several hosts and ports for a failover set
 * (postgresql://u@a:5432,b:5432/db?target_session_attrs=read-write, or
 * host=a,b port=5432,5432 target_session_attrs=read-write).
 */
static int check_database_url(const char *url, int keywords, char *err, size_t errlen)
{
	PQconninfoOption *opts;
	char *perr = NULL;
	int is_url = strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;

	if (!is_url && !(keywords && strchr(url, '=') != NULL)) {
		snprintf(err, errlen, keywords
			 ? "DATABASE_URL is invalid: expected postgres://user:password@host:port/dbname, "
			   "postgresql://..., or libpq's host=... port=... dbname=... form"
			 : "DATABASE_URL is invalid: expected postgres://user:password@host:port/dbname or postgresql://...");
		return -1;
	}
	opts = PQconninfoParse(url, &perr);
	if (opts == NULL) {
		/* libpq's message may quote the URL: do not repeat it. */
		snprintf(err, errlen, "DATABASE_URL is invalid: libpq cannot parse it");
		PQfreemem(perr);
		return -1;
	}
	if (!is_url) {
		int host = 0;

		for (PQconninfoOption *o = opts; o->keyword; o++)
			if ((strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0) &&
			    o->val && *o->val)
				host = 1;
		if (!host) {
			snprintf(err, errlen, "DATABASE_URL is invalid: it names no host (host=...)");
			PQconninfoFree(opts);
			return -1;
		}
	}
	/* libpq keeps ports as text: check each (a list for several hosts). */
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		char *list, *tok, *save = NULL;
		int64_t port;

		if (strcmp(o->keyword, "port") != 0 || o->val == NULL || *o->val == '\0')
			continue;
		list = xstrdup(o->val);
		for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (*tok && parse_int64(tok, 1, 65535, &port) != 0) {
				snprintf(err, errlen, "DATABASE_URL is invalid: port must be 1-65535");
				free(list);
				PQconninfoFree(opts);
				return -1;
			}
		}
		free(list);
	}
	PQconninfoFree(opts);
	return 0;
}

static int check_listen(const char *s, char *err, size_t errlen)
{
	const char *colon;
	int64_t port;

	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] == '\0' || strlen(s + 5) >= 108) {
			snprintf(err, errlen, "FCGI_LISTEN=%s is invalid: unix socket path empty or longer than 107 bytes", s);
			return -1;
		}
		return 0;
	}
	colon = strrchr(s, ':');
	if (colon == NULL || parse_int64(colon + 1, 1, 65535, &port) != 0) {
		snprintf(err, errlen, "FCGI_LISTEN=%s is invalid: expected unix:/path or host:port (port 1-65535)", s);
		return -1;
	}
	return 0;
}

/* METRICS_TOKEN: empty (no token), or 32..256 visible ASCII characters. */
static int check_token(const char *s, char *err, size_t errlen)
{
	size_t n = strlen(s), i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] <= ' ' || s[i] > '~') {
			snprintf(err, errlen, "METRICS_TOKEN is invalid: only visible ASCII characters, no spaces");
			return -1;
		}
	}
	if (n < 32) {
		snprintf(err, errlen, "METRICS_TOKEN is too short: at least 32 characters (openssl rand -hex 32 makes one)");
		return -1;
	}
	return 0;
}

/*
 * FCGI_WEB_SERVER_ADDRS (libfcgi's convention): comma-separated IPv4 or
 * IPv6 addresses, or host names (resolved when a peer is checked); empty
 * means loopback only, and "*" alone means any peer (peers.h).
 */
static int check_peer_list(const char *s, char *err, size_t errlen)
{
	const char *p = s;

	if (strcmp(s, "*") == 0)
		return 0;
	if (strchr(s, '*')) {
		snprintf(err, errlen, "FCGI_WEB_SERVER_ADDRS is invalid: \"*\" (any peer) must stand alone");
		return -1;
	}

	while (*p) {
		size_t len = strcspn(p, ","), i;

		while (len > 0 && p[len - 1] == ' ')
			len--;
		for (i = 0; i < len; i++) {
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:", p[i]))
				break;
		}
		if (len == 0 || i < len || len > 253) {
			snprintf(err, errlen, "FCGI_WEB_SERVER_ADDRS is invalid: expected comma-separated "
				 "IP addresses or host names (e.g. 127.0.0.1,nginx)");
			return -1;
		}
		p += strcspn(p, ",");
		p += strspn(p, ", ");
	}
	return 0;
}

/*
 * Whether password is one of the stand-ins that example files and guides
 * carry (change-me, password, postgres, ...), compared without case and
 * without punctuation, so Change_Me and CHANGEME count too.
 */
static int is_placeholder(const char *password)
{
	static const char *const exact[] = {
		"changeme", "changeit", "password", "passwd", "postgres", "redis",
		"example", "placeholder", "secret", "default", "admin", "paintstudio",
	};
	static const char *const within[] = { "changeme", "placeholder", "yourpassword", "xxxxxx" };
	char norm[64];
	size_t n = 0, i;

	for (; *password; password++) {
		unsigned char ch = (unsigned char)*password;

		if (n + 1 >= sizeof(norm))
			return 0;	/* long: not one of these */
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
			norm[n++] = (char)ch;
		else if (ch >= 'A' && ch <= 'Z')
			norm[n++] = (char)(ch - 'A' + 'a');
	}
	norm[n] = '\0';
	for (i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strcmp(norm, exact[i]) == 0)
			return 1;
	for (i = 0; i < sizeof(within) / sizeof(within[0]); i++)
		if (strstr(norm, within[i]))
			return 1;
	return 0;
}

/* A postgres:// URL (already checked) whose password is a placeholder: -1. */
static int check_pg_password(const char *name, const char *url, char *err, size_t errlen)
{
	PQconninfoOption *opts = PQconninfoParse(url, NULL);
	int bad = 0;

	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && is_placeholder(o->val))
			bad = 1;
	PQconninfoFree(opts);
	if (bad)
		/* (the password is not quoted: a near miss may be a real one) */
		snprintf(err, errlen, "%s has a placeholder password (like change-me): production "
			 "refuses it; set a generated one (openssl rand -hex 24)", name);
	return bad ? -1 : 0;
}

/*
 * The production profile refuses placeholder passwords in DATABASE_URL,
 * each DATABASE_REPLICA_URLS entry and REDIS_URL: an example file copied
 * as it is must not become a deployment.
 */
static int check_placeholders(const struct config *cfg, char *err, size_t errlen)
{
	const char *p = cfg->replica_urls;

	if (check_pg_password("DATABASE_URL", cfg->database_url, err, errlen))
		return -1;
	while (*p) {
		size_t len = strcspn(p, ","), keep = len;
		char *one;
		int rc;

		while (keep > 0 && p[keep - 1] == ' ')
			keep--;
		one = xstrndup(p, keep);
		rc = check_pg_password("DATABASE_REPLICA_URLS", one, err, errlen);

		free(one);
		if (rc)
			return -1;
		p += len;
		p += strspn(p, ", ");
	}
	if (cfg->redis.password && is_placeholder(cfg->redis.password)) {
		snprintf(err, errlen, "REDIS_URL has a placeholder password (like change-me): production "
			 "refuses it; set a generated one (openssl rand -hex 24)");
		return -1;
	}
	return 0;
}

int config_check_replica_urls(const char *list, char *err, size_t errlen)
{
	const char *p = list;
	int n = 0;

	while (*p) {
		size_t len = strcspn(p, ",");
		char *one, why[256];
		const char *msg;

		while (len > 0 && p[len - 1] == ' ')
			len--;
		one = xstrndup(p, len);
		n++;
		if (len == 0 || check_database_url(one, 0, why, sizeof(why)) != 0) {
			/* why names DATABASE_URL: keep only its reason. */
			msg = strstr(why, "is invalid: ");
			snprintf(err, errlen, "DATABASE_REPLICA_URLS is invalid: entry %d: %s", n,
				 len == 0 ? "empty (expected postgres:// URLs separated by commas)"
				 : msg ? msg + 12 : why);
			free(one);
			return -1;
		}
		free(one);
		if (n > CONFIG_MAX_REPLICAS) {
			snprintf(err, errlen, "DATABASE_REPLICA_URLS is invalid: at most %d replicas",
				 CONFIG_MAX_REPLICAS);
			return -1;
		}
		p += strcspn(p, ",");
		if (*p == ',') {
			p++;
			p += strspn(p, " ");
			if (*p == '\0') {
				snprintf(err, errlen, "DATABASE_REPLICA_URLS is invalid: entry %d: empty "
					 "(expected postgres:// URLs separated by commas)", n + 1);
				return -1;
			}
		}
	}
	return n;
}

static int parse_enum(char *const *envp, const char *name, const char *def,
		      const char *const *names, int count, int *out,
		      char *err, size_t errlen)
{
	const char *v = env_get(envp, name);
	int i;

	if (v == NULL || *v == '\0')
		v = def;
	for (i = 0; i < count; i++) {
		if (strcasecmp(v, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	snprintf(err, errlen, "%s=%s is invalid: expected one of", name, v);
	for (i = 0; i < count; i++) {
		size_t used = strlen(err);

		snprintf(err + used, errlen - used, "%s %s", i ? "," : "", names[i]);
	}
	return -1;
}

/*
 * The sections of config_load. Each reads its variables into cfg and
 * returns 0, or -1 with the message in err; config_load frees cfg then.
 */
static int load_database(struct config *cfg, char *const *envp, const struct profile *pr,
			 char *err, size_t errlen)
{
	int timeout;

	if (get_str(envp, "DATABASE_URL", LOCAL_DATABASE_URL, 4096,
		    &cfg->database_url, err, errlen) ||
	    check_database_url(cfg->database_url, 1, err, errlen))
		return -1;
	if (get_int(envp, "DB_POOL_SIZE", pr->pool_size, 1, 1000, &cfg->pool_size, err, errlen) ||
	    get_int(envp, "DB_MAX_OVERFLOW", pr->max_overflow, 0, 1000, &cfg->max_overflow, err, errlen) ||
	    get_int(envp, "DB_POOL_TIMEOUT", pr->pool_timeout, 1, 3600, &timeout, err, errlen) ||
	    get_int(envp, "DB_POOL_RECYCLE", pr->pool_recycle, 1, 86400 * 7, &cfg->pool_recycle, err, errlen) ||
	    get_int(envp, "DB_POOL_PRE_PING", pr->pre_ping, 0, 1, &cfg->pool_pre_ping, err, errlen) ||
	    get_int(envp, "DB_POOL_IDLE_TIMEOUT", 60, 1, 86400, &cfg->pool_idle_timeout, err, errlen) ||
	    get_int(envp, "DB_CONNECT_TIMEOUT", 10, 1, 600, &cfg->connect_timeout, err, errlen) ||
	    get_int(envp, "DB_STATEMENT_TIMEOUT_MS", 5000, 1, 3600 * 1000, &cfg->statement_timeout_ms, err, errlen))
		return -1;
	cfg->pool_timeout = timeout;
	if (get_str(envp, "DB_APPLICATION_NAME", "paint_studio", 63,
		    &cfg->application_name, err, errlen))
		return -1;
	if (pr->sslmode)
		cfg->sslmode = xstrdup(pr->sslmode);
	if (get_str(envp, "DATABASE_REPLICA_URLS", "", 16384, &cfg->replica_urls, err, errlen) ||
	    config_check_replica_urls(cfg->replica_urls, err, errlen) < 0 ||
	    get_int(envp, "DB_REPLICA_MAX_LAG_MS", 1000, 1, 3600 * 1000, &cfg->replica_max_lag_ms, err, errlen) ||
	    get_int(envp, "DB_REPLICAS_SYNCHRONOUS", 0, 0, 1, &cfg->replicas_synchronous, err, errlen))
		return -1;
	return load_admission(cfg, envp, err, errlen);
}

/*
 * The admission gate in front of the pool (app/db/admission.h): its mode
 * (adaptive, fixed or off, in enum admission_mode's order), the fewest
 * places, the queue's length and CoDel's target and interval.
 */
static int load_admission(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	static const char *const modes[] = { "adaptive", "fixed", "off" };

	if (parse_enum(envp, "DB_ADMISSION", "adaptive", modes, 3, &cfg->db_admission, err, errlen) ||
	    get_int(envp, "DB_ADMISSION_MIN", 3, 1, 1000, &cfg->db_admission_min, err, errlen) ||
	    get_int(envp, "DB_ADMISSION_QUEUE", 1024, 0, 100000, &cfg->db_admission_queue, err, errlen) ||
	    get_int(envp, "DB_ADMISSION_TARGET_MS", 300, 1, 60000, &cfg->db_admission_target_ms, err, errlen) ||
	    get_int(envp, "DB_ADMISSION_BACKGROUND_MS", 50, 1, 60000, &cfg->db_admission_background_ms,
		    err, errlen) ||
	    get_int(envp, "DB_ADMISSION_INTERVAL_MS", 100, 1, 60000, &cfg->db_admission_interval_ms,
		    err, errlen))
		return -1;
	return 0;	/* a floor above the pool's ceiling is brought down to it (admission.h) */
}

/*
 * REDIS_SENTINELS: "host:port,host:port,..." (at most REDIS_SENTINELS_MAX;
 * an IPv6 address in brackets), with REDIS_SENTINEL_MASTER (a name of
 * letters, digits, '.', '_', '-') and REDIS_SENTINEL_PASSWORD.
 */
static int load_sentinels(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	struct redis_sentinels *s = &cfg->sentinels;
	const char *list = env_get(envp, "REDIS_SENTINELS"), *item, *colon;
	char *text = NULL;
	size_t len, hlen;
	int64_t port;

	if (list == NULL || *list == '\0')
		return 0;
	if (cfg->redis.host == NULL) {
		snprintf(err, errlen, "REDIS_SENTINELS needs a redis:// REDIS_URL (for the master's "
			 "password and database; its host is asked of the sentinels)");
		return -1;
	}
	while ((item = list_next(&list, &len)) != NULL) {
		if (s->n == REDIS_SENTINELS_MAX) {
			snprintf(err, errlen, "REDIS_SENTINELS is invalid: at most %d sentinels",
				 REDIS_SENTINELS_MAX);
			return -1;
		}
		text = xstrndup(item, len);
		colon = strrchr(text, ':');
		hlen = colon ? (size_t)(colon - text) : 0;
		if (hlen > 2 && text[0] == '[' && text[hlen - 1] == ']') {
			memmove(text, text + 1, hlen - 2);
			text[hlen - 2] = '\0';
		} else if (colon) {
			text[hlen] = '\0';
		}
		if (colon == NULL || hlen == 0 || strlen(text) > 255 ||
		    strspn(text, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:") !=
			    strlen(text) ||
		    parse_int64(colon + 1, 1, 65535, &port) != 0) {
			snprintf(err, errlen, "REDIS_SENTINELS is invalid: expected host:port[,host:port...]");
			free(text);
			return -1;
		}
		s->host[s->n] = text;
		s->port[s->n++] = (int)port;
	}
	if (get_str(envp, "REDIS_SENTINEL_MASTER", "paintstudio", 64, &s->master, err, errlen))
		return -1;
	if (s->master[0] == '\0' ||
	    strspn(s->master, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._-") !=
		    strlen(s->master)) {
		snprintf(err, errlen, "REDIS_SENTINEL_MASTER is invalid: letters, digits, '.', '_' or '-'");
		return -1;
	}
	if (get_str(envp, "REDIS_SENTINEL_PASSWORD", "", 512, &s->password, err, errlen))
		return -1;
	if (s->password[0] == '\0') {
		free(s->password);
		s->password = NULL;
	}
	return 0;
}

static int load_cache(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	if (get_str(envp, "REDIS_URL", LOCAL_REDIS_URL, 4096,
		    &cfg->redis_url_text, err, errlen))
		return -1;
	if (cfg->redis_url_text[0] != '\0') {
		char why[200];

		if (redis_url_parse(cfg->redis_url_text, &cfg->redis, why, sizeof(why))) {
			snprintf(err, errlen, "REDIS_URL is invalid: %s", why);
			return -1;
		}
	}
	return load_sentinels(cfg, envp, err, errlen) ||
	       get_int(envp, "CACHE_TTL", 300, 1, 86400 * 30, &cfg->cache_ttl, err, errlen) ||
	       get_int(envp, "CACHE_TIMEOUT_MS", 100, 1, 10000, &cfg->cache_timeout_ms, err, errlen)
		       ? -1 : 0;
}

static int load_server(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	int max_body_kb;

	if (get_str(envp, "FCGI_LISTEN", LOCAL_FCGI_LISTEN, 200,
		    &cfg->fcgi_listen, err, errlen) ||
	    check_listen(cfg->fcgi_listen, err, errlen))
		return -1;
	if (get_str(envp, "FCGI_WEB_SERVER_ADDRS", "", 1000, &cfg->web_server_addrs, err, errlen) ||
	    check_peer_list(cfg->web_server_addrs, err, errlen))
		return -1;
	if (get_int(envp, "WORKERS", 16, 1, 1024, &cfg->workers, err, errlen) ||
	    get_int(envp, "WORKERS_ACTIVE", 0, 0, 1024, &cfg->workers_active, err, errlen) ||
	    get_int(envp, "SHUTDOWN_TIMEOUT", 25, 0, 3600, &cfg->shutdown_timeout, err, errlen) ||
	    get_int(envp, "FCGI_REQUEST_TIMEOUT", 30, 1, 3600, &cfg->request_timeout, err, errlen) ||
	    get_int(envp, "FCGI_IDLE_TIMEOUT", 75, 1, 86400, &cfg->idle_timeout, err, errlen) ||
	    get_int(envp, "MAX_BODY_KB", 64, 1, 10240, &max_body_kb, err, errlen))
		return -1;
	cfg->max_body = (size_t)max_body_kb * 1024;
	return 0;
}

static int load_auth(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	int v;

	if (get_int(envp, "SESSION_IDLE_MINUTES", 30, 1, 60 * 24 * 30, &v, err, errlen))
		return -1;
	cfg->session_idle = v * 60;
	if (get_int(envp, "SESSION_ABSOLUTE_HOURS", 12, 1, 24 * 90, &v, err, errlen))
		return -1;
	cfg->session_absolute = v * 3600;
	return get_int(envp, "LOGIN_MAX_FAILURES", 5, 1, 1000, &cfg->login_max_failures, err, errlen) ||
	       get_int(envp, "LOGIN_WINDOW_SECONDS", 900, 1, 86400, &cfg->login_window, err, errlen) ||
	       get_str(envp, "ALLOWED_ORIGINS", "", 2000, &cfg->allowed_origins, err, errlen) ||
	       get_str(envp, "METRICS_TOKEN", "", 256, &cfg->metrics_token, err, errlen) ||
	       check_token(cfg->metrics_token, err, errlen)
		       ? -1 : 0;
}

/* Thresholds: the slow-request log, the alerts, and /admin/metrics's targets. */
static int load_observability(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	static const struct { const char *name; int def, max; size_t off; } knobs[] = {
		{ "SLOW_REQUEST_MS", 500, 3600000, offsetof(struct config, slow_request_ms) },
		{ "ALERT_QUERY_TIME_MS", 5000, 3600000, offsetof(struct config, alert_query_ms) },
		{ "ALERT_POOL_UTILISATION", 80, 100, offsetof(struct config, alert_pool_percent) },
		{ "ALERT_MEMORY_PERCENT", 85, 100, offsetof(struct config, alert_memory_percent) },
		{ "ALERT_ERROR_RATE", 5, 100, offsetof(struct config, alert_error_percent) },
		{ "ALERT_CONNECTION_TIMEOUTS", 3, 1000000, offsetof(struct config, alert_pool_timeouts) },
		{ "ALERT_LOW_STOCK_PAINTS", 1, 100000000, offsetof(struct config, alert_low_stock) },
		{ "TARGET_QUERY_MS", 2000, 3600000, offsetof(struct config, target.query_ms) },
		{ "TARGET_POOL_USAGE", 80, 100, offsetof(struct config, target.pool_percent) },
		{ "TARGET_CACHE_HIT_RATE", 70, 100, offsetof(struct config, target.cache_hit_percent) },
		{ "TARGET_ERROR_RATE", 1, 100, offsetof(struct config, target.error_percent) },
		{ "TARGET_SERVER_CONNECTIONS", 15, 100000, offsetof(struct config, target.server_connections) },
	};
	size_t k;
	int v;

	for (k = 0; k < sizeof(knobs) / sizeof(knobs[0]); k++) {
		if (get_int(envp, knobs[k].name, knobs[k].def, 1, knobs[k].max, &v, err, errlen))
			return -1;
		*(double *)((char *)cfg + knobs[k].off) = v;
	}
	return 0;
}

/* The catalogue's rules: the default low-stock threshold (0: paints without their own are never low). */
static int load_catalogue(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	/* The bound is the stock's (PAINT_MAX_STOCK, a layer above this one). */
	return get_int(envp, "LOW_STOCK_THRESHOLD", 5, 0, 1000000, &cfg->low_stock_threshold,
		       err, errlen);
}

int config_load(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
	static const char *const envs[] = { "development", "production" };
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	static const char *const formats[] = { "json", "text" };
	const struct profile *pr;
	const char *railway = env_get(envp, "RAILWAY_ENVIRONMENT");
	int v;

	memset(cfg, 0, sizeof(*cfg));
	if (parse_enum(envp, "APP_ENV",
		       railway && *railway ? "production" : "development",
		       envs, 2, &v, err, errlen))
		goto fail;
	cfg->env = (enum app_env)v;
	pr = cfg->env == APP_ENV_PRODUCTION ? &production : &development;
	if (load_database(cfg, envp, pr, err, errlen) || load_cache(cfg, envp, err, errlen) ||
	    load_server(cfg, envp, err, errlen) || load_auth(cfg, envp, err, errlen) ||
	    load_observability(cfg, envp, err, errlen) || load_catalogue(cfg, envp, err, errlen))
		goto fail;
	if (cfg->env == APP_ENV_PRODUCTION && check_placeholders(cfg, err, errlen))
		goto fail;
	if (parse_enum(envp, "LOG_LEVEL", "info", levels, 4, &v, err, errlen))
		goto fail;
	cfg->log_level = (enum log_level)v;
	if (parse_enum(envp, "LOG_FORMAT", "json", formats, 2, &v, err, errlen))
		goto fail;
	cfg->log_format = (enum log_format)v;
	return 0;
fail:
	config_free(cfg);
	return -1;
}

void config_free(struct config *cfg)
{
	free(cfg->database_url);
	free(cfg->application_name);
	free(cfg->sslmode);
	free(cfg->replica_urls);
	free(cfg->redis_url_text);
	redis_url_free(&cfg->redis);
	for (int i = 0; i < cfg->sentinels.n; i++)
		free(cfg->sentinels.host[i]);
	free(cfg->sentinels.master);
	free(cfg->sentinels.password);
	free(cfg->fcgi_listen);
	free(cfg->allowed_origins);
	free(cfg->metrics_token);
	free(cfg->web_server_addrs);
	memset(cfg, 0, sizeof(*cfg));
}

void redis_url_free(struct redis_url *u)
{
	free(u->host);
	free(u->path);
	free(u->username);
	free(u->password);
	memset(u, 0, sizeof(*u));
}

int redis_url_given(const struct redis_url *u)
{
	return u->host != NULL || u->path != NULL;
}

const char *redis_url_where(const struct redis_url *u, char *buf, size_t len)
{
	if (u->path)
		snprintf(buf, len, "unix:%s", u->path);
	else if (u->host && strchr(u->host, ':'))
		snprintf(buf, len, "[%s]:%d", u->host, u->port);
	else
		snprintf(buf, len, "%s:%d", u->host ? u->host : "", u->port);
	return buf;
}

/*
 * The pieces of redis_url_parse. Each reads from *p (advancing it) up to
 * slash, the start of the path; 0, or -1 with the reason in err.
 */
static int url_userinfo(const char **p, const char *slash, struct redis_url *out,
			char *err, size_t errlen)
{
	const char *at = NULL, *colon, *q;

	/* The last '@' before the path ends the userinfo (passwords may hold '@'). */
	for (q = *p; q < slash; q++)
		if (*q == '@')
			at = q;
	if (at == NULL)
		return 0;
	colon = memchr(*p, ':', (size_t)(at - *p));
	if (colon ? (colon > *p && pct_decode(*p, (size_t)(colon - *p), 0, &out->username)) ||
			    pct_decode(colon + 1, (size_t)(at - colon - 1), 0, &out->password)
		  : pct_decode(*p, (size_t)(at - *p), 0, &out->password) != 0) {
		/* (redis://password@host: a bare password) */
		snprintf(err, errlen, "bad %%-escape in the user or password");
		return -1;
	}
	*p = at + 1;
	return 0;
}

static int url_host(const char **p, const char *slash, struct redis_url *out,
		    char *err, size_t errlen)
{
	const char *hostend;

	if (**p == '[') {
		hostend = memchr(*p, ']', (size_t)(slash - *p));
		if (hostend == NULL || hostend == *p + 1) {
			snprintf(err, errlen, "unterminated or empty [IPv6] host");
			return -1;
		}
		out->host = xstrndup(*p + 1, (size_t)(hostend - *p - 1));
		*p = hostend + 1;
	} else {
		hostend = memchr(*p, ':', (size_t)(slash - *p));
		if (hostend == NULL)
			hostend = slash;
		if (hostend == *p) {
			snprintf(err, errlen, "missing host");
			return -1;
		}
		out->host = xstrndup(*p, (size_t)(hostend - *p));
		*p = hostend;
	}
	if (strspn(out->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%") != strlen(out->host)) {
		snprintf(err, errlen, "host has characters not allowed in a host name");
		return -1;
	}
	return 0;
}

static int url_port(const char *p, const char *slash, struct redis_url *out,
		    char *err, size_t errlen)
{
	char port[8];
	size_t len;
	int64_t n;

	if (*p != ':') {
		if (p == slash)
			return 0;
		snprintf(err, errlen, "unexpected characters after the host");
		return -1;
	}
	len = (size_t)(slash - p - 1);
	if (len == 0 || len >= sizeof(port)) {
		snprintf(err, errlen, "port must be 1-65535");
		return -1;
	}
	memcpy(port, p + 1, len);
	port[len] = '\0';
	if (parse_int64(port, 1, 65535, &n)) {
		snprintf(err, errlen, "port must be 1-65535");
		return -1;
	}
	out->port = (int)n;
	return 0;
}

/* The database number: the len bytes at s. */
static int url_db(const char *s, size_t len, struct redis_url *out, char *err, size_t errlen)
{
	char num[8];
	int64_t n;

	if (len > 0 && len < sizeof(num)) {
		memcpy(num, s, len);
		num[len] = '\0';
		if (parse_int64(num, 0, 999, &n) == 0) {
			out->db = (int)n;
			return 0;
		}
	}
	snprintf(err, errlen, "database must be a number from 0 to 999");
	return -1;
}

/* "db=N" pairs after a unix socket's path (q: just past the '?'). */
static int url_query(const char *q, struct redis_url *out, char *err, size_t errlen)
{
	while (*q) {
		size_t len = strcspn(q, "&");

		if (len >= 3 && strncmp(q, "db=", 3) == 0) {
			if (url_db(q + 3, len - 3, out, err, errlen))
				return -1;
		} else if (len != 0) {
			/* (not quoted: it could hold a secret) */
			snprintf(err, errlen, "unknown parameter after the socket's path: only ?db=N is accepted");
			return -1;
		}
		q += len;
		if (*q == '&')
			q++;
	}
	return 0;
}

/* redis://[[user]:password@]host[:port][/db], from just past the scheme. */
static int parse_tcp(const char *p, struct redis_url *out, char *err, size_t errlen)
{
	const char *slash;

	out->port = 6379;
	if ((slash = strchr(p, '/')) == NULL)
		slash = p + strlen(p);
	if (url_userinfo(&p, slash, out, err, errlen) || url_host(&p, slash, out, err, errlen) ||
	    url_port(p, slash, out, err, errlen))
		return -1;
	if (*slash == '/' && slash[1] != '\0')
		return url_db(slash + 1, strlen(slash + 1), out, err, errlen);
	return 0;
}

/* unix://[[user]:password@]/absolute/path[?db=N], from just past the scheme. */
static int parse_unix(const char *p, struct redis_url *out, char *err, size_t errlen)
{
	const char *slash, *q;
	size_t len;

	if ((slash = strchr(p, '/')) == NULL)
		slash = p + strlen(p);
	if (url_userinfo(&p, slash, out, err, errlen))
		return -1;
	if (*p == '\0' || *p == '?') {
		snprintf(err, errlen, "missing the socket's path: unix:///path/to/redis.sock");
		return -1;
	}
	if (p != slash) {
		snprintf(err, errlen, "the socket's path must be absolute: unix:///path/to/redis.sock");
		return -1;
	}
	q = strchr(slash, '?');
	len = q ? (size_t)(q - slash) : strlen(slash);
	if (pct_decode(slash, len, 0, &out->path) != 0) {
		snprintf(err, errlen, "bad %%-escape in the socket's path");
		return -1;
	}
	if (strlen(out->path) > REDIS_URL_PATH_MAX) {
		snprintf(err, errlen, "the socket's path is longer than %d bytes", REDIS_URL_PATH_MAX);
		return -1;
	}
	if (out->path[strlen(out->path) - 1] == '/') {
		snprintf(err, errlen, "the socket's path names a directory");
		return -1;
	}
	return q ? url_query(q + 1, out, err, errlen) : 0;
}

int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (strncmp(url, "redis://", 8) == 0) {
		rc = parse_tcp(url + 8, out, err, errlen);
	} else if (strncmp(url, "unix://", 7) == 0) {
		rc = parse_unix(url + 7, out, err, errlen);
	} else {
		snprintf(err, errlen, "expected redis://[:password@]host:port[/db] or unix://[:password@]/path/to/redis.sock[?db=N]");
		rc = -1;
	}
	if (rc != 0)
		redis_url_free(out);
	return rc;
}
