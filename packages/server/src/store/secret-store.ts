import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { prepared } from './prepared.js';

/**
 * Per-machine secrets (32 random bytes, hex) in the server's SQLite database; the table is made
 * by MachineStore's migrations. A machine's secret signs its file URLs: it never leaves the
 * server, and deleting it revokes every URL signed with it.
 */
export class SecretStore {
  constructor(private readonly db: Database.Database) {}

  /** The machine's secret, made (once, also under concurrent calls) the first time it is needed. */
  getOrCreate(machineId: string): Buffer {
    prepared(this.db, 'INSERT OR IGNORE INTO machine_secrets (machine_id, secret) VALUES (?, ?)').run(
      machineId,
      randomBytes(32).toString('hex'),
    );
    return this.get(machineId) as Buffer;
  }

  /** The machine's secret, or undefined when none was ever made (no URL can be valid then). */
  get(machineId: string): Buffer | undefined {
    const row = prepared(this.db, 'SELECT secret FROM machine_secrets WHERE machine_id = ?').get(machineId) as
      | { secret: string }
      | undefined;
    return row ? Buffer.from(row.secret, 'hex') : undefined;
  }

  /** Forgets the secrets of machines that are killed (or gone from the store): their URLs are dead. */
  forgetDead(): number {
    return prepared(
      this.db,
      `DELETE FROM machine_secrets WHERE machine_id NOT IN
           (SELECT id FROM machines WHERE status != 'killed')`,
    ).run().changes;
  }
}
