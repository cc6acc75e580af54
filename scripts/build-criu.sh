#!/usr/bin/env bash
# Builds CRIU >= 4.1 from Debian's trixie source and installs it as /usr/local/sbin/criu.
# Bookworm's own criu 3.17 fails on newer kernels ("Unexpected rt vDSO area bounds"), and trixie's
# binary package needs a newer libc, so we build trixie's upstream tarball on bookworm
# (../shared/RUNTIME-FACTS.md). Idempotent: does nothing when a good criu is installed.
set -euo pipefail
CRIU_VERSION=4.1.1
CRIU_SHA256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe
PREFIX=/usr/local/sbin
CACHE=${NULLSPACE_CACHE_DIR:-/var/cache/nullspace}/criu
here=$(cd "$(dirname "$0")" && pwd)

if [ -x "$PREFIX/criu" ] && "$PREFIX/criu" --version 2>/dev/null | grep -q "Version: $CRIU_VERSION"; then
  echo "criu $CRIU_VERSION already installed"
  exit 0
fi
mkdir -p "$CACHE"
tarball="$CACHE/criu_${CRIU_VERSION}.orig.tar.xz"
if ! echo "$CRIU_SHA256  $tarball" | sha256sum -c --status 2>/dev/null; then
  # A private apt configuration that knows only trixie's *source* index: nothing on the host is
  # ever upgraded from it. `apt-get source` then exits non-zero because the .dsc is not served
  # by the snapshot, but the orig tarball arrives; its checksum is what we trust.
  mirror=${NULLSPACE_DEBIAN_MIRROR:-$("$here/debian-mirror.sh")}
  apt_dir="$CACHE/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
  echo "deb-src [trusted=yes] $mirror trixie main" > "$apt_dir/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
        -o "APT::Sandbox::User=root" -o "Acquire::Check-Valid-Until=false")
  apt-get "${opts[@]}" -q update >/dev/null
  (cd "$CACHE" && apt-get "${opts[@]}" -q source --download-only "criu=$CRIU_VERSION-*" >/dev/null 2>&1 || \
   cd "$CACHE" && apt-get "${opts[@]}" -q source --download-only criu >/dev/null 2>&1 || true)
  echo "$CRIU_SHA256  $tarball" | sha256sum -c --status || {
    echo "build-criu: could not fetch $tarball with the expected sha256" >&2; exit 1; }
fi
src="$CACHE/criu-$CRIU_VERSION"
rm -rf "$src"
tar -C "$CACHE" -xf "$tarball"
echo "building criu $CRIU_VERSION (about a minute)"
make -C "$src" -j"$(nproc)" criu >"$CACHE/build.log" 2>&1 || { tail -40 "$CACHE/build.log" >&2; exit 1; }
install -m 0755 "$src/criu/criu" "$PREFIX/criu"
rm -rf "$src"
"$PREFIX/criu" --version | head -n1
