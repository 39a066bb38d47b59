#!/usr/bin/env bash
# A private Docker engine for the compose tests: Debian's dockerd started by
# hand (no systemd), with its own socket, data, state and pidfile, so it
# neither needs nor disturbs a Docker the machine may already run. Images
# stay in its data root between runs (built once, reused).
#
#   scripts/docker-engine.sh start   start it (if not running); wait for it
#   scripts/docker-engine.sh stop    stop it by its PID; wait for it to exit
#   scripts/docker-engine.sh env     print DOCKER_HOST=... for the client
#
# DOCKER_ROOT (/var/lib/paintstudio-docker) holds the images; DOCKER_RUN
# (/run/paintstudio-docker) the socket, pidfile and engine state. Needs root.
#
# Its default bridge is off (--bridge=none): a Docker already on the machine
# owns docker0. Builds use the host's network (--network host); compose
# makes its own bridge networks.
set -euo pipefail
DOCKER_ROOT=${DOCKER_ROOT:-/var/lib/paintstudio-docker}
DOCKER_RUN=${DOCKER_RUN:-/run/paintstudio-docker}
sock=$DOCKER_RUN/docker.sock
pidfile=$DOCKER_RUN/dockerd.pid
log=$DOCKER_RUN/dockerd.log
export DOCKER_HOST=unix://$sock
# Debian's client (docker.io), the one that matches its dockerd.
docker=/usr/bin/docker
[ -x "$docker" ] || docker=docker

running() {
	[ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
	if running && "$docker" info >/dev/null 2>&1; then
		echo "docker-engine: already running (pid $(cat "$pidfile"))"
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "docker-engine: dockerd needs root" >&2
		exit 1
	fi
	mkdir -p "$DOCKER_ROOT" "$DOCKER_RUN"
	rm -f "$pidfile" "$sock"
	# setsid: the engine outlives the shell that started it (stop ends it).
	# It gets no descriptor beyond 0-2: one inherited from the caller (a
	# lock held by flock(1), a pipe someone waits on) would live as long.
	(
		for fd in /proc/self/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		exec setsid dockerd --host "$DOCKER_HOST" --data-root "$DOCKER_ROOT" \
			--exec-root "$DOCKER_RUN/exec" --pidfile "$pidfile" \
			--containerd-namespace paintstudio-test \
			--containerd-plugins-namespace paintstudio-test-plugins \
			--bridge=none --log-level=warn
	) </dev/null >"$log" 2>&1 &
	local pid=$! i=0
	until "$docker" info >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null && ! running; then
			echo "docker-engine: dockerd exited during start:" >&2
			tail -20 "$log" >&2
			exit 1
		fi
		i=$((i + 1))
		if [ "$i" -ge 600 ]; then
			echo "docker-engine: dockerd did not answer within 60 s:" >&2
			tail -20 "$log" >&2
			kill "$pid" 2>/dev/null || true
			exit 1
		fi
		sleep 0.1
	done
	echo "docker-engine: started (pid $pid, $DOCKER_HOST, data in $DOCKER_ROOT)"
}

stop() {
	if ! running; then
		echo "docker-engine: not running"
		return 0
	fi
	local pid i=0
	pid=$(cat "$pidfile")
	kill -TERM "$pid"
	# dockerd stops its containers (10 s each at most) and its containerd.
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -ge 600 ]; then
			echo "docker-engine: dockerd still running after 60 s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	echo "docker-engine: stopped (pid $pid)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env) echo "DOCKER_HOST=$DOCKER_HOST" ;;
*) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
