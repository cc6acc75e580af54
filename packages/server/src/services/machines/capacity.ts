import { performance } from 'node:perf_hooks';
import { CodedError } from '@nullspace/protocol';
import type { Teardowns } from './teardowns.js';

/**
 * How long a create waits for killed machines' teardowns when they alone fill the capacity (see
 * {@link MachineCapacity.admit}): as long as one of them finishes every
 * {@link TEARDOWN_STALL_MS}, up to this in all; then it answers `resource_exhausted` as always.
 */
export const TEARDOWN_WAIT_MS = 20_000;
/** A create stops waiting when no teardown finished for this long (they are stuck or failing). */
export const TEARDOWN_STALL_MS = 5_000;

export interface MachineCapacityOptions {
  /** `NULLSPACE_MAX_MACHINES`. */
  max: number;
  /** Machines in a live state now (they hold runtime resources). */
  live: () => number;
  teardowns: Pick<Teardowns, 'holding' | 'nextSettled'>;
  /** See {@link TEARDOWN_WAIT_MS} and {@link TEARDOWN_STALL_MS}. */
  waitMs?: number;
  stallMs?: number;
}

/**
 * The server's machine limit. A killed machine whose teardown is not done (queued, running,
 * waiting for a retry or given up) still holds what a live one holds — disk image and loop device,
 * mounts, link, namespace, cgroups — so it counts like a live one: a create/kill churn faster than
 * the teardown queue would otherwise pile them up on the host without bound.
 */
export class MachineCapacity {
  constructor(private readonly o: MachineCapacityOptions) {}

  /** Refuses (`resource_exhausted`) when `n` more machines would exceed the limit. */
  check(n: number): void {
    const tearingDown = this.o.teardowns.holding();
    if (this.o.live() + tearingDown + n > this.o.max)
      throw new CodedError(
        'resource_exhausted',
        `this server runs at most ${this.o.max} machines at once` +
          (tearingDown > 0 ? ` (${tearingDown} killed ones are still being torn down)` : ''),
        { max_machines: this.o.max },
      );
  }

  /**
   * Admits `n` more machines: waits while only killed machines' teardowns stand between them and
   * the limit — a create in a create/kill churn faster than the teardowns waits for them (which
   * then run without deferring to kills) rather than failing, as long as they progress
   * ({@link TEARDOWN_STALL_MS}) and at most `waitMs` — then {@link check}s and runs `make` (which
   * stores the machines, so that they count as live) in one synchronous step. Live machines do not
   * go by themselves: with those at the limit it refuses at once.
   *
   * One step, because every waiter wakes when a teardown finishes: had each one only returned once
   * it saw room, all of them would have seen the same free place before the first stored its
   * machine, and all but one would have been refused (measured: a soak's creates answered 429 within
   * 0.1–1.5 s, with the teardowns still progressing).
   */
  async admit<T>(n: number, make: () => T): Promise<T> {
    const deadline = performance.now() + (this.o.waitMs ?? TEARDOWN_WAIT_MS);
    for (;;) {
      const live = this.o.live();
      const left = deadline - performance.now();
      if (live + n > this.o.max || live + this.o.teardowns.holding() + n <= this.o.max || left <= 0) break;
      const progressed = await this.o.teardowns.nextSettled(
        Math.min(left, this.o.stallMs ?? TEARDOWN_STALL_MS),
      );
      if (!progressed) break;
    }
    this.check(n);
    return make();
  }
}
