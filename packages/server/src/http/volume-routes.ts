import { expectObject, parseCreateVolume, parseVolumeMount, rejectUnknownKeys } from '@nullspace/protocol';
import type { VolumeService } from '../services/volume-service.js';
import type { Router } from './router.js';

/** `/v1/volumes` and a machine's `/v1/machines/{id}/volumes` (docs/volumes.md). */
export function addVolumeRoutes(router: Router, volumes: VolumeService): void {
  const noQuery = (url: URL) => rejectUnknownKeys(Object.fromEntries(url.searchParams), []);
  const noBody = (raw: unknown) => {
    if (raw !== undefined) rejectUnknownKeys(expectObject(raw, 'body'), []);
  };

  router.on('createVolume', async (ctx) => ({
    status: 201,
    body: await volumes.create(parseCreateVolume(await ctx.body()), ctx.principal.tenant),
  }));

  router.on('listVolumes', async (ctx) => {
    noQuery(ctx.url);
    return { body: { items: await volumes.list(ctx.principal.tenant ?? undefined) } };
  });

  router.on('getVolume', async (ctx) => {
    noQuery(ctx.url);
    return { body: await volumes.get(ctx.params.vol ?? '') };
  });

  router.on('deleteVolume', async (ctx) => ({
    body: await volumes.delete(ctx.params.vol ?? ''),
  }));

  router.on('listMachineVolumes', async (ctx) => {
    noQuery(ctx.url);
    return { body: { items: volumes.listAttachments(ctx.params.id ?? '') } };
  });

  router.on('attachVolume', async (ctx) => ({
    status: 201,
    body: await volumes.attach(ctx.params.id ?? '', parseVolumeMount(await ctx.body())),
  }));

  router.on('detachVolume', async (ctx) => ({
    body: await volumes.detach(ctx.params.id ?? '', ctx.params.vat ?? ''),
  }));

  router.on('volumeHealth', async (ctx) => {
    noQuery(ctx.url);
    return { body: await volumes.health(ctx.params.id ?? '', ctx.params.vat ?? '') };
  });

  router.on('remountVolume', async (ctx) => {
    noBody(await ctx.body());
    return { body: await volumes.remount(ctx.params.id ?? '', ctx.params.vat ?? '') };
  });
}
