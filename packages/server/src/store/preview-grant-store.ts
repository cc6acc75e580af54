import { createHash } from 'node:crypto';
import type { PreviewGrantInfo, PreviewGrantKind } from '@nullspace/protocol';
import type Database from 'better-sqlite3';
import { prepared } from './prepared.js';

/** One preview grant as stored: the token itself is never kept, only its SHA-256. */
export interface PreviewGrantRecord {
  id: string;
  machine_id: string;
  port: number;
  kind: PreviewGrantKind;
  token_hash: string;
  token_hint: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Preview grants in the server's SQLite database (table made by the machine store's migrations). */
export class PreviewGrantStore {
  constructor(private readonly db: Database.Database) {}

  insert(g: PreviewGrantRecord): void {
    prepared(
      this.db,
      `INSERT INTO preview_grants (id, machine_id, port, kind, token_hash, token_hint, created_at, expires_at, revoked_at)
         VALUES (@id, @machine_id, @port, @kind, @token_hash, @token_hint, @created_at, @expires_at, @revoked_at)`,
    ).run(g);
  }

  byToken(token: string): PreviewGrantRecord | undefined {
    return prepared(this.db, 'SELECT * FROM preview_grants WHERE token_hash = ?').get(hashToken(token)) as
      | PreviewGrantRecord
      | undefined;
  }

  get(id: string): PreviewGrantRecord | undefined {
    return prepared(this.db, 'SELECT * FROM preview_grants WHERE id = ?').get(id) as
      | PreviewGrantRecord
      | undefined;
  }

  list(machineId: string, port?: number): PreviewGrantRecord[] {
    return (
      port === undefined
        ? prepared(this.db, 'SELECT * FROM preview_grants WHERE machine_id = ? ORDER BY created_at, id').all(
            machineId,
          )
        : prepared(
            this.db,
            'SELECT * FROM preview_grants WHERE machine_id = ? AND port = ? ORDER BY created_at, id',
          ).all(machineId, port)
    ) as PreviewGrantRecord[];
  }

  revoke(id: string, at: number): PreviewGrantRecord | undefined {
    prepared(this.db, 'UPDATE preview_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(
      at,
      id,
    );
    return this.get(id);
  }

  /** Grants expired for a day are of no use to anyone (the listing keeps recent ones). */
  prune(now: number): void {
    prepared(this.db, 'DELETE FROM preview_grants WHERE expires_at < ?').run(now - 24 * 3600 * 1000);
  }
}

export function grantInfo(g: PreviewGrantRecord): PreviewGrantInfo {
  return {
    id: g.id,
    machine_id: g.machine_id,
    port: g.port,
    kind: g.kind,
    token_hint: g.token_hint,
    created_at: new Date(g.created_at).toISOString(),
    expires_at: new Date(g.expires_at).toISOString(),
    revoked_at: g.revoked_at === null ? null : new Date(g.revoked_at).toISOString(),
  };
}
