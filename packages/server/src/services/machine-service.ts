import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import type http from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import {
  BUILD_METADATA,
  CodedError,
  type CreateMachineSpec,
  type ForkChildResult,
  KEPT_STATES,
  LIVE_STATES,
  type LifecycleEvent,
  type ListMachinesQuery,
  type ListMachinesResponse,
  type MachineInfo,
  type MachineState,
  type NetworkSpec,
  type RunCommandResult,
  type SetTimeoutRequest,
  type SnapshotInfo,
  type SnapshotKind,
  TRANSITIONAL_STATES,
  type TimeoutAction,
  type WarmPoolCheckout,
  canonicalTemplateRef,
  checkAutoResume,
  invalidArgument,
  newId,
  parseCreateMachine,
  pickFields,
} from '@nullspace/protocol';
import {
  type AddressPool,
  AgentClient,
  type DriverMachineSpec,
  type DriverNetwork,
  type MachineDriver,
  type MachineLink,
  connectToMachinePort,
  hostIfOf,
  linkFor,
} from '@nullspace/runtime';
import type { EventLog } from '../events/event-log.js';
import type { Logger } from '../log.js';
import type { MachineRecord, MachineStore } from '../store/machine-store.js';
import { type SnapshotRecord, SnapshotStore, snapshotInfo } from '../store/snapshot-store.js';
import { START_TAG, startAndWaitReady } from '../templates/agent-ops.js';
import {
  DEFAULT_NETWORK,
  DENY_ALL_EGRESS,
  driverNetwork,
  isBroadening,
  networkInfo,
} from './network-policy.js';
import type { ResolvedTemplate, TemplateResolver } from './template-service.js';
import type { MachineVolumes } from './volume-service.js';

/** Longest single setTimeout Node accepts; longer deadlines are re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long a snapshot or fork waits for commands in flight before ending their connections. */
const QUIESCE_WAIT_MS = 10_000;

/** What the machine service asks of warm pools (see WarmPoolService). */
export interface WarmPoolCheckouts {
  /**
   * A ready machine of the pool `spec` names (`machineId`), or none (`prefer`: cold-create with the
   * pool's template); throws `warm_pool_unavailable` (`require`) or `not_found`.
   */
  checkout(
    spec: CreateMachineSpec,
  ): Promise<{ machineId?: string; checkout: WarmPoolCheckout; template: string }>;
  /** How long a hit took in all, from the request to the machine handed over. */
  recordCheckout(poolId: string, ms: number): void;
}

/** See {@link MachineService.openAgent}. */
export interface AgentLease {
  machine: MachineRecord;
  /** Where to connect (the agent's pinned socket). */
  socketPath: string;
  /** The agent's keep-alive connections (per machine; closed when the machine's agent is dropped). */
  pool: http.Agent;
  /** Called when the machine's agent connections must end now (checkpoint, kill, restore). */
  onCut(cb: (reason: string) => void): void;
  release(): void;
  /** Turns a failure to reach the agent into what the caller should see (machine state errors). */
  failed(err: unknown): Promise<unknown>;
}

/** See {@link MachineService.openPort}. */
export interface PortLease extends AgentLease {
  link: MachineLink;
}

export interface MachineServiceOptions {
  store: MachineStore;
  events: EventLog;
  driver: MachineDriver;
  /** Where templates come from (their layers, env, start command, snapshot). */
  templates: TemplateResolver;
  /** Where snapshot and hibernation images live: `<dir>/<snapshot id>/`. */
  snapshotsDir: string;
  maxMachines: number;
  /** A machine paused longer than this is hibernated. */
  pauseSpillAfterMs: number;
  /** Deadline of one transition (pause, hibernate, resume, snapshot, fork). */
  transitionTimeoutMs: number;
  /** Where machines' addresses come from (one block per machine). */
  addressPool: AddressPool;
  /** Port of the host's DNS forwarder (on its 127.0.0.1); none: machines get no name service. */
  dnsPort?: number;
  /** Told how long each create that started a machine took (server metrics). */
  onCreated?: (ms: number) => void;
  /** Volume attachments of machines (docs/volumes.md); none: creates naming volumes fail. */
  volumes?: MachineVolumes;
  log: Logger;
}

/**
 * The machine lifecycle: create, inspect, list, pause, hibernate, resume, snapshot, fork, kill,
 * commands, and the timeout of every machine. Operations that change one machine's state run one
 * at a time per machine (a per-id queue), so concurrent calls never interleave. Every state change
 * goes through `setStatus`, which stores it and appends a lifecycle event. Deadlines are stored, so
 * a restart re-arms them.
 */
export class MachineService {
  private readonly store: MachineStore;
  private readonly snapshots: SnapshotStore;
  private readonly events: EventLog;
  private readonly driver: MachineDriver;
  private readonly log: Logger;
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly agents = new Map<string, AgentClient>();
  /** Agent calls in flight per machine, and who waits for them to end. */
  private readonly inFlight = new Map<string, { n: number; idle: (() => void)[] }>();
  private closed = false;

  constructor(private readonly o: MachineServiceOptions) {
    this.store = o.store;
    this.snapshots = new SnapshotStore(o.store.database);
    this.events = o.events;
    this.driver = o.driver;
    this.log = o.log.child({ component: 'machines' });
  }

  // ---- queries ------------------------------------------------------------------------------

  get(id: string): MachineInfo {
    return this.toInfo(this.record(id));
  }

  list(q: ListMachinesQuery): ListMachinesResponse<MachineInfo | Partial<MachineInfo>> {
    const { items, nextToken } = this.store.list(
      q.template === undefined ? q : { ...q, template: canonicalTemplateRef(q.template) },
    );
    const infos = items.map((m) => this.toInfo(m));
    return {
      items: q.fields ? infos.map((i) => pickFields(i, q.fields ?? [])) : infos,
      next_token: nextToken,
      has_next: nextToken !== null,
    };
  }

  getSnapshot(id: string): SnapshotInfo {
    return snapshotInfo(this.snapshotRecord(id));
  }

  listSnapshots(filter: { machineId?: string; kind?: SnapshotKind }): SnapshotInfo[] {
    return this.snapshots.list(filter).map(snapshotInfo);
  }

  /** The stored record of a machine; `machine_not_found` when there is none. */
  recordOf(id: string): MachineRecord {
    return this.record(id);
  }

  /**
   * Runs `fn` in the machine's operation queue once it is running (or, with `pausedToo`, paused):
   * never at the same time as a pause, hibernate, snapshot, fork or kill of it (volume attach,
   * detach and health).
   */
  async whileRunning<T>(id: string, fn: () => Promise<T>, o: { pausedToo?: boolean } = {}): Promise<T> {
    this.record(id);
    return this.serialized(id, async () => {
      const m = this.record(id);
      if (!(o.pausedToo && m.status === 'paused')) this.requireRunning(m);
      return fn();
    });
  }

  // ---- create and kill ----------------------------------------------------------------------

  async create(request: CreateMachineSpec): Promise<MachineInfo> {
    let spec = request;
    // A warm machine has started already: its volumes are attached at checkout. They are checked
    // before one is taken, so an unknown volume costs the pool nothing.
    if (spec.volumes !== undefined && spec.warm_pool !== undefined) {
      if (!this.o.volumes) throw new CodedError('volume_not_found', 'this server has no volumes');
      this.o.volumes.plan({ requested: spec.volumes });
    }
    if (spec.snapshot_id !== undefined) return this.createFromSnapshot(spec, spec.snapshot_id);
    const requested = Date.now();
    let checkout: WarmPoolCheckout | null = null;
    if (spec.warm_pool !== undefined) {
      const pools = this.pools;
      if (!pools) throw new CodedError('not_found', `warm pool ${spec.warm_pool} not found`);
      const taken = await pools.checkout(spec);
      if (taken.machineId !== undefined)
        return this.checkedOut(taken.machineId, spec, taken.checkout, requested);
      checkout = taken.checkout;
      if (!spec.template_given) spec = { ...spec, template: taken.template };
    }
    return this.startFrom(this.o.templates.resolve(spec.template), spec, { checkout, requested });
  }

