#!/usr/bin/env bash
# The local stack: PostgreSQL 15, Redis, nginx (TLS) and paintstudio
# processes on loopback, all data under one folder (var/ by default).
#
#   scripts/stack.sh run          start, then stay in the foreground until Ctrl-C
#   scripts/stack.sh start        start in the background and return
#   scripts/stack.sh stop         stop everything started from STACK_DIR
#   scripts/stack.sh pg-stop|pg-start|pg-kill        (fault tests)
#   scripts/stack.sh redis-stop|redis-start          (fault tests)
#   scripts/stack.sh app-stop|app-start              (fault tests)
#   scripts/stack.sh replica-kill|replica-start|replica-stop N   (replica tests)
#   HA=1 scripts/stack.sh run|start   PostgreSQL under pg_auto_failover and
#                                     Redis under Sentinel (scripts/ha.sh, with
#                                     its ha-status, ha-kill-* commands)
#
# Settings (environment): STACK_DIR (var), HTTPS_PORT (8443), PG_PORT
# (55432), REDIS_PORT (56379), APP_PROCESSES (1), SEED_COUNT (10000),
# ADMIN_PASSWORD (generated on first start when unset), BIN
# (build/paintstudio), DETACH=1 (run: return once started), REPLICAS (0:
# streaming replicas made with pg_basebackup, on REPLICA_PORTS, by default
# PG_PORT+1, PG_PORT+2, ...; the service reads from them). Every
# paintstudio variable (WORKERS, DB_POOL_SIZE, LOG_FORMAT, ...) passes
# through to the service.
#
# The service reaches PostgreSQL and Redis over unix sockets: everything
# runs on one machine, and a round trip over loopback TCP costs more CPU
# (docs/deployment.md, "Unix sockets", has the figures). Both still listen on 127.0.0.1
# too, for the tools, the tests and the replicas. DATABASE_URL and
# REDIS_URL given in the environment win.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$REPO/var}
mkdir -p "$STACK_DIR"
STACK_DIR=$(cd "$STACK_DIR" && pwd)
HTTPS_PORT=${HTTPS_PORT:-8443}
PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
APP_PROCESSES=${APP_PROCESSES:-1}
SEED_COUNT=${SEED_COUNT:-10000}
REPLICAS=${REPLICAS:-0}
BIN=${BIN:-$REPO/build/paintstudio}
WEB_ROOT=${WEB_ROOT:-$REPO/build/web}
PGBIN=/usr/lib/postgresql/15/bin
RUN=$STACK_DIR/run
LOG=$STACK_DIR/log
SECRETS=$STACK_DIR/secrets

