import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { constants } from 'node:os';
import {
  type AgentPtyRequest,
  type AgentRunRequest,
  COMMAND_LIMITS,
  CappedBytes,
  CodedError,
  FRAME,
  type ProcessInfo,
  type ProcessLogs,
  type ProcessSelector,
  type RunCommandResult,
  type StreamEvent,
} from '@nullspace/protocol/core';
import { type OutChunk, type OutKind, OutputLog } from './output-log.js';
import { type Terminal, openTerminal } from './pty.js';

/**
 * How long to keep reading output after the process exited: a command that leaves a background
 * child holding stdout (`server &`) must not hang the call until that child exits.
 */
const DRAIN_AFTER_EXIT_MS = 100;

/**
 * OOM score given to commands. The host cannot lower the agent's score (no CAP_SYS_RESOURCE), so
 * commands get a higher one instead: an allocation past memory_mb kills the command, not the agent,
 * and the machine stays reachable. Raising a score needs no privilege.
 */
const COMMAND_OOM_SCORE_ADJ = '500';

/** A reader of a process's output: an HTTP stream or a WebSocket. */
export interface Subscriber {
  output(chunk: OutChunk): void;
  event(ev: StreamEvent): void;
  /** True while the reader has more unsent output than it wants buffered. */
  congested(): boolean;
  end(): void;
}

interface Exit {
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  ended_at: Date;
}

const SIGNAL_NAMES = new Map<number, string>(
  Object.entries(constants.signals).map(([name, num]) => [num as number, name]),
);

/** One process started through the API: a command (pipes) or a terminal (pty). */
export class Proc {
  readonly output = new OutputLog(COMMAND_LIMITS.retainedOutputBytes);
  readonly subscribers = new Set<Subscriber>();
  readonly startedAt = new Date();
  exit: Exit | undefined;
  stdinOpen = true;
  private readonly exitWaiters: ((e: Exit) => void)[] = [];
  private paused = false;
  timer: NodeJS.Timeout | undefined;
  timedOut = false;

  constructor(
    readonly pid: number,
    readonly kind: 'command' | 'pty',
    readonly tag: string | null,
    readonly cmd: string,
    readonly args: string[],
    readonly cwd: string,
    private readonly io: {
      write(data: Buffer): boolean;
      endInput(): void;
      pauseOutput(): void;
      resumeOutput(): void;
      onInputDrain(cb: () => void): void;
      resize?(cols: number, rows: number): void;
    },
  ) {}

  info(): ProcessInfo {
    return {
      pid: this.pid,
      tag: this.tag,
      kind: this.kind,
      cmd: this.cmd,
      args: this.args,
      cwd: this.cwd,
      running: this.exit === undefined,
      exit_code: this.exit?.exit_code ?? null,
      signal: this.exit?.signal ?? null,
      timed_out: this.exit?.timed_out ?? false,
      started_at: this.startedAt.toISOString(),
      ended_at: this.exit?.ended_at.toISOString() ?? null,
      output_bytes: this.output.end,
      stdin_open: this.stdinOpen && this.exit === undefined,
    };
  }

  /** Output from the process: kept, then handed to every reader; a congested reader pauses it. */
  emit(kind: OutKind, data: Buffer): void {
    const chunk = this.output.append(kind, data);
    for (const s of this.subscribers) s.output(chunk);
    this.flowControl();
  }

  /** Pauses reading the process's output while any reader is congested (the process then blocks). */
  flowControl(): void {
    let congested = false;
    for (const s of this.subscribers) if (s.congested()) congested = true;
    if (congested && !this.paused) {
      this.paused = true;
      this.io.pauseOutput();
    } else if (!congested && this.paused) {
      this.paused = false;
      this.io.resumeOutput();
    }
  }

  finished(exit: Exit): void {
    if (this.exit) return;
    clearTimeout(this.timer);
    this.exit = exit;
    this.endStdinWaiters();
    const ev: StreamEvent = {
      type: 'exit',
      pid: this.pid,
      exit_code: exit.exit_code,
      signal: exit.signal,
      timed_out: exit.timed_out,
      duration_ms: exit.ended_at.getTime() - this.startedAt.getTime(),
      offset: this.output.end,
    };
    for (const s of this.subscribers) {
      s.event(ev);
      s.end();
    }
    this.subscribers.clear();
    if (this.paused) this.io.resumeOutput();
    for (const w of this.exitWaiters.splice(0)) w(exit);
  }

