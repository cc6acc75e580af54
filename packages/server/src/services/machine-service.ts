import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  CodedError,
  type CreateMachineSpec,
  type ListMachinesQuery,
  type ListMachinesResponse,
  type MachineInfo,
  type MachineState,
  type RunCommandRequest,
  type RunCommandResult,
  invalidArgument,
  newId,
  pickFields,
} from '@nullspace/protocol';
import { AgentClient, type MachineDriver } from '@nullspace/runtime';
import type { Logger } from '../log.js';
import type { MachineRecord, MachineStore } from '../store/machine-store.js';

/** States in which a machine holds runtime resources and counts against the host's capacity. */
const LIVE_STATES: MachineState[] = [
  'starting',
  'running',
  'pausing',
  'paused',
  'hibernating',
  'resuming',
  'killing',
];
const TRANSITIONAL: MachineState[] = ['starting', 'pausing', 'hibernating', 'resuming', 'killing'];
/** Longest single setTimeout Node accepts; longer deadlines are re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface MachineServiceOptions {
  store: MachineStore;
  driver: MachineDriver;
  templatesDir: string;
  maxMachines: number;
  log: Logger;
}

/**
 * The machine lifecycle: create, inspect, list, kill, commands, and the timeout of every machine.
 * Operations that change one machine's state run one at a time per machine (a per-id queue), so
 * concurrent calls never interleave. Deadlines are stored, so a restart re-arms them.
 */
export class MachineService {
  private readonly store: MachineStore;
  private readonly driver: MachineDriver;
  private readonly log: Logger;
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly agents = new Map<string, AgentClient>();
  private closed = false;

  constructor(private readonly o: MachineServiceOptions) {
    this.store = o.store;
    this.driver = o.driver;
    this.log = o.log.child({ component: 'machines' });
  }

  // ---- queries ------------------------------------------------------------------------------

  get(id: string): MachineInfo {
    return toInfo(this.record(id));
  }

