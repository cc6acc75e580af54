/**
 * Machine lifecycle with real machines: pause, hibernate, resume (also across a server restart),
 * reusable snapshots, fork, timeouts with every action, and faults half-way through transitions.
 *
 * Every machine runs the same Python program: a counter held in memory, appended to a log file once
 * per step. "The counter continues and the file is intact" is checked by the log being exactly
 * 1, 2, ..., n with no restart and no gap, written by the very same process (same pid).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import type { MachineInfo, SnapshotInfo } from '@nullspace/protocol';
import { inventory } from '@nullspace/runtime';
import { Machine } from '@nullspace/sdk';
import { type TestServer, api, describeWithServer, eventually, runtimeDirsOf } from './harness.js';

const COUNTER = [
  'import os, time',
  'n = 0',
  'while True:',
  '    n += 1',
  '    with open("/workspace/count.log", "a") as f:',
  '        f.write(f"{n}\\n")',
  '    time.sleep(0.05)',
].join('\n');

async function startCounter(m: Machine): Promise<string> {
  const b64 = Buffer.from(COUNTER).toString('base64');
  const r = await m.commands.run(
    `echo ${b64} | base64 -d > /tmp/counter.py && (setsid python3 /tmp/counter.py >/dev/null 2>&1 </dev/null & echo $!)`,
  );
  const pid = r.stdout.trim();
  assert.match(pid, /^\d+$/);
  await eventually(async () => (await count(m)) >= 3, 'the counter to start');
  return pid;
}

/** The counter's log: must be 1..n exactly. Returns n. */
async function count(m: Machine): Promise<number> {
  const r = await m.commands.run('cat /workspace/count.log 2>/dev/null || true');
  const lines = r.stdout.split('\n').filter(Boolean);
  // The last line may be half-written while we read it.
  const whole = r.stdout.endsWith('\n') ? lines : lines.slice(0, -1);
  whole.forEach((l, i) => assert.equal(l, String(i + 1), `count.log line ${i + 1} is "${l}"`));
  return whole.length;
}

async function pidAlive(m: Machine, pid: string): Promise<boolean> {
  const r = await m.commands.run(`tr '\\0' ' ' < /proc/${pid}/cmdline`);
  return r.stdout.trim() === 'python3 /tmp/counter.py';
}

async function grows(m: Machine, from: number): Promise<number> {
  return eventually(async () => {
    const n = await count(m);
    return n > from ? n : undefined;
  }, `the counter of ${m.id} to pass ${from}`);
}

/** A machine's cgroup v1 file `<controller>/<file>` (the test server's cgroup parent: /nullspace). */
const cgroupFile = (id: string, f: string) => {
  const [controller, name] = f.split('/');
  return `/sys/fs/cgroup/${controller}/nullspace/${id}/${name}`;
};

const info = (s: TestServer, id: string) => api(s, 'GET', `/v1/machines/${id}`) as Promise<MachineInfo>;
const post = (s: TestServer, path: string, body?: unknown) => api(s, 'POST', path, body);

async function rejects(p: Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(p, (err: { status?: number; code?: string }) => {
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    return true;
  });
}