say() { printf '==> %s\n' "$*"; }
fail() { printf 'stack: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# The user PostgreSQL runs as: initdb and postgres refuse root.
pg_user() { if is_root; then echo postgres; else id -un; fi; }
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pidfile_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The data folder must be reachable by the PostgreSQL user. A checkout under
# /root is not reachable by "postgres": keep the cluster beside it then.
pg_data_dir() {
	local d=$STACK_DIR/pg
	if is_root && ! runuser -u postgres -- test -x "$STACK_DIR" 2>/dev/null; then
		d=/var/lib/paintstudio/$(echo -n "$STACK_DIR" | sha256sum | cut -c1-12)/pg
	fi
	echo "$d"
}
PGDATA=$(pg_data_dir)

# Unix socket paths hold at most 107 bytes (sun_path): a longer one falls
# back to TCP.
sock_fits() { [ "$(LC_ALL=C; echo "${#1}")" -le 107 ]; }
# PostgreSQL's socket folder: beside its data, where its user may write.
PG_SOCK_DIR=$(dirname "$PGDATA")/pg-sock
pg_sock_ok() { sock_fits "$PG_SOCK_DIR/.s.PGSQL.$PG_PORT"; }
REDIS_SOCK=$RUN/redis.sock

# s with every byte outside [A-Za-z0-9/._~-] %-escaped (for a URL).
pct() {
	local LC_ALL=C s=$1 out="" c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9/._~-]) out+=$c ;;
		*) printf -v c '%%%02X' "'$c"; out+=$c ;;
		esac
	done
	echo "$out"
}

secret() { # name: a random secret kept in $SECRETS, made once
	local f=$SECRETS/$1
	if [ ! -s "$f" ]; then
		(umask 077 && mkdir -p "$SECRETS" && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$f")
	fi
	cat "$f"
}

# Replica i (1-based): its port, data folder and URLs.
replica_port() {
	local ports=${REPLICA_PORTS:-}
	if [ -n "$ports" ]; then cut -d, -f"$1" <<<"$ports"; else echo $((PG_PORT + $1)); fi
}
replica_dir() { echo "$(dirname "$PGDATA")/replica-$1"; }
replica_admin_url() { echo "postgresql://postgres:$(secret pg-superuser)@127.0.0.1:$(replica_port "$1")/paintstudio"; }
replica_urls() {
	local i out=""
	for i in $(seq "$REPLICAS"); do
		out+="${out:+,}postgresql://paintstudio:$(secret pg-app)@127.0.0.1:$(replica_port "$i")/paintstudio"
	done
	echo "$out"
}

# A streaming replica of the primary: pg_basebackup once, then started on
# its own port (hot standby; the superuser replicates over scram, which
# initdb's pg_hba.conf allows from 127.0.0.1).
start_replica() { # index
	local i=$1 dir port
	dir=$(replica_dir "$i")
	port=$(replica_port "$i")
	if [ ! -s "$dir/PG_VERSION" ]; then
		say "making replica $i with pg_basebackup in $dir"
		mkdir -p "$dir"
		chmod 700 "$dir"
		is_root && chown postgres: "$dir"
		as_pg env PGPASSWORD="$(secret pg-superuser)" "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" \
			-U postgres -D "$dir" -R -X stream -c fast >"$LOG/basebackup-$i.log" 2>&1 ||
			fail "pg_basebackup failed: see $LOG/basebackup-$i.log"
		cat >>"$dir/postgresql.conf" <<-EOF
			# replica $i of the local stack
			hot_standby = on
			hot_standby_feedback = on
		EOF
	fi
	port_busy "$port" && fail "port $port on 127.0.0.1 is in use (set REPLICA_PORTS)"
	say "starting replica $i on 127.0.0.1:$port"
	as_pg "$PGBIN/pg_ctl" -D "$dir" -o "-p $port" -l "$dir/server.log" -w -t 60 start >/dev/null ||
		fail "replica $i did not start: see $dir/server.log"
}

stop_replica() { # index
	local dir
	dir=$(replica_dir "$1")
	if [ -s "$dir/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null 2>&1 || true
	fi
}

stop_replicas() {
	local d
	for d in "$(dirname "$PGDATA")"/replica-*; do
		[ -s "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m fast -w -t 60 stop >/dev/null 2>&1
	done
	return 0
}

pg_admin_url() { echo "postgresql://postgres:$(secret pg-superuser)@127.0.0.1:$PG_PORT/postgres"; }
database_url() {
	if pg_sock_ok; then
		echo "postgresql://paintstudio:$(secret pg-app)@/paintstudio?host=$(pct "$PG_SOCK_DIR")&port=$PG_PORT"
	else
		echo "postgresql://paintstudio:$(secret pg-app)@127.0.0.1:$PG_PORT/paintstudio"
	fi
}
# Redis asks every client for its password (requirepass): the service
# through REDIS_URL, the tools through REDISCLI_AUTH (stack.env has both).
redis_password() { secret redis; }
redis_url() {
	local pw
	pw=$(pct "$(redis_password)")
	if sock_fits "$REDIS_SOCK"; then
		echo "unix://:$pw@$(pct "$REDIS_SOCK")"
	else
		echo "redis://:$pw@127.0.0.1:$REDIS_PORT/0"
	fi
}
rcli() { REDISCLI_AUTH=$(redis_password) redis-cli "$@"; }

# The primary's unix socket, for clusters made before it had one too:
# its folder (owned by the PostgreSQL user, 0700), the setting (the last
# one in postgresql.conf wins) and a pg_hba.conf line letting the app role
# in with its password, ahead of initdb's "local all all peer". Run before
# PostgreSQL starts, so nothing needs reloading; idempotent.
pg_socket_setup() {
	local want="''" conf=$PGDATA/postgresql.conf hba=$PGDATA/pg_hba.conf tmp
	local line="local   all             paintstudio                             scram-sha-256"
	if pg_sock_ok; then
		mkdir -p "$PG_SOCK_DIR"
		chmod 700 "$PG_SOCK_DIR"
		is_root && chown "$(pg_user):" "$PG_SOCK_DIR"
		want="'${PG_SOCK_DIR//\'/\'\'}'"
	fi
	if [ "$(grep -E '^[[:space:]]*unix_socket_directories[[:space:]]*=' "$conf" | tail -1 |
		sed -E 's/^[^=]*=[[:space:]]*//; s/[[:space:]]*(#.*)?$//')" != "$want" ]; then
		# appended as root: the file keeps its owner
		echo "unix_socket_directories = $want	# paintstudio local stack" >>"$conf"
	fi
	if ! grep -qE '^local[[:space:]]+all[[:space:]]+paintstudio[[:space:]]+scram-sha-256' "$hba"; then
		tmp=$(mktemp)
		awk -v line="$line" '!done && /^local[[:space:]]/ { print line; done = 1 } { print }
			END { if (!done) print line }' "$hba" >"$tmp"
		cat "$tmp" >"$hba"	# rewritten in place: it keeps its owner and mode
		rm -f "$tmp"
	fi
}

start_pg() {
	local pw
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		say "initialising a PostgreSQL 15 cluster in $PGDATA"
		mkdir -p "$PGDATA"
		chmod 700 "$PGDATA"
		is_root && chown -R postgres: "$(dirname "$PGDATA")"
		pw=$(mktemp)
		secret pg-superuser >"$pw"
		chmod 644 "$pw"
		as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth-local=peer \
			--auth-host=scram-sha-256 --pwfile="$pw" -E UTF8 --locale=C.UTF-8 >"$LOG/initdb.log" ||
			{ rm -f "$pw"; fail "initdb failed: see $LOG/initdb.log"; }
		rm -f "$pw"
		cat >>"$PGDATA/postgresql.conf" <<-EOF
			# paintstudio local stack
			listen_addresses = '127.0.0.1'
			max_connections = 200
			shared_buffers = 128MB
			shared_preload_libraries = 'pg_stat_statements'
			fsync = on
		EOF
	fi
	pg_socket_setup
	say "starting PostgreSQL on 127.0.0.1:$PG_PORT$(pg_sock_ok && echo " and in $PG_SOCK_DIR")"
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -o "-p $PG_PORT" -l "$PGDATA/server.log" -w -t 60 start >/dev/null ||
		fail "PostgreSQL did not start: see $PGDATA/server.log"
}

setup_db() {
	local admin app_pw
	admin=$(pg_admin_url)
	app_pw=$(secret pg-app)
	psql "$admin" -qAt -v ON_ERROR_STOP=1 -v pw="$app_pw" <<-'EOF' >/dev/null
		SELECT 'CREATE ROLE paintstudio LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'paintstudio') \gexec
		ALTER ROLE paintstudio PASSWORD :'pw';
		SELECT 'CREATE DATABASE paintstudio OWNER paintstudio' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'paintstudio') \gexec
		-- lets the service's own role see pg_stat_statements and all of pg_stat_activity
		GRANT pg_read_all_stats TO paintstudio;
	EOF
	psql "postgresql://postgres:$(secret pg-superuser)@127.0.0.1:$PG_PORT/paintstudio" -qAt \
		-v ON_ERROR_STOP=1 >/dev/null <<-'EOF'
		CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
		-- POST /admin/queries/reset and /admin/activity/{pid}/cancel (analytics.h)
		GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO paintstudio;
		GRANT pg_signal_backend TO paintstudio;
	EOF
}

# The settings every Redis data node has (this stack's one, and the HA
# pair of scripts/ha.sh): redis_node_conf PORT NAME DIR. Its other lines
# (a socket, replication) follow it in the file.
redis_node_conf() {
	cat <<-EOF
		bind 127.0.0.1
		port $1
		protected-mode yes
		requirepass $(redis_password)
		daemonize yes
		pidfile $RUN/$2.pid
		logfile $LOG/$2.log
		dir $3
		appendonly yes
		appendfsync everysec
		save ""
		# Bounded, and only keys with a TTL are ever evicted. The service's
		# keys (app/cache/cache.c), each under ps:<run_id><replid>: :
		#   paint:<id>              a paint (CACHE_TTL, 5 s when absent)   TTL
		#   lease:paint:<id>        a read lease (3 s)                     TTL
		#   <kind>:<gen>:<hash>     a list or stats page (60 s)            TTL
		#   gen                     the pages' generation (INCR)           none
		#   wal                     last invalidation's WAL position       none
		# gen and wal are what the never-stale argument rests on (pieces L
		# and R): evicted, gen would fall back to 0 and find pages stored
		# before the writes that bumped it. volatile-lru never touches a key
		# without a TTL; when only those are left, writes fail with OOM,
		# which the service treats as Redis failing (reads bypass it).
		# tests/integration/test_security.py checks both.
		maxmemory 256mb
		maxmemory-policy volatile-lru
		# DEBUG SLEEP from loopback only (the cache fault tests)
		enable-debug-command local
	EOF
}

start_redis() {
	mkdir -p "$STACK_DIR/redis"
	# The file holds the password: for this user only.
	(umask 077 && {
		redis_node_conf "$REDIS_PORT" redis "$STACK_DIR/redis"
		if sock_fits "$REDIS_SOCK"; then
			printf 'unixsocket %s\nunixsocketperm 700\n' "$REDIS_SOCK"
		fi
	} >"$STACK_DIR/redis/redis.conf")
	chmod 600 "$STACK_DIR/redis/redis.conf"
	say "starting Redis on 127.0.0.1:$REDIS_PORT$(sock_fits "$REDIS_SOCK" && echo " and $REDIS_SOCK")"
	redis-server "$STACK_DIR/redis/redis.conf"
	for _ in $(seq 100); do
		rcli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
		sleep 0.1
	done
	fail "Redis did not answer within 10 s: see $LOG/redis.log"
}

make_cert() {
	[ -s "$STACK_DIR/tls/cert.pem" ] && return 0
	say "making a self-signed TLS certificate for localhost"
	mkdir -p "$STACK_DIR/tls"
	(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$STACK_DIR/tls/key.pem" -out "$STACK_DIR/tls/cert.pem" -days 825 \
		-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" 2>/dev/null)
	chmod 644 "$STACK_DIR/tls/cert.pem"
}

# The account nginx workers run as when started by root; it must reach web/.
nginx_user_line() {
	is_root || return 0
	if id www-data >/dev/null 2>&1 && runuser -u www-data -- test -r "$WEB_ROOT/index.html" 2>/dev/null; then
		echo "user www-data;"
	else
		echo "user root;  # www-data cannot read $WEB_ROOT"
	fi
}

# The folder of the service's sockets (mode 0660): the service and nginx
# only. As root, nginx's workers may run as another user: the folder gets
# their group and the setgid bit, so each socket inherits that group.
secure_run_dir() {
	local user group
	is_root && chown "$(id -u):$(id -g)" "$RUN"
	chmod 700 "$RUN"
	is_root || return 0
	user=$(nginx_user_line | awk '{print $2}' | tr -d ';')
	if [ -n "$user" ] && [ "$user" != root ]; then
		group=$(id -gn "$user")
		chgrp "$group" "$RUN"
		chmod 2750 "$RUN"
	fi
}

start_nginx() {
	local conf=$STACK_DIR/nginx ups="" i
	mkdir -p "$conf/tmp"
	for i in $(seq "$APP_PROCESSES"); do
		ups+="        server unix:$RUN/app-$i.sock max_fails=0;"$'\n'
	done
	"$REPO/nginx/render.sh" "$REPO/nginx/local.conf.in" "$conf" \
		"STACK_DIR=$STACK_DIR" "HTTPS_PORT=$HTTPS_PORT" "WEB_ROOT=$WEB_ROOT" \
		"USER_LINE=$(nginx_user_line)" "UPSTREAMS=$ups" || fail "cannot render the nginx configuration"
	is_root && chown -R "$(nginx_user_line | awk '{print $2}' | tr -d ';')" "$conf/tmp" 2>/dev/null || true
	nginx -t -q -e "$LOG/nginx-error.log" -c "$conf/nginx.conf" -p "$conf" || fail "nginx configuration is invalid"
	say "starting nginx on https://127.0.0.1:$HTTPS_PORT"
	nginx -e "$LOG/nginx-error.log" -c "$conf/nginx.conf" -p "$conf"
}

app_env() {
	export DATABASE_URL=${DATABASE_URL:-$(database_url)}
	export REDIS_URL=${REDIS_URL-$(redis_url)}
	if [ "$REPLICAS" -gt 0 ]; then
		export DATABASE_REPLICA_URLS=${DATABASE_REPLICA_URLS:-$(replica_urls)}
	fi
}

start_app() { # index
	local i=$1 name=${DB_APPLICATION_NAME:-paint_studio}
	app_env
	# Several processes: each shows in pg_stat_activity under its own name.
	[ "$APP_PROCESSES" -gt 1 ] && name=$name-$i
	DB_APPLICATION_NAME=$name FCGI_LISTEN=unix:$RUN/app-$i.sock \
		setsid "$BIN" serve >>"$LOG/app-$i.log" 2>&1 </dev/null &
	echo $! >"$RUN/app-$i.pid"
}

wait_app() { # index
	local i=$1
	for _ in $(seq 150); do
		[ -S "$RUN/app-$i.sock" ] && return 0
		pidfile_alive "$RUN/app-$i.pid" || { tail -5 "$LOG/app-$i.log" >&2; fail "paintstudio $i exited: see $LOG/app-$i.log"; }
		sleep 0.1
	done
	fail "paintstudio $i did not open its socket within 15 s"
}

seed() {
	local n out
	app_env
	say "applying migrations"
	(cd "$REPO" && "$BIN" migrate "$REPO/migrations") | sed 's/^/    /'
	n=$(psql "$DATABASE_URL" -qAt -c "SELECT count(*) FROM paints")
	if [ "$n" = 0 ] && [ "$SEED_COUNT" -gt 0 ]; then
		say "loading the demo catalogue ($SEED_COUNT paints)"
		psql "$DATABASE_URL" -q -v count="$SEED_COUNT" -f "$REPO/scripts/seed.sql" >/dev/null
	fi
	if [ -n "${ADMIN_PASSWORD:-}" ]; then
		out=$("$BIN" create-admin admin)
		ADMIN_SHOWN="admin / (the password in ADMIN_PASSWORD)"
	else
		out=$("$BIN" create-admin admin --if-missing </dev/null)
		if grep -q "password (shown once)" <<<"$out"; then
			ADMIN_SHOWN="admin / $(sed -n 's/.*password (shown once): //p' <<<"$out")   (shown once: note it now)"
		else
			ADMIN_SHOWN="admin / (shown at first start; ADMIN_PASSWORD=... make run sets a new one)"
		fi
	fi
}

write_env() {
	app_env
	cat >"$STACK_DIR/stack.env" <<-EOF
		# Written by scripts/stack.sh: source it to reach the local stack.
		export BASE_URL='https://127.0.0.1:$HTTPS_PORT'
		export DATABASE_URL='$DATABASE_URL'
		export REDIS_URL='$REDIS_URL'
		export REDIS_PASSWORD='$(redis_password)'
		export REDISCLI_AUTH='$(redis_password)'
		export PG_ADMIN_URL='$(pg_admin_url)'
		export PGDATA='$PGDATA'
		export STACK_DIR='$STACK_DIR'
		export APP_PROCESSES='$APP_PROCESSES'
		export REPLICAS='$REPLICAS'
		export DATABASE_REPLICA_URLS='${DATABASE_REPLICA_URLS:-}'
	EOF
	for i in $(seq "$REPLICAS"); do
		echo "export PG_REPLICA${i}_ADMIN_URL='$(replica_admin_url "$i")'" >>"$STACK_DIR/stack.env"
		echo "export PG_REPLICA${i}_DATA='$(replica_dir "$i")'" >>"$STACK_DIR/stack.env"
	done
	chmod 600 "$STACK_DIR/stack.env"
}

start_all() {
	local t0=$SECONDS i
	[ -x "$BIN" ] || fail "$BIN is missing: run make first"
	[ -s "$WEB_ROOT/index.html" ] || fail "$WEB_ROOT is missing: run make first"
	mkdir -p "$RUN" "$LOG"
	if pidfile_alive "$RUN/nginx.pid" || pidfile_alive "$RUN/app-1.pid"; then
		fail "a stack from $STACK_DIR is already running: make stop"
	fi
	for p in "$HTTPS_PORT" "$PG_PORT" "$REDIS_PORT"; do
		port_busy "$p" && fail "port $p on 127.0.0.1 is in use (another stack? make stop, or set HTTPS_PORT/PG_PORT/REDIS_PORT)"
	done
	start_pg
	setup_db
	start_redis
	make_cert
	seed
	for i in $(seq "$REPLICAS"); do start_replica "$i"; done	# after seed: the catalogue is copied
	secure_run_dir	# after start_pg: a first initdb hands the stack's folder to postgres
	say "starting $APP_PROCESSES paintstudio process(es)"
	for i in $(seq "$APP_PROCESSES"); do start_app "$i"; done
	for i in $(seq "$APP_PROCESSES"); do wait_app "$i"; done
	start_nginx
	for _ in $(seq 100); do
		curl -ksf "https://127.0.0.1:$HTTPS_PORT/healthz" >/dev/null && break
		sleep 0.1
	done
	# Ready once it reaches PostgreSQL; a first connection can take seconds
	# on a slow machine or under valgrind: keep asking for up to 30 s.
	for _ in $(seq 300); do
		curl -ksf "https://127.0.0.1:$HTTPS_PORT/readyz" >/dev/null && break
		sleep 0.1
	done
	curl -ksf "https://127.0.0.1:$HTTPS_PORT/readyz" >/dev/null || fail "the service is not ready: see $LOG/"
	write_env
	STARTED_IN=$((SECONDS - t0))
}

banner() {
	app_env
	cat <<-EOF

		  Paint Studio admin is running (started in ${STARTED_IN}s)

		  URL           https://127.0.0.1:$HTTPS_PORT/   (self-signed certificate)
		  admin login   ${ADMIN_SHOWN}
		  DATABASE_URL  $DATABASE_URL
		  replicas      ${REPLICAS} ${DATABASE_REPLICA_URLS:+(DATABASE_REPLICA_URLS in stack.env)}
		  REDIS_URL     $REDIS_URL   (redis-cli -s $REDIS_SOCK, or -p $REDIS_PORT, with REDISCLI_AUTH from stack.env)
		  settings      $STACK_DIR/stack.env   (source it for psql/redis-cli)
		  data          $PGDATA (PostgreSQL), $STACK_DIR/redis
		  logs          $LOG/

		  open https://127.0.0.1:$HTTPS_PORT/ in a browser and log in, or:
		    curl -k https://127.0.0.1:$HTTPS_PORT/readyz

	EOF
}

stop_apps() {
	local f pid
	for f in "$RUN"/app-*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		kill -TERM "$pid" 2>/dev/null || true
	done
	for f in "$RUN"/app-*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		rm -f "$f"
	done
}

stop_nginx() {
	if pidfile_alive "$RUN/nginx.pid"; then
		local pid
		pid=$(cat "$RUN/nginx.pid")
		kill -QUIT "$pid"
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -TERM "$pid" 2>/dev/null || true
	fi
}

stop_redis() {
	if pidfile_alive "$RUN/redis.pid"; then
		local pid
		pid=$(cat "$RUN/redis.pid")
		rcli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
}

stop_pg() {
	if [ -s "$PGDATA/postmaster.pid" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
	fi
}

stop_all() {
	say "stopping the stack in $STACK_DIR"
	stop_nginx
	stop_apps
	stop_redis
	stop_replicas
	stop_pg
	say "stopped (data kept in $STACK_DIR)"
}

# HA=1, or an HA stack running from STACK_DIR: scripts/ha.sh replaces the
# single PostgreSQL and Redis with their failover sets.
if [ "${HA:-0}" = 1 ] || [ -e "$RUN/ha" ]; then
	# shellcheck source=scripts/ha.sh
	. "$REPO/scripts/ha.sh"
fi

cmd=${1:-}
case "$cmd" in
run)
	follower=
	trap '[ -n "$follower" ] && kill "$follower" 2>/dev/null; stop_all; exit 0' INT TERM
	start_all || { stop_all; exit 1; }
	banner
	if [ "${DETACH:-0}" = 1 ]; then
		trap - INT TERM
		echo "  detached: make stop ends it"
		exit 0
	fi
	echo "  Ctrl-C stops everything. Request log follows."
	tail -n 0 -F "$LOG"/app-*.log &
	follower=$!
	wait "$follower" || true
	;;
start)
	start_all || { stop_all; exit 1; }
	;;
stop) stop_all ;;
pg-stop) stop_pg ;;
pg-kill) [ -s "$PGDATA/postmaster.pid" ] && kill -KILL "$(head -1 "$PGDATA/postmaster.pid")" ;;
pg-start) start_pg ;;
redis-stop) stop_redis ;;
redis-start) start_redis ;;
app-stop) stop_apps ;;
replica-stop) stop_replica "${2:?replica number}" ;;
replica-kill)
	d=$(replica_dir "${2:?replica number}")
	[ -s "$d/postmaster.pid" ] && kill -KILL "$(head -1 "$d/postmaster.pid")"
	;;
replica-start) start_replica "${2:?replica number}" ;;
ha-*)
	[ "$(type -t ha_cmd)" = function ] || fail "no HA stack in $STACK_DIR (HA=1 make run)"
	ha_cmd "$@"
	;;
app-start)
	for i in $(seq "$APP_PROCESSES"); do start_app "$i"; done
	for i in $(seq "$APP_PROCESSES"); do wait_app "$i"; done
	;;
*)
	echo "usage: $0 run|start|stop|pg-stop|pg-start|pg-kill|redis-stop|redis-start|app-stop|app-start|replica-stop N|replica-kill N|replica-start N|ha-status|ha-kill-primary|ha-kill-redis-master|ha-kill-node NAME|ha-restart-node NAME" >&2
	exit 2
	;;
esac
