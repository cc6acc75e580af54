import type http from 'node:http';
import { AgentClient, type MachineDriver } from '@nullspace/runtime';
import type { Logger } from '../../log.js';
import type { MachineRecord } from '../../store/machine-store.js';

/** How long a snapshot or fork waits for commands in flight before ending their connections. */
const QUIESCE_WAIT_MS = 10_000;

/** See {@link AgentConnections.lease}. */
export interface AgentLease {
  machine: MachineRecord;
  /** Where to connect (the agent's pinned socket; its fd stays open until `release`). */
  socketPath: string;
  /** The agent's keep-alive connections (per machine; closed when the machine's agent is dropped). */
  pool: http.Agent;
  /** Called when the machine's agent connections must end now (checkpoint, kill, restore). */
  onCut(cb: (reason: string) => void): void;
  release(): void;
  /** Turns a failure to reach the agent into what the caller should see (machine state errors). */
  failed(err: unknown): Promise<unknown>;
}

/**
 * The server's connections to machines' agents: one client per machine (kept-alive sockets), the
 * streams and requests leased on them, and the calls in flight. A checkpoint must not hold a
 * connection to the host, so before one the connections are drained (`quiesced`, `disconnect`);
 * a kill, checkpoint or restore cuts every lease of the machine (`drop`).
 */
export class AgentConnections {
  private readonly clients = new Map<string, AgentClient>();
  /** Streams and requests to each machine's agent that must end when its connections are dropped. */
  private readonly leases = new Map<string, Set<(reason: string) => void>>();
  /** Agent calls in flight per machine, and who waits for them to end. */
  private readonly inFlight = new Map<string, { n: number; idle: (() => void)[] }>();
  private readonly quiescing = new Set<string>();
  private readonly quiesceWaiters = new Map<string, (() => void)[]>();

  constructor(
    private readonly driver: MachineDriver,
    private readonly log: Logger,
  ) {}

  /** The agent client of a machine (made on first use, until it is dropped). */
  client(id: string): AgentClient {
    let client = this.clients.get(id);
    if (!client) {
      client = new AgentClient(this.driver.agentSocketPath(id));
      this.clients.set(id, client);
    }
    return client;
  }

  /** Whether a checkpoint is being taken of the machine now (see {@link quiesced}). */
  isQuiescing(id: string): boolean {
    return this.quiescing.has(id);
  }

  /** Resolves once no checkpoint is being taken of the machine. */
  async untilQuiet(id: string): Promise<void> {
    while (this.quiescing.has(id)) {
      await new Promise<void>((resolve) => {
        const list = this.quiesceWaiters.get(id) ?? [];
        list.push(resolve);
        this.quiesceWaiters.set(id, list);
      });
    }
  }

  /**
   * A lease on machine `m`'s agent for one proxied request or stream. A short request
   * (`long: false`) counts as in flight, so a checkpoint waits a while for it; a stream
   * (`long: true`) does not: a checkpoint, kill or restore calls its `onCut` at once.
   */
  lease(m: MachineRecord, o: { long: boolean; failed: (err: unknown) => Promise<unknown> }): AgentLease {
    const client = this.client(m.id);
    const done = o.long ? () => undefined : this.enter(m.id);
    const cuts = this.leases.get(m.id) ?? new Set<(reason: string) => void>();
    this.leases.set(m.id, cuts);
    const mine: ((reason: string) => void)[] = [];
    let released = false;
    let held: { path: string; release: () => void };
    try {
      held = client.hold();
    } catch (err) {
      done();
      throw err;
    }
    return {
      machine: m,
      socketPath: held.path,
      pool: client.pool,
      onCut: (cb) => {
        mine.push(cb);
        cuts.add(cb);
      },
      release: () => {
        if (released) return;
        released = true;
        for (const cb of mine) cuts.delete(cb);
        held.release();
        done();
      },
      failed: o.failed,
    };
  }

  /**
   * Runs `fn` (a checkpoint that leaves the machine running) once no agent call is in flight: the
   * checkpoint must not hold connections to this server. Calls in flight get QUIESCE_WAIT_MS to
   * finish; after that their connections are ended (the commands keep running in the machine).
   * New calls wait (see {@link untilQuiet}) until `fn` is done.
   */
  async quiesced<T>(id: string, fn: () => Promise<T>): Promise<T> {
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
      await this.disconnect(id);
      return await fn();
    } finally {
      this.quiescing.delete(id);
      for (const w of this.quiesceWaiters.get(id) ?? []) w();
      this.quiesceWaiters.delete(id);
    }
  }

  /**
   * Before a checkpoint: closes every connection to the agent and waits until the agent has closed
   * its side too (a socket connected to the host cannot be checkpointed; see AgentClient.drain).
   * A paused machine's agent cannot answer; its connections are only closed on this side (the
   * admission table lets no snapshot or fork of a paused machine through; hibernate thaws it
   * before calling this).
   */
  async disconnect(id: string): Promise<void> {
    this.drop(id);
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

  /** Closes the connections to the machine's agent, in-flight ones included, and cuts its leases. */
  drop(id: string, reason = 'the machine is being checkpointed or stopped'): void {
    this.clients.get(id)?.close();
    this.clients.delete(id);
    const cuts = this.leases.get(id);
    this.leases.delete(id);
    for (const cut of cuts ?? []) cut(reason);
  }

  /** Drops every machine's connections (the server is stopping). */
  dropAll(reason: string): void {
    for (const id of new Set([...this.clients.keys(), ...this.leases.keys()])) this.drop(id, reason);
  }

  /**
   * Whether the machine's processes run and its agent answers; with `thaw`, a machine a killed
   * checkpoint left frozen is thawed first.
   */
  async aliveAndAnswering(id: string, thaw: boolean): Promise<boolean> {
    const state = await this.driver.inspect(id).catch(() => 'missing' as const);
    if (state === 'paused' && thaw) await this.driver.unpause(id).catch(() => undefined);
    else if (state !== 'running') return false;
    this.drop(id);
    try {
      await this.client(id).health(5000);
      return true;
    } catch {
      return false;
    } finally {
      this.drop(id);
    }
  }

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
}
