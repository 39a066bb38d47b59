# The local stack's high-availability topology (HA=1), sourced by
# scripts/stack.sh after its own functions: the ones redefined here take
# the place of the single PostgreSQL and the single Redis; nginx and the
# service processes stay exactly as in the normal stack.
#
#   PostgreSQL  pg_auto_failover (Debian's postgresql-15-auto-failover):
#               a monitor and two data nodes, pg1 and pg2, each run by its
#               pg_autoctl keeper; synchronous replication (ANY 1 standby).
#   Redis       redis1 (first master) and redis2 (its replica), watched by
#               three sentinels (master name "paintstudio", quorum 2).
#
# Everything listens on 127.0.0.1 only. Data: $STACK_DIR/ha (PostgreSQL,
# beside the single cluster's folder when that one moves out of a /root
# checkout) and $STACK_DIR/redis-ha; logs in $LOG (pg-*.log, redis*.log,
# sentinel*.log); $RUN/ha marks a running HA stack, so that `make stop`
# and the ha-* commands find it without HA=1.
#
#   scripts/stack.sh ha-status               one line per node: role, state, lag
#   scripts/stack.sh ha-kill-primary         kill -9 the PostgreSQL primary's postmaster and backends
#   scripts/stack.sh ha-kill-redis-master    kill -9 the Redis master
#   scripts/stack.sh ha-kill-node NAME       kill -9 every process of a node (machine loss)
#   scripts/stack.sh ha-restart-node NAME    bring a node back; it rejoins as standby/replica
#   NAME: pg1 pg2 monitor redis1 redis2 sentinel1 sentinel2 sentinel3
#
# Settings (environment): HA_PG_PORTS (PG_PORT,PG_PORT+1), HA_MONITOR_PORT
# (PG_PORT+2), HA_REDIS_PORTS (REDIS_PORT,REDIS_PORT+1), SENTINEL_PORTS
# (REDIS_PORT+2..+4).
#
# shellcheck shell=bash

[ "$REPLICAS" -eq 0 ] || fail "HA=1 and REPLICAS are exclusive: the HA stack's standby is its replica"

HA_DIR=$(dirname "$PGDATA")/ha
HA_PG_PORTS=${HA_PG_PORTS:-$PG_PORT,$((PG_PORT + 1))}
HA_MONITOR_PORT=${HA_MONITOR_PORT:-$((PG_PORT + 2))}
HA_REDIS_PORTS=${HA_REDIS_PORTS:-$REDIS_PORT,$((REDIS_PORT + 1))}
SENTINEL_PORTS=${SENTINEL_PORTS:-$((REDIS_PORT + 2)),$((REDIS_PORT + 3)),$((REDIS_PORT + 4))}
SENTINEL_MASTER=paintstudio
REDIS_HA_DIR=$STACK_DIR/redis-ha
# pg_autoctl's local connections (keeper -> its own postgres): a socket
# folder when the path fits, else loopback TCP.
HA_SOCK_DIR=$HA_DIR/sock
if sock_fits "$HA_SOCK_DIR/.s.PGSQL.99999"; then HA_PGHOST=$HA_SOCK_DIR; else HA_PGHOST=127.0.0.1; fi

ha_pg_port() { cut -d, -f"${1#pg}" <<<"$HA_PG_PORTS"; }	# pg1|pg2
ha_pg_dir() { echo "$HA_DIR/$1"; }	# pg1|pg2|monitor
ha_redis_port() { cut -d, -f"${1#redis}" <<<"$HA_REDIS_PORTS"; }	# redis1|redis2
ha_sentinel_port() { cut -d, -f"${1#sentinel}" <<<"$SENTINEL_PORTS"; }	# sentinel1..3
ha_sentinels() { sed 's/\([0-9][0-9]*\)/127.0.0.1:\1/g' <<<"$SENTINEL_PORTS"; }

# pg_autoctl as the PostgreSQL user, its files (configuration, state, pid)
# under $HA_DIR rather than in that user's home, its passwords from one
# password file (libpq's PGPASSFILE; the postgres processes it starts
# inherit it: the monitor's health checks and the standby's replication
# connection use it too).
ha_env() {
	echo XDG_CONFIG_HOME="$HA_DIR/config" XDG_DATA_HOME="$HA_DIR/share" \
		XDG_RUNTIME_DIR="$HA_DIR/runtime" PGPASSFILE="$HA_DIR/pgpass" PGHOST="$HA_PGHOST"
}
# shellcheck disable=SC2046
autoctl() { as_pg env $(ha_env) pg_autoctl "$@"; }