  /** A new machine of `template`: restored from its snapshot (snapshot-backed) or started cold. */
  private startFrom(
    template: ResolvedTemplate,
    spec: CreateMachineSpec,
    o: { checkout?: WarmPoolCheckout | null; requested?: number; warmPoolId?: string; skipStart?: boolean },
  ): Promise<MachineInfo> {
    if (template.snapshot_id !== null)
      return this.createFromSnapshot(spec, template.snapshot_id, template, o.checkout ?? null, o.warmPoolId);
    return this.coldCreate(spec, template, o);
  }

  /**
   * A machine of `template` started here: the driver's machine, then the template's start command
   * until its ready check passes (a machine counts as started only then).
   */
  private async coldCreate(
    spec: CreateMachineSpec,
    template: ResolvedTemplate,
    o: { checkout?: WarmPoolCheckout | null; requested?: number; warmPoolId?: string; skipStart?: boolean },
  ): Promise<MachineInfo> {
    this.checkCapacity(1);
    const record = this.newRecord(
      {
        ...spec,
        disk_mb: spec.sized.disk_mb ?? template.disk_mb ?? spec.disk_mb,
        cwd: spec.cwd_given ? spec.cwd : (template.workdir ?? spec.cwd),
        envs: { ...template.env, ...spec.envs },
      },
      { template: template.ref, template_id: template.id },
      { warm_pool_id: o.warmPoolId ?? null, warm_pool_checkout: o.checkout ?? null },
    );
    return this.serialized(record.id, async () => {
      const started = Date.now();
      try {
        await this.driver.create(this.driverSpec(record, template.lowerdir));
      } catch (err) {
        throw this.startFailed(record, err);
      }
      if (template.start && !o.skipStart) {
        try {
          await startAndWaitReady(this.agent(record.id), this.networkOf(record).link, template.start, {
            cwd: record.cwd,
            envs: { ...record.envs, NULLSPACE_MACHINE_ID: record.id },
          });
        } catch (err) {
          // The machine runs: take it down, so the failed record holds nothing `kill` must free.
          this.dropAgent(record.id);
          await this.driver.destroy(record.id).catch(() => undefined);
          throw this.startFailed(record, err, 'start command');
        }
      }
      const info = this.started(record.id, spec.timeout);
      if (o.warmPoolId === undefined) this.o.onCreated?.(Date.now() - (o.requested ?? started));
      this.log.info('machine started', {
        machine_id: record.id,
        template: template.ref,
        ...(o.warmPoolId ? { warm_pool_id: o.warmPoolId } : {}),
        ms: Date.now() - started,
      });
      return info;
    });
  }

  /** Set by the warm-pool service (the two need each other). */
  pools: WarmPoolCheckouts | undefined;

  /** A machine for a warm pool: started like any, not listed, no deadline until checked out. */
  async createPooled(poolId: string, spec: CreateMachineSpec): Promise<MachineInfo> {
    return this.startFrom(this.o.templates.resolve(spec.template), spec, { warmPoolId: poolId });
  }

  /**
   * A warm machine handed to a create request: from now on a normal machine with the request's
   * envs, metadata, working directory, timeout and network. Never goes back to a pool.
   */
  private async checkedOut(
    id: string,
    spec: CreateMachineSpec,
    checkout: WarmPoolCheckout,
    requested: number,
  ): Promise<MachineInfo> {
    const info = await this.serialized(id, async () => {
      const m = this.record(id);
      if (spec.cwd_given && spec.cwd !== m.cwd) {
        const r = await this.agent(id).run({
          cmd: 'mkdir',
          args: ['-p', '--', spec.cwd],
          shell: false,
          cwd: '/',
          envs: {},
          timeout_ms: 10_000,
          background: false,
          stream: false,
          encoding: 'utf8',
        });
        if (r.exit_code !== 0) throw invalidArgument('cwd', `cannot be created: ${r.stderr.trim()}`);
      }
      // Waiting in the pool it yielded the CPUs to everyone else's machines; now it is someone's.
      await this.driver.setCpuPriority(id, 'normal');
      const now = Date.now();
      const updated = this.store.update(id, {
        warm_pool_id: null,
        warm_pool_checkout: checkout,
        envs: { ...m.envs, ...spec.envs },
        metadata: spec.metadata,
        cwd: spec.cwd_given ? spec.cwd : m.cwd,
        timeout: spec.timeout,
        on_timeout: spec.on_timeout,
        auto_resume: spec.auto_resume,
        created_at: now,
        expires_at: now + spec.timeout * 1000,
      });
      this.arm(updated);
      this.event(updated, 'created', { template: updated.template, warm_pool_id: checkout.pool_id });
      return this.toInfo(updated);
    });
    let out = info;
    try {
      if (spec.network !== undefined) out = await this.setNetwork(id, spec.network);
      for (const v of spec.volumes ?? []) await this.o.volumes?.attach(id, v);
      if (spec.volumes !== undefined) out = this.get(id);
    } catch (err) {
      // The caller never learns this machine's id: it must not be left running.
      await this.kill(id, 'its network or volumes could not be set up at checkout').catch(() => undefined);
      throw err;
    }
    const ms = Date.now() - requested;
    this.pools?.recordCheckout(checkout.pool_id, ms);
    this.log.info('machine checked out of a warm pool', {
      machine_id: id,
      warm_pool_id: checkout.pool_id,
      ms,
    });
    return out;
  }

  /** A machine that builds a template on `base`: no start command of its base, a long deadline. */
  async createForBuild(
    base: ResolvedTemplate,
    o: { vcpus: number; memory_mb: number; disk_mb: number; buildId: string },
  ): Promise<MachineInfo> {
    const spec = parseCreateMachine({
      template: base.ref,
      vcpus: o.vcpus,
      memory_mb: o.memory_mb,
      disk_mb: o.disk_mb,
      metadata: { [BUILD_METADATA]: o.buildId },
      timeout: 6 * 3600,
    });
    return this.startFrom(base, spec, { skipStart: true });
  }

  /** Live machines that build a template (metadata `nullspace.template_build`), with their build. */
  buildMachines(): { id: string; build: string }[] {
    return this.store.listInStates(LIVE_STATES).flatMap((m) => {
      const build = m.metadata[BUILD_METADATA];
      return build ? [{ id: m.id, build }] : [];
    });
  }

  /** The agent of a running machine, for the server's own work in it (template builds). */
  agentOf(id: string): AgentClient {
    this.requireRunning(this.record(id));
    return this.agent(id);
  }

  /** The link of a machine (where its ports are reached from the host). */
  linkOf(id: string): MachineLink {
    return this.networkOf(this.record(id)).link;
  }

  /** See {@link MachineDriver.exportChanges}. */
  exportChanges(id: string, target: string): Promise<void> {
    return this.whileRunning(id, () => this.driver.exportChanges(id, target));
  }

  /** Destroys the machine. Idempotent; works from every state, `failed` included. */
  async kill(id: string, reason = 'killed by request'): Promise<MachineInfo> {
    this.record(id);
    return this.serialized(id, async () => {
      const m = this.record(id);
      if (m.status === 'killed') return this.toInfo(m);
      this.disarm(id);
      this.setStatus(id, 'killing', { status_reason: reason, transition_deadline: null });
      this.dropAgent(id);
      try {
        await this.driver.destroy(id);
        await this.dropPauseSnapshots(id);
        this.o.volumes?.release(id);
      } catch (err) {
        this.log.error('machine teardown failed', { machine_id: id, error: err });
        this.setStatus(id, 'failed', { status_reason: `kill failed: ${publicReason(err)}` });
        throw new CodedError(
          'internal',
          `machine ${id} could not be fully torn down; kill it again`,
          { machine_id: id },
          { cause: err },
        );
      }
      this.log.info('machine killed', { machine_id: id, reason });
      return this.toInfo(this.setStatus(id, 'killed', { status_reason: reason, paused_at: null }));
    });
  }

