#!/bin/sh
# A Redis Sentinel of docker-compose.yml's "ha" profile (sentinel1..3, the
# redis:7 image): on its first start, the configuration of scripts/ha.sh's
# sentinels in its volume (/data/sentinel.conf), watching the master named
# "paintstudio", first the redis service, quorum 2; then redis-server
# --sentinel on it as the redis user. Sentinel rewrites the file with what
# it learns (the current master, the replicas, the other sentinels), so a
# sentinel started again knows where the master went.
#
# Everyone is known by its compose service name (resolve-hostnames,
# announce-hostnames; the nodes announce theirs): a container started
# again may come back with another address.
set -eu
: "${SENTINEL_NAME:?SENTINEL_NAME must name the service of this sentinel}"
: "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env (scripts/compose-env.sh)}"
conf=/data/sentinel.conf
umask 077
if [ ! -s "$conf" ]; then
	cat >"$conf" <<-EOF
		port 26379
		dir /data
		sentinel resolve-hostnames yes
		sentinel announce-hostnames yes
		sentinel announce-ip $SENTINEL_NAME
		# Clients of the sentinels authenticate with the Redis password too
		# (a sentinel can be told to fail over or to watch another master);
		# the sentinels use it between themselves and towards Redis.
		requirepass $REDIS_PASSWORD
		sentinel sentinel-pass $REDIS_PASSWORD
		sentinel monitor paintstudio redis 6379 2
		sentinel auth-pass paintstudio $REDIS_PASSWORD
		sentinel down-after-milliseconds paintstudio 1500
		sentinel failover-timeout paintstudio 10000
		sentinel parallel-syncs paintstudio 1
	EOF
	echo "compose-sentinel: $SENTINEL_NAME watches redis:6379 as master paintstudio"
fi
if [ "$(id -u)" = 0 ]; then
	chown -R redis:redis /data
	exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$conf" --sentinel
fi
exec redis-server "$conf" --sentinel
