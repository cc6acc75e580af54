import {
  invalidArgument,
  parseTemplateSpec,
  parseWarmPoolSpec,
  rejectUnknownKeys,
} from '@nullspace/protocol';
import type { TemplateService } from '../services/template-service.js';
import type { WarmPoolService } from '../services/warm-pool-service.js';
import type { Ownership } from '../tenancy/ownership.js';
import type { Router } from './router.js';

/**
 * `/v1/templates` (build, list, get, delete, build logs) and `/v1/warm_pools`. A template name has
 * a `/` and a `:` in it: in a path it is percent-encoded (`team%2Fapp%3Astable`).
 */
export function addTemplateRoutes(
  router: Router,
  templates: TemplateService,
  pools: WarmPoolService,
  usersOf: (templateId: string) => string[],
  ownership: Ownership,
): void {
  router.on('listTemplates', async (ctx) => {
    rejectUnknownKeys(Object.fromEntries(ctx.url.searchParams), []);
    return { body: { items: templates.list(ctx.principal.tenant ?? undefined) } };
  });

  // 201 with the build to follow; 200 when the same content was built already (nothing to do).
  router.on('buildTemplate', async (ctx) => {
    const spec = parseTemplateSpec(await ctx.body());
    // A tenant builds on a template it may use (its own, the operator's, a shipped one).
    ownership.require('template', spec.base, ctx.principal);
    const started = templates.build(spec, ctx.principal.tenant);
    return { status: started.cached ? 200 : 202, body: started };
  });

  router.on('getTemplate', async (ctx) => {
    rejectUnknownKeys(Object.fromEntries(ctx.url.searchParams), []);
    return { body: templates.get(ctx.params.ref ?? '') };
  });

  router.on('deleteTemplate', async (ctx) => ({
    body: await templates.delete(ctx.params.ref ?? '', usersOf, ctx.principal.tenant),
  }));

  // The build's events as NDJSON: steps (progress), log lines, then `done` or `error`.
  router.on('templateLogs', async (ctx) => {
    const query = Object.fromEntries(ctx.url.searchParams);
    rejectUnknownKeys(query, ['follow']);
    if (query.follow !== undefined && query.follow !== 'true' && query.follow !== 'false')
      throw invalidArgument('follow', 'must be true or false');
    const follow = query.follow !== 'false';
    const events = templates.events(ctx.params.ref ?? '', follow);
    const first = await events.next(); // errors (unknown template) become a JSON error answer
    const res = ctx.res;
    res.writeHead(200, {
      'content-type': 'application/x-ndjson',
      'cache-control': 'no-store',
      'x-request-id': ctx.requestId,
    });
    let closed = false;
    res.on('close', () => {
      closed = true;
      void events.return(undefined);
    });
    if (!first.done) res.write(`${JSON.stringify(first.value)}\n`);
    if (!first.done && !closed) {
      for await (const e of events) {
        if (closed) break;
        res.write(`${JSON.stringify(e)}\n`);
      }
    }
    res.end();
    return undefined;
  });

  router.on('listWarmPools', async (ctx) => {
    rejectUnknownKeys(Object.fromEntries(ctx.url.searchParams), []);
    return { body: { items: pools.list(ctx.principal.tenant ?? undefined) } };
  });

  router.on('createWarmPool', async (ctx) => {
    const spec = parseWarmPoolSpec(await ctx.body());
    ownership.require('template', spec.template, ctx.principal);
    return { status: 201, body: pools.create(spec, ctx.principal.tenant) };
  });

  router.on('getWarmPool', async (ctx) => ({ body: pools.get(ctx.params.id ?? '') }));

  router.on('deleteWarmPool', async (ctx) => ({
    body: await pools.delete(ctx.params.id ?? ''),
  }));
}
