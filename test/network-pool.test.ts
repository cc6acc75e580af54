/**
 * Networks made ahead of creates (NULLSPACE_NETWORK_POOL; server PreparedNetworks, runtime
 * RuncDriver.prepareNetwork): a create takes one, its machine gets its id and address block, each
 * is taken once and another is made in its place; a fork child takes one too (a restore into a new
 * address); nothing of them is left after a stop, also one whose stdout is gone; after a crash the next server removes them; 0
 * turns them off.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import type { MachineInfo } from '@nullspace/protocol';
import { Machine } from '@nullspace/sdk';
import { api, describeWithServer, eventually, leftovers } from './harness.js';

/** RuncDriver's record of a network made ahead (runtime MACHINE_FILES.preparedNetwork). */
const PREPARED_FILE = 'network-prepared.json';

describeWithServer(
  'networks made ahead of creates',
  (ctx) => {
    const machinesDir = () => join(ctx.server.dataDir, 'machines');
    /** Ids whose network is made and not yet taken by a create. */
    const preparedIds = (): string[] =>
      existsSync(machinesDir())
        ? readdirSync(machinesDir()).filter((id) => existsSync(join(machinesDir(), id, PREPARED_FILE)))
        : [];
    /** Waits until the server keeps `n` networks made ahead; returns their ids. */
    const pooled = (n: number) =>
      eventually(async () => {
        const ids = preparedIds();
        return ids.length === n && ids;
      }, `${n} networks made ahead`);
    const info = async (id: string) => (await api(ctx.server, 'GET', `/v1/machines/${id}`)) as MachineInfo;

    it('a create takes one: its id and address, each once, another made in its place; a fork child too', async () => {
      const before = await pooled(2);
      // Three at once: two take the made ones, the third one being made (its create waits for it).
      const machines = await Promise.all(
        [0, 1, 2].map(() => Machine.create({ ...ctx.server.conn, timeout: 600 })),
      );
      const ids = machines.map((m) => m.id);
      assert.equal(new Set(ids).size, 3);
      for (const id of before) assert.ok(ids.includes(id), `network made ahead for ${id} was not taken`);
      const addresses: string[] = [];
      for (const m of machines) {
        const address = (await info(m.id)).network.address;
        assert.ok(address);
        addresses.push(address);
        const eth0 = (await m.commands.run('ip -o -4 addr show eth0')).stdout;
        assert.match(eth0, new RegExp(`inet ${address.replace(/\./g, '\\.')}/`), 'the address it was given');
        assert.equal((await m.commands.run('echo up')).stdout, 'up\n');
      }
      assert.equal(new Set(addresses).size, 3, 'no address handed out twice');
      const after = await pooled(2);
      for (const id of after) assert.ok(!ids.includes(id), 'a network taken is not made ahead again');
      // A fork child is restored into a new address: it takes one as well.
      const [parent] = machines;
      assert.ok(parent);
      const res = (await api(ctx.server, 'POST', `/v1/machines/${parent.id}/fork`, { count: 1 })) as {
        children: (MachineInfo | { error: { code: string } })[];
      };
      const child = res.children[0];
      assert.ok(child && 'id' in child, `fork failed: ${JSON.stringify(child)}`);
      assert.ok(after.includes(child.id), 'the fork child took a network made ahead');
      const forked = await Machine.connect(child.id, ctx.server.conn);
      const childAddress = (await info(child.id)).network.address;
      assert.ok(childAddress && !addresses.includes(childAddress));
      assert.equal((await forked.commands.run('echo forked')).stdout, 'forked\n');
      // The restore's nonlocal bind is off again once it settled.
      assert.equal((await forked.commands.run('cat /proc/sys/net/ipv4/ip_nonlocal_bind')).stdout, '0\n');
      for (const m of [...machines, forked]) await m.kill();
    });

    it('a stop leaves nothing of them; after a crash the next server removes them; 0 makes none', async () => {
      const s = ctx.server;
      const first = await pooled(2);
      assert.notDeepEqual(await leftovers(s.dataDir, first), [], 'the inventory sees them');
      await s.stop('SIGTERM');
      assert.deepEqual(await leftovers(s.dataDir, first), [], 'a stop removes them');
      for (const id of first) assert.ok(!existsSync(join(machinesDir(), id)));

      // Whoever started it went away (its stdout pipe closed): a SIGTERM still closes it cleanly.
      // Its next line of log met EPIPE and ended it before its close, leaving them as a crash does.
      await s.restart();
      const orphaned = await pooled(2);
      s.process.stdout?.destroy();
      await s.stop('SIGTERM');
      assert.equal(
        s.process.exitCode,
        0,
        `the server ended by ${s.process.signalCode ?? s.process.exitCode}`,
      );
      assert.deepEqual(await leftovers(s.dataDir, orphaned), [], 'a stop without its stdout removes them');

      await s.restart();
      const crashed = await pooled(2);
      await s.stop('SIGKILL');
      assert.notDeepEqual(await leftovers(s.dataDir, crashed), [], 'a crash leaves them');
      await s.restart();
      const next = await pooled(2);
      // (The inventory of the data directory lists the new server's too.)
      assert.deepEqual(
        await leftovers(s.dataDir, crashed, { onlyThese: true }),
        [],
        'the next server removed them',
      );
      for (const id of crashed) assert.ok(!next.includes(id));
      const m = await Machine.create(s.conn);
      assert.ok(next.includes(m.id));
      await m.kill();

      await s.stop('SIGTERM');
      await s.restart({ NULLSPACE_NETWORK_POOL: '0' });
      const cold = await Machine.create(s.conn);
      assert.equal((await cold.commands.run('echo cold')).stdout, 'cold\n');
      assert.deepEqual(preparedIds(), [], 'none made ahead');
      assert.deepEqual(readdirSync(machinesDir()), [cold.id]);
      await cold.kill();
    });
  },
  { NULLSPACE_NETWORK_POOL: '2' },
);
