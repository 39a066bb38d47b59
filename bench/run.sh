#!/usr/bin/env bash
# make bench: the service under wrk (loopback only), next to the machine's
# ceilings measured in the same run, with a report and a chart.
#
#   bench/run.sh                    all scenarios, 8 s each (about 4 minutes)
#   BENCH_SECONDS=15 bench/run.sh   longer runs
#   BENCH_CONNECTIONS=64 BENCH_ONLY='hot|mix' bench/run.sh
#                                   fewer rows (ceilings always run)
#   BENCH_BASELINE=<git revision> bench/run.sh
#                                   also the hot rows against that revision's
#                                   build, alternating with this one's on the
#                                   same stack (refactors must not cost speed)
#
# Starts its own stack (plain optimised build, one service process, pool
# 5+10) in a temporary folder on free ports and stops it at the end.
# Results: bench/results/report.md, bench/results/chart.svg, results.jsonl.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/bench/results
SECONDS_EACH=${BENCH_SECONDS:-8}
WARM_SECONDS=${BENCH_WARM_SECONDS:-2}
CONNS=${BENCH_CONNECTIONS:-64 512}
mkdir -p "$OUT"
: >"$OUT/results.jsonl"

say() { printf '==> %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export STACK_DIR=$(mktemp -d /tmp/paintstudio-bench-XXXXXX)
chmod 755 "$STACK_DIR"
export HTTPS_PORT=$(free_port) PG_PORT=$(free_port) REDIS_PORT=$(free_port) REPLICA_PORTS=$(free_port)
# The defaults a user gets (no WORKERS or pool override); only the request
# log is quietened, and the logging rows at the end show what it costs.
export APP_PROCESSES=1 SEED_COUNT=10000 LOG_LEVEL=warn
unset WORKERS DB_POOL_SIZE DB_MAX_OVERFLOW DB_POOL_TIMEOUT DB_POOL_IDLE_TIMEOUT
export ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
cleanup() {
	"$REPO/scripts/stack.sh" stop >/dev/null 2>&1 || true
	rm -f "$REPO/build/web/bench-paint.json" "$REPO/build/web/bench-list.json"
	rm -rf "$STACK_DIR"
}
trap cleanup EXIT
# Ctrl-C ends the run: wrk catches SIGINT and exits 0, and without a trap
# a wrk run on its own (the warm-ups) would let the script carry on.
trap 'exit 130' INT TERM

say "starting a stack for the benchmark in $STACK_DIR"
"$REPO/scripts/stack.sh" start | sed 's/^/    /'
. "$STACK_DIR/stack.env"
BASE=$BASE_URL
login=$(curl -ks -i -H "Origin: $BASE" -H 'Content-Type: application/json' \
	-d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" "$BASE/auth/login")
export BENCH_COOKIE=$(grep -i '^set-cookie: __Host-ps_session=' <<<"$login" | sed 's/^[^:]*: //; s/;.*//')
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

# Static files of exactly one paint's and one list page's size: nginx's
# ceilings for those answers.
static_like() { # url file
	local bytes
	bytes=$(curl -ks -H "Cookie: $BENCH_COOKIE" "$BASE$1" | wc -c)
	head -c "$bytes" /dev/zero | tr '\0' 'x' >"$REPO/build/web/$2"
}
static_like /admin/paints/1 bench-paint.json
static_like "/admin/paints?limit=50&brand=Golden" bench-list.json

# The pool's counters so far: connections opened, then checkouts.
pool_counts() {
	curl -ks -H "Cookie: $BENCH_COOKIE" "$BASE/admin/pool" |
		python3 -c 'import json,sys; p = json.load(sys.stdin); print(p["opened"], p["checkouts"])'
}

peak_conns() { # sample the service's connections until the file $1 exists
	local peak=0 n
	while [ ! -e "$1" ]; do
		n=$(psql "$PG_ADMIN_URL" -qAtX -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'paint_studio'" 2>/dev/null || echo 0)
		[ "$n" -gt "$peak" ] && peak=$n
		sleep 0.2
	done
	echo "$peak"
}

# The static file each ceiling row serves.
static_file() {
	case $1 in
	"static paint-sized file") echo bench-paint.json ;;
	"static list-page-sized file") echo bench-list.json ;;
	*) echo "bench: no static file for '$1'" >&2; exit 1 ;;
	esac
}

