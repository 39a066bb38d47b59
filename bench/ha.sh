#!/usr/bin/env bash
# make bench-ha: what HA=1 costs (issue #26), the mixed load and a write
# load on the single node and on the HA stack, in the same run.
#
#   bench/ha.sh                             8 s rows (about 5 minutes)
#   BENCH_SECONDS=15 bench/ha.sh            longer rows
#   BENCH_HA_CONNECTIONS='64 512' BENCH_HA_WRITE_CONNECTIONS='8 64' bench/ha.sh
#                                           other concurrencies (the mix's, the
#                                           writes'; defaults 64 and 8)
#
# Three configurations, each measured with the same rows (same wrk settings,
# the defaults a user gets: one service process, no WORKERS or pool
# override, the request log at warn, SEED_COUNT paints):
#
#   single node, unix sockets   scripts/stack.sh start as `make run` has it
#   single node, TCP            the same stack, the service restarted with
#                               DATABASE_URL and REDIS_URL naming 127.0.0.1
#                               (what HA=1 pays for its transport alone)
#   HA=1                        scripts/ha.sh: pg_auto_failover, synchronous
#                               replication to the standby, Redis under three
#                               sentinels, over loopback TCP (multi-host URL)
#
# and the rows, each after a warm-up of the same load and next to nginx
# serving a static file of one paint's size at the same connections just
# before it (the machine's ceiling at that moment: it drifts over minutes):
#
#   90/10 read/write mix   bench/wrk/mix.lua, as in make bench, 64 connections
#   PATCH only             bench/wrk/patch.lua: every request commits; at 8
#                          connections, the default pool's 3 + 5, so that each
#                          write has a connection (at 64 most are answered 503
#                          at once, and the row would time the shedding)
#
# Beside wrk's figures, each row has the CPU the stack's own processes used
# (nginx, the service, PostgreSQL, Redis, and on HA=1 the standby, the
# monitor, the keepers and the sentinels) per request: on a machine shared
# with other work it drifts less than requests/s. And the stack's idle CPU
# (on HA=1: health checks, keepers, sentinels) is measured before the rows.
#
# The single stack runs first, then it is stopped and the HA stack started
# (its own folder and free loopback ports), then the single stack again
# with the sockets' rows (A/B/A: the machine's drift over the run shows
# beside the ratios; BENCH_HA_AGAIN=0 leaves it out). Everything stops at
# the end, on an error or on Ctrl-C. Results: bench/results/ha.jsonl and
# ha.md.
set -euo pipefail
# make bench runs this after bench/badday.sh: BENCH_ONLY may leave it out.
if [ -n "${BENCH_ONLY:-}" ] && ! [[ "HA" =~ $BENCH_ONLY ]]; then
	exit 0
fi
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/bench/results
SECONDS_EACH=${BENCH_SECONDS:-8}
WARM_SECONDS=${BENCH_WARM_SECONDS:-2}
CACHE_WARM_SECONDS=${BENCH_CACHE_WARM_SECONDS:-10}
CONNS=${BENCH_HA_CONNECTIONS:-64}
AGAIN=${BENCH_HA_AGAIN:-1}
WRITE_CONNS=${BENCH_HA_WRITE_CONNECTIONS:-8}
STATIC=bench-ha-paint.json
mkdir -p "$OUT"
: >"$OUT/ha.jsonl"

say() { printf '==> %s\n' "$*"; }
# n distinct free loopback ports (all held open until all are chosen)
free_ports() {
	python3 - "$1" <<-'PY'
		import socket, sys
		socks = []
		for _ in range(int(sys.argv[1])):
		    s = socket.socket()
		    s.bind(("127.0.0.1", 0))
		    socks.append(s)
		print(" ".join(str(s.getsockname()[1]) for s in socks))
	PY
}

ROOT=$(mktemp -d /tmp/paintstudio-benchha-XXXXXX)
mkdir -p "$ROOT/single" "$ROOT/ha"
# PostgreSQL runs as another user when we are root: it must reach its folder.
chmod 755 "$ROOT" "$ROOT/single" "$ROOT/ha"
read -r S_HTTPS S_PG S_REDIS H_HTTPS H_PG1 H_PG2 H_MON H_R1 H_R2 H_S1 H_S2 H_S3 <<<"$(free_ports 12)"

# The defaults a user gets; nothing of a stack the caller may have sourced.
export APP_PROCESSES=1 SEED_COUNT=${SEED_COUNT:-10000} LOG_LEVEL=warn REPLICAS=0
unset WORKERS DB_POOL_SIZE DB_MAX_OVERFLOW DB_POOL_TIMEOUT DB_POOL_IDLE_TIMEOUT \
	DATABASE_URL DATABASE_REPLICA_URLS REDIS_URL REDIS_SENTINELS REDIS_SENTINEL_MASTER \
	REDIS_SENTINEL_PASSWORD HA HA_PG_PORTS HA_MONITOR_PORT HA_REDIS_PORTS SENTINEL_PORTS
ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export ADMIN_PASSWORD

