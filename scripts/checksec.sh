#!/bin/sh
# scripts/checksec.sh [BINARY]: fail unless BINARY (build/paintstudio) is
# hardened as the Makefile builds it, read from its ELF headers alone
# (readelf): a position-independent executable (type DYN, flagged PIE),
# full RELRO (a GNU_RELRO segment and BIND_NOW), the stack protector
# (__stack_chk_fail imported) and fortified calls (glibc's *_chk).
# One line per property; run by tests/run.py and the image's build.
set -u
bin=${1:-build/paintstudio}
[ -f "$bin" ] || { echo "checksec: $bin is missing (make all)" >&2; exit 2; }
LC_ALL=C
export LC_ALL
header=$(readelf -hW "$bin") || exit 2
segments=$(readelf -lW "$bin")
dynamic=$(readelf -dW "$bin")
symbols=$(readelf -sW --dyn-syms "$bin")
failed=0

check() { # name, then a command that succeeds when the property holds
	name=$1
	shift
	if "$@" >/dev/null 2>&1; then
		echo "checksec: ok      $name"
	else
		echo "checksec: MISSING $name"
		failed=1
	fi
}

check "PIE (type DYN)" sh -c 'printf "%s\n" "$1" | grep -Eq "^ *Type: +DYN"' - "$header"
check "PIE (FLAGS_1 PIE)" sh -c 'printf "%s\n" "$1" | grep -Eq "\(FLAGS_1\).* PIE"' - "$dynamic"
check "RELRO (GNU_RELRO segment)" sh -c 'printf "%s\n" "$1" | grep -Eq "^ *GNU_RELRO "' - "$segments"
check "BIND_NOW (full RELRO)" sh -c 'printf "%s\n" "$1" | grep -Eq "\(BIND_NOW\)|\(FLAGS\).*BIND_NOW|\(FLAGS_1\).* NOW"' - "$dynamic"
check "stack protector (__stack_chk_fail)" sh -c 'printf "%s\n" "$1" | grep -Eq " __stack_chk_fail(@|$)"' - "$symbols"
check "FORTIFY_SOURCE (*_chk calls)" sh -c 'printf "%s\n" "$1" | grep -Eq " __[a-z0-9_]+_chk(@|$)"' - "$symbols"
if [ "$failed" = 0 ]; then
	echo "checksec: $bin is hardened"
else
	echo "checksec: $bin lacks hardening (see the Makefile's CFLAGS and LDFLAGS)" >&2
fi
exit "$failed"
