#!/bin/sh
# db-replica's entrypoint (docker compose --profile replica): a streaming
# replica of the db service. On first start it lets replication through
# db's pg_hba.conf (once, as db's superuser: the image allows it only from
# db's own loopback), copies db with pg_basebackup -R, then runs as a hot
# standby. Later starts only run it. Works with postgres:15 and its
# stand-in (tests/compose/postgres).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${PRIMARY_HOST:=db}"
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /run/postgresql
	chown postgres:postgres "$PGDATA" /run/postgresql
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups sh "$0" "$@"
fi
export PGPASSWORD="$POSTGRES_PASSWORD"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	until pg_isready -q -h "$PRIMARY_HOST" -U "$POSTGRES_USER" -d "$POSTGRES_DB"; do sleep 1; done
	psql -h "$PRIMARY_HOST" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -qAtX -v ON_ERROR_STOP=1 <<-'SQL'
		SELECT format('COPY (SELECT %L) TO PROGRAM %L', 'host replication all all scram-sha-256',
		              'cat >> ' || current_setting('hba_file'))
		WHERE NOT EXISTS (SELECT 1 FROM pg_hba_file_rules
		                  WHERE database = '{replication}' AND address = 'all') \gexec
		SELECT pg_reload_conf();
	SQL
	pg_basebackup -h "$PRIMARY_HOST" -U "$POSTGRES_USER" -D "$PGDATA" -R -X stream -c fast
	echo "db-replica: copied $PRIMARY_HOST, streaming from it"
fi
exec postgres -c listen_addresses='*' -c hot_standby=on -c hot_standby_feedback=on
