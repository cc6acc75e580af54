#!/usr/bin/env bash
# Lists what Nullspace machines hold on this host now, one line per resource, from the runtime's
# inventory (packages/runtime/src/inventory/): host-wide, every server's machines — their
# processes, cgroups, mounts (overlay, disk, staged volumes, CRIU leftovers), loop devices, network
# namespaces, links and nftables rules (chains and map entries in the host table `ip nullspace`,
# which is host infrastructure and never listed; an older server's per-machine tables) — plus host
# volumes' mounts, links nobody owns and agent processes outside machine cgroups. The test script
# compares this before and after the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node packages/runtime/dist/inventory/main.js
