#!/bin/sh
# postgres:15 stand-in: on first start, initdb into $PGDATA with
# POSTGRES_USER (superuser) and POSTGRES_PASSWORD, scram-sha-256 for TCP,
# POSTGRES_DB created; TCP is only opened once that is done, so
# `pg_isready -h 127.0.0.1` answers only when the database is usable.
# Then runs the command (postgres ...) as the postgres user.
#
# For TLS, pass what the official image takes:
#   postgres -c ssl=on -c ssl_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem
#            -c ssl_key_file=/etc/ssl/private/ssl-cert-snakeoil.key
# (the snakeoil pair is made when the image is built).
set -eu
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /run/postgresql
	chown postgres:postgres "$PGDATA" /run/postgresql
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
case "${1:-}" in
postgres | -*) ;;
*) exec "$@" ;;
esac
[ "${1:-}" = postgres ] && shift

: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	initdb --username="$user" --pwfile="$pwfile" --auth-local=trust \
		--auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
	rm -f "$pwfile"
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	# Unix socket only while the database is made.
	pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
	if [ "$db" != postgres ]; then
		psql -v ON_ERROR_STOP=1 -qX -U "$user" -d postgres \
			-c "CREATE DATABASE \"$db\""
	fi
	pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
	echo "entrypoint: database $db initialised"
fi
exec postgres -c listen_addresses='*' "$@"