  // ---- pause, hibernate, resume -------------------------------------------------------------

  /** Freezes every process of a running machine. A paused or hibernated machine is returned as is. */
  async pause(id: string, reason = 'paused by request'): Promise<MachineInfo> {
    this.record(id);
    return this.serialized(id, async () => {
      const m = this.record(id);
      if (m.status === 'paused' || m.status === 'hibernated') return this.toInfo(m);
      this.requireRunning(m);
      this.disarm(id);
      this.setStatus(id, 'pausing', { status_reason: reason, transition_deadline: this.deadline() });
      try {
        await this.driver.pause(id);
      } catch (err) {
        await this.recoverRunning(id, 'pause', err);
        throw this.transitionFailed(id, 'pause', err);
      }
      const snap = this.newPauseSnapshot(m);
      const paused = this.setStatus(id, 'paused', {
        snapshot_id: snap.id,
        paused_at: Date.now(),
        transition_deadline: null,
      });
      this.armSpill(paused);
      return this.toInfo(paused);
    });
  }

  /**
   * Checkpoints a running or paused machine to disk and releases its processes, memory and network
   * namespace. A hibernated machine is returned as is.
   */
  async hibernate(id: string, reason = 'hibernated by request'): Promise<MachineInfo> {
    this.record(id);
    return this.serialized(id, async () => {
      const m = this.record(id);
      if (m.status === 'hibernated') return this.toInfo(m);
      if (m.status !== 'paused') this.requireRunning(m);
      const from = m.status;
      this.disarm(id);
      const existing = m.snapshot_id ? this.snapshots.get(m.snapshot_id) : undefined;
      const snap = existing?.status === 'memory' ? existing : this.newPauseSnapshot(m);
      const dir = this.snapshotDir(snap.id);
      // The snapshot id is stored first: a server that crashes mid-checkpoint finds the image.
      this.setStatus(id, 'hibernating', {
        status_reason: reason,
        snapshot_id: snap.id,
        transition_deadline: this.deadline(),
      });
      try {
        // The checkpoint must not hold connections to this server: end them (a command in flight
        // keeps running in the machine; its caller gets an error). A paused agent cannot close
        // its side, so it is thawed for this (the checkpoint freezes everything again at once).
        if (from === 'paused') await this.driver.unpause(id);
        await this.disconnectAgent(id);
        await this.driver.hibernate(id, dir, this.o.transitionTimeoutMs);
      } catch (err) {
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        if (snap !== existing) {
          this.snapshots.update(snap.id, { status: 'deleted' });
          this.store.update(id, { snapshot_id: m.snapshot_id });
        }
        if (from === 'paused') await this.recoverPaused(id, 'hibernate', err);
        else await this.recoverRunning(id, 'hibernate', err);
        throw this.transitionFailed(id, 'hibernate', err);
      }
      this.snapshots.update(snap.id, { status: 'ready', size_bytes: await diskUsage(dir) });
      return this.toInfo(
        this.setStatus(id, 'hibernated', {
          snapshot_id: snap.id,
          paused_at: m.paused_at ?? Date.now(),
          transition_deadline: null,
        }),
      );
    });
  }

  /**
   * Returns a running machine, resuming it first if it is paused or hibernated (same id, new
   * execution). The deadline becomes now + `timeout` (the caller's) or the machine's own timeout.
   */
  async connect(id: string, timeout?: number): Promise<MachineInfo> {
    this.record(id);
    return this.serialized(id, async () => {
      const m = this.record(id);
      if (m.status === 'running') {
        if (timeout === undefined) return this.toInfo(m);
        const updated = this.store.update(id, { timeout, expires_at: Date.now() + timeout * 1000 });
        this.arm(updated);
        this.event(updated, 'timeout_set', { expires_at: new Date(updated.expires_at).toISOString() });
        return this.toInfo(updated);
      }
      if (m.status !== 'paused' && m.status !== 'hibernated') this.requireRunning(m);
      return this.toInfo(await this.resume(m, timeout ?? m.timeout));
    });
  }

