#!/usr/bin/env bash
# Build the admin UI into OUT (build/web): every asset gets its content
# hash in its name (app.3f9c1a2b7d.js) and index.html points at those names,
# so nginx can let browsers keep assets for a year while the HTML (no-cache)
# always names the current ones.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/build/web}
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
html=$(cat "$REPO/web/index.html")
for f in "$REPO"/web/*; do
	name=$(basename "$f")
	case "$name" in
	index.html) continue ;;
	*.js | *.css)
		hash=$(sha256sum "$f" | cut -c1-10)
		fingerprinted="${name%.*}.$hash.${name##*.}"
		cp "$f" "$OUT.tmp/$fingerprinted"
		html=${html//\"\/$name\"/\"\/$fingerprinted\"}
		;;
	*) cp "$f" "$OUT.tmp/$name" ;;
	esac
done
printf '%s\n' "$html" >"$OUT.tmp/index.html"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
echo "  WEB   $OUT ($(du -sh "$OUT" | cut -f1))"
