#!/usr/bin/env bash
# Sets the host up (idempotent) and runs the server with its embedded defaults:
# 127.0.0.1:7070, data in /var/lib/nullspace. NULLSPACE_* variables override (see docs/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo
exec node packages/cli/bin/nullspace.js serve