run() { # name ceiling connections script [env...]
	local name=$1 ceiling=$2 c=$3 script=$4 stop line peak counts0 counts1 adjacent=null
	shift 4
	if [ -n "${BENCH_ONLY:-}" ] && [ -n "$ceiling" ] && ! [[ $name =~ $BENCH_ONLY ]]; then
		return 0
	fi
	# The same load briefly first, so the pool and caches reach steady state.
	env "$@" wrk -t2 -c"$c" -d"${WARM_SECONDS}s" --timeout 30s \
		-s "$REPO/bench/wrk/$script" "$BASE" >/dev/null
	# The ceiling again just before the row: this machine drifts by 20 %
	# over minutes, so a row is compared with nginx at that very moment.
	if [ -n "$ceiling" ]; then
		say "$ceiling again, $c connections, ${SECONDS_EACH}s (the ceiling next to the row below)"
		adjacent=$(BENCH_STATIC=$(static_file "$ceiling") wrk -t2 -c"$c" -d"${SECONDS_EACH}s" \
			--timeout 30s --latency -s "$REPO/bench/wrk/static.lua" "$BASE" | sed -n 's/^BENCH //p')
	fi
	say "$name, $c connections, ${SECONDS_EACH}s (warmed up for ${WARM_SECONDS}s before)"
	counts0=$(pool_counts)
	stop=$(mktemp -u)
	peak_conns "$stop" >"$stop.peak" &
	line=$(env "$@" wrk -t2 -c"$c" -d"${SECONDS_EACH}s" --timeout 30s --latency \
		-s "$REPO/bench/wrk/$script" "$BASE" | sed -n 's/^BENCH //p')
	touch "$stop"
	wait
	counts1=$(pool_counts)
	peak=$(cat "$stop.peak")
	rm -f "$stop" "$stop.peak"
	python3 - "$name" "$ceiling" "$c" "$peak" "$counts0" "$counts1" "$line" "$adjacent" \
		>>"$OUT/results.jsonl" <<-'PY'
		import json, sys
		name, ceiling, conns, peak, counts0, counts1, line, adjacent = sys.argv[1:9]
		(opened0, checkouts0), (opened1, checkouts1) = (map(int, c.split()) for c in (counts0, counts1))
		r = json.loads(line)
		adj = json.loads(adjacent)
		r.update(scenario=name, ceiling=ceiling or None, connections=int(conns),
		         peak_db_connections=int(peak), opened=opened1 - opened0,
		         checkouts=checkouts1 - checkouts0,
		         adjacent_ceiling={"rps": adj["rps"], "p99": adj["p99"]} if adj else None)
		print(json.dumps(r))
	PY
	tail -1 "$OUT/results.jsonl" | python3 -c '
import json, sys
r = json.load(sys.stdin)
a = r.get("adjacent_ceiling")
print("    %.0f req/s, p99 %.1f ms, statuses %s, peak db connections %d, opened %s, checkouts %s%s"
      % (r["rps"], r["p99"], r["statuses"], r["peak_db_connections"], r["opened"], r["checkouts"],
         ", %.2f of the static file just before (%.0f req/s, p99 %.1f ms)" % (r["rps"] / a["rps"], a["rps"], a["p99"]) if a else ""))'
}

warm() { # read every paint once (twice over, to be sure) so the cache is hot
	say "warming the cache (10,000 paints)"
	wrk -t2 -c64 -d15s -s "$REPO/bench/wrk/warm.lua" "$BASE" >/dev/null
}
warm

# Ceiling rows carry an empty ceiling; each service row names its own
# (the static file of the same size, in the same run at the same load).
for c in $CONNS; do
	run "static paint-sized file" "" "$c" static.lua BENCH_STATIC=bench-paint.json
	run "static list-page-sized file" "" "$c" static.lua BENCH_STATIC=bench-list.json
	run "GET /healthz" "static paint-sized file" "$c" healthz.lua
	run "GET paint, cache hot" "static paint-sized file" "$c" get_random.lua
	run "GET list by brand" "static list-page-sized file" "$c" list.lua
	run "GET list, If-None-Match" "static paint-sized file" "$c" list.lua \
		BENCH_INM=1 BENCH_ETAGS="$(current_etags)"
	run "90/10 read/write mix" "static paint-sized file" "$c" mix.lua