# scripts/stack.sh for one of the two stacks: stack single|ha command...
stack() {
	local which=$1
	shift
	case $which in
	single)
		env STACK_DIR="$ROOT/single" HTTPS_PORT="$S_HTTPS" PG_PORT="$S_PG" REDIS_PORT="$S_REDIS" \
			"$REPO/scripts/stack.sh" "$@"
		;;
	ha)
		env HA=1 STACK_DIR="$ROOT/ha" HTTPS_PORT="$H_HTTPS" PG_PORT="$H_PG1" REDIS_PORT="$H_R1" \
			HA_PG_PORTS="$H_PG1,$H_PG2" HA_MONITOR_PORT="$H_MON" HA_REDIS_PORTS="$H_R1,$H_R2" \
			SENTINEL_PORTS="$H_S1,$H_S2,$H_S3" "$REPO/scripts/stack.sh" "$@"
		;;
	esac
}
# A setting of a running stack, from its stack.env (read in a subshell: the
# two stacks' settings never mix in this one).
# shellcheck source=/dev/null
stack_var() { (. "$ROOT/$1/stack.env" && printenv "$2"); }

# wrk with its output in a file, from this shell. wrk catches SIGINT itself
# and exits 0 (printing what it has), so Ctrl-C during a foreground wrk, or
# one inside $(...), would let this script carry on; the wait builtin
# returns on a trapped signal instead, and the trap ends the run.
WRK_OUT=$ROOT/wrk.out
bench_wrk() { # wrk arguments...: its output in $WRK_OUT
	wrk "$@" >"$WRK_OUT" &
	wait $!
}
wrk_line() { sed -n 's/^BENCH //p' "$WRK_OUT"; }

RUNNING=
cleanup() {
	trap - INT TERM
	if [ -n "$RUNNING" ]; then
		say "stopping the $RUNNING stack"
		stack "$RUNNING" stop >/dev/null 2>&1 || true
	fi
	rm -f "$REPO/build/web/$STATIC"
	rm -rf "$ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # single|ha
	say "starting the $1 stack in $ROOT/$1 ($SEED_COUNT paints)"
	RUNNING=$1
	stack "$1" start | sed 's/^/    /'
	BASE=$(stack_var "$1" BASE_URL)
	login
}

cpu() { python3 "$REPO/bench/ha_report.py" cpu "$ROOT/$RUNNING"; }

idle_cpu() { # config: what the stack uses doing nothing, over 5 s
	local used
	say "the stack's own CPU, idle, over 5 s"
	used=$(python3 "$REPO/bench/ha_report.py" idle "$ROOT/$RUNNING" 5)
	note "$1" "idle (after the cache's warm-up), the stack's processes used $used"
}

stop() {
	say "stopping the $RUNNING stack"
	stack "$RUNNING" stop | sed 's/^/    /'
	RUNNING=
}

