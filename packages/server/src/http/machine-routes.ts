import {
  expectObject,
  parseCreateMachine,
  parseFields,
  parseFork,
  parseGetMachineQuery,
  parseListMachinesQuery,
  parseResumeTimeout,
  parseSetNetwork,
  parseSetTimeout,
  pickFields,
  rejectUnknownKeys,
} from '@nullspace/protocol';
import type { MachineService } from '../services/machines/machine-service.js';
import type { WarmPoolService } from '../services/warm-pool-service.js';
import type { Desktops } from './desktop-routes.js';
import type { Router } from './router.js';

/** `/v1/machines` routes: parse and validate at the edge, then call the service. */
export function addMachineRoutes(
  router: Router,
  machines: MachineService,
  pools: WarmPoolService,
  desktops: Desktops,
): void {
  router.on('createMachine', async (ctx) => {
    const spec = parseCreateMachine(await ctx.body());
    desktops.checkCreate(spec);
    // A create that names a warm pool is the pools' to serve (checkout, or a cold create).
    const info = spec.warm_pool === undefined ? await machines.create(spec) : await pools.createMachine(spec);
    await desktops.afterCreate(spec, info);
    return { status: 201, body: info };
  });

  router.on('listMachines', async (ctx) => ({
    body: machines.list(parseListMachinesQuery(ctx.url.searchParams)),
  }));

  router.on('getMachine', async (ctx) => {
    const { fields } = parseGetMachineQuery(ctx.url.searchParams);
    const info = machines.get(ctx.params.id ?? '');
    return { body: fields === undefined ? info : pickFields(info, parseFields(fields)) };
  });

  router.on('killMachine', async (ctx) => ({
    body: await machines.kill(ctx.params.id ?? ''),
  }));

  router.on('connectMachine', async (ctx) => {
    return { body: await machines.connect(ctx.params.id ?? '', parseResumeTimeout(await ctx.body())) };
  });

  for (const action of ['pause', 'hibernate'] as const) {
    router.on(action === 'pause' ? 'pauseMachine' : 'hibernateMachine', async (ctx) => {
      const raw = await ctx.body();
      if (raw !== undefined) rejectUnknownKeys(expectObject(raw, 'body'), []);
      return { body: await machines[action](ctx.params.id ?? '') };
    });
  }

  router.on('createSnapshot', async (ctx) => {
    const raw = await ctx.body();
    if (raw !== undefined) rejectUnknownKeys(expectObject(raw, 'body'), []);
    return { status: 201, body: await machines.createSnapshot(ctx.params.id ?? '') };
  });

  router.on('forkMachine', async (ctx) => {
    const { count } = parseFork(await ctx.body());
    return { body: { children: await machines.fork(ctx.params.id ?? '', count) } };
  });

  router.on('setNetwork', async (ctx) => ({
    body: await machines.setNetwork(ctx.params.id ?? '', parseSetNetwork(await ctx.body())),
  }));

  router.on('setTimeout', async (ctx) => ({
    body: await machines.setTimeout(ctx.params.id ?? '', parseSetTimeout(await ctx.body())),
  }));
}
