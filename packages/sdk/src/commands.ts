import {
  FrameDecoder,
  ProcessInfoSchema,
  ProcessLogsSchema,
  RunCommandBodySchema,
  type RunCommandResult,
  RunCommandResultSchema,
  type ProcessInfo as WireProcessInfo,
  type ProcessLogs as WireProcessLogs,
} from '@nullspace/protocol';
import { UnavailableError } from './errors.js';
import { Attachment, type ExitEvent, type OutputCallbacks, StreamState } from './process-stream.js';
import type { RequestOptions, Transport } from './transport.js';
import { type FromWire, fromWire, requestBody, toWire } from './wire.js';

/**
 * Options of {@link Commands.run}.
 *
 * @example
 * With `onStdout`/`onStderr`/`onData` (from {@link OutputCallbacks}) the run streams: output
 * reaches them while the command runs, and the result still holds it (up to 16 MiB per stream).
 *
 * ```ts
 * const opts: CommandRunOptions = { args: ['-la'], cwd: '/tmp', envs: { LC_ALL: 'C' }, timeoutMs: 10_000 };
 * await machine.commands.run('ls', opts);
 * ```
 */
export interface CommandRunOptions extends RequestOptions, OutputCallbacks {
  /**
   * Arguments, passed as an argv: no shell parses them. When given, `cmd` is run directly
   * (looked up in `PATH`) unless `shell` is `true`, which the server refuses together with args.
   */
  args?: string[];
  /**
   * Run `cmd` through the machine's shell (`bash -c`, or `sh -c` where bash is missing). Default: `true` when `args` is omitted, `false` when given.
   */
  shell?: boolean;
  /** Working directory; default the machine's `cwd`. */
  cwd?: string;
  /** Extra environment variables for this command, on top of the machine's. */
  envs?: Record<string, string>;
  /** Kill the command after this many milliseconds (default 60 000). */
  timeoutMs?: number;
  /** Text written to the command's standard input, which is then closed. */
  stdin?: string;
  /**
   * `stdout`/`stderr` of the result as `'text'` (UTF-8, the default) or `'base64'` (exact bytes),
   * for runs without callbacks.
   */
  encoding?: 'text' | 'base64';
}

/**
 * Options of a background run: the call returns a {@link CommandHandle} as soon as the process
 * started.
 *
 * @example
 * ```ts
 * const server = await machine.commands.run('python3 -m http.server 8000', { background: true, tag: 'web' });
 * ```
 */
export interface BackgroundRunOptions extends Omit<CommandRunOptions, 'encoding'> {
  background: true;
  /** A name another client can attach by (`commands.connect('web')`); unique among running processes. */
  tag?: string;
  /** Kill the process after this many milliseconds (default: never). */
  timeoutMs?: number;
}

/**
 * The outcome of a foreground command. A non-zero exit code is a result, not an error: `run`
 * only throws when the command could not be run.
 *
 * @example
 * ```ts
 * const result = await machine.commands.run('ls /nope');
 * if (result.exitCode !== 0) console.error(result.stderr);
 * ```
 */
export interface CommandResult extends FromWire<typeof RunCommandResultSchema> {}

/**
 * Converts a wire command result to the SDK's camelCase.
 *
 * @example
 * ```ts
 * commandResultFromWire(json).exitCode;
 * ```
 */
export function commandResultFromWire(wire: RunCommandResult): CommandResult {
  return fromWire(RunCommandResultSchema, wire);
}

/**
 * Converts a command result back to the HTTP API's snake_case shape (what `--json` prints).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(commandResultToWire(await machine.commands.run('true'))));
 * ```
 */
export function commandResultToWire(result: CommandResult): RunCommandResult {
  return toWire(RunCommandResultSchema, result);
}

/**
 * One process started through the API, as `commands.list()` shows it.
 *
 * @example
 * ```ts
 * for (const p of await machine.commands.list()) console.log(p.pid, p.tag, p.running);
 * ```
 */
export interface ProcessInfo extends FromWire<typeof ProcessInfoSchema> {}

function processInfoFromWire(w: WireProcessInfo): ProcessInfo {
  return fromWire(ProcessInfoSchema, w);
}

