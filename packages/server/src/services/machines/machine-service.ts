import type { OnReadOpts, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CodedError,
  type CreateMachineSpec,
  type ForkChildResult,
  type ListMachinesQuery,
  type ListMachinesResponse,
  type MachineInfo,
  type NetworkSpec,
  type RunCommandResult,
  type SetTimeoutRequest,
  type SnapshotInfo,
  type SnapshotKind,
  type TimeoutAction,
  type VolumeMountRequest,
  type WarmPoolCheckout,
  canonicalTemplateRef,
  pickFields,
} from '@nullspace/protocol';
import type { AddressPool, AgentClient, MachineDriver, MachineLink } from '@nullspace/runtime';
import type { Logger } from '../../log.js';
import type { MachineRecord } from '../../store/machine-store.js';
import { SnapshotStore, snapshotInfo } from '../../store/snapshot-store.js';
import { TenantQuotas } from '../../tenancy/quotas.js';
import type { ResolvedTemplate, TemplateResolver } from '../template-catalog.js';
import type { MachineVolumes } from '../volume-service.js';
import { AgentConnections, type AgentLease } from './agent-connections.js';
import { Deadlines } from './deadlines.js';
import { MachineAccess, type PortLease } from './machine-access.js';
import { MachineCreator } from './machine-creator.js';
import { machineInfo } from './machine-info.js';
import { MachineNetworks } from './machine-networks.js';
import type { MachineRecords } from './machine-records.js';
import { MachineTransitions } from './machine-transitions.js';
import { PreparedNetworks } from './prepared-networks.js';
import { Readoption } from './readoption.js';
import { SnapshotImages } from './snapshot-images.js';
import { SnapshotsAndForks } from './snapshots-and-forks.js';
import { type TeardownStats, Teardowns } from './teardowns.js';

export type { AgentLease, PortLease, TeardownStats };

export interface MachineServiceOptions {
  /** The machines' records and operation queues (shared with the volume service). */
  records: MachineRecords;
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
  /** The machines' directories (the driver's): host-wide address claims name them. */
  machinesDir: string;
  /** Port of the host's DNS forwarder (on its 127.0.0.1); none: machines get no name service. */
  dnsPort?: number;
  /** How many machines' networks are kept made ahead for creates (PreparedNetworks); 0 or none: off. */
  networkPoolSize?: number;
  /** Told how long each create that started a machine took (server metrics). */
  onCreated?: (ms: number) => void;
  /** Volume attachments of machines (docs/volumes.md); none: creates naming volumes fail. */
  volumes?: MachineVolumes;
  /** Tenants' quotas (docs/tenants.md); none: no tenant has limits. */
  quotas?: TenantQuotas;
  log: Logger;
}

/**
 * The machine lifecycle as the rest of the server sees it: create, inspect, list, pause, hibernate,
 * resume, snapshot, fork, kill, timeouts, network policy, and access to what runs inside. Each
 * concern has its own part in this folder (creator, transitions, snapshots and forks, deadlines,
 * networks, agent connections, access, re-adoption); this facade wires them and turns records into
 * the API's machine info. Operations on one machine run one at a time (its queue in
 * {@link MachineRecords}); every state change is stored with its lifecycle event.
 */
export class MachineService {
  private readonly records: MachineRecords;
  private readonly images: SnapshotImages;
  private readonly agents: AgentConnections;
  private readonly networks: MachineNetworks;
  private readonly deadlines: Deadlines;
  private readonly transitions: MachineTransitions;
  private readonly creator: MachineCreator;
  private readonly snapshots: SnapshotsAndForks;
  private readonly access: MachineAccess;
  private readonly readoption: Readoption;
  private readonly teardowns: Teardowns;
  private readonly prepared: PreparedNetworks;
  private readonly log: Logger;

