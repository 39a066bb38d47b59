#!/bin/sh
# Prometheus in compose: the service's METRICS_TOKEN goes into a file that
# only this user reads (the scrape's bearer credentials), then Prometheus
# runs in the foreground. Without a token there is nothing it could scrape.
set -eu
: "${METRICS_TOKEN:?set METRICS_TOKEN in .env (scripts/compose-env.sh makes one)}"
umask 077
printf '%s' "$METRICS_TOKEN" >/prometheus/metrics-token
exec prometheus --config.file=/etc/prometheus/prometheus.yml \
	--storage.tsdb.path=/prometheus/data --storage.tsdb.retention.time=7d \
	--web.listen-address=:9090 --web.console.libraries=/usr/share/prometheus/console_libraries \
	--web.console.templates=/usr/share/prometheus/consoles "$@"
