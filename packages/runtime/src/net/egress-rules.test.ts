/**
 * The nftables program of a machine's egress policy, checked for what it does rather than how it
 * is spelled: a small reader dispatches a packet as the host table would (by its input interface,
 * through the program's map entries, to the machine's chain), walks that chain's rules in order
 * and reports the verdict (accept, the base chains' policy, when no rule decides).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EgressSpec, NON_PUBLIC_CIDRS, ipv4ToNumber, parseCidr } from '@nullspace/protocol';
import { linkFor, parsePool } from './addresses.js';
import {
  DISPATCH_MAPS,
  HOOKS,
  HOST_TABLE,
  type Hook,
  INLINE_CIDRS,
  MACHINE_RESOLVER,
  type MachineLink,
  NON_PUBLIC_SET,
  machineChains,
  renderEgressProgram,
  renderHostTable,
  renderRemovalProgram,
} from './egress-rules.js';

interface Packet {
  /** Interface the packet came in by (the machine's host end, unless a test says otherwise). */
  iif?: string;
  src?: string;
  dst: string;
  /** Part of a connection already accepted. */
  established?: boolean;
  proto?: 'tcp' | 'udp';
  dport?: number;
}

type Verdict = 'accept' | 'drop' | 'reject';

function inCidr(addr: string, cidr: string): boolean {
  const [net = '', bits = '32'] = parseCidr(cidr, 'test').split('/');
  const prefix = Number(bits);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return ((ipv4ToNumber(addr) ?? -1) & mask) >>> 0 === ipv4ToNumber(net);
}

const OWNER = 'mch_test';

/** The rules of the machine's chain of one hook, in order. */
function chain(program: string, hook: Hook): string[] {
  const name = machineChains(OWNER)[hook];
  const m = new RegExp(`\\n  chain ${name} \\{\\n((?:    .*\\n)*)  \\}\\n`).exec(program);
  if (!m?.[1]) return [];
  return m[1]
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Whether the program's map entry for interface `iif` jumps to the machine's chain of `hook`. */
function dispatched(program: string, hook: Hook, iif: string): boolean {
  return program
    .split('\n')
    .includes(
      `add element ip ${HOST_TABLE} ${DISPATCH_MAPS[hook]} { "${iif}" : jump ${machineChains(OWNER)[hook]} }`,
    );
}

/** Whether one rule's matches all hold for the packet (rate limits: the packet is under them). */
function matches(rule: string, p: Packet, link: MachineLink): boolean {
  if (/limit rate over/.test(rule)) return false;
  // The rules match no interface: the map entries (see dispatched) are what scope them.
  assert.doesNotMatch(rule, /iifname/);
  if (/ct state established,related/.test(rule) && !p.established) return false;
  const saddrNot = /ip saddr != (\S+)/.exec(rule);
  if (saddrNot && (p.src ?? link.machineAddr) === saddrNot[1]) return false;
  const daddr = /ip daddr (\{[^}]*\}|\S+)/.exec(rule);
  if (daddr?.[1]) {
    const targets = (daddr[1] === `@${NON_PUBLIC_SET}` ? `{ ${NON_PUBLIC_CIDRS.join(', ')} }` : daddr[1])
      .replace(/[{}]/g, '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (!targets.some((t) => inCidr(p.dst, t))) return false;
  }
  const proto = /meta l4proto \{ ([^}]*) \}/.exec(rule);
  if (
    proto?.[1] &&
    !proto[1]
      .split(',')
      .map((s) => s.trim())
      .includes(p.proto ?? 'tcp')
  )
    return false;
  const dport = /th dport (\d+)/.exec(rule);
  if (dport && Number(dport[1]) !== p.dport) return false;
  return true;
}

function verdict(program: string, hook: Hook, p: Packet, link: MachineLink): Verdict {
  if (!dispatched(program, hook, p.iif ?? link.hostIf)) return 'accept';
  for (const rule of chain(program, hook)) {
    if (!matches(rule, p, link)) continue;
    const v = /\b(accept|drop|reject)$/.exec(rule)?.[1];
    if (v) return v as Verdict;
  }
  return 'accept';
}

