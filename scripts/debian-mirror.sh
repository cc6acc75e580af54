#!/usr/bin/env bash
# Prints the Debian archive URI this host's apt already uses for the main `bookworm` suite, so that
# debootstrap and the CRIU source download go to the same registry apt is configured for (and no
# host name is baked into the project).
set -euo pipefail
uri=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] || continue
  uri=$(awk '
    /^[[:space:]]*$/ { if (u != "" && s ~ /(^| )bookworm( |$)/ && c ~ /main/) { print u; exit } u=""; s=""; c=""; next }
    /^URIs:/ { u=$2 } /^Suites:/ { $1=""; s=$0 } /^Components:/ { $1=""; c=$0 }
    END { if (u != "" && s ~ /(^| )bookworm( |$)/ && c ~ /main/) print u }' "$f" | head -n1)
  [ -n "$uri" ] && break
done
if [ -z "$uri" ] && [ -e /etc/apt/sources.list ]; then
  uri=$(awk '$1 == "deb" && $3 == "bookworm" { for (i = 4; i <= NF; i++) if ($i == "main") { print $2; exit } }' /etc/apt/sources.list | head -n1)
fi
if [ -z "$uri" ]; then
  echo "debian-mirror: no apt source for 'bookworm main' found in /etc/apt; set NULLSPACE_DEBIAN_MIRROR" >&2
  exit 1
fi
echo "${uri%/}"
