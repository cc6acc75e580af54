import { createInterface } from 'node:readline';
import {
  CodeArtifactSchema,
  CodeContextSchema,
  type CodeEvent,
  type CodeLanguage,
  CodeResultSchema,
  CreateCodeContextBodySchema,
  type InstallEvent,
} from '@nullspace/protocol';
import { NullspaceError } from './errors.js';
import type { SignedUrlOptions } from './files-types.js';
import type { Files } from './files.js';
import type { RawResponse, RequestOptions, Transport } from './transport.js';
import { type FromWire, fromWire, requestBody } from './wire.js';

/** A code context: its own kernel (python), Node.js `vm` context (javascript) or shell (bash). */
export interface CodeContext extends FromWire<typeof CodeContextSchema> {}
/** One result of a run: every format the kernel displayed it in (`text`, `html`, `png` base64 …). */
export interface CodeResult extends Omit<FromWire<typeof CodeResultSchema>, 'type'> {}
/** An artifact: an image or PDF a run displayed, or a file written under the artifacts directory. */
export interface CodeArtifact extends FromWire<typeof CodeArtifactSchema> {}

/** The code's own error: data, never thrown. */
export interface ExecutionError {
  /** e.g. `ZeroDivisionError`, `TimeoutError`, `KernelDied`, `ExitStatus` (bash). */
  name: string;
  value: string;
  traceback: string[];
}

/** A context object or its id. */
export type ContextRef = CodeContext | string;

/** Options of {@link CodeInterpreter.run}. */
export interface RunCodeOptions extends RequestOptions {
  /** `python` (default), `javascript` or `bash`; with `context`, the context's language. */
  language?: CodeLanguage;
  /** The context to run in (default: the language's default context). */
  context?: ContextRef;
  /** Interrupt the run after this long (ms); it ends with a `TimeoutError`, the context is kept. Default 300 000; 0: none. */
  timeoutMs?: number;
  /** Each piece of standard output, as it comes. */
  onStdout?: (text: string) => void;
  /** Each piece of standard error, as it comes. */
  onStderr?: (text: string) => void;
  /** Each result (a value, a chart …), as it comes. */
  onResult?: (result: CodeResult) => void;
  /** The code's error, when it comes. */
  onError?: (error: ExecutionError) => void;
  /** The run's id (for {@link CodeInterpreter.attach}) as soon as it started. */
  onStart?: (start: { executionId: string; contextId: string }) => void;
  /** Stops reading the stream (the run goes on in the machine; re-attach by id). */
  signal?: AbortSignal;
}

/** Options of {@link CodeInterpreter.attach}: the callbacks of a run, and what was already received. */
export interface AttachCodeOptions extends Omit<RunCodeOptions, 'language' | 'context' | 'timeoutMs'> {
  /** Events already received (`execution.eventCount`): the stream resumes after them. */
  after?: number;
}

/**
 * One run's outcome: output, results and error as they came.
 *
 * @example
 * ```ts
 * const ex = await machine.codeInterpreter.run('x = 6 * 7\nx');
 * console.log(ex.text, ex.executionCount); // "42" 1
 * ```
 */
export class Execution {
  /** `cex_…`: re-attach with it. */
  id = '';
  contextId = '';
  language: CodeLanguage = 'python';
  /** Standard output and error, as lists of the chunks that came. */
  readonly logs: { stdout: string[]; stderr: string[] } = { stdout: [], stderr: [] };
  readonly results: CodeResult[] = [];
  /** The code's error (a TimeoutError after a timeout), or undefined. */
  error: ExecutionError | undefined;
  /** The kernel's execution count; null when the run did not complete (a kernel that died). */
  executionCount: number | null = null;
  durationMs: number | null = null;
  /** bash: the exit status of the code. */
  exitCode: number | undefined;
  /** Why the stream ended early (the machine was paused…); the run may go on: re-attach. */
  interrupted: string | undefined;
  /** Events received (start included): what to pass as `after` to re-attach. */
  eventCount = 0;
  /** The stream ended with the run's `end`. */
  done = false;

  /** The main result's text (the cell's value), if any. */
  get text(): string | undefined {
    return this.results.find((r) => r.isMainResult)?.text;
  }

