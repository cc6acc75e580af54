import { parseListSnapshotsQuery, parseResumeTimeout } from '@nullspace/protocol';
import type { MachineService } from '../services/machines/machine-service.js';
import type { Router } from './router.js';

/** `/v1/snapshots` routes. Taking a snapshot is `POST /v1/machines/{id}/snapshots`. */
export function addSnapshotRoutes(router: Router, machines: MachineService): void {
  router.on('listSnapshots', async (ctx) => {
    const { kind, machine_id: machineId } = parseListSnapshotsQuery(ctx.url.searchParams);
    return {
      body: {
        items: machines.listSnapshots({
          ...(machineId !== undefined ? { machineId } : {}),
          ...(kind !== undefined ? { kind } : {}),
        }),
      },
    };
  });

  router.on('getSnapshot', async (ctx) => ({
    body: machines.getSnapshot(ctx.params.id ?? ''),
  }));

  router.on('deleteSnapshot', async (ctx) => ({
    body: await machines.deleteSnapshot(ctx.params.id ?? ''),
  }));

  router.on('resumeSnapshot', async (ctx) => ({
    body: await machines.resumeSnapshot(ctx.params.id ?? '', parseResumeTimeout(await ctx.body())),
  }));
}
