/**
 * A checkpoint or restore that CRIU refuses answers with its own code — `checkpoint_failed` or
 * `restore_failed`, with CRIU's (or runc's) reason in `details.reason` — never `internal`, and the
 * machine is as it was: running with its processes alive after a failed hibernate, snapshot or
 * fork; hibernated with its image kept after a failed resume, so the next resume brings it back.
 *
 * The server runs with a `criu` on its PATH that fails when it is, or the runc above it is, doing
 * what the test's switch file names (`checkpoint` or `restore`), and otherwise runs the real CRIU.
 * A resume runs `criu restore` itself (runtime/runc/criu-restore.ts); forks go through `runc restore`.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { host, inventory } from '@nullspace/runtime';
import { CheckpointFailedError, Machine, RestoreFailedError } from '@nullspace/sdk';
import { describeWithServer, eventually, runtimeDirsOf } from './harness.js';

const realCriu = (await host('sh', ['-c', 'command -v criu']).catch(() => ({ stdout: '' }))).stdout.trim();
const wrapperDir = mkdtempSync('/tmp/nst-criu-');
const switchFile = join(wrapperDir, 'fail');
writeFileSync(switchFile, '');
const real = realCriu || '/usr/local/sbin/criu';
writeFileSync(
  join(wrapperDir, 'criu'),
  `#!/bin/bash
# Fails what the switch file names when it is asked to do that (\`criu restore …\`, a resume) or runc
# (this script's parent) is doing that (\`runc restore\`: CRIU's own arguments are \`swrk 3\`); else the real
# CRIU. \`kill-restore SECONDS\`: a restore's CRIU runs, and is SIGKILLed that long after it started
# (by a killer that holds none of its descriptors and is not its child: CRIU counts its children);
# \`kill-restore forked\`: as soon as CRIU has forked the machine's first process (a point every
# restore passes, however fast the host: one quiet host finished restores before a 5 ms kill).
read -r mode delay < '${switchFile}'
doing() { local what=$1; shift; { tr '\\0' ' ' < /proc/$PPID/cmdline; echo " $* "; } | grep -q " $what "; }
if [ "$mode" = kill-restore ] && doing restore "$@"; then
  self=$$
  (
    (
      for fd in /proc/$BASHPID/fd/*; do n=\${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done
      if [ "$delay" = forked ]; then
        for _ in $(seq 1 20000); do [ -n "$(cat /proc/$self/task/*/children 2>/dev/null)" ] && break; done
      else
        sleep "$delay"
      fi
      case "$(tr '\\0' ' ' < /proc/$self/cmdline 2>/dev/null)" in '${real} '*) kill -9 $self ;; esac
    ) </dev/null >/dev/null 2>&1 &
  )
elif [ -n "$mode" ] && doing "$mode" "$@"; then
  echo "test: CRIU refuses to $mode" >&2
  exit 1
fi
exec '${real}' "$@"
`,
);
chmodSync(join(wrapperDir, 'criu'), 0o755);
const failNext = (mode: '' | 'checkpoint' | 'restore' | `kill-restore ${number | 'forked'}`) =>
  writeFileSync(switchFile, mode);

/** Starts a process that lives until killed; its pid. */
async function startSleeper(m: Machine): Promise<string> {
  const r = await m.commands.run('setsid sleep 100000 >/dev/null 2>&1 </dev/null & echo $!');
  const pid = r.stdout.trim();
  assert.match(pid, /^\d+$/);
  return pid;
}

async function alive(m: Machine, pid: string): Promise<boolean> {
  const r = await m.commands.run(`tr '\\0' ' ' < /proc/${pid}/cmdline || true`);
  return r.stdout.trim() === 'sleep 100000';
}

function isCoded(cls: typeof CheckpointFailedError, code: string) {
  return (err: unknown) => {
    assert.ok(err instanceof cls, `${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.status, 500);
    assert.match(String(err.details?.reason), /\S/, 'a reason');
    return true;
  };
}

