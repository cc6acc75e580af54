#!/usr/bin/env bash
# Lists the kernel resources Nullspace machines use that exist on this host now: machine network
# namespaces, their links and egress tables, machine cgroups, overlay mounts, volume mounts (and
# what was staged to restore one), loop devices, and processes running a machine agent.
# The test script compares this before and after the suite.
set -u
ls /run/netns 2>/dev/null | grep '^ns-mch_' | sed 's/^/netns /'
# Machine links (host ends of veths) and egress tables.
ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^nsv[0-9a-f]+@?/ { sub(/@.*/, "", $2); print "link " $2 }'
nft list tables ip 2>/dev/null | awk '$3 ~ /^ns_mch_/ { print "nft table " $3 }'
for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
  [ -d "$root/nullspace" ] && find "$root/nullspace" -mindepth 1 -maxdepth 1 -type d -name 'mch_*' | sed 's/^/cgroup /'
done
awk '$3 == "overlay" { print "overlay mount " $2 }' /proc/mounts
awk '$2 ~ /\/volumes\/vol_[a-z2-7]+\/mnt$/ || $2 ~ /\/volume-stage\// { print "volume mount " $2 }' /proc/mounts
losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null | awk '{ print "loop " $1 " " $2 }'
for p in /proc/[0-9]*; do
  cmd=$( (tr '\0' ' ' < "$p/cmdline") 2>/dev/null) || continue
  case "$cmd" in *"/.nullspace/agent/agent.mjs"*) echo "agent process ${p#/proc/}";; esac
done
exit 0
