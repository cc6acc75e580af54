import { COMMAND_LIMITS, type RunCommandResult } from '@nullspace/protocol';
import type { RequestOptions, Transport } from './transport.js';

/**
 * Options of {@link Commands.run}.
 *
 * @example
 * ```ts
 * const opts: CommandRunOptions = { args: ['-la'], cwd: '/tmp', envs: { LC_ALL: 'C' }, timeoutMs: 10_000 };
 * await machine.commands.run('ls', opts);
 * ```
 */
export interface CommandRunOptions extends RequestOptions {
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
export interface CommandResult {
  pid: number;
  /** Exit code, or `null` when a signal ended the process. */
  exitCode: number | null;
  /** Name of the signal that ended the process (e.g. `SIGKILL`), if one did. */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** The command ran past `timeoutMs` and was killed. */
  timedOut: boolean;
  /** Output beyond the server's limit (16 MiB per stream) was dropped. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs: number;
}

/**
 * Converts a wire command result to the SDK's camelCase.
 *
 * @example
 * ```ts
 * commandResultFromWire(json).exitCode;
 * ```
 */
export function commandResultFromWire(wire: RunCommandResult): CommandResult {
  return {
    pid: wire.pid,
    exitCode: wire.exit_code,
    signal: wire.signal,
    stdout: wire.stdout,
    stderr: wire.stderr,
    timedOut: wire.timed_out,
    stdoutTruncated: wire.stdout_truncated,
    stderrTruncated: wire.stderr_truncated,
    durationMs: wire.duration_ms,
  };
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
  return {
    pid: result.pid,
    exit_code: result.exitCode,
    signal: result.signal,
    stdout: result.stdout,
    stderr: result.stderr,
    timed_out: result.timedOut,
    stdout_truncated: result.stdoutTruncated,
    stderr_truncated: result.stderrTruncated,
    duration_ms: result.durationMs,
  };
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

  /**
   * Runs a command in the foreground and returns its exit code and output once it ends.
   * Without `args`, `cmd` is a shell command line (`bash -c`); with `args`, `cmd` is the
   * program and `args` its argv, and no shell is involved.
   *
   * @example
   * ```ts
   * const shell = await machine.commands.run('echo hello | tr a-z A-Z');
   * const exec = await machine.commands.run('ls', { args: ['-la', '/workspace'] });
   * const piped = await machine.commands.run('wc -c', { stdin: 'hello' });
   * console.log(shell.stdout, exec.exitCode, piped.stdout.trim()); // "HELLO\n" 0 "5"
   * ```
   */
  async run(cmd: string, opts: CommandRunOptions = {}): Promise<CommandResult> {
    const body = {
      cmd,
      args: opts.args,
      shell: opts.shell ?? opts.args === undefined,
      cwd: opts.cwd,
      envs: opts.envs,
      timeout_ms: opts.timeoutMs,
      stdin: opts.stdin,
    };
    // The HTTP request must outlive the command it waits for.
    const requestTimeout = opts.requestTimeoutMs ?? this.#transport.requestTimeoutMs;
    const commandTimeout = opts.timeoutMs ?? COMMAND_LIMITS.timeout_ms.default;
    const wire = await this.#transport.request<RunCommandResult>({
      method: 'POST',
      path: `/v1/machines/${encodeURIComponent(this.#machineId)}/commands`,
      body,
      timeoutMs: requestTimeout === 0 ? 0 : requestTimeout + commandTimeout,
    });
    return commandResultFromWire(wire);
  }
}
