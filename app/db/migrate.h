/*
 * migrate: applies migrations/NNNN_name.sql in order, each once, each in
 * its own transaction, under a PostgreSQL advisory lock so that processes
 * starting together cannot both migrate. Records name, checksum (SHA-256)
 * and time in schema_migrations, and refuses to go on when a file applied
 * earlier has been edited since.
 */
#ifndef PS_MIGRATE_H
#define PS_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

struct migrate_report {
	int applied;	/* files applied by this run */
	int present;	/* files already applied before */
	int pending;	/* files not applied (status only) */
};

/*
 * Apply the pending migrations in dir over pg, printing one line per file
 * applied to stdout. Returns 0, or -1 with the reason in err (nothing of
 * the failing file is left applied).
 */
int migrate_run(PGconn *pg, const char *dir, struct migrate_report *rep,
		char *err, size_t errlen);

/* Count applied and pending files without changing anything. */
int migrate_status(PGconn *pg, const char *dir, struct migrate_report *rep,
		   char *err, size_t errlen);

/*
 * Whether name is a migration file name: four digits, '_', [a-z0-9_]+,
 * ".sql". 1 or 0.
 */
int migrate_name_ok(const char *name);

#endif
