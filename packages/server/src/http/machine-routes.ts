import {
  MACHINE_LIMITS,
  expectObject,
  optionalInteger,
  parseCreateMachine,
  parseFields,
  parseFork,
  parseListMachinesQuery,
  parseSetNetwork,
  parseSetTimeout,
  pickFields,
  rejectUnknownKeys,
} from '@nullspace/protocol';
import type { MachineService } from '../services/machines/machine-service.js';
import type { WarmPoolService } from '../services/warm-pool-service.js';
import type { Router } from './router.js';

/** `/v1/machines` routes: parse and validate at the edge, then call the service. */
export function addMachineRoutes(router: Router, machines: MachineService, pools: WarmPoolService): void {
  router.add('POST', '/v1/machines', async (ctx) => {
    const spec = parseCreateMachine(await ctx.body());
    // A create that names a warm pool is the pools' to serve (checkout, or a cold create).
    const info = spec.warm_pool === undefined ? await machines.create(spec) : await pools.createMachine(spec);
    return { status: 201, body: info };
  });

  router.add('GET', '/v1/machines', async (ctx) => ({
    body: machines.list(parseListMachinesQuery(ctx.url.searchParams)),
  }));

  router.add('GET', '/v1/machines/{id}', async (ctx) => {
    rejectUnknownKeys(Object.fromEntries(ctx.url.searchParams), ['fields']);
    const info = machines.get(ctx.params.id ?? '');
    const fields = ctx.url.searchParams.get('fields');
    return { body: fields === null ? info : pickFields(info, parseFields(fields)) };
  });

  router.add('DELETE', '/v1/machines/{id}', async (ctx) => ({
    body: await machines.kill(ctx.params.id ?? ''),
  }));

  router.add('POST', '/v1/machines/{id}/connect', async (ctx) => {
    return { body: await machines.connect(ctx.params.id ?? '', parseResumeTimeout(await ctx.body())) };
  });

  for (const action of ['pause', 'hibernate'] as const) {
    router.add('POST', `/v1/machines/{id}/${action}`, async (ctx) => {
      const raw = await ctx.body();
      if (raw !== undefined) rejectUnknownKeys(expectObject(raw, 'body'), []);
      return { body: await machines[action](ctx.params.id ?? '') };
    });
  }

  router.add('POST', '/v1/machines/{id}/snapshots', async (ctx) => {
    const raw = await ctx.body();
    if (raw !== undefined) rejectUnknownKeys(expectObject(raw, 'body'), []);
    return { status: 201, body: await machines.createSnapshot(ctx.params.id ?? '') };
  });

  router.add('POST', '/v1/machines/{id}/fork', async (ctx) => {
    const { count } = parseFork(await ctx.body());
    return { body: { children: await machines.fork(ctx.params.id ?? '', count) } };
  });

  router.add('PUT', '/v1/machines/{id}/network', async (ctx) => ({
    body: await machines.setNetwork(ctx.params.id ?? '', parseSetNetwork(await ctx.body())),
  }));

  router.add('POST', '/v1/machines/{id}/timeout', async (ctx) => ({
    body: await machines.setTimeout(ctx.params.id ?? '', parseSetTimeout(await ctx.body())),
  }));
}

/** The optional `{timeout}` body of connect and resume. */
export function parseResumeTimeout(raw: unknown): number | undefined {
  const body = raw === undefined ? {} : expectObject(raw, 'body');
  rejectUnknownKeys(body, ['timeout']);
  return optionalInteger(body, 'timeout', MACHINE_LIMITS.timeout.min, MACHINE_LIMITS.timeout.max);
}
