#!/usr/bin/env bash
# Builds the helper that mounts volumes into running machines (packages/runtime/native/
# volume-mount.c: open_tree + setns + move_mount, which util-linux 2.38 cannot do across mount
# namespaces) and installs it as /usr/local/libexec/nullspace/volume-mount, root-only.
# Idempotent: rebuilds only when the source changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/packages/runtime/native/volume-mount.c"
dest=${NULLSPACE_VOLUME_HELPER:-/usr/local/libexec/nullspace/volume-mount}
stamp="$dest.sha256"
want=$(sha256sum "$src" | cut -d' ' -f1)
if [ -x "$dest" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "volume helper up to date ($dest)"
  exit 0
fi
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
gcc -O2 -Wall -Wextra -Werror -o "$tmp" "$src"
install -m 0700 "$tmp" "$dest"
echo "$want" > "$stamp"
echo "built $dest"
