/**
 * Issue 5, connectivity and egress: real machines behind their own links, talking to a stand-in
 * internet this test builds (test/stand-in-internet.ts). Every policy is proven by connections from
 * inside a machine; nothing is sent anywhere but 127.0.0.0/8 and the namespaces made here.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import {
  DISPATCH_MAPS,
  HOST_TABLE,
  MACHINE_RESOLVER,
  host,
  hostIfOf,
  legacyTableOf,
  machineChains,
  parsePool,
} from '@nullspace/runtime';
import { Machine } from '@nullspace/sdk';
import { api, describeWithServer, eventually } from './harness.js';
import {
  HTTP_PORT,
  PRIVATE,
  PUBLIC_A,
  PUBLIC_B,
  RESOLVER,
  SINK_PORT,
  type StandInInternet,
  UPLINK_HOST,
  startStandInInternet,
} from './stand-in-internet.js';

/**
 * A fault for the fail-closed test: an `nft` in front of the real one that refuses any program
 * naming 192.0.2.66 (TEST-NET-1), as a broken or overloaded nftables would; everything else passes.
 */
const faultDir = mkdtempSync('/tmp/nst-fault-');
const FAULT_CIDR = '192.0.2.66/32';
writeFileSync(
  join(faultDir, 'nft'),
  `#!/bin/sh
input=$(mktemp); trap 'rm -f "$input"' EXIT
for a in "$@"; do [ -f "$a" ] && cat "$a" >> "$input"; done
[ "$*" = "-f -" ] && { cat > "$input.in"; cat "$input.in" >> "$input"; exec 0< "$input.in"; rm -f "$input.in"; }
if grep -q '192.0.2.66' "$input"; then echo "nft: injected fault" >&2; exit 1; fi
exec /usr/sbin/nft "$@"
`,
);
chmodSync(join(faultDir, 'nft'), 0o755);

/** Runs an nftables program on the host (with the real nft: the fault above is the server's). */
async function nftProgram(lines: readonly string[]): Promise<void> {
  await host('/usr/sbin/nft', ['-f', '-'], { input: `${lines.join('\n')}\n` });
}

/** The machine's chains in the host table as nft lists them; empty when it has none. */
async function machineRules(id: string): Promise<string> {
  const out: string[] = [];
  for (const c of Object.values(machineChains(id)))
    out.push(
      await host('/usr/sbin/nft', ['list', 'chain', 'ip', HOST_TABLE, c]).then(
        (r) => r.stdout,
        () => '',
      ),
    );
  return out.join('');
}

async function tableExists(name: string): Promise<boolean> {
  return host('/usr/sbin/nft', ['list', 'table', 'ip', name]).then(
    () => true,
    () => false,
  );
}

interface Egress {
  mode: string;
  allow_cidrs?: string[];
  deny_cidrs?: string[];
  rate_limit?: { kbit_per_sec?: number; pps?: number; burst?: number };
}