monitor_url() { echo "postgresql://postgres:$(secret pg-superuser)@127.0.0.1:$HA_MONITOR_PORT/pg_auto_failover"; }
ha_node_admin_url() { echo "postgresql://postgres:$(secret pg-superuser)@127.0.0.1:$(ha_pg_port "$1")/paintstudio"; }
msql() { psql "$(monitor_url)" -qAt -F' ' -v ON_ERROR_STOP=1 "$@"; }

# The stack's PostgreSQL URLs: both data nodes, libpq picks the one that
# takes writes (target_session_attrs=read-write).
ha_hosts() { sed 's/\([0-9][0-9]*\)/127.0.0.1:\1/g' <<<"$HA_PG_PORTS"; }
database_url() {
	echo "postgresql://paintstudio:$(secret pg-app)@$(ha_hosts)/paintstudio?target_session_attrs=read-write"
}
# Each node as a read replica while it is a standby (libpq refuses a
# connection there while it is the primary): reads that a cache miss
# sends to a replica keep being served by the standby while the primary
# is lost, and the standby takes reads off the primary on a good day.
ha_replica_urls() {
	local p out=""
	for p in $(tr , ' ' <<<"$HA_PG_PORTS"); do
		out+="${out:+,}postgresql://paintstudio:$(secret pg-app)@127.0.0.1:$p/paintstudio?target_session_attrs=standby"
	done
	echo "$out"
}
pg_admin_url() {
	echo "postgresql://postgres:$(secret pg-superuser)@$(ha_hosts)/postgres?target_session_attrs=read-write"
}

# The password file: the superuser (pg_autoctl's own connections to its
# node), and the three roles pg_auto_failover connects as. Its passwords
# are the stack's secrets; pg_autoctl never sets them: ha_set_passwords.
ha_pgpass() {
	(umask 077 && cat >"$HA_DIR/pgpass") <<-EOF
		*:*:*:postgres:$(secret pg-superuser)
		*:*:*:autoctl_node:$(secret pg-autoctl-node)
		*:*:*:pgautofailover_monitor:$(secret pg-health-check)
		*:*:*:pgautofailover_replicator:$(secret pg-replicator)
	EOF
	is_root && chown "$(pg_user):" "$HA_DIR/pgpass"
	return 0
}

# A cluster made like the single one (superuser password, UTF8, C.UTF-8),
# except that local connections need a password too: pg_autoctl connects
# as the superuser whatever the account it runs as, from the password
# file. Settings after pg_autoctl's include (line 1 of postgresql.conf)
# win over its own, which size memory for a dedicated server.
ha_initdb() { # dir port
	local dir=$1 pw
	mkdir -p "$dir"
	chmod 700 "$dir"
	is_root && chown postgres: "$dir"
	pw=$(mktemp)
	secret pg-superuser >"$pw"
	chmod 644 "$pw"
	as_pg "$PGBIN/initdb" -D "$dir" -U postgres --auth-local=scram-sha-256 \
		--auth-host=scram-sha-256 --pwfile="$pw" -E UTF8 --locale=C.UTF-8 >"$LOG/initdb-$(basename "$dir").log" ||
		{ rm -f "$pw"; fail "initdb failed: see $LOG/initdb-$(basename "$dir").log"; }
	rm -f "$pw"
	cat >>"$dir/postgresql.conf" <<-EOF
		# paintstudio local stack (HA=1)
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$([ "$HA_PGHOST" = 127.0.0.1 ] || echo "$HA_SOCK_DIR")'
		max_connections = 200
		shared_buffers = 128MB
		work_mem = 4MB
		maintenance_work_mem = 64MB
		effective_cache_size = 1GB
		wal_keep_size = 512MB
		fsync = on
	EOF
}

