/**
 * The lifecycle commands of the `nullspace` CLI against a real server and real machines: pause,
 * hibernate and resume, reusable snapshots (`machine snapshot`, `snapshot list|get|delete`,
 * `machine create --snapshot`), fork, and `machine timeout`. Each test checks what the command
 * prints, its exit status, and that the machine really is in the state it claims (a command run in
 * it, a file written before the transition still there after).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { type TestServer, cli, describeWithServer } from './harness.js';

interface WireInfo {
  id: string;
  execution_id: string;
  status: string;
  snapshot_id: string | null;
  timeout: number;
  on_timeout: string;
  auto_resume: boolean;
}

interface WireSnapshot {
  id: string;
  kind: string;
  machine_id: string;
  paused_ms: number | null;
}

/** Runs the CLI and asserts it succeeded; returns its stdout. */
async function ok(server: TestServer, args: string[]): Promise<string> {
  const r = await cli(server, args);
  assert.equal(r.code, 0, `nullspace ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function createMachine(server: TestServer, ...flags: string[]): Promise<string> {
  const id = (await ok(server, ['machine', 'create', '-q', ...flags])).trim();
  assert.match(id, /^mch_[a-z2-7]{20}$/);
  return id;
}

async function info(server: TestServer, id: string): Promise<WireInfo> {
  return JSON.parse(await ok(server, ['machine', 'get', id, '--json'])) as WireInfo;
}

describeWithServer('cli lifecycle', (ctx) => {
  it('pause, get shows paused, resume by machine id, exec works and files written before are there', async () => {
    const id = await createMachine(ctx.server);
    await ok(ctx.server, ['machine', 'exec', id, '--', 'echo before > /tmp/mark']);
    const before = await info(ctx.server, id);

    const paused = await ok(ctx.server, ['machine', 'pause', id]);
    assert.match(paused, new RegExp(`^${id} paused \\(snapshot snap_[a-z2-7]{20}\\)\\n$`));
    const get = await ok(ctx.server, ['machine', 'get', id]);
    assert.match(get, /^status\s+paused$/m);
    assert.match(get, /^snapshot_id\s+snap_/m);

    // A paused machine (without auto_resume) refuses commands with the error code.
    const refused = await cli(ctx.server, ['machine', 'exec', id, '--', 'true']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: invalid_state: /);

    const resumed = await ok(ctx.server, ['machine', 'resume', id, '--timeout', '120']);
    assert.match(resumed, /^status\s+running$/m);
    assert.match(resumed, /^timeout\s+120s$/m);
    const after = await info(ctx.server, id);
    assert.equal(after.status, 'running');
    assert.notEqual(after.execution_id, before.execution_id);

    const exec = await cli(ctx.server, ['machine', 'exec', id, '--', 'cat /tmp/mark']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'before\n');
  });

  it('hibernates, then resumes by its pause snapshot id', async () => {
    const id = await createMachine(ctx.server);
    await ok(ctx.server, ['machine', 'exec', id, '--', 'echo kept > /tmp/mark']);
    const hibernated = JSON.parse(await ok(ctx.server, ['machine', 'hibernate', id, '--json'])) as WireInfo;
    assert.equal(hibernated.status, 'hibernated');
    assert.match(hibernated.snapshot_id ?? '', /^snap_/);

    const listed = JSON.parse(
      await ok(ctx.server, ['snapshot', 'list', '--machine', id, '--kind', 'pause', '--json']),
    ) as { items: WireSnapshot[] };
    assert.deepEqual(
      listed.items.map((s) => s.id),
      [hibernated.snapshot_id],
    );

    const resumed = JSON.parse(
      await ok(ctx.server, ['machine', 'resume', hibernated.snapshot_id ?? '', '--json']),
    ) as WireInfo;
    assert.equal(resumed.id, id);
    assert.equal(resumed.status, 'running');
    assert.equal(await ok(ctx.server, ['machine', 'exec', id, '--', 'cat /tmp/mark']), 'kept\n');

    const bad = await cli(ctx.server, ['machine', 'resume', 'not-an-id']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error: expected a machine id \(mch_\.\.\.\) or a snapshot id \(snap_\.\.\.\)/);
  });

  it('snapshots a machine, lists it, creates a machine from it, and deletes it', async () => {
    const source = await createMachine(ctx.server);
    await ok(ctx.server, ['machine', 'exec', source, '--', 'echo from-source > /workspace/state']);

    const snapId = (await ok(ctx.server, ['machine', 'snapshot', source, '-q'])).trim();
    assert.match(snapId, /^snap_[a-z2-7]{20}$/);
    // The source keeps running.
    assert.equal((await info(ctx.server, source)).status, 'running');

    const table = await ok(ctx.server, ['snapshot', 'list']);
    const [header, ...rows] = table.trim().split('\n');
    assert.match(header ?? '', /^ID\s+KIND\s+MACHINE\s+TEMPLATE\s+SIZE\s+CREATED$/);
    assert.ok(
      rows.some((row) => new RegExp(`^${snapId}\\s+reusable\\s+${source}\\s+base\\s`).test(row)),
      table,
    );
    const quiet = await ok(ctx.server, ['snapshot', 'list', '--kind', 'reusable', '--machine', source, '-q']);
    assert.equal(quiet, `${snapId}\n`);

    const got = JSON.parse(await ok(ctx.server, ['snapshot', 'get', snapId, '--json'])) as WireSnapshot;
    assert.equal(got.id, snapId);
    assert.equal(got.kind, 'reusable');
    assert.equal(got.machine_id, source);
    assert.equal(typeof got.paused_ms, 'number');

    const copy = await createMachine(ctx.server, '--snapshot', snapId);
    assert.notEqual(copy, source);
    const copyInfo = await info(ctx.server, copy);
    assert.equal(copyInfo.status, 'running');
    assert.equal(
      await ok(ctx.server, ['machine', 'exec', copy, '--', 'cat /workspace/state']),
      'from-source\n',
    );

    assert.equal(await ok(ctx.server, ['snapshot', 'delete', snapId]), `${snapId} deleted\n`);
    const gone = await cli(ctx.server, ['snapshot', 'get', snapId]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^error: snapshot_not_found: /);
    const again = await cli(ctx.server, ['snapshot', 'delete', snapId]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error: snapshot_not_found: /);
  });

  it('forks a machine into two children, one id per line, each with the parent state', async () => {
    const parent = await createMachine(ctx.server);
    await ok(ctx.server, ['machine', 'exec', parent, '--', 'echo parent-state > /workspace/state']);

    const forked = await ok(ctx.server, ['machine', 'fork', parent, '--count', '2']);
    const ids = forked.trim().split('\n');
    assert.equal(ids.length, 2, forked);
    for (const id of ids) {
      assert.match(id, /^mch_[a-z2-7]{20}$/);
      assert.notEqual(id, parent);
      assert.equal(
        await ok(ctx.server, ['machine', 'exec', id, '--', 'cat /workspace/state']),
        'parent-state\n',
      );
    }
    assert.notEqual(ids[0], ids[1]);
    assert.equal((await info(ctx.server, parent)).status, 'running');
  });

  it('sets a timeout, and refuses --auto-resume with --on-timeout kill', async () => {
    const id = await createMachine(ctx.server);

    const refused = await cli(ctx.server, [
      'machine',
      'timeout',
      id,
      '600',
      '--on-timeout',
      'kill',
      '--auto-resume',
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: invalid_argument: auto_resume/);
    assert.equal(refused.stdout, '');

    const set = await ok(ctx.server, [
      'machine',
      'timeout',
      id,
      '900',
      '--on-timeout',
      'pause',
      '--auto-resume',
    ]);
    assert.match(set, /^timeout\s+900s$/m);
    assert.match(set, /^on_timeout\s+pause$/m);
    assert.match(set, /^auto_resume\s+true$/m);
    const after = await info(ctx.server, id);
    assert.equal(after.timeout, 900);
    assert.equal(after.on_timeout, 'pause');
    assert.equal(after.auto_resume, true);

    // With auto_resume a command wakes the paused machine.
    await ok(ctx.server, ['machine', 'pause', id]);
    assert.equal(await ok(ctx.server, ['machine', 'exec', id, '--', 'echo awake']), 'awake\n');

    const usage = await cli(ctx.server, ['machine', 'timeout', id, 'soon']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^error: SECONDS: expected a whole number of seconds/);
  });
});

// Room for the parent and one child only: the second child of a fork fails on its own.
describeWithServer(
  'cli fork with a failing child',
  (ctx) => {
    it('prints the child that started, the error of the one that did not, and exits 1', async () => {
      const parent = await createMachine(ctx.server);
      const r = await cli(ctx.server, ['machine', 'fork', parent, '--count', '2']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stdout, /^mch_[a-z2-7]{20}\n$/);
      assert.match(r.stderr, /^error: child 2 of 2: resource_exhausted: /);
      const child = r.stdout.trim();
      assert.equal(await ok(ctx.server, ['machine', 'exec', child, '--', 'echo child']), 'child\n');

      // --json keeps the API's shape: one entry per child, info or {error}.
      await ok(ctx.server, ['machine', 'kill', child]);
      const json = await cli(ctx.server, ['machine', 'fork', parent, '--count', '2', '--json']);
      assert.equal(json.code, 1);
      const { children } = JSON.parse(json.stdout) as {
        children: ({ id: string; status: string } | { error: { code: string; message: string } })[];
      };
      const [first, second, ...more] = children;
      assert.equal(more.length, 0, json.stdout);
      assert.ok(first && 'id' in first && first.status === 'running', json.stdout);
      assert.ok(second && 'error' in second && second.error.code === 'resource_exhausted', json.stdout);
    });
  },
  { NULLSPACE_MAX_MACHINES: '2' },
);
