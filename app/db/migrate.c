/*
 * migrate: applies migrations/NNNN_*.sql in name order, each in its own
 * transaction with its checksum recorded in schema_migrations, under a
 * PostgreSQL advisory lock so that processes starting together apply each
 * file once. An applied file that was edited since stops everything.
 */
#define _GNU_SOURCE
#include "db/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "base/util.h"

/* Taken by every process that migrates: a fixed, arbitrary key. */
#define MIGRATE_LOCK_KEY "7415001"

struct migration {
	char name[128];
	char sha[crypto_hash_sha256_BYTES * 2 + 1];
	char *sql;
};

static int cmp_names(const void *a, const void *b)
{
	return strcmp(((const struct migration *)a)->name,
		      ((const struct migration *)b)->name);
}

int migrate_name_ok(const char *name)
{
	size_t len = strlen(name), i;

	if (len < 10 || len >= 128 || strcmp(name + len - 4, ".sql") != 0)
		return 0;
	for (i = 0; i < 4; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	if (name[4] != '_')
		return 0;
	for (i = 5; i < len - 4; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
			return 0;
	return 1;
}

static int read_file(const char *path, struct strbuf *sb)
{
	FILE *f = fopen(path, "rb");
	char buf[8192];
	size_t n;

	if (f == NULL)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_append(sb, buf, n);
	n = (size_t)ferror(f);
	fclose(f);
	return n ? -1 : 0;
}

/* Load and checksum every migration file of dir, sorted by name. */
static int load_dir(const char *dir, struct migration **out, int *count,
		    char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct migration *m = NULL;
	int n = 0, cap = 0;

	if (d == NULL) {
		snprintf(err, errlen, "cannot open migrations folder %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		struct strbuf sb;
		char path[4096];
		unsigned char hash[crypto_hash_sha256_BYTES];

		if (!migrate_name_ok(e->d_name)) {
			if (strstr(e->d_name, ".sql"))
				fprintf(stderr, "migrate: ignoring %s (not NNNN_name.sql)\n", e->d_name);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			m = xrealloc(m, size_mul((size_t)cap, sizeof(*m)));
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		strbuf_init(&sb);
		if (read_file(path, &sb) != 0) {
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			strbuf_free(&sb);
			goto fail;
		}
		/* migrate_name_ok bounds the name below sizeof(m[n].name). */
		memcpy(m[n].name, e->d_name, strlen(e->d_name) + 1);
		crypto_hash_sha256(hash, (const unsigned char *)sb.buf, sb.len);
		sodium_bin2hex(m[n].sha, sizeof(m[n].sha), hash, sizeof(hash));
		m[n].sql = strbuf_detach(&sb, NULL);
		n++;
	}
	closedir(d);
	qsort(m, (size_t)n, sizeof(*m), cmp_names);
	*out = m;
	*count = n;
	return 0;
fail:
	closedir(d);
	while (n-- > 0)
		free(m[n].sql);
	free(m);
	return -1;
}

static void free_list(struct migration *m, int n)
{
	while (n-- > 0)
		free(m[n].sql);
	free(m);
}

/* Run sql; 0 if it reached want, else -1 with PostgreSQL's message. */
static int exec(PGconn *pg, const char *sql, ExecStatusType want, char *err, size_t errlen)
{
	PGresult *r = PQexec(pg, sql);
	int ok = PQresultStatus(r) == want;

	if (!ok)
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* The checksum recorded for name, "" when not applied; -1 on error. */
static int recorded_sha(PGconn *pg, const char *name, char *sha, size_t len,
			char *err, size_t errlen)
{
	const char *params[1] = { name };
	PGresult *r = PQexecParams(pg,
		"SELECT checksum FROM schema_migrations WHERE name = $1",
		1, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
		PQclear(r);
		return -1;
	}
	snprintf(sha, len, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return 0;
}

/*
 * Take the migration lock (*locked = 1 once held) and make sure
 * schema_migrations exists. 0, or -1 with the reason in err.
 */
static int begin_apply(PGconn *pg, int *locked, char *err, size_t errlen)
{
	char perr[1024];

	/* Bounded: a stuck migrator elsewhere fails us, not hangs us. */
	if (exec(pg, "SET lock_timeout = '120s'", PGRES_COMMAND_OK, perr, sizeof(perr)) ||
	    exec(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", PGRES_TUPLES_OK, perr, sizeof(perr))) {
		snprintf(err, errlen, "cannot take the migration lock: %s", perr);
		return -1;
	}
	*locked = 1;
	if (exec(pg, "CREATE TABLE IF NOT EXISTS schema_migrations ("
		     " name text PRIMARY KEY,"
		     " checksum text NOT NULL,"
		     " applied_at timestamptz NOT NULL DEFAULT now())",
		 PGRES_COMMAND_OK, perr, sizeof(perr))) {
		snprintf(err, errlen, "cannot create schema_migrations: %s", perr);
		return -1;
	}
	return 0;
}

/* Apply m and record it, in one transaction: all of it or nothing. */
static int apply_one(PGconn *pg, const struct migration *m, char *err, size_t errlen)
{
	const char *params[2] = { m->name, m->sha };
	char perr[1024];
	PGresult *r;

	if (exec(pg, "BEGIN", PGRES_COMMAND_OK, perr, sizeof(perr)) ||
	    exec(pg, m->sql, PGRES_COMMAND_OK, perr, sizeof(perr))) {
		snprintf(err, errlen, "%s failed, nothing of it applied: %s", m->name, perr);
		exec(pg, "ROLLBACK", PGRES_COMMAND_OK, perr, sizeof(perr));
		return -1;
	}
	r = PQexecParams(pg, "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
			 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "recording %s: %s", m->name, PQresultErrorMessage(r));
		PQclear(r);
		exec(pg, "ROLLBACK", PGRES_COMMAND_OK, perr, sizeof(perr));
		return -1;
	}
	PQclear(r);
	if (exec(pg, "COMMIT", PGRES_COMMAND_OK, perr, sizeof(perr))) {
		snprintf(err, errlen, "committing %s: %s", m->name, perr);
		return -1;
	}
	return 0;
}

static int walk(PGconn *pg, const char *dir, int apply, struct migrate_report *rep,
		char *err, size_t errlen)
{
	struct migration *m = NULL;
	int n = 0, i, rc = -1, locked = 0;
	char perr[1024];

	memset(rep, 0, sizeof(*rep));
	if (load_dir(dir, &m, &n, err, errlen) != 0)
		return -1;
	if (apply) {
		if (begin_apply(pg, &locked, err, errlen) != 0)
			goto out;
	} else if (exec(pg, "SELECT 1 FROM schema_migrations LIMIT 0", PGRES_TUPLES_OK,
			perr, sizeof(perr)) != 0) {
		rep->pending = n;	/* never migrated */
		rc = 0;
		goto out;
	}
	for (i = 0; i < n; i++) {
		char sha[80];

		if (recorded_sha(pg, m[i].name, sha, sizeof(sha), perr, sizeof(perr))) {
			snprintf(err, errlen, "reading schema_migrations: %s", perr);
			goto out;
		}
		if (sha[0]) {
			if (strcmp(sha, m[i].sha) != 0) {
				snprintf(err, errlen,
					 "%s was edited after it was applied (checksum %.12s... now %.12s...): "
					 "restore it and add a new migration instead",
					 m[i].name, sha, m[i].sha);
				goto out;
			}
			rep->present++;
			continue;
		}
		if (!apply) {
			rep->pending++;
			continue;
		}
		if (apply_one(pg, &m[i], err, errlen) != 0)
			goto out;
		printf("migrate: applied %s\n", m[i].name);
		fflush(stdout);
		rep->applied++;
	}
	rc = 0;
out:
	if (rc != 0)
		err[strcspn(err, "\n")] = '\0';
	if (locked)
		exec(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", PGRES_TUPLES_OK,
		     perr, sizeof(perr));
	free_list(m, n);
	return rc;
}

int migrate_run(PGconn *pg, const char *dir, struct migrate_report *rep,
		char *err, size_t errlen)
{
	return walk(pg, dir, 1, rep, err, errlen);
}

int migrate_status(PGconn *pg, const char *dir, struct migrate_report *rep,
		   char *err, size_t errlen)
{
	return walk(pg, dir, 0, rep, err, errlen);
}
