#!/usr/bin/env bash
# Builds CRIU 4.2 from Debian's (forky/sid) source and installs it as /usr/local/sbin/criu.
# Bookworm's own criu 3.17 fails on newer kernels ("Unexpected rt vDSO area bounds"), and trixie's
# binary package needs a newer libc, so we build the upstream tarball on bookworm
# (../shared/RUNTIME-FACTS.md). 4.1.1 hangs on this kernel (6.18) while curing the parasite of
# any process (waiting for the rt_sigreturn trap); 4.2.1 dumps and restores. Idempotent: does nothing when a good criu is installed.
set -euo pipefail
CRIU_VERSION=4.2.1
CRIU_SHA256=29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9
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
  # A private apt configuration that knows only forky's and sid's *source* indexes: nothing on
  # the host is ever upgraded from it. `apt-get source` may exit non-zero (the registry does not
  # serve every file of the source package), but the orig tarball arrives; its checksum is what
  # we trust.
  mirror=${NULLSPACE_DEBIAN_MIRROR:-$("$here/debian-mirror.sh")}
  apt_dir="$CACHE/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
  printf 'deb-src [trusted=yes] %s %s main\n' "$mirror" forky "$mirror" sid > "$apt_dir/sources.list"
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
# WERROR=0: a newer compiler's new warnings (Debian 13's gcc 14) must not stop the build.
make -C "$src" -j"$(nproc)" WERROR=0 criu >"$CACHE/build.log" 2>&1 || { tail -40 "$CACHE/build.log" >&2; exit 1; }
install -m 0755 "$src/criu/criu" "$PREFIX/criu"
rm -rf "$src"
"$PREFIX/criu" --version | head -n1
