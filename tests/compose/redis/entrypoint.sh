#!/bin/sh
# redis:7 stand-in: redis-server as the redis user, protected mode off
# (as the official image has it when no configuration file is given).
set -eu
if [ "${1#-}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
	shift
	set -- redis-server "$@" --protected-mode no
	if [ "$(id -u)" = 0 ]; then
		chown -R redis:redis /data
		exec setpriv --reuid=redis --regid=redis --init-groups "$@"
	fi
fi
exec "$@"