describeWithServer('lifecycle: pause, hibernate, resume', (ctx) => {
  it('pause freezes the machine in place; resume continues the same process', async () => {
    const s = ctx.server;
    const m = await Machine.create({ ...s.conn, timeout: 600 });
    const pid = await startCounter(m);
    const paused = (await post(s, `/v1/machines/${m.id}/pause`)) as MachineInfo;
    assert.equal(paused.status, 'paused');
    assert.match(String(paused.snapshot_id), /^snap_/);
    // Read-only info never wakes it; commands are refused with a clear state.
    assert.equal((await info(s, m.id)).status, 'paused');
    await rejects(m.commands.run('true'), 409, 'invalid_state');
    // Frozen: the log on the machine's disk does not move.
    const upperLog = join(s.dataDir, 'machines', m.id, 'disk', 'upper', 'workspace', 'count.log');
    const sizeA = execFileSync('stat', ['-c', '%s', upperLog]).toString();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(execFileSync('stat', ['-c', '%s', upperLog]).toString(), sizeA, 'nothing ran while paused');
    // Pausing again is a no-op.
    assert.equal(((await post(s, `/v1/machines/${m.id}/pause`)) as MachineInfo).status, 'paused');

    const resumed = (await post(s, `/v1/machines/${m.id}/connect`, { timeout: 900 })) as MachineInfo;
    assert.equal(resumed.status, 'running');
    assert.notEqual(resumed.execution_id, paused.execution_id, 'a resume is a new execution');
    assert.equal(resumed.timeout, 900, "the caller's timeout is re-applied");
    assert.ok(Date.parse(resumed.expires_at) > Date.now() + 800_000);
    const n = await count(m);
    assert.ok(await pidAlive(m, pid));
    await grows(m, n);
    await m.kill();
  });

  it('hibernate checkpoints to disk and releases the runtime; resume restores memory and files', async () => {
    const s = ctx.server;
    const m = await Machine.create({ ...s.conn, timeout: 600, envs: { KEEP: 'yes' }, metadata: { t: 'h' } });
    const pid = await startCounter(m);
    const before = await count(m);
    const h = (await post(s, `/v1/machines/${m.id}/hibernate`)) as MachineInfo;
    assert.equal(h.status, 'hibernated');
    // Processes and memory are released when it answers, the image on disk; its network
    // namespace, mounts and rules right after (the driver's release runs on after the answer).
    const runc = execFileSync('runc', ['--root', join(s.dataDir, 'runc'), 'list', '-q']).toString();
    assert.ok(!runc.includes(m.id));
    await eventually(async () => !existsSync(`/run/netns/ns-${m.id}`), 'its network namespace released');
    const snaps = (await api(s, 'GET', `/v1/snapshots?machine_id=${m.id}`)) as { items: SnapshotInfo[] };
    assert.equal(snaps.items[0]?.id, h.snapshot_id);
    assert.equal(snaps.items[0]?.kind, 'pause');
    assert.ok((snaps.items[0]?.size_bytes ?? 0) > 0);
    // A pause snapshot cannot be deleted from under its machine.
    await rejects(api(s, 'DELETE', `/v1/snapshots/${h.snapshot_id}`), 409, 'invalid_state');

    // Machine.resume(snapshotId) = connect: same id, new execution, envs and metadata kept.
    const r = (await post(s, `/v1/snapshots/${h.snapshot_id}/resume`, { timeout: 700 })) as MachineInfo;
    assert.equal(r.id, m.id);
    assert.equal(r.status, 'running');
    assert.notEqual(r.execution_id, h.execution_id);
    assert.equal(r.timeout, 700);
    assert.deepEqual(r.envs, ['KEEP']);
    assert.deepEqual(r.metadata, { t: 'h' });
    assert.ok(await pidAlive(m, pid), 'the same process runs after restore');
    const n = await count(m);
    assert.ok(n >= before);
    await grows(m, n);
    assert.equal((await m.commands.run('echo $KEEP')).stdout, 'yes\n');
    // The image was consumed: its disk space is reclaimed.
    assert.equal(existsSync(join(s.dataDir, 'snapshots', String(h.snapshot_id))), false);
    // Resuming a running machine is a no-op that returns it.
    assert.equal(
      ((await post(s, `/v1/machines/${m.id}/connect`)) as MachineInfo).execution_id,
      r.execution_id,
    );
    await m.kill();
  });

  it('a resume by CRIU directly restores mounts, cgroup limits, device rules, seccomp and runc state; runc checkpoints it again; a restarted server re-adopts it', async () => {
    const s = ctx.server;
    const m = await Machine.create({ ...s.conn, timeout: 600 });
    const pid = await startCounter(m);
    // The machine's cgroup files that hold its limits (runtime/runc/criu-restore.ts makes them
    // before CRIU, where runc did): those of this host's hierarchies.
    const files = [
      'memory/memory.limit_in_bytes',
      'memory/memory.memsw.limit_in_bytes',
      'cpu/cpu.cfs_quota_us',
      'cpu/cpu.cfs_period_us',
      'cpu/cpu.shares',
      'pids/pids.max',
      'devices/devices.list',
      'cpuset/cpuset.cpus',
      'cpuset/cpuset.mems',
    ].filter((f) => existsSync(`/sys/fs/cgroup/${f.split('/')[0]}/nullspace/${m.id}`));
    // devices.list is a set of rules, listed in the order they were written: compared sorted.
    const limits = () =>
      Object.fromEntries(
        files.map((f) => [f, readFileSync(cgroupFile(m.id, f), 'utf8').split('\n').sort().join('\n')]),
      );
    const runcState = () =>
      JSON.parse(execFileSync('runc', ['--root', join(s.dataDir, 'runc'), 'state', m.id]).toString()) as {
        pid: number;
        status: string;
      };
    const initStatus = (initPid: number) => readFileSync(`/proc/${initPid}/status`, 'utf8');
    const field = (status: string, name: string) => status.match(new RegExp(`^${name}:\\s*(.*)$`, 'm'))?.[1];
    // Its mounts (mount point, type, options) and the masked paths as runc made them.
    const mounts = async () =>
      (
        await m.commands.run(
          "awk '{print $5, $6, $9}' /proc/self/mountinfo | sort; wc -c < /proc/kcore; ls -A /proc/acpi /sys/firmware | wc -l",
        )
      ).stdout;
    const mountsBefore = await mounts();
    const before = limits();
    const initBefore = initStatus(runcState().pid);
    assert.ok(files.includes('devices/devices.list'), 'a cgroup v1 devices hierarchy on this host');
    for (let round = 1; round <= 2; round++) {
      const n = await count(m);
      assert.equal(((await post(s, `/v1/machines/${m.id}/hibernate`)) as MachineInfo).status, 'hibernated');
      assert.equal(((await post(s, `/v1/machines/${m.id}/connect`)) as MachineInfo).status, 'running');
      // Restored by CRIU itself: it wrote the init's pid into its work dir, and runc's state names it.
      const direct = Number(
        readFileSync(join(s.dataDir, 'machines', m.id, 'criu-restore', 'init.pid'), 'utf8'),
      );
      const state = runcState();
      assert.equal(state.status, 'running', `round ${round}: runc state`);
      assert.equal(state.pid, direct, `round ${round}: runc's state names the init CRIU restored`);
      assert.deepEqual(limits(), before, `round ${round}: the cgroup limits and device rules`);
      assert.equal(await mounts(), mountsBefore, `round ${round}: the mounts and masked paths`);
      // And its processes are in those cgroups, in every hierarchy (/proc/PID/cgroup: id:controllers:path).
      for (const line of readFileSync(`/proc/${state.pid}/cgroup`, 'utf8').trim().split('\n'))
        assert.equal(line.split(':').slice(2).join(':'), `/nullspace/${m.id}`, `round ${round}: ${line}`);
      const init = initStatus(state.pid);
      for (const name of ['Seccomp', 'NoNewPrivs', 'CapBnd', 'CapEff', 'Uid', 'Gid'])
        assert.equal(field(init, name), field(initBefore, name), `round ${round}: the init's ${name}`);
      assert.equal(field(init, 'Seccomp'), '2', 'its seccomp filter is back');
      assert.ok(await pidAlive(m, pid), `round ${round}: the same counter process`);
      await grows(m, n);
    }
    // A server killed and started again re-adopts it from runc's state, and a kill ends it whole.
    await s.stop('SIGKILL');
    await s.restart();
    assert.equal((await info(s, m.id)).status, 'running');
    const again = await Machine.connect(m.id, s.conn);
    assert.ok(await pidAlive(again, pid), 'the same counter process after the restart');
    assert.equal((await again.kill()).status, 'killed');
    await eventually(
      async () => (await inventory(runtimeDirsOf(s.dataDir), { machineId: m.id })).length === 0,
      'nothing of it left',
    );
  });

  it('a paused machine hibernates and resumes; a hibernated machine survives a server restart', async () => {
    const s = ctx.server;
    const m = await Machine.create({ ...s.conn, timeout: 600 });
    const pid = await startCounter(m);
    await post(s, `/v1/machines/${m.id}/pause`);
    assert.equal(((await post(s, `/v1/machines/${m.id}/hibernate`)) as MachineInfo).status, 'hibernated');
    await s.stop('SIGKILL');
    await s.restart();
    assert.equal((await info(s, m.id)).status, 'hibernated', 'a restart never wakes it');
    const again = await Machine.connect(m.id, s.conn);
    assert.equal((await again.getInfo()).status, 'running');
    assert.ok(await pidAlive(again, pid));
    await grows(again, await count(again));
    await again.kill();
  });

  it('kill works from paused and hibernated, and leaves no snapshot behind', async () => {
    const s = ctx.server;
    const a = await Machine.create(s.conn);
    const b = await Machine.create(s.conn);
    await post(s, `/v1/machines/${a.id}/pause`);
    const hb = (await post(s, `/v1/machines/${b.id}/hibernate`)) as MachineInfo;
    assert.equal((await a.kill()).status, 'killed');
    assert.equal((await b.kill()).status, 'killed');
    // Gone for the API at once; its files with the teardown, after the kill answered.
    await rejects(api(s, 'GET', `/v1/snapshots/${hb.snapshot_id}`), 404, 'snapshot_not_found');
    await eventually(
      async () => !existsSync(join(s.dataDir, 'snapshots', String(hb.snapshot_id))),
      'the hibernation image to be removed',
    );
  });
});