ha_wait_sql() { # url seconds: until a query answers
	local i
	for i in $(seq $(($2 * 10))); do
		psql "$1" -qAt -c 'SELECT 1' >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# pg_autoctl run in a session of its own (Ctrl-C on `make run` reaches the
# stack's trap, not the keepers); its pid is the session's, so ha-kill-node
# ends the keeper and its postgres together.
ha_run_node() { # pg1|pg2|monitor
	local name=$1
	pidfile_alive "$RUN/pg-$name.pid" && return 0
	# shellcheck disable=SC2046
	setsid bash -c 'exec "$@"' _ $(is_root && echo runuser -u postgres --) env $(ha_env) \
		pg_autoctl run --pgdata "$(ha_pg_dir "$name")" >>"$LOG/pg-$name.log" 2>&1 </dev/null &
	echo $! >"$RUN/pg-$name.pid"
}

# The monitor's timeouts (pg_auto_failover's documented settings,
# docs "Configuring pg_auto_failover"), shorter than the defaults for a
# loopback set: a node is unhealthy after 3 s without an answer (default
# 20 s, health checks every 5 s), and a primary that stopped reporting is
# given 8 s to demote itself (default 30 s) before its standby is
# promoted. That is more than the keepers' own network_partition_timeout,
# set to 5 s (default 20 s): a primary cut off from the monitor and its
# standby stops taking writes before the standby may be promoted.
ha_monitor_settings() {
	msql <<-'EOF' >/dev/null
		ALTER SYSTEM SET pgautofailover.health_check_period = 1000;
		ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000;
		ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500;
		ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 3000;
		ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 8000;
		SELECT pg_reload_conf();
	EOF
}

ha_create_monitor() {
	local dir
	dir=$(ha_pg_dir monitor)
	say "creating the pg_auto_failover monitor in $dir"
	ha_initdb "$dir"
	autoctl create monitor --pgdata "$dir" --pgport "$HA_MONITOR_PORT" --hostname 127.0.0.1 \
		--pgctl "$PGBIN/pg_ctl" --auth scram-sha-256 --no-ssl >>"$LOG/pg-monitor.log" 2>&1 ||
		fail "pg_autoctl create monitor failed: see $LOG/pg-monitor.log"
	# pg_autoctl run starts the monitor's postgres with -h from here
	autoctl config set --pgdata "$dir" postgresql.listen_addresses 127.0.0.1 >/dev/null
}

# Data node: the first is made by initdb here (pg_autoctl registers an
# existing cluster), the second by pg_autoctl itself (pg_basebackup from
# the primary, as pgautofailover_replicator, password from the file).
ha_create_node() { # pg1|pg2
	local name=$1 dir
	dir=$(ha_pg_dir "$name")
	say "creating PostgreSQL node $name in $dir"
	[ "$name" = pg1 ] && ha_initdb "$dir"
	autoctl create postgres --pgdata "$dir" --pgport "$(ha_pg_port "$name")" --pghost "$HA_PGHOST" \
		--listen 127.0.0.1 --hostname 127.0.0.1 --name "$name" --username postgres \
		--dbname paintstudio --pgctl "$PGBIN/pg_ctl" --auth scram-sha-256 --no-ssl \
		--monitor "postgresql://autoctl_node@127.0.0.1:$HA_MONITOR_PORT/pg_auto_failover?sslmode=prefer" \
		>>"$LOG/pg-$name.log" 2>&1 || fail "pg_autoctl create postgres ($name) failed: see $LOG/pg-$name.log"
	autoctl config set --pgdata "$dir" timeout.network_partition_timeout 5 >/dev/null
}

# The roles pg_auto_failover made on the nodes get the passwords of the
# password file (set on the primary: the standby has them by replication).
ha_set_passwords() { # port of the primary
	psql "postgresql://postgres:$(secret pg-superuser)@127.0.0.1:$1/postgres" -qAt -v ON_ERROR_STOP=1 \
		-v mon="$(secret pg-health-check)" -v repl="$(secret pg-replicator)" >/dev/null <<-'EOF'
		ALTER ROLE pgautofailover_monitor PASSWORD :'mon';
		ALTER ROLE pgautofailover_replicator PASSWORD :'repl';
	EOF
}

# name port of the node the monitor assigns the primary's role (primary,
# wait_primary, single, or on its way there).
ha_pg_primary() {
	msql -c "SELECT nodename, nodeport FROM pgautofailover.node
		WHERE goalstate IN ('primary','wait_primary','single','apply_settings')
		ORDER BY nodeid LIMIT 1" 2>/dev/null
}

ha_wait_primary() { # seconds: until the multi-host URL takes a write
	local i
	for i in $(seq $(($1 * 10))); do
		psql "$(pg_admin_url)" -qAt -c 'SELECT pg_is_in_recovery()' 2>/dev/null | grep -qx f && return 0
		sleep 0.1
	done
	return 1
}

start_pg() {
	local p n
	for p in $(tr , ' ' <<<"$HA_PG_PORTS") "$HA_MONITOR_PORT"; do
		port_busy "$p" && fail "port $p on 127.0.0.1 is in use (set HA_PG_PORTS/HA_MONITOR_PORT)"
	done
	mkdir -p "$HA_DIR" "$RUN"
	: >"$RUN/ha"
	chmod 700 "$HA_DIR"
	if [ "$HA_PGHOST" != 127.0.0.1 ]; then mkdir -p "$HA_SOCK_DIR"; chmod 700 "$HA_SOCK_DIR"; fi
	is_root && chown "$(pg_user):" "$HA_DIR" "$HA_SOCK_DIR" 2>/dev/null
	ha_pgpass
	[ -s "$(ha_pg_dir monitor)/PG_VERSION" ] || ha_create_monitor
	say "starting the pg_auto_failover monitor on 127.0.0.1:$HA_MONITOR_PORT"
	ha_run_node monitor
	ha_wait_sql "$(monitor_url)" 60 || fail "the monitor did not start: see $LOG/pg-monitor.log"
	# (psql interpolates :'pw' only in its input, not in -c)
	msql -v pw="$(secret pg-autoctl-node)" <<<"ALTER ROLE autoctl_node PASSWORD :'pw'" >/dev/null
	ha_monitor_settings
	if [ ! -s "$(ha_pg_dir pg1)/PG_VERSION" ]; then
		ha_create_node pg1
		ha_run_node pg1
		ha_wait_primary 60 || fail "pg1 did not start: see $LOG/pg-pg1.log"
		ha_set_passwords "$(ha_pg_port pg1)"
	fi
	[ -s "$(ha_pg_dir pg2)/PG_VERSION" ] || ha_create_node pg2	# from the primary
	say "starting PostgreSQL nodes pg1, pg2 on $(ha_hosts) (keepers: pg_autoctl run)"
	ha_run_node pg1
	ha_run_node pg2
	ha_wait_primary 90 || fail "no PostgreSQL primary within 90 s: see $LOG/pg-pg*.log"
	# Synchronous replication from the start: wait for the standby.
	for _ in $(seq 600); do
		[ "$(msql -c "SELECT count(*) FROM pgautofailover.node
			WHERE reportedstate = goalstate AND goalstate IN ('primary','secondary')")" = 2 ] && return 0
		sleep 0.1
	done
	say "warning: the standby is not in sync yet (scripts/stack.sh ha-status)"
}

# As the single stack's, against the primary, then the database handed to
# the service's role: pg_autoctl made it, owned by postgres.
eval "single_setup_db() $(declare -f setup_db | tail -n +2)"
setup_db() {
	local port
	port=$(ha_pg_primary | awk '{print $2}') || true
	[ -n "$port" ] || fail "the monitor names no primary"
	PG_PORT=$port single_setup_db
	psql "postgresql://postgres:$(secret pg-superuser)@127.0.0.1:$port/postgres" -qAt \
		-c 'ALTER DATABASE paintstudio OWNER TO paintstudio' >/dev/null
}

# Stop the standby first (the primary then takes writes alone: wait_primary),
# then the primary, the monitor last: no failover on the way down.
stop_pg() {
	local first order n
	first=$(ha_pg_primary | awk '{print $1}') || true
	case "$first" in pg1) order="pg2 pg1" ;; *) order="pg1 pg2" ;; esac
	for n in $order monitor; do
		ha_stop_node "$n"
	done
	rm -f "$RUN/ha"
}

