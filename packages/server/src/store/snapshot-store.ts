import type { SnapshotInfo, SnapshotKind } from '@nullspace/protocol';
import type Database from 'better-sqlite3';
import { prepared } from './prepared.js';

/**
 * - `memory`: a pause snapshot of a frozen machine (nothing on disk yet).
 * - `ready`: its image is complete on disk (hibernated machine, or a reusable snapshot).
 * - `consumed`: a pause snapshot its machine resumed from; the image is gone.
 * - `deleted`: deleted by request or with its machine; the image is gone.
 */
export type SnapshotStatus = 'memory' | 'ready' | 'consumed' | 'deleted';

export interface SnapshotRecord {
  id: string;
  kind: SnapshotKind;
  machine_id: string;
  status: SnapshotStatus;
  template: string;
  /** The template build the machine ran on (null: the built-in `base`). */
  template_id: string | null;
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  cwd: string;
  envs: Record<string, string>;
  metadata: Record<string, string>;
  size_bytes: number;
  paused_ms: number | null;
  created_at: number;
  /** Its machine's tenant (kept here: a snapshot outlives its machine's row); null: the operator's. */
  tenant: string | null;
}

interface Row extends Omit<SnapshotRecord, 'envs' | 'metadata'> {
  envs: string;
  metadata: string;
}

/** Snapshots in the server's SQLite database (the table is made by MachineStore's migrations). */
export class SnapshotStore {
  constructor(private readonly db: Database.Database) {}

  insert(s: SnapshotRecord): void {
    prepared(
      this.db,
      `INSERT INTO snapshots (id, kind, machine_id, status, template, template_id, vcpus, memory_mb, disk_mb,
           cwd, envs, metadata, size_bytes, paused_ms, created_at, tenant)
         VALUES (@id, @kind, @machine_id, @status, @template, @template_id, @vcpus, @memory_mb, @disk_mb,
           @cwd, @envs, @metadata, @size_bytes, @paused_ms, @created_at, @tenant)`,
    ).run({ ...s, envs: JSON.stringify(s.envs), metadata: JSON.stringify(s.metadata) });
  }

  get(id: string): SnapshotRecord | undefined {
    const row = prepared(this.db, 'SELECT * FROM snapshots WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** Whose snapshot `id` is (`tenant` null: the operator's); undefined when there is none. */
  ownerOf(id: string): { tenant: string | null } | undefined {
    return prepared(this.db, 'SELECT tenant FROM snapshots WHERE id = ?').get(id) as
      | { tenant: string | null }
      | undefined;
  }

  update(id: string, patch: Partial<Pick<SnapshotRecord, 'status' | 'size_bytes' | 'paused_ms'>>): void {
    const entries = Object.entries(patch);
    if (entries.length === 0) return;
    prepared(
      this.db,
      `UPDATE snapshots SET ${entries.map(([k]) => `${k} = @${k}`).join(', ')} WHERE id = @id`,
    ).run({ id, ...patch });
  }

  /** Snapshots that exist (not consumed or deleted), newest first. */
  list(filter: { machineId?: string; kind?: SnapshotKind; tenant?: string } = {}): SnapshotRecord[] {
    const where = ["status IN ('memory', 'ready')"];
    const params: unknown[] = [];
    if (filter.tenant !== undefined) {
      where.push('tenant = ?');
      params.push(filter.tenant);
    }
    if (filter.machineId !== undefined) {
      where.push('machine_id = ?');
      params.push(filter.machineId);
    }
    if (filter.kind !== undefined) {
      where.push('kind = ?');
      params.push(filter.kind);
    }
    return (
      prepared(
        this.db,
        `SELECT * FROM snapshots WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC`,
      ).all(...params) as Row[]
    ).map(fromRow);
  }

  /** Ids whose image should be on disk (for sweeping leftovers). */
  idsWithImages(): Set<string> {
    const rows = prepared(this.db, "SELECT id FROM snapshots WHERE status = 'ready'").all() as {
      id: string;
    }[];
    return new Set(rows.map((r) => r.id));
  }
}

function fromRow(r: Row): SnapshotRecord {
  return {
    ...r,
    envs: JSON.parse(r.envs) as Record<string, string>,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
  };
}

export function snapshotInfo(s: SnapshotRecord): SnapshotInfo {
  return {
    id: s.id,
    kind: s.kind,
    machine_id: s.machine_id,
    template: s.template,
    vcpus: s.vcpus,
    memory_mb: s.memory_mb,
    disk_mb: s.disk_mb,
    size_bytes: s.size_bytes,
    paused_ms: s.paused_ms,
    created_at: new Date(s.created_at).toISOString(),
  };
}
