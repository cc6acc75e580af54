// Over 600 lines: Machine is the SDK's one entry point, and each of its members carries TSDoc with an example.
import './dispose.js';
import {
  CreateMachineBodySchema,
  type ForkChildResult,
  type ForkResponse,
  type ListMachinesResponse,
  MACHINE_LIMITS,
  SetTimeoutBodySchema,
  type MachineInfo as WireMachineInfo,
  type MachineMetrics as WireMachineMetrics,
  type SnapshotInfo as WireSnapshotInfo,
} from '@nullspace/protocol';
import { CodeInterpreter } from './code-interpreter.js';
import { type CommandResult, Commands } from './commands.js';
import { Desktop } from './desktop.js';
import { NotFoundError, type NullspaceError, errorFromCode } from './errors.js';
import type { LifecycleEvent, StreamEventsOptions } from './events.js';
import type { SignedUrlOptions } from './files-types.js';
import { Files } from './files.js';
import { Git } from './git.js'; // git helpers
import { MachineHandle } from './machine-handle.js';
import { type MachineInfo, type MachineInfoKey, machineInfoFromWire } from './machine-info.js';
import {
  type MachineConnectOptions,
  type MachineCreateOptions,
  type MachineForkOptions,
  type MachineGetInfoOptions,
  type MachineListOptions,
  type MachineQuery,
  type MachineSetTimeoutOptions,
  type RunOnceOptions,
  fieldsQuery,
  listQuery,
} from './machine-options.js';
import { type MachineMetrics, machineMetricsFromWire } from './metrics.js';
import { MachinePaginator, type Page } from './paginator.js';
import { Pty } from './pty.js';
import { type SnapshotInfo, snapshotInfoFromWire } from './snapshot.js';
import { type ConnectionOptions, type RequestOptions, Transport } from './transport.js';
import type { VolumeMount } from './volume.js';
import { requestBody } from './wire.js';

export type { VolumeMount } from './volume.js';
export type {
  MachineConnectOptions,
  MachineCreateOptions,
  MachineForkOptions,
  MachineGetInfoOptions,
  MachineListOptions,
  MachineQuery,
  MachineSetTimeoutOptions,
  RunOnceOptions,
};

/**
 * A child {@link Machine.fork} started: a handle on it (same connection as the parent's) and its
 * info. `error` is `undefined`, so `if (child.error)` tells the two kinds of {@link ForkChild} apart.
 *
 * @example
 * ```ts
 * for (const child of await machine.fork({ count: 2 })) {
 *   if (!child.error) console.log(child.machine.id, child.info.status);
 * }
 * ```
 */
export interface ForkedMachine {
  machine: Machine;
  info: MachineInfo;
  error?: undefined;
}

/**
 * A child {@link Machine.fork} could not start, and why, as the typed error a failed call would
 * have thrown. The other children are not affected.
 *
 * @example
 * ```ts
 * for (const child of await machine.fork({ count: 2 })) {
 *   if (child.error) console.error(child.error.code, child.error.message);
 * }
 * ```
 */
export interface ForkFailure {
  error: NullspaceError;
  machine?: undefined;
  info?: undefined;
}

/**
 * One entry of {@link Machine.fork}'s result per requested child, in order.
 *
 * @example
 * ```ts
 * const children: ForkChild[] = await machine.fork({ count: 4 });
 * const started = children.flatMap((c) => (c.error ? [] : [c.machine]));
 * ```
 */
export type ForkChild = ForkedMachine | ForkFailure;

function connectionOf(opts: ConnectionOptions): ConnectionOptions {
  const out: ConnectionOptions = {};
  if (opts.apiUrl !== undefined) out.apiUrl = opts.apiUrl;
  if (opts.apiKey !== undefined) out.apiKey = opts.apiKey;
  if (opts.requestTimeoutMs !== undefined) out.requestTimeoutMs = opts.requestTimeoutMs;
  return out;
}

function machinePath(id: string): string {
  return `/v1/machines/${encodeURIComponent(id)}`;
}

/** A handle call's own `requestTimeoutMs`, as a transport request field. */
function perCall(opts: RequestOptions): { timeoutMs?: number } {
  return opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs };
}

function forkChildFromWire(child: ForkChildResult, connection: ConnectionOptions): ForkChild {
  if ('error' in child) {
    const { code, message, details, request_id } = child.error;
    return {
      error: errorFromCode(code, message, {
        ...(details === undefined ? {} : { details }),
        ...(request_id === undefined ? {} : { requestId: request_id }),
      }),
    };
  }
  return { machine: new Machine(child.id, connection), info: machineInfoFromWire(child) };
}

