/**
 * A server restart (graceful or a crash) re-adopts running machines: they keep their processes,
 * commands still run, and their timeouts still fire.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Machine } from '@nullspace/sdk';
import { api, describeWithServer, eventually, leftovers } from './harness.js';

describeWithServer('server restart', (ctx) => {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`re-adopts running machines after ${signal === 'SIGTERM' ? 'a graceful stop' : 'a crash'}`, async () => {
      const keeper = await Machine.create({ ...ctx.server.conn, timeout: 600 });
      const shortLived = await Machine.create({ ...ctx.server.conn, timeout: 8 });
      // A process started before the restart must be the very same process after it.
      const bg = await keeper.commands.run('setsid sleep 86400 >/dev/null 2>&1 & echo $!');
      const pid = bg.stdout.trim();
      assert.match(pid, /^\d+$/);
      const before = await keeper.commands.run(`tr '\\0' ' ' < /proc/${pid}/cmdline`);
      assert.equal(before.stdout.trim(), 'sleep 86400');

      await ctx.server.stop(signal);
      await ctx.server.restart();

      const again = await Machine.connect(keeper.id, ctx.server.conn);
      assert.equal((await again.getInfo()).status, 'running');
      const afterRestart = await again.commands.run(`tr '\\0' ' ' < /proc/${pid}/cmdline`);
      assert.equal(afterRestart.stdout, before.stdout, 'the same process is still running');
      assert.equal((await again.commands.run('echo alive')).stdout, 'alive\n');
      // The other machine's deadline was kept across the restart and still fires.
      await eventually(
        async () => (await Machine.getInfoById(shortLived.id, ctx.server.conn)).status === 'killed',
        'the re-adopted machine to time out',
      );
      await again.kill();
    });
  }

  it('a crash mid-snapshot leaves no half-made snapshot listed, and the machine runs on', async () => {
    const m = await Machine.create(ctx.server.conn);
    const s = ctx.server;
    const pending = api(s, 'POST', `/v1/machines/${m.id}/snapshots`).catch(() => undefined);
    // Killed while the snapshot is being taken: listed, its image not written yet.
    await eventually(
      async () =>
        ((await api(s, 'GET', '/v1/snapshots')) as { items: { size_bytes: number }[] }).items.some(
          (x) => x.size_bytes === 0,
        ),
      'the snapshot to be under way',
      500,
      2,
    );
    await s.stop('SIGKILL');
    await pending;
    await s.restart();
    const listed = (await api(s, 'GET', '/v1/snapshots')) as { items: { id: string; size_bytes: number }[] };
    // A whole one (the crash came after its image was written) is usable; none is half-made.
    assert.deepEqual(
      listed.items.filter((x) => x.size_bytes === 0),
      [],
    );
    for (const x of listed.items) await api(s, 'DELETE', `/v1/snapshots/${x.id}`);
    const again = await Machine.connect(m.id, s.conn);
    assert.equal((await again.commands.run('echo alive')).stdout, 'alive\n');
    await again.kill();
  });

  it('a crash mid-resume of a hibernated machine keeps it: hibernated or running, its memory and files whole', async () => {
    const s = ctx.server;
    const m = await Machine.create({ ...s.conn, timeout: 600 });
    const bg = await m.commands.run('setsid sleep 86400 >/dev/null 2>&1 & echo $!');
    const pid = bg.stdout.trim();
    await m.files.write('/root/kept', 'kept');
    await api(s, 'POST', `/v1/machines/${m.id}/hibernate`);
    for (const delayMs of [0, 20]) {
      const pending = api(s, 'POST', `/v1/machines/${m.id}/connect`, {}).catch(() => undefined);
      await new Promise((r) => setTimeout(r, delayMs));
      await s.stop('SIGKILL');
      await pending;
      await s.restart();
      const status = ((await api(s, 'GET', `/v1/machines/${m.id}`)) as { status: string }).status;
      assert.ok(status === 'hibernated' || status === 'running', `${delayMs} ms: ${status}`);
      const again = await Machine.connect(m.id, s.conn);
      assert.equal((await again.commands.run(`tr '\\0' ' ' < /proc/${pid}/cmdline`)).stdout, 'sleep 86400 ');
      assert.equal(await again.files.read('/root/kept'), 'kept');
      if (delayMs === 0) await api(s, 'POST', `/v1/machines/${m.id}/hibernate`);
    }
    await Machine.killById(m.id, s.conn);
  });

  it('marks a machine whose processes died while the server was down as failed, and kill cleans it', async () => {
    const m = await Machine.create(ctx.server.conn);
    await ctx.server.stop('SIGKILL');
    // Simulate the machine dying while nobody watched (e.g. the host's OOM killer).
    const { host } = await import('@nullspace/runtime');
    await host('runc', ['--root', `${ctx.server.dataDir}/runc`, 'kill', m.id, 'KILL']);
    await eventually(async () => {
      const { stdout } = await host('runc', ['--root', `${ctx.server.dataDir}/runc`, 'state', m.id]);
      return stdout.includes('"stopped"');
    }, 'the container to stop');
    await ctx.server.restart();
    const info = await Machine.getInfoById(m.id, ctx.server.conn);
    assert.equal(info.status, 'failed');
    assert.match(String(info.statusReason), /lost/);
    assert.equal((await Machine.killById(m.id, ctx.server.conn)).status, 'killed');
  });
});

/**
 * A server SIGKILLed in the middle of a create, at several points of it: after the restart each
 * machine is in a defined state (running, or failed with a reason), kill cleans it up, and the
 * host holds nothing of it.
 */
describeWithServer('server killed mid-create', (ctx) => {
  for (const delayMs of [0, 15, 40, 80, 150]) {
    it(`${delayMs} ms into a create: defined state after the restart, nothing left after kill`, async () => {
      const s = ctx.server;
      const states = 'state=starting&state=running&state=failed&state=killing&state=killed';
      const listed = async () =>
        (
          (await api(s, 'GET', `/v1/machines?limit=1000&${states}`)) as {
            items: { id: string; status: string; status_reason: string | null }[];
          }
        ).items;
      const before = new Set((await listed()).map((m) => m.id));
      const pending = fetch(`${s.url}/v1/machines`, {
        method: 'POST',
        headers: { authorization: `Bearer ${s.apiKey}`, 'content-type': 'application/json' },
        body: '{}',
      }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, delayMs));
      await s.stop('SIGKILL');
      await pending;
      await s.restart();
      const items = (await listed()).filter((m) => !before.has(m.id));
      assert.ok(items.length <= 1, JSON.stringify(items));
      for (const m of items) {
        assert.ok(['running', 'failed', 'killed'].includes(m.status), `${m.id}: ${m.status}`);
        if (m.status === 'failed') assert.ok(m.status_reason, `${m.id}: failed without a reason`);
        await api(s, 'DELETE', `/v1/machines/${m.id}`);
      }
      // The kill answers before its teardown is done: poll until the teardowns are through.
      let left: string[] = [];
      await eventually(async () => {
        left = await leftovers(
          s.dataDir,
          items.map((m) => m.id),
          { onlyThese: true },
        );
        return left.length === 0;
      }, 'the teardowns of the killed machines').catch(() => undefined);
      assert.deepEqual(left, []);
    });
  }
});
