import type { VolumeAttachmentInfo, VolumeHealth } from '@nullspace/protocol';
import type Database from 'better-sqlite3';
import { prepared } from './prepared.js';

/**
 * - `creating`: its image is being made (a server that crashed meanwhile removes it at start).
 * - `ready`: usable.
 * - `deleting`: its image is being removed (finished at the next start if a crash interrupted it).
 * The row goes once the image is gone; attachments keep the volume's id and name.
 */
export type VolumeStatus = 'creating' | 'ready' | 'deleting';

export interface VolumeRecord {
  id: string;
  name: string;
  size_mb: number;
  status: VolumeStatus;
  created_at: number;
  /** The tenant whose key made it; null: the operator's. Names are unique per tenant. */
  tenant: string | null;
}

/** One volume mounted into one machine. `detached`: by request, or its machine was killed. */
export interface AttachmentRecord {
  id: string;
  volume_id: string;
  volume_name: string;
  machine_id: string;
  mount_path: string;
  read_only: boolean;
  subpath: string | null;
  status: 'attached' | 'detached';
  created_at: number;
  detached_at: number | null;
  health: VolumeHealth | null;
}

/** A volume mount a reusable snapshot was taken with: machines started from it get the same. */
export interface SnapshotVolumeRecord {
  snapshot_id: string;
  volume_id: string;
  mount_path: string;
  read_only: boolean;
  subpath: string | null;
}

interface AttachmentRow extends Omit<AttachmentRecord, 'read_only' | 'health'> {
  read_only: number;
  health: string | null;
}

/**
 * The volume tables' own migrations, counted in `meta` under this key rather than in the machine
 * store's list: volumes are a feature of their own, and their schema moves on its own.
 */
const SCHEMA_KEY = 'schema.volumes';
const MIGRATIONS = [
  `CREATE TABLE volumes (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     size_mb INTEGER NOT NULL,
     status TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE TABLE volume_attachments (
     id TEXT PRIMARY KEY,
     volume_id TEXT NOT NULL,
     volume_name TEXT NOT NULL,
     machine_id TEXT NOT NULL,
     mount_path TEXT NOT NULL,
     read_only INTEGER NOT NULL,
     subpath TEXT,
     status TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     detached_at INTEGER,
     health TEXT
   );
   CREATE INDEX volume_attachments_by_machine ON volume_attachments (machine_id, status);
   CREATE INDEX volume_attachments_by_volume ON volume_attachments (volume_id, status);
   CREATE TABLE snapshot_volumes (
     snapshot_id TEXT NOT NULL,
     volume_id TEXT NOT NULL,
     mount_path TEXT NOT NULL,
     read_only INTEGER NOT NULL,
     subpath TEXT,
     PRIMARY KEY (snapshot_id, mount_path)
   );`,
  // Tenants (docs/tenants.md): each volume is its tenant's (NULL: the operator's, which every volume
  // made before was), and a name is unique within a tenant, so no tenant learns another's names
  // from a conflict. SQLite cannot drop the column's UNIQUE in place: the table is made again.
  `CREATE TABLE volumes_by_tenant (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     size_mb INTEGER NOT NULL,
     status TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     tenant TEXT
   );
   INSERT INTO volumes_by_tenant (id, name, size_mb, status, created_at, tenant)
     SELECT id, name, size_mb, status, created_at, NULL FROM volumes ORDER BY rowid;
   DROP TABLE volumes;
   ALTER TABLE volumes_by_tenant RENAME TO volumes;
   CREATE UNIQUE INDEX volumes_by_name ON volumes (coalesce(tenant, ''), name);`,
];