/**
 * A handle on one machine: an isolated Linux environment on a Nullspace server. Holding a
 * handle costs nothing; the machine lives until it is killed or its timeout applies.
 *
 * @example
 * ```ts
 * import { Machine } from '@nullspace/sdk';
 *
 * await using machine = await Machine.create({ template: 'base' });
 * const result = await machine.commands.run('uname -a');
 * console.log(machine.id, result.stdout);
 * // the machine is killed when the block ends
 * ```
 */
export class Machine extends MachineHandle implements AsyncDisposable {
  /**
   * Runs processes in the machine.
   *
   * @example
   * ```ts
   * const { stdout } = await machine.commands.run('ls -la');
   * ```
   */
  readonly commands: Commands;
  /**
   * Interactive terminals in the machine.
   *
   * @example
   * ```ts
   * const term = await machine.pty.create({ onData: (b) => process.stdout.write(b) });
   * ```
   */
  readonly pty: Pty;
  /**
   * Git in the machine: clone, status, branches, add/commit, diff, pull/push, config.
   *
   * @example
   * ```ts
   * await machine.git.clone('https://github.com/team/app.git', { path: '/workspace/app' });
   * ```
   */
  readonly git: Git;
  /**
   * The machine's files: read, write, list, search, replace, watch, signed URLs.
   *
   * @example
   * ```ts
   * await machine.files.write('/workspace/hello.txt', 'hi');
   * ```
   */
  readonly files: Files;
  /**
   * Stateful notebook-style code execution (machines of the `code-interpreter` template).
   *
   * @example
   * ```ts
   * const ex = await machine.codeInterpreter.run('1 + 1');
   * console.log(ex.text); // "2"
   * ```
   */
  readonly codeInterpreter: CodeInterpreter;
  /**
   * The machine's desktop (template `desktop`): screenshots, mouse, keyboard, windows, clipboard,
   * a viewer and recordings.
   *
   * @example
   * ```ts
   * const png = await machine.desktop.screenshot();
   * ```
   */
  readonly desktop: Desktop;
  readonly #connection: ConnectionOptions;

  /**
   * Makes a handle for an existing machine without calling the server. Prefer
   * {@link Machine.connect}, which also resumes a paused machine and checks that it exists.
   *
   * @example
   * ```ts
   * const machine = new Machine('mch_aaaaaaaaaaaaaaaaaaaa', { apiUrl: 'http://127.0.0.1:7070' });
   * await machine.kill();
   * ```
   */
  constructor(id: string, opts: ConnectionOptions = {}) {
    super(id, opts);
    this.#connection = connectionOf(opts);
    this.commands = new Commands(id, this.transport);
    this.files = new Files(id, this.transport);
    this.desktop = new Desktop(id, this.transport);
    this.pty = new Pty(id, this.transport);
    this.git = new Git(this.commands); // git helpers
    this.codeInterpreter = new CodeInterpreter(id, this.transport, this.files);
  }

  /**
   * Creates a machine and returns a handle on it once it is running.
   *
   * @example
   * ```ts
   * const machine = await Machine.create({
   *   template: 'base',
   *   vcpus: 2,
   *   memoryMb: 512,
   *   timeout: 300,
   *   envs: { APP_ENV: 'dev' },
   *   metadata: { project: 'docs' },
   * });
   * console.log(machine.id);
   * ```
   */
  static async create(opts: MachineCreateOptions = {}): Promise<Machine> {
    const connection = connectionOf(opts);
    const transport = new Transport(connection);
    const wait = opts.warmPoolWaitMs ?? 0;
    const wire = await transport.request<WireMachineInfo>({
      method: 'POST',
      path: '/v1/machines',
      body: requestBody(CreateMachineBodySchema, opts),
      timeoutMs: transport.requestTimeoutMs === 0 ? 0 : transport.requestTimeoutMs + wait,
    });
    return new Machine(wire.id, connection);
  }