  constructor(private readonly o: MachineServiceOptions) {
    const records = o.records;
    const { driver, templates, volumes, transitionTimeoutMs } = o;
    const log = o.log.child({ component: 'machines' });
    this.log = log;
    this.records = records;
    this.images = new SnapshotImages(new SnapshotStore(records.store.database), o.snapshotsDir);
    this.agents = new AgentConnections(driver, log);
    this.networks = new MachineNetworks(records, {
      driver,
      addressPool: o.addressPool,
      machinesDir: o.machinesDir,
      dnsPort: o.dnsPort,
      inTeardown: () => this.teardowns.netIndexes(),
      log,
    });
    this.teardowns = new Teardowns(
      records,
      { images: this.images, networks: this.networks },
      { driver, volumes, log },
    );
    // The timers' actions are transitions, which in turn arm and disarm the timers.
    this.deadlines = new Deadlines(records, {
      pauseSpillAfterMs: o.pauseSpillAfterMs,
      actions: { expired: (m) => this.timedOut(m), spill: (m) => this.spill(m) },
    });
    const base = {
      images: this.images,
      agents: this.agents,
      networks: this.networks,
      deadlines: this.deadlines,
      teardowns: this.teardowns,
    };
    this.transitions = new MachineTransitions(records, base, {
      driver,
      templates,
      volumes,
      transitionTimeoutMs,
      log,
    });
    const withTransitions = { ...base, transitions: this.transitions };
    this.prepared = new PreparedNetworks(this.networks, { size: o.networkPoolSize ?? 0, driver, log });
    this.creator = new MachineCreator(
      records,
      { ...withTransitions, prepared: this.prepared },
      {
        driver,
        templates,
        volumes,
        maxMachines: o.maxMachines,
        transitionTimeoutMs,
        onCreated: o.onCreated,
        quotas: o.quotas ?? new TenantQuotas(),
        log,
      },
    );
    this.snapshots = new SnapshotsAndForks(
      records,
      { ...withTransitions, creator: this.creator },
      { driver, templates, volumes, transitionTimeoutMs, log },
    );
    this.access = new MachineAccess(records, withTransitions, driver);
    this.readoption = new Readoption(records, withTransitions, { driver, volumes, log });
  }

  // ---- queries ------------------------------------------------------------------------------

  get(id: string): MachineInfo {
    return this.info(this.records.get(id));
  }

  /** A page of machines; with `tenant`, only that tenant's (undefined: everyone's, for the operator). */
  list(q: ListMachinesQuery, tenant?: string): ListMachinesResponse<MachineInfo | Partial<MachineInfo>> {
    const { items, nextToken } = this.records.store.list(
      q.template === undefined ? q : { ...q, template: canonicalTemplateRef(q.template) },
      tenant,
    );
    const infos = items.map((m) => this.info(m));
    return {
      items: q.fields ? infos.map((i) => pickFields(i, q.fields ?? [])) : infos,
      next_token: nextToken,
      has_next: nextToken !== null,
    };
  }

  getSnapshot(id: string): SnapshotInfo {
    return snapshotInfo(this.images.record(id));
  }

  /** Snapshots; with `filter.tenant`, only that tenant's. */
  listSnapshots(filter: { machineId?: string; kind?: SnapshotKind; tenant?: string }): SnapshotInfo[] {
    return this.images.store.list(filter).map(snapshotInfo);
  }

  // ---- create and kill ----------------------------------------------------------------------

  /**
   * A machine of `tenant` (null: the operator's) from a template or a reusable snapshot
   * (`checkout`: a warm pool missed first).
   */
  async create(
    spec: CreateMachineSpec,
    tenant: string | null,
    o: { checkout?: WarmPoolCheckout; requested?: number } = {},
  ): Promise<MachineInfo> {
    return this.info(await this.creator.create(spec, tenant, o));
  }

  /** A machine for a warm pool of `tenant`: started like any, not listed, no deadline until checked out. */
  async createPooled(poolId: string, spec: CreateMachineSpec, tenant: string | null): Promise<MachineInfo> {
    return this.info(await this.creator.createPooled(poolId, spec, tenant));
  }