ha_stop_node() { # pg1|pg2|monitor
	local name=$1 dir pid
	dir=$(ha_pg_dir "$name")
	[ -d "$dir" ] || return 0
	if pidfile_alive "$RUN/pg-$name.pid"; then
		pid=$(cat "$RUN/pg-$name.pid")
		autoctl stop --pgdata "$dir" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$RUN/pg-$name.pid"
	# a postgres left without its keeper (ha-kill-node, a crash)
	if [ -s "$dir/postmaster.pid" ] && kill -0 "$(head -1 "$dir/postmaster.pid")" 2>/dev/null; then
		as_pg "$PGBIN/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null 2>&1 || true
	fi
}

# ---- Redis: two nodes and three sentinels ----------------------------------

ha_redis_conf() { # redis1|redis2 [master port]: its configuration, made at each start
	local name=$1 master=${2:-}
	mkdir -p "$REDIS_HA_DIR/$name"
	(umask 077 && {
		redis_node_conf "$(ha_redis_port "$name")" "$name" "$REDIS_HA_DIR/$name"
		cat <<-EOF
			# to replicate from the other node once Sentinel makes it master
			masterauth $(redis_password)
			# No min-replicas-to-write: the cache's exactness does not rest on
			# Redis keeping a write. A promoted replica has a new replication id,
			# so the service reads a new, empty key space there (cache.h, K) and
			# trusts it only after a drain; an invalidation the old master lost
			# can never be served. Refusing writes with one node left would only
			# keep the cache off until the other rejoins.
			$([ -n "$master" ] && echo "replicaof 127.0.0.1 $master")
		EOF
	} >"$REDIS_HA_DIR/$name.conf")
}