done

say "restarting the service with the cache disabled"
"$REPO/scripts/stack.sh" app-stop
REDIS_URL= "$REPO/scripts/stack.sh" app-start
for c in $CONNS; do
	run "GET paint, cache off" "static paint-sized file" "$c" get_random.lua
done

# The same uncached reads with one streaming replica taking them (the
# primary then serves only the session look-ups), in the same run.
if [ -z "${BENCH_ONLY:-}" ] || [[ "GET paint, cache off, 1 replica" =~ $BENCH_ONLY ]]; then
	say "adding a streaming replica; the service reads from it, cache still disabled"
	REPLICAS=1 "$REPO/scripts/stack.sh" replica-start 1 | sed 's/^/    /'
	"$REPO/scripts/stack.sh" app-stop
	REDIS_URL= REPLICAS=1 "$REPO/scripts/stack.sh" app-start
	sleep 3	# the housekeeper's first samples admit the replica
	curl -ks -H "Cookie: $BENCH_COOKIE" "$BASE/admin/pool" |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["replicas"][0]; print("    replica1 usable:", r["usable"], "lag ms:", r["lag_ms"])'
	for c in $CONNS; do
		run "GET paint, cache off, 1 replica" "static paint-sized file" "$c" get_random.lua
	done
	curl -ks -H "Cookie: $BENCH_COOKIE" "$BASE/admin/pool" |
		python3 -c 'import json,sys; o=json.load(sys.stdin); r=o["replicas"][0]; print("    reads by replica1:", r["reads"], "fallbacks:", r["fallbacks"], "primary checkouts:", o["checkouts"])'
	# And without it again (the replica still running, idle): A/B/A, so the
	# machine's drift between rows shows.
	"$REPO/scripts/stack.sh" app-stop
	REDIS_URL= "$REPO/scripts/stack.sh" app-start
	for c in $CONNS; do
		run "GET paint, cache off, no replica again" "static paint-sized file" "$c" get_random.lua
	done
fi

say "restarting the service with LOG_LEVEL=info (one JSON line per request)"
"$REPO/scripts/stack.sh" app-stop
LOG_LEVEL=info "$REPO/scripts/stack.sh" app-start
warm
run "GET paint, cache hot, logging info" "static paint-sized file" 64 get_random.lua
"$REPO/scripts/stack.sh" app-stop
"$REPO/scripts/stack.sh" app-start
warm
run "GET paint, cache hot, logging warn" "static paint-sized file" 64 get_random.lua

if [ -n "${BENCH_BASELINE:-}" ]; then
	base_dir=$(mktemp -d /tmp/paintstudio-baseline-XXXXXX)
	say "building the baseline $BENCH_BASELINE in $base_dir"
	git -C "$REPO" worktree add --detach -q "$base_dir" "$BENCH_BASELINE"
	make -C "$base_dir" --no-print-directory build/paintstudio >/dev/null
	cp "$base_dir/build/paintstudio" "$STACK_DIR/paintstudio-baseline"
	git -C "$REPO" worktree remove --force "$base_dir"
	# Alternate the two builds, twice, so that drift on a shared machine
	# falls on both alike; the report compares their sums.
	for round in 1 2; do
		for which in baseline current; do
			bin=$REPO/build/paintstudio
			[ "$which" = baseline ] && bin=$STACK_DIR/paintstudio-baseline
			say "restarting the service: $which build (round $round)"
			"$REPO/scripts/stack.sh" app-stop
			BIN=$bin "$REPO/scripts/stack.sh" app-start
			warm
			run "GET paint, cache hot [$which]" "static paint-sized file" 64 get_random.lua
			run "GET list by brand [$which]" "static list-page-sized file" 64 list.lua
		done
	done
	"$REPO/scripts/stack.sh" app-stop
	"$REPO/scripts/stack.sh" app-start
fi

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
	                  "statuses": {}, "socket_errors": 0, "peak_db_connections": 15,
	                  "ceiling": None, "opened": None}))
PY
say "report"
python3 "$REPO/bench/report.py" "$OUT"