describeWithServer('lifecycle: snapshots and fork', (ctx) => {
  it('machines from a snapshot start from its state and diverge; the source keeps running', async () => {
    const s = ctx.server;
    const src = await Machine.create({ ...s.conn, timeout: 600 });
    const pid = await startCounter(src);
    const snap = (await post(s, `/v1/machines/${src.id}/snapshots`)) as SnapshotInfo;
    assert.equal(snap.kind, 'reusable');
    assert.match(snap.id, /^snap_/);
    assert.ok(typeof snap.paused_ms === 'number' && snap.paused_ms >= 0);
    assert.equal((await info(s, src.id)).status, 'running');
    const srcNow = await count(src);
    await grows(src, srcNow);

    const copies: Machine[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await Machine.create({ ...s.conn, snapshotId: snap.id } as Parameters<
        typeof Machine.create
      >[0]);
      copies.push(c);
    }
    for (const c of copies) {
      assert.notEqual(c.id, src.id);
      assert.ok(await pidAlive(c, pid), 'the snapshot’s process runs in the copy');
      // count() checks 1..n: the memory counter continued from the value on the snapshot's disk.
      await grows(c, await count(c));
      const hostname = (await c.commands.run('hostname')).stdout.trim();
      assert.equal(hostname, c.id.replace('_', '-'), 'each copy has its own host name');
      assert.equal((await c.commands.run('echo $NULLSPACE_MACHINE_ID')).stdout.trim(), c.id);
    }
    // Independent: a file one copy writes is not in another, nor in the source.
    await copies[0]?.commands.run('echo mine > /workspace/only-here');
    for (const other of [copies[1], copies[2], src])
      assert.equal((await other?.commands.run('test -e /workspace/only-here; echo $?'))?.stdout, '1\n');
    // Killing one copy leaves the others and the source counting.
    await copies[0]?.kill();
    for (const m of [copies[1], copies[2], src]) if (m) await grows(m, await count(m));

    const listed = (await api(s, 'GET', '/v1/snapshots?kind=reusable')) as { items: SnapshotInfo[] };
    assert.ok(listed.items.some((x) => x.id === snap.id));
    await api(s, 'DELETE', `/v1/snapshots/${snap.id}`);
    assert.equal(existsSync(join(s.dataDir, 'snapshots', snap.id)), false, 'disk reclaimed');
    await rejects(api(s, 'DELETE', `/v1/snapshots/${snap.id}`), 404, 'snapshot_not_found');
    await rejects(post(s, '/v1/machines', { snapshot_id: snap.id }), 404, 'snapshot_not_found');
    for (const m of [...copies.slice(1), src]) await m.kill();
  });

  it('fork(count=3): children and parent diverge; a killed child does not touch the others', async () => {
    const s = ctx.server;
    const parent = await Machine.create({ ...s.conn, timeout: 600 });
    const pid = await startCounter(parent);
    const res = (await post(s, `/v1/machines/${parent.id}/fork`, { count: 3 })) as {
      children: (MachineInfo | { error: { code: string } })[];
    };
    assert.equal(res.children.length, 3);
    const children: Machine[] = [];
    for (const c of res.children) {
      assert.ok('id' in c, `child failed: ${JSON.stringify(c)}`);
      assert.equal(c.status, 'running');
      children.push(await Machine.connect(c.id, s.conn));
    }
    assert.equal(new Set(children.map((c) => c.id)).size, 3);
    assert.equal((await info(s, parent.id)).status, 'running');
    for (const c of children) {
      // Restored by CRIU itself from the parent's runc state under the child's id: runc's state
      // of the child names the init CRIU restored; the child has its own host name.
      const state = JSON.parse(
        execFileSync('runc', ['--root', join(s.dataDir, 'runc'), 'state', c.id]).toString(),
      ) as { pid: number; status: string };
      const direct = Number(
        readFileSync(join(s.dataDir, 'machines', c.id, 'criu-restore', 'init.pid'), 'utf8'),
      );
      assert.equal(state.pid, direct);
      assert.equal(state.status, 'running');
      assert.equal((await c.commands.run('hostname')).stdout, `${c.id.replace('_', '-')}\n`);
      assert.ok(await pidAlive(c, pid));
      await grows(c, await count(c));
    }
    await children[1]?.kill();
    for (const m of [children[0], children[2], parent]) if (m) await grows(m, await count(m));
    await rejects(post(s, `/v1/machines/${parent.id}/fork`, { count: 0 }), 400, 'invalid_argument');
    await rejects(post(s, `/v1/machines/${parent.id}/fork`, { count: 99 }), 400, 'invalid_argument');
    for (const m of [children[0], children[2], parent]) await m?.kill();
  });
});

