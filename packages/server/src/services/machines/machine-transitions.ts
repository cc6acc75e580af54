import { CodedError, type MachineState, newId } from '@nullspace/protocol';
import type { MachineDriver } from '@nullspace/runtime';
import type { Logger } from '../../log.js';
import type { MachineRecord } from '../../store/machine-store.js';
import type { TemplateResolver } from '../template-catalog.js';
import type { MachineVolumes } from '../volume-service.js';
import type { AgentConnections } from './agent-connections.js';
import type { Deadlines } from './deadlines.js';
import { publicReason, transitionError } from './failures.js';
import { driverSpec } from './machine-info.js';
import type { MachineNetworks } from './machine-networks.js';
import type { MachineRecords } from './machine-records.js';
import type { SnapshotImages } from './snapshot-images.js';
import type { Teardowns } from './teardowns.js';

export interface MachineTransitionsOptions {
  driver: MachineDriver;
  templates: TemplateResolver;
  volumes: MachineVolumes | undefined;
  /** Deadline of one transition (pause, hibernate, resume). */
  transitionTimeoutMs: number;
  log: Logger;
}

/**
 * A machine's lifecycle transitions: pause (freeze), hibernate (checkpoint to disk and release),
 * resume (thaw or restore into a new execution), kill. Each runs in the machine's queue, passes
 * through its transitional state, and on failure settles the machine in a defined state (back
 * where it was when its processes still run, else `failed`) that `kill` can always finish.
 */
export class MachineTransitions {
  constructor(
    private readonly records: MachineRecords,
    private readonly parts: {
      images: SnapshotImages;
      agents: AgentConnections;
      networks: MachineNetworks;
      deadlines: Deadlines;
      teardowns: Teardowns;
    },
    private readonly o: MachineTransitionsOptions,
  ) {}

  /** Kills in progress, by machine: a second kill of the same machine joins the first. */
  private readonly killing = new Map<string, Promise<MachineRecord>>();

  /**
   * Kills the machine: answers once it is irrevocably dead — its processes ended
   * (`MachineDriver.terminate`: its init, its cgroups and a checkpoint or restore in progress,
   * thawed if frozen) and its record `killed` — and leaves the rest of its teardown to
   * {@link Teardowns}, which frees its host resources after. It does not wait for a transition in
   * progress (pause, hibernate, resume, snapshot, fork, create): that one fails at once, its
   * processes being dead, and cannot move the record out of `killed` (MachineRecords.setStatus).
   * Idempotent; works from every state, `failed` included.
   */
  async kill(id: string, reason = 'killed by request'): Promise<MachineRecord> {
    const m = this.records.get(id);
    const inFlight = this.killing.get(id);
    if (inFlight) return inFlight;
    if (this.records.admit('kill', m) === 'as_is') {
      // Killed already; a teardown that was given up is tried again (one still queued is joined).
      if (this.parts.teardowns.has(id)) void this.parts.teardowns.enqueue(m);
      return m;
    }
    const killed = this.killNow(m, reason).finally(() => this.killing.delete(id));
    this.killing.set(id, killed);
    return killed;
  }

  private async killNow(m: MachineRecord, reason: string): Promise<MachineRecord> {
    const id = m.id;
    this.parts.deadlines.disarm(id);
    // Stored first: a server that crashes here finds it `killing` and kills it again (Readoption).
    this.records.setStatus(id, 'killing', { status_reason: reason, transition_deadline: null });
    this.parts.agents.drop(id);
    try {
      await this.o.driver.terminate(id);
    } catch (err) {
      // Not a failure of the kill: the teardown ends the processes again and waits for them.
      this.o.log.error('ending the processes of a killed machine failed; its teardown retries', {
        machine_id: id,
        error: err,
      });
    }
    const images = this.parts.images.forgetPauseSnapshots(id);
    const killed = this.records.setStatus(id, 'killed', { status_reason: reason, paused_at: null });
    this.o.log.info('machine killed', { machine_id: id, reason });
    void this.parts.teardowns.enqueue(killed, images);
    return killed;
  }