  /**
   * Returns a handle on a running machine, resuming it first if it is paused or hibernated.
   * For a look that never wakes a machine, use {@link Machine.getInfoById}.
   *
   * @example
   * ```ts
   * const machine = await Machine.connect('mch_aaaaaaaaaaaaaaaaaaaa');
   * console.log((await machine.getInfo()).status); // "running"
   * ```
   */
  static async connect(id: string, opts: MachineConnectOptions = {}): Promise<Machine> {
    const connection = connectionOf(opts);
    const transport = new Transport(connection);
    await transport.request<WireMachineInfo>({
      method: 'POST',
      path: `${machinePath(id)}/connect`,
      body: opts.timeout === undefined ? {} : { timeout: opts.timeout },
    });
    return new Machine(id, connection);
  }

  /**
   * Resumes the machine a `pause` snapshot belongs to (the `snapshotId` that `pause()` or
   * `hibernate()` gave it) and returns a handle on it: same machine id, a new execution, the
   * deadline counted from now. The same as `Machine.connect(machineId)`. A `reusable` snapshot
   * gives `ConflictError` (`invalid_state`): start new machines from it with
   * `Machine.create({ snapshotId })`.
   *
   * @example
   * ```ts
   * const { snapshotId } = await machine.pause();
   * // later, perhaps in another process:
   * const resumed = await Machine.resume(snapshotId!, { timeout: 600 });
   * console.log(resumed.id === machine.id); // true
   * ```
   */
  static async resume(snapshotId: string, opts: MachineConnectOptions = {}): Promise<Machine> {
    const connection = connectionOf(opts);
    const transport = new Transport(connection);
    const wire = await transport.request<WireMachineInfo>({
      method: 'POST',
      path: `/v1/snapshots/${encodeURIComponent(snapshotId)}/resume`,
      body: opts.timeout === undefined ? {} : { timeout: opts.timeout },
    });
    return new Machine(wire.id, connection);
  }

  /**
   * Pauses a machine by id; see {@link Machine.pause}.
   *
   * @example
   * ```ts
   * const info = await Machine.pauseById('mch_aaaaaaaaaaaaaaaaaaaa');
   * console.log(info.status, info.snapshotId); // "paused" "snap_..."
   * ```
   */
  static async pauseById(id: string, opts: ConnectionOptions = {}): Promise<MachineInfo> {
    return new Machine(id, connectionOf(opts)).pause();
  }

  /**
   * Hibernates a machine by id; see {@link Machine.hibernate}.
   *
   * @example
   * ```ts
   * const info = await Machine.hibernateById('mch_aaaaaaaaaaaaaaaaaaaa');
   * console.log(info.status); // "hibernated"
   * ```
   */
  static async hibernateById(id: string, opts: ConnectionOptions = {}): Promise<MachineInfo> {
    return new Machine(id, connectionOf(opts)).hibernate();
  }

  /**
   * Streams a machine's lifecycle events by id; see {@link Machine.streamEvents}.
   *
   * @example
   * ```ts
   * for await (const e of Machine.streamEventsById('mch_aaaaaaaaaaaaaaaaaaaa', { afterEventId: 41 })) {
   *   console.log(e.id, e.type, e.status);
   * }
   * ```
   */
  static streamEventsById(
    id: string,
    opts: StreamEventsOptions & ConnectionOptions = {},
  ): AsyncGenerator<LifecycleEvent, void, undefined> {
    const { afterEventId, liveOnly, signal, ...connection } = opts;
    return new Machine(id, connectionOf(connection)).streamEvents({
      ...(afterEventId === undefined ? {} : { afterEventId }),
      ...(liveOnly === undefined ? {} : { liveOnly }),
      ...(signal === undefined ? {} : { signal }),
    });
  }

  /**
   * Lists machines, newest first, one page at a time. Returns a {@link MachinePaginator}
   * holding the first page; `for await` over it walks every page. With `fields`, the items are
   * plain rows holding only those fields (still paginated the same way).
   *
   * @example
   * ```ts
   * const page = await Machine.list({ query: { state: ['running', 'paused'], metadata: { project: 'docs' } }, limit: 20 });
   * for (const info of page.items) console.log(info.id, info.status, info.template);
   *
   * for await (const row of await Machine.list({ fields: ['id', 'status'] })) {
   *   console.log(row.id, row.status);
   * }
   * ```
   */
  static list(opts?: MachineListOptions & { fields?: undefined }): Promise<MachinePaginator<MachineInfo>>;
  static list<F extends MachineInfoKey>(
    opts: MachineListOptions & { fields: readonly F[] },
  ): Promise<MachinePaginator<Pick<MachineInfo, F>>>;
  static async list(opts: MachineListOptions = {}): Promise<MachinePaginator<Partial<MachineInfo>>> {
    const transport = new Transport(connectionOf(opts));
    const fetchPage = async (nextToken: string | undefined): Promise<Page<Partial<MachineInfo>>> => {
      const page = await transport.request<ListMachinesResponse<Partial<WireMachineInfo>>>({
        method: 'GET',
        path: '/v1/machines',
        query: listQuery(opts, nextToken),
      });
      return {
        items: page.items.map((item) => machineInfoFromWire<Partial<MachineInfo>>(item)),
        nextToken: page.next_token,
        hasNext: page.has_next,
      };
    };
    return new MachinePaginator(await fetchPage(opts.nextToken), fetchPage);
  }