  /** @internal */
  apply(ev: CodeEvent, o: AttachCodeOptions): void {
    this.eventCount += 1;
    switch (ev.type) {
      case 'start':
        this.id = ev.execution_id;
        this.contextId = ev.context_id;
        this.language = ev.language;
        o.onStart?.({ executionId: this.id, contextId: this.contextId });
        break;
      case 'stdout':
        this.logs.stdout.push(ev.text);
        o.onStdout?.(ev.text);
        break;
      case 'stderr':
        this.logs.stderr.push(ev.text);
        o.onStderr?.(ev.text);
        break;
      case 'result': {
        const { type: _type, ...rest } = fromWire(CodeResultSchema, ev);
        this.results.push(rest);
        o.onResult?.(rest);
        break;
      }
      case 'error':
        this.error = { name: ev.name, value: ev.value, traceback: ev.traceback };
        o.onError?.(this.error);
        break;
      case 'end':
        this.executionCount = ev.execution_count;
        this.durationMs = ev.duration_ms;
        if (ev.exit_code !== undefined) this.exitCode = ev.exit_code;
        this.done = true;
        break;
      case 'interrupted':
        this.eventCount -= 1; // not one of the run's events
        this.interrupted = ev.reason;
        break;
    }
  }
}

/** Options of {@link CodeInterpreter.install}. */
export interface InstallOptions extends RequestOptions {
  /** `python` (pip into the kernels' venv, default) or `javascript` (npm). */
  language?: 'python' | 'javascript';
  /** python: the text of a requirements file. */
  requirements?: string;
  /** python: reach no package index (local wheels only). */
  noIndex?: boolean;
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
}

/** What an install printed. */
export interface InstallResult {
  stdout: string;
  stderr: string;
  durationMs: number;
}

/**
 * pip or npm failed in {@link CodeInterpreter.install}: the message is the installer's own.
 *
 * @example
 * ```ts
 * try { await machine.codeInterpreter.install(['no-such-package']); }
 * catch (err) { if (err instanceof InstallError) console.error(err.message, err.log); }
 * ```
 */
export class InstallError extends NullspaceError {
  /** The installer's exit status. */
  readonly exitCode: number | null;
  /** Everything it printed. */
  readonly log: string;

  /**
   * Made by `install`; construct one yourself only to fake a failure.
   *
   * @example
   * ```ts
   * const err = new InstallError('No matching distribution', { exitCode: 1, log: '' });
   * ```
   */
  constructor(message: string, init: { exitCode: number | null; log: string }) {
    super('install_failed', message, { details: { exit_code: init.exitCode } });
    this.exitCode = init.exitCode;
    this.log = init.log;
  }
}

const idOf = (c: ContextRef): string => (typeof c === 'string' ? c : c.id);

