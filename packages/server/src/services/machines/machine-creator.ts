import {
  BUILD_METADATA,
  CodedError,
  type CreateMachineSpec,
  KEPT_STATES,
  LIVE_STATES,
  type NetworkSpec,
  type WarmPoolCheckout,
  invalidArgument,
  newId,
  parseCreateMachine,
} from '@nullspace/protocol';
import type { MachineDriver, RestoredFrom } from '@nullspace/runtime';
import type { Logger } from '../../log.js';
import type { MachineRecord } from '../../store/machine-store.js';
import { startAndWaitReady } from '../../templates/agent-ops.js';
import type { TenantQuotas } from '../../tenancy/quotas.js';
import { DEFAULT_NETWORK } from '../network-policy.js';
import type { ResolvedTemplate, TemplateResolver } from '../template-catalog.js';
import type { MachineVolumes } from '../volume-service.js';
import type { AgentConnections } from './agent-connections.js';
import { MachineCapacity } from './capacity.js';
import type { Deadlines } from './deadlines.js';
import { startError, startFailedReason } from './failures.js';
import { driverSpec } from './machine-info.js';
import type { MachineNetworks } from './machine-networks.js';
import type { MachineRecords } from './machine-records.js';
import type { MachineTransitions } from './machine-transitions.js';
import type { PreparedNetworks } from './prepared-networks.js';
import type { SnapshotImages } from './snapshot-images.js';
import type { Teardowns } from './teardowns.js';

export interface MachineCreatorOptions {
  driver: MachineDriver;
  templates: TemplateResolver;
  volumes: MachineVolumes | undefined;
  maxMachines: number;
  transitionTimeoutMs: number;
  /** Told how long each create that started a machine took (server metrics). */
  onCreated: ((ms: number) => void) | undefined;
  /** Tenants' limits, checked as each machine's record is made (none for the operator). */
  quotas: TenantQuotas;
  log: Logger;
}

/** What a new machine is made of: sizes, place, environment, deadline, network and volumes. */
type NewMachine = Pick<
  CreateMachineSpec,
  'vcpus' | 'memory_mb' | 'disk_mb' | 'cwd' | 'envs' | 'metadata' | 'timeout' | 'on_timeout' | 'auto_resume'
> & {
  network?: NetworkSpec | undefined;
  volumes?: CreateMachineSpec['volumes'];
  /** Whose it is: the tenant whose key asked (a fork child: its parent's); null: the operator's. */
  tenant: string | null;
};

/** How a create was asked for (see {@link MachineCreator.create} and the warm pools). */
interface StartOptions {
  checkout?: WarmPoolCheckout | null;
  requested?: number;
  warmPoolId?: string;
  /** A build machine: its base's start command does not run. */
  skipStart?: boolean;
}

/** A create request with the tenant it is made for. */
type OwnedSpec = CreateMachineSpec & { tenant: string | null };

/** Where a restored machine comes from. */
interface RestoreSource {
  /** The reusable snapshot (its queue keeps it from being deleted meanwhile); null: a shipped template's. */
  snapshotId: string | null;
  /** Its image directory (CRIU's images and the disk). */
  dir: string;
  /** The machine it was taken of. */
  machine: Pick<MachineRecord, 'vcpus' | 'memory_mb' | 'disk_mb' | 'cwd' | 'envs' | 'metadata'>;
  origin: Origin;
  /** The overlay's lower directories its disk goes over. */
  lowerdir: string;
}

/** Where a new machine comes from, as its record and its `created` event say. */
interface Origin {
  template: string;
  template_id: string | null;
  snapshot_id?: string;
  parent_id?: string;
}

/**
 * Making machines: cold from a template (then its start command until the ready check passes),
 * restored from a reusable snapshot or a snapshot-backed template, for a warm pool (and handed
 * over at checkout), for a template build, and the records of fork children. A machine counts as
 * started only once its agent (and start command) answer; one that cannot start is left `failed`
 * holding nothing, which `kill` finishes.
 */