const pool = parsePool('10.213.0.0/16');
const link: MachineLink = { ...linkFor(pool, 5, OWNER), dnsPort: 5353 };
const egress = (e: Partial<EgressSpec>): EgressSpec => ({
  mode: 'allow_all',
  allow_cidrs: [],
  deny_cidrs: [],
  locked: false,
  ...e,
});
/** Verdict on a new connection from the machine to `dst`, forwarded by the host. */
const out = (e: EgressSpec, dst: string, l: MachineLink = link) =>
  verdict(renderEgressProgram(l, e), 'egress', { dst }, l);
/** Verdict on a new connection from the machine to the host itself. */
const toHost = (e: EgressSpec, p: Packet, l: MachineLink = link) =>
  verdict(renderEgressProgram(l, e), 'to_host', p, l);

const PUBLIC = ['8.8.8.8', '1.1.1.1', '93.184.216.34'];
const PRIVATE = [
  '10.1.2.3',
  '10.213.0.10',
  '172.16.5.5',
  '192.168.1.1',
  '127.0.0.1',
  '169.254.169.254',
  '100.64.1.1',
];

describe('renderEgressProgram: forwarded traffic', () => {
  it('allow_all: the internet yes, private ranges, other machines and cloud metadata no', () => {
    const e = egress({});
    for (const dst of PUBLIC) assert.equal(out(e, dst), 'accept', dst);
    for (const dst of PRIVATE) assert.equal(out(e, dst), 'drop', dst);
    for (const cidr of NON_PUBLIC_CIDRS) assert.equal(out(e, cidr.split('/')[0] as string), 'drop', cidr);
  });

  it('deny_all, and the legacy lock, drop everything, whatever the lists say', () => {
    for (const e of [
      egress({ mode: 'deny_all' }),
      egress({ mode: 'custom', allow_cidrs: ['0.0.0.0/0'], locked: true }),
      egress({ mode: 'allow_all', locked: true }),
    ])
      for (const dst of [...PUBLIC, ...PRIVATE]) assert.notEqual(out(e, dst), 'accept', `${e.mode} ${dst}`);
  });

  it('custom with deny only: all public but the denied; private ranges still closed', () => {
    const e = egress({ mode: 'custom', deny_cidrs: ['1.1.1.0/24'] });
    assert.equal(out(e, '1.1.1.1'), 'drop');
    assert.equal(out(e, '8.8.8.8'), 'accept');
    assert.equal(out(e, '10.1.2.3'), 'drop');
  });

  it('custom with allow: only what is allowed, private ranges included when named; deny wins', () => {
    const e = egress({
      mode: 'custom',
      allow_cidrs: ['8.8.8.0/24', '10.0.0.0/8'],
      deny_cidrs: ['8.8.8.8/32', '10.9.0.0/16'],
    });
    assert.equal(out(e, '8.8.8.4'), 'accept');
    assert.equal(out(e, '10.1.2.3'), 'accept');
    assert.equal(out(e, '8.8.8.8'), 'drop');
    assert.equal(out(e, '10.9.1.1'), 'drop');
    assert.equal(out(e, '1.1.1.1'), 'drop');
    assert.equal(out(e, '192.168.1.1'), 'drop');
  });

  it('a short list is a rule per range, a long one a set, with the same verdicts (deny wins)', () => {
    const many = Array.from({ length: INLINE_CIDRS + 1 }, (_, i) => `198.51.100.${i * 8}/29`);
    for (const allow of [many.slice(0, 2), many]) {
      const e = egress({ mode: 'custom', allow_cidrs: allow, deny_cidrs: ['198.51.100.0/32'] });
      const rules = chain(renderEgressProgram(link, e), 'egress');
      assert.equal(
        rules.some((r) => r.includes('{')),
        allow.length > INLINE_CIDRS,
        `${allow.length} ranges`,
      );
      assert.equal(out(e, '198.51.100.9'), 'accept');
      assert.equal(out(e, '198.51.100.0'), 'drop');
      assert.equal(out(e, '8.8.8.8'), 'drop');
    }
  });

  it('replies of open connections pass, before any deny', () => {
    const program = renderEgressProgram(link, egress({ mode: 'deny_all' }));
    assert.equal(verdict(program, 'egress', { dst: '8.8.8.8', established: true }, link), 'accept');
  });

  it('a forged source address is dropped, even towards an allowed destination', () => {
    const program = renderEgressProgram(link, egress({}));
    assert.equal(verdict(program, 'egress', { dst: '8.8.8.8', src: '10.213.0.99' }, link), 'drop');
    assert.equal(verdict(program, 'egress', { dst: '8.8.8.8' }, link), 'accept');
  });

  it('the machine’s chains are reached only by its interface: other traffic is left alone', () => {
    const program = renderEgressProgram(link, egress({ mode: 'deny_all' }));
    for (const hook of HOOKS) {
      assert.ok(dispatched(program, hook, link.hostIf), hook);
      const entries = program.split('\n').filter((l) => l.includes(` ${DISPATCH_MAPS[hook]} `));
      assert.equal(entries.length, 1, hook);
    }
    assert.equal(verdict(program, 'egress', { dst: '8.8.8.8', iif: 'eth0' }, link), 'accept');
    assert.equal(verdict(program, 'to_host', { dst: '127.0.0.1', iif: 'eth0' }, link), 'accept');
  });
});

