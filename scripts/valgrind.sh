#!/usr/bin/env bash
# make valgrind: a short load (reads, cached and not, and writes) against a
# service process running under valgrind's memcheck; fails on any memory
# error or leak valgrind reports when the process exits.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export STACK_DIR=$(mktemp -d /tmp/paintstudio-valgrind-XXXXXX)
chmod 755 "$STACK_DIR"
export HTTPS_PORT=$(free_port) PG_PORT=$(free_port) REDIS_PORT=$(free_port)
export APP_PROCESSES=1 SEED_COUNT=2000 LOG_LEVEL=warn WORKERS=8 SHUTDOWN_TIMEOUT=20
export ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
# libjpeg-turbo's SIMD code makes memcheck report uninitialised values in
# the pixels of any JPEG decoded (false positives: without SIMD the same
# decode is clean); its plain C paths under valgrind.
export JSIMD_FORCENONE=1
wrapper=$STACK_DIR/paintstudio-under-valgrind
cat >"$wrapper" <<WRAP
#!/bin/sh
exec valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \\
	--errors-for-leak-kinds=definite,indirect --track-origins=yes --num-callers=30 \\
	--log-file=$STACK_DIR/log/valgrind-%p.log "$REPO/build/paintstudio" "\$@"
WRAP
chmod +x "$wrapper"
cleanup() { "$REPO/scripts/stack.sh" stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
mkdir -p "$STACK_DIR/log"
echo "==> starting a stack with the service under valgrind (slow to start)"
BIN=$wrapper "$REPO/scripts/stack.sh" start | sed 's/^/    /'
. "$STACK_DIR/stack.env"
login=$(curl -ks -i -H "Origin: $BASE_URL" -H 'Content-Type: application/json' \
	-d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" "$BASE_URL/auth/login")
export BENCH_COOKIE=$(grep -i '^set-cookie: __Host-ps_session=' <<<"$login" | sed 's/^[^:]*: //; s/;.*//')
export BENCH_CSRF=$(tail -1 <<<"$login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["csrf_token"])')
export BENCH_ORIGIN=$BASE_URL BENCH_WRK_DIR=$REPO/bench/wrk BENCH_MAX_ID=2000
echo "==> 20 s of load: reads (cache hits and misses), writes, lists"
wrk -t2 -c4 -d15s --timeout 30s -s "$REPO/bench/wrk/mix.lua" "$BASE_URL" | grep -E "Requests/sec|BENCH"
BENCH_BRANDS="Golden|Liquitex" wrk -t2 -c4 -d5s --timeout 30s -s "$REPO/bench/wrk/list.lua" "$BASE_URL" | grep -E "Requests/sec"
for path in /admin/paints/stats /admin/metrics /metrics /admin/paints/abc /nope; do
	curl -ks -o /dev/null -H "Cookie: $BENCH_COOKIE" "$BASE_URL$path"
done
echo "==> stopping (valgrind reports at exit)"
"$REPO/scripts/stack.sh" app-stop
log=$(ls "$STACK_DIR"/log/valgrind-*.log | head -1)
if [ -s "$log" ]; then
	cat "$log"
	echo "valgrind: errors or leaks reported (above)" >&2
	exit 1
fi
echo "valgrind: no memory errors, no leaks ($log is empty)"
