#!/usr/bin/env bash
# Sets the host up (idempotent) and runs the server with its embedded defaults:
# 127.0.0.1:7070, data in /var/lib/nullspace. NULLSPACE_* variables override (see docs/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo
# The server runs on jemalloc (Debian's libjemalloc2, installed by the set-up): with glibc's malloc
# its resident memory grows under load from freed pages it keeps, with jemalloc it stays flat
# (packages/server/src/allocator.ts, bench/README.md "Load and soak"). The server takes it out of
# LD_PRELOAD again for the host tools it starts. NULLSPACE_MALLOC=glibc keeps glibc's.
if [ "${NULLSPACE_MALLOC:-jemalloc}" = jemalloc ]; then
  for lib in /usr/lib/*-linux-gnu/libjemalloc.so.2; do
    [ -e "$lib" ] && export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
    break
  done
fi
exec node packages/cli/bin/nullspace.js serve
