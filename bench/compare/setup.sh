#!/usr/bin/env bash
# The comparison bench's own set-up (bench/compare.mjs): Podman from Debian, with runc, conmon and
# the CRIU already on the host (/usr/local/sbin/criu). Idempotent. Not part of the product's set-up
# (scripts/setup.sh never installs Podman). Never pulls an image: the bench imports its own.
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
  echo "bench/compare/setup.sh needs root (apt-get)" >&2
  exit 2
fi
# Podman checkpoints with the `criu` in PATH; Debian's criu package must not replace the host's.
if ! command -v criu >/dev/null; then
  echo "no criu in PATH (expected /usr/local/sbin/criu, built by scripts/setup.sh)" >&2
  exit 1
fi
PACKAGES=(podman conmon runc)
if command -v podman >/dev/null && command -v conmon >/dev/null; then
  echo "podman already installed: $(podman --version)"
else
  export DEBIAN_FRONTEND=noninteractive
  # Check first that nothing would pull Debian's criu over the host's own.
  plan=$(apt-get install -s -y --no-install-recommends "${PACKAGES[@]}")
  if grep -q '^Inst criu ' <<<"$plan"; then
    echo "refusing: installing ${PACKAGES[*]} would install Debian's criu package" >&2
    exit 1
  fi
  apt-get install -y --no-install-recommends "${PACKAGES[@]}"
fi
if dpkg -s criu >/dev/null 2>&1; then
  echo "warning: Debian's criu package is installed; the bench expects /usr/local/sbin/criu" >&2
fi
echo "criu in PATH: $(command -v criu) ($(criu --version | head -1))"
echo "podman: $(podman --version); runc: $(runc --version | head -1); conmon: $(conmon --version | head -1)"