describeWithServer(
  'network: connectivity and egress policy (real machines, a stand-in internet)',
  (ctx) => {
    let inet: StandInInternet;
    before(async () => {
      inet = await startStandInInternet();
    });
    after(async () => {
      await inet?.teardown();
      rmSync(faultDir, { recursive: true, force: true });
    });

    /** An HTTP GET from inside the machine: the status, or `blocked` (dropped: no answer at all) or `refused`. */
    async function reach(m: Machine, ip: string, port = HTTP_PORT): Promise<string> {
      const r = await m.commands.run(
        `curl -s -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 3 http://${ip}:${port}/`,
        { timeoutMs: 10_000 },
      );
      if (r.exitCode === 28) return 'blocked';
      if (r.exitCode === 7) return 'refused';
      return r.stdout.trim();
    }

    const setNetwork = (m: Machine, body: unknown) =>
      api(ctx.server, 'PUT', `/v1/machines/${m.id}/network`, body) as Promise<{
        network: { egress: Egress; internet_access: boolean; address: string };
      }>;
    const create = (body: Record<string, unknown> = {}) =>
      api(ctx.server, 'POST', '/v1/machines', body).then((info) =>
        Machine.connect((info as { id: string }).id, ctx.server.conn),
      );

    it('a machine reaches the outside through NAT, but no private range, host service or other machine', async () => {
      await using m = await create();
      await using other = await create();
      const info = (await api(ctx.server, 'GET', `/v1/machines/${m.id}`)) as { network: { address: string } };
      const otherInfo = (await api(ctx.server, 'GET', `/v1/machines/${other.id}`)) as {
        network: { address: string };
      };
      assert.equal(
        (await m.commands.run(`curl -s -m 3 http://${PUBLIC_A}:${HTTP_PORT}/`)).stdout,
        `ok ${PUBLIC_A}`,
      );
      assert.equal(await reach(m, PRIVATE), 'blocked', 'private ranges need an explicit allow');
      // The host: its end of the link, its uplink address, its API port, a service on all addresses.
      const hostSide = info.network.address.replace(/\.\d+$/, (d) => `.${Number(d.slice(1)) - 1}`);
      const hostService = createServer((_req, res) => res.end('host service\n')).listen(0, '0.0.0.0');
      await new Promise((r) => hostService.once('listening', r));
      const hostPort = (hostService.address() as { port: number }).port;
      try {
        const apiPort = new URL(ctx.server.url).port;
        for (const [ip, port] of [
          [hostSide, hostPort],
          [UPLINK_HOST, hostPort],
          [hostSide, Number(apiPort)],
        ] as const)
          assert.equal(await reach(m, ip, port), 'blocked', `host ${ip}:${port}`);
        // Only a custom allow list that names a host address opens it.
        await setNetwork(m, { egress: { mode: 'custom', allow_cidrs: [hostSide] } });
        assert.equal(await reach(m, hostSide, hostPort), '200');
        assert.equal(
          await reach(m, hostSide, Number(apiPort)),
          'refused',
          'the API listens on 127.0.0.1 only',
        );
        await setNetwork(m, { egress: { mode: 'allow_all' } });
        assert.equal(await reach(m, hostSide, hostPort), 'blocked');
      } finally {
        hostService.close();
      }
      // Another machine, even with a service listening on all its addresses.
      await other.commands.run('python3 -m http.server 8000 >/dev/null 2>&1 &', { background: true });
      await other.commands.run(
        'for i in $(seq 50); do curl -s -o /dev/null localhost:8000 && break; sleep 0.1; done',
      );
      assert.equal(await reach(m, otherInfo.network.address, 8000), 'blocked');
      // Root in the machine cannot change its link, address or routes, nor open raw sockets.
      for (const cmd of [
        'ip link set eth0 down',
        'ip route del default',
        `ip addr add ${otherInfo.network.address}/29 dev eth0`,
        "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)'",
      ]) {
        const r = await m.commands.run(cmd);
        assert.notEqual(r.exitCode, 0, cmd);
        assert.match(r.stderr, /not permitted|RTNETLINK answers|PermissionError/i, cmd);
      }
      assert.equal(await reach(m, PUBLIC_A), '200', 'still connected, still ruled');
      // Even with the capability, flushing every rule of the machine's own namespace (done here from
      // the host, with the host's nft) leaves its policy in force: it lives in the host's namespace.
      await setNetwork(m, { egress: { mode: 'custom', allow_cidrs: [PUBLIC_A] } });
      await host('nsenter', [`--net=/run/netns/ns-${m.id}`, 'nft', 'flush', 'ruleset']);
      assert.equal(await reach(m, PUBLIC_A), '200');
      assert.equal(await reach(m, PUBLIC_B), 'blocked');
      assert.equal(await reach(m, PRIVATE), 'blocked');
    });

    it('deny_all, allow and deny lists (deny wins), private allows and each legacy field, live on the next connection', async () => {
      await using m = await create({ network: { egress: { mode: 'deny_all' } } });
      assert.equal(await reach(m, PUBLIC_A), 'blocked');
      const steps: [unknown, Record<string, string>][] = [
        [{ egress: { mode: 'allow_all' } }, { [PUBLIC_A]: '200', [PUBLIC_B]: '200', [PRIVATE]: 'blocked' }],
        [
          { egress: { mode: 'custom', allow_cidrs: [PUBLIC_A] } },
          { [PUBLIC_A]: '200', [PUBLIC_B]: 'blocked', [PRIVATE]: 'blocked' },
        ],
        [
          { egress: { mode: 'custom', deny_cidrs: [`${PUBLIC_B}/32`] } },
          { [PUBLIC_A]: '200', [PUBLIC_B]: 'blocked' },
        ],
        [
          { egress: { mode: 'custom', allow_cidrs: ['203.0.113.0/24'], deny_cidrs: [PUBLIC_A] } },
          { [PUBLIC_A]: 'blocked', [PUBLIC_B]: '200' },
        ],
        [
          { egress: { mode: 'custom', allow_cidrs: [PRIVATE.replace(/\.\d+$/, '.0/24')] } },
          { [PRIVATE]: '200', [PUBLIC_A]: 'blocked' },
        ],
        [{ allow_out: [PUBLIC_B] }, { [PUBLIC_B]: '200', [PUBLIC_A]: 'blocked' }],
        [{ deny_out: [PUBLIC_B] }, { [PUBLIC_A]: '200', [PUBLIC_B]: 'blocked' }],
        [{ internet_access: true }, { [PUBLIC_A]: '200', [PUBLIC_B]: '200' }],
        // No allow rule re-opens internet_access: false.
        [
          { internet_access: false, allow_out: [PUBLIC_A] },
          { [PUBLIC_A]: 'blocked', [PUBLIC_B]: 'blocked' },
        ],
      ];
      for (const [body, expect] of steps) {
        const info = await setNetwork(m, body);
        for (const [ip, want] of Object.entries(expect))
          assert.equal(await reach(m, ip), want, `${JSON.stringify(body)} → ${ip}`);
        if ('internet_access' in (body as object))
          assert.equal(info.network.internet_access, (body as { internet_access: boolean }).internet_access);
      }
      // Policies at create time, legacy fields included.
      await using legacy = await create({ internet_access: false, allow_out: [PUBLIC_A] });
      assert.equal(await reach(legacy, PUBLIC_A), 'blocked');
      await using allowOut = await create({ allow_out: [PUBLIC_A], deny_out: [PUBLIC_B] });
      assert.equal(await reach(allowOut, PUBLIC_A), '200');
      assert.equal(await reach(allowOut, PUBLIC_B), 'blocked');
    });

    it('resolves names through the host (its resolvers), unless the policy denies all', async () => {
      await using m = await create({ network: { egress: { mode: 'custom', allow_cidrs: [PUBLIC_A] } } });
      assert.equal(
        (await m.commands.run('cat /etc/resolv.conf')).stdout.split('\n')[0],
        `nameserver ${MACHINE_RESOLVER}`,
      );
      const a = await m.commands.run('getent hosts a.test');
      assert.equal(a.exitCode, 0, a.stderr);
      assert.match(a.stdout, new RegExp(`^${PUBLIC_A.replace(/\./g, '\\.')}\\s+a\\.test`));
      assert.equal(
        (await m.commands.run(`curl -s -m 3 http://a.test:${HTTP_PORT}/`)).stdout,
        `ok ${PUBLIC_A}`,
      );
      assert.equal((await m.commands.run('getent hosts nowhere.test')).exitCode, 2, 'NXDOMAIN');
      // The resolver is reached through the host: the policy does not need to allow it...
      assert.equal((await m.commands.run('getent hosts b.test')).exitCode, 0);
      // ...but deny-all refuses it, at once (no waiting out the resolver's timeout).
      await setNetwork(m, { egress: { mode: 'deny_all' } });
      const denied = await m.commands.run('getent hosts a.test');
      assert.equal(denied.exitCode, 2);
      await setNetwork(m, { internet_access: false });
      assert.equal((await m.commands.run('getent hosts a.test')).exitCode, 2);
    });

    it('a rate limit holds the machine to its rate (best effort), in kbit/s and in packets/s', async () => {
      await using m = await create({
        network: { egress: { mode: 'allow_all', rate_limit: { kbit_per_sec: 800 } } },
      });
      // For 3 s the machine sends as fast as it can to a sink in the stand-in internet.
      const send = (seconds: number) =>
        m.commands.run(
          `python3 -c "
import socket, time
s = socket.create_connection(('${PUBLIC_A}', ${SINK_PORT}), timeout=10)
s.settimeout(0.2); end = time.time() + ${seconds}; buf = b'x' * 65536
while time.time() < end:
    try: s.send(buf)
    except socket.timeout: pass
s.settimeout(10); s.shutdown(socket.SHUT_WR); s.recv(1); s.close()"`,
          { timeoutMs: 30_000 },
        );
      const received = async (before: number) => {
        for (let i = 0; i < 50; i++) {
          const counts = await inet.sinkCounts();
          if (counts.length > before) return counts[counts.length - 1] as number;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error('the sink saw no finished connection');
      };
      let seen = (await inet.sinkCounts()).length;
      assert.equal((await send(3)).exitCode, 0);
      const limited = await received(seen);
      // 800 kbit/s is 100 kB/s: 3 s give ~300 kB (+ burst and nft's overshoot); never megabytes.
      assert.ok(limited > 10_000 && limited < 1_500_000, `received ${limited} bytes at 800 kbit/s`);
      await setNetwork(m, { egress: { mode: 'allow_all', rate_limit: { pps: 50 } } });
      seen = (await inet.sinkCounts()).length;
      assert.equal((await send(3)).exitCode, 0);
      const pps = await received(seen);
      // 50 packets/s of at most 64 KiB each (TSO) in 3 s is at most ~10 MB; unlimited is gigabytes.
      assert.ok(pps < 12_000_000, `received ${pps} bytes at 50 pps`);
      await setNetwork(m, { egress: { mode: 'allow_all' } });
      seen = (await inet.sinkCounts()).length;
      assert.equal((await send(1)).exitCode, 0);
      const free = await received(seen);
      assert.ok(free > 5 * limited, `unlimited: ${free} bytes in 1 s, limited: ${limited} in 3 s`);
    });

    it('the policy holds after hibernate/resume and in a fork (which gets its own address)', async () => {
      await using m = await create({ network: { egress: { mode: 'custom', allow_cidrs: [PUBLIC_A] } } });
      // An open connection across the hibernate: it comes back closed (the program sees a reset),
      // since restoring it alive needs CAP_NET_ADMIN over the network namespace, which is the
      // host's, not the machine's user namespace's (docs/SECURITY.md, "User namespace").
      // The program reconnecting is what the resumed machine then does.
      await m.commands.run(
        `python3 -c "
import socket, time
s = socket.create_connection(('${PUBLIC_A}', ${SINK_PORT}))
while True:
    s.send(b'y' * 10); time.sleep(0.2)" >/dev/null 2>&1 &`,
        { background: true },
      );
      // Hibernated only once it is open: a hibernate faster than python's start caught it before its
      // connect, and the resumed program then opened it (seen as one connection still open).
      const established = async () =>
        (await m.commands.run(`cat /proc/net/tcp | awk '$4 == "01"' | grep -ci ':2328 '`)).stdout.trim();
      await eventually(async () => (await established()) === '1', 'the connection to the sink to open');
      const before = (
        (await api(ctx.server, 'GET', `/v1/machines/${m.id}`)) as { network: { address: string } }
      ).network.address;
      await m.hibernate();
      await Machine.connect(m.id, ctx.server.conn);
      const after = (
        (await api(ctx.server, 'GET', `/v1/machines/${m.id}`)) as { network: { address: string } }
      ).network.address;
      assert.equal(after, before, 'a resumed machine keeps its address');
      assert.equal(await reach(m, PUBLIC_A), '200');
      assert.equal(await reach(m, PUBLIC_B), 'blocked');
      assert.equal(await established(), '0', 'the connection to the sink came back closed');
      const [child] = await m.fork();
      if (!child || child.error) throw new Error(`fork failed: ${JSON.stringify(child)}`);
      await using fork = child.machine;
      const forkInfo = (await api(ctx.server, 'GET', `/v1/machines/${fork.id}`)) as {
        network: { address: string; egress: Egress };
      };
      assert.notEqual(forkInfo.network.address, before);
      assert.deepEqual(forkInfo.network.egress.allow_cidrs, [`${PUBLIC_A}/32`]);
      assert.equal(await reach(fork, PUBLIC_A), '200');
      assert.equal(await reach(fork, PUBLIC_B), 'blocked');
      assert.equal(await reach(m, PUBLIC_A), '200', 'the parent is unaffected');
    });

    it('from the host, the address of a killed machine is unreachable, not sent out by the default route', async () => {
      const m = await create();
      const { network } = (await api(ctx.server, 'GET', `/v1/machines/${m.id}`)) as {
        network: { address: string };
      };
      assert.match((await host('ip', ['route', 'get', network.address])).stdout, /dev nsv/);
      await m.kill();
      // The link goes with the teardown, after the kill answered.
      await eventually(
        () =>
          host('ip', ['route', 'get', network.address]).then(
            () => false,
            (err: Error) => /No route to host/.test(err.message),
          ),
        "the killed machine's link to go",
      );
    });

    it('a restarted server re-adopts machines with their links and policies', async () => {
      const info = (await api(ctx.server, 'POST', '/v1/machines', {
        network: { egress: { mode: 'custom', allow_cidrs: [PUBLIC_B] } },
      })) as { id: string };
      const rules = await machineRules(info.id);
      assert.match(rules, /accept/);
      await ctx.server.stop('SIGKILL');
      // What a crash between applying a policy and storing it would leave: its chains differ (here:
      // emptied, so the machine would reach everything).
      await nftProgram(Object.values(machineChains(info.id)).map((c) => `flush chain ip ${HOST_TABLE} ${c}`));
      await ctx.server.restart();
      const m = await Machine.connect(info.id, ctx.server.conn);
      assert.equal(await reach(m, PUBLIC_B), '200');
      assert.equal(await reach(m, PUBLIC_A), 'blocked');
      // The same rules; only the DNS forwarder's port is the new server's.
      const shape = (t: string) =>
        t
          .replace(/counter packets \d+ bytes \d+/g, 'counter')
          .replace(/dport \d+ accept/g, 'dport N accept')
          .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:N');
      assert.equal(shape(await machineRules(info.id)), shape(rules));
      assert.equal(
        (await m.commands.run('getent hosts b.test')).exitCode,
        0,
        'names resolve after the restart',
      );
      await m.kill();
    });

    it('a machine an older server made (its own table) is moved into the host table on re-adoption, and its table goes with a kill', async () => {
      const info = (await api(ctx.server, 'POST', '/v1/machines', {
        network: { egress: { mode: 'custom', allow_cidrs: [PUBLIC_B] } },
      })) as { id: string; network: { address: string } };
      const hostIf = (await readFile(join(ctx.server.dataDir, 'machines', info.id, 'link'), 'utf8')).trim();
      await ctx.server.stop('SIGKILL');
      // The older form: no chains or map entries in the host table, one table per machine (here one
      // that drops everything the machine sends, so its survival would show).
      const legacy = legacyTableOf(info.id);
      await nftProgram([
        ...Object.values(DISPATCH_MAPS).map(
          (map) => `delete element ip ${HOST_TABLE} ${map} { "${hostIf}" }`,
        ),
        ...Object.values(machineChains(info.id)).map((c) => `delete chain ip ${HOST_TABLE} ${c}`),
        `table ip ${legacy} {`,
        '  chain egress {',
        '    type filter hook forward priority filter; policy accept;',
        `    iifname "${hostIf}" counter drop`,
        '  }',
        '}',
      ]);
      await ctx.server.restart();
      const m = await Machine.connect(info.id, ctx.server.conn);
      assert.equal(await tableExists(legacy), false, 'the older table is gone');
      assert.equal(await reach(m, PUBLIC_B), '200');
      assert.equal(await reach(m, PUBLIC_A), 'blocked');
      assert.match(await machineRules(info.id), /accept/);
      // An older table met at kill (a machine killed before any re-adoption) goes with it.
      await nftProgram([`table ip ${legacy} {`, '}']);
      await m.kill();
      // Its rules go with the teardown, after the kill answered.
      await eventually(async () => !(await tableExists(legacy)), 'the older table to go');
      await eventually(async () => (await machineRules(info.id)) === '', 'its chains to go');
    });

    it('a tightening that cannot be applied leaves the machine denying, and says so', async () => {
      await using m = await create();
      assert.equal(await reach(m, PUBLIC_A), '200');
      await assert.rejects(
        setNetwork(m, { egress: { mode: 'custom', deny_cidrs: [FAULT_CIDR] } }),
        (e: { status?: number; message: string }) => e.status === 500 && /denies all egress/.test(e.message),
      );
      const info = (await api(ctx.server, 'GET', `/v1/machines/${m.id}`)) as {
        status: string;
        status_reason: string;
        network: { egress: Egress; internet_access: boolean };
      };
      assert.equal(info.status, 'running');
      assert.equal(info.network.egress.mode, 'deny_all');
      assert.equal(info.network.internet_access, false);
      assert.match(info.status_reason, /denies all egress/);
      assert.equal(await reach(m, PUBLIC_A), 'blocked');
      assert.equal(await reach(m, PUBLIC_B), 'blocked');
      // It survives a resume too, and a good policy applies again.
      await m.hibernate();
      await Machine.connect(m.id, ctx.server.conn);
      assert.equal(await reach(m, PUBLIC_A), 'blocked');
      await setNetwork(m, { egress: { mode: 'allow_all' } });
      assert.equal(await reach(m, PUBLIC_A), '200');
      const rules = (await host('nft', ['list', 'ruleset'])).stdout;
      assert.ok(!rules.includes('192.0.2.66'));
    });
  },
  { PATH: `${faultDir}:${process.env.PATH ?? ''}`, NULLSPACE_DNS_SERVERS: RESOLVER },
);

/** A pool of two blocks no other server on the host uses: the first create gets block 0. */
const LEFTOVER_POOL = '172.31.254.0/28';

describeWithServer(
  'network: a leftover’s rules never rule the next machine on its link',
  (ctx) => {
    it('a create whose link name a leftover’s map entries hold (no such interface) takes them over', async () => {
      const hostIf = hostIfOf(parsePool(LEFTOVER_POOL), 0);
      // What a machine whose teardown never finished leaves: its entries for the link, pointing at
      // its chains, which accept everything.
      const leftover = 'mch_leftoverleftoverleft';
      const chains = Object.values(machineChains(leftover));
      const maps = Object.values(DISPATCH_MAPS);
      await nftProgram([
        ...chains.flatMap((c) => [
          `add chain ip ${HOST_TABLE} ${c}`,
          `add rule ip ${HOST_TABLE} ${c} counter accept`,
        ]),
        ...maps.map((map, i) => `add element ip ${HOST_TABLE} ${map} { "${hostIf}" : jump ${chains[i]} }`),
      ]);
      try {
        const m = await Machine.create(ctx.server.conn);
        const { network } = (await api(ctx.server, 'GET', `/v1/machines/${m.id}`)) as {
          network: { address: string };
        };
        assert.equal(network.address, '172.31.254.2', 'the machine has block 0');
        const entries = (await host('/usr/sbin/nft', ['list', 'table', 'ip', HOST_TABLE])).stdout;
        for (const c of Object.values(machineChains(m.id)))
          assert.ok(entries.includes(`"${hostIf}" : jump ${c}`), c);
        assert.ok(!entries.includes(`jump ${chains[0]}`), 'no entry points at the leftover’s chains');
        // Its own rules rule it: the host's end of its link, like every host address, is closed.
        const r = await m.commands.run('curl -s -o /dev/null --connect-timeout 1 http://172.31.254.1:9/', {
          timeoutMs: 10_000,
        });
        assert.equal(r.exitCode, 28, 'dropped (timed out), not refused or answered');
        await m.kill();
      } finally {
        // The leftover's chains, no longer reached: what its own teardown would delete.
        await nftProgram(
          chains.flatMap((c) => [`add chain ip ${HOST_TABLE} ${c}`, `delete chain ip ${HOST_TABLE} ${c}`]),
        );
      }
    });
  },
  // The create itself sets its link up here (none made ahead, which would have taken block 0
  // before the leftover's entries are put there; a network made ahead runs the same set-up).
  { NULLSPACE_MACHINE_NETWORK: LEFTOVER_POOL, NULLSPACE_NETWORK_POOL: '0' },
);