ha_sentinel_conf() { # sentinelN master-port: made at each start of the stack
	local name=$1 pw
	pw=$(redis_password)
	mkdir -p "$REDIS_HA_DIR/$name"
	# Sentinel rewrites this file (what it learns): it must stay writable.
	(umask 077 && cat >"$REDIS_HA_DIR/$name.conf") <<-EOF
		bind 127.0.0.1
		port $(ha_sentinel_port "$name")
		protected-mode yes
		daemonize yes
		pidfile $RUN/$name.pid
		logfile $LOG/$name.log
		dir $REDIS_HA_DIR/$name
		# Clients of the sentinels authenticate with Redis's password too
		# (a sentinel can be told to fail over or to watch another master);
		# the sentinels use it between themselves and towards Redis.
		requirepass $pw
		sentinel sentinel-pass $pw
		sentinel monitor $SENTINEL_MASTER 127.0.0.1 $2 2
		sentinel auth-pass $SENTINEL_MASTER $pw
		sentinel down-after-milliseconds $SENTINEL_MASTER 1500
		sentinel failover-timeout $SENTINEL_MASTER 10000
		sentinel parallel-syncs $SENTINEL_MASTER 1
	EOF
}

ha_redis_up() { # port seconds
	for _ in $(seq $(($2 * 10))); do
		rcli -p "$1" ping 2>/dev/null | grep -q PONG && return 0
		sleep 0.1
	done
	return 1
}

# "host port" of the master the sentinels name (the first that answers).
ha_sentinel_master() {
	local s out
	for s in $(tr , ' ' <<<"$SENTINEL_PORTS"); do
		out=$(rcli -p "$s" sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null | paste -sd' ') || true
		[ -n "$out" ] && { echo "$out"; return 0; }
	done
	return 1
}
ha_redis_name_of() { # port -> redis1|redis2
	local i
	for i in 1 2; do
		if [ "$(ha_redis_port "redis$i")" = "$1" ]; then echo "redis$i"; fi
	done
	return 0
}

# The master at the last stop (kept in $REDIS_HA_DIR/master) starts as
# master again, the other as its replica, and the sentinels start afresh
# watching it.
start_redis() {
	local p master other n
	for p in $(tr , ' ' <<<"$HA_REDIS_PORTS,$SENTINEL_PORTS"); do
		port_busy "$p" && fail "port $p on 127.0.0.1 is in use (set HA_REDIS_PORTS/SENTINEL_PORTS)"
	done
	mkdir -p "$REDIS_HA_DIR"
	master=$(cat "$REDIS_HA_DIR/master" 2>/dev/null || echo redis1)
	case "$master" in redis2) other=redis1 ;; *) master=redis1 other=redis2 ;; esac
	say "starting Redis $master (master) on 127.0.0.1:$(ha_redis_port "$master"), $other (replica) on 127.0.0.1:$(ha_redis_port "$other")"
	ha_redis_conf "$master"
	ha_redis_conf "$other" "$(ha_redis_port "$master")"
	for n in "$master" "$other"; do
		redis-server "$REDIS_HA_DIR/$n.conf"
		ha_redis_up "$(ha_redis_port "$n")" 10 || fail "Redis $n did not answer within 10 s: see $LOG/$n.log"
	done
	say "starting 3 Redis sentinels on $(ha_sentinels)"
	for n in sentinel1 sentinel2 sentinel3; do
		ha_sentinel_conf "$n" "$(ha_redis_port "$master")"
		redis-sentinel "$REDIS_HA_DIR/$n.conf"
	done
	for n in sentinel1 sentinel2 sentinel3; do
		ha_redis_up "$(ha_sentinel_port "$n")" 10 || fail "$n did not answer within 10 s: see $LOG/$n.log"
	done
	# the master accepts writes once its replica is linked
	for _ in $(seq 100); do
		rcli -p "$(ha_redis_port "$other")" info replication 2>/dev/null | grep -q 'master_link_status:up' && return 0
		sleep 0.1
	done
	say "warning: $other is not linked to $master yet (scripts/stack.sh ha-status)"
}

ha_redis_master_port() { # the sentinels' answer, else the node that says master
	local m n
	m=$(ha_sentinel_master) && { awk '{print $2}' <<<"$m"; return 0; }
	for n in redis1 redis2; do
		rcli -p "$(ha_redis_port "$n")" role 2>/dev/null | head -1 | grep -qx master && { ha_redis_port "$n"; return 0; }
	done
	return 1
}

