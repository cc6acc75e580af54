/**
 * The nftables layout servers used before the host table, kept here as the bench's baseline: one
 * table per machine (`ns_<id>`) with its own base chains on the forward, input, prerouting and
 * postrouting hooks, every rule matching the machine's interface. This is the program of
 * packages/runtime/src/net/egress-rules.ts `renderEgressProgram` as of commit 3cf07fa, for the
 * policies the bench uses (allow_all with the host's DNS forwarder; the same with a rate limit).
 */

/** The non-public ranges of protocol's NON_PUBLIC_CIDRS at that commit (the same today). */
export function legacyEgressProgram({ id, hostIf, machineAddr, dnsPort, nonPublic, rateKbit }) {
  const table = `ns_${id}`;
  const from = `iifname "${hostIf}"`;
  const fwd = [];
  if (rateKbit !== undefined)
    fwd.push(`${from} limit rate over ${Math.max(1, Math.round(rateKbit / 8))} kbytes/second counter drop`);
  fwd.push(`${from} ct state established,related accept`, `${from} ip saddr != ${machineAddr} counter drop`);
  fwd.push(`${from} ip daddr { ${nonPublic.join(', ')} } counter drop`, `${from} counter accept`);
  const toHost = [
    `${from} ct state established,related accept`,
    `${from} ip daddr 127.0.0.1 meta l4proto { udp, tcp } th dport ${dnsPort} accept`,
    `${from} counter drop`,
  ];
  return [
    `table ip ${table}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    '  chain egress {',
    '    type filter hook forward priority filter; policy accept;',
    ...fwd.map((r) => `    ${r}`),
    '  }',
    '  chain to_host {',
    '    type filter hook input priority filter; policy accept;',
    ...toHost.map((r) => `    ${r}`),
    '  }',
    '  chain resolver {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    `    ${from} ip daddr 169.254.53.53 meta l4proto { udp, tcp } th dport 53 dnat to 127.0.0.1:${dnsPort}`,
    '  }',
    '  chain masq {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${machineAddr} oifname != "${hostIf}" masquerade`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The host commands of a link's set-up before the `ip -batch` form (net/link.ts `linkSetUpSteps`
 * and netns/netns.ts `createNetnsSteps` at commit 3cf07fa): one process per step.
 */
export function legacyLinkSetUpSteps(netns, link, files, owner) {
  const peer = `${link.hostIf}p`;
  const cidr = (addr) => `${addr}/${link.prefix}`;
  const inside = ['sysctl -qw net.ipv4.conf.eth0.route_localnet=1', `nft -f '${files.preview}'`].join(' && ');
  return [
    ['ip', 'netns', 'add', netns],
    ['ip', '-n', netns, 'link', 'set', 'lo', 'up'],
    ['nft', '-f', files.egress],
    ['ip', 'link', 'add', link.hostIf, 'type', 'veth', 'peer', 'name', peer],
    ['ip', 'link', 'set', link.hostIf, 'alias', owner],
    ['ip', 'link', 'set', peer, 'netns', netns],
    ['ip', '-n', netns, 'link', 'set', peer, 'name', 'eth0'],
    ['ip', 'addr', 'add', cidr(link.hostAddr), 'dev', link.hostIf],
    ['ip', 'addr', 'add', cidr(link.previewAddr), 'dev', link.hostIf],
    ['ip', '-n', netns, 'addr', 'add', cidr(link.machineAddr), 'dev', 'eth0'],
    [
      'sysctl',
      '-qw',
      `net.ipv4.conf.${link.hostIf}.forwarding=1`,
      `net.ipv4.conf.${link.hostIf}.route_localnet=1`,
    ],
    ['nsenter', `--net=/run/netns/${netns}`, 'sh', '-c', inside],
    ['ip', 'link', 'set', link.hostIf, 'up'],
    ['ip', '-n', netns, 'link', 'set', 'eth0', 'up'],
    ['ip', '-n', netns, 'route', 'add', 'default', 'via', link.hostAddr],
  ];
}