describeWithServer('lifecycle: timeouts', (ctx) => {
  it('on_timeout pause and hibernate; auto_resume wakes the machine for a command', async () => {
    const s = ctx.server;
    const p = (await post(s, '/v1/machines', { timeout: 2, on_timeout: 'pause' })) as MachineInfo;
    const h = (await post(s, '/v1/machines', {
      timeout: 2,
      on_timeout: 'hibernate',
      auto_resume: true,
    })) as MachineInfo;
    await eventually(async () => (await info(s, p.id)).status === 'paused', 'the pause timeout');
    await eventually(async () => (await info(s, h.id)).status === 'hibernated', 'the hibernate timeout');
    assert.match(String((await info(s, p.id)).status_reason), /timeout/);
    // Without auto_resume a command is refused and the machine stays paused; connect wakes it.
    await rejects(
      post(s, `/v1/machines/${p.id}/commands`, { cmd: 'echo', args: ['no'] }),
      409,
      'invalid_state',
    );
    assert.equal((await info(s, p.id)).status, 'paused');
    const pm = await Machine.connect(p.id, s.conn);
    assert.equal((await pm.commands.run('echo awake')).stdout, 'awake\n');
    await pm.kill();
    // With auto_resume, the hibernated machine resumes for the command.
    const hm = new URL(`/v1/machines/${h.id}/commands`, s.url);
    const res = await fetch(hm, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ cmd: 'echo', args: ['woke'] }),
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { stdout: string }).stdout, 'woke\n');
    assert.equal((await info(s, h.id)).status, 'running');
    await Machine.killById(h.id, s.conn);
  });

  it('set_timeout moves the deadline and validates auto_resume', async () => {
    const s = ctx.server;
    const m = await Machine.create({ ...s.conn, timeout: 600 });
    await rejects(
      post(s, `/v1/machines/${m.id}/timeout`, { timeout: 60, auto_resume: true }),
      400,
      'invalid_argument',
    );
    await rejects(
      post(s, `/v1/machines/${m.id}/timeout`, { timeout: 60, on_timeout: 'kill', auto_resume: true }),
      400,
      'invalid_argument',
    );
    await rejects(post(s, `/v1/machines/${m.id}/timeout`, {}), 400, 'invalid_argument');
    await rejects(
      post(s, '/v1/machines', { on_timeout: 'kill', auto_resume: true }),
      400,
      'invalid_argument',
    );
    const t = (await post(s, `/v1/machines/${m.id}/timeout`, {
      timeout: 1,
      on_timeout: 'hibernate',
      auto_resume: true,
    })) as MachineInfo;
    assert.equal(t.on_timeout, 'hibernate');
    assert.equal(t.auto_resume, true);
    await eventually(async () => (await info(s, m.id)).status === 'hibernated', 'the new deadline');
    const r = (await post(s, `/v1/machines/${m.id}/connect`, { timeout: 1234 })) as MachineInfo;
    assert.equal(r.timeout, 1234);
    assert.ok(Date.parse(r.expires_at) > Date.now() + 1_100_000);
    await m.kill();
  });
});

