import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MachineDriver } from '@nullspace/runtime';
import type { Logger } from '../../log.js';
import type { MachineRecord } from '../../store/machine-store.js';
import type { MachineVolumes } from '../volume-service.js';
import type { MachineNetworks } from './machine-networks.js';
import type { MachineRecords } from './machine-records.js';
import type { SnapshotImages } from './snapshot-images.js';

/** What {@link Teardowns.stats} reports (server metrics). */
export interface TeardownStats {
  /** Waiting for a slot, for the machine's queue, or for a retry. */
  pending: number;
  /** Tearing down now. */
  running: number;
  /** Gave up after every retry: left for the next server start, which tries again. */
  failed: number;
  /** Finished since the server started. */
  doneTotal: number;
  /** Attempts that failed since the server started (each retry counts). */
  failedAttemptsTotal: number;
}

export interface TeardownsOptions {
  /** Only its `destroy` (the one teardown of the host side). */
  driver: Pick<MachineDriver, 'destroy'>;
  volumes: MachineVolumes | undefined;
  log: Logger;
  /** Teardowns run at the same time (each is mostly waiting for host tools). */
  concurrency?: number;
  /** Waits before each retry of a failed teardown; after the last, it is given up (until restart). */
  retryDelaysMs?: readonly number[];
}

const DEFAULT_CONCURRENCY = 4;
const DEFAULT_RETRY_DELAYS_MS = [1_000, 5_000, 30_000];
/** A teardown waits until no kill was queued for this long… */
const QUIET_MS = 20;
/** …but never longer than this: a steady stream of kills does not starve the teardowns. */
const MAX_DEFER_MS = 1_000;

interface Job {
  machine: MachineRecord;
  /** Pause snapshots the kill marked deleted: their image directories go here. */
  images: readonly string[];
  state: 'pending' | 'running' | 'failed';
  attempts: number;
  /** Resolves when the job is done or given up. */
  done: Promise<void>;
  finish: () => void;
  retry?: NodeJS.Timeout;
}

/**
 * The one place a killed machine's host resources are freed, after its kill has answered: its
 * processes were ended by the kill (`MachineDriver.terminate`); here `destroy` waits for them to be
 * gone and removes runc's container, mounts, loop device, link, namespace, egress table and files,
 * then its pause snapshots, volume attachments and host-wide address claim go. Until then its
 * address block is not handed out again (its claim is still held, and {@link netIndexes} names it).
 *
 * Bounded: at most `concurrency` at once; each runs in the machine's operation queue, so after
 * whatever transition the kill cut short has settled. Kills first: a teardown starts once no kill
 * has been queued for {@link QUIET_MS} (at most {@link MAX_DEFER_MS} later). Its host tools are
 * spawned from the server's one thread, and a spawn blocks it for milliseconds (a fork of the
 * server: 7–40 ms each measured on a loaded 2-core host), so teardowns running during a burst of
 * kills would delay the kills' answers — unless a create is waiting for room. Killed machines
 * whose teardown is not done count toward `NULLSPACE_MAX_MACHINES` ({@link holding}, see
 * MachineCapacity): they hold what live ones hold. A failed teardown is logged and retried
 * (`retryDelaysMs`), then counted as failed in the metrics; a server start sweeps what is left of
 * machines that are not alive in the store (Readoption), so nothing is leaked for good. A server
 * that stops drains this first ({@link close}).
 */
export class Teardowns {
  private readonly jobs = new Map<string, Job>();
  private readonly waiting: (() => void)[] = [];
  /** Who waits for the next teardown to finish or be given up ({@link nextSettled}). */
  private settledWaiters: (() => void)[] = [];
  private running = 0;
  private doneTotal = 0;
  private failedAttemptsTotal = 0;
  private closed = false;
  private lastQueuedAt = 0;

  constructor(
    private readonly records: MachineRecords,
    private readonly parts: { images: SnapshotImages; networks: MachineNetworks },
    private readonly o: TeardownsOptions,
  ) {}

  /**
   * Queues the teardown of killed machine `m` (one per machine: a second call joins the first),
   * with the pause snapshots its kill marked deleted (`images`), whose directories it removes.
   * Resolves when it is done or given up; never rejects (failures are logged and counted).
   */
  enqueue(m: MachineRecord, images: readonly string[] = []): Promise<void> {
    const existing = this.jobs.get(m.id);
    if (existing && existing.state !== 'failed') return existing.done;
    let finish = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    this.lastQueuedAt = performance.now();
    const job: Job = {
      machine: m,
      images: [...images, ...(existing?.images ?? [])],
      state: 'pending',
      attempts: 0,
      done,
      finish,
    };
    this.jobs.set(m.id, job);
    void this.attempt(job);
    return done;
  }

  /** Whether machine `id` still has a teardown pending, running or given up. */
  has(id: string): boolean {
    return this.jobs.has(id);
  }

  /**
   * Killed machines whose host resources are not freed yet: queued, running, waiting for a retry
   * or given up. Each still holds what a live machine holds (disk, mounts, link, namespace,
   * cgroups), so they count toward `NULLSPACE_MAX_MACHINES` (MachineCapacity): a
   * create/kill churn faster than this queue would otherwise pile them up on the host.
   */
  holding(): number {
    return this.jobs.size;
  }

