#!/usr/bin/env bash
# Builds the runtime's two small root-only helpers from packages/runtime/native/ and installs them
# in /usr/local/libexec/nullspace/ (each path can be overridden, e.g. to try a change without
# touching the host's copies):
#   volume-mount  (volume-mount.c; NULLSPACE_VOLUME_HELPER): mounts volumes into running machines
#                 — open_tree + setns + move_mount, which util-linux 2.38 cannot do across mount
#                 namespaces — idmapped to the machine's user namespace.
#   idmap         (idmap.c; NULLSPACE_IDMAP_HELPER): idmapped mounts of template layers
#                 (mount_setattr MOUNT_ATTR_IDMAP, which util-linux 2.38's mount cannot do) and
#                 the ownership shift of a disk moved between machines' id ranges.
# Both include idmap.h. Idempotent: rebuilds a helper only when its sources changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
native="$root/packages/runtime/native"

build() { # name source dest
  local name=$1 src=$2 dest=$3
  local stamp="$dest.sha256" want
  want=$(cat "$src" "$native/idmap.h" | sha256sum | cut -d' ' -f1)
  if [ -x "$dest" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$name helper up to date ($dest)"
    return
  fi
  mkdir -p "$(dirname "$dest")"
  local tmp
  tmp=$(mktemp)
  gcc -O2 -Wall -Wextra -Werror -o "$tmp" "$src"
  install -m 0700 "$tmp" "$dest"
  rm -f "$tmp"
  echo "$want" > "$stamp"
  echo "built $dest"
}

build volume "$native/volume-mount.c" "${NULLSPACE_VOLUME_HELPER:-/usr/local/libexec/nullspace/volume-mount}"
build idmap "$native/idmap.c" "${NULLSPACE_IDMAP_HELPER:-/usr/local/libexec/nullspace/idmap}"
