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
import type { Ownership } from '../tenancy/ownership.js';
import type { Desktops } from './desktop-routes.js';
import type { Router } from './router.js';

/** `/v1/machines` routes: parse and validate at the edge, then call the service. */
export function addMachineRoutes(
  router: Router,
  machines: MachineService,
  pools: WarmPoolService,
  desktops: Desktops,
  ownership: Ownership,
): void {
  router.on('createMachine', async (ctx) => {
    const spec = parseCreateMachine(await ctx.body());
    // What the body names must be the caller's, like the ids of a path (docs/tenants.md): the
    // template (or a shared one), the snapshot; volumes and the warm pool are checked where they
    // are looked up. The machine is the caller's tenant's.
    const { principal } = ctx;
    if (spec.snapshot_id !== undefined) ownership.require('snapshot', spec.snapshot_id, principal);
    if (spec.template_given) ownership.require('template', spec.template, principal);
    desktops.checkCreate(spec);
    // A create that names a warm pool is the pools' to serve (checkout, or a cold create).
    const info =
      spec.warm_pool === undefined
        ? await machines.create(spec, principal.tenant)
        : await pools.createMachine(spec, principal.tenant);
    await desktops.afterCreate(spec, info);
    return { status: 201, body: info };
  });

  router.on('listMachines', async (ctx) => ({
    body: machines.list(parseListMachinesQuery(ctx.url.searchParams), ctx.principal.tenant ?? undefined),
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
