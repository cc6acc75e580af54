/**
 * The egress rules of issue 5, proven by real connections before they are wired to machines: a
 * machine-like network namespace linked to the host by the runtime's own `setUpLink`, and a
 * stand-in "internet" namespace this test makes (a /30 uplink and servers on TEST-NET-3 and on a
 * private range), with nothing sent anywhere else. Each policy is applied with `applyEgress` and
 * checked with connections from inside the machine's namespace.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type EgressSpec, parseCidr, parseNetworkFields } from '@nullspace/protocol';
import { type MachineLink, applyEgress, denyAll, host, setUpLink, tearDownLink } from '@nullspace/runtime';

const tag = randomBytes(3).toString('hex');
const INET = `nst-inet-${tag}`;
const MACHINE = `nst-m-${tag}`;
const UPLINK = `nsu${tag}`;
const PUBLIC_A = '203.0.113.10';
const PUBLIC_B = '203.0.113.20';
const PRIVATE = '10.254.77.10';
const link: MachineLink = {
  table: `nst_m${tag}`,
  hostIf: `nsm${tag}`,
  hostAddr: '10.213.250.1',
  machineAddr: '10.213.250.2',
};
const started: ChildProcess[] = [];

const policy = (p: Partial<EgressSpec> & Pick<EgressSpec, 'mode'>): EgressSpec => ({
  allow_cidrs: [],
  deny_cidrs: [],
  locked: false,
  ...p,
});

/** An HTTP GET from inside the machine's namespace: the status, or 0 when it did not connect. */
async function fetchFromMachine(ip: string, port = 8080): Promise<number> {
  const r = await host(
    'ip',
    [
      'netns',
      'exec',
      MACHINE,
      'curl',
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--connect-timeout',
      '1',
      '--max-time',
      '3',
      `http://${ip}:${port}/`,
    ],
    { timeoutMs: 10_000 },
  ).catch((err: { details?: { stderr?: string } }) => ({ stdout: '000', err }));
  return Number(r.stdout.trim() || '0');
}

function serve(netns: string | undefined, bind: string, port: number): void {
  const argv = ['python3', '-m', 'http.server', String(port), '--bind', bind];
  const p = netns
    ? spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: 'ignore' })
    : spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' });
  started.push(p);
}

const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, nftables)' : undefined;
if (skip && process.env.CI) throw new Error(`egress: cannot run in CI: ${skip}`);