describeWithServer(
  'lifecycle: a paused machine spills to hibernate',
  (ctx) => {
    it('is hibernated by the server after NULLSPACE_PAUSE_SPILL_AFTER', async () => {
      const s = ctx.server;
      const m = await Machine.create({ ...s.conn, timeout: 600 });
      const pid = await startCounter(m);
      await post(s, `/v1/machines/${m.id}/pause`);
      await eventually(async () => (await info(s, m.id)).status === 'hibernated', 'the spill');
      assert.match(String((await info(s, m.id)).status_reason), /paused longer than 2s/);
      await post(s, `/v1/machines/${m.id}/connect`);
      assert.ok(await pidAlive(m, pid));
      await grows(m, await count(m));
      await m.kill();
    });
  },
  { NULLSPACE_PAUSE_SPILL_AFTER: '2' },
);

describeWithServer(
  'lifecycle faults: the checkpoint is killed half-way',
  (ctx) => {
    it('a checkpoint killed at its deadline leaves the machine running, with nothing left behind', async () => {
      const s = ctx.server;
      const m = await Machine.create({ ...s.conn, timeout: 600 });
      const pid = await startCounter(m);
      // Killed mid-dump, the machine runs on; killed in the instant after CRIU finished, it is
      // hibernated. Either way it is whole.
      const outcome = await post(s, `/v1/machines/${m.id}/hibernate`).then(
        (r) => (r as MachineInfo).status,
        (err: { code?: string }) => err.code,
      );
      const i = await info(s, m.id);
      assert.deepEqual(
        readdirSync(join(s.dataDir, 'snapshots')).filter((n) => n.endsWith('.partial')),
        [],
      );
      // CRIU killed at the deadline is CRIU's failure: its own code, never `internal`.
      if (outcome === 'checkpoint_failed' && i.status === 'failed') {
        // Killed in the middle of curing the processes, the machine may no longer answer: it is
        // failed with the reason, and kill must still clean everything (teardown checks).
        assert.match(String(i.status_reason), /hibernate failed/);
        assert.equal((await m.kill()).status, 'killed');
        return;
      }
      if (outcome === 'checkpoint_failed') {
        assert.equal(i.status, 'running');
        assert.match(String(i.status_reason), /hibernate failed/);
      } else {
        assert.equal(outcome, 'hibernated');
        assert.equal(i.status, 'hibernated');
        // The resume has the same short deadline: its restore may be killed too. Then the machine
        // stays hibernated, and kill must clean what the killed CRIU left (teardown checks).
        const resumed = await post(s, `/v1/machines/${m.id}/connect`).then(
          () => true,
          (err: { code?: string }) => {
            assert.equal(err.code, 'restore_failed');
            return false;
          },
        );
        if (!resumed) {
          assert.equal((await info(s, m.id)).status, 'hibernated');
          assert.equal((await m.kill()).status, 'killed');
          return;
        }
      }
      assert.ok(await pidAlive(m, pid));
      await grows(m, await count(m));
      assert.deepEqual(readdirSync(join(s.dataDir, 'snapshots')), [], 'no partial image left');
      assert.equal((await m.kill()).status, 'killed');
    });
  },
  // Long enough for a freeze, far too short for a CRIU dump: the dump is killed mid-way.
  { NULLSPACE_TRANSITION_TIMEOUT_MS: '120' },
);

