#!/bin/sh
# nginx in the compose stack: make a self-signed certificate on first start
# (kept in the tls volume), render the shared config, run in the foreground.
# The app replicas are not listed here: nginx asks Docker's DNS for "app"
# while it runs (nginx/compose.conf.in), so scaling needs no restart.
# Runs as the image's unprivileged user: the Dockerfile gives it both
# folders (a tls volume made by an older, root-run nginx is not its own:
# docker compose down -v, or chown it, once).
set -eu
tls=/etc/paintstudio/tls
conf=/etc/paintstudio/nginx
mkdir -p "$tls" "$conf/tmp"
if [ ! -s "$tls/cert.pem" ]; then
	(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$tls/key.pem" -out "$tls/cert.pem" -days 825 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null)
	chmod 644 "$tls/cert.pem"
fi
if [ ! -r "$tls/key.pem" ]; then
	echo "compose-entrypoint: $tls/key.pem is not readable by $(id -un) (a volume from a root-run nginx?)" >&2
	exit 1
fi
/app/nginx/render.sh /app/nginx/compose.conf.in "$conf" \
	"TLS_DIR=$tls" "WEB_ROOT=/app/web" "APP_ADDRESS=${APP_ADDRESS:-app:9000}"
# The shared snippet passes to the "paintstudio" upstream block; here the
# address is a variable, resolved at run time. A replica that has just died
# may still be in the last answer and drop packets: time out fast on
# connecting and try the next address (requests are not retried once sent).
# With no upstream block there is no connection cache: one connection per
# request, closed after it.
sed -i -e 's|^fastcgi_pass paintstudio;$|fastcgi_pass $paintstudio_app;|' \
	-e 's|^fastcgi_keep_conn on;$|fastcgi_keep_conn off;|' \
	-e 's|^fastcgi_next_upstream error;$|fastcgi_next_upstream error timeout;|' \
	-e 's|^fastcgi_connect_timeout .*;$|fastcgi_connect_timeout 1s;|' \
	"$conf/fastcgi.conf"
grep -q '^fastcgi_pass \$paintstudio_app;$' "$conf/fastcgi.conf" || {
	echo "compose-entrypoint: nginx/fastcgi.conf has no 'fastcgi_pass paintstudio;' line" >&2
	exit 1
}
# -e stderr: not the compiled-in /var/log/nginx/error.log (root's)
nginx -t -q -e stderr -c "$conf/nginx.conf"
exec nginx -e stderr -c "$conf/nginx.conf" -g "daemon off;"
