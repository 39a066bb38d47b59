#!/bin/sh
# .env for docker-compose.yml: .env.example copied (mode 600) with the
# secrets it leaves empty generated (POSTGRES_PASSWORD, REDIS_PASSWORD and
# METRICS_TOKEN, which the monitoring profile's Prometheus scrapes with:
# 48 hex digits each, safe in a URL). An existing file is kept and only
# its empty or missing passwords are filled in: PostgreSQL takes its
# password once, when its volume is first made.
#
#   scripts/compose-env.sh [--ha|--single] [path of the .env to write]   (default: ./.env)
#
# --ha switches the file to the ha profile (docker-compose.yml): the
# profile chosen by .env itself (COMPOSE_PROFILES=ha, so a plain
# `docker compose up` starts it), the service pointed at both PostgreSQL
# nodes (POSTGRES_HOSTS) and at the three sentinels (REDIS_SENTINELS),
# each node a read replica while it is the standby (DATABASE_REPLICA_URLS,
# DB_REPLICAS_SYNCHRONOUS=1), and PG_HA_PASSWORD generated
# (pg_auto_failover's roles). --single
# switches back to db and redis alone (PG_HA_PASSWORD is kept).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
mode=
case "${1:-}" in
--ha | --single) mode=${1#--}; shift ;;
-*) echo "usage: $0 [--ha|--single] [path of the .env]" >&2; exit 2 ;;
esac
env=${1:-$repo/.env}
if [ ! -e "$env" ]; then
	(umask 077 && cp "$repo/.env.example" "$env")
	echo "compose-env: wrote $env from .env.example"
fi
chmod 600 "$env"

# set NAME VALUE: the line NAME=... replaced, or added (VALUE has no '|')
set_var() {
	if grep -q "^$1=" "$env"; then
		sed -i "s|^$1=.*\$|$1=$(printf '%s' "$2" | sed 's/[&\\]/\\&/g')|" "$env"
	else
		echo "$1=$2" >>"$env"
	fi
}

secrets="POSTGRES_PASSWORD REDIS_PASSWORD METRICS_TOKEN"
[ "$mode" != ha ] || secrets="$secrets PG_HA_PASSWORD"
for name in $secrets; do
	pw=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
	if grep -q "^$name=\$" "$env"; then
		sed -i "s/^$name=\$/$name=$pw/" "$env"
		echo "compose-env: generated $name"
	elif ! grep -q "^$name=" "$env"; then
		echo "$name=$pw" >>"$env"
		echo "compose-env: generated $name"
	fi
done

case "$mode" in
ha)
	set_var COMPOSE_PROFILES ha
	set_var POSTGRES_HOSTS pg1:5432,pg2:5432
	set_var REDIS_SENTINELS sentinel1:26379,sentinel2:26379,sentinel3:26379
	# each node a read replica while it is the standby; it is synchronous,
	# so sessions are checked there while the primary is lost
	pw=$(sed -n 's/^POSTGRES_PASSWORD=//p' "$env")
	set_var DATABASE_REPLICA_URLS "postgresql://paintstudio:$pw@pg1:5432/paintstudio?sslmode=disable&target_session_attrs=standby,postgresql://paintstudio:$pw@pg2:5432/paintstudio?sslmode=disable&target_session_attrs=standby"
	set_var DB_REPLICAS_SYNCHRONOUS 1
	echo "compose-env: the ha profile (pg_auto_failover, Redis Sentinel): docker compose up --build"
	;;
single)
	set_var COMPOSE_PROFILES ""
	set_var POSTGRES_HOSTS ""
	set_var REDIS_SENTINELS ""
	set_var DATABASE_REPLICA_URLS ""
	set_var DB_REPLICAS_SYNCHRONOUS 0
	echo "compose-env: db and redis alone (the ha profile's containers and volumes stay until removed)"
	;;
esac
