#!/usr/bin/env bash
# Builds the `base` template: a Debian bookworm root filesystem (debootstrap, minbase) with bash,
# coreutils, python3, git, curl, ca-certificates and procps. Idempotent: a template whose recipe
# (this file's package list and suite) is unchanged is kept as it is.
set -euo pipefail
TEMPLATES_DIR=${NULLSPACE_TEMPLATES_DIR:-${NULLSPACE_DATA_DIR:-/var/lib/nullspace}/templates}
SUITE=bookworm
PACKAGES=bash,coreutils,python3,git,curl,ca-certificates,procps,iproute2,less
here=$(cd "$(dirname "$0")" && pwd)
target="$TEMPLATES_DIR/base"
recipe="debootstrap minbase $SUITE $PACKAGES v1"

if [ -f "$target/recipe" ] && [ "$(cat "$target/recipe")" = "$recipe" ] && [ -x "$target/rootfs/bin/bash" ]; then
  echo "template base is up to date ($target)"
  exit 0
fi
mirror=${NULLSPACE_DEBIAN_MIRROR:-$("$here/debian-mirror.sh")}
work="$TEMPLATES_DIR/.base.build.$$"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
echo "building template base with debootstrap (about 3 minutes)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/rootfs" "$mirror" >"$work/build.log" 2>&1 || {
  tail -30 "$work/build.log" >&2; exit 1; }
# Apt's caches are 80 MB every machine would carry for nothing.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/log/"*.log
mkdir -p "$work/rootfs/workspace" "$work/rootfs/.nullspace"
# Machines have no outside network yet; an empty resolv.conf makes lookups fail fast instead of hanging.
: > "$work/rootfs/etc/resolv.conf"
echo "$recipe" > "$work/recipe"
rm -rf "$target.old"
[ -d "$target" ] && mv "$target" "$target.old"
mv "$work" "$target"
rm -rf "$target.old"
du -sh "$target/rootfs" | awk '{print "template base built: " $1}'
