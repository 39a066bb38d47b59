#!/usr/bin/env bash
# make fuzz: each libFuzzer harness of tests/fuzz/ for FUZZ_SECONDS (60),
# built with clang and ASan+UBSan, starting from the committed corpus.
# New interesting inputs go to build/fuzz/corpus-<target>/ (copy the ones
# worth keeping into tests/fuzz/corpus/<target>/); crashes to build/fuzz/crashes/.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/build/fuzz
SECS=${FUZZ_SECONDS:-60}
mkdir -p "$OUT/crashes"
cflags="-std=c11 -D_DEFAULT_SOURCE -pthread -g -O1 -Iapp -Itests/fuzz $(pkg-config --cflags libpq json-c hiredis libsodium libpng libturbojpeg libwebp)"
libs="-lfcgi $(pkg-config --libs libpq json-c hiredis libsodium libpng libturbojpeg libwebp) -pthread"
srcs=$(ls "$REPO"/app/*/*.c)
cd "$REPO"
total=0
for harness in tests/fuzz/fuzz_*.c; do
	name=$(basename "$harness" .c)
	target=${name#fuzz_}
	echo "==> building $name"
	# shellcheck disable=SC2086
	clang $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-o "$OUT/$name" "$harness" $srcs $libs
	mkdir -p "$OUT/corpus-$target"
	echo "==> fuzzing $target for ${SECS}s"
	log=$OUT/$name.log
	"$OUT/$name" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$OUT/crashes/$target-" \
		"$OUT/corpus-$target" "tests/fuzz/corpus/$target" >"$log" 2>&1 || {
		tail -40 "$log"
		echo "fuzz: $target found a failure: see $OUT/crashes/" >&2
		exit 1
	}
	runs=$(grep -o 'Done [0-9]* runs' "$log" | awk '{print $2}')
	echo "    $target: ${runs:-?} executions, corpus $(ls "$OUT/corpus-$target" | wc -l) new inputs"
	total=$((total + ${runs:-0}))
done
echo "fuzz: $total executions in all, no failure"
