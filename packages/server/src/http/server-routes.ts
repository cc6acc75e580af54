import { openApiDocument } from '@nullspace/protocol';
import type { Router } from './router.js';

/** The server's own routes: liveness (`/healthz`) and the API's OpenAPI document (both public). */
export function addServerRoutes(router: Router): void {
  const document = JSON.stringify(openApiDocument());
  router.on('health', async () => ({ body: { ok: true } }));
  router.on('openapi', async (ctx) => {
    ctx.res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(document),
      'cache-control': 'no-cache',
    });
    ctx.res.end(document);
    return undefined;
  });
}
