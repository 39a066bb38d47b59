#!/usr/bin/env bash
# Installs the Debian packages that the build, the local stack and the tests
# need, and only those that are missing. Idempotent: a second run installs
# nothing and prints one line. Works as root (CI, containers) or as a normal
# user with sudo.
#
#   scripts/deps.sh            build + stack + tests
#   scripts/deps.sh build      only what compiling needs (Dockerfile build stage)
set -euo pipefail

build_pkgs=(make gcc pkg-config libc6-dev
	libfcgi-dev libpq-dev libjson-c-dev libhiredis-dev libsodium-dev
	libpng-dev libturbojpeg0-dev libwebp-dev)
# postgresql-15-auto-failover (pg_autoctl) and redis-sentinel: the HA=1
# stack (scripts/ha.sh).
stack_pkgs=(postgresql-15 redis-server redis-tools
	postgresql-15-auto-failover redis-sentinel
	nginx openssl ca-certificates curl procps python3)
# prometheus: for promtool (the rules' unit tests, the /metrics lint).
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev chromium nodejs npm wrk valgrind prometheus)
# make test-compose: an engine of its own, the client, base images made here.
compose_pkgs=(docker.io docker-compose mmdebstrap)

case "${1:-all}" in
build) want=("${build_pkgs[@]}") ;;
all) want=("${build_pkgs[@]}" "${stack_pkgs[@]}" "${test_pkgs[@]}" "${compose_pkgs[@]}") ;;
*) echo "usage: $0 [build|all]" >&2; exit 2 ;;
esac

# Node.js and npm may come from elsewhere than Debian (a newer release):
# any working node and npm will do; likewise any promtool.
have_cmd() { command -v "$1" >/dev/null 2>&1; }

missing=()
for p in "${want[@]}"; do
	case "$p" in
	nodejs) have_cmd node && continue ;;
	npm) have_cmd npm && continue ;;
	chromium) have_cmd chromium && continue ;;
	prometheus) have_cmd promtool && continue ;;
	esac
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#want[@]} packages present"
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	sudo=()
elif command -v sudo >/dev/null; then
	sudo=(sudo)
else
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: not root and no sudo; install them and run again" >&2
	exit 1
fi

# Installing Debian's prometheus starts its daemon where an init system lets
# it (its node exporter is only recommended, so not installed). We want only
# promtool: stop a daemon this install started, leave alone one that was
# running before.
# Debian's redis-sentinel likewise starts a sentinel on port 26379 where it
# can; the HA=1 stack runs sentinels of its own.
daemons=(prometheus redis-sentinel)
running_before=()
for d in "${daemons[@]}"; do
	pgrep -x "$d" >/dev/null 2>&1 && running_before+=("$d")
done

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

for d in "${daemons[@]}"; do
	case " ${running_before[*]} " in *" $d "*) continue ;; esac
	pgrep -x "$d" >/dev/null 2>&1 || continue
	echo "deps: stopping the $d daemon the install started"
	if have_cmd systemctl && [ -d /run/systemd/system ]; then
		"${sudo[@]}" systemctl disable --now "$d" >/dev/null 2>&1 || true
	elif [ -x "/etc/init.d/$d" ]; then
		"${sudo[@]}" "/etc/init.d/$d" stop >/dev/null 2>&1 || true
	fi
	# An init script that lost track of its pid: end the daemon itself.
	pids=$(pgrep -x "$d" || true)
	[ -z "$pids" ] || "${sudo[@]}" kill $pids 2>/dev/null || true
done
echo "deps: done"