  waitExit(): Promise<Exit> {
    if (this.exit) return Promise.resolve(this.exit);
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }

  /**
   * Writes to stdin; resolves once the data is handed to the process's pipe (backpressure), and
   * rejects with `invalid_state` when the process exits or its stdin is closed first: a full pipe
   * of a process that ends drains never, and a writer waiting for it held its request forever.
   */
  async writeStdin(data: Buffer): Promise<void> {
    if (this.exit) throw new CodedError('invalid_state', `process ${this.pid} has exited`);
    if (!this.stdinOpen) throw new CodedError('invalid_state', `stdin of process ${this.pid} is closed`);
    if (this.io.write(data)) return;
    await new Promise<void>((resolve, reject) => {
      const gone = () => {
        this.stdinWaiters.delete(gone);
        reject(
          new CodedError(
            'invalid_state',
            `process ${this.pid} ended or closed its stdin before reading all input`,
          ),
        );
      };
      this.stdinWaiters.add(gone);
      this.io.onInputDrain(() => {
        if (!this.stdinWaiters.delete(gone)) return;
        resolve();
      });
    });
  }

  /** Writers waiting for a drain, rejected when the process ends or its stdin is closed. */
  private readonly stdinWaiters = new Set<() => void>();

  private endStdinWaiters(): void {
    for (const w of [...this.stdinWaiters]) w();
  }

  closeStdin(): void {
    if (this.exit) throw new CodedError('invalid_state', `process ${this.pid} has exited`);
    if (this.kind === 'pty')
      throw new CodedError('invalid_argument', 'a terminal has no stdin to close; send Ctrl-D (\\x04)', {
        field: 'pid',
      });
    if (!this.stdinOpen) return;
    this.stdinOpen = false;
    this.endStdinWaiters();
    this.io.endInput();
  }

  signal(sig: string): void {
    if (this.exit) throw new CodedError('invalid_state', `process ${this.pid} has exited`);
    try {
      // The whole process group: a shell's children get it too.
      process.kill(-this.pid, sig as NodeJS.Signals);
    } catch {
      try {
        process.kill(this.pid, sig as NodeJS.Signals);
      } catch (err) {
        throw new CodedError(
          'invalid_state',
          `process ${this.pid} cannot be signalled: ${(err as Error).message}`,
        );
      }
    }
  }

  resize(cols: number, rows: number): void {
    if (!this.io.resize)
      throw new CodedError('invalid_argument', `process ${this.pid} is not a terminal`, { field: 'pid' });
    if (this.exit) throw new CodedError('invalid_state', `terminal ${this.pid} has exited`);
    this.io.resize(cols, rows);
  }

  /** Retained output from `offset`, split by stream. */
  logs(offset: number, limit: number, encoding: 'utf8' | 'base64'): ProcessLogs {
    const { from, chunks } = this.output.since(offset, limit);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let next = from;
    for (const c of chunks) {
      (c.kind === FRAME.stdout ? out : err).push(c.data);
      next = c.offset + c.data.length;
    }
    return {
      process: this.info(),
      offset: from,
      next_offset: next,
      truncated: from > offset,
      dropped_bytes: from - offset,
      encoding,
      stdout: Buffer.concat(out).toString(encoding),
      stderr: Buffer.concat(err).toString(encoding),
    };
  }
}

/** Every process started through the API, running or recently finished. */
export class ProcessTable {
  private readonly procs = new Map<number, Proc>();

  constructor(private readonly defaultCwd: string) {}

  list(): ProcessInfo[] {
    return [...this.procs.values()].map((p) => p.info());
  }

  get(sel: ProcessSelector): Proc {
    if ('pid' in sel) {
      const p = this.procs.get(sel.pid);
      if (!p)
        throw new CodedError('not_found', `no process ${sel.pid} was started through the API`, {
          pid: sel.pid,
        });
      return p;
    }
    let best: Proc | undefined;
    for (const p of this.procs.values()) {
      if (p.tag !== sel.tag) continue;
      // A running process wins over finished ones; among equals the newest.
      if (!best || (best.exit && !p.exit) || (!best.exit === !p.exit && p.startedAt >= best.startedAt))
        best = p;
    }
    if (!best) throw new CodedError('not_found', `no process has the tag ${sel.tag}`, { tag: sel.tag });
    return best;
  }

  private checkTag(tag: string | undefined): void {
    if (tag === undefined) return;
    for (const p of this.procs.values())
      if (p.tag === tag && !p.exit)
        throw new CodedError('conflict', `a running process (pid ${p.pid}) already has the tag ${tag}`, {
          tag,
          pid: p.pid,
        });
  }

