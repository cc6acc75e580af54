/**
 * Issue 6, warm pools: machines of a template kept started (start command ready), checked out by
 * creates in `prefer`, `require` and `bypass` mode, refilled, counted (hit rate, checkout latency,
 * /metrics), and found again after a server restart.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Machine, NullspaceError, Template, Volume, WarmPool, type WarmPoolInfo } from '@nullspace/sdk';
import { cli, describeWithServer, eventually } from './harness.js';

// The start command takes a while before it listens: a refill cannot be ready within a short wait.
const SLOW_WEB = {
  name: 'team/slow-web',
  env: { GREETING: 'pooled' },
  startCmd: 'sleep 3; exec python3 -m http.server 8000 --directory /etc',
  readyCheck: { port: 8000 },
};

async function readyPool(id: string, conn: object, size: number): Promise<WarmPoolInfo> {
  return eventually(
    async () => {
      const p = await WarmPool.get(id, conn);
      return p.ready === size ? p : undefined;
    },
    `warm pool ${id} to have ${size} ready machines`,
    600,
    200,
  );
}

describeWithServer('warm pools', (ctx) => {
  it('serves three of five concurrent prefer creates from a pool of 3, require fails on an empty pool, bypass never takes, the pool refills', async () => {
    const c = ctx.server.conn;
    await Template.build(SLOW_WEB, c);
    const pool = await WarmPool.create({ ...c, template: 'team/slow-web', size: 3 });
    assert.match(pool.id, /^twp_/);
    await readyPool(pool.id, c, 3);
    // Machines waiting in a pool belong to nobody: they are not listed.
    assert.equal((await Machine.list(c)).items.length, 0);

    // Five at once: three hits (the pool's three) and two cold starts. The require fires as soon as
    // the hits are back, while the refills still run their 3-second start command.
    const creates = Array.from({ length: 5 }, (_, i) =>
      Machine.create({
        ...c,
        warmPool: pool.id,
        warmPoolMode: 'prefer',
        envs: { N: String(i) },
        metadata: { batch: 'five' },
        timeout: 600,
      }),
    );
    const infos = creates.map((p) => p.then((m) => m.getInfo()));
    const hits = await eventually(
      async () => {
        const settled = await Promise.all(infos.map((p) => Promise.race([p, Promise.resolve(undefined)])));
        const done = settled.filter((i) => i?.warmPoolCheckout?.hit === true);
        return done.length === 3 ? done : undefined;
      },
      'the three hits',
      2000,
      5,
    );
    assert.equal(hits.length, 3);
    const required = await Machine.create({
      ...c,
      warmPool: pool.id,
      warmPoolMode: 'require',
      warmPoolWaitMs: 200,
    }).catch((e) => e);
    assert.ok(required instanceof NullspaceError, 'require on an empty pool fails');
    assert.equal(required.code, 'warm_pool_unavailable');
    // It waited the 200 ms it was given (the server's own count), then gave up.
    assert.ok(Number(required.details?.waited_ms) >= 190, JSON.stringify(required.details));

    const all = await Promise.all(infos);
    assert.equal(all.filter((i) => i.warmPoolCheckout?.hit === true).length, 3);
    assert.equal(all.filter((i) => i.warmPoolCheckout?.hit === false).length, 2);
    for (const [i, info] of all.entries()) {
      assert.equal(info.warmPoolCheckout?.poolId, pool.id);
      assert.equal(info.template, 'team/slow-web:latest');
      assert.deepEqual(info.metadata, { batch: 'five' });
      assert.equal(info.timeout, 600);
      assert.deepEqual(info.envs.sort(), ['GREETING', 'N']);
      // Hit or cold, each is a normal machine with the request's envs and its service up.
      const m = await Machine.connect(info.id, c);
      const out = await m.commands.run(
        'echo $N $GREETING; curl -s -o /dev/null -w "%{http_code}" localhost:8000/hostname',
      );
      assert.equal(out.stdout, `${i} pooled\n200`);
      // Started at the lowest priority while in the pool; every thread is back to normal now.
      const nice = await m.commands.run('ps -eLo ni= | tr -d " " | sort -u');
      assert.equal(nice.stdout, '0\n');
    }
    const listed = await Machine.list({ ...c, query: { metadata: { batch: 'five' } } });
    assert.equal(listed.items.length, 5);

    // The pool fills up again by itself.
    const refilled = await readyPool(pool.id, c, 3);
    assert.equal(refilled.hits, 3);
    assert.equal(refilled.misses, 3); // two cold prefers, one failed require
    assert.equal(refilled.hitRate, 0.5);
    assert.equal(refilled.checkoutMs.samples, 3);
    assert.ok(
      (refilled.checkoutMs.p50 ?? -1) >= 0 &&
        (refilled.checkoutMs.p95 ?? -1) >= (refilled.checkoutMs.p50 ?? 0),
    );

    // bypass: a cold create; the pool keeps all it has.
    const cold = await Machine.create({ ...c, warmPool: pool.id, warmPoolMode: 'bypass' });
    assert.deepEqual((await cold.getInfo()).warmPoolCheckout, { poolId: pool.id, waitedMs: 0, hit: false });
    const after = await WarmPool.get(pool.id, c);
    assert.equal(after.ready, 3);
    assert.equal(after.hits, 3);
    await cold.kill();

    // require with a ready pool, and a wait: a hit.
    const req = await Machine.create({
      ...c,
      warmPool: pool.id,
      warmPoolMode: 'require',
      warmPoolWaitMs: 5000,
    });
    assert.equal((await req.getInfo()).warmPoolCheckout?.hit, true);
    await req.kill();

    // Server metrics carry the pool's hit rate and ready count.
    const metrics = await fetch(`${ctx.server.url}/metrics`, {
      headers: { authorization: `Bearer ${ctx.server.apiKey}` },
    }).then((r) => r.text());
    assert.match(
      metrics,
      new RegExp(
        `nullspace_warm_pool_hit_ratio\\{pool="${pool.id}",template="team/slow-web:latest"\\} 0\\.571`,
      ),
    );
    assert.match(
      metrics,
      new RegExp(`nullspace_warm_pool_checkouts_total\\{pool="${pool.id}",[^}]*result="hit"\\} 4`),
    );

    // Killing the checked-out machines does not touch the pool (it refills from the last hit only).
    for (const i of all) await Machine.killById(i.id, c);
    const end = await readyPool(pool.id, c, 3);
    assert.deepEqual([end.hits, end.misses], [4, 3]);
  });

  it('refuses a create that does not match the pool, and an unknown pool', async () => {
    const c = ctx.server.conn;
    const pool = await WarmPool.create({ ...c, size: 1, memoryMb: 256 });
    const err = await Machine.create({ ...c, warmPool: pool.id, memoryMb: 512 }).catch((e) => e);
    assert.equal(err.code, 'invalid_argument');
    assert.match(err.message, /memory_mb 256/);
    const other = await Machine.create({ ...c, warmPool: pool.id, template: 'team/slow-web' }).catch(
      (e) => e,
    );
    assert.equal(other.code, 'invalid_argument');
    const unknown = await Machine.create({ ...c, warmPool: 'twp_aaaaaaaaaaaaaaaaaaaa' }).catch((e) => e);
    assert.equal(unknown.code, 'not_found');
    const noTemplate = await WarmPool.create({ ...c, size: 1, template: 'nope/none' }).catch((e) => e);
    assert.equal(noTemplate.code, 'template_not_found');
    const badSize = await WarmPool.create({ ...c, size: 0 }).catch((e) => e);
    assert.equal(badSize.code, 'invalid_argument');
    await WarmPool.delete(pool.id, c);
    assert.equal((await WarmPool.get(pool.id, c).catch((e) => e)).code, 'not_found');
  });

  it('finds its pools and their machines again after a server restart, and deleting a pool kills its waiting machines', async () => {
    const c = ctx.server.conn;
    const pool = await WarmPool.create({ ...c, size: 2 });
    await readyPool(pool.id, c, 2);
    await ctx.server.stop('SIGKILL');
    await ctx.server.restart();
    const c2 = ctx.server.conn;
    const back = await readyPool(pool.id, c2, 2);
    assert.equal(back.starting, 0, 'the same machines, none started anew');
    // A checkout with a volume: the warm machine gets it mounted before create returns.
    const vol = await Volume.create('pool-data', { ...c2, sizeMb: 300 });
    const m = await Machine.create({
      ...c2,
      warmPool: pool.id,
      warmPoolMode: 'require',
      volumes: [{ volume: 'pool-data', mountPath: '/data' }],
    });
    const info = await m.getInfo();
    assert.equal(info.warmPoolCheckout?.hit, true);
    assert.deepEqual(
      info.volumes.map((v) => v.mountPath),
      ['/data'],
    );
    assert.equal((await m.commands.run('echo kept > /data/f && cat /data/f')).stdout, 'kept\n');
    // An unknown volume is refused before a machine is taken from the pool.
    const before = await WarmPool.get(pool.id, c2);
    const bad = await Machine.create({
      ...c2,
      warmPool: pool.id,
      volumes: [{ volume: 'nope', mountPath: '/data' }],
    }).catch((e) => e);
    assert.equal(bad.code, 'volume_not_found');
    assert.equal((await WarmPool.get(pool.id, c2)).hits, before.hits);
    // The CLI shows the pool.
    const list = await cli(ctx.server, ['pool', 'list']);
    assert.match(list.stdout, new RegExp(`${pool.id}\\s+base\\s+\\d/2`));
    const del = await cli(ctx.server, ['pool', 'delete', pool.id]);
    assert.equal(del.code, 0, del.stderr);
    // The checked-out machine is not the pool's any more: it keeps running.
    assert.equal((await m.getInfo()).status, 'running');
    assert.equal((await Machine.list({ ...c2, query: { state: ['running'] } })).items.length, 1);
    await m.kill();
    await Volume.delete(vol.id, c2);
  });
});