  /** Freezes every process of a running machine. A paused or hibernated machine is returned as is. */
  async pause(id: string, reason = 'paused by request'): Promise<MachineRecord> {
    this.records.get(id);
    return this.records.serialized(id, async () => {
      const m = this.records.get(id);
      if (this.records.admit('pause', m) === 'as_is') return m;
      this.parts.deadlines.disarm(id);
      this.records.setStatus(id, 'pausing', { status_reason: reason, transition_deadline: this.deadline() });
      try {
        await this.o.driver.pause(id);
      } catch (err) {
        await this.recoverRunning(id, 'pause', err);
        throw this.failed(id, 'pause', err);
      }
      const snap = this.parts.images.insert(m, 'pause');
      const paused = this.records.setStatus(id, 'paused', {
        snapshot_id: snap.id,
        paused_at: Date.now(),
        transition_deadline: null,
      });
      this.parts.deadlines.armSpill(paused);
      return paused;
    });
  }

  /**
   * Checkpoints a running or paused machine to disk and releases its processes, memory and network
   * namespace. A hibernated machine is returned as is.
   */
  async hibernate(id: string, reason = 'hibernated by request'): Promise<MachineRecord> {
    const { images, agents, deadlines } = this.parts;
    this.records.get(id);
    return this.records.serialized(id, async () => {
      const m = this.records.get(id);
      if (this.records.admit('hibernate', m) === 'as_is') return m;
      const from = m.status;
      deadlines.disarm(id);
      const existing = m.snapshot_id ? images.store.get(m.snapshot_id) : undefined;
      const snap = existing?.status === 'memory' ? existing : images.insert(m, 'pause');
      const dir = images.dirOf(snap.id);
      // The snapshot id is stored first: a server that crashes mid-checkpoint finds the image.
      this.records.setStatus(id, 'hibernating', {
        status_reason: reason,
        snapshot_id: snap.id,
        transition_deadline: this.deadline(),
      });
      try {
        // The checkpoint must not hold connections to this server: end them (a command in flight
        // keeps running in the machine; its caller gets an error). A paused agent cannot close
        // its side, so it is thawed for this (the checkpoint freezes everything again at once).
        if (from === 'paused') await this.o.driver.unpause(id);
        await agents.disconnect(id);
        await this.o.driver.hibernate(id, dir, this.o.transitionTimeoutMs);
      } catch (err) {
        await images.removeImage(snap.id).catch(() => undefined);
        if (snap !== existing) {
          images.store.update(snap.id, { status: 'deleted' });
          this.records.update(id, { snapshot_id: m.snapshot_id });
        }
        if (from === 'paused') await this.recoverPaused(id, 'hibernate', err);
        else await this.recoverRunning(id, 'hibernate', err);
        throw this.failed(id, 'hibernate', err);
      }
      await images.markReady(snap.id);
      return this.records.setStatus(id, 'hibernated', {
        snapshot_id: snap.id,
        paused_at: m.paused_at ?? Date.now(),
        transition_deadline: null,
      });
    });
  }

  /**
   * Returns a running machine, resuming it first if it is paused or hibernated (same id, new
   * execution). The deadline becomes now + `timeout` (the caller's) or the machine's own timeout.
   */
  async connect(id: string, timeout?: number): Promise<MachineRecord> {
    this.records.get(id);
    return this.records.serialized(id, async () => {
      const m = this.records.get(id);
      if (this.records.admit('resume', m) === 'as_is')
        return timeout === undefined ? m : this.parts.deadlines.extend(m, timeout);
      return this.resume(m, timeout ?? m.timeout);
    });
  }

  /** `Machine.resume(snapshotId)`: resumes the machine a pause snapshot belongs to. */
  async resumeSnapshot(snapshotId: string, timeout?: number): Promise<MachineRecord> {
    const snap = this.parts.images.store.get(snapshotId);
    if (!snap || snap.status === 'deleted')
      throw new CodedError('snapshot_not_found', `snapshot ${snapshotId} not found`, {
        snapshot_id: snapshotId,
      });
    if (snap.kind !== 'pause')
      throw new CodedError(
        'invalid_state',
        `snapshot ${snapshotId} is reusable: start new machines from it with create({snapshot_id})`,
        { snapshot_id: snapshotId },
      );
    return this.connect(snap.machine_id, timeout);
  }