  /** A warm pool's machine handed to a create request (see {@link MachineCreator.handOver}). */
  async handOver(id: string, spec: CreateMachineSpec, checkout: WarmPoolCheckout): Promise<MachineInfo> {
    return this.info(await this.creator.handOver(id, spec, checkout));
  }

  /** Checks the volumes a create of `tenant` names before a warm pool's machine is taken for it. */
  planVolumes(requested: VolumeMountRequest[], tenant: string | null): void {
    if (!this.o.volumes) throw new CodedError('volume_not_found', 'this server has no volumes');
    this.o.volumes.plan({ requested, tenant });
  }

  /** A machine that builds a template on `base` (see {@link MachineCreator.createForBuild}). */
  async createForBuild(
    base: ResolvedTemplate,
    o: { vcpus: number; memory_mb: number; disk_mb: number; buildId: string; tenant: string | null },
  ): Promise<MachineInfo> {
    return this.info(await this.creator.createForBuild(base, o));
  }

  /** Live machines that build a template, with their build. */
  buildMachines(): { id: string; build: string }[] {
    return this.creator.buildMachines();
  }

  /**
   * Kills the machine: answers once its processes are ended and its record is `killed`; its host
   * resources are freed after (see {@link Teardowns}). Idempotent; works from every state.
   */
  async kill(id: string, reason?: string): Promise<MachineInfo> {
    return this.info(await this.transitions.kill(id, reason));
  }

  /** Resolves once no killed machine of template build `templateId` is still being torn down. */
  untilTornDown(templateId: string): Promise<void> {
    return this.teardowns.until((m) => m.template_id === templateId);
  }

