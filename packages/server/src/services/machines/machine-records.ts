import {
  CodedError,
  type LifecycleEvent,
  type MachineOperation,
  type MachineState,
  admission,
} from '@nullspace/protocol';
import type { EventLog } from '../../events/event-log.js';
import type { MachineRecord, MachineStore } from '../../store/machine-store.js';
import { OperationQueue } from './operation-queue.js';

/** A record change that comes with a state change (see {@link MachineRecords.setStatus}). */
export type RecordPatch = Partial<Omit<MachineRecord, 'id' | 'created_at' | 'status'>>;

/**
 * The machines' records as the services see them: reading one (or `machine_not_found`), checking
 * an operation against its state, and changing its state — stored, with its lifecycle event — in
 * its operation queue. Every state change of a machine goes through here.
 */
export class MachineRecords {
  private readonly queue = new OperationQueue();

  constructor(
    readonly store: MachineStore,
    private readonly events: EventLog,
  ) {}

  /** The stored record of a machine; `machine_not_found` when there is none. */
  get(id: string): MachineRecord {
    const m = this.store.get(id);
    if (!m) throw new CodedError('machine_not_found', `machine ${id} not found`, { machine_id: id });
    return m;
  }

  /**
   * Whether `op` runs on `m` now (`run`) or is already done (`as_is`); otherwise throws
   * `machine_transitioning` (with `retry_after`) or `invalid_state` (see protocol `ADMISSION`).
   */
  admit(op: MachineOperation, m: MachineRecord): 'run' | 'as_is' {
    const verdict = admission(op, m.status);
    if (verdict === 'run' || verdict === 'as_is') return verdict;
    if (verdict.code === 'machine_transitioning')
      throw new CodedError('machine_transitioning', `machine ${m.id} is ${m.status}`, {
        machine_id: m.id,
        status: m.status,
        retry_after: verdict.retryAfterS,
      });
    const hint =
      m.status === 'paused' || m.status === 'hibernated'
        ? '; connect (resume) it first, or set auto_resume'
        : '';
    throw new CodedError('invalid_state', `machine ${m.id} is ${m.status}${hint}`, {
      machine_id: m.id,
      status: m.status,
      ...(m.status_reason ? { status_reason: m.status_reason } : {}),
    });
  }

  /** `m` if it is running; else the error a caller that needs it running gets. */
  requireRunning(m: MachineRecord): MachineRecord {
    this.admit('use', m);
    return m;
  }

  /** Runs `fn` after every earlier operation on the same machine (or snapshot) has finished. */
  serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.queue.run(key, fn);
  }

  /** Waits (bounded) for the operations in flight. */
  drain(waitMs: number): Promise<void> {
    return this.queue.drain(waitMs);
  }

  /**
   * Runs `fn` in the machine's operation queue once it is running (or, with `pausedToo`, paused):
   * never at the same time as a pause, hibernate, snapshot, fork or kill of it.
   */
  async whileRunning<T>(id: string, fn: () => Promise<T>, o: { pausedToo?: boolean } = {}): Promise<T> {
    this.get(id);
    return this.serialized(id, async () => {
      const m = this.get(id);
      if (!(o.pausedToo && m.status === 'paused')) this.requireRunning(m);
      return fn();
    });
  }

  /**
   * Stores a state change (with `patch`) and appends its `status_changed` event. A machine being
   * killed or killed stays so: a kill does not wait for a transition in progress (it ends the
   * machine under it), and when that transition then settles, its state change is refused with
   * `invalid_state`, which its caller gets.
   */
  setStatus(id: string, status: MachineState, patch: RecordPatch = {}): MachineRecord {
    const before = this.get(id);
    if (
      (before.status === 'killed' && status !== 'killed') ||
      (before.status === 'killing' && status !== 'killing' && status !== 'killed')
    )
      throw new CodedError('invalid_state', `machine ${id} was killed`, {
        machine_id: id,
        status: before.status,
        ...(before.status_reason ? { status_reason: before.status_reason } : {}),
      });
    const after = this.store.update(id, { ...patch, status });
    if (before.status !== status)
      this.events.append({
        machine_id: id,
        execution_id: after.execution_id,
        type: 'status_changed',
        status,
        previous_status: before.status,
        reason:
          status === 'failed' || status === 'killing' || status === 'killed' || patch.status_reason
            ? (after.status_reason ?? null)
            : null,
      });
    return after;
  }

  /** Stores a change that is not a state change. */
  update(id: string, patch: Partial<Omit<MachineRecord, 'id' | 'status'>>): MachineRecord {
    return this.store.update(id, patch);
  }

  /** Appends a lifecycle event of `m` that is not a state change. */
  event(
    m: MachineRecord,
    type: LifecycleEvent['type'],
    data: Record<string, unknown>,
    reason?: string,
  ): void {
    this.events.append({
      machine_id: m.id,
      execution_id: m.execution_id,
      type,
      status: m.status,
      data,
      ...(reason !== undefined ? { reason } : {}),
    });
  }
}
