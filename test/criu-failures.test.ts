/**
 * A checkpoint or restore that CRIU refuses answers with its own code — `checkpoint_failed` or
 * `restore_failed`, with CRIU's (or runc's) reason in `details.reason` — never `internal`, and the
 * machine is as it was: running with its processes alive after a failed hibernate, snapshot or
 * fork; hibernated with its image kept after a failed resume, so the next resume brings it back.
 *
 * The server runs with a `criu` on its PATH that fails when the runc above it is doing what the
 * test's switch file names (`checkpoint` or `restore`), and otherwise runs the real CRIU.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { host } from '@nullspace/runtime';
import { CheckpointFailedError, Machine, RestoreFailedError } from '@nullspace/sdk';
import { describeWithServer } from './harness.js';

const realCriu = (await host('sh', ['-c', 'command -v criu']).catch(() => ({ stdout: '' }))).stdout.trim();
const wrapperDir = mkdtempSync('/tmp/nst-criu-');
const switchFile = join(wrapperDir, 'fail');
writeFileSync(switchFile, '');
writeFileSync(
  join(wrapperDir, 'criu'),
  `#!/bin/sh
# Fails what the switch file names when runc (this script's parent) is doing that; else the real CRIU.
mode=$(cat '${switchFile}')
if [ -n "$mode" ] && tr '\\0' ' ' < /proc/$PPID/cmdline | grep -q " $mode "; then
  echo "test: CRIU refuses to $mode" >&2
  exit 1
fi
exec '${realCriu || '/usr/local/sbin/criu'}' "$@"
`,
);
chmodSync(join(wrapperDir, 'criu'), 0o755);
const failNext = (mode: '' | 'checkpoint' | 'restore') => writeFileSync(switchFile, mode);

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
