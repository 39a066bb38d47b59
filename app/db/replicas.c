/*
 * replicas: the replicas' pools, the housekeeper's sampling of their replay
 * positions against the primary's, the choice of a replica for a read (or
 * none), and the signed read-your-writes cookie. Design in replicas.h;
 * the cache's side of it is piece R in cache.c.
 */
#define _GNU_SOURCE
#include "db/replicas.h"

#include <assert.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include "db/pgconnect.h"
#include "db/pool.h"

/* Primary samples kept: lag is measured back to the oldest (a minute). */
#define HISTORY 64
/* Each sample's connect and statement bound, so a dead server costs the housekeeper little. */
#define SAMPLE_TIMEOUT_S 0.5
#define SAMPLE_STATEMENT_MS 1000

struct replica {
	char name[REPLICAS_NAME_LEN];
	char *url;			/* owned */
	struct pool_settings set;	/* the primary's, with url */
	struct pool *pool;
	PGconn *probe;			/* the housekeeper's own connection */
	int warned;			/* logged that it is unreachable (housekeeper only) */
	/* Written by the housekeeper, read by requests without a lock. */
	atomic_int reachable;
	atomic_int failed;		/* a request saw it fail since the last good sample */
	atomic_llong lag_us;		/* -1 unknown */
	atomic_ullong replay_lsn;
	atomic_ullong reads, fallbacks, skipped_lag, skipped_position;
};

/* Set by replicas_setup before threads start; the array is fixed afterwards. */
static struct replica reps[CONFIG_MAX_REPLICAS];
static int nreps;
static long long max_lag_us;
static struct pool_settings primary_set;
static char probe_app_name[96];
static atomic_uint next_pick;
static atomic_ullong primary_latest;

/* The housekeeper's alone (replicas_housekeep is called from one thread). */
static PGconn *primary_probe;
static uint64_t hist_lsn[HISTORY];
static double hist_at[HISTORY];
static int hist_n;

static PGconn *probe_connect(const struct pool_settings *base, const char *url);
static int sample_one(PGconn **pg, const struct pool_settings *base, const char *url,
		      const char *sql, uint64_t *lsn);

int replicas_lsn_parse(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long hi, lo;

	if (s == NULL || !strchr("0123456789abcdefABCDEF", *s) || *s == '\0')
		return -1;
	hi = strtoull(s, &end, 16);
	if (*end != '/' || end - s > 8 || !strchr("0123456789abcdefABCDEF", end[1]) || end[1] == '\0')
		return -1;
	s = end + 1;
	lo = strtoull(s, &end, 16);
	if (*end != '\0' || end - s > 8 || hi > 0xffffffffULL || lo > 0xffffffffULL)
		return -1;
	*out = ((uint64_t)hi << 32) | (uint64_t)lo;
	return 0;
}

/* The MAC of the cookie's LSN text under a key only this session's token gives. */
static void cookie_mac(const unsigned char token[32], const char *lsn_hex, unsigned char mac[16])
{
	static const char context[] = "paintstudio lsn cookie v1:";
	unsigned char key[32];
	crypto_generichash_state st;

	/* A key of its own, so the MAC reveals nothing usable as the session token. */
	crypto_generichash(key, sizeof(key), (const unsigned char *)context, sizeof(context) - 1,
			   token, 32);
	crypto_generichash_init(&st, key, sizeof(key), 16);
	crypto_generichash_update(&st, (const unsigned char *)lsn_hex, strlen(lsn_hex));
	crypto_generichash_final(&st, mac, 16);
	sodium_memzero(key, sizeof(key));
}

void replicas_cookie_make(const unsigned char token[32], uint64_t lsn, char out[REPLICAS_COOKIE_LEN])
{
	char hex[17];
	unsigned char mac[16];

	snprintf(hex, sizeof(hex), "%016" PRIx64, lsn);
	cookie_mac(token, hex, mac);
	memcpy(out, hex, 16);
	out[16] = '.';
	sodium_bin2hex(out + 17, REPLICAS_COOKIE_LEN - 17, mac, sizeof(mac));
}