// A `criu` in front of the real one that holds a restore for 5 s before it runs: a restore is
// faster than any deadline worth setting on a quiet host (120 ms was met), so the test makes sure
// that the deadline falls while runc's CRIU runs. Checkpoints and everything else pass through.
const slowRestoreDir = process.getuid?.() === 0 ? mkdtempSync('/tmp/nst-slow-criu-') : '/nonexistent';
if (process.getuid?.() === 0) {
  const real = execFileSync('sh', ['-c', 'command -v criu'], { encoding: 'utf8' }).trim();
  writeFileSync(
    join(slowRestoreDir, 'criu'),
    // A restore: \`criu restore …\` (a resume, runtime/runc/criu-restore.ts) or runc's (its parent).
    `#!/bin/sh
if [ "$1" = restore ] || tr '\\0' ' ' < /proc/$PPID/cmdline | grep -q ' restore '; then sleep 5; fi
exec '${real}' "$@"
`,
  );
  chmodSync(join(slowRestoreDir, 'criu'), 0o755);
}
after(() => rmSync(slowRestoreDir, { recursive: true, force: true }));

describeWithServer('lifecycle faults: the restore is killed half-way', (ctx) => {
  it('a resume killed at its deadline leaves the machine hibernated and whole: the next resume works', async () => {
    const s = ctx.server;
    const m = await Machine.create({ ...s.conn, timeout: 600 });
    await m.commands.run('echo kept > /workspace/data');
    await post(s, `/v1/machines/${m.id}/hibernate`);
    // A deadline the restore cannot meet (its CRIU held 5 s): CRIU is killed half-way.
    await s.stop();
    await s.restart({
      NULLSPACE_TRANSITION_TIMEOUT_MS: '1000',
      PATH: `${slowRestoreDir}:${process.env.PATH ?? ''}`,
    });
    await rejects(post(s, `/v1/machines/${m.id}/connect`), 500, 'restore_failed');
    assert.equal((await info(s, m.id)).status, 'hibernated');
    // With the usual deadline it resumes, its disk intact (a killed restore once left runc's
    // criu-root mounted, and runc's cleanup deleted the machine's files through it).
    await s.stop();
    await s.restart();
    assert.equal(((await post(s, `/v1/machines/${m.id}/connect`)) as MachineInfo).status, 'running');
    const again = await Machine.connect(m.id, s.conn);
    assert.equal((await again.commands.run('cat /workspace/data')).stdout, 'kept\n');
    assert.equal((await again.commands.run('test -x /usr/bin/python3')).exitCode, 0);
    assert.equal((await again.kill()).status, 'killed');
  });
});

