#!/bin/sh
# nginx in the compose stack: make a self-signed certificate on first start
# (kept in the tls volume), render the shared config for every app replica,
# run in the foreground.
set -eu
tls=/etc/paintstudio/tls
conf=/etc/paintstudio/nginx
mkdir -p "$tls" "$conf/tmp" /var/log/paintstudio
if [ ! -s "$tls/cert.pem" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$tls/key.pem" -out "$tls/cert.pem" -days 825 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
fi
# "app" resolves to every replica (docker compose up --scale app=3): list
# each address, so nginx balances over all of them.
servers=""
for ip in $(getent ahostsv4 app | awk '{print $1}' | sort -u); do
	servers="$servers        server $ip:9000 max_fails=0;
"
done
[ -n "$servers" ] || { echo "compose-entrypoint: no app replica resolves" >&2; exit 1; }
/app/nginx/render.sh /app/nginx/local.conf.in "$conf" \
	"STACK_DIR=/var/lib/paintstudio" "HTTPS_PORT=8443" "WEB_ROOT=/app/web" \
	"USER_LINE=user www-data;" "UPSTREAMS=$servers"
# The local template's paths, moved to where this container keeps them.
sed -i -e "s|/var/lib/paintstudio/run/nginx.pid|/run/nginx.pid|" \
	-e "s|/var/lib/paintstudio/log/nginx-error.log|stderr|" \
	-e "s|/var/lib/paintstudio/log/nginx-access.log|/dev/stdout|" \
	-e "s|/var/lib/paintstudio/nginx/tmp|$conf/tmp|g" \
	-e "s|/var/lib/paintstudio/tls|$tls|g" \
	-e "s|listen 127.0.0.1:8443 ssl http2;|listen 8443 ssl http2;\n        listen [::]:8443 ssl http2;|" \
	"$conf/nginx.conf"
chown -R www-data "$conf/tmp"
exec nginx -c "$conf/nginx.conf" -g "daemon off;"
