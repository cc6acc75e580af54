import {
  parseCreatePreviewGrant,
  parseListPreviewGrantsQuery,
  parsePort,
  parseWaitForPreview,
  rejectUnknownKeys,
} from '@nullspace/protocol';
import { PREVIEW_LIMITS } from '@nullspace/protocol';
import type { PreviewService } from '../services/preview-service.js';
import type { Router } from './router.js';

/** Preview grants and helpers: `/v1/machines/{id}/preview_urls`, `/ports/{port}/...`, proxy targets. */
export function addPreviewRoutes(router: Router, previews: PreviewService): void {
  router.on('createPreviewUrl', async (ctx) => {
    const { port, expires_in } = parseCreatePreviewGrant(await ctx.body());
    return { status: 201, body: previews.createUrl(ctx.params.id ?? '', port, expires_in) };
  });

  router.on('listPreviewUrls', async (ctx) => {
    const { port } = parseListPreviewGrantsQuery(ctx.url.searchParams);
    return { body: { items: previews.list(ctx.params.id ?? '', port) } };
  });

  router.on('revokePreviewUrl', async (ctx) => ({
    body: previews.revoke(ctx.params.id ?? '', ctx.params.grant ?? ''),
  }));

  // get_host_info: a fresh grant with the default lifetime, and its URLs.
  router.on('getHostInfo', async (ctx) => {
    rejectUnknownKeys(Object.fromEntries(ctx.url.searchParams), []);
    const port = parsePort(ctx.params.port);
    return { body: previews.createUrl(ctx.params.id ?? '', port, PREVIEW_LIMITS.expiresIn.default) };
  });

  router.on('waitForPreview', async (ctx) => {
    const port = parsePort(ctx.params.port);
    const { timeout_ms } = parseWaitForPreview(await ctx.body());
    return { body: await previews.waitFor(ctx.params.id ?? '', port, timeout_ms) };
  });

  router.on('createPreviewProxyTarget', async (ctx) => {
    const { port, expires_in } = parseCreatePreviewGrant(await ctx.body());
    return { status: 201, body: previews.createProxyTarget(ctx.params.id ?? '', port, expires_in) };
  });
}
