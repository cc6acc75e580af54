/**
 * The nftables program of a machine's egress policy, checked for what it does rather than how it
 * is spelled: a small reader walks each chain's rules in order, as nftables would for one packet,
 * and reports the verdict (the chain's policy, accept, when no rule decides).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EgressSpec, NON_PUBLIC_CIDRS, ipv4ToNumber, parseCidr } from '@nullspace/protocol';
import { linkFor, parsePool } from './addresses.js';
import { MACHINE_RESOLVER, type MachineLink, renderEgressProgram } from './egress-rules.js';

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

/** The rules of one chain, in order. */
function chain(program: string, name: string): string[] {
  const m = new RegExp(`  chain ${name} \\{\\n([\\s\\S]*?)\\n  \\}`).exec(program);
  if (!m?.[1]) return [];
  return m[1]
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => !l.startsWith('type '));
}

/** Whether one rule's matches all hold for the packet (rate limits: the packet is under them). */
function matches(rule: string, p: Packet, link: MachineLink): boolean {
  if (/limit rate over/.test(rule)) return false;
  const iif = /iifname "([^"]+)"/.exec(rule);
  if (iif && iif[1] !== (p.iif ?? link.hostIf)) return false;
  if (/ct state established,related/.test(rule) && !p.established) return false;
  const saddrNot = /ip saddr != (\S+)/.exec(rule);
  if (saddrNot && (p.src ?? link.machineAddr) === saddrNot[1]) return false;
  const daddr = /ip daddr (\{[^}]*\}|\S+)/.exec(rule);
  if (daddr?.[1]) {
    const targets = daddr[1]
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

function verdict(program: string, chainName: string, p: Packet, link: MachineLink): Verdict {
  for (const rule of chain(program, chainName)) {
    if (!matches(rule, p, link)) continue;
    const v = /\b(accept|drop|reject)$/.exec(rule)?.[1];
    if (v) return v as Verdict;
  }
  return 'accept';
}

const pool = parsePool('10.213.0.0/16');
const link: MachineLink = { ...linkFor(pool, 5, 'mch_test'), dnsPort: 5353 };
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

  it('replies of open connections pass, before any deny', () => {
    const program = renderEgressProgram(link, egress({ mode: 'deny_all' }));
    assert.equal(verdict(program, 'egress', { dst: '8.8.8.8', established: true }, link), 'accept');
  });

  it('a forged source address is dropped, even towards an allowed destination', () => {
    const program = renderEgressProgram(link, egress({}));
    assert.equal(verdict(program, 'egress', { dst: '8.8.8.8', src: '10.213.0.99' }, link), 'drop');
    assert.equal(verdict(program, 'egress', { dst: '8.8.8.8' }, link), 'accept');
  });

  it('every filtering rule is scoped to the machine’s interface: other traffic is left alone', () => {
    const program = renderEgressProgram(link, egress({ mode: 'deny_all' }));
    for (const name of ['egress', 'to_host'])
      for (const rule of chain(program, name))
        assert.match(rule, new RegExp(`iifname "${link.hostIf}"`), rule);
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

  it('replaces the machine’s own table in one program, and masquerades only its address', () => {
    const program = renderEgressProgram(link, egress({}));
    const lines = program.split('\n');
    assert.deepEqual(lines.slice(0, 3), [
      'table ip ns_mch_test',
      'delete table ip ns_mch_test',
      'table ip ns_mch_test {',
    ]);
    assert.deepEqual(chain(program, 'masq'), [
      `ip saddr ${link.machineAddr} oifname != "${link.hostIf}" masquerade`,
    ]);
    assert.equal(program.match(/^table /gm)?.length, 2);
  });
});
