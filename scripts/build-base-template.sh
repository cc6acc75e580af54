#!/usr/bin/env bash
# Builds the `base` template: a Debian bookworm root filesystem (debootstrap, minbase) with bash,
# coreutils, python3, git, curl, ca-certificates, procps and openssh-server (started only by
# Nullspace's own bootstrap, packages/server/src/services/sshd-bootstrap.ts). Idempotent: a template
# whose recipe (this file's package list, suite and version suffix) is unchanged is kept as it is.
set -euo pipefail
TEMPLATES_DIR=${NULLSPACE_TEMPLATES_DIR:-${NULLSPACE_DATA_DIR:-/var/lib/nullspace}/templates}
SUITE=bookworm
PACKAGES=bash,coreutils,python3,git,curl,ca-certificates,procps,iproute2,less,openssh-server
here=$(cd "$(dirname "$0")" && pwd)
target="$TEMPLATES_DIR/base"
# Bump the suffix when the steps below change, so that existing templates are rebuilt.
recipe="debootstrap minbase $SUITE $PACKAGES v3"

if [ -f "$target/recipe" ] && [ "$(cat "$target/recipe")" = "$recipe" ] && [ -x "$target/rootfs/bin/bash" ]; then
  echo "template base is up to date ($target)"
  exit 0
fi
# A running machine has the template's rootfs as the lower layer of its overlay: replacing the
# template would pull its files away from under it. Refuse instead (stopped machines and snapshots
# are not mounted and are not seen here).
if [ -d "$target/rootfs" ]; then
  in_use=$(grep -cF "lowerdir=$(realpath "$target/rootfs")" /proc/mounts || true)
  if [ "$in_use" != 0 ]; then
    echo "template base needs a rebuild, but $in_use running machine(s) use it (overlay mounts of $target/rootfs);" \
      "stop them and run this again" >&2
    exit 1
  fi
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
# openssh-server's postinst made host keys: every machine would share them. Each machine makes its
# own on the first start of its sshd instead.
rm -f "$work/rootfs/etc/ssh/ssh_host_"*
# Machines have no init (tini runs the agent), but one a user installs later must not start Debian's
# stock sshd: only Nullspace's bootstrap runs it, with its own config (certificates only).
# sshd_not_to_be_run is the switch Debian's systemd units, init script and runit service all honour.
rm -f "$work/rootfs/etc/systemd/system/"*.wants/ssh.service "$work/rootfs/etc/systemd/system/"*.wants/ssh.socket \
  "$work/rootfs/etc/systemd/system/sshd.service" "$work/rootfs/etc/rc"?.d/[SK][0-9][0-9]ssh
touch "$work/rootfs/etc/ssh/sshd_not_to_be_run"
mkdir -p "$work/rootfs/workspace" "$work/rootfs/.nullspace"
# Every machine's resolver: one fixed address its egress table redirects to the host's DNS
# forwarder (runtime net/egress-rules.ts, MACHINE_RESOLVER), so forks and resumed machines need no
# rewrite. A regular file (never a symlink), so the machine may edit it.
rm -f "$work/rootfs/etc/resolv.conf"
printf 'nameserver 169.254.53.53\noptions timeout:2 attempts:2\n' > "$work/rootfs/etc/resolv.conf"
echo "$recipe" > "$work/recipe"
rm -rf "$target.old"
[ -d "$target" ] && mv "$target" "$target.old"
mv "$work" "$target"
rm -rf "$target.old"
du -sh "$target/rootfs" | awk '{print "template base built: " $1}'