  /**
   * A machine's CPU, memory, disk and network counters now, with recent samples. The machine must
   * be running or paused.
   *
   * @example
   * ```ts
   * const m = await Machine.getMetricsById('mch_aaaaaaaaaaaaaaaaaaaa');
   * console.log(m.cpuPercent, m.memoryBytes, m.networkTxBytes);
   * ```
   */
  static async getMetricsById(id: string, opts: ConnectionOptions = {}): Promise<MachineMetrics> {
    return new Machine(id, connectionOf(opts)).getMetrics(opts);
  }

  /**
   * Reads a machine's info without waking it: a paused machine stays paused. With `fields`,
   * returns a plain row holding only those fields.
   *
   * @example
   * ```ts
   * const info = await Machine.getInfoById('mch_aaaaaaaaaaaaaaaaaaaa');
   * const { status } = await Machine.getInfoById('mch_aaaaaaaaaaaaaaaaaaaa', { fields: ['status'] });
   * ```
   */
  static getInfoById(id: string, opts?: MachineGetInfoOptions & { fields?: undefined }): Promise<MachineInfo>;
  static getInfoById<F extends MachineInfoKey>(
    id: string,
    opts: MachineGetInfoOptions & { fields: readonly F[] },
  ): Promise<Pick<MachineInfo, F>>;
  static async getInfoById(id: string, opts: MachineGetInfoOptions = {}): Promise<Partial<MachineInfo>> {
    const transport = new Transport(connectionOf(opts));
    const wire = await transport.request<Partial<WireMachineInfo>>({
      method: 'GET',
      path: machinePath(id),
      query: fieldsQuery(opts.fields),
    });
    return machineInfoFromWire<Partial<MachineInfo>>(wire);
  }

  /**
   * Kills a machine by id and returns its final info (status `killed`). Killing a killed
   * machine is not an error.
   *
   * @example
   * ```ts
   * const info = await Machine.killById('mch_aaaaaaaaaaaaaaaaaaaa');
   * console.log(info.status); // "killed"
   * ```
   */
  static async killById(id: string, opts: ConnectionOptions = {}): Promise<MachineInfo> {
    const transport = new Transport(connectionOf(opts));
    const wire = await transport.request<WireMachineInfo>({ method: 'DELETE', path: machinePath(id) });
    return machineInfoFromWire(wire);
  }

  /**
   * Creates a machine, runs one command in it, kills the machine (also when the command could
   * not run) and returns the command's result. Without `args`, `command` is a shell command
   * line; with `args`, it is the program and `args` its argv. When `timeoutMs` is longer than
   * the machine's default lifetime and no `timeout` is given, the machine's timeout is raised to
   * outlast the command.
   *
   * @example
   * ```ts
   * const viaShell = await Machine.runOnce('echo hello | wc -c');
   * const viaArgv = await Machine.runOnce('python3', ['-c', 'print(6 * 7)'], { timeoutMs: 30_000 });
   * console.log(viaShell.stdout.trim(), viaArgv.stdout.trim()); // "6" "42"
   * ```
   */
  static runOnce(command: string, opts?: RunOnceOptions): Promise<CommandResult>;
  static runOnce(command: string, args: string[] | undefined, opts?: RunOnceOptions): Promise<CommandResult>;
  static async runOnce(
    command: string,
    argsOrOpts?: string[] | RunOnceOptions,
    maybeOpts?: RunOnceOptions,
  ): Promise<CommandResult> {
    const args = Array.isArray(argsOrOpts) ? argsOrOpts : undefined;
    const opts = (Array.isArray(argsOrOpts) ? maybeOpts : (argsOrOpts ?? maybeOpts)) ?? {};
    const { timeoutMs, stdin, ...createOpts } = opts;
    if (createOpts.timeout === undefined && timeoutMs !== undefined) {
      createOpts.timeout = Math.max(MACHINE_LIMITS.timeout.default, Math.ceil(timeoutMs / 1000) + 60);
    }
    const machine = await Machine.create(createOpts);
    let result: CommandResult;
    try {
      result = await machine.commands.run(command, {
        ...(args === undefined ? {} : { args }),
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        ...(stdin === undefined ? {} : { stdin }),
      });
    } catch (err) {
      // The command's error is the one worth reporting; the machine's timeout reaps it if this fails.
      await machine.kill().catch(() => undefined);
      throw err;
    }
    await machine.kill();
    return result;
  }