// A snapshots directory on a 2 MiB tmpfs: every checkpoint runs out of space.
const fullDir = process.getuid?.() === 0 ? mkdtempSync('/tmp/nst-full-') : '/nonexistent';
if (process.getuid?.() === 0) execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', fullDir]);
after(() => {
  if (process.getuid?.() !== 0) return;
  execFileSync('umount', [fullDir]);
  rmSync(fullDir, { recursive: true, force: true });
});

describeWithServer(
  'lifecycle faults: the disk fills up during hibernate',
  (ctx) => {
    it('answers disk_full and keeps the machine running; no partial files stay', async () => {
      const s = ctx.server;
      const m = await Machine.create({ ...s.conn, timeout: 600 });
      const pid = await startCounter(m);
      await rejects(post(s, `/v1/machines/${m.id}/hibernate`), 507, 'disk_full');
      assert.equal((await info(s, m.id)).status, 'running');
      await rejects(post(s, `/v1/machines/${m.id}/snapshots`), 507, 'disk_full');
      assert.equal((await info(s, m.id)).status, 'running');
      assert.ok(await pidAlive(m, pid));
      await grows(m, await count(m));
      assert.deepEqual(readdirSync(fullDir), []);
      assert.equal((await m.kill()).status, 'killed');
    });
  },
  { NULLSPACE_SNAPSHOTS_DIR: fullDir },
);

