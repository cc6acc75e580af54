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
 * The durable lifecycle event log (the `events` table of the server's SQLite database). `append`
 * writes the row and notifies subscribers in the same synchronous call, so a reader that queries
 * the table and subscribes without yielding to the event loop in between can neither miss nor
 * duplicate an event.
 */
export class EventLog {
  private readonly listeners = new Map<string, Set<EventListener>>();
  private readonly insert: Database.Statement;

  constructor(private readonly db: Database.Database) {
    this.insert = db.prepare(
      `INSERT INTO events (machine_id, execution_id, type, status, previous_status, reason, data, at)
       VALUES (@machine_id, @execution_id, @type, @status, @previous_status, @reason, @data, @at)`,
    );
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