# The service follows both failover sets: the multi-host DATABASE_URL
# (libpq finds the primary), and the sentinels for Redis (REDIS_URL then
# gives only the password and database).
app_env() {
	export DATABASE_URL=${DATABASE_URL:-$(database_url)}
	export DATABASE_REPLICA_URLS=${DATABASE_REPLICA_URLS-$(ha_replica_urls)}
	# the standby is synchronous: it checks sessions while the primary is lost
	export DB_REPLICAS_SYNCHRONOUS=${DB_REPLICAS_SYNCHRONOUS:-1}
	export REDIS_URL=${REDIS_URL-$(redis_url)}
	export REDIS_SENTINELS=${REDIS_SENTINELS:-$(ha_sentinels)}
	export REDIS_SENTINEL_MASTER=$SENTINEL_MASTER
	export REDIS_SENTINEL_PASSWORD=${REDIS_SENTINEL_PASSWORD:-$(redis_password)}
}

# REDIS_URL: the master at start (for tools; the service asks the sentinels).
redis_url() {
	local port
	port=$(ha_redis_master_port) || port=$(ha_redis_port redis1)
	echo "redis://:$(pct "$(redis_password)")@127.0.0.1:$port/0"
}

ha_stop_pidfile() { # pidfile
	local pid
	pidfile_alive "$1" || { rm -f "$1"; return 0; }
	pid=$(cat "$1")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$1"
}

stop_redis() {
	local port n
	if port=$(ha_redis_master_port); then
		ha_redis_name_of "$port" >"$REDIS_HA_DIR/master"
	fi
	for n in sentinel1 sentinel2 sentinel3; do ha_stop_pidfile "$RUN/$n.pid"; done
	for n in redis2 redis1; do
		if pidfile_alive "$RUN/$n.pid"; then
			rcli -p "$(ha_redis_port "$n")" shutdown >/dev/null 2>&1 || true
		fi
		ha_stop_pidfile "$RUN/$n.pid"
	done
}

# ---- the env file and the banner ------------------------------------------

eval "single_write_env() $(declare -f write_env | tail -n +2)"
write_env() {
	local n
	single_write_env
	{
		echo "# HA=1: pg_auto_failover and Redis Sentinel (scripts/ha.sh)"
		echo "export HA='1'"
		echo "export REDIS_SENTINELS='$(ha_sentinels)'"
		echo "export REDIS_SENTINEL_MASTER='$SENTINEL_MASTER'"
		echo "export REDIS_SENTINEL_PASSWORD='$(redis_password)'"
		echo "export REDIS_NODE1_URL='redis://:$(pct "$(redis_password)")@127.0.0.1:$(ha_redis_port redis1)/0'"
		echo "export REDIS_NODE2_URL='redis://:$(pct "$(redis_password)")@127.0.0.1:$(ha_redis_port redis2)/0'"
		echo "export PG_MONITOR_URL='$(monitor_url)'"
		for n in 1 2; do
			echo "export PG_NODE${n}_URL='$(ha_node_admin_url "pg$n")'"
			echo "export PG_NODE${n}_DATA='$(ha_pg_dir "pg$n")'"
		done
		echo "export PGDATA='$(ha_pg_dir pg1)'	# the single cluster's is not used"
		echo "export PG_HA_DIR='$HA_DIR'"
	} >>"$STACK_DIR/stack.env"
}

eval "single_banner() $(declare -f banner | tail -n +2)"
banner() {
	single_banner
	cat <<-EOF
		  HA=1          PostgreSQL: pg_auto_failover monitor 127.0.0.1:$HA_MONITOR_PORT, nodes pg1, pg2 on $(ha_hosts)
		                Redis: redis1, redis2 on $(sed 's/\([0-9][0-9]*\)/127.0.0.1:\1/g' <<<"$HA_REDIS_PORTS"), sentinels $(ha_sentinels) (master "$SENTINEL_MASTER")
		    scripts/stack.sh ha-status              one line per node: role, state, lag
		    scripts/stack.sh ha-kill-primary        kill -9 the PostgreSQL primary's server (found via the monitor)
		    scripts/stack.sh ha-kill-redis-master   kill -9 the Redis master (found via the sentinels)
		    scripts/stack.sh ha-kill-node NAME      kill -9 all of a node (pg1 pg2 redis1 redis2 ...)
		    scripts/stack.sh ha-restart-node NAME   bring it back: it rejoins as standby / replica
		  HA data       $HA_DIR (PostgreSQL), $REDIS_HA_DIR (Redis): the "data" line above is unused
		  The service follows both failovers by itself (the multi-host DATABASE_URL, REDIS_SENTINELS):
		    curl -sk -b jar https://127.0.0.1:$HTTPS_PORT/admin/pool     (server, failovers)
		    curl -sk -b jar https://127.0.0.1:$HTTPS_PORT/admin/cache    (sentinels: master, switches)

	EOF
}

# ---- the ha-* commands -----------------------------------------------------