describe('renderEgressProgram: the host itself', () => {
  it('refuses new connections to the host, its API and the preview source included', () => {
    for (const e of [egress({}), egress({ mode: 'custom', deny_cidrs: ['1.1.1.1/32'] })])
      for (const dst of [link.hostAddr, link.previewAddr, '127.0.0.1', '192.168.1.10'])
        assert.equal(toHost(e, { dst, dport: 7070 }), 'drop', dst);
    assert.equal(toHost(egress({}), { dst: link.hostAddr, established: true }), 'accept');
  });

  it('a custom allow list naming a host address opens it (deny still wins)', () => {
    const e = egress({ mode: 'custom', allow_cidrs: [`${link.hostAddr}/32`, '192.168.0.0/16'] });
    assert.equal(toHost(e, { dst: link.hostAddr, dport: 80 }), 'accept');
    assert.equal(toHost(e, { dst: '10.0.0.1', dport: 80 }), 'drop');
    const denied = egress({ ...e, deny_cidrs: ['192.168.1.0/24'] });
    assert.equal(toHost(denied, { dst: '192.168.1.5', dport: 80 }), 'drop');
    assert.equal(toHost(denied, { dst: '192.168.2.5', dport: 80 }), 'accept');
    assert.equal(toHost(egress({ ...e, locked: true }), { dst: link.hostAddr, dport: 80 }), 'drop');
  });
});

describe('renderEgressProgram: DNS', () => {
  it('with a forwarder: the resolver address is redirected to it, and only its port is open', () => {
    const program = renderEgressProgram(link, egress({}));
    const [dnat] = chain(program, 'resolver');
    assert.ok(dnat, 'a resolver chain');
    assert.match(
      dnat,
      new RegExp(`ip daddr ${MACHINE_RESOLVER} .*th dport 53 dnat to 127\\.0\\.0\\.1:5353$`),
    );
    for (const proto of ['udp', 'tcp'] as const)
      assert.equal(toHost(egress({}), { dst: '127.0.0.1', proto, dport: 5353 }), 'accept', proto);
    assert.equal(toHost(egress({}), { dst: '127.0.0.1', dport: 5354 }), 'drop');
  });

  it('denied or without a forwarder: no redirect, and queries are refused at once (not dropped)', () => {
    const noDns: MachineLink = { ...link };
    noDns.dnsPort = undefined;
    for (const [l, e] of [
      [link, egress({ mode: 'deny_all' })],
      [link, egress({ locked: true })],
      [noDns, egress({})],
    ] as const) {
      const program = renderEgressProgram(l, e);
      assert.deepEqual(chain(program, 'resolver'), []);
      assert.equal(out(e, MACHINE_RESOLVER, l), 'reject');
      assert.equal(toHost(e, { dst: '127.0.0.1', dport: 5353 }, l), 'drop');
    }
  });
});

