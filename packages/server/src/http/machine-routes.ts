import {
  MACHINE_LIMITS,
  expectObject,
  optionalInteger,
  parseCreateMachine,
  parseFields,
  parseListMachinesQuery,
  parseRunCommand,
  pickFields,
  rejectUnknownKeys,
} from '@nullspace/protocol';
import type { MachineService } from '../services/machine-service.js';
import type { Router } from './router.js';

/** `/v1/machines` routes: parse and validate at the edge, then call the service. */
export function addMachineRoutes(router: Router, machines: MachineService): void {
  router.add('POST', '/v1/machines', async (ctx) => {
    const spec = parseCreateMachine(await ctx.body());
    return { status: 201, body: await machines.create(spec) };
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
    const raw = await ctx.body();
    const body = raw === undefined ? {} : expectObject(raw, 'body');
    rejectUnknownKeys(body, ['timeout']);
    const timeout = optionalInteger(body, 'timeout', MACHINE_LIMITS.timeout.min, MACHINE_LIMITS.timeout.max);
    return { body: await machines.connect(ctx.params.id ?? '', timeout) };
  });

  router.add('POST', '/v1/machines/{id}/commands', async (ctx) => {
    const req = parseRunCommand(await ctx.body());
    return { body: await machines.runCommand(ctx.params.id ?? '', req) };
  });
}