  list(q: ListMachinesQuery): ListMachinesResponse<MachineInfo | Partial<MachineInfo>> {
    const { items, nextToken } = this.store.list(q);
    const infos = items.map(toInfo);
    return {
      items: q.fields ? infos.map((i) => pickFields(i, q.fields ?? [])) : infos,
      next_token: nextToken,
      has_next: nextToken !== null,
    };
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  async create(spec: CreateMachineSpec): Promise<MachineInfo> {
    if (spec.on_timeout !== 'kill')
      throw invalidArgument(
        'on_timeout',
        `"${spec.on_timeout}" needs pause/hibernate, which this server does not offer yet`,
      );
    if (spec.snapshot_id !== undefined)
      throw new CodedError('snapshot_not_found', `snapshot ${spec.snapshot_id} not found`, {
        snapshot_id: spec.snapshot_id,
      });
    if (spec.volume_ids !== undefined)
      throw new CodedError('volume_not_found', `volume ${spec.volume_ids[0]} not found`, {
        volume: spec.volume_ids[0],
      });
    if (spec.warm_pool !== undefined)
      throw new CodedError('not_found', `warm pool ${spec.warm_pool} not found`, {
        warm_pool: spec.warm_pool,
      });
    const templateRootfs = this.templateRootfs(spec.template);
    if (this.store.countInStates(LIVE_STATES) >= this.o.maxMachines)
      throw new CodedError(
        'resource_exhausted',
        `this server runs at most ${this.o.maxMachines} machines at once`,
        {
          max_machines: this.o.maxMachines,
        },
      );

    const now = Date.now();
    const record: MachineRecord = {
      id: newId('machine'),
      execution_id: newId('execution'),
      status: 'starting',
      status_reason: null,
      template: spec.template,
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
    };
    this.store.insert(record);
    return this.serialized(record.id, async () => {
      const started = Date.now();
      try {
        await this.driver.create({
          id: record.id,
          templateRootfs,
          vcpus: spec.vcpus,
          memoryMb: spec.memory_mb,
          diskMb: spec.disk_mb,
          cwd: spec.cwd,
        });
      } catch (err) {
        // The driver cleaned up after itself; the record stays, in a state `kill` can finish.
        this.store.update(record.id, {
          status: 'failed',
          status_reason: `start failed: ${publicReason(err)}`,
        });
        this.log.error('machine failed to start', { machine_id: record.id, error: err });
        throw new CodedError(
          'internal',
          `machine ${record.id} failed to start (its status_reason says why)`,
          { machine_id: record.id },
          { cause: err },
        );
      }
      const startedAt = Date.now();
      const updated = this.store.update(record.id, {
        status: 'running',
        started_at: startedAt,
        expires_at: startedAt + spec.timeout * 1000,
      });
      this.arm(updated);
      this.log.info('machine started', {
        machine_id: record.id,
        template: spec.template,
        ms: startedAt - started,
      });
      return toInfo(updated);
    });
  }

  /** Returns a running machine; `timeout` (seconds) re-applies the caller's deadline. */
  async connect(id: string, timeout?: number): Promise<MachineInfo> {
    return this.serialized(id, async () => {
      const m = this.requireRunning(this.record(id));
      if (timeout === undefined) return toInfo(m);
      const updated = this.store.update(id, { timeout, expires_at: Date.now() + timeout * 1000 });
      this.arm(updated);
      return toInfo(updated);
    });
  }

  /** Destroys the machine. Idempotent; works from every state, `failed` included. */
  async kill(id: string, reason = 'killed by request'): Promise<MachineInfo> {
    this.record(id);
    return this.serialized(id, async () => {
      const m = this.record(id);
      if (m.status === 'killed') return toInfo(m);
      this.disarm(id);
      this.store.update(id, { status: 'killing', status_reason: reason });
      this.dropAgent(id);
      try {
        await this.driver.destroy(id);
      } catch (err) {
        this.log.error('machine teardown failed', { machine_id: id, error: err });
        this.store.update(id, { status: 'failed', status_reason: `kill failed: ${publicReason(err)}` });
        throw new CodedError(
          'internal',
          `machine ${id} could not be fully torn down; kill it again`,
          { machine_id: id },
          {
            cause: err,
          },
        );
      }
      this.log.info('machine killed', { machine_id: id, reason });
      return toInfo(this.store.update(id, { status: 'killed', status_reason: reason }));
    });
  }

  async runCommand(id: string, req: RunCommandRequest): Promise<RunCommandResult> {
    const m = this.requireRunning(this.record(id));
    const agentReq = {
      cmd: req.cmd,
      args: req.args,
      shell: req.shell,
      cwd: req.cwd ?? m.cwd,
      // The machine's envs travel with each command rather than living in the agent's own
      // environment, so nothing a user sets (NODE_OPTIONS ...) can change how the agent runs.
      envs: { ...m.envs, ...req.envs },
      timeout_ms: req.timeout_ms,
      ...(req.stdin !== undefined ? { stdin: req.stdin } : {}),
    };
    try {
      return await this.agent(id).run(agentReq);
    } catch (err) {
      if (err instanceof CodedError && err.code === 'unavailable') {
        // Killed (or timed out) while the command ran: say so, rather than "unreachable".
        const now = this.record(id);
        if (now.status !== 'running') this.requireRunning(now);
        await this.checkAlive(id);
      }
      throw err;
    }
  }

  // ---- restart and shutdown -------------------------------------------------------------------

  /**
   * After a (re)start: machines the store says are alive and the runtime still runs are adopted
   * (deadlines re-armed, disks re-mounted); those whose processes are gone are marked failed and
   * cleaned; half-done kills are finished; runtime leftovers the store does not know are removed.
   */
  async readopt(): Promise<void> {
    const known = new Set<string>();
    for (const m of this.store.listInStates(LIVE_STATES)) {
      known.add(m.id);
      if (m.status === 'killing') {
        await this.kill(m.id, m.status_reason ?? 'killed by request').catch(() => undefined);
        continue;
      }
      const state = await this.driver.inspect(m.id);
      if (state === 'running' && m.status === 'running') {
        this.arm(m);
        this.log.info('machine re-adopted', {
          machine_id: m.id,
          expires_at: new Date(m.expires_at).toISOString(),
        });
      } else {
        this.store.update(m.id, {
          status: 'failed',
          status_reason: `lost: runtime state was ${state} at server start`,
        });
        await this.driver
          .destroy(m.id)
          .catch((err: unknown) => this.log.error('cleanup failed', { machine_id: m.id, error: err }));
        this.log.warn('machine lost across restart', {
          machine_id: m.id,
          runtime_state: state,
          was: m.status,
        });
      }
    }
    for (const id of await this.driver.list()) {
      const m = this.store.get(id);
      if (!known.has(id) && (!m || !LIVE_STATES.includes(m.status))) {
        this.log.warn('removing runtime leftovers of a machine not alive in the store', { machine_id: id });
        await this.driver
          .destroy(id)
          .catch((err: unknown) => this.log.error('cleanup failed', { machine_id: id, error: err }));
      }
    }
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
    for (const id of [...this.agents.keys()]) this.dropAgent(id);
  }

  // ---- internals ------------------------------------------------------------------------------

  private record(id: string): MachineRecord {
    const m = this.store.get(id);
    if (!m) throw new CodedError('machine_not_found', `machine ${id} not found`, { machine_id: id });
    return m;
  }

  private requireRunning(m: MachineRecord): MachineRecord {
    if (m.status === 'running') return m;
    if (TRANSITIONAL.includes(m.status))
      throw new CodedError('machine_transitioning', `machine ${m.id} is ${m.status}`, {
        machine_id: m.id,
        status: m.status,
        retry_after: 1,
      });
    throw new CodedError('invalid_state', `machine ${m.id} is ${m.status}`, {
      machine_id: m.id,
      status: m.status,
      ...(m.status_reason ? { status_reason: m.status_reason } : {}),
    });
  }

  private templateRootfs(name: string): string {
    const dir = join(this.o.templatesDir, encodeURIComponent(name), 'rootfs');
    if (!existsSync(dir))
      throw new CodedError('template_not_found', `template ${name} not found`, { template: name });
    return dir;
  }

  private agent(id: string): AgentClient {
    let client = this.agents.get(id);
    if (!client) {
      client = new AgentClient(this.driver.agentSocketPath(id));
      this.agents.set(id, client);
    }
    return client;
  }

  private dropAgent(id: string): void {
    this.agents.get(id)?.close();
    this.agents.delete(id);
  }

  /** When the agent stops answering, find out whether the machine itself is gone. */
  private async checkAlive(id: string): Promise<void> {
    const state = await this.driver.inspect(id).catch(() => 'missing' as const);
    if (state === 'missing' || state === 'stopped') {
      await this.serialized(id, async () => {
        const m = this.record(id);
        if (m.status !== 'running') this.requireRunning(m);
        this.disarm(id);
        this.store.update(id, {
          status: 'failed',
          status_reason: `machine stopped unexpectedly (runtime state ${state})`,
        });
        await this.driver.destroy(id).catch(() => undefined);
      });
      throw new CodedError('invalid_state', `machine ${id} stopped unexpectedly`, { machine_id: id });
    }
  }

  /** Runs `fn` after every earlier operation on the same machine has finished. */
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

  private arm(m: MachineRecord): void {
    this.disarm(m.id);
    if (this.closed) return;
    const delay = Math.max(0, m.expires_at - Date.now());
    const timer = setTimeout(
      () => {
        this.timers.delete(m.id);
        const current = this.store.get(m.id);
        if (!current || current.status !== 'running') return;
        if (current.expires_at > Date.now()) {
          this.arm(current); // re-armed by set_timeout/connect, or a deadline beyond one timer's reach
          return;
        }
        this.onTimeout(current);
      },
      Math.min(delay, MAX_TIMER_MS),
    );
    timer.unref();
    this.timers.set(m.id, timer);
  }

  private disarm(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  private onTimeout(m: MachineRecord): void {
    this.log.info('machine timed out', { machine_id: m.id, on_timeout: m.on_timeout });
    // Only `kill` can be created today (pause/hibernate are refused at the edge until lifecycle lands).
    this.kill(m.id, `timeout after ${m.timeout}s`).catch((err: unknown) =>
      this.log.error('timeout kill failed', { machine_id: m.id, error: err }),
    );
  }
}

/**
 * What a machine's owner may read about a failure: a reason the runtime marked as safe, else a
 * pointer to the log (host paths and tools' output stay there).
 */
function publicReason(err: unknown): string {
  const reason = err instanceof CodedError ? err.details?.public_reason : undefined;
  return typeof reason === 'string' ? reason : 'a host error; the server log has the cause';
}

export function toInfo(m: MachineRecord): MachineInfo {
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
    network: { egress: { mode: 'deny_all' } },
    timeout: m.timeout,
    on_timeout: m.on_timeout,
    auto_resume: m.auto_resume,
    expires_at: new Date(m.expires_at).toISOString(),
    created_at: new Date(m.created_at).toISOString(),
    started_at: m.started_at === null ? null : new Date(m.started_at).toISOString(),
    warm_pool_checkout: null,
    volumes: [],
    status_reason: m.status_reason,
  };
}