describe('renderEgressProgram: rate limits and the table', () => {
  it('a rate limit comes before everything else, for open connections too', () => {
    const kbit = chain(
      renderEgressProgram(link, egress({ rate_limit: { kbit_per_sec: 8000, burst: 800 } })),
      'egress',
    );
    assert.match(kbit[0] ?? '', /limit rate over 1000 kbytes\/second burst 100 kbytes counter drop$/);
    const pps = chain(
      renderEgressProgram(link, egress({ mode: 'custom', rate_limit: { pps: 50 } })),
      'egress',
    );
    assert.match(pps[0] ?? '', /limit rate over 50\/second counter drop$/);
    const tiny = chain(renderEgressProgram(link, egress({ rate_limit: { kbit_per_sec: 1 } })), 'egress');
    assert.match(tiny[0] ?? '', /limit rate over 1 kbytes\/second counter drop$/);
  });

  it('no rate limit when nothing may leave anyway, or none is asked for', () => {
    for (const e of [
      egress({}),
      egress({ mode: 'deny_all', rate_limit: { pps: 5 } }),
      egress({ locked: true, rate_limit: { pps: 5 } }),
    ])
      assert.ok(!/limit rate/.test(renderEgressProgram(link, e)));
  });

  it('one transaction refills only the machine’s chains and points its link at them; masquerades only its address', () => {
    const program = renderEgressProgram(link, egress({}));
    const lines = program.split('\n');
    const chains = machineChains(OWNER);
    for (const hook of HOOKS) {
      const made = lines.indexOf(`add chain ip ${HOST_TABLE} ${chains[hook]}`);
      const flushed = lines.indexOf(`flush chain ip ${HOST_TABLE} ${chains[hook]}`);
      assert.ok(made >= 0 && flushed > made, hook);
    }
    // Nothing else of the host table, nor any other table, is touched.
    assert.deepEqual(
      lines.filter(
        (l) => /^(delete|flush) /.test(l) && !Object.values(chains).some((c) => l.endsWith(` ${c}`)),
      ),
      [],
    );
    assert.deepEqual(chain(program, 'masq'), [
      `ip saddr ${link.machineAddr} oifname != "${link.hostIf}" masquerade`,
    ]);
    // Every hook gets its entry, an empty chain included: the maps hold the same interfaces.
    const denied = renderEgressProgram(link, egress({ mode: 'deny_all' }));
    assert.deepEqual(chain(denied, 'resolver'), []);
    for (const hook of HOOKS) assert.ok(dispatched(denied, hook, link.hostIf), hook);
  });

  it('a takeover first deletes the link’s entries; an older server’s table goes in the same transaction', () => {
    const takeover = renderEgressProgram(link, egress({}), { takeover: true }).split('\n');
    assert.deepEqual(
      takeover.slice(0, HOOKS.length),
      HOOKS.map((h) => `delete element ip ${HOST_TABLE} ${DISPATCH_MAPS[h]} { "${link.hostIf}" }`),
    );
    const migrated = renderEgressProgram(link, egress({}), { dropLegacyTable: true }).split('\n');
    // Made first if missing, so the same program serves machines with and without one.
    assert.deepEqual(migrated.slice(0, 2), [`table ip ns_${OWNER}`, `delete table ip ns_${OWNER}`]);
    assert.ok(!renderEgressProgram(link, egress({})).includes('ns_'));
  });
});

describe('the host table and a machine’s removal', () => {
  it('the host table: each hook’s base chain dispatches through its map; the non-public set is refilled', () => {
    const program = renderHostTable();
    assert.ok(!/^delete /m.test(program), 'never deletes the table or what machines put in it');
    for (const hook of HOOKS)
      assert.match(
        program,
        new RegExp(`^add rule ip ${HOST_TABLE} \\S+ iifname vmap @${DISPATCH_MAPS[hook]}$`, 'm'),
      );
    assert.equal(program.match(/^flush chain /gm)?.length, HOOKS.length);
    assert.ok(
      program.includes(`add element ip ${HOST_TABLE} ${NON_PUBLIC_SET} { ${NON_PUBLIC_CIDRS.join(', ')} }`),
    );
  });

  it('removal: the entries of the given links, then the chains and an older table, each made first if missing', () => {
    const lines = renderRemovalProgram(OWNER, ['nsv0000000a']).split('\n');
    const entries = HOOKS.map((h) => `delete element ip ${HOST_TABLE} ${DISPATCH_MAPS[h]} { "nsv0000000a" }`);
    assert.deepEqual(lines.slice(0, HOOKS.length), entries);
    for (const c of Object.values(machineChains(OWNER))) {
      const made = lines.indexOf(`add chain ip ${HOST_TABLE} ${c}`);
      assert.ok(made > 0 && lines[made + 1] === `delete chain ip ${HOST_TABLE} ${c}`, c);
    }
    assert.ok(lines.includes(`delete table ip ns_${OWNER}`));
    assert.ok(!renderRemovalProgram(OWNER, []).includes('delete element'));
  });
});