  /** `Machine.resume(snapshotId)`: resumes the machine a pause snapshot belongs to. */
  async resumeSnapshot(snapshotId: string, timeout?: number): Promise<MachineInfo> {
    const snap = this.snapshots.get(snapshotId);
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

  /** Runs inside the machine's queue. */
  private async resume(m: MachineRecord, timeout: number): Promise<MachineRecord> {
    const from = m.status;
    this.disarm(m.id);
    this.setStatus(m.id, 'resuming', { status_reason: null, transition_deadline: this.deadline() });
    const snap = m.snapshot_id ? this.snapshots.get(m.snapshot_id) : undefined;
    try {
      if (from === 'paused') {
        await this.driver.unpause(m.id);
      } else {
        if (!snap || snap.status !== 'ready')
          throw new CodedError('internal', `machine ${m.id} has no hibernation image`);
        await this.driver.restore(
          this.driverSpec(m, this.o.templates.lowerdirOf(m.template_id, m.template)),
          this.snapshotDir(snap.id),
          this.o.transitionTimeoutMs,
        );
      }
    } catch (err) {
      this.log.error('resume failed', { machine_id: m.id, from, error: err });
      // A failed unpause or restore leaves the machine as it was: paused or hibernated.
      const state =
        from === 'paused' ? await this.driver.inspect(m.id).catch(() => 'missing' as const) : 'missing';
      if (from === 'paused' && state !== 'paused' && state !== 'running') {
        this.setStatus(m.id, 'failed', {
          status_reason: `resume failed: ${publicReason(err)}`,
          transition_deadline: null,
        });
      } else {
        this.setStatus(m.id, from, {
          status_reason: `resume failed: ${publicReason(err)}`,
          transition_deadline: null,
        });
      }
      throw this.transitionFailed(m.id, 'resume', err);
    }
    if (snap) {
      this.snapshots.update(snap.id, { status: 'consumed', size_bytes: 0 });
      await rm(this.snapshotDir(snap.id), { recursive: true, force: true });
    }
    this.dropAgent(m.id); // a restored agent listens on a new socket
    const now = Date.now();
    const running = this.setStatus(m.id, 'running', {
      execution_id: newId('execution'),
      started_at: now,
      paused_at: null,
      timeout,
      expires_at: now + timeout * 1000,
      transition_deadline: null,
    });
    this.arm(running);
    this.log.info('machine resumed', { machine_id: m.id, from, ms: Date.now() - now });
    return running;
  }

  // ---- snapshots and fork -------------------------------------------------------------------

  /** A reusable snapshot of a running machine; it keeps running (frozen for `paused_ms`). */
  async createSnapshot(id: string): Promise<SnapshotInfo> {
    this.record(id);
    return this.serialized(id, async () => {
      const m = this.requireRunning(this.record(id));
      const snap: SnapshotRecord = { ...this.snapshotBase(m), id: newId('snapshot'), kind: 'reusable' };
      this.snapshots.insert(snap);
      this.o.volumes?.rememberSnapshot(snap.id, id);
      const dir = this.snapshotDir(snap.id);
      try {
        const { pausedMs } = await this.quiesced(id, () =>
          this.driver.snapshot(id, dir, this.o.transitionTimeoutMs),
        );
        this.snapshots.update(snap.id, {
          status: 'ready',
          paused_ms: pausedMs,
          size_bytes: await diskUsage(dir),
        });
      } catch (err) {
        this.snapshots.update(snap.id, { status: 'deleted' });
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        await this.checkAfterFreeze(id);
        throw this.transitionFailed(id, 'snapshot', err);
      }
      const info = this.snapshotRecord(snap.id);
      this.event(this.record(id), 'snapshot_created', {
        snapshot_id: snap.id,
        kind: 'reusable',
        paused_ms: info.paused_ms,
      });
      return snapshotInfo(info);
    });
  }

  /** Deletes a reusable snapshot (or the pause snapshot of a running machine) and its files. */
  async deleteSnapshot(snapshotId: string, o: { forTemplate?: boolean } = {}): Promise<SnapshotInfo> {
    const snap = this.snapshotRecord(snapshotId);
    return this.serialized(snapshotId, async () => {
      const now = this.snapshotRecord(snapshotId);
      const user = this.o.templates.snapshotUser(snapshotId);
      if (user && !o.forTemplate)
        throw new CodedError('invalid_state', `snapshot ${snapshotId} cannot be deleted: ${user}`, {
          snapshot_id: snapshotId,
        });
      if (now.kind === 'pause') {
        const m = this.store.get(now.machine_id);
        if (
          m &&
          (m.status === 'paused' || m.status === 'hibernated' || TRANSITIONAL_STATES.includes(m.status))
        )
          throw new CodedError(
            'invalid_state',
            `snapshot ${snapshotId} holds the state of ${m.status} machine ${m.id}; kill the machine instead`,
            { snapshot_id: snapshotId, machine_id: m.id },
          );
      }
      await rm(this.snapshotDir(snapshotId), { recursive: true, force: true });
      this.snapshots.update(snapshotId, { status: 'deleted', size_bytes: 0 });
      this.log.info('snapshot deleted', { snapshot_id: snapshotId });
      return snapshotInfo({ ...snap, status: 'deleted', size_bytes: 0 });
    });
  }

  /**
   * Branches a running machine into `count` children with its memory and filesystem state. The
   * parent keeps running; each child succeeds or fails on its own.
   */
  async fork(id: string, count: number): Promise<ForkChildResult[]> {
    this.record(id);
    return this.serialized(id, async () => {
      const parent = this.requireRunning(this.record(id));
      const templateRootfs = this.o.templates.lowerdirOf(parent.template_id, parent.template);
      const dir = join(this.o.snapshotsDir, `.fork-${newId('snapshot')}`);
      try {
        try {
          await this.quiesced(id, () => this.driver.snapshot(id, dir, this.o.transitionTimeoutMs));
        } catch (err) {
          await this.checkAfterFreeze(id);
          throw this.transitionFailed(id, 'fork', err);
        }
        const results = await Promise.all(
          Array.from({ length: count }, () => this.startChild(parent, templateRootfs, dir)),
        );
        const childIds = results.flatMap((r) => ('id' in r && r.status === 'running' ? [r.id] : []));
        this.event(this.record(id), 'forked', { child_ids: childIds, requested: count });
        return results;
      } finally {
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      }
    });
  }

  private async startChild(
    parent: MachineRecord,
    templateRootfs: string,
    dir: string,
  ): Promise<ForkChildResult> {
    try {
      this.checkCapacity(1);
    } catch (err) {
      return { error: errorBody(err) };
    }
    const record = this.newRecord(
      { ...parent, on_timeout: parent.on_timeout, timeout: parent.timeout },
      { template: parent.template, template_id: parent.template_id, parent_id: parent.id },
    );
    try {
      return await this.serialized(record.id, async () => {
        try {
          await this.driver.createFromSnapshot(
            this.driverSpec(record, templateRootfs),
            dir,
            this.o.transitionTimeoutMs,
          );
        } catch (err) {
          throw this.startFailed(record, err);
        }
        return this.started(record.id, record.timeout);
      });
    } catch (err) {
      return { error: errorBody(err) };
    }
  }

  private async createFromSnapshot(
    spec: CreateMachineSpec,
    snapshotId: string,
    template?: ResolvedTemplate,
    checkout: WarmPoolCheckout | null = null,
    warmPoolId?: string,
  ): Promise<MachineInfo> {
    const requested = Date.now();
    const snap = this.snapshots.get(snapshotId);
    if (!snap || snap.kind !== 'reusable' || snap.status !== 'ready')
      throw new CodedError(
        'snapshot_not_found',
        snap?.kind === 'pause'
          ? `snapshot ${snapshotId} is a pause snapshot: resume its machine instead`
          : `snapshot ${snapshotId} not found`,
        { snapshot_id: snapshotId },
      );
    if (spec.sized.disk_mb !== undefined && spec.sized.disk_mb !== snap.disk_mb)
      throw invalidArgument(
        'disk_mb',
        template
          ? `must be ${snap.disk_mb} (the built-in disk of snapshot-backed template ${template.ref}) or left out`
          : `must be ${snap.disk_mb} (the snapshot's disk) or left out`,
      );
    // A snapshot-backed template's machines keep its origin (template, build); a snapshot's, its own.
    const lowerdir = this.o.templates.lowerdirOf(snap.template_id, snap.template);
    this.checkCapacity(1);
    const record = this.newRecord(
      {
        ...spec,
        vcpus: spec.sized.vcpus ?? snap.vcpus,
        memory_mb: spec.sized.memory_mb ?? snap.memory_mb,
        disk_mb: snap.disk_mb,
        cwd: spec.cwd_given && template ? spec.cwd : snap.cwd,
        envs: { ...template?.env, ...snap.envs, ...spec.envs },
        metadata: template ? spec.metadata : { ...snap.metadata, ...spec.metadata },
      },
      template
        ? { template: template.ref, template_id: template.id }
        : { template: snap.template, template_id: snap.template_id, snapshot_id: snapshotId },
      { warm_pool_id: warmPoolId ?? null, warm_pool_checkout: checkout },
    );
    // Queued on the snapshot too, so it cannot be deleted while machines start from it.
    return this.serialized(snapshotId, () =>
      this.serialized(record.id, async () => {
        try {
          await this.driver.createFromSnapshot(
            this.driverSpec(record, lowerdir),
            this.snapshotDir(snapshotId),
            this.o.transitionTimeoutMs,
          );
        } catch (err) {
          throw this.startFailed(record, err);
        }
        const info = this.started(record.id, record.timeout);
        if (warmPoolId === undefined) this.o.onCreated?.(Date.now() - requested);
        return info;
      }),
    );
  }

  // ---- timeout ------------------------------------------------------------------------------

  async setTimeout(id: string, req: SetTimeoutRequest): Promise<MachineInfo> {
    this.record(id);
    return this.serialized(id, async () => {
      const m = this.record(id);
      if (m.status === 'killed' || m.status === 'failed' || m.status === 'killing')
        throw new CodedError('invalid_state', `machine ${id} is ${m.status}`, {
          machine_id: id,
          status: m.status,
        });
      const onTimeout = req.on_timeout ?? m.on_timeout;
      const autoResume = req.auto_resume ?? (req.on_timeout === 'kill' ? false : m.auto_resume);
      checkAutoResume(onTimeout, autoResume);
      const updated = this.store.update(id, {
        timeout: req.timeout,
        on_timeout: onTimeout,
        auto_resume: autoResume,
        expires_at: Date.now() + req.timeout * 1000,
      });
      if (updated.status === 'running') this.arm(updated);
      this.event(updated, 'timeout_set', {
        timeout: req.timeout,
        on_timeout: onTimeout,
        auto_resume: autoResume,
        expires_at: new Date(updated.expires_at).toISOString(),
      });
      return this.toInfo(updated);
    });
  }

  // ---- network ------------------------------------------------------------------------------

  /**
   * Replaces the egress policy. On a running or paused machine it is in force when this returns
   * (new connections follow it; open ones go on). If it cannot be applied: a broadening leaves the
   * old policy in force; anything else leaves the machine denying all egress (stored, so info and
   * a later resume say and do the same), and the caller gets the error. A hibernated machine gets
   * it at resume.
   */
  async setNetwork(id: string, network: NetworkSpec): Promise<MachineInfo> {
    this.record(id);
    return this.serialized(id, async () => {
      const m = this.record(id);
      if (m.status !== 'hibernated' && m.status !== 'paused') this.requireRunning(m);
      if (m.status !== 'hibernated') {
        const next = { ...m, network };
        try {
          await this.driver.setEgress(id, this.networkOf(next));
        } catch (err) {
          if (isBroadening(m.network.egress, network.egress)) throw this.transitionFailed(id, 'network', err);
          const denied: NetworkSpec = { ...network, egress: DENY_ALL_EGRESS };
          const reason = 'the new network policy could not be applied: the machine now denies all egress';
          await this.driver.blockEgress(id, this.networkOf({ ...m, network: denied }));
          const updated = this.store.update(id, { network: denied, status_reason: reason });
          this.event(updated, 'network_set', { egress: DENY_ALL_EGRESS }, reason);
          this.log.error('network policy failed; machine left denying', { machine_id: id, error: err });
          throw new CodedError(
            'internal',
            `machine ${id}: ${reason} (status_reason; the server log has the cause)`,
            { machine_id: id, status: m.status, egress: 'deny_all' },
            { cause: err },
          );
        }
      }
      const updated = this.store.update(id, { network });
      this.event(updated, 'network_set', { egress: networkInfo(network, null).egress });
      this.log.info('network policy set', { machine_id: id, mode: network.egress.mode });
      return this.toInfo(updated);
    });
  }

  /**
   * Puts a re-adopted machine's stored policy in force again: its table outlived the last server,
   * but a crash between applying a policy and storing it would leave the two apart.
   */
  private async reapplyNetwork(m: MachineRecord): Promise<void> {
    if (m.net_index === null) return;
    const network = this.networkOf(m);
    await this.driver.setEgress(m.id, network).catch(async (err: unknown) => {
      this.log.error('re-applying the network policy failed; blocking egress', {
        machine_id: m.id,
        error: err,
      });
      await this.driver.blockEgress(m.id, network);
    });
  }

  // ---- commands -----------------------------------------------------------------------------

  /**
   * Access to a running machine's agent for one proxied request or stream. A paused or hibernated
   * machine with auto_resume is woken first; a checkpoint being taken is waited for. A short
   * request (`long: false`) counts as in flight, so a checkpoint waits a while for it; a stream
   * (`long: true`) does not: a checkpoint, kill or restore calls its `onCut` at once, and the
   * caller ends its stream (the process in the machine goes on).
   */
  async openAgent(id: string, o: { long: boolean; record?: MachineRecord }): Promise<AgentLease> {
    // A caller that has just read the record passes it: a preview request reads it once.
    let m = o.record ?? this.record(id);
    if ((m.status === 'paused' || m.status === 'hibernated') && m.auto_resume) {
      await this.connect(id);
      m = this.record(id);
    }
    this.requireRunning(m);
    if (this.quiescing.has(id)) {
      while (this.quiescing.has(id)) {
        await new Promise<void>((resolve) => {
          const list = this.quiesceWaiters.get(id) ?? [];
          list.push(resolve);
          this.quiesceWaiters.set(id, list);
        });
      }
      m = this.requireRunning(this.record(id));
    }
    const client = this.agent(id);
    const socketPath = client.connectPath();
    const done = o.long ? () => undefined : this.enter(id);
    const cuts = this.leases.get(id) ?? new Set<(reason: string) => void>();
    this.leases.set(id, cuts);
    const mine: ((reason: string) => void)[] = [];
    let released = false;
    return {
      machine: m,
      socketPath,
      pool: client.pool,
      onCut: (cb) => {
        mine.push(cb);
        cuts.add(cb);
      },
      release: () => {
        if (released) return;
        released = true;
        for (const cb of mine) cuts.delete(cb);
        done();
      },
      failed: async (err) => {
        // Killed, paused or hibernated while the request ran: say so, rather than "unreachable".
        if (err instanceof CodedError && err.code === 'unavailable') {
          const now = this.record(id);
          if (now.status !== 'running') this.requireRunning(now);
          await this.checkAlive(id);
        }
        return err;
      },
    };
  }

  /**
   * Access to a port of a machine for preview traffic: an agent lease (see {@link openAgent}: cut
   * by checkpoints, kill and restore) plus the machine's link. A paused or hibernated machine with
   * auto_resume is woken once however many requests wait for it (they queue behind one resume);
   * when the wake is not done within `wakeTimeoutMs`, or the machine cannot be woken, the caller
   * gets `unavailable` with `retry_after: 5` (the resume goes on).
   */
  private async openPort(id: string, o: { long: boolean; wakeTimeoutMs: number }): Promise<PortLease> {
    const m = this.record(id);
    let woken = false;
    const unavailable = (why: string) =>
      new CodedError('unavailable', `machine ${id} ${why}`, {
        machine_id: id,
        status: this.record(id).status,
        retry_after: 5,
      });
    if (m.status !== 'running') {
      const sleeping: MachineState[] = ['paused', 'hibernated', 'pausing', 'hibernating', 'resuming'];
      if (!sleeping.includes(m.status)) {
        if (m.status === 'starting') throw unavailable('is starting');
        this.requireRunning(m);
      }
      if (!m.auto_resume) throw unavailable(`is ${m.status} and auto_resume is off`);
      let timer: NodeJS.Timeout | undefined;
      let failure: unknown;
      const woke = await Promise.race([
        this.connect(id).then(
          () => true,
          (err: unknown) => {
            failure = err;
            return false;
          },
        ),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), o.wakeTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (failure !== undefined)
        throw unavailable(
          `could not be resumed: ${failure instanceof CodedError ? failure.message : 'see the server log'}`,
        );
      if (!woke) throw unavailable(`did not resume within ${o.wakeTimeoutMs} ms`);
      woken = true;
    }
    let lease: AgentLease;
    try {
      lease = await this.openAgent(id, { long: o.long, ...(woken ? {} : { record: m }) });
    } catch (err) {
      if (err instanceof CodedError && (err.code === 'invalid_state' || err.code === 'machine_transitioning'))
        throw unavailable(`is ${this.record(id).status}`);
      throw err;
    }
    return { ...lease, link: this.networkOf(lease.machine).link };
  }

  /**
   * A TCP connection from the host to `port` of the machine (see `connectToMachinePort`), with
   * the lease it is made under ({@link openPort}): the caller releases the lease when done with
   * the socket; a failure to connect releases it here.
   */
  async connectPort(
    id: string,
    port: number,
    o: { long: boolean; wakeTimeoutMs: number; connectTimeoutMs?: number },
  ): Promise<{ lease: PortLease; socket: Socket }> {
    const lease = await this.openPort(id, o);
    try {
      return { lease, socket: await connectToMachinePort(lease.link, port, o.connectTimeoutMs) };
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  /**
   * Runs a bash script as root in the machine for the server's own needs (SSH set-up), waking it
   * like any agent call. Resolves with its result whatever its exit code.
   */
  async runScript(id: string, script: string, timeoutMs = 30_000): Promise<RunCommandResult> {
    const lease = await this.openAgent(id, { long: false });
    try {
      return await this.agent(id).run({
        cmd: 'bash',
        args: ['-c', script],
        shell: false,
        cwd: '/',
        envs: {},
        timeout_ms: timeoutMs,
        background: false,
        stream: false,
        encoding: 'utf8',
      });
    } catch (err) {
      throw await lease.failed(err);
    } finally {
      lease.release();
    }
  }

  /** Streams and requests to each machine's agent that must end when its connections are dropped. */
  private readonly leases = new Map<string, Set<(reason: string) => void>>();

  // ---- restart and shutdown -------------------------------------------------------------------

  /**
   * After a (re)start: machines the store says are alive and the runtime still holds are adopted
   * (deadlines re-armed); a transition a crash interrupted is settled from what the runtime shows
   * (back to running/paused, forward to hibernated when the image is complete, else failed);
   * half-done kills are finished; runtime and snapshot leftovers nobody owns are removed.
   */
  async readopt(): Promise<void> {
    await mkdir(this.o.snapshotsDir, { recursive: true });
    const known = new Set<string>();
    for (const m of this.store.listInStates(KEPT_STATES)) {
      known.add(m.id);
      try {
        await this.readoptOne(m);
      } catch (err) {
        this.log.error('re-adoption failed', { machine_id: m.id, error: err });
      }
    }
    for (const id of await this.driver.list()) {
      const m = this.store.get(id);
      if (!known.has(id) && (!m || !KEPT_STATES.includes(m.status))) {
        this.log.warn('removing runtime leftovers of a machine not alive in the store', { machine_id: id });
        await this.driver
          .destroy(id)
          .catch((err: unknown) => this.log.error('cleanup failed', { machine_id: id, error: err }));
      }
    }
    const keep = this.snapshots.idsWithImages();
    for (const name of await readdir(this.o.snapshotsDir)) {
      if (!keep.has(name)) {
        this.log.warn('removing a snapshot directory nobody owns', { name });
        await rm(join(this.o.snapshotsDir, name), { recursive: true, force: true });
      }
    }
  }

  private async readoptOne(m: MachineRecord): Promise<void> {
    if (m.status === 'killing') {
      await this.kill(m.id, m.status_reason ?? 'killed by request').catch(() => undefined);
      return;
    }
    const pauseSnap = m.snapshot_id ? this.snapshots.get(m.snapshot_id) : undefined;
    await this.driver.settle(
      m.id,
      m.status === 'hibernating' && pauseSnap ? this.snapshotDir(pauseSnap.id) : undefined,
    );
    if (m.status === 'hibernated' || m.status === 'hibernating') {
      const snap = pauseSnap;
      if (snap && this.driver.isImageComplete(this.snapshotDir(snap.id))) {
        if (m.status === 'hibernating') {
          this.snapshots.update(snap.id, {
            status: 'ready',
            size_bytes: await diskUsage(this.snapshotDir(snap.id)),
          });
          this.setStatus(m.id, 'hibernated', {
            transition_deadline: null,
            paused_at: m.paused_at ?? Date.now(),
          });
        }
        this.log.info('hibernated machine kept', { machine_id: m.id });
        return;
      }
      if (m.status === 'hibernated') {
        await this.lose(m, 'its hibernation image is missing');
        return;
      }
    }
    const state = await this.driver.inspect(m.id);
    const was = m.status;
    if (
      state === 'running' &&
      (was === 'running' || was === 'hibernating' || was === 'resuming' || was === 'pausing')
    ) {
      if (pauseSnap?.status === 'memory') this.snapshots.update(pauseSnap.id, { status: 'deleted' });
      const running =
        was === 'running'
          ? m
          : this.setStatus(m.id, 'running', {
              transition_deadline: null,
              status_reason: `${was} interrupted by a server restart`,
            });
      this.arm(running);
      await this.reapplyNetwork(running);
      this.log.info('machine re-adopted', {
        machine_id: m.id,
        was,
        expires_at: new Date(running.expires_at).toISOString(),
      });
      return;
    }
    if (state === 'paused' && (was === 'paused' || was === 'pausing' || was === 'hibernating')) {
      let paused = m;
      if (was !== 'paused') {
        const snap =
          m.snapshot_id && this.snapshots.get(m.snapshot_id)?.status === 'memory'
            ? undefined
            : this.newPauseSnapshot(m);
        paused = this.setStatus(m.id, 'paused', {
          transition_deadline: null,
          paused_at: m.paused_at ?? Date.now(),
          ...(snap ? { snapshot_id: snap.id } : {}),
        });
      }
      this.armSpill(paused);
      await this.reapplyNetwork(paused);
      this.log.info('paused machine re-adopted', { machine_id: m.id, was });
      return;
    }
    if (state === 'paused' && (was === 'running' || was === 'resuming')) {
      // Frozen by a checkpoint a crash interrupted, or half resumed: finish thawing it.
      await this.driver.unpause(m.id);
      const running = this.setStatus(m.id, 'running', { transition_deadline: null, paused_at: null });
      this.arm(running);
      return;
    }
    await this.lose(m, `runtime state was ${state} at server start while ${was}`);
  }

  private async lose(m: MachineRecord, why: string): Promise<void> {
    this.setStatus(m.id, 'failed', { status_reason: `lost: ${why}`, transition_deadline: null });
    await this.driver
      .destroy(m.id)
      .catch((err: unknown) => this.log.error('cleanup failed', { machine_id: m.id, error: err }));
    await this.dropPauseSnapshots(m.id);
    this.o.volumes?.release(m.id);
    this.log.warn('machine lost across restart', { machine_id: m.id, why });
  }

  /**
   * Stops timers and waits (bounded) for in-flight transitions. Machines keep running for the next
   * start; one caught mid-transition is sorted out by `readopt` then.
   */
  async close(waitMs = 10_000): Promise<void> {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.queues.values()]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, waitMs);
      }),
    ]);
    clearTimeout(timer);
    for (const id of new Set([...this.agents.keys(), ...this.leases.keys()]))
      this.dropAgent(id, 'the server is shutting down');
  }

  // ---- internals ------------------------------------------------------------------------------

  /** Stores a state change (with `patch`) and appends its `status_changed` event. */
  private setStatus(
    id: string,
    status: MachineState,
    patch: Partial<Omit<MachineRecord, 'id' | 'created_at' | 'status'>> = {},
  ): MachineRecord {
    const before = this.record(id);
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

  private event(
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

  private newRecord(
    spec: Pick<
      CreateMachineSpec,
      | 'vcpus'
      | 'memory_mb'
      | 'disk_mb'
      | 'cwd'
      | 'envs'
      | 'metadata'
      | 'timeout'
      | 'on_timeout'
      | 'auto_resume'
    > & { network?: NetworkSpec | undefined; volumes?: CreateMachineSpec['volumes'] },
    origin: { template: string; template_id: string | null; snapshot_id?: string; parent_id?: string },
    pool: Pick<MachineRecord, 'warm_pool_id' | 'warm_pool_checkout'> = {
      warm_pool_id: null,
      warm_pool_checkout: null,
    },
  ): MachineRecord {
    // Its volumes (a snapshot's or fork parent's, then the requested ones) are checked before
    // anything is stored: an unknown volume fails the create cleanly.
    if (spec.volumes !== undefined && !this.o.volumes)
      throw new CodedError('volume_not_found', 'this server has no volumes');
    const volumes = this.o.volumes?.plan({
      requested: spec.volumes,
      snapshotId: origin.snapshot_id,
      parentId: origin.parent_id,
    });
    const now = Date.now();
    const record: MachineRecord = {
      id: newId('machine'),
      execution_id: newId('execution'),
      status: 'starting',
      status_reason: null,
      template: origin.template,
      snapshot_id: null,
      vcpus: spec.vcpus,
      memory_mb: spec.memory_mb,
      disk_mb: spec.disk_mb,
      cwd: spec.cwd,
      envs: spec.envs,
      metadata: spec.metadata,
      timeout: spec.timeout,
      on_timeout: spec.on_timeout,
      auto_resume: spec.auto_resume,
      expires_at: now + spec.timeout * 1000,
      created_at: now,
      started_at: null,
      updated_at: now,
      paused_at: null,
      transition_deadline: now + this.o.transitionTimeoutMs,
      network: spec.network ?? DEFAULT_NETWORK,
      net_index: this.allocateNetIndex(),
      template_id: origin.template_id,
      ...pool,
    };
    this.store.insert(record);
    if (volumes) this.o.volumes?.record(record.id, volumes);
    this.event(record, 'created', {
      template: origin.template,
      ...(origin.snapshot_id ? { snapshot_id: origin.snapshot_id } : {}),
      ...(origin.parent_id ? { parent_id: origin.parent_id } : {}),
    });
    return record;
  }

  /** Marks a started machine running with its deadline armed. */
  private started(id: string, timeout: number): MachineInfo {
    const startedAt = Date.now();
    const updated = this.setStatus(id, 'running', {
      started_at: startedAt,
      expires_at: startedAt + timeout * 1000,
      transition_deadline: null,
    });
    this.arm(updated);
    return this.toInfo(updated);
  }

  /** The driver cleaned up after itself; the record stays, in a state `kill` can finish. */
  private startFailed(record: MachineRecord, err: unknown, what?: 'start command'): CodedError {
    this.setStatus(record.id, 'failed', {
      status_reason: `start failed: ${what === 'start command' && err instanceof CodedError ? err.message : publicReason(err)}`,
      transition_deadline: null,
    });
    this.o.volumes?.release(record.id);
    // A volume that cannot be mounted where asked (a file or symlink at its mount path in the
    // template): the request's to fix.
    if (what === undefined && err instanceof CodedError && err.code === 'invalid_argument')
      return new CodedError('invalid_argument', `machine ${record.id} could not start: ${err.message}`, {
        ...err.details,
        machine_id: record.id,
      });
    // The template's start command is the user's own: its failure is theirs to see, not `internal`.
    if (what === 'start command' && err instanceof CodedError && err.code !== 'internal')
      return new CodedError(err.code, `machine ${record.id}: ${err.message}`, {
        machine_id: record.id,
        tag: START_TAG,
      });
    this.log.error('machine failed to start', { machine_id: record.id, error: err });
    if (err instanceof CodedError && err.code === 'disk_full')
      return new CodedError(
        'disk_full',
        `machine ${record.id} could not start: the host is out of disk space`,
        {
          machine_id: record.id,
        },
      );
    return new CodedError(
      'internal',
      `machine ${record.id} failed to start (its status_reason says why)`,
      { machine_id: record.id },
      { cause: err },
    );
  }

  /** The error a caller gets for a failed transition; the machine's state was settled before. */
  private transitionFailed(id: string, what: string, err: unknown): CodedError {
    this.log.error(`${what} failed`, { machine_id: id, error: err });
    const m = this.store.get(id);
    const details = { machine_id: id, status: m?.status ?? 'unknown' };
    if (err instanceof CodedError && err.code === 'disk_full')
      return new CodedError(
        'disk_full',
        `${what} of machine ${id} failed: the host is out of disk space`,
        details,
      );
    if (err instanceof CodedError && err.code !== 'internal') return err;
    return new CodedError(
      'internal',
      `${what} of machine ${id} failed; it is ${m?.status ?? 'unknown'} now (status_reason says why)`,
      details,
      { cause: err },
    );
  }

  /**
   * After a failed pause or hibernate of a running machine: running again if its processes run
   * and its agent answers (thawed if a killed checkpoint left it frozen), else failed.
   */
  private async recoverRunning(id: string, what: string, err: unknown): Promise<void> {
    const reason = `${what} failed: ${publicReason(err)}`;
    if (await this.aliveAndAnswering(id, true)) {
      const running = this.setStatus(id, 'running', { status_reason: reason, transition_deadline: null });
      this.arm(running);
    } else {
      this.setStatus(id, 'failed', { status_reason: reason, transition_deadline: null });
    }
  }

  /** After a failed hibernate of a paused machine: paused again if still frozen, else as above. */
  private async recoverPaused(id: string, what: string, err: unknown): Promise<void> {
    const state = await this.driver.inspect(id).catch(() => 'missing' as const);
    if (state === 'paused') {
      const paused = this.setStatus(id, 'paused', {
        status_reason: `${what} failed: ${publicReason(err)}`,
        transition_deadline: null,
      });
      this.armSpill(paused);
      return;
    }
    await this.recoverRunning(id, what, err);
  }

  /** After a failed snapshot or fork: the source must be as it was (running, or paused). */
  private async checkAfterFreeze(id: string): Promise<void> {
    if (!(await this.aliveAndAnswering(id, true))) {
      this.disarm(id);
      this.setStatus(id, 'failed', {
        status_reason: 'the machine stopped answering after a failed snapshot',
      });
    }
  }

  private async aliveAndAnswering(id: string, thaw: boolean): Promise<boolean> {
    const state = await this.driver.inspect(id).catch(() => 'missing' as const);
    if (state === 'paused' && thaw) await this.driver.unpause(id).catch(() => undefined);
    else if (state !== 'running') return false;
    this.dropAgent(id);
    try {
      await this.agent(id).health(5000);
      return true;
    } catch {
      return false;
    } finally {
      this.dropAgent(id);
    }
  }

  /**
   * Runs `fn` (a checkpoint that leaves the machine running) once no agent call is in flight: the
   * checkpoint must not hold connections to this server. Commands in flight get QUIESCE_WAIT_MS to
   * finish; after that their connections are ended (the commands keep running in the machine).
   * New commands wait in line: the machine's queue holds them until `fn` is done.
   */
  private async quiesced<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const slot = this.inFlight.get(id);
    if (slot && slot.n > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => slot.idle.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, QUIESCE_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    this.quiescing.add(id);
    try {
      await this.disconnectAgent(id);
      return await fn();
    } finally {
      this.quiescing.delete(id);
      for (const w of this.quiesceWaiters.get(id) ?? []) w();
      this.quiesceWaiters.delete(id);
    }
  }

  private readonly quiescing = new Set<string>();
  private readonly quiesceWaiters = new Map<string, (() => void)[]>();

  /** Counts an agent call in flight; returns its `done`. */
  private enter(id: string): () => void {
    let slot = this.inFlight.get(id);
    if (!slot) {
      slot = { n: 0, idle: [] };
      this.inFlight.set(id, slot);
    }
    slot.n++;
    const s = slot;
    return () => {
      s.n--;
      if (s.n === 0) {
        for (const w of s.idle) w();
        s.idle = [];
        if (this.inFlight.get(id) === s) this.inFlight.delete(id);
      }
    };
  }

  private toInfo(m: MachineRecord): MachineInfo {
    return { ...toInfo(m, this.o.addressPool), volumes: this.o.volumes?.attachmentsOf(m.id) ?? [] };
  }

  /** What the driver needs to start or restore `m` (a machine older than networks gets a block). */
  private driverSpec(m: MachineRecord, templateRootfs: string): DriverMachineSpec {
    return {
      id: m.id,
      templateRootfs,
      vcpus: m.vcpus,
      // A warm pool's machine (starting or waiting) gets the CPUs only when nobody else wants them.
      ...(m.warm_pool_id !== null ? { cpuPriority: 'background' as const } : {}),
      memoryMb: m.memory_mb,
      diskMb: m.disk_mb,
      cwd: m.cwd,
      network: this.networkOf(m),
      volumes: this.o.volumes?.driverMounts(m.id) ?? [],
    };
  }

  /** The link and policy of `m`; a machine made before machines had networks gets a block now. */
  private networkOf(m: MachineRecord): DriverNetwork {
    const netIndex = m.net_index ?? this.store.update(m.id, { net_index: this.allocateNetIndex() }).net_index;
    const network = driverNetwork(this.o.addressPool, { ...m, net_index: netIndex ?? 0 });
    if (this.o.dnsPort !== undefined) network.link.dnsPort = this.o.dnsPort;
    return network;
  }

  /**
   * The lowest block of the address pool no machine of this server holds (alive or hibernated)
   * and whose host interface does not exist (another server on this host may use the same pool).
   */
  private allocateNetIndex(): number {
    const held = this.store.netIndexesInStates(KEPT_STATES);
    for (let i = 0; i < this.o.addressPool.size; i++) {
      if (held.has(i)) continue;
      if (existsSync(`/sys/class/net/${hostIfOf(this.o.addressPool, i)}`)) continue;
      return i;
    }
    throw new CodedError(
      'resource_exhausted',
      `the machine address pool ${this.o.addressPool.cidr} is full`,
      { pool: this.o.addressPool.cidr },
    );
  }

  private record(id: string): MachineRecord {
    const m = this.store.get(id);
    if (!m) throw new CodedError('machine_not_found', `machine ${id} not found`, { machine_id: id });
    return m;
  }

  private snapshotRecord(id: string): SnapshotRecord {
    const s = this.snapshots.get(id);
    if (!s || s.status === 'deleted' || s.status === 'consumed')
      throw new CodedError('snapshot_not_found', `snapshot ${id} not found`, { snapshot_id: id });
    return s;
  }

  private requireRunning(m: MachineRecord): MachineRecord {
    if (m.status === 'running') return m;
    if (TRANSITIONAL_STATES.includes(m.status))
      throw new CodedError('machine_transitioning', `machine ${m.id} is ${m.status}`, {
        machine_id: m.id,
        status: m.status,
        retry_after: 1,
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

  private checkCapacity(n: number): void {
    if (this.store.countInStates(LIVE_STATES) + n > this.o.maxMachines)
      throw new CodedError(
        'resource_exhausted',
        `this server runs at most ${this.o.maxMachines} machines at once`,
        {
          max_machines: this.o.maxMachines,
        },
      );
  }

  private deadline(): number {
    return Date.now() + this.o.transitionTimeoutMs;
  }

  private snapshotDir(id: string): string {
    return join(this.o.snapshotsDir, id);
  }

  private snapshotBase(m: MachineRecord): Omit<SnapshotRecord, 'id' | 'kind'> {
    return {
      machine_id: m.id,
      status: 'memory',
      template: m.template,
      template_id: m.template_id,
      vcpus: m.vcpus,
      memory_mb: m.memory_mb,
      disk_mb: m.disk_mb,
      cwd: m.cwd,
      envs: m.envs,
      metadata: m.metadata,
      size_bytes: 0,
      paused_ms: null,
      created_at: Date.now(),
    };
  }

  /** A pause snapshot row for a machine being frozen (status `memory` until an image is written). */
  private newPauseSnapshot(m: MachineRecord): SnapshotRecord {
    const snap: SnapshotRecord = { ...this.snapshotBase(m), id: newId('snapshot'), kind: 'pause' };
    this.snapshots.insert(snap);
    return snap;
  }

  /** A killed or lost machine's pause snapshots go with it. */
  private async dropPauseSnapshots(id: string): Promise<void> {
    for (const s of this.snapshots.list({ machineId: id, kind: 'pause' })) {
      await rm(this.snapshotDir(s.id), { recursive: true, force: true });
      this.snapshots.update(s.id, { status: 'deleted', size_bytes: 0 });
    }
  }

  private agent(id: string): AgentClient {
    let client = this.agents.get(id);
    if (!client) {
      client = new AgentClient(this.driver.agentSocketPath(id));
      this.agents.set(id, client);
    }
    return client;
  }

  /**
   * Before a checkpoint: closes every connection to the agent and waits until the agent has closed
   * its side too (a socket connected to the host cannot be checkpointed). A paused machine's agent
   * cannot answer; its connections are only closed on this side.
   */
  private async disconnectAgent(id: string): Promise<void> {
    this.dropAgent(id);
    if ((await this.driver.inspect(id)) !== 'running') return;
    const client = new AgentClient(this.driver.agentSocketPath(id));
    try {
      await client.drain();
    } catch (err) {
      this.log.warn('agent did not answer before a checkpoint', { machine_id: id, error: err });
    } finally {
      client.close();
    }
  }

  /** Closes the connections to the machine's agent, in flight ones included. */
  private dropAgent(id: string, reason = 'the machine is being checkpointed or stopped'): void {
    this.agents.get(id)?.close();
    this.agents.delete(id);
    const cuts = this.leases.get(id);
    this.leases.delete(id);
    for (const cut of cuts ?? []) cut(reason);
  }

  /** When the agent stops answering, find out whether the machine itself is gone. */
  private async checkAlive(id: string): Promise<void> {
    const state = await this.driver.inspect(id).catch(() => 'missing' as const);
    if (state === 'missing' || state === 'stopped') {
      await this.serialized(id, async () => {
        const m = this.record(id);
        if (m.status !== 'running') this.requireRunning(m);
        this.disarm(id);
        this.setStatus(id, 'failed', {
          status_reason: `machine stopped unexpectedly (runtime state ${state})`,
        });
        await this.driver.destroy(id).catch(() => undefined);
      });
      throw new CodedError('invalid_state', `machine ${id} stopped unexpectedly`, { machine_id: id });
    }
  }

  /** Runs `fn` after every earlier operation on the same machine (or snapshot) has finished. */
  private serialized<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(id, settled);
    void settled.then(() => {
      if (this.queues.get(id) === settled) this.queues.delete(id);
    });
    return next;
  }

  /** Arms the deadline of a running machine. */
  private arm(m: MachineRecord): void {
    // A machine waiting in a warm pool has no deadline until a create checks it out.
    if (m.warm_pool_id !== null) return;
    this.armTimer(m.id, m.expires_at, () => {
      const current = this.store.get(m.id);
      if (!current || current.status !== 'running') return;
      if (current.expires_at > Date.now()) {
        this.arm(current); // re-armed by set_timeout/connect, or a deadline beyond one timer's reach
        return;
      }
      this.onTimeout(current);
    });
  }

  /** Arms the hibernation of a paused machine after the spill time. */
  private armSpill(m: MachineRecord): void {
    const at = (m.paused_at ?? Date.now()) + this.o.pauseSpillAfterMs;
    this.armTimer(m.id, at, () => {
      const current = this.store.get(m.id);
      if (!current || current.status !== 'paused') return;
      this.hibernate(m.id, `paused longer than ${Math.round(this.o.pauseSpillAfterMs / 1000)}s`).catch(
        (err: unknown) => this.log.error('spill to hibernate failed', { machine_id: m.id, error: err }),
      );
    });
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

  private disarm(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  private onTimeout(m: MachineRecord): void {
    this.log.info('machine timed out', { machine_id: m.id, on_timeout: m.on_timeout });
    this.event(m, 'timeout', { on_timeout: m.on_timeout, timeout: m.timeout });
    const reason = `timeout after ${m.timeout}s`;
    const action: Record<TimeoutAction, () => Promise<unknown>> = {
      kill: () => this.kill(m.id, reason),
      pause: () => this.pause(m.id, reason),
      hibernate: () => this.hibernate(m.id, reason),
    };
    action[m.on_timeout]().catch((err: unknown) =>
      this.log.error('timeout action failed', { machine_id: m.id, on_timeout: m.on_timeout, error: err }),
    );
  }
}

function errorBody(err: unknown): {
  code: CodedError['code'];
  message: string;
  details?: Record<string, unknown>;
} {
  const e =
    err instanceof CodedError
      ? err
      : new CodedError('internal', 'internal error; the server log has the cause');
  const hidden = e.code === 'internal' && typeof e.details?.machine_id !== 'string';
  return {
    code: e.code,
    message: hidden ? 'internal error; the server log has the cause' : e.message,
    ...(e.details && !hidden ? { details: e.details } : {}),
  };
}

/** Bytes a directory tree takes on disk (allocated blocks, so sparse files count what they hold). */
async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else total += (await stat(p)).blocks * 512;
    }
  };
  await walk(dir).catch(() => undefined);
  return total;
}

/**
 * What a machine's owner may read about a failure: a reason the runtime marked as safe, else a
 * pointer to the log (host paths and tools' output stay there).
 */
function publicReason(err: unknown): string {
  const reason = err instanceof CodedError ? err.details?.public_reason : undefined;
  return typeof reason === 'string' ? reason : 'a host error; the server log has the cause';
}

function toInfo(m: MachineRecord, pool: AddressPool): MachineInfo {
  return {
    id: m.id,
    execution_id: m.execution_id,
    status: m.status,
    template: m.template,
    snapshot_id: m.snapshot_id,
    vcpus: m.vcpus,
    memory_mb: m.memory_mb,
    disk_mb: m.disk_mb,
    cwd: m.cwd,
    envs: Object.keys(m.envs),
    metadata: m.metadata,
    network: networkInfo(
      m.network,
      m.net_index === null ? null : linkFor(pool, m.net_index, m.id).machineAddr,
    ),
    timeout: m.timeout,
    on_timeout: m.on_timeout,
    auto_resume: m.auto_resume,
    expires_at: new Date(m.expires_at).toISOString(),
    created_at: new Date(m.created_at).toISOString(),
    started_at: m.started_at === null ? null : new Date(m.started_at).toISOString(),
    warm_pool_checkout: m.warm_pool_checkout,
    volumes: [],
    status_reason: m.status_reason,
  };
}
