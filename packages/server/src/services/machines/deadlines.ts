import { type SetTimeoutRequest, checkAutoResume } from '@nullspace/protocol';
import type { MachineRecord } from '../../store/machine-store.js';
import type { MachineRecords } from './machine-records.js';

/** Longest single setTimeout Node accepts; longer deadlines are re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface DeadlineActions {
  /** A running machine's deadline passed (its `on_timeout` applies). */
  expired(m: MachineRecord): void;
  /** A machine stayed paused longer than the spill time (it is hibernated). */
  spill(m: MachineRecord): void;
}

/**
 * Every machine's timers: the deadline of a running machine (`expires_at`, stored, so a restart
 * re-arms it) and the spill of a paused one into hibernation. One timer per machine at a time. What
 * happens when one fires is the caller's (`actions`); this class only keeps time, and takes
 * `set_timeout` requests.
 */
export class Deadlines {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly records: MachineRecords,
    private readonly o: { pauseSpillAfterMs: number; actions: DeadlineActions },
  ) {}

  /** Arms the deadline of a running machine (none for a machine waiting in a warm pool). */
  arm(m: MachineRecord): void {
    if (m.warm_pool_id !== null) return;
    this.armTimer(m.id, m.expires_at, () => {
      const current = this.records.store.get(m.id);
      if (!current || current.status !== 'running') return;
      if (current.expires_at > Date.now()) {
        this.arm(current); // re-armed by set_timeout/connect, or a deadline beyond one timer's reach
        return;
      }
      this.o.actions.expired(current);
    });
  }

  /** Arms the hibernation of a paused machine after the spill time. */
  armSpill(m: MachineRecord): void {
    const at = (m.paused_at ?? Date.now()) + this.o.pauseSpillAfterMs;
    this.armTimer(m.id, at, () => {
      const current = this.records.store.get(m.id);
      if (!current || current.status !== 'paused') return;
      this.o.actions.spill(current);
    });
  }

  disarm(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  /** Stops every timer; none is armed after this (machines keep their stored deadlines). */
  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** `set_timeout`: a new deadline (now + timeout) and, optionally, a new timeout action. */
  async setTimeout(id: string, req: SetTimeoutRequest): Promise<MachineRecord> {
    this.records.get(id);
    return this.records.serialized(id, async () => {
      const m = this.records.get(id);
      this.records.admit('set_timeout', m);
      const onTimeout = req.on_timeout ?? m.on_timeout;
      const autoResume = req.auto_resume ?? (req.on_timeout === 'kill' ? false : m.auto_resume);
      checkAutoResume(onTimeout, autoResume);
      const updated = this.records.update(id, {
        timeout: req.timeout,
        on_timeout: onTimeout,
        auto_resume: autoResume,
        expires_at: Date.now() + req.timeout * 1000,
      });
      if (updated.status === 'running') this.arm(updated);
      this.records.event(updated, 'timeout_set', {
        timeout: req.timeout,
        on_timeout: onTimeout,
        auto_resume: autoResume,
        expires_at: new Date(updated.expires_at).toISOString(),
      });
      return updated;
    });
  }

  /** `connect` of a running machine with a timeout: the deadline moves to now + `timeout`. */
  extend(m: MachineRecord, timeout: number): MachineRecord {
    const updated = this.records.update(m.id, { timeout, expires_at: Date.now() + timeout * 1000 });
    this.arm(updated);
    this.records.event(updated, 'timeout_set', { expires_at: new Date(updated.expires_at).toISOString() });
    return updated;
  }

  private armTimer(id: string, at: number, fire: () => void): void {
    this.disarm(id);
    if (this.closed) return;
    const delay = Math.max(0, at - Date.now());
    const timer = setTimeout(
      () => {
        this.timers.delete(id);
        if (Date.now() < at) {
          this.armTimer(id, at, fire);
          return;
        }
        fire();
      },
      Math.min(delay, MAX_TIMER_MS),
    );
    timer.unref();
    this.timers.set(id, timer);
  }
}
