#!/usr/bin/env bash
# One idempotent host set-up for Nullspace: Debian packages, CRIU built from Debian's source,
# node modules (native ones built here), the TypeScript build, the `base` template and the templates
# shipped with Nullspace (templates/).
# A second run only checks and takes seconds. Needs root on Debian 12 (bookworm) or 13 (trixie);
# templates are bookworm either way.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
step() { printf '\n==> %s\n' "$*"; }
t0=$(date +%s)

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (machines need namespaces, cgroups, mounts and runc)" >&2
  exit 1
fi

APT_PACKAGES=(
  runc tini xfsprogs debootstrap iproute2 nftables util-linux ca-certificates
  # ssh-keygen signs SSH access certificates; ssh is what the SSH tests connect with
  openssh-client
  # conntrack empties the connection tracking table CRIU restores into a machine's namespace
  conntrack
  # runc's checkpoint has CRIU lock the machine's network with iptables-restore (inside its netns)
  iptables
  # CRIU's build dependencies (RUNTIME-FACTS.md)
  build-essential pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  python3-protobuf libcap-dev libnl-3-dev libnet1-dev libbsd-dev libnftables-dev libgnutls28-dev
  libdrm-dev uuid-dev xz-utils
  # the Python SDK's tests: pytest, a venv without site-packages (the SDK is stdlib-only), and
  # pip with setuptools and wheel to build its wheel offline (--no-build-isolation)
  python3 python3-pytest python3-venv python3-pip python3-setuptools python3-wheel
  # the desktop's tests and bench: a real browser for the viewer (driven by playwright-core),
  # ffprobe for recordings, and the same X tools on the host as in the desktop template
  chromium chromium-driver ffmpeg xvfb openbox xdotool wmctrl xclip x11-apps x11-utils x11-xserver-utils
)
step "Debian packages"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "all ${#APT_PACKAGES[@]} present"
fi

step "CRIU"
bash scripts/build-criu.sh

step "native helpers"
bash scripts/build-native-helpers.sh

step "node modules"
stamp=node_modules/.nullspace-install-stamp
want=$(cat package.json packages/*/package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm install --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
else
  echo "up to date"
fi
# Native modules built from source above: SQLite for the server's store, node-pty for terminals.
(cd packages/server && node -e "require('better-sqlite3')") && (cd packages/agent && node -e "require('node-pty')") &&
  echo "native modules load (better-sqlite3, node-pty)"

step "build"
npx tsc -b
node scripts/bundle-agent.mjs
echo "built"

step "template base"
bash scripts/build-base-template.sh

step "shipped templates"
# templates/<name>/template.json, built beside base (layer, ready snapshot); unchanged ones are kept.
node scripts/build-templates.mjs

echo
echo "setup done in $(( $(date +%s) - t0 ))s ($here)"