/** Volumes, their attachments and snapshots' volume mounts, in the server's SQLite database. */
export class VolumeStore {
  constructor(private readonly db: Database.Database) {
    db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(SCHEMA_KEY) as
      | { value: string }
      | undefined;
    for (let v = Number(row?.value ?? 0); v < MIGRATIONS.length; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v] as string);
        db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(SCHEMA_KEY, String(v + 1));
      })();
    }
  }

  /** Runs `fn` in one transaction (checks and writes that must not interleave). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  // ---- volumes ----

  insert(v: VolumeRecord): void {
    prepared(
      this.db,
      'INSERT INTO volumes (id, name, size_mb, status, created_at, tenant) VALUES (@id, @name, @size_mb, @status, @created_at, @tenant)',
    ).run(v);
  }

  get(id: string): VolumeRecord | undefined {
    return prepared(this.db, 'SELECT * FROM volumes WHERE id = ?').get(id) as VolumeRecord | undefined;
  }

  /** `tenant`'s volume called `name` (null: the operator's). */
  byName(name: string, tenant: string | null): VolumeRecord | undefined {
    return prepared(this.db, 'SELECT * FROM volumes WHERE name = ? AND tenant IS ?').get(name, tenant) as
      | VolumeRecord
      | undefined;
  }

  setStatus(id: string, status: VolumeStatus): void {
    prepared(this.db, 'UPDATE volumes SET status = ? WHERE id = ?').run(status, id);
  }

  remove(id: string): void {
    prepared(this.db, 'DELETE FROM volumes WHERE id = ?').run(id);
  }

  /** Every volume, in the order they were made. */
  list(): VolumeRecord[] {
    return prepared(this.db, 'SELECT * FROM volumes ORDER BY rowid').all() as VolumeRecord[];
  }

  // ---- attachments ----

  insertAttachment(a: AttachmentRecord): void {
    prepared(
      this.db,
      `INSERT INTO volume_attachments (id, volume_id, volume_name, machine_id, mount_path, read_only, subpath,
           status, created_at, detached_at, health)
         VALUES (@id, @volume_id, @volume_name, @machine_id, @mount_path, @read_only, @subpath, @status,
           @created_at, @detached_at, @health)`,
    ).run({ ...a, read_only: Number(a.read_only), health: a.health ? JSON.stringify(a.health) : null });
  }

  attachment(id: string): AttachmentRecord | undefined {
    const row = prepared(this.db, 'SELECT * FROM volume_attachments WHERE id = ?').get(id) as
      | AttachmentRow
      | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** A machine's current attachments, in the order they were made. */
  attachedTo(machineId: string): AttachmentRecord[] {
    return (
      prepared(
        this.db,
        "SELECT * FROM volume_attachments WHERE machine_id = ? AND status = 'attached' ORDER BY rowid",
      ).all(machineId) as AttachmentRow[]
    ).map(fromRow);
  }

  /** A volume's current attachments (of machines in any state), in the order they were made. */
  attachmentsOf(volumeId: string): AttachmentRecord[] {
    return (
      prepared(
        this.db,
        "SELECT * FROM volume_attachments WHERE volume_id = ? AND status = 'attached' ORDER BY rowid",
      ).all(volumeId) as AttachmentRow[]
    ).map(fromRow);
  }

  detach(id: string, at: number): void {
    prepared(
      this.db,
      "UPDATE volume_attachments SET status = 'detached', detached_at = ? WHERE id = ? AND status = 'attached'",
    ).run(at, id);
  }

  /** Ends every attachment of a machine (it was killed, or never started). */
  detachAllOf(machineId: string, at: number): void {
    prepared(
      this.db,
      "UPDATE volume_attachments SET status = 'detached', detached_at = ? WHERE machine_id = ? AND status = 'attached'",
    ).run(at, machineId);
  }

  setHealth(id: string, health: VolumeHealth): void {
    prepared(this.db, 'UPDATE volume_attachments SET health = ? WHERE id = ?').run(
      JSON.stringify(health),
      id,
    );
  }

  // ---- snapshots ----

  rememberSnapshot(snapshotId: string, mounts: readonly Omit<SnapshotVolumeRecord, 'snapshot_id'>[]): void {
    const stmt = prepared(
      this.db,
      `INSERT OR REPLACE INTO snapshot_volumes (snapshot_id, volume_id, mount_path, read_only, subpath)
         VALUES (?, ?, ?, ?, ?)`,
    );
    for (const m of mounts) stmt.run(snapshotId, m.volume_id, m.mount_path, Number(m.read_only), m.subpath);
  }

  /** Reusable snapshots (ready) whose machines would mount `volumeId`. */
  snapshotsUsing(volumeId: string): string[] {
    return (
      prepared(
        this.db,
        `SELECT DISTINCT sv.snapshot_id AS id FROM snapshot_volumes sv JOIN snapshots s ON s.id = sv.snapshot_id
           WHERE sv.volume_id = ? AND s.kind = 'reusable' AND s.status = 'ready' ORDER BY sv.snapshot_id`,
      ).all(volumeId) as { id: string }[]
    ).map((r) => r.id);
  }

  snapshotVolumes(snapshotId: string): SnapshotVolumeRecord[] {
    return (
      prepared(this.db, 'SELECT * FROM snapshot_volumes WHERE snapshot_id = ? ORDER BY mount_path').all(
        snapshotId,
      ) as (Omit<SnapshotVolumeRecord, 'read_only'> & { read_only: number })[]
    ).map((r) => ({ ...r, read_only: r.read_only === 1 }));
  }
}

function fromRow(r: AttachmentRow): AttachmentRecord {
  return {
    ...r,
    read_only: r.read_only === 1,
    health: r.health ? (JSON.parse(r.health) as VolumeHealth) : null,
  };
}

export function attachmentInfo(a: AttachmentRecord): VolumeAttachmentInfo {
  return {
    id: a.id,
    volume_id: a.volume_id,
    volume_name: a.volume_name,
    machine_id: a.machine_id,
    mount_path: a.mount_path,
    read_only: a.read_only,
    subpath: a.subpath,
    created_at: new Date(a.created_at).toISOString(),
    health: a.health,
  };
}
