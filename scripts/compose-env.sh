#!/bin/sh
# .env for docker-compose.yml: .env.example copied (mode 600) with the
# secrets it leaves empty generated (POSTGRES_PASSWORD, REDIS_PASSWORD and
# METRICS_TOKEN, which the monitoring profile's Prometheus scrapes with:
# 48 hex digits each, safe in a URL). An existing file is kept and only
# its empty or missing passwords are filled in: PostgreSQL takes its
# password once, when its volume is first made.
#
#   scripts/compose-env.sh [path of the .env to write]   (default: ./.env)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
env=${1:-$repo/.env}
if [ ! -e "$env" ]; then
	(umask 077 && cp "$repo/.env.example" "$env")
	echo "compose-env: wrote $env from .env.example"
fi
chmod 600 "$env"
for name in POSTGRES_PASSWORD REDIS_PASSWORD METRICS_TOKEN; do
	pw=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
	if grep -q "^$name=\$" "$env"; then
		sed -i "s/^$name=\$/$name=$pw/" "$env"
		echo "compose-env: generated $name"
	elif ! grep -q "^$name=" "$env"; then
		echo "$name=$pw" >>"$env"
		echo "compose-env: generated $name"
	fi
done
