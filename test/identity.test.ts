/**
 * Every machine knows who it is and how its processes came to be there: /etc/machine-id is its
 * own (new in every fork child and machine made from a snapshot, kept across a resume), and
 * /etc/nullspace/identity.json says whether it booted or was restored, and from what. A memory
 * image copies what processes hold in memory (a PRNG's state): this file is how they learn it.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { IDENTITY_FILE, type MachineIdentity, machineUuidOf } from '@nullspace/runtime';
import { Machine } from '@nullspace/sdk';
import { api, describeWithServer } from './harness.js';

async function identityOf(m: Machine): Promise<{ file: MachineIdentity; machineId: string }> {
  const file = JSON.parse((await m.commands.run(`cat ${IDENTITY_FILE}`)).stdout) as MachineIdentity;
  const machineId = (await m.commands.run('cat /etc/machine-id')).stdout.trim();
  return { file, machineId };
}

describeWithServer('machine identity', (ctx) => {
  it('a booted machine has its own machine-id, and says it booted', async () => {
    await using a = await Machine.create(ctx.server.conn);
    await using b = await Machine.create(ctx.server.conn);
    const [ia, ib] = [await identityOf(a), await identityOf(b)];
    assert.match(ia.machineId, /^[0-9a-f]{32}$/);
    assert.notEqual(ia.machineId, ib.machineId);
    assert.equal(ia.file.machine_id, a.id);
    assert.equal(ia.file.machine_uuid, ia.machineId);
    assert.equal(ia.file.origin, 'create');
    assert.equal(ia.file.from, null);
    assert.equal((await a.commands.run(`stat -c %a /etc/machine-id ${IDENTITY_FILE}`)).stdout, '444\n444\n');
  });

  it('fork children get machine-ids of their own and learn they were forked, and from whom', async () => {
    await using parent = await Machine.create(ctx.server.conn);
    const children = (await parent.fork({ count: 2 })).map((c) => {
      if (c.error || !c.machine) throw c.error ?? new Error('no child');
      return c.machine;
    });
    try {
      const ids = await Promise.all(children.map((c) => identityOf(c)));
      const mine = await identityOf(parent);
      assert.equal(new Set([mine.machineId, ...ids.map((i) => i.machineId)]).size, 3);
      for (const [i, c] of children.entries()) {
        assert.equal(ids[i]!.file.machine_id, c.id);
        assert.equal(ids[i]!.machineId, machineUuidOf(c.id));
        assert.equal(ids[i]!.file.origin, 'fork');
        assert.equal(ids[i]!.file.from, parent.id);
      }
      assert.equal(mine.file.origin, 'create');
    } finally {
      await Promise.all(children.map((c) => c.kill()));
    }
  });

  it('a resumed machine keeps its machine-id and says it was resumed; one made from a snapshot says so', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const before = await identityOf(m);
    await m.hibernate();
    const again = await Machine.connect(m.id, ctx.server.conn);
    const after = await identityOf(again);
    assert.equal(after.machineId, before.machineId);
    assert.equal(after.file.origin, 'resume');
    assert.ok(Date.parse(after.file.at) >= Date.parse(before.file.at));
    const snap = await again.createSnapshot();
    await using copy = await Machine.create({ ...ctx.server.conn, snapshotId: snap.id });
    const c = await identityOf(copy);
    assert.notEqual(c.machineId, before.machineId);
    assert.equal(c.file.origin, 'snapshot');
    assert.equal(c.file.from, snap.id);
    await copy.kill();
    await api(ctx.server, 'DELETE', `/v1/snapshots/${snap.id}`);
  });
});