/**
 * The buffered output of a process (`commands.logs`), from an offset on. Retention is bounded
 * (4 MiB per process): `truncated` says older output was dropped, `droppedBytes` how much.
 *
 * @example
 * ```ts
 * const logs = await machine.commands.logs('web');
 * if (logs.truncated) console.log(`[${logs.droppedBytes} bytes dropped]`);
 * process.stdout.write(logs.stdout);
 * ```
 */
export interface ProcessLogs extends Omit<FromWire<typeof ProcessLogsSchema>, 'encoding'> {}

/** A pid or a tag. */
export type ProcessRef = number | string;

/**
 * A process started in the background (or attached by pid or tag): stream its output, write its
 * stdin, signal it, wait for it. The process does not depend on this handle: `disconnect()` (or a
 * dropped connection) leaves it running, and any client can attach again.
 *
 * @example
 * ```ts
 * const cat = await machine.commands.run('cat', { background: true });
 * await cat.sendStdin('hello\n');
 * await cat.closeStdin();
 * const result = await cat.wait(); // result.stdout === 'hello\n'
 * ```
 */
export class CommandHandle {
  readonly pid: number;
  readonly tag: string | null;
  readonly #commands: Commands;
  readonly #state: StreamState;
  #attachment: Attachment | undefined;

  /** @internal */
  constructor(
    commands: Commands,
    pid: number,
    tag: string | null,
    state: StreamState,
    attachment?: Attachment,
  ) {
    this.#commands = commands;
    this.pid = pid;
    this.tag = tag;
    this.#state = state;
    this.#attachment = attachment;
  }

  /** Output received so far (up to 16 MiB per stream). */
  get stdout(): string {
    return this.#state.out.text();
  }

  get stderr(): string {
    return this.#state.err.text();
  }

  /** The exit code once the process ended and this handle saw it, else `undefined`. */
  get exitCode(): number | null | undefined {
    return this.#state.exit?.exit_code;
  }

  /** Starts streaming output to these callbacks (replaces earlier ones); attaches if needed. */
  stream(callbacks: OutputCallbacks = {}): this {
    this.#state.callbacks = callbacks;
    this.#attach();
    return this;
  }

