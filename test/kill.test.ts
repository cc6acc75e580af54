/**
 * Kill works at once whatever runs inside a machine: the runtime ends the machine's init first (its
 * pid namespace, and every process in it, goes with it), and a frozen machine's processes die once
 * thawed. The kill answers then, `killed`; the rest of the teardown runs after it in the server's
 * queue, so "nothing is left" is checked once that queue is through (polled, never timed), and also
 * across a server stop (it drains the queue) and a server crash (the next start finishes it).
 * Checked through the real server over HTTP, with the runtime's inventory of the host; and the
 * runtime reports each step of a teardown on its diagnostics channel.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
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
import { Machine, Volume } from '@nullspace/sdk';
import { ROOT, type TestServer, describeWithServer, eventually, run, runtimeDirsOf } from './harness.js';

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

/** Waits until the inventory shows nothing of these machines (their teardowns are done). */
async function untilNothingLeft(server: TestServer, ids: readonly string[]): Promise<void> {
  let left: string[] = [];
  try {
    await eventually(
      async () => {
        left = (await Promise.all(ids.map((id) => leftOnHost(server, id)))).flat();
        return left.length === 0;
      },
      `nothing left of ${ids.join(', ')}`,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; still there: ${left.join('; ')}`);
  }
}

/** DELETE answered 200 with the machine `killed`, and GET says `killed` too. */
async function assertKilled(server: TestServer, id: string, r: { status: number; body: string }) {
  assert.equal(r.status, 200, r.body);
  assert.equal((JSON.parse(r.body) as { status: string }).status, 'killed');
  assert.equal((await Machine.getInfoById(id, server.conn)).status, 'killed');
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
    await assertKilled(ctx.server, m.id, r);
    await untilNothingLeft(ctx.server, [m.id]);
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
    await assertKilled(ctx.server, m.id, r);
    await untilNothingLeft(ctx.server, [m.id]);
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
    // The rules go with the teardown, after the kill answered.
    await untilNothingLeft(ctx.server, [m.id]);
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
      // The rules go with the teardowns, after the kills answered.
      await untilNothingLeft(
        ctx.server,
        made.map((m) => m.id),
      );
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

/** Polls (every 10 ms, bounded by count) until `fn` is true: to catch a transition in its middle. */
async function soon(fn: () => boolean | Promise<boolean>, what: string, tries = 3000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await fn()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** A machine with a process holding `mib` MiB of memory, so its checkpoints take a while. */
async function machineWithMemory(server: TestServer, mib: number): Promise<Machine> {
  const m = await Machine.create(server.conn);
  await m.commands.run(
    `python3 -c "import time; b = b'x' * (${mib} << 20); open('/tmp/held', 'w').write('1'); time.sleep(1e6)"`,
    { background: true },
  );
  await eventually(async () => {
    const r = await m.commands.run('cat /tmp/held 2>/dev/null');
    return r.stdout.trim() === '1';
  }, `the machine to hold ${mib} MiB`);
  return m;
}

const operationFile = (server: TestServer, id: string) =>
  join(server.dataDir, 'machines', id, 'operation.pid');

describeWithServer('kill: at once, whatever runs inside', (ctx) => {
  it('kills a machine whose process ignores SIGTERM, SIGINT and SIGHUP', async () => {
    const m = await Machine.create(ctx.server.conn);
    await m.commands.run(`bash -c "trap '' TERM INT HUP; echo \\$\\$ > /tmp/stubborn; while :; do :; done"`, {
      background: true,
    });
    const pid = await eventually<string>(async () => {
      const r = await m.commands.run('cat /tmp/stubborn 2>/dev/null');
      return r.stdout.trim() || undefined;
    }, 'the stubborn process to start');
    // It really ignores them: still there after each.
    const r = await m.commands.run(
      `kill -TERM ${pid}; kill -INT ${pid}; kill -HUP ${pid}; sleep 0.2; kill -0 ${pid} && echo alive`,
    );
    assert.equal(r.stdout.trim(), 'alive', r.stderr);
    const d = await deleteOnce(ctx.server, m.id);
    console.log(`# DELETE of a machine ignoring SIGTERM/SIGINT/SIGHUP: ${d.status} in ${d.ms.toFixed(0)} ms`);
    await assertKilled(ctx.server, m.id, d);
    await untilNothingLeft(ctx.server, [m.id]);
  });

  it('kills a machine holding as many threads as its pids limit allows (up to 10,000)', async () => {
    const built = mkdtempSync('/tmp/nst-threads-');
    try {
      const bin = join(built, 'many-threads');
      const cc = await run('gcc', [
        '-O2',
        '-static',
        '-pthread',
        '-o',
        bin,
        join(ROOT, 'test/fixtures/many-threads.c'),
      ]);
      assert.equal(cc.code, 0, cc.stderr);
      const m = await Machine.create(ctx.server.conn);
      await m.files.write('/tmp/many-threads', readFileSync(bin));
      await m.commands.run('chmod +x /tmp/many-threads && /tmp/many-threads 10000 /tmp/threads-started', {
        background: true,
      });
      // Read from the host: with its pids all taken by threads, the machine cannot start a `cat`.
      const startedFile = join(ctx.server.dataDir, 'machines', m.id, 'rootfs/tmp/threads-started');
      const started = await eventually(async () => {
        const text = await readFile(startedFile, 'utf8').catch(() => '');
        return Number(text.trim()) || undefined;
      }, 'the threads to start');
      // The machine's pids limit (4096) counts threads: 10,000 cannot all start in one machine.
      assert.ok(started >= 1000, `${started} threads started`);
      // A command cannot start then: the machine's state, answered as such (it was a 500).
      await assert.rejects(m.commands.run('true'), (err: { code?: string; status?: number }) => {
        assert.equal(err.code, 'resource_exhausted', String(err));
        assert.equal(err.status, 429);
        return true;
      });
      const d = await deleteOnce(ctx.server, m.id);
      console.log(
        `# DELETE of a machine with ${started} threads in one process: ${d.status} in ${d.ms.toFixed(0)} ms`,
      );
      await assertKilled(ctx.server, m.id, d);
      await untilNothingLeft(ctx.server, [m.id]);
    } finally {
      rmSync(built, { recursive: true, force: true });
    }
  });

  it('kills a machine mid-hibernate: the hibernate fails, the machine ends killed, nothing is left', async () => {
    const m = await machineWithMemory(ctx.server, 200);
    const hibernating = m.hibernate().then(
      (info) => ({ ok: true as const, status: info.status }),
      (err: unknown) => ({ ok: false as const, code: (err as { code?: string }).code }),
    );
    await soon(() => existsSync(operationFile(ctx.server, m.id)), 'the checkpoint to start');
    const d = await deleteOnce(ctx.server, m.id);
    const outcome = await hibernating;
    console.log(
      `# DELETE mid-hibernate: ${d.status} in ${d.ms.toFixed(0)} ms; the hibernate: ${JSON.stringify(outcome)}`,
    );
    await assertKilled(ctx.server, m.id, d);
    assert.ok(!outcome.ok || outcome.status === 'hibernated', JSON.stringify(outcome));
    await untilNothingLeft(ctx.server, [m.id]);
    assert.equal((await Machine.getInfoById(m.id, ctx.server.conn)).status, 'killed');
  });

  it('kills a machine mid-fork: the fork ends, the machine ends killed, nothing of it is left', async () => {
    const m = await machineWithMemory(ctx.server, 200);
    const forking = m.fork({ count: 1 }).then(
      (children) => ({ ok: true as const, children }),
      (err: unknown) => ({ ok: false as const, code: (err as { code?: string }).code }),
    );
    await soon(() => existsSync(operationFile(ctx.server, m.id)), 'the fork checkpoint to start');
    const d = await deleteOnce(ctx.server, m.id);
    const outcome = await forking;
    console.log(
      `# DELETE mid-fork: ${d.status} in ${d.ms.toFixed(0)} ms; the fork: ${outcome.ok ? `${outcome.children.length} children` : outcome.code}`,
    );
    await assertKilled(ctx.server, m.id, d);
    const children = outcome.ok ? outcome.children.flatMap((c) => (c.error ? [] : [c.machine.id])) : [];
    for (const c of children) await Machine.killById(c, ctx.server.conn);
    await untilNothingLeft(ctx.server, [m.id, ...children]);
  });

  it('answers 16 concurrent kills, each killed, and their teardowns leave nothing', async () => {
    const made = await Promise.all(Array.from({ length: 16 }, () => Machine.create(ctx.server.conn)));
    const answers = await Promise.all(made.map((m) => deleteOnce(ctx.server, m.id)));
    const ms = answers.map((a) => a.ms).sort((a, b) => a - b);
    console.log(`# 16 concurrent DELETEs: median ${ms[8]?.toFixed(0)} ms, slowest ${ms[15]?.toFixed(0)} ms`);
    for (const [i, a] of answers.entries()) await assertKilled(ctx.server, made[i]?.id ?? '', a);
    await untilNothingLeft(
      ctx.server,
      made.map((m) => m.id),
    );
    const metrics = await (
      await fetch(`${ctx.server.url}/metrics`, { headers: { authorization: `Bearer ${ctx.server.apiKey}` } })
    ).text();
    assert.match(metrics, /^nullspace_teardowns\{state="pending"\} 0$/m);
    assert.match(metrics, /^nullspace_teardowns\{state="failed"\} 0$/m);
    const done = Number(/^nullspace_teardowns_done_total (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(done >= 16, `${done} teardowns done`);
  });

  it('a teardown held up by a process in uninterruptible sleep (a frozen volume) is retried, visible, and finishes once it ends', async () => {
    const volume = await Volume.create('frozen', { ...ctx.server.conn, sizeMb: 300 });
    const m = await Machine.create({
      ...ctx.server.conn,
      volumes: [{ volume: volume.id, mountPath: '/data' }],
    });
    const mnt = join(ctx.server.dataDir, 'volumes', volume.id, 'mnt');
    await m.commands.run('echo before > /data/f');
    const frozen = await run('fsfreeze', ['--freeze', mnt]);
    assert.equal(frozen.code, 0, frozen.stderr);
    try {
      await m.commands.run('echo after > /data/f', { background: true });
      // The write waits for the thaw in uninterruptible sleep (state D): SIGKILL cannot end it.
      await eventually(async () => {
        const found = await inventory(runtimeDirsOf(ctx.server.dataDir), { machineId: m.id });
        for (const r of found)
          if (r.kind === 'process' && (await readStat(r.pid))?.state === 'D') return true;
        return false;
      }, 'a process of the machine in uninterruptible sleep');
      const d = await deleteOnce(ctx.server, m.id);
      console.log(`# DELETE of a machine with a process in D state: ${d.status} in ${d.ms.toFixed(0)} ms`);
      await assertKilled(ctx.server, m.id, d);
      // Its teardown cannot finish while the process is there: it fails, is counted, and retried.
      await eventually(
        async () => {
          const metrics = await (
            await fetch(`${ctx.server.url}/metrics`, {
              headers: { authorization: `Bearer ${ctx.server.apiKey}` },
            })
          ).text();
          return Number(/^nullspace_teardown_failures_total (\d+)$/m.exec(metrics)?.[1]) >= 1;
        },
        'the teardown to fail once',
        600,
      );
      assert.notDeepEqual(await leftOnHost(ctx.server, m.id), []);
    } finally {
      await run('fsfreeze', ['--unfreeze', mnt]);
    }
    await untilNothingLeft(ctx.server, [m.id]);
  });
});

/** Field 3 of /proc/PID/stat (the process state letter), if the process exists. */
async function readStat(pid: number): Promise<{ state: string } | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (!stat) return undefined;
  return { state: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '' };
}

