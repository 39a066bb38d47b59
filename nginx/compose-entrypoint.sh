#!/bin/sh
# nginx in the compose stack: make a self-signed certificate on first start
# (kept in the tls volume), render the shared config, run in the foreground.
set -eu
tls=/etc/paintstudio/tls
conf=/etc/paintstudio/nginx
mkdir -p "$tls" "$conf/tmp" /var/log/paintstudio
if [ ! -s "$tls/cert.pem" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$tls/key.pem" -out "$tls/cert.pem" -days 825 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
fi
for f in security-headers.conf fastcgi.conf errors.conf; do
	sed "s|@CONF_DIR@|$conf|g" "/app/nginx/$f" >"$conf/$f"
done
# Every app replica behind the "app" name: nginx resolves it at start.
sed -e "s|@STACK_DIR@/run/nginx.pid|/run/nginx.pid|" \
	-e "s|@STACK_DIR@/log/|/var/log/paintstudio/|g" \
	-e "s|@STACK_DIR@/nginx/tmp|$conf/tmp|g" \
	-e "s|@STACK_DIR@/tls|$tls|g" \
	-e "s|@CONF_DIR@|$conf|g" -e "s|@HTTPS_PORT@|8443|" \
	-e "s|listen 127.0.0.1:8443|listen 8443|" \
	-e "s|@WEB_ROOT@|/app/web|" -e "s|@USER_LINE@|user www-data;|" \
	-e "s|@UPSTREAMS@|        server app:9000 max_fails=0;|" \
	/app/nginx/local.conf.in >"$conf/nginx.conf"
chown -R www-data "$conf/tmp"
exec nginx -e /dev/stderr -c "$conf/nginx.conf" -g "daemon off;"
