/**
 * Regressions for ways a machine's root (or a local host user) could reach beyond the machine.
 */
import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readdirSync, statSync } from 'node:fs';
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

  it('keeps the data directory closed to others but for the way machines reach their own directory; machine mounts nosuid,nodev', async () => {
    await using m = await Machine.create(ctx.server.conn);
    // Machines run as unprivileged host ids that must pass through it: search, not read, for
    // others; everything else in it closed to them; each machine's directory its own root's only.
    assert.equal(statSync(ctx.server.dataDir).mode & 0o777, 0o701);
    for (const name of readdirSync(ctx.server.dataDir)) {
      const mode = lstatSync(join(ctx.server.dataDir, name)).mode & 0o777;
      if (name === 'machines') assert.equal(mode & 0o007, 0o001, name);
      else assert.equal(mode & 0o007, 0, `${name} is open to others (${mode.toString(8)})`);
    }
    const machineDir = join(ctx.server.dataDir, 'machines', m.id);
    const dir = statSync(machineDir);
    assert.equal(dir.mode & 0o777, 0o710);
    assert.equal(dir.uid, 0);
    assert.equal(dir.gid, Number(readFileSync(join(machineDir, 'id-range'), 'utf8').split(' ')[0]));
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f[1]?.startsWith(machineDir));
    const kinds = mounts.map((f) => (f[1] ?? '').slice(machineDir.length + 1).replace(/\/\d+$/, '/N'));
    // The disk and the root overlay: its idmapped template layer(s) and its sysfs leave the host's
    // mount table once the overlay is made and the machine runs (docs/ARCHITECTURE.md).
    assert.deepEqual([...new Set(kinds)].sort(), ['disk', 'rootfs']);
    for (const f of mounts) {
      const opts = (f[3] ?? '').split(',');
      assert.ok(opts.includes('nosuid') && opts.includes('nodev'), `${f[1]} is mounted ${f[3]}`);
    }
  });
});
