#!/usr/bin/env bash
# make bench: the service under wrk (loopback only), next to the machine's
# ceilings measured in the same run, with a report and a chart.
#
#   bench/run.sh                    all scenarios, 8 s each (about 4 minutes)
#   BENCH_SECONDS=15 bench/run.sh   longer runs
#
# Starts its own stack (plain optimised build, one service process, pool
# 5+10) in a temporary folder on free ports and stops it at the end.
# Results: bench/results/report.md, bench/results/chart.svg, results.jsonl.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/bench/results
SECONDS_EACH=${BENCH_SECONDS:-8}
CONNS=${BENCH_CONNECTIONS:-64 512}
mkdir -p "$OUT"
: >"$OUT/results.jsonl"

say() { printf '==> %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export STACK_DIR=$(mktemp -d /tmp/paintstudio-bench-XXXXXX)
chmod 755 "$STACK_DIR"
export HTTPS_PORT=$(free_port) PG_PORT=$(free_port) REDIS_PORT=$(free_port)
export APP_PROCESSES=1 SEED_COUNT=10000 LOG_LEVEL=warn WORKERS=32
export DB_POOL_SIZE=5 DB_MAX_OVERFLOW=10 DB_POOL_TIMEOUT=20
export ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
cleanup() {
	"$REPO/scripts/stack.sh" stop >/dev/null 2>&1 || true
	rm -f "$REPO/build/web/bench-static.json"
	rm -rf "$STACK_DIR"
}
trap cleanup EXIT

say "starting a stack for the benchmark in $STACK_DIR"
"$REPO/scripts/stack.sh" start | sed 's/^/    /'
. "$STACK_DIR/stack.env"
BASE=$BASE_URL
login=$(curl -ks -i -H "Origin: $BASE" -H 'Content-Type: application/json' \
	-d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" "$BASE/auth/login")
export BENCH_COOKIE=$(grep -i '^set-cookie:' <<<"$login" | sed 's/^[^:]*: //; s/;.*//')
export BENCH_CSRF=$(tail -1 <<<"$login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["csrf_token"])')
export BENCH_ORIGIN=$BASE BENCH_WRK_DIR=$REPO/bench/wrk BENCH_MAX_ID=10000
[ -n "$BENCH_COOKIE" ] || { echo "bench: login failed" >&2; exit 1; }

# Five brands' first pages, and (just before each polling run, as writes
# in between change them) their current ETags.
brands=(Golden Liquitex Schmincke Holbein Gamblin)
export BENCH_BRANDS=$(IFS='|'; echo "${brands[*]}")
current_etags() {
	local etags=() b
	for b in "${brands[@]}"; do
		etags+=("$(curl -ks -D - -o /dev/null -H "Cookie: $BENCH_COOKIE" "$BASE/admin/paints?limit=50&brand=$b" |
			sed -n 's/^[Ee][Tt]ag: //p' | tr -d '\r')")
	done
	(IFS='|'; echo "${etags[*]}")
}

# A static file of exactly one paint's size: nginx's ceiling for that answer.
paint_bytes=$(curl -ks -H "Cookie: $BENCH_COOKIE" "$BASE/admin/paints/1" | wc -c)
head -c "$paint_bytes" /dev/zero | tr '\0' 'x' >"$REPO/build/web/bench-static.json"

peak_conns() { # sample the service's connections until the file $1 exists
	local peak=0 n
	while [ ! -e "$1" ]; do
		n=$(psql "$PG_ADMIN_URL" -qAtX -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'paint_studio'" 2>/dev/null || echo 0)
		[ "$n" -gt "$peak" ] && peak=$n
		sleep 0.2
	done
	echo "$peak"
}

run() { # name connections script [env...]
	local name=$1 c=$2 script=$3 stop line peak
	shift 3
	say "$name, $c connections, ${SECONDS_EACH}s"
	stop=$(mktemp -u)
	peak_conns "$stop" >"$stop.peak" &
	line=$(env "$@" wrk -t2 -c"$c" -d"${SECONDS_EACH}s" --timeout 30s --latency \
		-s "$REPO/bench/wrk/$script" "$BASE" | sed -n 's/^BENCH //p')
	touch "$stop"
	wait
	peak=$(cat "$stop.peak")
	rm -f "$stop" "$stop.peak"
	python3 - "$name" "$c" "$peak" "$line" >>"$OUT/results.jsonl" <<-'PY'
		import json, sys
		name, conns, peak, line = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
		r = json.loads(line)
		r.update(scenario=name, connections=conns, peak_db_connections=peak)
		print(json.dumps(r))
	PY
	tail -1 "$OUT/results.jsonl" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("    %.0f req/s, p99 %.1f ms, statuses %s, peak db connections %d"
      % (r["rps"], r["p99"], r["statuses"], r["peak_db_connections"]))'
}

warm() { # read every paint once (twice over, to be sure) so the cache is hot
	say "warming the cache (10,000 paints)"
	wrk -t2 -c64 -d15s -s "$REPO/bench/wrk/warm.lua" "$BASE" >/dev/null
}
warm

for c in $CONNS; do
	run "static file (ceiling)" "$c" static.lua
	run "GET paint, cache hot" "$c" get_random.lua
	run "GET list by brand" "$c" list.lua
	run "GET list, If-None-Match" "$c" list.lua BENCH_INM=1 BENCH_ETAGS="$(current_etags)"
	run "90/10 read/write mix" "$c" mix.lua
done

say "restarting the service with the cache disabled"
"$REPO/scripts/stack.sh" app-stop
REDIS_URL= "$REPO/scripts/stack.sh" app-start
for c in $CONNS; do
	run "GET paint, cache off" "$c" get_random.lua
done

say "restarting the service with LOG_LEVEL=info (one JSON line per request)"
"$REPO/scripts/stack.sh" app-stop
LOG_LEVEL=info "$REPO/scripts/stack.sh" app-start
warm
run "GET paint, cache hot, logging info" 64 get_random.lua
"$REPO/scripts/stack.sh" app-stop
"$REPO/scripts/stack.sh" app-start
run "GET paint, cache hot, logging warn" 64 get_random.lua

say "PostgreSQL's own ceiling: pgbench -S -M prepared at the pool's 15 connections"
PGBENCH=/usr/lib/postgresql/15/bin/pgbench
psql "$PG_ADMIN_URL" -qAtX -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench" >/dev/null
bench_url=${PG_ADMIN_URL%/*}/bench
"$PGBENCH" -i -s 10 -q "$bench_url" >/dev/null 2>&1
pg=$("$PGBENCH" -S -M prepared -c 15 -j 2 -T "$SECONDS_EACH" "$bench_url" 2>/dev/null)
python3 - "$pg" >>"$OUT/results.jsonl" <<-'PY'
	import json, re, sys
	out = sys.argv[1]
	tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
	lat = float(re.search(r"latency average = ([0-9.]+) ms", out).group(1))
	print(json.dumps({"scenario": "pgbench -S -M prepared (ceiling)", "connections": 15,
	                  "rps": tps, "p50": lat, "p90": None, "p99": None, "max": None,
	                  "statuses": {}, "socket_errors": 0, "peak_db_connections": 15}))
PY
say "report"
python3 "$REPO/bench/report.py" "$OUT"