export class MachineCreator {
  private readonly capacity: MachineCapacity;

  constructor(
    private readonly records: MachineRecords,
    private readonly parts: {
      images: SnapshotImages;
      agents: AgentConnections;
      networks: MachineNetworks;
      deadlines: Deadlines;
      transitions: MachineTransitions;
      teardowns: Teardowns;
      /** Networks made ahead: a new machine takes one (its id and address block) when there is one. */
      prepared?: PreparedNetworks;
    },
    private readonly o: MachineCreatorOptions,
  ) {
    this.capacity = new MachineCapacity({
      max: o.maxMachines,
      live: () => records.store.countInStates(LIVE_STATES),
      teardowns: parts.teardowns,
    });
  }

  /**
   * A machine of `tenant` (null: the operator) from `spec`'s snapshot or template (`checkout`: a
   * warm pool missed first).
   */
  create(
    spec: CreateMachineSpec,
    tenant: string | null,
    o: { checkout?: WarmPoolCheckout; requested?: number } = {},
  ): Promise<MachineRecord> {
    const owned = { ...spec, tenant };
    if (spec.snapshot_id !== undefined) return this.fromSnapshot(owned, spec.snapshot_id);
    return this.startFrom(this.o.templates.resolve(spec.template), owned, {
      checkout: o.checkout ?? null,
      requested: o.requested ?? Date.now(),
    });
  }

  /** A machine for a warm pool (the pool's tenant's): started like any, not listed, no deadline until checked out. */
  createPooled(poolId: string, spec: CreateMachineSpec, tenant: string | null): Promise<MachineRecord> {
    return this.startFrom(
      this.o.templates.resolve(spec.template),
      { ...spec, tenant },
      { warmPoolId: poolId },
    );
  }

  /** A machine that builds a template on `base`: no start command of its base, a long deadline. */
  createForBuild(
    base: ResolvedTemplate,
    o: { vcpus: number; memory_mb: number; disk_mb: number; buildId: string; tenant: string | null },
  ): Promise<MachineRecord> {
    const spec = parseCreateMachine({
      template: base.ref,
      vcpus: o.vcpus,
      memory_mb: o.memory_mb,
      disk_mb: o.disk_mb,
      metadata: { [BUILD_METADATA]: o.buildId },
      timeout: 6 * 3600,
    });
    return this.startFrom(base, { ...spec, tenant: o.tenant }, { skipStart: true });
  }

  /** Live machines that build a template (metadata `nullspace.template_build`), with their build. */
  buildMachines(): { id: string; build: string }[] {
    return this.records.store.listInStates(LIVE_STATES).flatMap((m) => {
      const build = m.metadata[BUILD_METADATA];
      return build ? [{ id: m.id, build }] : [];
    });
  }