describeWithServer(
  'CRIU failures answer checkpoint_failed / restore_failed and leave the machine as it was',
  (ctx) => {
    after(() => {
      rmSync(wrapperDir, { recursive: true, force: true });
    });

    it('a failed hibernate, snapshot and fork: checkpoint_failed, the machine runs on', async () => {
      const m = await Machine.create(ctx.server.conn);
      try {
        const pid = await startSleeper(m);
        failNext('checkpoint');
        await assert.rejects(m.hibernate(), isCoded(CheckpointFailedError, 'checkpoint_failed'));
        await assert.rejects(m.createSnapshot(), isCoded(CheckpointFailedError, 'checkpoint_failed'));
        await assert.rejects(m.fork({ count: 2 }), isCoded(CheckpointFailedError, 'checkpoint_failed'));
        failNext('');
        const info = await m.getInfo();
        assert.equal(info.status, 'running');
        assert.match(String(info.statusReason), /failed/);
        assert.ok(await alive(m, pid), 'the process lives on');
        // And the next checkpoint works.
        const snap = await m.createSnapshot();
        assert.ok(snap.id);
        assert.ok(await alive(m, pid));
      } finally {
        failNext('');
        await m.kill();
      }
    });

    it('fork children whose restore fails: restore_failed each, the parent runs on', async () => {
      const m = await Machine.create(ctx.server.conn);
      try {
        const pid = await startSleeper(m);
        failNext('restore');
        const children = await m.fork({ count: 2 });
        failNext('');
        assert.equal(children.length, 2);
        for (const c of children) {
          assert.ok(c.error, 'the child failed');
          isCoded(RestoreFailedError, 'restore_failed')(c.error);
        }
        assert.equal((await m.getInfo()).status, 'running');
        assert.ok(await alive(m, pid));
      } finally {
        failNext('');
        await m.kill();
      }
    });

    it('fork children whose CRIU is SIGKILLed mid-restore: the parent keeps its processes, pids and memory', async () => {
      // The children are restored with the parent's pids (in their own pid namespaces); tearing a
      // failed one down must never reach the parent's process of the same pid.
      const m = await Machine.create(ctx.server.conn);
      const dirs = runtimeDirsOf(ctx.server.dataDir);
      try {
        const counter = await m.commands.run(
          "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /root/count; sleep 0.05; done' >/dev/null 2>&1 </dev/null & echo $!",
        );
        const pid = counter.stdout.trim();
        assert.match(pid, /^\d+$/);
        const count = async () => Number((await m.commands.run('cat /root/count')).stdout.trim());
        let failedChildren = 0;
        // Once CRIU has forked the child's first process (always mid-restore), then from 5 ms (a
        // restore on a quiet host can be done in 50 ms) to 0.8 s (one under load).
        for (const delay of ['forked', 0.005, 0.02, 0.05, 0.15, 0.3, 0.8] as const) {
          const before = await count();
          failNext(`kill-restore ${delay}`);
          const children = await m.fork({ count: 2 });
          failNext('');
          const ids: string[] = [];
          for (const c of children) {
            if (c.error) {
              failedChildren++;
              // A restore CRIU did not finish is the restore's failure, in its own words.
              isCoded(RestoreFailedError, 'restore_failed')(c.error);
              const id = String(c.error.details?.machine_id);
              assert.match(id, /^mch_/);
              ids.push(id);
            } else if (c.machine) {
              // Killed too late: restored whole, with the parent's process at the same pid.
              assert.equal((await c.machine.commands.run(`tr '\\0' ' ' < /proc/${pid}/cmdline`)).exitCode, 0);
              ids.push(c.machine.id);
              await c.machine.kill();
            }
          }
          // The parent: running, the very same process (pid) with its count (memory) kept, counting.
          assert.equal((await m.getInfo()).status, 'running');
          const cmdline = await m.commands.run(`tr '\\0' ' ' < /proc/${pid}/cmdline`);
          assert.match(cmdline.stdout, /^sh -c i=0; while/, `after a kill ${delay} s into the restore`);
          const after = await count();
          assert.ok(after >= before, `count went back from ${before} to ${after}`);
          await eventually(async () => (await count()) > after, 'the counter to go on');
          // And the failed children hold nothing on the host.
          await eventually(async () => {
            for (const id of ids) if ((await inventory(dirs, { machineId: id })).length > 0) return false;
            return true;
          }, 'the children to be torn down');
        }
        assert.ok(failedChildren > 0, 'no restore was killed: the test did not test');
      } finally {
        failNext('');
        await m.kill();
      }
    });

    it('a resume whose CRIU is SIGKILLed mid-restore: restore_failed, still hibernated, nothing left; the next resume works', async () => {
      const m = await Machine.create(ctx.server.conn);
      const dirs = runtimeDirsOf(ctx.server.dataDir);
      try {
        const pid = await startSleeper(m);
        await m.hibernate();
        let killed = 0;
        for (const delay of ['forked', 0.02, 0.15] as const) {
          failNext(`kill-restore ${delay}`);
          const resumed = await Machine.connect(m.id, ctx.server.conn).then(
            () => true,
            (err: unknown) => isCoded(RestoreFailedError, 'restore_failed')(err) && false,
          );
          failNext('');
          if (resumed) {
            // Killed too late: restored whole; hibernated again for the next round.
            assert.ok(await alive(m, pid));
            await m.hibernate();
            continue;
          }
          killed++;
          assert.equal((await m.getInfo()).status, 'hibernated', `after a kill ${delay} into the restore`);
          // What the killed restore had made (processes, cgroups, runc state, mounts) is gone.
          await eventually(async () => {
            const left = await inventory(dirs, { machineId: m.id });
            return left.every((r) => r.kind === 'machine-dir');
          }, 'the killed restore to be cleaned up');
        }
        assert.ok(killed > 0, 'no resume was killed: the test did not test');
        const back = await Machine.connect(m.id, ctx.server.conn);
        assert.ok(await alive(back, pid), 'its process came back');
      } finally {
        failNext('');
        await m.kill();
      }
    });

    it('a resume whose restore fails: restore_failed, still hibernated; the next resume works', async () => {
      const m = await Machine.create(ctx.server.conn);
      try {
        const pid = await startSleeper(m);
        await m.hibernate();
        failNext('restore');
        await assert.rejects(
          Machine.connect(m.id, ctx.server.conn),
          isCoded(RestoreFailedError, 'restore_failed'),
        );
        failNext('');
        assert.equal((await m.getInfo()).status, 'hibernated');
        const back = await Machine.connect(m.id, ctx.server.conn);
        assert.ok(await alive(back, pid), 'its process came back');
      } finally {
        failNext('');
        await m.kill();
      }
    });
  },
  { PATH: `${wrapperDir}:${process.env.PATH ?? ''}` },
);