describeWithServer('kill: a stopped or crashed server leaves nothing of what it killed', (ctx) => {
  it('a server stopped right after its kills answered has torn them down when it exits', async () => {
    const made = await Promise.all(Array.from({ length: 4 }, () => Machine.create(ctx.server.conn)));
    const answers = await Promise.all(made.map((m) => deleteOnce(ctx.server, m.id)));
    for (const a of answers) assert.equal(a.status, 200, a.body);
    await ctx.server.stop('SIGTERM');
    for (const m of made) assert.deepEqual(await leftOnHost(ctx.server, m.id), [], m.id);
    await ctx.server.restart();
    for (const m of made) assert.equal((await Machine.getInfoById(m.id, ctx.server.conn)).status, 'killed');
  });

  it('a server SIGKILLed right after its kills answered: the next start finishes their teardowns', async () => {
    const made = await Promise.all(Array.from({ length: 4 }, () => Machine.create(ctx.server.conn)));
    const answers = await Promise.all(made.map((m) => deleteOnce(ctx.server, m.id)));
    for (const a of answers) assert.equal(a.status, 200, a.body);
    await ctx.server.stop('SIGKILL');
    const leftAtCrash = (await Promise.all(made.map((m) => leftOnHost(ctx.server, m.id)))).flat();
    console.log(`# left on the host when the server was SIGKILLed: ${leftAtCrash.length} resources`);
    // Their processes were ended by the kills, whatever the teardowns had done: they go with no server.
    await eventually(async () => {
      const counts = await Promise.all(made.map((m) => processCount(ctx.server, m.id)));
      return counts.every((n) => n === 0);
    }, 'the killed machines to have no processes without a server');
    await ctx.server.restart();
    for (const m of made) assert.equal((await Machine.getInfoById(m.id, ctx.server.conn)).status, 'killed');
    await untilNothingLeft(
      ctx.server,
      made.map((m) => m.id),
    );
  });
});
