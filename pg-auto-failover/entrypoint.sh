#!/bin/sh
# A pg_auto_failover node in a container (docker-compose.yml, "ha"), as
# scripts/ha.sh makes them on the local stack:
#
#   PGAF_ROLE=monitor    the monitor: pg_autoctl create monitor (its
#                        health-check timeouts shortened as ha.sh does),
#                        the autoctl_node role given PG_HA_PASSWORD
#   PGAF_ROLE=postgres   a data node. The first of the formation (the
#                        monitor knows none yet) is made by initdb here and
#                        registered; its roles pgautofailover_monitor and
#                        pgautofailover_replicator get PG_HA_PASSWORD, the
#                        service's role (POSTGRES_USER, POSTGRES_PASSWORD)
#                        is made and given the database POSTGRES_DB. Any
#                        later node is copied from the primary by pg_autoctl
#                        (pg_basebackup) and streams from it: synchronous
#                        replication once it has caught up.
#
# Then `pg_autoctl run` keeps the node (later starts go straight there): a
# node whose container was killed comes back as what the monitor says,
# the old primary as a standby (pg_rewind) once the other was promoted.
#
# Everything of a node lives in its volume, /var/lib/postgresql/pgaf: the
# cluster (data), pg_autoctl's configuration and state, the password file.
# Every peer authenticates with a password (scram-sha-256, pg_hba.conf
# written here: pg_autoctl edits none, --skip-pg-hba, so no --auth); no
# TLS between the nodes (--no-ssl: the project's own network), as the db
# service has none.
#
# Environment: PGAF_ROLE, PGAF_HOSTNAME (the name the others reach this
# node by: its compose service), PGAF_MONITOR (host of the monitor),
# PG_HA_PASSWORD (superuser postgres and pg_auto_failover's roles),
# POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB (data nodes).
set -eu
: "${PGAF_ROLE:?PGAF_ROLE must be monitor or postgres}"
: "${PGAF_HOSTNAME:?PGAF_HOSTNAME must name this node as the others reach it}"
: "${PG_HA_PASSWORD:?set PG_HA_PASSWORD in .env (scripts/compose-env.sh --ha)}"
# (the Dockerfile sets the same, for `docker exec`)
VOL=/var/lib/postgresql/pgaf
export PGDATA=$VOL/data XDG_CONFIG_HOME=$VOL/config XDG_DATA_HOME=$VOL/share \
	XDG_RUNTIME_DIR=/run/pgaf PGPASSFILE=$VOL/pgpass PGHOST=/var/run/postgresql PGPORT=5432

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$VOL" /run/pgaf /var/run/postgresql
	# A container starts in a fresh PID namespace: no pg_autoctl or postgres
	# of its previous run is alive, whatever their pid files (kept in the
	# container or the volume after a kill) say. A pid in them may now be
	# another process's, which would stop pg_autoctl or postgres starting.
	rm -rf /run/pgaf/* "$PGDATA/postmaster.pid"
	chown postgres:postgres "$VOL" /run/pgaf /var/run/postgresql
	chmod 700 "$VOL"
	exec setpriv --reuid=postgres --regid=postgres --init-groups sh "$0" "$@"
fi
umask 077

# libpq's password file for pg_autoctl and the postgres it starts (the
# monitor's health checks, the standby's replication connection).
cat >"$PGPASSFILE" <<-PGPASS
	*:*:*:postgres:$PG_HA_PASSWORD
	*:*:*:autoctl_node:$PG_HA_PASSWORD
	*:*:*:pgautofailover_monitor:$PG_HA_PASSWORD
	*:*:*:pgautofailover_replicator:$PG_HA_PASSWORD
PGPASS

monitor_url="postgresql://autoctl_node@${PGAF_MONITOR:-pg-monitor}:5432/pg_auto_failover?sslmode=disable"
pgctl=/usr/lib/postgresql/15/bin/pg_ctl

say() { echo "pgaf-entrypoint ($PGAF_HOSTNAME): $*"; }

# A cluster with the superuser's password, local connections trusted (the
# container's own), every other peer with a password.
make_cluster() {
	pw=$(mktemp)
	printf '%s\n' "$PG_HA_PASSWORD" >"$pw"
	initdb -D "$PGDATA" -U postgres --pwfile="$pw" --auth-local=trust \
		--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
	rm -f "$pw"
	cat >>"$PGDATA/pg_hba.conf" <<-HBA
		host all all all scram-sha-256
		host replication all all scram-sha-256
	HBA
	# After pg_autoctl's include (its line 1): these win over its sizing
	# for a dedicated server.
	cat >>"$PGDATA/postgresql.conf" <<-CONF
		# paintstudio compose "ha" profile
		max_connections = 200
		shared_buffers = 128MB
		wal_keep_size = 512MB
	CONF
}

# SQL on this node before pg_autoctl runs it: over the socket only.
local_sql() { # database [psql arguments], the SQL on stdin
	dbname=$1
	shift
	if ! "$pgctl" status -D "$PGDATA" >/dev/null 2>&1; then
		"$pgctl" start -D "$PGDATA" -w -t 60 -o "-c listen_addresses=''" >/dev/null
	fi
	psql -qAtX -U postgres -d "$dbname" -v ON_ERROR_STOP=1 "$@"
	"$pgctl" stop -D "$PGDATA" -w -m fast >/dev/null
}

create_monitor() {
	say "creating the pg_auto_failover monitor"
	make_cluster
	pg_autoctl create monitor --pgdata "$PGDATA" --pgport 5432 --hostname "$PGAF_HOSTNAME" \
		--pgctl "$pgctl" --no-ssl --skip-pg-hba
	pg_autoctl config set --pgdata "$PGDATA" postgresql.listen_addresses '*' >/dev/null
	# The timeouts of scripts/ha.sh (there, why): unhealthy after 3 s
	# without an answer, a silent primary given 8 s to demote itself.
	local_sql pg_auto_failover -v pw="$PG_HA_PASSWORD" <<-'SQL'
		ALTER ROLE autoctl_node PASSWORD :'pw';
		ALTER SYSTEM SET pgautofailover.health_check_period = 1000;
		ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000;
		ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500;
		ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 3000;
		ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 8000;
	SQL
}

create_node() {
	: "${POSTGRES_USER:?POSTGRES_USER must be set}"
	: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
	db=${POSTGRES_DB:-$POSTGRES_USER}
	i=0
	until nodes=$(psql -qAtX "$monitor_url" -c 'SELECT count(*) FROM pgautofailover.node' 2>/dev/null); do
		i=$((i + 1))
		[ "$i" -lt 120 ] || { say "the monitor did not answer within 120 s"; exit 1; }
		sleep 1
	done
	if [ "$nodes" = 0 ]; then
		say "creating the first data node (initdb, registered with the monitor)"
		make_cluster
	else
		say "creating a data node from the primary (pg_basebackup by pg_autoctl)"
	fi
	pg_autoctl create postgres --pgdata "$PGDATA" --pgport 5432 --pghost /var/run/postgresql \
		--listen '*' --hostname "$PGAF_HOSTNAME" --name "$PGAF_HOSTNAME" --username postgres \
		--dbname "$db" --pgctl "$pgctl" --no-ssl --skip-pg-hba \
		--monitor "$monitor_url"
	# a primary cut off from the monitor and its standby stops taking
	# writes within 5 s (before the monitor may promote the standby: 3 + 8 s)
	pg_autoctl config set --pgdata "$PGDATA" timeout.network_partition_timeout 5 >/dev/null
	[ "$nodes" = 0 ] || return 0
	# The standbys get all of this by replication.
	local_sql postgres -v pw="$PG_HA_PASSWORD" -v user="$POSTGRES_USER" \
		-v app="$POSTGRES_PASSWORD" -v db="$db" <<-'SQL'
		ALTER ROLE pgautofailover_monitor PASSWORD :'pw';
		ALTER ROLE pgautofailover_replicator PASSWORD :'pw';
		CREATE ROLE :"user" LOGIN PASSWORD :'app';
		ALTER DATABASE :"db" OWNER TO :"user";
	SQL
}

# $VOL/created: the node was made to the end. A first start that failed
# half-way (the monitor away, a copy cut short) leaves a node nobody uses:
# made again from scratch.
if [ ! -e "$VOL/created" ]; then
	rm -rf "$PGDATA" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME"
	case "$PGAF_ROLE" in
	monitor) create_monitor ;;
	postgres) create_node ;;
	*) say "PGAF_ROLE must be monitor or postgres, not $PGAF_ROLE"; exit 2 ;;
	esac
	: >"$VOL/created"
fi
exec pg_autoctl run --pgdata "$PGDATA"
