import type { TemplateSpec, TemplateStatus, WarmPoolSpec } from '@nullspace/protocol';
import type Database from 'better-sqlite3';
import { prepared } from './prepared.js';

/** One template build (tables made by MachineStore's migrations). */
export interface TemplateRecord {
  id: string;
  /** Content hash of the spec and of what it was built on. */
  key: string;
  status: TemplateStatus;
  spec: TemplateSpec;
  /** The template build it was built on (null: the built-in `base`). */
  base_id: string | null;
  /** The recipe of the built-in `base` at build time (its layers sit on that root filesystem). */
  base_recipe: string;
  /** Snapshot-backed: the reusable snapshot machines start from. */
  snapshot_id: string | null;
  size_bytes: number;
  error: string | null;
  created_at: number;
  finished_at: number | null;
  /** The tenant whose key built it; null: the operator's, shared with every tenant. */
  tenant: string | null;
}

interface Row extends Omit<TemplateRecord, 'spec'> {
  spec: string;
}

export interface WarmPoolRecord extends WarmPoolSpec {
  id: string;
  hits: number;
  misses: number;
  created_at: number;
  /** The tenant whose key made it (its machines are that tenant's); null: the operator's. */
  tenant: string | null;
}

/** Template builds, their `name:tag` pointers and warm pools, in the server's database. */
export class TemplateStore {
  constructor(private readonly db: Database.Database) {}

  insert(t: TemplateRecord): void {
    prepared(
      this.db,
      `INSERT INTO templates (id, key, status, spec, base_id, base_recipe, snapshot_id, size_bytes, error,
           created_at, finished_at, tenant)
         VALUES (@id, @key, @status, @spec, @base_id, @base_recipe, @snapshot_id, @size_bytes, @error,
           @created_at, @finished_at, @tenant)`,
    ).run({ ...t, spec: JSON.stringify(t.spec) });
  }

  get(id: string): TemplateRecord | undefined {
    const row = prepared(this.db, 'SELECT * FROM templates WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /**
   * `tenant`'s build of `key` (null: the operator's) that is ready or still building, if any: a
   * build is reused only by its own tenant, whose tags then point at it.
   */
  byKey(key: string, tenant: string | null): TemplateRecord | undefined {
    const row = prepared(
      this.db,
      "SELECT * FROM templates WHERE key = ? AND tenant IS ? AND status IN ('ready', 'building') ORDER BY created_at DESC LIMIT 1",
    ).get(key, tenant) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  update(
    id: string,
    patch: Partial<Pick<TemplateRecord, 'status' | 'snapshot_id' | 'size_bytes' | 'error' | 'finished_at'>>,
  ): void {
    const entries = Object.entries(patch);
    if (entries.length === 0) return;
    prepared(
      this.db,
      `UPDATE templates SET ${entries.map(([k]) => `${k} = @${k}`).join(', ')} WHERE id = @id`,
    ).run({ id, ...patch });
  }

  /** Builds that are not deleted, newest first. */
  list(): TemplateRecord[] {
    return (
      prepared(
        this.db,
        "SELECT * FROM templates WHERE status != 'deleted' ORDER BY created_at DESC, id DESC",
      ).all() as Row[]
    ).map(fromRow);
  }

  /** Builds made on `id` that are not deleted. */
  children(id: string): TemplateRecord[] {
    return (
      prepared(this.db, "SELECT * FROM templates WHERE base_id = ? AND status != 'deleted'").all(id) as Row[]
    ).map(fromRow);
  }

  // ---- tags ------------------------------------------------------------------------------------

  tagged(name: string, tag: string): string | undefined {
    const row = prepared(this.db, 'SELECT template_id FROM template_tags WHERE name = ? AND tag = ?').get(
      name,
      tag,
    ) as { template_id: string } | undefined;
    return row?.template_id;
  }

  setTag(name: string, tag: string, templateId: string): void {
    prepared(
      this.db,
      `INSERT INTO template_tags (name, tag, template_id, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name, tag) DO UPDATE SET template_id = excluded.template_id, updated_at = excluded.updated_at`,
    ).run(name, tag, templateId, Date.now());
  }

  removeTag(name: string, tag: string): void {
    prepared(this.db, 'DELETE FROM template_tags WHERE name = ? AND tag = ?').run(name, tag);
  }

  /** `name:tag` of every tag pointing at `templateId`. */
  namesOf(templateId: string): string[] {
    return (
      prepared(this.db, 'SELECT name, tag FROM template_tags WHERE template_id = ? ORDER BY name, tag').all(
        templateId,
      ) as { name: string; tag: string }[]
    ).map((r) => `${r.name}:${r.tag}`);
  }

  // ---- warm pools ------------------------------------------------------------------------------

  insertPool(p: WarmPoolRecord): void {
    prepared(
      this.db,
      `INSERT INTO warm_pools (id, template, vcpus, memory_mb, disk_mb, size, hits, misses, created_at, tenant)
         VALUES (@id, @template, @vcpus, @memory_mb, @disk_mb, @size, @hits, @misses, @created_at, @tenant)`,
    ).run(p);
  }

  pools(): WarmPoolRecord[] {
    return prepared(this.db, 'SELECT * FROM warm_pools ORDER BY created_at').all() as WarmPoolRecord[];
  }

  countCheckout(id: string, hit: boolean): void {
    prepared(
      this.db,
      `UPDATE warm_pools SET ${hit ? 'hits = hits + 1' : 'misses = misses + 1'} WHERE id = ?`,
    ).run(id);
  }

  deletePool(id: string): void {
    prepared(this.db, 'DELETE FROM warm_pools WHERE id = ?').run(id);
  }
}

function fromRow(r: Row): TemplateRecord {
  return { ...r, spec: JSON.parse(r.spec) as TemplateSpec };
}