  /** The error a caller gets for a failed transition; the machine's state was settled before. */
  failed(id: string, what: string, err: unknown): CodedError {
    this.o.log.error(`${what} failed`, { machine_id: id, error: err });
    return transitionError(id, what, err, this.records.store.get(id)?.status ?? 'unknown');
  }

  /**
   * After a failed pause or hibernate of a running machine: running again if its processes run
   * and its agent answers (thawed if a killed checkpoint left it frozen), else failed.
   */
  async recoverRunning(id: string, what: string, err: unknown): Promise<void> {
    const reason = `${what} failed: ${publicReason(err)}`;
    if (await this.parts.agents.aliveAndAnswering(id, true)) {
      const running = this.records.setStatus(id, 'running', {
        status_reason: reason,
        transition_deadline: null,
      });
      this.parts.deadlines.arm(running);
    } else {
      this.records.setStatus(id, 'failed', { status_reason: reason, transition_deadline: null });
    }
  }

  /** After a failed hibernate of a paused machine: paused again if still frozen, else as above. */
  private async recoverPaused(id: string, what: string, err: unknown): Promise<void> {
    const state = await this.o.driver.inspect(id).catch(() => 'missing' as const);
    if (state === 'paused') {
      const paused = this.records.setStatus(id, 'paused', {
        status_reason: `${what} failed: ${publicReason(err)}`,
        transition_deadline: null,
      });
      this.parts.deadlines.armSpill(paused);
      return;
    }
    await this.recoverRunning(id, what, err);
  }

  /** Runs inside the machine's queue. */
  private async resume(m: MachineRecord, timeout: number): Promise<MachineRecord> {
    const { images, agents, networks, deadlines } = this.parts;
    const from = m.status;
    deadlines.disarm(m.id);
    this.records.setStatus(m.id, 'resuming', { status_reason: null, transition_deadline: this.deadline() });
    const snap = m.snapshot_id ? images.store.get(m.snapshot_id) : undefined;
    try {
      if (from === 'paused') {
        await this.o.driver.unpause(m.id);
      } else {
        if (!snap || snap.status !== 'ready')
          throw new CodedError('internal', `machine ${m.id} has no hibernation image`);
        const spec = driverSpec(
          m,
          this.o.templates.lowerdirOf(m.template_id, m.template),
          networks.networkOf(m),
          this.o.volumes?.driverMounts(m.id) ?? [],
        );
        await this.o.driver.restore(spec, images.dirOf(snap.id), this.o.transitionTimeoutMs);
      }
    } catch (err) {
      this.o.log.error('resume failed', { machine_id: m.id, from, error: err });
      // A failed unpause or restore leaves the machine as it was: paused or hibernated.
      const state =
        from === 'paused' ? await this.o.driver.inspect(m.id).catch(() => 'missing' as const) : 'missing';
      const back: MachineState =
        from === 'paused' && state !== 'paused' && state !== 'running' ? 'failed' : from;
      this.records.setStatus(m.id, back, {
        status_reason: `resume failed: ${publicReason(err)}`,
        transition_deadline: null,
      });
      throw this.failed(m.id, 'resume', err);
    }
    if (snap) await images.remove(snap.id, 'consumed');
    agents.drop(m.id); // a restored agent listens on a new socket
    const now = Date.now();
    const running = this.records.setStatus(m.id, 'running', {
      execution_id: newId('execution'),
      started_at: now,
      paused_at: null,
      timeout,
      expires_at: now + timeout * 1000,
      transition_deadline: null,
    });
    deadlines.arm(running);
    this.o.log.info('machine resumed', { machine_id: m.id, from, ms: Date.now() - now });
    return running;
  }

  private deadline(): number {
    return Date.now() + this.o.transitionTimeoutMs;
  }
}