  /** Teardowns of killed machines: queued, running, given up, done (server metrics). */
  teardownStats(): TeardownStats {
    return this.teardowns.stats();
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  async pause(id: string, reason?: string): Promise<MachineInfo> {
    return this.info(await this.transitions.pause(id, reason));
  }

  async hibernate(id: string, reason?: string): Promise<MachineInfo> {
    return this.info(await this.transitions.hibernate(id, reason));
  }

  /** Returns a running machine, resuming it first if it is paused or hibernated. */
  async connect(id: string, timeout?: number): Promise<MachineInfo> {
    return this.info(await this.transitions.connect(id, timeout));
  }

  /** `Machine.resume(snapshotId)`: resumes the machine a pause snapshot belongs to. */
  async resumeSnapshot(snapshotId: string, timeout?: number): Promise<MachineInfo> {
    return this.info(await this.transitions.resumeSnapshot(snapshotId, timeout));
  }

  createSnapshot(id: string): Promise<SnapshotInfo> {
    return this.snapshots.createSnapshot(id);
  }

  deleteSnapshot(snapshotId: string, o: { forTemplate?: boolean } = {}): Promise<SnapshotInfo> {
    return this.snapshots.deleteSnapshot(snapshotId, o);
  }

  async fork(id: string, count: number): Promise<ForkChildResult[]> {
    const children = await this.snapshots.fork(id, count);
    return children.map((c) => ('record' in c ? this.info(c.record) : c));
  }

  async setTimeout(id: string, req: SetTimeoutRequest): Promise<MachineInfo> {
    return this.info(await this.deadlines.setTimeout(id, req));
  }

  async setNetwork(id: string, network: NetworkSpec): Promise<MachineInfo> {
    return this.info(await this.networks.set(id, network));
  }

  // ---- inside a machine -----------------------------------------------------------------------

  /** See {@link MachineAccess.openAgent}. */
  openAgent(id: string, o: { long: boolean; record?: MachineRecord }): Promise<AgentLease> {
    return this.access.openAgent(id, o);
  }

  /** See {@link MachineAccess.connectPort}. */
  connectPort(
    id: string,
    port: number,
    o: { long: boolean; wakeTimeoutMs: number; connectTimeoutMs?: number; onread?: OnReadOpts },
  ): Promise<{ lease: PortLease; socket: Socket }> {
    return this.access.connectPort(id, port, o);
  }

  /** See {@link MachineAccess.runScript}. */
  runScript(id: string, script: string, timeoutMs?: number): Promise<RunCommandResult> {
    return this.access.runScript(id, script, timeoutMs);
  }

  /** The agent of a running machine, for the server's own work in it (template builds). */
  agentOf(id: string): AgentClient {
    this.records.requireRunning(this.records.get(id));
    return this.agents.client(id);
  }

  /** The link of a machine (where its ports are reached from the host). */
  linkOf(id: string): MachineLink {
    return this.networks.networkOf(this.records.get(id)).link;
  }

  /** See {@link MachineDriver.exportChanges}. */
  exportChanges(id: string, target: string): Promise<void> {
    return this.records.whileRunning(id, () => this.o.driver.exportChanges(id, target));
  }

  // ---- restart and shutdown -------------------------------------------------------------------

  /**
   * See {@link Readoption}; then networks start being made ahead ({@link PreparedNetworks}), not
   * before: re-adoption removes what it finds of machines the store does not know.
   */
  async readopt(): Promise<void> {
    await this.readoption.readopt();
    this.prepared.start();
  }

  /**
   * Stops timers, waits (bounded) for in-flight transitions, then for the teardowns of killed
   * machines (`teardownWaitMs`: a stopped server leaves nothing of a machine it answered as
   * killed). Machines keep running for the next start; one caught mid-transition is sorted out by
   * `readopt` then, and so is a teardown left unfinished.
   */
  async close(waitMs = 10_000, teardownWaitMs = 60_000): Promise<void> {
    this.deadlines.close();
    await this.records.drain(waitMs);
    // The networks made ahead that no create took: nothing of them outlives the server.
    await this.prepared.close();
    await this.teardowns.close(teardownWaitMs);
    // The releases of machines hibernated just before (a stopped server leaves them released),
    // bounded as the teardowns are: one cut here is done by the next server's resume or kill.
    const drained = this.o.driver.drainReleases?.();
    if (drained) {
      const bound = new AbortController();
      const late = sleep(teardownWaitMs, undefined, { signal: bound.signal }).catch(() => undefined);
      await Promise.race([drained, late]);
      bound.abort();
    }
    this.agents.dropAll('the server is shutting down');
  }

  // ---- internals ------------------------------------------------------------------------------

  private info(m: MachineRecord): MachineInfo {
    // A killed machine's attachments end with its teardown, after the kill answered; it mounts
    // nothing from the moment it is killed.
    const volumes = m.status === 'killed' ? [] : (this.o.volumes?.attachmentsOf(m.id) ?? []);
    return machineInfo(m, this.o.addressPool, volumes);
  }

  /** A running machine's deadline passed: its `on_timeout` applies. */
  private timedOut(m: MachineRecord): void {
    this.log.info('machine timed out', { machine_id: m.id, on_timeout: m.on_timeout });
    this.records.event(m, 'timeout', { on_timeout: m.on_timeout, timeout: m.timeout });
    const reason = `timeout after ${m.timeout}s`;
    const action: Record<TimeoutAction, () => Promise<unknown>> = {
      kill: () => this.transitions.kill(m.id, reason),
      pause: () => this.transitions.pause(m.id, reason),
      hibernate: () => this.transitions.hibernate(m.id, reason),
    };
    action[m.on_timeout]().catch((err: unknown) =>
      this.log.error('timeout action failed', { machine_id: m.id, on_timeout: m.on_timeout, error: err }),
    );
  }

  /** A machine paused longer than the spill time is hibernated. */
  private spill(m: MachineRecord): void {
    this.transitions
      .hibernate(m.id, `paused longer than ${Math.round(this.o.pauseSpillAfterMs / 1000)}s`)
      .catch((err: unknown) => this.log.error('spill to hibernate failed', { machine_id: m.id, error: err }));
  }
}