  private async checkCwd(cwd: string): Promise<void> {
    const dir = await stat(cwd).catch(() => undefined);
    if (!dir?.isDirectory())
      throw new CodedError('invalid_argument', `cwd: ${cwd} is not a directory in the machine`, {
        field: 'cwd',
      });
  }

  /**
   * Keeps the agent's memory for output bounded (it counts against the machine's memory_mb):
   * forgets the oldest finished processes beyond the limit, drops the kept output of the oldest
   * finished ones while all finished processes together keep more than their budget, and shares
   * the running processes' budget among them (4 MiB each up to 16 of them, less each beyond, at
   * least 256 KiB).
   */
  prune(): void {
    const running = [...this.procs.values()].filter((p) => !p.exit);
    const share = Math.floor(COMMAND_LIMITS.runningOutputBudget / Math.max(1, running.length));
    const cap = Math.max(
      COMMAND_LIMITS.minRetainedOutputBytes,
      Math.min(COMMAND_LIMITS.retainedOutputBytes, share),
    );
    for (const p of running) p.output.setCap(cap);
    const finished = [...this.procs.values()].filter((p) => p.exit);
    const forget = Math.max(0, finished.length - COMMAND_LIMITS.finishedKept);
    for (const p of finished.slice(0, forget)) this.procs.delete(p.pid);
    const kept = finished.slice(forget);
    let bytes = kept.reduce((n, p) => n + p.output.retainedBytes, 0);
    for (const p of kept) {
      if (bytes <= COMMAND_LIMITS.finishedOutputBudget) break;
      bytes -= p.output.retainedBytes;
      p.output.release();
    }
  }