  /**
   * This machine's CPU, memory, disk and network counters now, with recent samples.
   *
   * @example
   * ```ts
   * const { cpuPercent, memoryBytes, memoryLimitBytes } = await machine.getMetrics();
   * ```
   */
  async getMetrics(opts: RequestOptions = {}): Promise<MachineMetrics> {
    const wire = await this.transport.request<WireMachineMetrics>({
      method: 'GET',
      path: `${machinePath(this.id)}/metrics`,
      ...(opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs }),
    });
    return machineMetricsFromWire(wire);
  }

  /**
   * Reads this machine's info, without waking it. With `fields`, returns a plain row.
   *
   * @example
   * ```ts
   * const info = await machine.getInfo();
   * console.log(info.status, info.expiresAt);
   * ```
   */
  getInfo(opts?: RequestOptions & { fields?: undefined }): Promise<MachineInfo>;
  getInfo<F extends MachineInfoKey>(
    opts: RequestOptions & { fields: readonly F[] },
  ): Promise<Pick<MachineInfo, F>>;
  async getInfo(
    opts: RequestOptions & { fields?: readonly MachineInfoKey[] } = {},
  ): Promise<Partial<MachineInfo>> {
    const wire = await this.transport.request<Partial<WireMachineInfo>>({
      method: 'GET',
      path: machinePath(this.id),
      query: fieldsQuery(opts.fields),
      ...(opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs }),
    });
    return machineInfoFromWire<Partial<MachineInfo>>(wire);
  }

  /**
   * Whether the machine is running now: `false` when it is paused, killed, in a transition, or
   * no longer known to the server.
   *
   * @example
   * ```ts
   * if (!(await machine.isRunning())) await Machine.connect(machine.id);
   * ```
   */
  async isRunning(opts: RequestOptions = {}): Promise<boolean> {
    try {
      const { status } = await this.getInfo({ ...opts, fields: ['status'] });
      return status === 'running';
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  /**
   * Kills the machine and returns its final info (status `killed`). Idempotent.
   *
   * @example
   * ```ts
   * const machine = await Machine.create();
   * await machine.kill();
   * ```
   */
  async kill(opts: RequestOptions = {}): Promise<MachineInfo> {
    const wire = await this.transport.request<WireMachineInfo>({
      method: 'DELETE',
      path: machinePath(this.id),
      ...(opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs }),
    });
    return machineInfoFromWire(wire);
  }

  /**
   * Pauses the machine: every process is frozen where it stands, memory and filesystem are kept,
   * no CPU is used. Returns the info, status `paused`, with `snapshotId` set to the machine's
   * `pause` snapshot. Resume with {@link Machine.connect} or {@link Machine.resume}. Pausing a
   * paused (or hibernated) machine returns it unchanged. The server hibernates a machine that
   * stays paused longer than its spill time (10 minutes by default).
   *
   * @example
   * ```ts
   * const info = await machine.pause();
   * console.log(info.status, info.snapshotId); // "paused" "snap_..."
   * await Machine.connect(machine.id); // running again, same id, new executionId
   * ```
   */
  async pause(opts: RequestOptions = {}): Promise<MachineInfo> {
    const wire = await this.transport.request<WireMachineInfo>({
      method: 'POST',
      path: `${machinePath(this.id)}/pause`,
      ...perCall(opts),
    });
    return machineInfoFromWire(wire);
  }

  /**
   * Hibernates the machine (running or paused): its memory and filesystem are written to disk as
   * its `pause` snapshot, and its processes, memory and network namespace are released. A
   * hibernated machine survives a server restart. Returns the info, status `hibernated`, with
   * `snapshotId` set. Resume with {@link Machine.connect} or {@link Machine.resume}.
   *
   * @example
   * ```ts
   * const info = await machine.hibernate({ requestTimeoutMs: 180_000 });
   * console.log(info.status, info.snapshotId); // "hibernated" "snap_..."
   * ```
   */
  async hibernate(opts: RequestOptions = {}): Promise<MachineInfo> {
    const wire = await this.transport.request<WireMachineInfo>({
      method: 'POST',
      path: `${machinePath(this.id)}/hibernate`,
      ...perCall(opts),
    });
    return machineInfoFromWire(wire);
  }

  /**
   * Takes a `reusable` snapshot of the machine's memory and filesystem; the machine keeps
   * running (it is frozen briefly, for `pausedMs`). Start new machines from it with
   * `Machine.create({ snapshotId })`; it lives until {@link Snapshot.delete}, also after the
   * machine is killed.
   *
   * @example
   * ```ts
   * await machine.commands.run('pip install requests');
   * const snapshot = await machine.createSnapshot();
   * const copy = await Machine.create({ snapshotId: snapshot.id });
   * ```
   */
  async createSnapshot(opts: RequestOptions = {}): Promise<SnapshotInfo> {
    const wire = await this.transport.request<WireSnapshotInfo>({
      method: 'POST',
      path: `${machinePath(this.id)}/snapshots`,
      ...perCall(opts),
    });
    return snapshotInfoFromWire(wire);
  }

  /**
   * Branches the running machine into `count` new machines (default 1, at most 16) that start
   * with its memory and filesystem as they are now; the machine itself keeps running. Returns
   * one entry per child, in order: a handle and info, or the error that child failed with (the
   * others are not affected). The call itself throws only when nothing could be forked (e.g. the
   * machine is not running).
   *
   * @example
   * ```ts
   * const children = await machine.fork({ count: 2 });
   * for (const child of children) {
   *   if (child.error) console.error(child.error.code, child.error.message);
   *   else console.log((await child.machine.commands.run('hostname')).stdout);
   * }
   * ```
   */
  async fork(opts: MachineForkOptions = {}): Promise<ForkChild[]> {
    const wire = await this.transport.request<ForkResponse>({
      method: 'POST',
      path: `${machinePath(this.id)}/fork`,
      body: opts.count === undefined ? {} : { count: opts.count },
      ...perCall(opts),
    });
    return wire.children.map((child) => forkChildFromWire(child, this.#connection));
  }

  /**
   * Moves the machine's deadline to `timeout` seconds from now, and optionally changes what
   * happens then. Returns the updated info. `autoResume: true` with the action `kill` (given or
   * current) is refused with `InvalidArgumentError`.
   *
   * @example
   * ```ts
   * const info = await machine.setTimeout(600, { onTimeout: 'pause', autoResume: true });
   * console.log(info.expiresAt, info.onTimeout); // 10 minutes from now, "pause"
   * ```
   */
  async setTimeout(timeout: number, opts: MachineSetTimeoutOptions = {}): Promise<MachineInfo> {
    const body = requestBody(SetTimeoutBodySchema, { ...opts, timeout });
    const wire = await this.transport.request<WireMachineInfo>({
      method: 'POST',
      path: `${machinePath(this.id)}/timeout`,
      body,
      ...perCall(opts),
    });
    return machineInfoFromWire(wire);
  }

  /**
   * A URL that uploads one file into the machine without an API key (`curl -T file "$url"`).
   *
   * @example
   * ```ts
   * const url = await machine.uploadUrl('/workspace/input.csv', { expiresIn: 600 });
   * ```
   */
  uploadUrl(path: string, opts: SignedUrlOptions = {}): Promise<string> {
    return this.files.uploadUrl(path, opts);
  }

  /**
   * A URL that downloads one file from the machine without an API key (`curl -fsS "$url" -o out`).
   *
   * @example
   * ```ts
   * const url = await machine.downloadUrl('/workspace/report.pdf', { expiresIn: 3600 });
   * ```
   */
  downloadUrl(path: string, opts: SignedUrlOptions = {}): Promise<string> {
    return this.files.downloadUrl(path, opts);
  }

  /**
   * Kills the machine when an `await using` scope ends. A machine the server no longer knows
   * counts as killed; any other failure is thrown.
   *
   * @example
   * ```ts
   * {
   *   await using machine = await Machine.create();
   *   await machine.commands.run('make test');
   * } // killed here, also when the block throws
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.kill();
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
}
