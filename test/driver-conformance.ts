/**
 * The conformance suite every machine driver must pass (see packages/runtime/src/driver.ts). A new
 * isolator registers itself in driver-conformance.test.ts; skips are listed there with a reason.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newId } from '@nullspace/protocol';
import { AgentClient, type MachineDriver, linkFor, parsePool } from '@nullspace/runtime';

export interface DriverFixture {
  driver: MachineDriver;
  templateRootfs: string;
  /** Names of host resources the driver left for `id` (mounts, namespaces, cgroups ...). */
  leftovers(id: string): Promise<string[]>;
  /** Kills every process of the machine from outside, as the host's OOM killer or a crash would. */
  crash(id: string): Promise<void>;
  cleanup(): Promise<void>;
}

export function driverConformance(name: string, make: () => Promise<DriverFixture>, skip?: string): void {
  describe(`driver conformance: ${name}`, { skip }, () => {
    let f: DriverFixture;
    // A pool of its own (a server's default pool may be in use on this host at the same time).
    const pool = parsePool('10.214.0.0/16');
    let nextBlock = 0;
    const spec = (id: string) => ({
      id,
      templateRootfs: f.templateRootfs,
      vcpus: 1,
      memoryMb: 256,
      diskMb: 512,
      cwd: '/workspace',
      network: {
        link: linkFor(pool, nextBlock++, id),
        egress: { mode: 'deny_all' as const, allow_cidrs: [], deny_cidrs: [], locked: false },
      },
    });
    before(async () => {
      f = await make();
      await f.driver.init();
    });
    after(async () => {
      await f?.cleanup();
    });

    it('creates a machine whose agent answers and runs commands, then destroys it without a trace', async () => {
      const id = newId('machine');
      await f.driver.create(spec(id));
      assert.equal(await f.driver.inspect(id), 'running');
      assert.ok((await f.driver.list()).includes(id));
      const agent = new AgentClient(f.driver.agentSocketPath(id));
      try {
        assert.equal((await agent.health()).ok, true);
        const r = await agent.run({
          cmd: 'echo $CONFORMANCE; pwd',
          args: [],
          shell: true,
          cwd: '/workspace',
          envs: { CONFORMANCE: 'yes' },
          timeout_ms: 10_000,
          background: false,
          stream: false,
          encoding: 'utf8',
        });
        assert.equal(r.stdout, 'yes\n/workspace\n');
        const pid1 = await agent.run({
          cmd: 'cat',
          args: ['/proc/1/cmdline'],
          shell: false,
          cwd: '/',
          envs: {},
          timeout_ms: 10_000,
          background: false,
          stream: false,
          encoding: 'utf8',
        });
        assert.match(pid1.stdout, /init/, 'pid 1 is the machine init');
      } finally {
        agent.close();
      }
      await f.driver.destroy(id);
      assert.equal(await f.driver.inspect(id), 'missing');
      assert.deepEqual(await f.leftovers(id), []);
      assert.ok(!(await f.driver.list()).includes(id));
      await f.driver.destroy(id); // idempotent
    });

    it('cleans up after a create that fails half-way', async () => {
      const id = newId('machine');
      await assert.rejects(f.driver.create({ ...spec(id), templateRootfs: '/nonexistent/rootfs' }));
      assert.equal(await f.driver.inspect(id), 'missing');
      assert.deepEqual(await f.leftovers(id), []);
    });

    it('reports a machine whose processes died as stopped, and destroys it', async () => {
      const id = newId('machine');
      await f.driver.create(spec(id));
      await f.crash(id);
      let state = await f.driver.inspect(id);
      for (let i = 0; i < 200 && state === 'running'; i++) {
        await new Promise((r) => setTimeout(r, 25));
        state = await f.driver.inspect(id);
      }
      assert.equal(state, 'stopped');
      await f.driver.destroy(id);
      assert.equal(await f.driver.inspect(id), 'missing');
      assert.deepEqual(await f.leftovers(id), []);
    });
  });
}
