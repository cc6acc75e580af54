import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CodedError, newId } from '@nullspace/protocol';
import type { MachineRecord } from '../../store/machine-store.js';
import type { SnapshotRecord, SnapshotStore } from '../../store/snapshot-store.js';

/**
 * Snapshots as records and as image directories (`<snapshotsDir>/<snapshot id>/`, written by the
 * driver): the pause snapshot a pause or hibernate gives its machine, the reusable ones, and their
 * removal. One owner for both, so a record and its files never part ways.
 */
export class SnapshotImages {
  constructor(
    readonly store: SnapshotStore,
    readonly dir: string,
  ) {}

  /** Where snapshot `id`'s image lives. */
  dirOf(id: string): string {
    return join(this.dir, id);
  }

  /** A usable snapshot's record; `snapshot_not_found` for an unknown, deleted or consumed one. */
  record(id: string): SnapshotRecord {
    const s = this.store.get(id);
    if (!s || s.status === 'deleted' || s.status === 'consumed')
      throw new CodedError('snapshot_not_found', `snapshot ${id} not found`, { snapshot_id: id });
    return s;
  }

  /** What a snapshot of `m` records about it (status `memory` until an image is written). */
  base(m: MachineRecord): Omit<SnapshotRecord, 'id' | 'kind'> {
    return {
      machine_id: m.id,
      status: 'memory',
      template: m.template,
      template_id: m.template_id,
      vcpus: m.vcpus,
      memory_mb: m.memory_mb,
      disk_mb: m.disk_mb,
      cwd: m.cwd,
      envs: m.envs,
      metadata: m.metadata,
      size_bytes: 0,
      paused_ms: null,
      created_at: Date.now(),
    };
  }

  /** A new snapshot row of `m` (`pause`: the machine's own; `reusable`: for new machines). */
  insert(m: MachineRecord, kind: SnapshotRecord['kind']): SnapshotRecord {
    const snap: SnapshotRecord = { ...this.base(m), id: newId('snapshot'), kind };
    this.store.insert(snap);
    return snap;
  }

  /** Marks an image written: its size is what its directory takes on disk. */
  async markReady(id: string, extra: { paused_ms?: number } = {}): Promise<void> {
    this.store.update(id, { status: 'ready', size_bytes: await diskUsage(this.dirOf(id)), ...extra });
  }

  /** Removes a snapshot's image directory (a partial one too); its record stays as it is. */
  async removeImage(id: string): Promise<void> {
    await rm(this.dirOf(id), { recursive: true, force: true });
  }

  /** Removes a snapshot's image and marks it (deleted, or consumed by a resume). */
  async remove(id: string, status: 'deleted' | 'consumed' = 'deleted'): Promise<void> {
    await this.removeImage(id);
    this.store.update(id, { status, size_bytes: 0 });
  }

  /**
   * Runs `fn` with a scratch image directory beside the snapshots (a fork's, restored into its
   * children and then gone), removed whatever `fn` does.
   */
  async withScratch<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = join(this.dir, `.fork-${newId('snapshot')}`);
    try {
      return await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /**
   * A killed machine's pause snapshots are gone at once for the API (marked deleted); their image
   * directories go with its teardown, after the kill answered: returns their ids for it.
   */
  forgetPauseSnapshots(machineId: string): string[] {
    const ids = this.store.list({ machineId, kind: 'pause' }).map((s) => s.id);
    for (const id of ids) this.store.update(id, { status: 'deleted', size_bytes: 0 });
    return ids;
  }

  /** A killed or lost machine's pause snapshots go with it. */
  async dropPauseSnapshots(machineId: string): Promise<void> {
    for (const s of this.store.list({ machineId, kind: 'pause' })) await this.remove(s.id);
  }
}

/** Bytes a directory tree takes on disk (allocated blocks, so sparse files count what they hold). */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else total += (await stat(p)).blocks * 512;
    }
  };
  await walk(dir).catch(() => undefined);
  return total;
}
