#!/usr/bin/env bash
# Prints the Debian archive URI this host's apt already uses for its main Debian suite, so that
# debootstrap, the package cache and the CRIU source download go to the same registry apt is
# configured for (and no host name is baked into the project). Templates are Debian bookworm
# whatever the host runs: on a Debian 13 (trixie) host the same archive serves bookworm, so a
# source for any release suite (bookworm preferred; never -security, -updates or -backports,
# which are other archives or partial suites) names the archive.
set -euo pipefail
# Reads "URI<TAB>suite<TAB>components" lines from deb822 and one-line sources.
entries() {
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk '
      function flush() { if (u != "" && t ~ /(^| )deb( |$)/) { n = split(s, a, " "); for (i = 1; i <= n; i++) print u "\t" a[i] "\t" c } u=""; s=""; c=""; t="" }
      /^[[:space:]]*$/ { flush(); next }
      /^Types:/ { $1=""; t=$0 } /^URIs:/ { u=$2 } /^Suites:/ { $1=""; s=$0 } /^Components:/ { $1=""; c=$0 }
      END { flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    awk '$1 == "deb" { u=$2; s=$3; if (u ~ /^\[/) { for (i = 2; i <= NF && $i !~ /\]$/; i++); u=$(i+1); s=$(i+2); i+=3 } else i=4
      c=""; for (; i <= NF; i++) c = c " " $i; print u "\t" s "\t" c }' "$f"
  done
}
pick() {
  entries | awk -F '\t' -v want="$1" '$3 ~ /(^| )main( |$)/ && $2 ~ want && $2 !~ /-(security|updates|backports|proposed-updates)$/ { print $1; exit }'
}
uri=$(pick '^bookworm$')
[ -n "$uri" ] || uri=$(pick '^(trixie|forky|sid|stable|testing|unstable)$')
if [ -z "$uri" ]; then
  echo "debian-mirror: no apt source for a Debian release suite with 'main' found in /etc/apt; set NULLSPACE_DEBIAN_MIRROR" >&2
  exit 1
fi
echo "${uri%/}"