login() {
	local out
	out=$(curl -ks -i -H "Origin: $BASE" -H 'Content-Type: application/json' \
		-d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" "$BASE/auth/login")
	BENCH_COOKIE=$(grep -i '^set-cookie: __Host-ps_session=' <<<"$out" | sed 's/^[^:]*: //; s/;.*//')
	[ -n "$BENCH_COOKIE" ] || { echo "bench: login failed" >&2; exit 1; }
	BENCH_CSRF=$(tail -1 <<<"$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["csrf_token"])')
	export BENCH_COOKIE BENCH_CSRF BENCH_ORIGIN=$BASE
}
export BENCH_WRK_DIR=$REPO/bench/wrk BENCH_MAX_ID=$SEED_COUNT

warm() { # every paint read, so that the rows start with a hot cache
	say "warming the cache (${CACHE_WARM_SECONDS}s of reads of every paint)"
	bench_wrk -t2 -c64 -d"${CACHE_WARM_SECONDS}s" -s "$REPO/bench/wrk/warm.lua" "$BASE"
}

# One row: the same load briefly (the pool and cache at steady state), the
# static file at the same connections, then the row itself.
row() { # config name connections script
	local config=$1 name=$2 c=$3 script=$4 line adjacent c0 c1
	bench_wrk -t2 -c"$c" -d"${WARM_SECONDS}s" --timeout 30s -s "$REPO/bench/wrk/$script" "$BASE"
	say "static paint-sized file, $c connections, ${SECONDS_EACH}s (the ceiling next to the row below)"
	BENCH_STATIC=$STATIC bench_wrk -t2 -c"$c" -d"${SECONDS_EACH}s" --timeout 30s --latency \
		-s "$REPO/bench/wrk/static.lua" "$BASE"
	adjacent=$(wrk_line)
	say "[$config] $name, $c connections, ${SECONDS_EACH}s (warmed up for ${WARM_SECONDS}s before)"
	c0=$(cpu)
	bench_wrk -t2 -c"$c" -d"${SECONDS_EACH}s" --timeout 30s --latency -s "$REPO/bench/wrk/$script" "$BASE"
	c1=$(cpu)
	line=$(wrk_line)
	python3 "$REPO/bench/ha_report.py" row "$config" "$name" "$c" "$line" "$adjacent" \
		"$(python3 -c "print($c1 - $c0)")" >>"$OUT/ha.jsonl"
	tail -1 "$OUT/ha.jsonl" | python3 "$REPO/bench/ha_report.py" show
}

rows() { # config
	local c
	warm
	idle_cpu "$1"
	for c in $CONNS; do row "$1" "90/10 read/write mix" "$c" mix.lua; done
	for c in $WRITE_CONNS; do row "$1" "PATCH only" "$c" patch.lua; done
	transports "$1"
}

note() { # config text: a line under the report's table
	python3 "$REPO/bench/ha_report.py" note "$1" "$2" >>"$OUT/ha.jsonl"
	printf '    %s\n' "$2"
}

# How the service reached PostgreSQL and Redis in the rows just measured:
# its pool's connections (still open) by transport, and Redis's clients.
transports() { # config
	local pg redis port
	pg=$(psql "$(stack_var "$RUNNING" PG_ADMIN_URL)" -qAtX -F' ' -c "SELECT
		count(*) FILTER (WHERE client_addr IS NULL), count(*) FILTER (WHERE client_addr IS NOT NULL)
		FROM pg_stat_activity WHERE application_name = 'paint_studio'")
	# the single Redis, or the master the HA stack started with
	port=$S_REDIS
	if [ "$RUNNING" = ha ]; then
		port=$(stack_var ha REDIS_URL | sed 's/.*:\([0-9][0-9]*\)\/[0-9]*$/\1/')
	fi
	# the service's clients: not this one, not a replica, not a sentinel
	redis=$(REDISCLI_AUTH=$(stack_var "$RUNNING" REDIS_PASSWORD) redis-cli -p "$port" client list |
		grep -v -e 'cmd=client|list' -e 'flags=S' -e 'name=sentinel-' |
		awk '/ addr=\// { u++ } / addr=[0-9]/ { t++ } END { printf "%d %d", u, t }')
	note "$1" "the service's PostgreSQL connections: ${pg% *} over the unix socket, ${pg#* } over TCP; its Redis clients (on the master): ${redis% *} over the unix socket, ${redis#* } over TCP"
}

# On HA=1: the primary's synchronous standby, before and after the rows (a
# standby that fell out of sync would make the rows asynchronous ones).
sync_state() { # when
	local s
	s=$(psql "$(stack_var ha PG_ADMIN_URL)" -qAtX -F'; ' -c "SELECT
		'synchronous_standby_names = ' || current_setting('synchronous_standby_names'),
		'synchronous_commit = ' || current_setting('synchronous_commit'),
		'standbys: ' || coalesce((SELECT string_agg(application_name || ' ' || state || ' ' || sync_state, ', ')
		                         FROM pg_stat_replication), 'none')")
	note ha "$1: $s"
}

python3 "$REPO/bench/ha_report.py" meta "$SECONDS_EACH" "$WARM_SECONDS" "$SEED_COUNT" \
	"$(nproc)" >>"$OUT/ha.jsonl"

start single
# The static file of exactly one paint's size (nginx's ceiling for it).
bytes=$(curl -ks -H "Cookie: $BENCH_COOKIE" "$BASE/admin/paints/1" | wc -c)
head -c "$bytes" /dev/zero | tr '\0' 'x' >"$REPO/build/web/$STATIC"

rows sockets

say "restarting the service with DATABASE_URL and REDIS_URL over loopback TCP"
stack single app-stop
DATABASE_URL="postgresql://paintstudio:$(cat "$ROOT/single/secrets/pg-app")@127.0.0.1:$S_PG/paintstudio" \
	REDIS_URL="redis://:$(stack_var single REDIS_PASSWORD)@127.0.0.1:$S_REDIS/0" \
	stack single app-start
rows tcp
stop

start ha
stack ha ha-status | sed 's/^/    /'
sync_state before
rows ha
sync_state after
stop

if [ "$AGAIN" = 1 ]; then
	start single	# its data kept: no new cluster, no seeding
	rows again
	stop
fi

say "report"
python3 "$REPO/bench/ha_report.py" report "$OUT/ha.jsonl" "$OUT/ha.md"