  /**
   * Starts a command with pipes, in its own process group (a timeout or signal reaches everything
   * it started). Its OOM score is raised right after it starts.
   */
  async start(
    req: AgentRunRequest,
  ): Promise<
    | { proc: Proc; result?: Promise<RunCommandResult> }
    | { proc: undefined; result: Promise<RunCommandResult> }
  > {
    const cwd = req.cwd || this.defaultCwd;
    await this.checkCwd(cwd);
    this.checkTag(req.tag);
    const argv = req.shell ? [await shellPath(), '-c', req.cmd] : [req.cmd, ...req.args];
    const [file, ...args] = argv as [string, ...string[]];
    const child: ChildProcessWithoutNullStreams = spawn(file, args, {
      cwd,
      env: { ...process.env, ...req.envs },
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const spawnError = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', resolve);
    });
    if (spawnError || child.pid === undefined) {
      const code = spawnError?.code;
      if (code === 'ENOENT' || code === 'EACCES') {
        // A program that is missing or not executable is the command's failure, not the agent's:
        // a foreground run answers as a shell would (127 / 126), with the reason on stderr.
        if (!req.background)
          return {
            proc: undefined,
            result: Promise.resolve(missingProgram(file, code, req.stream ? 'utf8' : req.encoding)),
          };
        throw new CodedError(
          'invalid_argument',
          `cmd: ${file}: ${code === 'ENOENT' ? 'command not found' : 'permission denied'}`,
          {
            field: 'cmd',
          },
        );
      }
      // The machine's process limit (pids.max counts threads too) or its memory is used up: the
      // machine's own state, which the caller can act on (end processes), not the agent failing.
      if (code === 'EAGAIN' || code === 'ENOMEM')
        throw new CodedError(
          'resource_exhausted',
          `could not start command: the machine is out of ${code === 'EAGAIN' ? 'processes (its pids limit counts threads too)' : 'memory'}`,
          { reason: code === 'EAGAIN' ? 'pids_limit' : 'memory' },
        );
      throw new CodedError('internal', `could not start command: ${spawnError?.message ?? 'no pid'}`);
    }
    const pid = child.pid;
    try {
      writeFileSync(`/proc/${pid}/oom_score_adj`, COMMAND_OOM_SCORE_ADJ);
    } catch {
      // the command already exited
    }
    child.stdin.on('error', () => undefined); // the command may exit without reading its stdin
    const proc = new Proc(pid, 'command', req.tag ?? null, req.cmd, req.args, cwd, {
      write: (d) => child.stdin.write(d),
      endInput: () => child.stdin.end(),
      pauseOutput: () => {
        child.stdout.pause();
        child.stderr.pause();
      },
      resumeOutput: () => {
        child.stdout.resume();
        child.stderr.resume();
      },
      onInputDrain: (cb) => child.stdin.once('drain', cb),
    });
    this.procs.set(pid, proc);
    this.prune();
    void proc.waitExit().then(() => this.prune());

    const foreground = !req.background && !req.stream;
    const out = foreground ? new CappedBytes(COMMAND_LIMITS.maxOutputBytes) : undefined;
    const err = foreground ? new CappedBytes(COMMAND_LIMITS.maxOutputBytes) : undefined;
    child.stdout.on('data', (c: Buffer) => {
      out?.push(c);
      proc.emit(FRAME.stdout, c);
    });
    child.stderr.on('data', (c: Buffer) => {
      err?.push(c);
      proc.emit(FRAME.stderr, c);
    });
    if (req.stdin !== undefined || foreground) {
      child.stdin.end(req.stdin ?? '');
      proc.stdinOpen = false;
    }
    if (req.timeout_ms > 0) {
      proc.timer = setTimeout(() => {
        proc.timedOut = true;
        killGroup(pid);
      }, req.timeout_ms);
    }
    child.once('exit', (code, signal) => {
      const done = () =>
        proc.finished({
          exit_code: code,
          signal: signal ?? null,
          timed_out: proc.timedOut,
          ended_at: new Date(),
        });
      const drain = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        done();
      }, DRAIN_AFTER_EXIT_MS);
      child.once('close', () => {
        clearTimeout(drain);
        done();
      });
    });
    if (!foreground) return { proc };
    const result = proc.waitExit().then(
      (exit): RunCommandResult => ({
        pid,
        exit_code: exit.exit_code,
        signal: exit.signal,
        stdout: (out as CappedBytes).text(req.encoding),
        stderr: (err as CappedBytes).text(req.encoding),
        timed_out: exit.timed_out,
        stdout_truncated: (out as CappedBytes).truncated,
        stderr_truncated: (err as CappedBytes).truncated,
        duration_ms: exit.ended_at.getTime() - proc.startedAt.getTime(),
      }),
    );
    return { proc, result };
  }

  /** Opens a terminal running `cmd` (default: the machine's login shell). */
  async openPty(req: AgentPtyRequest): Promise<Proc> {
    const cwd = req.cwd || this.defaultCwd;
    await this.checkCwd(cwd);
    this.checkTag(req.tag);
    const file = req.cmd ?? (await shellPath());
    const args = req.cmd ? req.args : ['-l'];
    let term: Terminal;
    try {
      term = openTerminal(file, args, {
        cols: req.cols,
        rows: req.rows,
        cwd,
        env: { TERM: 'xterm-256color', ...stringEnv(process.env), ...req.envs },
      });
    } catch (err) {
      throw new CodedError('invalid_argument', `cmd: could not start ${file}: ${(err as Error).message}`, {
        field: 'cmd',
      });
    }
    const proc = new Proc(term.pid, 'pty', req.tag ?? null, file, args, cwd, {
      write: (d) => {
        term.write(d);
        return true;
      },
      endInput: () => undefined,
      pauseOutput: () => term.pause(),
      resumeOutput: () => term.resume(),
      onInputDrain: (cb) => cb(),
      resize: (cols, rows) => term.resize(cols, rows),
    });
    this.procs.set(term.pid, proc);
    this.prune();
    void proc.waitExit().then(() => this.prune());
    term.onData((d) => proc.emit(FRAME.stdout, d));
    term.onExit(({ exitCode, signal }) => {
      proc.finished({
        exit_code: signal ? null : exitCode,
        signal: signal ? (SIGNAL_NAMES.get(signal) ?? `SIG${signal}`) : null,
        timed_out: false,
        ended_at: new Date(),
      });
    });
    return proc;
  }
}

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

function missingProgram(file: string, code: string, encoding: 'utf8' | 'base64'): RunCommandResult {
  return {
    pid: -1,
    exit_code: code === 'ENOENT' ? 127 : 126,
    signal: null,
    stdout: '',
    stderr: Buffer.from(
      `nullspace: ${file}: ${code === 'ENOENT' ? 'command not found' : 'permission denied'}\n`,
    ).toString(encoding),
    timed_out: false,
    stdout_truncated: false,
    stderr_truncated: false,
    duration_ms: 0,
  };
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

let shell: string | undefined;
export async function shellPath(): Promise<string> {
  if (shell === undefined) shell = (await stat('/bin/bash').catch(() => undefined)) ? '/bin/bash' : '/bin/sh';
  return shell;
}