// A snapshots directory with room for an idle machine's memory image, not for a 64 MiB disk copy.
const smallDir = process.getuid?.() === 0 ? mkdtempSync('/tmp/nst-small-') : '/nonexistent';
if (process.getuid?.() === 0) execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', smallDir]);
after(() => {
  if (process.getuid?.() !== 0) return;
  execFileSync('umount', [smallDir]);
  rmSync(smallDir, { recursive: true, force: true });
});

describeWithServer(
  "lifecycle faults: a snapshot's disk copy does not fit",
  (ctx) => {
    it('answers disk_full; the machine was thawed and runs on; no partial files stay', async () => {
      const s = ctx.server;
      const m = await Machine.create({ ...s.conn, timeout: 600 });
      // Random bytes: a sparse copy cannot make holes of them. The memory image fits; this does not.
      await m.commands.run('head -c 64M /dev/urandom > /root/big && sync');
      const pid = await startCounter(m);
      // The copy fails at CRIU's post-dump, after the machine was frozen for the dump.
      await rejects(post(s, `/v1/machines/${m.id}/snapshots`), 507, 'disk_full');
      assert.equal((await info(s, m.id)).status, 'running');
      assert.ok(await pidAlive(m, pid));
      await grows(m, await count(m));
      assert.deepEqual(readdirSync(smallDir), []);
      assert.equal((await m.kill()).status, 'killed');
    });
  },
  { NULLSPACE_SNAPSHOTS_DIR: smallDir },
);

describeWithServer('lifecycle faults: the server crashes during a transition', (ctx) => {
  it('a crash mid-hibernate leaves a machine that connect resumes with its memory', async () => {
    const s = ctx.server;
    const m = await Machine.create({ ...s.conn, timeout: 600 });
    const pid = await startCounter(m);
    const pending = post(s, `/v1/machines/${m.id}/hibernate`).catch(() => undefined);
    await eventually(async () => (await info(s, m.id)).status === 'hibernating', 'hibernating', 500, 2);
    await s.stop('SIGKILL');
    await pending;
    await s.restart();
    const settled = (await info(s, m.id)).status;
    assert.ok(settled === 'running' || settled === 'hibernated', `settled as ${settled}`);
    const again = await Machine.connect(m.id, s.conn);
    assert.equal((await again.getInfo()).status, 'running');
    assert.ok(await pidAlive(again, pid));
    await grows(again, await count(again));
    assert.equal((await again.kill()).status, 'killed');
  });
});
