/**
 * Regressions for ways a machine's root (or a local host user) could reach beyond the machine.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { Machine, type NullspaceError } from '@nullspace/sdk';
import { describeWithServer } from './harness.js';

describeWithServer('security', (ctx) => {
  it('never follows a symlink a machine puts where its agent socket was', async () => {
    // Not `await using`: the server restarts on another port, so kill through the current one.
    const a = await Machine.create(ctx.server.conn);
    const b = await Machine.create(ctx.server.conn);
    const hostPathOfB = join(ctx.server.dataDir, 'machines', b.id, 'run', 'agent.sock');
    const swap = await a.commands.run(
      `rm /.nullspace/run/agent.sock && ln -s ${hostPathOfB} /.nullspace/run/agent.sock`,
    );
    assert.equal(swap.exitCode, 0, swap.stderr);
    // The server keeps talking to the socket it verified...
    assert.equal((await a.commands.run('hostname')).stdout.trim(), a.id.replace('_', '-'));
    // ...and a fresh server, which must open the path again, refuses the symlink.
    await ctx.server.stop();
    await ctx.server.restart();
    const again = await Machine.connect(a.id, ctx.server.conn);
    await assert.rejects(again.commands.run('hostname'), (e: NullspaceError) => e.code === 'unavailable');
    assert.equal(
      (await Machine.connect(b.id, ctx.server.conn).then((m) => m.commands.run('hostname'))).stdout.trim(),
      b.id.replace('_', '-'),
    );
    await Machine.killById(a.id, ctx.server.conn);
    await Machine.killById(b.id, ctx.server.conn);
  });

  it('keeps machine envs out of the agent: NODE_OPTIONS reaches commands, not the agent', async () => {
    await using m = await Machine.create({
      ...ctx.server.conn,
      envs: { NODE_OPTIONS: '--require /nonexistent.js' },
    });
    const r = await m.commands.run(
      'echo "$NODE_OPTIONS"; tr "\\0" "\\n" < /proc/1/environ | grep -c NODE_OPTIONS || true',
    );
    assert.equal(r.stdout, '--require /nonexistent.js\n0\n');
  });

  it('keeps the data directory root-only and machine mounts nosuid,nodev', async () => {
    await using m = await Machine.create(ctx.server.conn);
    assert.equal(statSync(ctx.server.dataDir).mode & 0o777, 0o700);
    const machineDir = join(ctx.server.dataDir, 'machines', m.id);
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f[1]?.startsWith(machineDir));
    assert.equal(mounts.length, 2, 'the disk and the root overlay');
    for (const f of mounts) {
      const opts = (f[3] ?? '').split(',');
      assert.ok(opts.includes('nosuid') && opts.includes('nodev'), `${f[1]} is mounted ${f[3]}`);
    }
  });
});
