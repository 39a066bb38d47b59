#!/usr/bin/env bash
# The images the compose stack needs, made on this machine (nothing is
# pulled: Docker Hub may be out of reach). Talks to the engine in
# DOCKER_HOST (scripts/docker-engine.sh).
#
#   scripts/docker-images.sh base      debian:bookworm-slim, postgres:15 and
#                                      redis:7 stand-ins, each only if missing
#   scripts/docker-images.sh project   paintstudio:local from the Dockerfile, and
#                                      when they changed, the monitoring
#                                      profile's Prometheus (monitoring/Dockerfile)
#                                      and the ha profile's pg_auto_failover
#                                      (pg-auto-failover/Dockerfile)
#
# debian:bookworm-slim is Debian's minbase made by mmdebstrap, set up as the
# official slim image is: no manuals, docs or translations (dpkg filters),
# apt keeping no downloaded packages (tests/compose/debian/docker-clean).
# postgres:15 and redis:7 are built from Debian's packages by
# tests/compose/postgres and tests/compose/redis, with entrypoints that
# behave like the official images' for what the compose file uses.
# DEBIAN_MIRROR (http://deb.debian.org) is where the base image's apt goes.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
docker=/usr/bin/docker
[ -x "$docker" ] || docker=docker
mirror=${DEBIAN_MIRROR:-http://deb.debian.org}

# An image is reused when its recipe has not changed: each carries the hash
# of what made it (make_base, the mirror and tests/compose/debian/ for the
# base; its folder and the base image for a stand-in) in the label paintstudio.recipe.
recipe_label() {
	"$docker" image inspect -f '{{index .Config.Labels "paintstudio.recipe"}}' "$1" 2>/dev/null || true
}
have() { [ -n "$2" ] && [ "$(recipe_label "$1")" = "$2" ]; }
standin_recipe() {
	{ cat "$1"/*; "$docker" image inspect -f '{{.Id}}' debian:bookworm-slim; } | sha256sum | cut -c1-16
}

# Timed step: "images: <what> in N s".
step() {
	local what=$1 t0=$SECONDS
	shift
	"$@"
	echo "images: $what in $((SECONDS - t0)) s"
}

# make_base RECIPE
make_base() {
	local log
	log=$(mktemp)
	# A tarball on stdout (root mode: this runs as root), imported as is;
	# what mmdebstrap and its hooks say is shown only if it fails.
	# The merged-usr hook: /usr merged without the usrmerge package (and
	# the perl it would bring, 50 MB).
	mmdebstrap --quiet --mode=root --variant=minbase \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--aptopt='APT::Install-Recommends "false"' \
		--customize-hook="copy-in $REPO/tests/compose/debian/docker-clean /etc/apt/apt.conf.d" \
		--customize-hook='rm -f "$1"/var/cache/apt/*.bin' \
		bookworm - \
		"deb $mirror/debian bookworm main" \
		"deb $mirror/debian bookworm-updates main" \
		"deb $mirror/debian-security bookworm-security main" </dev/null 2>"$log" |
		"$docker" import --change 'CMD ["bash"]' \
			--change "LABEL paintstudio.recipe=$1" - debian:bookworm-slim >/dev/null ||
		{ cat "$log" >&2; rm -f "$log"; return 1; }
	rm -f "$log"
}

# Images built here use the host's network (the engine has no default
# bridge). The stand-ins with the legacy builder; the project's image with
# BuildKit (what `docker compose build` uses), which must fetch nothing
# but Debian packages.
build() {
	DOCKER_BUILDKIT=0 "$docker" build --network host -q "$@" >/dev/null
}

standin() {
	local tag=$1 dir=$2 what=$3 r
	r=$(standin_recipe "$dir")
	have "$tag" "$r" || step "$tag ($what)" build --label "paintstudio.recipe=$r" -t "$tag" "$dir"
}

base() {
	local base_recipe
	base_recipe=$({ declare -f make_base; echo "$mirror"; cat "$REPO/tests/compose/debian/"*; } |
		sha256sum | cut -c1-16)
	have debian:bookworm-slim "$base_recipe" ||
		step "debian:bookworm-slim (mmdebstrap)" make_base "$base_recipe"
	standin postgres:15 "$REPO/tests/compose/postgres" "Debian's postgresql-15"
	standin redis:7 "$REPO/tests/compose/redis" "Debian's redis-server"
	"$docker" image prune -f >/dev/null  # images a changed recipe replaced
	"$docker" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
		grep -E '^(debian:bookworm-slim|postgres:15|redis:7) ' | sed 's/^/images: /'
}

buildkit() {
	local log
	log=$(mktemp)
	DOCKER_BUILDKIT=1 "$docker" build --network host --progress plain "$@" >"$log" 2>&1 ||
		{ tail -40 "$log" >&2; rm -f "$log"; return 1; }
	rm -f "$log"
}

# An image of the project's own recipe (a folder with its Dockerfile),
# rebuilt when anything in the folder or the base image changed.
folder_image() { # tag folder what
	local r
	r=$({ find "$REPO/$2" -type f -print0 | sort -z | xargs -0 cat
		"$docker" image inspect -f '{{.Id}}' debian:bookworm-slim; } | sha256sum | cut -c1-16)
	have "$1" "$r" || step "$1 ($3)" build --label "paintstudio.recipe=$r" -t "$1" "$REPO/$2"
}

project() {
	step "paintstudio:local (Dockerfile, BuildKit)" buildkit -t paintstudio:local "$REPO"
	# the monitoring profile's Prometheus (monitoring/: its rules above all)
	folder_image paintstudio-prometheus:local monitoring "Debian's prometheus"
	# the ha profile's PostgreSQL nodes
	folder_image paintstudio-pg-auto-failover:local pg-auto-failover "Debian's postgresql-15-auto-failover"
	# The previous build's image, now untagged, goes; BuildKit's cache is
	# kept to a bound.
	"$docker" image prune -f >/dev/null
	"$docker" builder prune -f --keep-storage 3000000000 >/dev/null
	echo "images: paintstudio:local is $("$docker" image inspect -f '{{.Size}}' paintstudio:local |
		awk '{printf "%.0f MB", $1 / 1e6}')"
}

case "${1:-}" in
base) base ;;
project) project ;;
*) echo "usage: $0 base|project" >&2; exit 2 ;;
esac
