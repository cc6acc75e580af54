import { rejectUnknownKeys } from '@nullspace/protocol';
import type { MetricsService } from '../services/metrics-service.js';
import type { Router } from './router.js';

/** `GET /v1/machines/{id}/metrics` and the server's `/metrics` (Prometheus text format). */
export function addMetricsRoutes(router: Router, metrics: MetricsService): void {
  router.on('getMetrics', async (ctx) => {
    rejectUnknownKeys(Object.fromEntries(ctx.url.searchParams), []);
    return { body: await metrics.machine(ctx.params.id ?? '') };
  });

  router.on('prometheus', async (ctx) => {
    const text = metrics.prometheus();
    ctx.res.writeHead(200, {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': Buffer.byteLength(text),
    });
    ctx.res.end(text);
    return undefined;
  });
}
