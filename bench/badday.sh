#!/usr/bin/env bash
# The bad day (issue #25): PostgreSQL saturated, measured from the outside.
#
#   bench/badday.sh (make bench-badday)     the three admission modes, 20 s rows
#   BADDAY_MODES='adaptive' bench/badday.sh one mode (DB_ADMISSION values;
#                                           "default" sets nothing)
#   BADDAY_SECONDS=20 BADDAY_CPU=0.1 BADDAY_CONNS='16 256' bench/badday.sh
#   BADDAY_PERIOD_MS=100 bench/badday.sh   the quota's period (default 10)
#   BADDAY_THINK_MS=200 bench/badday.sh    a person's mean time between clicks
#   BADDAY_PG_CPU=1 bench/badday.sh        the CPU PostgreSQL is pinned to (empty: none)
#   BADDAY_WARMUP=2 bench/badday.sh        seconds of load before a row is measured
#   BIN=/path/to/paintstudio bench/badday.sh   another build (a baseline)
#
# Starts its own stack (plain optimised build, one service process, pool
# 5+10 and a 20 s pool timeout as in production, 100,000 paints) in a
# temporary folder on free loopback ports. For each mode it restarts the
# service and measures, with PostgreSQL's processes (the postmaster and
# every backend, which fork from it) capped by a cgroup's CPU quota
# (BADDAY_CPU of one CPU in every BADDAY_PERIOD_MS; cgroup v2 cpu.max or
# v1 cpu.cfs_quota_us,
# whichever this machine has):
#
#   quiet     the probes alone: /healthz, a hot cached GET, the UI's
#             background list poll (answered from the cache), and a
#             static file of /healthz's size that nginx serves itself (the
#             machine's ceiling under the same load), each a paced wrk
#             (2 connections, a request every BADDAY_PROBE_MS)
#   db N      N connections of database-bound GETs (random paints the
#             cache does not hold: it is emptied of them before each row),
#             with the probes running beside them; each connection sends
#             its next request as soon as it has an answer, 503 or not
#   db N, waiting out Retry-After
#             the same at the top N, but after a 503 a connection waits
#             the Retry-After (1 s) before its next request, as the UI and
#             well-behaved clients do
#   mix       the top N split 1:4 between people reading paints and the
#             same reads marked as background refreshes (X-Request-Purpose:
#             background), the latter sending their next poll as soon as
#             they have an answer, or waiting out Retry-After after a 503
#             as the UI does, with the probes. Each person thinks between
#             clicks (BADDAY_THINK_MS, 200 ms on average: a brisk user, so
#             the people ask for about an eighth of what the capped
#             database serves); a second mix row has the people click
#             again at once, 51 connections that alone saturate it
#
# Each row also splits the answers by class and status from nginx's access
# log (its request time has millisecond resolution). Results:
# bench/results/badday.jsonl and badday.md. The cgroup is removed at the
# end, whatever happens.
set -euo pipefail
# make bench runs this after bench/run.sh: BENCH_ONLY may leave it out.
if [ -n "${BENCH_ONLY:-}" ] && ! [[ "bad day" =~ $BENCH_ONLY ]]; then
	exit 0
fi
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/bench/results
SECS=${BADDAY_SECONDS:-20}
CPU=${BADDAY_CPU:-0.1}
# A short period spreads the cap evenly: with the kernel's default of
# 100 ms, a capped PostgreSQL runs 10 ms and then stops for 90, so every
# statement's p99 is about 90 ms whatever the load (one period's stall).
PERIOD_MS=${BADDAY_PERIOD_MS:-10}
CONNS=${BADDAY_CONNS:-16 256}
MODES=${BADDAY_MODES:-adaptive fixed off}
PROBE_MS=${BADDAY_PROBE_MS:-10}
THINK_MS=${BADDAY_THINK_MS:-200}
# Seconds the loads run before a row's measurement starts.
WARM=${BADDAY_WARMUP:-2}
# The CPU the capped PostgreSQL runs on (BADDAY_PG_CPU= : any). A quota
# smaller than the kernel's bandwidth slice (5 ms) is handed out whole to
# one CPU's run queue each period: backends waiting on the other CPU then
# starve for periods on end (statements of 70 µs taking 25-80 ms, measured
# with Server-Timing), a tail of the kernel's making, not the database's.
PG_CPU=${BADDAY_PG_CPU-$(($(nproc) - 1))}
SEED=${BADDAY_SEED:-100000}
HOT=10		# paints 1..HOT are the hot cached ones; the rest is evicted before a row
mkdir -p "$OUT"
: >"$OUT/badday.jsonl"

