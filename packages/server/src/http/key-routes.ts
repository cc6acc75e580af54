import { parseCreateKey, rejectUnknownKeys } from '@nullspace/protocol';
import type { ApiKeys } from '../tenancy/keys.js';
import type { Router } from './router.js';

/** `/v1/keys`: tenants' API keys, the operator's alone (the route table marks them `operator`). */
export function addKeyRoutes(router: Router, keys: ApiKeys): void {
  router.on('createKey', async (ctx) => ({
    status: 201,
    body: keys.create(parseCreateKey(await ctx.body())),
  }));

  router.on('listKeys', async (ctx) => {
    rejectUnknownKeys(Object.fromEntries(ctx.url.searchParams), []);
    return { body: { items: keys.list() } };
  });

  router.on('revokeKey', async (ctx) => ({ body: keys.revoke(ctx.params.id ?? '') }));
}