async function* ndjson<T>(res: RawResponse): AsyncGenerator<T> {
  for await (const line of createInterface({ input: res.stream, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (line.trim() !== '') yield JSON.parse(line) as T;
  }
}

/**
 * Stateful notebook-style code execution in a machine of the `code-interpreter` template:
 * Python on Jupyter kernels, JavaScript in Node.js `vm` contexts, bash in persistent shells.
 * State lives in the machine's processes, so it survives pause, hibernate and fork.
 *
 * @example
 * ```ts
 * const machine = await Machine.create({ template: 'code-interpreter' });
 * await machine.codeInterpreter.run('import math; r = 2');
 * const ex = await machine.codeInterpreter.run('math.pi * r ** 2');
 * console.log(ex.text); // 12.566370614359172
 * ```
 */
export class CodeInterpreter {
  readonly #base: string;
  readonly #transport: Transport;
  readonly #files: Files;

  /**
   * Made by `Machine`; use `machine.codeInterpreter`.
   *
   * @example
   * ```ts
   * const ci = machine.codeInterpreter;
   * ```
   */
  constructor(machineId: string, transport: Transport, files: Files) {
    this.#base = `/v1/machines/${encodeURIComponent(machineId)}/code`;
    this.#transport = transport;
    this.#files = files;
  }

  /**
   * Runs code and returns its {@link Execution}; callbacks get output and results as they come.
   * The code's errors are in `execution.error`, never thrown.
   *
   * @example
   * ```ts
   * const ex = await machine.codeInterpreter.run('print("hi")\n1/0', { onStdout: (t) => process.stdout.write(t) });
   * console.log(ex.error?.name); // ZeroDivisionError
   * ```
   */
  async run(code: string, opts: RunCodeOptions = {}): Promise<Execution> {
    const body: Record<string, unknown> = { code };
    if (opts.language !== undefined) body.language = opts.language;
    if (opts.context !== undefined) body.context = idOf(opts.context);
    if (opts.timeoutMs !== undefined) body.timeout = opts.timeoutMs / 1000;
    const res = await this.#transport.raw({
      method: 'POST',
      path: `${this.#base}/run`,
      json: body,
      timeoutMs: opts.requestTimeoutMs ?? this.#transport.requestTimeoutMs,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return this.#follow(res, new Execution(), opts);
  }

  /**
   * Re-attaches to a run by id: the events after `after`, then the rest as they come.
   *
   * @example
   * ```ts
   * const ex = await machine.codeInterpreter.attach('cex_0123456789abcdef', { onStdout: console.log });
   * ```
   */
  async attach(executionId: string, opts: AttachCodeOptions = {}): Promise<Execution> {
    const res = await this.#transport.raw({
      method: 'GET',
      path: `${this.#base}/executions/${encodeURIComponent(executionId)}`,
      query: new URLSearchParams({ after: String(opts.after ?? 0) }),
      timeoutMs: opts.requestTimeoutMs ?? this.#transport.requestTimeoutMs,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const ex = new Execution();
    ex.id = executionId;
    ex.eventCount = opts.after ?? 0;
    return this.#follow(res, ex, opts);
  }

  async #follow(res: RawResponse, ex: Execution, opts: AttachCodeOptions): Promise<Execution> {
    try {
      for await (const ev of ndjson<CodeEvent>(res)) ex.apply(ev, opts);
    } catch (err) {
      if (!opts.signal?.aborted) throw err;
    }
    return ex;
  }

  /**
   * Creates a context: its own kernel, shell or JavaScript context, with its own state.
   *
   * @example
   * ```ts
   * const ctx = await machine.codeInterpreter.createContext({ language: 'python', cwd: '/workspace/data' });
   * await machine.codeInterpreter.run('x = 1', { context: ctx });
   * ```
   */
  async createContext(
    opts: { language?: CodeLanguage; cwd?: string; envs?: Record<string, string> } & RequestOptions = {},
  ): Promise<CodeContext> {
    const { requestTimeoutMs, ...fields } = opts;
    const wire = await this.#transport.request({
      method: 'POST',
      path: `${this.#base}/contexts`,
      body: requestBody(CreateCodeContextBodySchema, fields),
      timeoutMs: requestTimeoutMs ?? Math.max(this.#transport.requestTimeoutMs, 120_000),
    });
    return fromWire(CodeContextSchema, wire);
  }

  /**
   * The machine's contexts (the default ones too, once used).
   *
   * @example
   * ```ts
   * for (const c of await machine.codeInterpreter.listContexts()) console.log(c.id, c.language);
   * ```
   */
  async listContexts(opts: RequestOptions = {}): Promise<CodeContext[]> {
    const wire = await this.#transport.request<{ contexts: unknown[] }>({
      method: 'GET',
      path: `${this.#base}/contexts`,
      ...(opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs }),
    });
    return wire.contexts.map((c) => fromWire(CodeContextSchema, c));
  }

  /**
   * Deletes a context: its kernel or shell ends.
   *
   * @example
   * ```ts
   * await machine.codeInterpreter.deleteContext(ctx);
   * ```
   */
  async deleteContext(context: ContextRef, opts: RequestOptions = {}): Promise<CodeContext> {
    const wire = await this.#transport.request({
      method: 'DELETE',
      path: `${this.#base}/contexts/${encodeURIComponent(idOf(context))}`,
      ...(opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs }),
    });
    return fromWire(CodeContextSchema, wire);
  }

  /**
   * Restarts a context: a fresh kernel or shell, its variables gone.
   *
   * @example
   * ```ts
   * await machine.codeInterpreter.restartContext('default-python');
   * ```
   */
  async restartContext(context: ContextRef, opts: RequestOptions = {}): Promise<CodeContext> {
    const wire = await this.#transport.request({
      method: 'POST',
      path: `${this.#base}/contexts/${encodeURIComponent(idOf(context))}/restart`,
      timeoutMs: opts.requestTimeoutMs ?? Math.max(this.#transport.requestTimeoutMs, 120_000),
    });
    return fromWire(CodeContextSchema, wire);
  }

  /**
   * Installs packages for the contexts: pip into the kernels' venv (names, paths of local wheels
   * in the machine, or `requirements` text), or npm for javascript. Throws {@link InstallError}
   * with pip's (npm's) message when it fails.
   *
   * @example
   * ```ts
   * await machine.codeInterpreter.install(['/workspace/dist/mylib-1.0-py3-none-any.whl'], { noIndex: true });
   * ```
   */
  async install(packages: string[], opts: InstallOptions = {}): Promise<InstallResult> {
    const body: Record<string, unknown> = { packages, language: opts.language ?? 'python' };
    if (opts.requirements !== undefined) body.requirements = opts.requirements;
    if (opts.noIndex) body.no_index = true;
    const res = await this.#transport.raw({
      method: 'POST',
      path: `${this.#base}/install`,
      json: body,
      timeoutMs: opts.requestTimeoutMs ?? this.#transport.requestTimeoutMs,
    });
    let stdout = '';
    let stderr = '';
    let failure: { message: string; exitCode: number | null } | undefined;
    let durationMs = 0;
    let ended = false;
    for await (const ev of ndjson<InstallEvent>(res)) {
      if (ev.type === 'stdout') {
        stdout += ev.text;
        opts.onStdout?.(ev.text);
      } else if (ev.type === 'stderr') {
        stderr += ev.text;
        opts.onStderr?.(ev.text);
      } else if (ev.type === 'error') failure = { message: ev.value, exitCode: ev.exit_code ?? null };
      else if (ev.type === 'end') {
        durationMs = ev.duration_ms;
        ended = true;
      }
    }
    if (failure)
      throw new InstallError(failure.message, { exitCode: failure.exitCode, log: stdout + stderr });
    if (!ended)
      throw new InstallError('the install was cut off before it ended', {
        exitCode: null,
        log: stdout + stderr,
      });
    return { stdout, stderr, durationMs };
  }

  /**
   * Artifacts: images and PDFs runs displayed, and files written under the artifacts directory
   * (`/workspace/artifacts`, `$NULLSPACE_ARTIFACTS_DIR` in the contexts).
   *
   * @example
   * ```ts
   * const [chart] = await machine.codeInterpreter.listArtifacts();
   * ```
   */
  async listArtifacts(opts: RequestOptions = {}): Promise<CodeArtifact[]> {
    const wire = await this.#transport.request<{ artifacts: unknown[] }>({
      method: 'GET',
      path: `${this.#base}/artifacts`,
      ...(opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs }),
    });
    return wire.artifacts.map((a) => fromWire(CodeArtifactSchema, a));
  }

  /**
   * An artifact's bytes.
   *
   * @example
   * ```ts
   * const png = await machine.codeInterpreter.downloadArtifact(chart);
   * ```
   */
  async downloadArtifact(artifact: CodeArtifact | string, opts: RequestOptions = {}): Promise<Buffer> {
    const id = typeof artifact === 'string' ? artifact : artifact.id;
    const res = await this.#transport.raw({
      method: 'GET',
      path: `${this.#base}/artifacts/${encodeURIComponent(id)}`,
      timeoutMs: opts.requestTimeoutMs ?? this.#transport.requestTimeoutMs,
    });
    return res.buffer();
  }

  /**
   * A URL that downloads an artifact with no API key (a signed URL of its file).
   *
   * @example
   * ```ts
   * const url = await machine.codeInterpreter.artifactUrl(chart, { expiresIn: 600 });
   * ```
   */
  async artifactUrl(artifact: CodeArtifact, opts: SignedUrlOptions = {}): Promise<string> {
    return this.#files.downloadUrl(artifact.path, opts);
  }
}
