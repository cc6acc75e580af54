import type { OnReadOpts, Socket } from 'node:net';
import { CodedError, type MachineState, type RunCommandResult } from '@nullspace/protocol';
import { type MachineDriver, type MachineLink, connectToMachinePort } from '@nullspace/runtime';
import type { MachineRecord } from '../../store/machine-store.js';
import type { AgentConnections, AgentLease } from './agent-connections.js';
import type { Deadlines } from './deadlines.js';
import type { MachineNetworks } from './machine-networks.js';
import type { MachineRecords } from './machine-records.js';
import type { MachineTransitions } from './machine-transitions.js';

/** See {@link MachineAccess.openPort}. */
export interface PortLease extends AgentLease {
  link: MachineLink;
}

/** States preview traffic may wake a machine from (with auto_resume), or wait out. */
const SLEEPING: MachineState[] = ['paused', 'hibernated', 'pausing', 'hibernating', 'resuming'];

/**
 * How requests reach what runs in a machine: leases on its agent (commands, files, terminals) and
 * connections to its ports (preview, SSH). A paused or hibernated machine with auto_resume is woken
 * first; a checkpoint being taken is waited for; an agent that stops answering is checked for a
 * machine that died under it.
 */
export class MachineAccess {
  constructor(
    private readonly records: MachineRecords,
    private readonly parts: {
      agents: AgentConnections;
      networks: MachineNetworks;
      deadlines: Deadlines;
      transitions: MachineTransitions;
    },
    private readonly driver: MachineDriver,
  ) {}

  /**
   * Access to a running machine's agent for one proxied request or stream (see
   * {@link AgentConnections.lease}). A paused or hibernated machine with auto_resume is woken first.
   */
  async openAgent(id: string, o: { long: boolean; record?: MachineRecord }): Promise<AgentLease> {
    const { agents, transitions } = this.parts;
    // A caller that has just read the record passes it: a preview request reads it once.
    let m = o.record ?? this.records.get(id);
    if ((m.status === 'paused' || m.status === 'hibernated') && m.auto_resume) {
      await transitions.connect(id);
      m = this.records.get(id);
    }
    this.records.requireRunning(m);
    if (agents.isQuiescing(id)) {
      await agents.untilQuiet(id);
      m = this.records.requireRunning(this.records.get(id));
    }
    return agents.lease(m, {
      long: o.long,
      failed: async (err) => {
        // Killed, paused or hibernated while the request ran: say so, rather than "unreachable".
        if (err instanceof CodedError && err.code === 'unavailable') {
          const now = this.records.get(id);
          if (now.status !== 'running') this.records.requireRunning(now);
          await this.checkAlive(id);
        }
        return err;
      },
    });
  }

  /**
   * A TCP connection from the host to `port` of the machine (see `connectToMachinePort`), with
   * the lease it is made under ({@link openPort}): the caller releases the lease when done with
   * the socket; a failure to connect releases it here.
   */
  async connectPort(
    id: string,
    port: number,
    o: { long: boolean; wakeTimeoutMs: number; connectTimeoutMs?: number; onread?: OnReadOpts },
  ): Promise<{ lease: PortLease; socket: Socket }> {
    const lease = await this.openPort(id, o);
    try {
      return { lease, socket: await connectToMachinePort(lease.link, port, o.connectTimeoutMs, o.onread) };
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
      return await this.parts.agents.client(id).run({
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

  /**
   * Access to a port of a machine for preview traffic: an agent lease (cut by checkpoints, kill
   * and restore) plus the machine's link. A paused or hibernated machine with auto_resume is woken
   * once however many requests wait for it (they queue behind one resume); when the wake is not
   * done within `wakeTimeoutMs`, or the machine cannot be woken, the caller gets `unavailable`
   * with `retry_after: 5` (the resume goes on).
   */
  private async openPort(id: string, o: { long: boolean; wakeTimeoutMs: number }): Promise<PortLease> {
    const m = this.records.get(id);
    let woken = false;
    const unavailable = (why: string) =>
      new CodedError('unavailable', `machine ${id} ${why}`, {
        machine_id: id,
        status: this.records.get(id).status,
        retry_after: 5,
      });
    if (m.status !== 'running') {
      if (!SLEEPING.includes(m.status)) {
        if (m.status === 'starting') throw unavailable('is starting');
        this.records.requireRunning(m);
      }
      if (!m.auto_resume) throw unavailable(`is ${m.status} and auto_resume is off`);
      let timer: NodeJS.Timeout | undefined;
      let failure: unknown;
      const woke = await Promise.race([
        this.parts.transitions.connect(id).then(
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
        throw unavailable(`is ${this.records.get(id).status}`);
      throw err;
    }
    return { ...lease, link: this.parts.networks.networkOf(lease.machine).link };
  }

  /** When the agent stops answering, find out whether the machine itself is gone. */
  private async checkAlive(id: string): Promise<void> {
    const state = await this.driver.inspect(id).catch(() => 'missing' as const);
    if (state === 'missing' || state === 'stopped') {
      await this.records.serialized(id, async () => {
        const m = this.records.get(id);
        if (m.status !== 'running') this.records.requireRunning(m);
        this.parts.deadlines.disarm(id);
        this.records.setStatus(id, 'failed', {
          status_reason: `machine stopped unexpectedly (runtime state ${state})`,
        });
        await this.driver.destroy(id).catch(() => undefined);
      });
      throw new CodedError('invalid_state', `machine ${id} stopped unexpectedly`, { machine_id: id });
    }
  }
}