  /**
   * A warm machine handed to a create request: from now on a normal machine with the request's
   * envs, metadata, working directory, timeout, network and volumes. Never goes back to a pool; if
   * it cannot be set up it is killed (the caller never learns its id).
   */
  async handOver(id: string, spec: CreateMachineSpec, checkout: WarmPoolCheckout): Promise<MachineRecord> {
    const { agents, deadlines, networks, transitions } = this.parts;
    let out = await this.records.serialized(id, async () => {
      const m = this.records.get(id);
      if (spec.cwd_given && spec.cwd !== m.cwd) {
        const r = await agents.client(id).run({
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
      await this.o.driver.setCpuPriority(id, 'normal');
      const now = Date.now();
      const updated = this.records.update(id, {
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
      deadlines.arm(updated);
      this.records.event(updated, 'created', { template: updated.template, warm_pool_id: checkout.pool_id });
      return updated;
    });
    try {
      if (spec.network !== undefined) out = await networks.set(id, spec.network);
      for (const v of spec.volumes ?? []) await this.o.volumes?.attach(id, v);
      if (spec.volumes !== undefined) out = this.records.get(id);
    } catch (err) {
      await transitions
        .kill(id, 'its network or volumes could not be set up at checkout')
        .catch(() => undefined);
      throw err;
    }
    return out;
  }

  /**
   * A new machine of `template`: restored from its snapshot (snapshot-backed, or a shipped
   * template's ready snapshot) or started cold.
   */
  private startFrom(template: ResolvedTemplate, spec: OwnedSpec, o: StartOptions): Promise<MachineRecord> {
    if (template.snapshot_id !== null)
      return this.fromSnapshot(spec, template.snapshot_id, template, o.checkout ?? null, o.warmPoolId);
    const ready = template.ready_snapshot;
    if (ready !== null && !o.skipStart) {
      // Its disk is the snapshot's: a machine asking for another size starts cold instead.
      if (spec.sized.disk_mb === undefined || spec.sized.disk_mb === ready.machine.disk_mb)
        return this.restore(
          spec,
          {
            snapshotId: null,
            dir: ready.dir,
            machine: { ...ready.machine, metadata: {} },
            origin: { template: template.ref, template_id: null },
            lowerdir: template.lowerdir,
          },
          template,
          { ...o, coldFallback: true },
        );
      this.o.log.info('starting a shipped template cold: its ready snapshot has another disk size', {
        template: template.ref,
        disk_mb: spec.sized.disk_mb,
        snapshot_disk_mb: ready.machine.disk_mb,
      });
    }
    return this.coldCreate(spec, template, o);
  }

  /**
   * A machine of `template` started here: the driver's machine, then the template's start command
   * until its ready check passes (a machine counts as started only then).
   */
  private async coldCreate(
    spec: OwnedSpec,
    template: ResolvedTemplate,
    o: StartOptions,
  ): Promise<MachineRecord> {
    const record = await this.admitRecord(
      {
        ...spec,
        disk_mb: spec.sized.disk_mb ?? template.disk_mb ?? spec.disk_mb,
        cwd: spec.cwd_given ? spec.cwd : (template.workdir ?? spec.cwd),
        envs: { ...template.env, ...spec.envs },
      },
      { template: template.ref, template_id: template.id },
      { warm_pool_id: o.warmPoolId ?? null, warm_pool_checkout: o.checkout ?? null },
    );
    return this.records.serialized(record.id, async () => {
      const started = Date.now();
      await this.boot(record, template, o.skipStart === true);
      return this.startedBy(record, template, o, started);
    });
  }

  /**
   * Starts `record`'s machine cold: the driver's machine, then the template's start command until
   * its ready check passes. On failure the record is `failed`, holding nothing.
   */
  private async boot(record: MachineRecord, template: ResolvedTemplate, skipStart: boolean): Promise<void> {
    try {
      await this.o.driver.create(this.specOf(record, template.lowerdir));
    } catch (err) {
      throw this.failStart(record, err);
    }
    if (!template.start || skipStart) return;
    try {
      await startAndWaitReady(
        this.parts.agents.client(record.id),
        this.parts.networks.networkOf(record).link,
        template.start,
        { cwd: record.cwd, envs: { ...record.envs, NULLSPACE_MACHINE_ID: record.id } },
      );
    } catch (err) {
      // The machine runs: take it down, so the failed record holds nothing `kill` must free.
      this.parts.agents.drop(record.id);
      await this.o.driver.destroy(record.id).catch(() => undefined);
      throw this.failStart(record, err, 'start command');
    }
  }

  /** Marks a machine running once it has started, counts its create and logs it. */
  private startedBy(
    record: MachineRecord,
    template: ResolvedTemplate | undefined,
    o: StartOptions,
    started: number,
    how?: string,
  ): MachineRecord {
    const running = this.started(record.id, record.timeout);
    if (o.warmPoolId === undefined) this.o.onCreated?.(Date.now() - (o.requested ?? started));
    this.o.log.info('machine started', {
      machine_id: record.id,
      template: template?.ref ?? record.template,
      ...(how ? { from: how } : {}),
      ...(o.warmPoolId ? { warm_pool_id: o.warmPoolId } : {}),
      ms: Date.now() - started,
    });
    return running;
  }

  /**
   * A machine restored from reusable snapshot `snapshotId`, or from the snapshot of a
   * snapshot-backed `template` (its machines keep the template as their origin).
   */
  private async fromSnapshot(
    spec: OwnedSpec,
    snapshotId: string,
    template?: ResolvedTemplate,
    checkout: WarmPoolCheckout | null = null,
    warmPoolId?: string,
  ): Promise<MachineRecord> {
    const snap = this.parts.images.store.get(snapshotId);
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
    return this.restore(
      spec,
      {
        snapshotId,
        dir: this.parts.images.dirOf(snapshotId),
        machine: snap,
        origin: template
          ? { template: template.ref, template_id: template.id }
          : { template: snap.template, template_id: snap.template_id, snapshot_id: snapshotId },
        lowerdir: this.o.templates.lowerdirOf(snap.template_id, snap.template),
      },
      template,
      { checkout, ...(warmPoolId !== undefined ? { warmPoolId } : {}) },
    );
  }

  /**
   * A new machine restored from `source`. With `coldFallback` (a shipped template's ready
   * snapshot, which a kernel or CRIU upgrade can make unusable), a failed restore starts the
   * machine cold instead, and says so in the log.
   */
  private async restore(
    spec: OwnedSpec,
    source: RestoreSource,
    template: ResolvedTemplate | undefined,
    o: StartOptions & { coldFallback?: boolean },
  ): Promise<MachineRecord> {
    const requested = o.requested ?? Date.now();
    const snap = source.machine;
    const record = await this.admitRecord(
      {
        ...spec,
        vcpus: spec.sized.vcpus ?? snap.vcpus,
        memory_mb: spec.sized.memory_mb ?? snap.memory_mb,
        disk_mb: snap.disk_mb,
        cwd: spec.cwd_given && template ? spec.cwd : snap.cwd,
        envs: { ...template?.env, ...snap.envs, ...spec.envs },
        metadata: template ? spec.metadata : { ...snap.metadata, ...spec.metadata },
      },
      source.origin,
      { warm_pool_id: o.warmPoolId ?? null, warm_pool_checkout: o.checkout ?? null },
    );
    const start = async () => {
      try {
        await this.o.driver.createFromSnapshot(
          this.specOf(
            record,
            source.lowerdir,
            source.snapshotId !== null
              ? { kind: 'snapshot', id: source.snapshotId }
              : { kind: 'template', id: template?.ref ?? record.template },
          ),
          source.dir,
          this.o.transitionTimeoutMs,
        );
      } catch (err) {
        if (!(o.coldFallback && template)) throw this.failStart(record, err);
        this.o.log.warn('restoring a ready snapshot failed; starting the machine cold', {
          machine_id: record.id,
          template: template.ref,
          error: err,
        });
        await this.boot(record, template, false);
        return this.startedBy(record, template, { ...o, requested }, requested, 'cold start');
      }
      return this.startedBy(record, template, { ...o, requested }, requested, 'snapshot');
    };
    // A reusable snapshot's machines queue on it too, so it cannot be deleted while they start.
    return source.snapshotId === null
      ? this.records.serialized(record.id, start)
      : this.records.serialized(source.snapshotId, () => this.records.serialized(record.id, start));
  }

  /** What the driver needs to start `m` on the template's `templateRootfs`. */
  /** The driver's spec of `m`; `restoredFrom`: whose memory image a restore-created machine gets. */
  specOf(m: MachineRecord, templateRootfs: string, restoredFrom?: RestoredFrom) {
    return {
      ...driverSpec(
        m,
        templateRootfs,
        this.parts.networks.networkOf(m),
        this.o.volumes?.driverMounts(m.id) ?? [],
      ),
      ...(restoredFrom ? { restoredFrom } : {}),
    };
  }

  /**
   * Stores a new machine ({@link newRecord}) once the capacity has room for it, waiting a while for
   * killed machines' teardowns that alone fill it (see MachineCapacity.admit).
   */
  admitRecord(...args: Parameters<MachineCreator['newRecord']>): Promise<MachineRecord> {
    return this.capacity.admit(1, () => this.newRecord(...args));
  }

  /**
   * Stores a new machine (`starting`) with its address block and volume attachments. Its volumes
   * (a snapshot's or fork parent's, then the requested ones) are checked before anything is
   * stored: an unknown volume fails the create cleanly.
   */
  newRecord(
    spec: NewMachine,
    origin: Origin,
    pool: Pick<MachineRecord, 'warm_pool_id' | 'warm_pool_checkout'> = {
      warm_pool_id: null,
      warm_pool_checkout: null,
    },
  ): MachineRecord {
    if (spec.volumes !== undefined && !this.o.volumes)
      throw new CodedError('volume_not_found', 'this server has no volumes');
    // Hibernated machines count (they keep their disk, and a resume needs no new room). Checked
    // here, with nothing awaited before the insert below, so concurrent creates of one tenant
    // cannot both pass (like the server's capacity).
    if (spec.tenant !== null)
      this.o.quotas.check(spec.tenant, this.records.store.usageOf(spec.tenant, KEPT_STATES), {
        vcpus: spec.vcpus,
        memory_mb: spec.memory_mb,
        disk_mb: spec.disk_mb,
      });
    const volumes = this.o.volumes?.plan({
      tenant: spec.tenant,
      requested: spec.volumes,
      snapshotId: origin.snapshot_id,
      parentId: origin.parent_id,
    });
    const now = Date.now();
    // A network made ahead, if there is one: the machine gets its id and address block, and the
    // driver's create finds its network made (runtime RuncDriver.prepareNetwork).
    let prepared = this.parts.prepared?.take();
    let id = prepared?.id ?? newId('machine');
    let netIndex = prepared?.netIndex;
    if (netIndex === undefined) {
      try {
        netIndex = this.parts.networks.allocateIndex(id);
      } catch (err) {
        // The last free blocks are those of networks still being made: one of them, then.
        prepared = this.parts.prepared?.take({ orBeingMade: true });
        if (!prepared) throw err;
        ({ id, netIndex } = prepared);
      }
    }
    const record: MachineRecord = {
      id,
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
      net_index: netIndex,
      template_id: origin.template_id,
      ...pool,
      tenant: spec.tenant,
    };
    try {
      this.records.store.insert(record);
    } catch (err) {
      if (prepared) void this.parts.prepared?.discard(prepared);
      throw err;
    }
    if (volumes) this.o.volumes?.record(record.id, volumes);
    this.records.event(record, 'created', {
      template: origin.template,
      ...(origin.snapshot_id ? { snapshot_id: origin.snapshot_id } : {}),
      ...(origin.parent_id ? { parent_id: origin.parent_id } : {}),
    });
    return record;
  }

  /** Marks a started machine running with its deadline armed. */
  started(id: string, timeout: number): MachineRecord {
    const startedAt = Date.now();
    const updated = this.records.setStatus(id, 'running', {
      started_at: startedAt,
      expires_at: startedAt + timeout * 1000,
      transition_deadline: null,
    });
    this.parts.deadlines.arm(updated);
    return updated;
  }

  /**
   * A machine that could not start: `failed` (the driver cleaned up after itself, so the record
   * holds nothing `kill` must free), its volume attachments ended; returns the caller's error.
   */
  failStart(record: MachineRecord, err: unknown, what?: 'start command'): CodedError {
    this.records.setStatus(record.id, 'failed', {
      status_reason: startFailedReason(err, what),
      transition_deadline: null,
    });
    this.o.volumes?.release(record.id);
    const e = startError(record.id, err, what);
    if (e.code === 'internal' || e.code === 'disk_full' || e.code === 'restore_failed')
      this.o.log.error('machine failed to start', { machine_id: record.id, error: err });
    return e;
  }
}