ha_status() {
	local prim_port name host port rep goal health lsn lag role n p info off moff link m
	prim_port=$(ha_pg_primary | awk '{print $2}') || true
	if ! msql -c 'SELECT 1' >/dev/null 2>&1; then
		printf '%-10s %-16s %s\n' monitor "127.0.0.1:$HA_MONITOR_PORT" "DOWN"
	else
		printf '%-10s %-16s %s\n' monitor "127.0.0.1:$HA_MONITOR_PORT" "up (pg_auto_failover $(msql -c "SELECT extversion FROM pg_extension WHERE extname = 'pgautofailover'"))"
		# the monitor's table is what `pg_autoctl show state` prints
		while read -r name host port rep goal health lsn n; do
			if [ "$port" = "$prim_port" ]; then
				role=primary lag=0
			else
				role=secondary
				lag=$(psql "postgresql://postgres:$(secret pg-superuser)@127.0.0.1:$prim_port/postgres" -qAt -c \
					"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) || ' bytes (' || sync_state || ')'
					 FROM pg_stat_replication WHERE application_name = 'pgautofailover_standby_$n'" 2>/dev/null)
				lag=${lag:-"? (not streaming)"}
				[ -n "$prim_port" ] || lag="? (no primary)"
			fi
			psql "postgresql://postgres:$(secret pg-superuser)@127.0.0.1:$port/postgres" -qAt -c 'SELECT 1' \
				>/dev/null 2>&1 || role="$role DOWN"
			printf '%-10s %-16s %-15s state %s/%s  health %s  lsn %s  lag %s\n' "$name" "$host:$port" "$role" \
				"$rep" "$goal" "$health" "$lsn" "$lag"
		done < <(msql -c "SELECT nodename, nodehost, nodeport, reportedstate, goalstate,
				CASE health WHEN 1 THEN 'good' WHEN 0 THEN 'bad' ELSE 'unknown' END, reportedlsn, nodeid
				FROM pgautofailover.node ORDER BY nodeid")
		p=$prim_port
		[ -z "$p" ] || printf '%-10s %-16s synchronous_standby_names = %s\n' "" "" \
			"$(psql "postgresql://postgres:$(secret pg-superuser)@127.0.0.1:$p/postgres" -qAt -c 'SHOW synchronous_standby_names' 2>/dev/null)"
	fi
	moff=
	for n in redis1 redis2; do
		info=$(rcli -p "$(ha_redis_port "$n")" info replication 2>/dev/null | tr -d '\r') || true
		[ "$(sed -n 's/^role://p' <<<"$info")" = master ] && moff=$(sed -n 's/^master_repl_offset://p' <<<"$info")
	done
	for n in redis1 redis2; do
		p=$(ha_redis_port "$n")
		info=$(rcli -p "$p" info replication 2>/dev/null | tr -d '\r') || true
		if [ -z "$info" ]; then
			printf '%-10s %-16s %s\n' "$n" "127.0.0.1:$p" DOWN
			continue
		fi
		role=$(sed -n 's/^role://p' <<<"$info")
		off=$(sed -n 's/^master_repl_offset://p' <<<"$info")
		if [ "$role" = master ]; then
			printf '%-10s %-16s %-15s offset %s  replicas %s\n' "$n" "127.0.0.1:$p" master "$off" \
				"$(sed -n 's/^connected_slaves://p' <<<"$info")"
		else
			off=$(sed -n 's/^slave_repl_offset://p' <<<"$info")
			link=$(sed -n 's/^master_link_status://p' <<<"$info")
			m=$(sed -n 's/^master_port://p' <<<"$info")
			printf '%-10s %-16s %-15s of 127.0.0.1:%s  link %s  offset %s  lag %s bytes\n' "$n" "127.0.0.1:$p" slave \
				"$m" "$link" "$off" "$([ -n "$moff" ] && echo $((moff - off)) || echo '?')"
		fi
	done
	for n in sentinel1 sentinel2 sentinel3; do
		p=$(ha_sentinel_port "$n")
		m=$(rcli -p "$p" sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null | paste -sd:) || true
		if [ -z "$m" ]; then
			printf '%-10s %-16s %s\n' "$n" "127.0.0.1:$p" DOWN
		else
			printf '%-10s %-16s %-15s names %s as master of %s\n' "$n" "127.0.0.1:$p" sentinel "$m" "$SENTINEL_MASTER"
		fi
	done
}

# The primary's server at once, as when it crashes: the postmaster and
# every backend in one kill (the postmaster alone would leave its backends
# committing for a moment). Its keeper lives on: pg_auto_failover promotes
# the standby, and the keeper brings this node back as the new standby.
ha_kill_primary() {
	local name port pid kids
	read -r name port <<<"$(ha_pg_primary || true)"
	[ -n "$name" ] || fail "the monitor names no primary"
	pid=$(head -1 "$(ha_pg_dir "$name")/postmaster.pid" 2>/dev/null) || fail "$name has no postmaster.pid"
	kids=$(pgrep -P "$pid" | paste -sd' ') || true
	# shellcheck disable=SC2086
	kill -KILL "$pid" $kids || fail "cannot kill $name's postmaster ($pid)"
	say "killed the PostgreSQL primary $name (127.0.0.1:$port), postmaster $pid and its $(wc -w <<<"$kids") processes, at $(date +%T.%N | cut -c1-12)"
}

ha_kill_redis_master() {
	local port name pid
	port=$(ha_sentinel_master | awk '{print $2}') || true
	[ -n "$port" ] || fail "no sentinel answers"
	name=$(ha_redis_name_of "$port")
	pid=$(rcli -p "$port" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p') || true
	[ -n "$pid" ] || pid=$(cat "$RUN/$name.pid" 2>/dev/null)
	[ -n "$pid" ] || fail "cannot find the pid of $name"
	kill -KILL "$pid" || fail "cannot kill $name ($pid)"
	say "killed the Redis master $name (127.0.0.1:$port), pid $pid, at $(date +%T.%N | cut -c1-12)"
}

ha_kill_node() { # machine loss: the node with everything of it
	local name=${1:?node name} pid
	case "$name" in
	pg1 | pg2 | monitor)
		pid=$(cat "$RUN/pg-$name.pid" 2>/dev/null) || fail "$name is not running"
		kill -KILL -- "-$pid" 2>/dev/null || fail "$name is not running"
		# postgres forks stay in the keeper's session; end any left over
		sleep 0.2
		[ -s "$(ha_pg_dir "$name")/postmaster.pid" ] &&
			kill -KILL "$(head -1 "$(ha_pg_dir "$name")/postmaster.pid")" 2>/dev/null || true
		;;
	redis1 | redis2 | sentinel1 | sentinel2 | sentinel3)
		pidfile_alive "$RUN/$name.pid" || fail "$name is not running"
		kill -KILL "$(cat "$RUN/$name.pid")"
		;;
	*) fail "unknown node $name (pg1 pg2 monitor redis1 redis2 sentinel1 sentinel2 sentinel3)" ;;
	esac
	say "killed $name at $(date +%T.%N | cut -c1-12)"
}

