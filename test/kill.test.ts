/**
 * Kill works at once whatever runs inside a machine: the runtime ends the machine's init first (its
 * pid namespace, and every process in it, goes with it), and a frozen machine's processes die once
 * thawed. Checked through the real server over HTTP, with the runtime's inventory of the host; and
 * the runtime reports each step of a teardown on its diagnostics channel.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, it } from 'node:test';
import {
  DISPATCH_MAPS,
  HOST_TABLE,
  TEARDOWN_CHANNEL,
  TEARDOWN_STEPS,
  type TeardownStepTiming,
  describeResources,
  inventory,
  machineChains,
  tearDownMachine,
} from '@nullspace/runtime';
import { host } from '@nullspace/runtime';
import { Machine } from '@nullspace/sdk';
import { type TestServer, describeWithServer, eventually, runtimeDirsOf } from './harness.js';

/** DELETE /v1/machines/{id} once; its status, body and how long it took. */
async function deleteOnce(
  server: TestServer,
  id: string,
): Promise<{ status: number; body: string; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${server.url}/v1/machines/${id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${server.apiKey}` },
  });
  const body = await res.text();
  return { status: res.status, body, ms: performance.now() - t0 };
}

/** How many processes the inventory finds for the machine. */
async function processCount(server: TestServer, id: string): Promise<number> {
  const found = await inventory(runtimeDirsOf(server.dataDir), { machineId: id });
  return found.filter((r) => r.kind === 'process').length;
}

async function leftOnHost(server: TestServer, id: string): Promise<string[]> {
  return describeResources(await inventory(runtimeDirsOf(server.dataDir), { machineId: id }));
}

describeWithServer('kill', (ctx) => {
  it('kills a machine running a fork bomb at the first DELETE, and nothing of it is left', async () => {
    const m = await Machine.create(ctx.server.conn);
    await m.commands.run(':(){ :|:& };:', { background: true });
    const processes = await eventually(async () => {
      const n = await processCount(ctx.server, m.id);
      return n >= 2000 && n;
    }, 'the fork bomb to reach 2,000 processes');
    const r = await deleteOnce(ctx.server, m.id);
    console.log(
      `# DELETE of a machine running a fork bomb (${processes} processes): ${r.status} in ${r.ms.toFixed(0)} ms`,
    );
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as { status: string }).status, 'killed');
    assert.deepEqual(await leftOnHost(ctx.server, m.id), []);
  });

  it('kills a paused machine with hundreds of processes at the first DELETE, and nothing of it is left', async () => {
    const m = await Machine.create(ctx.server.conn);
    const started = await m.commands.run('for i in $(seq 300); do sleep 3600 & done; echo started', {
      timeoutMs: 60_000,
    });
    assert.equal(started.stdout.trim(), 'started', started.stderr);
    const processes = await processCount(ctx.server, m.id);
    assert.ok(processes > 300, `${processes} processes`);
    await m.pause();
    const r = await deleteOnce(ctx.server, m.id);
    console.log(
      `# DELETE of a paused machine (${processes} processes): ${r.status} in ${r.ms.toFixed(0)} ms`,
    );
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as { status: string }).status, 'killed');
    assert.deepEqual(await leftOnHost(ctx.server, m.id), []);
  });

  it('the inventory attributes a machine’s nftables chains and map entries to it, and after a kill finds none', async () => {
    const m = await Machine.create(ctx.server.conn);
    const nftOf = (found: Awaited<ReturnType<typeof inventory>>) =>
      found
        .filter((r) => r.owner === m.id && (r.kind === 'nft-chain' || r.kind === 'nft-entry'))
        .map((r) =>
          r.kind === 'nft-chain' ? `chain ${r.name}` : r.kind === 'nft-entry' ? `entry ${r.map}` : '',
        )
        .sort();
    const chains = Object.values(machineChains(m.id));
    // Host-wide (every server's machines, the whole ruleset read): its four chains and four entries.
    assert.deepEqual(
      nftOf(await inventory('host')),
      [
        ...chains.map((c) => `chain ${c}`),
        ...Object.values(DISPATCH_MAPS).map((map) => `entry ${map}`),
      ].sort(),
    );
    // One machine (what its teardown reads: one map): the egress map's entry.
    assert.deepEqual(nftOf(await inventory(runtimeDirsOf(ctx.server.dataDir), { machineId: m.id })), [
      `entry ${DISPATCH_MAPS.egress}`,
    ]);
    await m.kill();
    assert.deepEqual(nftOf(await inventory('host')), []);
  });

  it('reports every step of a teardown, in order, on the runtime diagnostics channel', async () => {
    const m = await Machine.create(ctx.server.conn);
    const steps: TeardownStepTiming[] = [];
    const onStep = (message: unknown) => {
      const timing = message as TeardownStepTiming;
      if (timing.machineId === m.id) steps.push(timing);
    };
    subscribe(TEARDOWN_CHANNEL, onStep);
    try {
      // The server's kill runs this in its own process; here it runs in the test's, where the
      // channel is subscribed to.
      await tearDownMachine(runtimeDirsOf(ctx.server.dataDir), m.id, { keepFiles: false });
    } finally {
      unsubscribe(TEARDOWN_CHANNEL, onStep);
    }
    console.log(`# teardown steps (ms): ${steps.map((s) => `${s.step} ${s.ms.toFixed(1)}`).join('; ')}`);
    assert.deepEqual(
      steps.map((s) => s.step),
      [...TEARDOWN_STEPS],
    );
    for (const s of steps) assert.ok(Number.isFinite(s.ms), `${s.step}: ${s.ms}`);
    assert.deepEqual(await leftOnHost(ctx.server, m.id), []);
    // The server's own kill then finds nothing left to tear down.
    const r = await deleteOnce(ctx.server, m.id);
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as { status: string }).status, 'killed');
  });
});

