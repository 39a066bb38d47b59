#!/bin/sh
# Render an nginx configuration: nginx/render.sh TEMPLATE OUT_DIR NAME=VALUE...
# Copies the shared snippets into OUT_DIR (with @CONF_DIR@ set to OUT_DIR),
# replaces each @NAME@ of TEMPLATE with VALUE and writes OUT_DIR/nginx.conf.
# @UPSTREAMS@ stands alone on its line and may span several lines.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
template=$1
out=$2
shift 2
mkdir -p "$out"
for f in http.conf locations.conf fastcgi.conf upstream.conf errors.conf security-headers.conf; do
	sed "s|@CONF_DIR@|$out|g" "$here/$f" >"$out/$f"
done
cp "$template" "$out/nginx.conf.tmp"
upstreams=""
for kv in "$@"; do
	name=${kv%%=*}
	value=${kv#*=}
	if [ "$name" = UPSTREAMS ]; then
		upstreams=$value
		continue
	fi
	sed -i "s|@$name@|$value|g" "$out/nginx.conf.tmp"
done
awk -v ups="$upstreams" '{ if ($0 ~ /^[ \t]*@UPSTREAMS@$/) printf "%s", ups; else print }' \
	"$out/nginx.conf.tmp" | sed "s|@CONF_DIR@|$out|g" >"$out/nginx.conf"
rm -f "$out/nginx.conf.tmp"
if grep -q '@[A-Z_]*@' "$out/nginx.conf"; then
	echo "render.sh: unfilled placeholders in $out/nginx.conf:" >&2
	grep -o '@[A-Z_]*@' "$out/nginx.conf" | sort -u >&2
	exit 1
fi
