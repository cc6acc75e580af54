import type { LifecycleEvent } from '@nullspace/protocol';
import type Database from 'better-sqlite3';

interface Row {
  id: number;
  machine_id: string;
  execution_id: string;
  type: LifecycleEvent['type'];
  status: LifecycleEvent['status'];
  previous_status: LifecycleEvent['previous_status'];
  reason: string | null;
  data: string;
  at: number;
}

export type NewLifecycleEvent = Omit<LifecycleEvent, 'id' | 'at' | 'reason' | 'data' | 'previous_status'> &
  Partial<Pick<LifecycleEvent, 'reason' | 'data' | 'previous_status'>>;

export type EventListener = (event: LifecycleEvent) => void;

/**
 * How often what is kept for `retentionMs` is purged: a short retention (tests, demos) often enough
 * to be visible, a long one once a minute.
 */
export function purgeEveryMs(retentionMs: number): number {
  return Math.min(60_000, Math.max(250, retentionMs / 4));
}

/** `meta` key of the highest event id retention removed. */
const WATERMARK_KEY = 'events_purged_through';

/**
 * The durable lifecycle event log (the `events` table of the server's SQLite database). `append`
 * writes the row and notifies subscribers in the same synchronous call, so a reader that queries
 * the table and subscribes without yielding to the event loop in between can neither miss nor
 * duplicate an event.
 */
export class EventLog {
  private readonly listeners = new Map<string, Set<EventListener>>();
  private readonly insert: Database.Statement;
  private readonly readWatermark: Database.Statement;
  private readonly readHighWater: Database.Statement;
  private purgeTimer: NodeJS.Timeout | undefined;

  /**
   * @param retentionMs events older than this are removed (at start, then periodically); the
   *   highest removed id is kept durably, so a replay from before it is reported as expired.
   */
  constructor(
    private readonly db: Database.Database,
    private readonly retentionMs: number = 7 * 24 * 3600 * 1000,
  ) {
    this.insert = db.prepare(
      `INSERT INTO events (machine_id, execution_id, type, status, previous_status, reason, data, at)
       VALUES (@machine_id, @execution_id, @type, @status, @previous_status, @reason, @data, @at)`,
    );
    // Read on every replay and poll: prepared once.
    this.readWatermark = db.prepare(`SELECT value FROM meta WHERE key = '${WATERMARK_KEY}'`);
    this.readHighWater = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'");
    this.purge();
    this.purgeTimer = setInterval(() => this.purge(), purgeEveryMs(retentionMs));
    this.purgeTimer.unref();
  }

  /** Stops the periodic purge. Appending and reading keep working until the database closes. */
  close(): void {
    clearInterval(this.purgeTimer);
    this.purgeTimer = undefined;
  }

  /**
   * Removes events older than the retention; returns how many. It removes a prefix of the ids
   * (everything up to the newest expired one), so "id <= watermark" is exactly what is gone.
   */
  purge(now = Date.now()): number {
    return this.db.transaction(() => {
      const row = this.db
        .prepare('SELECT max(id) AS id FROM events WHERE at < ?')
        .get(now - this.retentionMs) as { id: number | null };
      if (row.id === null) return 0;
      const removed = this.db.prepare('DELETE FROM events WHERE id <= ?').run(row.id).changes;
      if (row.id > this.purgedThrough())
        this.db
          .prepare(
            'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
          )
          .run(WATERMARK_KEY, String(row.id));
      return removed;
    })();
  }

  /** Highest event id retention ever removed (0 if none). */
  purgedThrough(): number {
    const row = this.readWatermark.get() as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  /**
   * The highest event id ever given out (0 before the first event), also when retention removed
   * it. Every event appended later has a larger id, so it is a valid resume point for any machine
   * whose events up to it a reader has seen.
   */
  highWater(): number {
    const row = this.readHighWater.get() as { seq: number } | undefined;
    return Math.max(row?.seq ?? 0, this.purgedThrough());
  }

  /**
   * Whether replaying after `afterId` could miss events that retention removed. Ids are global, so
   * an id below the watermark may have had events of this machine after it that are gone.
   */
  isExpired(afterId: number): boolean {
    return afterId < this.purgedThrough();
  }

  /** The machine's oldest retained event id, if any. */
  oldestId(machineId: string): number | null {
    const row = this.db.prepare('SELECT min(id) AS id FROM events WHERE machine_id = ?').get(machineId) as {
      id: number | null;
    };
    return row.id;
  }

  append(e: NewLifecycleEvent): LifecycleEvent {
    const at = Date.now();
    const row = {
      machine_id: e.machine_id,
      execution_id: e.execution_id,
      type: e.type,
      status: e.status,
      previous_status: e.previous_status ?? null,
      reason: e.reason ?? null,
      data: JSON.stringify(e.data ?? {}),
      at,
    };
    const id = Number(this.insert.run(row).lastInsertRowid);
    const event = fromRow({ ...row, id });
    for (const listener of this.listeners.get(e.machine_id) ?? []) {
      try {
        listener(event);
      } catch {
        // one subscriber's failure is its own
      }
    }
    return event;
  }

  /** Calls `listener` for every event of the machine appended from now on; returns the unsubscribe. */
  subscribe(machineId: string, listener: EventListener): () => void {
    let set = this.listeners.get(machineId);
    if (!set) {
      set = new Set();
      this.listeners.set(machineId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(machineId) === set) this.listeners.delete(machineId);
    };
  }

  /** The machine's events with id > afterId, oldest first. */
  after(machineId: string, afterId: number, limit: number): LifecycleEvent[] {
    return (
      this.db
        .prepare('SELECT * FROM events WHERE machine_id = ? AND id > ? ORDER BY id LIMIT ?')
        .all(machineId, afterId, limit) as Row[]
    ).map(fromRow);
  }
}

function fromRow(r: Row): LifecycleEvent {
  return {
    id: r.id,
    machine_id: r.machine_id,
    execution_id: r.execution_id,
    type: r.type,
    status: r.status,
    previous_status: r.previous_status,
    reason: r.reason,
    data: JSON.parse(r.data) as Record<string, unknown>,
    at: new Date(r.at).toISOString(),
  };
}