ha_restart_node() {
	local name=${1:?node name} port m
	case "$name" in
	pg1 | pg2 | monitor)
		if pidfile_alive "$RUN/pg-$name.pid"; then
			say "$name's keeper is running (it restarts its postgres itself; ha-status shows where it is)"
			return 0
		fi
		say "starting $name's keeper (pg_autoctl run): it rejoins as a standby"
		ha_run_node "$name"
		;;
	redis1 | redis2)
		pidfile_alive "$RUN/$name.pid" && { say "$name is running"; return 0; }
		port=$(ha_redis_port "$name")
		m=$(ha_sentinel_master | awk '{print $2}') || true
		# as the replica of the master the sentinels name (Sentinel would
		# turn it into one anyway, after it took writes as a stale master)
		if [ -n "$m" ] && [ "$m" != "$port" ]; then ha_redis_conf "$name" "$m"; else ha_redis_conf "$name"; fi
		say "starting $name on 127.0.0.1:$port${m:+ as a replica of 127.0.0.1:$m}"
		redis-server "$REDIS_HA_DIR/$name.conf"
		ha_redis_up "$port" 10 || fail "$name did not answer: see $LOG/$name.log"
		;;
	sentinel1 | sentinel2 | sentinel3)
		pidfile_alive "$RUN/$name.pid" && { say "$name is running"; return 0; }
		redis-sentinel "$REDIS_HA_DIR/$name.conf"	# as it rewrote it
		ha_redis_up "$(ha_sentinel_port "$name")" 10 || fail "$name did not answer: see $LOG/$name.log"
		;;
	*) fail "unknown node $name (pg1 pg2 monitor redis1 redis2 sentinel1 sentinel2 sentinel3)" ;;
	esac
}

ha_cmd() {
	case "$1" in
	ha-status) ha_status ;;
	ha-kill-primary) ha_kill_primary ;;
	ha-kill-redis-master) ha_kill_redis_master ;;
	ha-kill-node) ha_kill_node "${2:-}" ;;
	ha-restart-node) ha_restart_node "${2:-}" ;;
	*) fail "unknown command $1 (ha-status ha-kill-primary ha-kill-redis-master ha-kill-node ha-restart-node)" ;;
	esac
}