int replicas_cookie_read(const unsigned char token[32], const char *value, uint64_t *lsn)
{
	char hex[17], want[REPLICAS_COOKIE_LEN];
	char *end;

	if (value == NULL || strlen(value) != REPLICAS_COOKIE_LEN - 1 || value[16] != '.' ||
	    strspn(value, "0123456789abcdef") != 16)
		return -1;
	memcpy(hex, value, 16);
	hex[16] = '\0';
	replicas_cookie_make(token, strtoull(hex, &end, 16), want);
	if (sodium_memcmp(want, value, REPLICAS_COOKIE_LEN - 1) != 0)
		return -1;
	*lsn = strtoull(hex, NULL, 16);
	return 0;
}

double replicas_lag_ms(const uint64_t *lsn, const double *at, int n, uint64_t replay, double now)
{
	int i;

	assert(n >= 1);
	if (replay >= lsn[n - 1])
		return 0.0;
	/* Positions only grow: walk back while the primary was still beyond replay. */
	for (i = n - 1; i > 0 && lsn[i - 1] > replay; i--)
		;
	return now > at[i] ? (now - at[i]) * 1000.0 : 0.0;
}

void replicas_setup(const struct config *cfg, const struct pool_settings *ps)
{
	const char *p = cfg->replica_urls, *item;
	size_t len;

	pgconnect_side_settings(&primary_set, ps, "replicas", probe_app_name, sizeof(probe_app_name),
				SAMPLE_STATEMENT_MS);
	max_lag_us = (long long)cfg->replica_max_lag_ms * 1000;
	while (p && nreps < CONFIG_MAX_REPLICAS && (item = list_next(&p, &len)) != NULL) {
		struct replica *r = &reps[nreps];

		snprintf(r->name, sizeof(r->name), "replica%u", (unsigned)(nreps + 1) % 100u);
		r->url = xstrndup(item, len);
		r->set = *ps;
		r->set.database_url = r->url;
		r->set.primary = 0;	/* a replica is in recovery by design */
		r->pool = pool_create(&r->set);
		atomic_store(&r->lag_us, -1);
		nreps++;
	}
}

int replicas_count(void)
{
	return nreps;
}

const char *replicas_name(int index)
{
	return index >= 0 && index < nreps ? reps[index].name : "primary";
}

static PGconn *probe_connect(const struct pool_settings *base, const char *url)
{
	struct pool_settings s = *base;
	struct pool_error err;

	s.database_url = url;
	s.application_name = probe_app_name;
	s.statement_timeout_ms = SAMPLE_STATEMENT_MS;
	s.connect_timeout = 1;	/* seconds (libpq's unit); the deadline below is shorter */
	s.stmts = NULL;
	s.nstmts = 0;
	return pgconnect_probe(&s, SAMPLE_TIMEOUT_S, &err);
}

/*
 * Run sql (one LSN column) on *pg, connecting first when needed. 0 and
 * *lsn, or -1 (the connection is dropped when broken, reopened next time).
 */
static int sample_one(PGconn **pg, const struct pool_settings *base, const char *url,
		      const char *sql, uint64_t *lsn)
{
	PGresult *r;
	int rc = -1;

	if (*pg == NULL && (*pg = probe_connect(base, url)) == NULL)
		return -1;
	r = PQexec(*pg, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) &&
	    replicas_lsn_parse(PQgetvalue(r, 0, 0), lsn) == 0)
		rc = 0;
	PQclear(r);
	if (PQstatus(*pg) != CONNECTION_OK) {
		PQfinish(*pg);
		*pg = NULL;
	}
	return rc;
}