say() { printf '==> %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export STACK_DIR=$(mktemp -d /tmp/paintstudio-badday-XXXXXX)
chmod 755 "$STACK_DIR"
export HTTPS_PORT=$(free_port) PG_PORT=$(free_port) REDIS_PORT=$(free_port) REPLICA_PORTS=$(free_port)
export APP_PROCESSES=1 SEED_COUNT=$SEED LOG_LEVEL=warn
export DB_POOL_SIZE=5 DB_MAX_OVERFLOW=10 DB_POOL_TIMEOUT=20
unset WORKERS DB_POOL_IDLE_TIMEOUT DB_ADMISSION
export ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
CGROUP=
cleanup() {
	uncap || true
	"$REPO/scripts/stack.sh" stop >/dev/null 2>&1 || true
	rm -f "$REPO/build/web/bench-healthz.json"
	rm -rf "$STACK_DIR"
}
trap cleanup EXIT
# Ctrl-C ends the run: wrk catches SIGINT and exits 0, and without a trap
# a wrk run on its own (the warm-ups) would let the script carry on.
trap 'exit 130' INT TERM

# ---- the CPU cap on PostgreSQL ----------------------------------------------

# The cgroup folder to create: v2 when the unified hierarchy has the cpu
# controller, else v1's cpu hierarchy.
cgroup_dir() {
	if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control
		echo "/sys/fs/cgroup/paintstudio-badday-$$"
	elif [ -w /sys/fs/cgroup/cpu/cgroup.procs ]; then
		echo "/sys/fs/cgroup/cpu/paintstudio-badday-$$"
	elif [ -w /sys/fs/cgroup/cpu,cpuacct/cgroup.procs ]; then
		echo "/sys/fs/cgroup/cpu,cpuacct/paintstudio-badday-$$"
	else
		echo "bench: no writable cgroup with the cpu controller (v2 or v1)" >&2
		return 1
	fi
}

pg_pids() { # the postmaster and its children
	local pm
	pm=$(head -1 "$PGDATA/postmaster.pid")
	echo "$pm"
	pgrep -P "$pm" || true
}

cap() {
	local quota pid
	CGROUP=$(cgroup_dir)
	mkdir -p "$CGROUP"
	local period=$((PERIOD_MS * 1000))
	quota=$(python3 -c "print(max(1000, int($CPU * $period)))")
	if [ -e "$CGROUP/cpu.max" ]; then
		echo "$quota $period" >"$CGROUP/cpu.max"
	else
		echo "$period" >"$CGROUP/cpu.cfs_period_us"
		echo "$quota" >"$CGROUP/cpu.cfs_quota_us"
	fi
	for pid in $(pg_pids); do
		echo "$pid" >"$CGROUP/cgroup.procs" 2>/dev/null || true
		[ -z "$PG_CPU" ] || taskset -a -p -c "$PG_CPU" "$pid" >/dev/null || true
	done
	say "PostgreSQL capped at $CPU CPU ($quota µs every $period µs${PG_CPU:+, on CPU $PG_CPU}; $CGROUP, $(wc -l <"$CGROUP/cgroup.procs") processes)"
}

uncap() {
	local pid
	[ -n "$CGROUP" ] && [ -d "$CGROUP" ] || return 0
	for pid in $(cat "$CGROUP/cgroup.procs"); do
		echo "$pid" >"$(dirname "$CGROUP")/cgroup.procs" 2>/dev/null || true
		[ -z "$PG_CPU" ] || taskset -a -p -c "0-$(($(nproc) - 1))" "$pid" >/dev/null 2>&1 || true
	done
	rmdir "$CGROUP"
	CGROUP=
}

# ---- the stack --------------------------------------------------------------

say "starting a stack for the bad day in $STACK_DIR ($SEED paints)"
"$REPO/scripts/stack.sh" start | sed 's/^/    /'
. "$STACK_DIR/stack.env"
BASE=$BASE_URL
# The seeding's aftermath (autovacuum and analyze of 100,000 new rows, the
# checkpoint) would otherwise run, uncapped, through the first mode's rows.
say "vacuum, analyze and checkpoint after seeding"
psql "${PG_ADMIN_URL%/*}/paintstudio" -qAtX -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
ACCESS_LOG=$STACK_DIR/log/nginx-access.log
# The static probe's file: /healthz's answer, served by nginx itself.
curl -ksf "$BASE/healthz" >"$REPO/build/web/bench-healthz.json"
# A session of its own for each kind of client: the probes (another
# person, reading while someone else floods), the database-bound load, and
# the mix's background polls (another browser).
session() {
	local login cookie
	login=$(curl -ks -i -H "Origin: $BASE" -H 'Content-Type: application/json' \
		-d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" "$BASE/auth/login")
	cookie=$(grep -i '^set-cookie: __Host-ps_session=' <<<"$login" | sed 's/^[^:]*: //; s/;.*//')
	[ -n "$cookie" ] || { echo "bench: login failed" >&2; exit 1; }
	echo "$cookie"
}
PROBE_COOKIE=$(session)
LOAD_COOKIE=$(session)
POLL_COOKIE=$(session)
export BENCH_COOKIE=$PROBE_COOKIE
export BENCH_WRK_DIR=$REPO/bench/wrk BENCH_HOT=$HOT BENCH_DELAY_MS=$PROBE_MS
POLL_PATH='/admin/paints?sort=-created_at&limit=50'
export BENCH_POLL_PATH=$POLL_PATH

# Drop every cached paint but the hot ones (and their leases): the next
# row's database-bound reads all miss.
evict() {
	REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -p "$REDIS_PORT" --scan --pattern '*paint:*' |
		awk -F: -v hot="$HOT" '$(NF - 1) == "paint" && $NF ~ /^[0-9]+$/ && $NF + 0 > hot' |
		xargs -r -n 500 env REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -p "$REDIS_PORT" unlink >/dev/null
}

# Read the hot paints and the poll's page so the cache holds them; the
# page's ETag for the poll's If-None-Match.
warm_hot() {
	local i
	for i in $(seq "$HOT"); do
		curl -ksf -o /dev/null -H "Cookie: $BENCH_COOKIE" "$BASE/admin/paints/$i"
	done
	export BENCH_ETAG=$(curl -ks -D - -o /dev/null -H "Cookie: $BENCH_COOKIE" "$BASE$POLL_PATH" |
		sed -n 's/^[Ee][Tt]ag: //p' | tr -d '\r')
}

probe() { # kind file: a paced probe in the background
	BENCH_COOKIE=$PROBE_COOKIE BENCH_PROBE=$1 wrk -t1 -c2 -d"${SECS}s" --timeout 30s --latency \
		-s "$REPO/bench/wrk/probe.lua" "$BASE" | sed -n 's/^BENCH //p' >"$2" &
}

load() { # conns file env...: database-bound GETs in the background, through the warm-up
	local c=$1 f=$2 t=2
	shift 2
	[ "$c" -lt 2 ] && t=1
	env BENCH_COOKIE="$LOAD_COOKIE" BENCH_THREADS="$t" "$@" wrk -t"$t" -c"$c" -d"$((SECS + WARM))s" --timeout 30s --latency \
		-s "$REPO/bench/wrk/uncached.lua" "$BASE" | sed -n 's/^BENCH //p' >"$f" &
}

pool_json() { curl -ks -H "Cookie: $BENCH_COOKIE" "$BASE/admin/pool"; }

# PostgreSQL's CPU time so far, in ns (its processes' schedstat; the pool's
# backends live through a row), the cap's throttled periods, and how busy
# the whole machine was.
pg_cpu() {
	local pid ns=0 t
	for pid in $(pg_pids); do
		read -r t _ </proc/"$pid"/schedstat 2>/dev/null && ns=$((ns + t))
	done
	echo "cpu_ns $ns"
	# the machine's: busy and idle jiffies (idle and iowait) of all CPUs
	awk '/^cpu /{print "host_busy", $2 + $3 + $4 + $7 + $8 + $9; print "host_idle", $5 + $6}' /proc/stat
	if [ -n "$CGROUP" ]; then
		grep -E '^(nr_periods|nr_throttled) ' "$CGROUP/cpu.stat" || true
	fi
}

# One row: the probes, and the loads given as "name:conns:env..." words.
row() { # mode row-name load-spec...
	local mode=$1 name=$2 dir spec lname c from to
	shift 2
	dir=$(mktemp -d)
	evict
	say "[$mode] $name, ${SECS}s"
	for spec in "$@"; do
		IFS=: read -r lname c rest <<<"$spec"
		# shellcheck disable=SC2086
		load "$c" "$dir/l-$lname" ${rest//:/ }
		echo "$lname $c ${rest//:/ }" >>"$dir/ranges"
	done
	# The row is measured once the loads' start (every connection at once)
	# is over: the log, the pool's and PostgreSQL's figures from here.
	[ $# -gt 0 ] && sleep "$WARM"
	from=$(stat -c %s "$ACCESS_LOG")
	pool_json >"$dir/pool0"
	pg_cpu >"$dir/pg0"
	probe healthz "$dir/p-healthz"
	probe static "$dir/p-static"
	probe hot "$dir/p-hot"
	probe poll "$dir/p-poll"
	wait
	sleep 0.5	# the last answers reach the log
	to=$(stat -c %s "$ACCESS_LOG")
	pool_json >"$dir/pool1"
	pg_cpu >"$dir/pg1"
	tail -c +"$((from + 1))" "$ACCESS_LOG" | head -c "$((to - from))" >"$dir/access"
	python3 "$REPO/bench/badday_report.py" row "$mode" "$name" "$dir" "$HOT" >>"$OUT/badday.jsonl"
	tail -1 "$OUT/badday.jsonl" | python3 "$REPO/bench/badday_report.py" show
	rm -rf "$dir"
}

top=${CONNS##* }
person=$((top / 5))
for mode in $MODES; do
	say "restarting the service: DB_ADMISSION=$mode"
	"$REPO/scripts/stack.sh" app-stop
	if [ "$mode" = default ]; then
		"$REPO/scripts/stack.sh" app-start
	else
		DB_ADMISSION=$mode "$REPO/scripts/stack.sh" app-start
	fi
	warm_hot
	# The pool opens its connections before the cap (a backend's fork and
	# authentication at a tenth of a CPU take long): the rows measure a
	# saturated database, not a slow start.
	BENCH_COOKIE=$LOAD_COOKIE BENCH_THREADS=2 BENCH_MIN_ID=$((HOT + 1)) BENCH_MAX_ID=$SEED wrk -t2 -c32 -d3s \
		-s "$REPO/bench/wrk/uncached.lua" "$BASE" >/dev/null
	row "$mode" "quiet"
	cap
	for c in $CONNS; do
		row "$mode" "db $c" "db:$c:BENCH_MIN_ID=$((HOT + 1)):BENCH_MAX_ID=$SEED"
	done
	row "$mode" "db $top, waiting out Retry-After" \
		"db:$top:BENCH_MIN_ID=$((HOT + 1)):BENCH_MAX_ID=$SEED:BENCH_BACKOFF=1"
	polls="background:$((top - person)):BENCH_MIN_ID=$((SEED / 2 + 1)):BENCH_MAX_ID=$SEED:BENCH_PURPOSE=background:BENCH_BACKOFF=1:BENCH_COOKIE=$POLL_COOKIE"
	row "$mode" "mix 1:4 at $top, people thinking ${THINK_MS} ms" \
		"person:$person:BENCH_MIN_ID=$((HOT + 1)):BENCH_MAX_ID=$((SEED / 2)):BENCH_THINK_MS=$THINK_MS" "$polls"
	row "$mode" "mix 1:4 at $top, people not thinking" \
		"person:$person:BENCH_MIN_ID=$((HOT + 1)):BENCH_MAX_ID=$((SEED / 2))" "$polls"
	uncap
done
python3 "$REPO/bench/badday_report.py" report "$OUT/badday.jsonl" "$OUT/badday.md"
