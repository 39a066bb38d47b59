#!/bin/sh
# One Railway container: nginx on $PORT in front of `paintstudio serve` on a
# unix socket. SIGTERM is forwarded (the service drains its in-flight
# requests, then nginx stops); if either process dies, the container exits
# so Railway restarts it.
#
# Outside Docker (CI) the paths can be moved: APP_DIR (/app), RUN_DIR
# (/tmp/paintstudio), WEB_ROOT ($APP_DIR/web), PAINTSTUDIO (paintstudio).
set -eu
: "${PORT:?PORT must be set (Railway sets it)}"
APP_DIR=${APP_DIR:-/app}
RUN_DIR=${RUN_DIR:-/tmp/paintstudio}
WEB_ROOT=${WEB_ROOT:-$APP_DIR/web}
PAINTSTUDIO=${PAINTSTUDIO:-paintstudio}
mkdir -p "$RUN_DIR/tmp"
# The service's socket (mode 0660) is for nginx alone: in the container
# both run as one user, and the folder is that user's only. Run as root
# (outside Docker) nginx's workers would be another user: they get the
# folder's group (setgid, so the socket inherits it) and nobody else does.
if [ "$(id -u)" = 0 ]; then
	user_line="user nobody nogroup;"
	chgrp nogroup "$RUN_DIR"
	chmod 2750 "$RUN_DIR"
else
	user_line=""
	chmod 700 "$RUN_DIR"
fi

"$APP_DIR/nginx/render.sh" "$APP_DIR/nginx/railway.conf.in" "$RUN_DIR/nginx" \
	"RUN_DIR=$RUN_DIR" "PORT=$PORT" "WEB_ROOT=$WEB_ROOT" "USER_LINE=$user_line"
nginx -t -q -c "$RUN_DIR/nginx/nginx.conf" -e stderr

FCGI_LISTEN="unix:$RUN_DIR/app.sock" "$PAINTSTUDIO" serve &
app=$!
i=0
while [ ! -S "$RUN_DIR/app.sock" ]; do
	if ! kill -0 "$app" 2>/dev/null; then
		echo "entrypoint: paintstudio exited during start" >&2
		exit 1
	fi
	i=$((i + 1))
	[ "$i" -lt 300 ] || { echo "entrypoint: paintstudio did not open its socket" >&2; exit 1; }
	sleep 0.1
done
nginx -c "$RUN_DIR/nginx/nginx.conf" -e stderr -g "daemon off;" &
web=$!

stopping=0
stop() {
	stopping=1
	# The service first: it stops accepting and finishes what it has; then
	# nginx closes gracefully (QUIT) once its clients have their answers.
	kill -TERM "$app" 2>/dev/null || true
	wait "$app" 2>/dev/null || true
	kill -QUIT "$web" 2>/dev/null || true
	wait "$web" 2>/dev/null || true
	exit 0
}
trap stop TERM INT

# Whichever ends first ends the container.
while kill -0 "$app" 2>/dev/null && kill -0 "$web" 2>/dev/null; do
	sleep 1 &
	wait $! 2>/dev/null || true
done
[ "$stopping" = 1 ] && exit 0
if kill -0 "$app" 2>/dev/null; then
	echo "entrypoint: nginx exited; stopping" >&2
	kill -TERM "$app" 2>/dev/null || true
	wait "$app" 2>/dev/null || true
else
	echo "entrypoint: paintstudio exited; stopping" >&2
	kill -QUIT "$web" 2>/dev/null || true
	wait "$web" 2>/dev/null || true
fi
exit 1