void replicas_housekeep(void)
{
	uint64_t lsn;
	double now;
	int i;

	if (nreps == 0)
		return;
	for (i = 0; i < nreps; i++) {
		pool_report_leaks(reps[i].pool);
		pool_reap_idle(reps[i].pool);
	}
	/* The primary first: a replica sampled after it and at that position has caught up. */
	if (sample_one(&primary_probe, &primary_set, primary_set.database_url,
		       "SELECT pg_current_wal_lsn()", &lsn) == 0) {
		if (hist_n == HISTORY) {
			memmove(hist_lsn, hist_lsn + 1, sizeof(hist_lsn[0]) * (HISTORY - 1));
			memmove(hist_at, hist_at + 1, sizeof(hist_at[0]) * (HISTORY - 1));
			hist_n--;
		}
		hist_lsn[hist_n] = lsn;
		hist_at[hist_n] = now_mono();
		hist_n++;
		atomic_store(&primary_latest, lsn);
	}
	for (i = 0; i < nreps; i++) {
		struct replica *r = &reps[i];

		/* NULL (not a standby) counts as unreachable: a primary is not a replica. */
		if (sample_one(&r->probe, &r->set, r->url, "SELECT pg_last_wal_replay_lsn()", &lsn) != 0) {
			atomic_store(&r->reachable, 0);
			if (!r->warned) {
				log_msg(LOG_WARN, "replicas: %s cannot be sampled (down, or not a standby): "
					"reads go elsewhere", r->name);
				r->warned = 1;
			}
			continue;
		}
		now = now_mono();
		atomic_store(&r->replay_lsn, lsn);
		atomic_store(&r->lag_us, hist_n ? (long long)(replicas_lag_ms(hist_lsn, hist_at, hist_n,
									     lsn, now) * 1000.0)
						 : -1);
		atomic_store(&r->failed, 0);
		atomic_store(&r->reachable, 1);
		if (r->warned) {
			log_msg(LOG_INFO, "replicas: %s answers again", r->name);
			r->warned = 0;
		}
	}
}

struct pool *replicas_choose(uint64_t min_lsn, int *index)
{
	unsigned start;
	int k;

	if (nreps == 0)
		return NULL;
	start = atomic_fetch_add(&next_pick, 1);
	for (k = 0; k < nreps; k++) {
		struct replica *r = &reps[(start + (unsigned)k) % (unsigned)nreps];
		long long lag = atomic_load(&r->lag_us);

		if (!atomic_load(&r->reachable) || atomic_load(&r->failed))
			continue;
		if (lag < 0 || lag > max_lag_us) {
			atomic_fetch_add(&r->skipped_lag, 1);
			continue;
		}
		if (atomic_load(&r->replay_lsn) < min_lsn) {
			atomic_fetch_add(&r->skipped_position, 1);
			continue;
		}
		*index = (int)(r - reps);
		return r->pool;
	}
	return NULL;
}

void replicas_served(int index)
{
	if (index >= 0 && index < nreps)
		atomic_fetch_add(&reps[index].reads, 1);
}

void replicas_failed(int index, const char *why)
{
	if (index < 0 || index >= nreps)
		return;
	atomic_fetch_add(&reps[index].fallbacks, 1);
	if (atomic_exchange(&reps[index].failed, 1) == 0)
		log_msg(LOG_WARN, "replicas: %s failed a request (%s): reads go to the primary "
			"until it answers the housekeeper again", reps[index].name, why);
}

void replicas_get(int index, struct replica_status *st)
{
	const struct replica *r = &reps[index];
	long long lag = atomic_load(&r->lag_us);

	assert(index >= 0 && index < nreps);
	memset(st, 0, sizeof(*st));
	snprintf(st->name, sizeof(st->name), "%s", r->name);
	st->pool = r->pool;
	st->reachable = atomic_load(&r->reachable);
	st->lag_ms = lag < 0 ? -1.0 : (double)lag / 1000.0;
	st->usable = st->reachable && !atomic_load(&r->failed) && lag >= 0 && lag <= max_lag_us;
	st->replay_lsn = atomic_load(&r->replay_lsn);
	st->primary_lsn = atomic_load(&primary_latest);
	st->reads = atomic_load(&r->reads);
	st->fallbacks = atomic_load(&r->fallbacks);
	st->skipped_lag = atomic_load(&r->skipped_lag);
	st->skipped_position = atomic_load(&r->skipped_position);
}

int replicas_shutdown(double grace)
{
	int i, left = 0;

	for (i = 0; i < nreps; i++) {
		int n = pool_shutdown(reps[i].pool, grace);

		left += n;
		if (n == 0)
			pool_destroy(reps[i].pool);
		if (reps[i].probe)
			PQfinish(reps[i].probe);
		free(reps[i].url);
		reps[i].probe = NULL;
		reps[i].url = NULL;
	}
	if (primary_probe)
		PQfinish(primary_probe);
	primary_probe = NULL;
	nreps = 0;
	return left;
}