describe('egress rules (runtime, real connections)', { skip }, () => {
  before(async () => {
    // The stand-in internet: its own namespace, reached from the host over a /30.
    const steps: string[][] = [
      ['ip', 'netns', 'add', INET],
      ['ip', '-n', INET, 'link', 'set', 'lo', 'up'],
      ['ip', 'link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', `${UPLINK}p`],
      ['ip', 'link', 'set', `${UPLINK}p`, 'netns', INET],
      ['ip', 'addr', 'add', '198.18.255.1/30', 'dev', UPLINK],
      ['ip', '-n', INET, 'addr', 'add', '198.18.255.2/30', 'dev', `${UPLINK}p`],
      ['ip', '-n', INET, 'addr', 'add', `${PUBLIC_A}/32`, 'dev', 'lo'],
      ['ip', '-n', INET, 'addr', 'add', `${PUBLIC_B}/32`, 'dev', 'lo'],
      ['ip', '-n', INET, 'addr', 'add', `${PRIVATE}/32`, 'dev', 'lo'],
      ['ip', 'link', 'set', UPLINK, 'up'],
      ['ip', '-n', INET, 'link', 'set', `${UPLINK}p`, 'up'],
      ['sysctl', '-qw', `net.ipv4.conf.${UPLINK}.forwarding=1`],
      ['ip', 'route', 'add', `${PUBLIC_A}/32`, 'via', '198.18.255.2', 'dev', UPLINK],
      ['ip', 'route', 'add', `${PUBLIC_B}/32`, 'via', '198.18.255.2', 'dev', UPLINK],
      ['ip', 'route', 'add', `${PRIVATE}/32`, 'via', '198.18.255.2', 'dev', UPLINK],
      // The "machine": a namespace with only its loopback, then the runtime's link.
      ['ip', 'netns', 'add', MACHINE],
      ['ip', '-n', MACHINE, 'link', 'set', 'lo', 'up'],
    ];
    for (const [file, ...args] of steps) await host(file as string, args);
    await setUpLink(MACHINE, link, policy({ mode: 'allow_all' }));
    serve(INET, '0.0.0.0', 8080);
    // A sink that reads whatever is sent to it (for the rate limit).
    const sink =
      'import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n' +
      "s.bind(('0.0.0.0',9000))\ns.listen()\nwhile True:\n  c,_=s.accept()\n  while c.recv(65536): pass\n  c.close()";
    started.push(spawn('ip', ['netns', 'exec', INET, 'python3', '-c', sink], { stdio: 'ignore' }));
    // A host service on the machine's link (the host's own address): never reachable from it.
    serve(undefined, link.hostAddr, 8099);
    const until = Date.now() + 10_000;
    while ((await fetchFromMachine(PUBLIC_A)) !== 200 && Date.now() < until)
      await new Promise((r) => setTimeout(r, 100));
  });

  after(async () => {
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await tearDownLink(link);
    for (const ip of [PUBLIC_A, PUBLIC_B, PRIVATE])
      await host('ip', ['route', 'del', `${ip}/32`]).catch(() => undefined);
    await host('ip', ['link', 'del', UPLINK]).catch(() => undefined);
    for (const ns of [INET, MACHINE]) await host('ip', ['netns', 'delete', ns]).catch(() => undefined);
    // Nothing of this test is left: namespaces, links, the table.
    assert.ok(!(await host('ip', ['netns', 'list'])).stdout.includes(tag));
    assert.ok(!(await host('ip', ['-o', 'link', 'show'])).stdout.includes(tag));
    assert.ok(!(await host('nft', ['list', 'tables'])).stdout.includes(tag));
  });

  it('allow_all reaches public addresses, but not private ranges or the host', async () => {
    await applyEgress(link, policy({ mode: 'allow_all' }));
    assert.equal(await fetchFromMachine(PUBLIC_A), 200);
    assert.equal(await fetchFromMachine(PRIVATE), 0, 'a private range needs an explicit allow');
    assert.equal(
      await fetchFromMachine(link.hostAddr, 8099),
      0,
      "the host's own services are never reachable",
    );
  });

  it('deny_all, allow lists, deny lists and an explicit private allow, each on the next connection', async () => {
    await applyEgress(link, policy({ mode: 'deny_all' }));
    assert.equal(await fetchFromMachine(PUBLIC_A), 0);
    // The fail-closed fallback a failed tightening ends in.
    await applyEgress(link, policy({ mode: 'allow_all' }));
    await denyAll(link);
    assert.equal(await fetchFromMachine(PUBLIC_A), 0);
    await applyEgress(link, policy({ mode: 'custom', allow_cidrs: [`${PUBLIC_A}/32`] }));
    assert.equal(await fetchFromMachine(PUBLIC_A), 200);
    assert.equal(await fetchFromMachine(PUBLIC_B), 0);
    await applyEgress(link, policy({ mode: 'custom', deny_cidrs: [`${PUBLIC_B}/32`] }));
    assert.equal(await fetchFromMachine(PUBLIC_A), 200);
    assert.equal(await fetchFromMachine(PUBLIC_B), 0);
    // Deny wins over allow.
    await applyEgress(
      link,
      policy({ mode: 'custom', allow_cidrs: ['203.0.113.0/24'], deny_cidrs: [`${PUBLIC_A}/32`] }),
    );
    assert.equal(await fetchFromMachine(PUBLIC_A), 0);
    assert.equal(await fetchFromMachine(PUBLIC_B), 200);
    await applyEgress(link, policy({ mode: 'custom', allow_cidrs: ['10.254.77.0/24'] }));
    assert.equal(await fetchFromMachine(PRIVATE), 200, 'an allow rule may name a private range');
    assert.equal(await fetchFromMachine(link.hostAddr, 8099), 0);
  });

  it('legacy internet_access: false denies, and root in the machine cannot flush the rules', async () => {
    const legacy = parseNetworkFields({ internet_access: false, allow_out: [`${PUBLIC_A}/32`] });
    assert.ok(legacy?.egress.locked);
    await applyEgress(link, legacy.egress);
    assert.equal(await fetchFromMachine(PUBLIC_A), 0, 'no allow rule re-opens internet_access: false');
    // The rules live in the host's namespace: a flush in the machine's changes nothing.
    await host('ip', ['netns', 'exec', MACHINE, 'nft', 'flush', 'ruleset']);
    assert.equal(await fetchFromMachine(PUBLIC_A), 0);
    const legacyAllow = parseNetworkFields({ allow_out: [`${PUBLIC_B}/32`] });
    await applyEgress(link, legacyAllow?.egress as EgressSpec);
    assert.equal(await fetchFromMachine(PUBLIC_B), 200);
    assert.equal(await fetchFromMachine(PUBLIC_A), 0);
  });

  it('a rate limit drops what goes over it', async () => {
    await applyEgress(link, policy({ mode: 'allow_all', rate_limit: { kbit_per_sec: 80 } }));
    // Up to 2 MiB sent from the machine to a sink in the stand-in internet, for at most 3 s.
    const send = `import socket,sys\ns=socket.create_connection(('${PUBLIC_A}',9000),timeout=3)\ns.sendall(b'x'*2097152)`;
    await host('ip', ['netns', 'exec', MACHINE, 'timeout', '4', 'python3', '-c', send], {
      timeoutMs: 10_000,
    }).catch(
      () => undefined, // cut by the timeout: the limit is doing its job
    );
    const rules = (await host('nft', ['list', 'table', 'ip', link.table])).stdout;
    const limited = /limit rate over 10 kbytes\/second counter packets (\d+)/.exec(rules);
    assert.ok(limited, rules);
    assert.ok(Number(limited[1]) > 0, 'packets over the limit were dropped');
  });

  it('the edge refuses what the rules cannot express', () => {
    assert.equal(parseCidr('10.1.2.3/8', 'x'), '10.0.0.0/8');
    assert.throws(() => parseCidr('2001:db8::/32', 'x'), /IPv6 is not supported/);
    assert.throws(() => parseCidr('10.0.0.0/33', 'x'), /not an IPv4 address/);
    assert.throws(
      () =>
        parseNetworkFields({
          network: { egress: { mode: 'custom', rate_limit: { kbit_per_sec: 10, pps: 5 } } },
        }),
      (e: { details?: { field?: string } }) => e.details?.field === 'network.egress.rate_limit',
    );
    assert.throws(
      () => parseNetworkFields({ network: { egress: { mode: 'custom', allow_cidrs: ['nope'] } } }),
      (e: { details?: { field?: string } }) => e.details?.field === 'network.egress.allow_cidrs[0]',
    );
    assert.throws(
      () => parseNetworkFields({ network: { egress: { mode: 'allow_all' } }, internet_access: true }),
      (e: { details?: { field?: string } }) => e.details?.field === 'internet_access',
    );
  });
});