  /**
   * Resolves when the next teardown finishes or is given up (true), or after `ms` (false). While
   * someone waits here, teardowns do not defer to kills ({@link quiet}).
   */
  async nextSettled(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    let wake = () => {};
    const settled = await new Promise<boolean>((resolve) => {
      wake = () => resolve(true);
      this.settledWaiters.push(wake);
      timer = setTimeout(() => resolve(false), ms);
    });
    clearTimeout(timer);
    this.settledWaiters = this.settledWaiters.filter((w) => w !== wake);
    return settled;
  }

  /** Resolves once every teardown of a machine matching `which` is done or given up. */
  async until(which: (m: MachineRecord) => boolean): Promise<void> {
    await Promise.all([...this.jobs.values()].filter((j) => which(j.machine)).map((j) => j.done));
  }

  /** The address blocks of machines whose teardown is not finished: not to be handed out. */
  netIndexes(): Set<number> {
    const out = new Set<number>();
    for (const j of this.jobs.values()) if (j.machine.net_index !== null) out.add(j.machine.net_index);
    return out;
  }

  stats(): TeardownStats {
    let pending = 0;
    let failed = 0;
    for (const j of this.jobs.values()) {
      if (j.state === 'pending') pending++;
      else if (j.state === 'failed') failed++;
    }
    return {
      pending,
      running: this.running,
      failed,
      doneTotal: this.doneTotal,
      failedAttemptsTotal: this.failedAttemptsTotal,
    };
  }

  /**
   * Stops retrying and waits (bounded) for the teardowns queued or running: a server that stops
   * leaves nothing of a machine it answered as killed, unless a teardown is still failing (then
   * the next start sweeps it). Jobs waiting for a retry are given up at once.
   */
  async close(waitMs: number): Promise<void> {
    this.closed = true;
    for (const j of this.jobs.values())
      if (j.retry) {
        clearTimeout(j.retry);
        j.retry = undefined;
        j.state = 'failed';
        j.finish();
      }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.jobs.values()].map((j) => j.done)),
      new Promise((resolve) => {
        timer = setTimeout(resolve, waitMs);
      }),
    ]);
    clearTimeout(timer);
    const left = [...this.jobs.keys()];
    if (left.length > 0)
      this.o.log.warn('server stopping with teardowns unfinished; the next start finishes them', {
        machine_ids: left.slice(0, 20),
        count: left.length,
      });
  }

  private async attempt(job: Job): Promise<void> {
    const id = job.machine.id;
    job.state = 'pending';
    job.attempts++;
    try {
      // After whatever transition the kill cut short (it fails fast: its processes are dead).
      await this.records.serialized(id, () => this.withSlot(job, () => this.tearDown(job)));
      this.jobs.delete(id);
      this.doneTotal++;
      job.finish();
      this.settled();
    } catch (err) {
      this.failedAttemptsTotal++;
      const delay = (this.o.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS)[job.attempts - 1];
      if (delay === undefined || this.closed) {
        job.state = 'failed';
        this.o.log.error('teardown of a killed machine failed; given up until the server restarts', {
          machine_id: id,
          attempts: job.attempts,
          error: err,
        });
        job.finish();
        this.settled();
        return;
      }
      this.o.log.error('teardown of a killed machine failed; retrying', {
        machine_id: id,
        attempts: job.attempts,
        retry_in_ms: delay,
        error: err,
      });
      job.state = 'pending';
      job.retry = setTimeout(() => {
        job.retry = undefined;
        void this.attempt(job);
      }, delay);
      job.retry.unref();
    }
  }

  private settled(): void {
    const waiters = this.settledWaiters;
    this.settledWaiters = [];
    for (const w of waiters) w();
  }

  private async withSlot<T>(job: Job, fn: () => Promise<T>): Promise<T> {
    const limit = this.o.concurrency ?? DEFAULT_CONCURRENCY;
    // A finished job hands its slot to the next waiting one directly (no newcomer can slip in).
    if (this.running >= limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    job.state = 'running';
    try {
      await this.quiet();
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /**
   * Resolves once no kill has been queued for QUIET_MS, or MAX_DEFER_MS have passed, or at close,
   * or at once while a create waits for room ({@link nextSettled}): then the teardowns are what
   * stands between it and the capacity, and under a steady create/kill churn (no quiet moment)
   * deferring each by MAX_DEFER_MS made them fall behind the kills without bound.
   */
  private async quiet(): Promise<void> {
    const start = performance.now();
    for (;;) {
      const now = performance.now();
      if (
        this.closed ||
        this.settledWaiters.length > 0 ||
        now - this.lastQueuedAt >= QUIET_MS ||
        now - start >= MAX_DEFER_MS
      )
        return;
      await sleep(QUIET_MS - (now - this.lastQueuedAt));
    }
  }

  /** Everything a killed machine held, host and store; each step idempotent (a retry redoes it). */
  private async tearDown(job: Job): Promise<void> {
    const m = job.machine;
    await this.o.driver.destroy(m.id);
    for (const id of job.images) await this.parts.images.removeImage(id);
    // Also any the transition the kill cut short stored after it (a hibernate that finished).
    await this.parts.images.dropPauseSnapshots(m.id);
    this.o.volumes?.release(m.id);
    this.parts.networks.release(m);
  }
}