/**
 * An `nft` in front of the real one that fails every listing of the whole ruleset or of all tables,
 * as nft does on a busy host (a dump interrupted, or timed out behind other machines'
 * transactions); everything else (loading, deleting, listing one map) passes. Seen in CI: a
 * teardown that read such a failure as "nothing there" left a machine's table behind, and its rules
 * then applied to the next machine given the same link name. A teardown reads only the egress
 * dispatch map, and deletes chains by name.
 */
const failingListDir = mkdtempSync('/tmp/nst-nft-list-');
writeFileSync(
  join(failingListDir, 'nft'),
  `#!/bin/sh
case "$*" in *"list ruleset"*|*"list tables"*) echo "netlink: Error: Interrupted system call" >&2; exit 1;; esac
exec /usr/sbin/nft "$@"
`,
);
chmodSync(join(failingListDir, 'nft'), 0o755);

describeWithServer(
  'kill: a machine’s nftables rules go, whatever a listing of the host says',
  (ctx) => {
    after(() => rmSync(failingListDir, { recursive: true, force: true }));

    it('concurrent kills delete every machine’s chains and map entries even when listing the ruleset fails', async () => {
      const made = await Promise.all(Array.from({ length: 4 }, () => Machine.create(ctx.server.conn)));
      const hostTable = async () => (await host('/usr/sbin/nft', ['list', 'table', 'ip', HOST_TABLE])).stdout;
      const rulesOf = (table: string, id: string) =>
        Object.values(machineChains(id)).filter((c) => table.includes(c));
      for (const m of made) assert.equal(rulesOf(await hostTable(), m.id).length, 4, m.id);
      await Promise.all(made.map((m) => m.kill()));
      const table = await hostTable();
      assert.deepEqual(
        made.flatMap((m) => rulesOf(table, m.id)),
        [],
        'chains or map entries left behind',
      );
    });

    it('a host-wide inventory whose ruleset listing keeps failing fails: it is never read as "no rules"', async () => {
      const path = process.env.PATH;
      process.env.PATH = `${failingListDir}:${path ?? ''}`;
      try {
        await assert.rejects(inventory('host'), /Interrupted system call/);
      } finally {
        process.env.PATH = path;
      }
    });
  },
  { PATH: `${failingListDir}:${process.env.PATH ?? ''}` },
);