  /** Waits for the process to end (attaching to follow it) and returns its result. */
  async wait(): Promise<CommandResult> {
    const attachment = this.#attach();
    await Promise.race([this.#state.waitExit(), attachment.finished().then(() => this.#state.waitExit())]);
    attachment.stop();
    const e = this.#state.exit as ExitEvent;
    return {
      pid: this.pid,
      exitCode: e.exit_code,
      signal: e.signal,
      stdout: this.#state.out.text(),
      stderr: this.#state.err.text(),
      timedOut: e.timed_out,
      stdoutTruncated: this.#state.out.truncated || this.#state.droppedBytes > 0,
      stderrTruncated: this.#state.err.truncated || this.#state.droppedBytes > 0,
      durationMs: e.duration_ms,
    };
  }

  /** Writes to the process's stdin (text as UTF-8). */
  async sendStdin(data: string | Uint8Array): Promise<void> {
    await this.#commands.sendStdin(this.pid, data);
  }

  async closeStdin(): Promise<void> {
    await this.#commands.closeStdin(this.pid);
  }

  /** Sends a signal (default SIGTERM) to the process and everything it started. */
  async signal(signal = 'SIGTERM'): Promise<void> {
    await this.#commands.signal(this.pid, signal);
  }

  /** SIGKILL to the process and everything it started. */
  async kill(): Promise<void> {
    await this.#commands.kill(this.pid);
  }

  /** Stops following the output; the process goes on. */
  disconnect(): void {
    this.#attachment?.stop();
    this.#attachment = undefined;
  }

  #attach(): Attachment {
    if (!this.#attachment || this.#attachment.stopped)
      this.#attachment = this.#commands.attachment(this.pid, this.#state);
    return this.#attachment;
  }
}

/**
 * Runs processes inside one machine: `machine.commands`.
 *
 * @example
 * ```ts
 * const machine = await Machine.create();
 * const { stdout } = await machine.commands.run('echo hello');
 * ```
 */
export class Commands {
  readonly #machineId: string;
  readonly #transport: Transport;

  /**
   * Made by `Machine`; use `machine.commands`.
   *
   * @internal
   * @example
   * ```ts
   * const commands = machine.commands;
   * ```
   */
  constructor(machineId: string, transport: Transport) {
    this.#machineId = machineId;
    this.#transport = transport;
  }

  get #base(): string {
    return `/v1/machines/${encodeURIComponent(this.#machineId)}/commands`;
  }

  /**
   * Runs a command. In the foreground (the default) it returns the exit code and output once the
   * command ends; with `onStdout`/`onStderr`/`onData` the output streams to them as it comes.
   * With `background: true` it returns a {@link CommandHandle} at once.
   * Without `args`, `cmd` is a shell command line (`bash -c`); with `args`, `cmd` is the
   * program and `args` its argv, and no shell is involved.
   *
   * @example
   * ```ts
   * const shell = await machine.commands.run('echo hello | tr a-z A-Z');
   * const exec = await machine.commands.run('ls', { args: ['-la', '/workspace'] });
   * const piped = await machine.commands.run('wc -c', { stdin: 'hello' });
   * await machine.commands.run('seq 3', { onStdout: (s) => process.stdout.write(s) });
   * const bg = await machine.commands.run('sleep 60', { background: true, tag: 'nap' });
   * console.log(shell.stdout, exec.exitCode, piped.stdout.trim(), bg.pid); // "HELLO\n" 0 "5" 42
   * ```
   */
  run(cmd: string, opts: BackgroundRunOptions): Promise<CommandHandle>;
  run(cmd: string, opts?: CommandRunOptions): Promise<CommandResult>;
  async run(
    cmd: string,
    opts: CommandRunOptions | BackgroundRunOptions = {},
  ): Promise<CommandResult | CommandHandle> {
    const background = 'background' in opts && opts.background === true;
    // `encoding` is the SDK's (text or base64 of what streamed), not the wire's: it stays behind.
    const { encoding: _, ...wireOpts } = opts as CommandRunOptions;
    const body = requestBody(RunCommandBodySchema, {
      ...wireOpts,
      cmd,
      shell: opts.shell ?? opts.args === undefined,
      // A run that is not in the background has no handle to write stdin with: it gets `stdin`, then EOF.
      stdin: background ? opts.stdin : (opts.stdin ?? ''),
      ...(background ? { background: true } : { stream: true }),
    });
    if (background) {
      const info = await this.#transport.request<WireProcessInfo>({
        method: 'POST',
        path: this.#base,
        body,
        timeoutMs: opts.requestTimeoutMs,
      });
      const state = new StreamState(callbacksOf(opts));
      const handle = new CommandHandle(this, info.pid, info.tag, state);
      if (opts.onStdout || opts.onStderr || opts.onData) handle.stream(callbacksOf(opts));
      return handle;
    }
    const { result, state } = await this.#runStreaming(body, opts);
    if ('encoding' in opts && opts.encoding === 'base64') {
      result.stdout = state.out.bytes().toString('base64');
      result.stderr = state.err.bytes().toString('base64');
    }
    return result;
  }

  /**
   * A run, streamed: one request whose answer is the output as it comes, then the exit (the
   * server's `stream: true`; a foreground run without callbacks is streamed too). If the stream is
   * cut before the exit (the machine is hibernated, snapshotted or forked, the server restarts,
   * the network drops), it goes on over the process's WebSocket from the offset reached, so the
   * command's outcome is never lost and no output is lost or repeated.
   */
  async #runStreaming(
    body: Record<string, unknown>,
    opts: CommandRunOptions,
  ): Promise<{ result: CommandResult; state: StreamState }> {
    const state = new StreamState(callbacksOf(opts));
    const res = await this.#transport.raw({
      method: 'POST',
      path: this.#base,
      json: body,
      timeoutMs: opts.requestTimeoutMs,
    });
    const decoder = new FrameDecoder();
    try {
      for await (const chunk of res.stream) {
        for (const f of decoder.push(chunk as Buffer)) state.take(f.kind, f.payload);
        if (state.exit) break;
      }
    } catch {
      // cut: re-attached below
    }
    if (!state.exit) {
      if (state.pid === undefined)
        throw new UnavailableError('unavailable', 'the command stream ended before the command started');
      const a = this.attachment(state.pid, state);
      await a.finished();
    }
    const result = await new CommandHandle(this, state.pid as number, state.tag, state).wait();
    return { result, state };
  }

  /**
   * Attaches to a running (or finished) process by pid or tag, from any client: the returned
   * handle streams its output from the start of what the server keeps (or from `offset`).
   *
   * @example
   * ```ts
   * const web = await machine.commands.connect('web', { onStdout: (s) => console.log(s) });
   * await web.kill();
   * ```
   */
  async connect(ref: ProcessRef, opts: OutputCallbacks & { offset?: number } = {}): Promise<CommandHandle> {
    const info = await this.get(ref);
    const state = new StreamState(callbacksOf(opts));
    state.offset = opts.offset ?? 0;
    const handle = new CommandHandle(this, info.pid, info.tag, state);
    handle.stream(callbacksOf(opts));
    return handle;
  }

  /** @internal */
  attachment(ref: ProcessRef, state: StreamState): Attachment {
    return new Attachment(this.#transport, `${this.#base}/${encodeURIComponent(String(ref))}/ws`, state);
  }

  /** Processes started through the API (commands and terminals), running and recently finished. */
  async list(opts: RequestOptions = {}): Promise<ProcessInfo[]> {
    const r = await this.#transport.request<{ processes: WireProcessInfo[] }>({
      method: 'GET',
      path: this.#base,
      timeoutMs: opts.requestTimeoutMs,
    });
    return r.processes.map(processInfoFromWire);
  }

  async get(ref: ProcessRef, opts: RequestOptions = {}): Promise<ProcessInfo> {
    const w = await this.#transport.request<WireProcessInfo>({
      method: 'GET',
      path: `${this.#base}/${encodeURIComponent(String(ref))}`,
      timeoutMs: opts.requestTimeoutMs,
    });
    return processInfoFromWire(w);
  }

  /** Buffered output from `offset` (default: all that is kept). */
  async logs(
    ref: ProcessRef,
    opts: RequestOptions & { offset?: number; limit?: number } = {},
  ): Promise<ProcessLogs> {
    const query = new URLSearchParams();
    if (opts.offset !== undefined) query.set('offset', String(opts.offset));
    if (opts.limit !== undefined) query.set('limit', String(opts.limit));
    const w = await this.#transport.request<WireProcessLogs>({
      method: 'GET',
      path: `${this.#base}/${encodeURIComponent(String(ref))}/logs`,
      query,
      timeoutMs: opts.requestTimeoutMs,
    });
    // The SDK reads logs as text: the encoding the server used says nothing more.
    const { encoding: _, ...logs } = fromWire(ProcessLogsSchema, w);
    return logs;
  }

  async sendStdin(ref: ProcessRef, data: string | Uint8Array, opts: RequestOptions = {}): Promise<void> {
    const res = await this.#transport.raw({
      method: 'POST',
      path: `${this.#base}/${encodeURIComponent(String(ref))}/stdin`,
      body: typeof data === 'string' ? data : Buffer.from(data),
      headers: { 'content-type': 'application/octet-stream' },
      timeoutMs: opts.requestTimeoutMs,
    });
    await res.arrayBuffer();
  }

  async closeStdin(ref: ProcessRef, opts: RequestOptions = {}): Promise<void> {
    await this.#transport.request({
      method: 'POST',
      path: `${this.#base}/${encodeURIComponent(String(ref))}/close_stdin`,
      timeoutMs: opts.requestTimeoutMs,
    });
  }

  /** Sends a signal (default SIGTERM) to the process and everything it started. */
  async signal(ref: ProcessRef, signal = 'SIGTERM', opts: RequestOptions = {}): Promise<void> {
    await this.#transport.request({
      method: 'POST',
      path: `${this.#base}/${encodeURIComponent(String(ref))}/signal`,
      body: { signal },
      timeoutMs: opts.requestTimeoutMs,
    });
  }

  /** SIGKILL to the process and everything it started. */
  async kill(ref: ProcessRef, opts: RequestOptions = {}): Promise<void> {
    await this.#transport.request({
      method: 'DELETE',
      path: `${this.#base}/${encodeURIComponent(String(ref))}`,
      timeoutMs: opts.requestTimeoutMs,
    });
  }
}

function callbacksOf(o: OutputCallbacks): OutputCallbacks {
  const c: OutputCallbacks = {};
  if (o.onStdout) c.onStdout = o.onStdout;
  if (o.onStderr) c.onStderr = o.onStderr;
  if (o.onData) c.onData = o.onData;
  return c;
}
