import { COMMAND_LIMITS, TAG } from './commands-core.js';
import { invalidArgument } from './errors.js';
import { EnvsSchema } from './machine.js';
import { check, queryValues } from './schema/check.js';
import { DateTime, Nullable, Pattern, type Static, Strict, StringEnum, Type, named } from './schema/kit.js';
import { STREAM_CONTENT_TYPE, type StreamControl } from './stream.js';
import { ABSOLUTE_PATH, expectObject, rejectUnknownKeys } from './validate.js';

export * from './commands-core.js';

/** Signals a client may send. Names as in `kill -l`, with the SIG prefix. */
export const SIGNALS = [
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGKILL',
  'SIGUSR1',
  'SIGUSR2',
  'SIGTERM',
  'SIGCONT',
  'SIGSTOP',
  'SIGTSTP',
  'SIGWINCH',
  'SIGALRM',
  'SIGPIPE',
] as const;
export type SignalName = (typeof SIGNALS)[number];

const TAG_ERROR = 'must start with a letter and hold at most 64 of A-Z a-z 0-9 _ . -';
const CWD = Pattern(ABSOLUTE_PATH, 'must be an absolute path', {
  maxLength: 4096,
  description: "Working directory (default: the machine's cwd).",
});
const ARGS = Type.Array(Type.String({ maxLength: 128 * 1024 }), {
  maxItems: 4096,
  description: 'Arguments, passed as an argv (no shell parses them).',
});

/** The body of `POST /v1/machines/{id}/commands`. */
export const RunCommandBodySchema = named(
  'RunCommandRequest',
  Strict({
    cmd: Type.String({
      minLength: 1,
      maxLength: 128 * 1024,
      description: 'The program (with args), or a shell command line (with shell).',
    }),
    args: Type.Optional(ARGS),
    shell: Type.Optional(
      Type.Boolean({ default: false, description: 'Run cmd with bash -c (not with args).' }),
    ),
    cwd: Type.Optional(CWD),
    envs: Type.Optional(EnvsSchema),
    timeout_ms: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: COMMAND_LIMITS.timeout_ms.max,
        default: COMMAND_LIMITS.timeout_ms.default,
        description: 'Kill the command after this long; 0 = never (background and streams only).',
      }),
    ),
    stdin: Type.Optional(
      Type.String({
        maxLength: COMMAND_LIMITS.maxStdinBytes,
        description: 'Written to stdin, which is then closed.',
      }),
    ),
    background: Type.Optional(
      Type.Boolean({ default: false, description: 'Answer `{pid, ...}` at once; the process runs on.' }),
    ),
    tag: Type.Optional(
      Pattern(TAG, TAG_ERROR, { description: 'A name another client can find the process by.' }),
    ),
    stream: Type.Optional(
      Type.Boolean({
        default: false,
        description: `Answer with a frame stream (${STREAM_CONTENT_TYPE}) of output as it comes, then the exit.`,
      }),
    ),
    encoding: Type.Optional(
      StringEnum(['utf8', 'base64'] as const, {
        default: 'utf8',
        description: 'How stdout/stderr of a foreground result are encoded.',
      }),
    ),
  }),
);

/** A validated `POST /v1/machines/{id}/commands` body. */
export interface RunCommandRequest {
  cmd: string;
  args: string[];
  shell: boolean;
  cwd?: string;
  envs: Record<string, string>;
  /** 0 = no timeout (the default for background processes). */
  timeout_ms: number;
  stdin?: string;
  /** Return `{pid}` at once; the process runs on. */
  background: boolean;
  /** Answer with a frame stream (see stream.ts) of output as it comes, then the exit. */
  stream: boolean;
  tag?: string;
  /** How `stdout`/`stderr` of a foreground result are encoded: text (UTF-8) or base64 (bytes). */
  encoding: 'utf8' | 'base64';
}

/** One process started through the API (a command or a terminal), as `list` shows it. */
export const ProcessInfoSchema = named(
  'ProcessInfo',
  Type.Object({
    pid: Type.Integer(),
    tag: Nullable(Type.String()),
    kind: StringEnum(['command', 'pty'] as const),
    cmd: Type.String(),
    args: Type.Array(Type.String()),
    cwd: Type.String(),
    running: Type.Boolean(),
    exit_code: Nullable(Type.Integer()),
    signal: Nullable(Type.String()),
    timed_out: Type.Boolean(),
    started_at: DateTime(),
    ended_at: Nullable(DateTime()),
    output_bytes: Type.Integer({
      description: 'Output bytes written so far (stdout and stderr together): where a re-attach resumes.',
    }),
    stdin_open: Type.Boolean(),
  }),
);
export type ProcessInfo = Static<typeof ProcessInfoSchema>;

export const ListProcessesResponseSchema = Type.Object({ processes: Type.Array(ProcessInfoSchema) });

/** `GET .../commands/{pid}/logs`: the retained output from `offset` on. */
export const ProcessLogsSchema = named(
  'ProcessLogs',
  Type.Object({
    process: ProcessInfoSchema,
    offset: Type.Integer({
      description: 'Where this answer starts (later than asked when older output was dropped).',
    }),
    next_offset: Type.Integer(),
    truncated: Type.Boolean({ description: 'Output before `offset` was dropped (retention is bounded).' }),
    dropped_bytes: Type.Integer(),
    encoding: StringEnum(['utf8', 'base64'] as const),
    stdout: Type.String(),
    stderr: Type.String(),
  }),
);
export type ProcessLogs = Static<typeof ProcessLogsSchema>;

export const RunCommandResultSchema = named(
  'CommandResult',
  Type.Object({
    pid: Type.Integer(),
    exit_code: Nullable(Type.Integer()),
    signal: Nullable(Type.String(), {
      description: 'Name of the signal that ended the process, if one did.',
    }),
    stdout: Type.String(),
    stderr: Type.String(),
    timed_out: Type.Boolean(),
    stdout_truncated: Type.Boolean(),
    stderr_truncated: Type.Boolean(),
    duration_ms: Type.Integer(),
  }),
);
export type RunCommandResult = Static<typeof RunCommandResultSchema>;

/** `POST .../stdin` (and a terminal's `input`): the bytes the process got. */
export const StdinResultSchema = Type.Object({ pid: Type.Integer(), bytes: Type.Integer() });

/** The longest program path the kernel resolves (PATH_MAX less its NUL). */
const MAX_PROGRAM_BYTES = 4095;
/** The longest single argument the kernel passes to a program (MAX_ARG_STRLEN less its NUL). */
const MAX_ARG_BYTES = 128 * 1024 - 1;
/**
 * The most a command line and its envs may take together: half the kernel's usual limit (ARG_MAX,
 * a quarter of the 8 MiB stack), the rest left to the environment the machine adds.
 */
const MAX_ARGV_BYTES = 1024 * 1024;

export function parseRunCommand(body: unknown): RunCommandRequest {
  const b = check(RunCommandBodySchema, body);
  const background = b.background ?? false;
  const stream = b.stream ?? false;
  if (background && stream)
    throw invalidArgument('stream', 'cannot be combined with background: true (attach to the pid instead)');
  const shell = b.shell ?? false;
  const args = b.args ?? [];
  if (shell && args.length > 0) throw invalidArgument('args', 'cannot be combined with shell: true');
  // What the kernel takes: without a shell cmd names the program (PATH_MAX, with its NUL); with
  // one it is a single argument of `bash -c` (MAX_ARG_STRLEN, with its NUL).
  const bytes = Buffer.byteLength(b.cmd);
  if (!shell && bytes > MAX_PROGRAM_BYTES)
    throw invalidArgument(
      'cmd',
      `a program name or path is at most ${MAX_PROGRAM_BYTES} bytes (got ${bytes}); for a command line use shell: true`,
    );
  if (shell && bytes > MAX_ARG_BYTES)
    throw invalidArgument('cmd', `a shell command line is at most ${MAX_ARG_BYTES} bytes (got ${bytes})`);
  let argv = bytes + 1;
  for (const [i, a] of args.entries()) {
    const n = Buffer.byteLength(a);
    if (n > MAX_ARG_BYTES)
      throw invalidArgument(`args[${i}]`, `an argument is at most ${MAX_ARG_BYTES} bytes (got ${n})`);
    argv += n + 1;
  }
  for (const [k, v] of Object.entries(b.envs ?? {})) argv += Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
  if (argv > MAX_ARGV_BYTES)
    throw invalidArgument(
      'args',
      `the command line and its envs take ${argv} bytes; at most ${MAX_ARGV_BYTES} (the kernel refuses more)`,
    );
  const req: RunCommandRequest = {
    cmd: b.cmd,
    args,
    shell,
    envs: b.envs ?? {},
    timeout_ms: b.timeout_ms ?? (background ? 0 : COMMAND_LIMITS.timeout_ms.default),
    background,
    stream,
    encoding: b.encoding ?? 'utf8',
  };
  if (req.timeout_ms === 0 && !background && !stream)
    throw invalidArgument(
      'timeout_ms',
      'must be at least 1 for a foreground command (0 = none is for background)',
    );
  if (b.tag !== undefined) req.tag = b.tag;
  if (b.cwd !== undefined) req.cwd = b.cwd;
  if (b.stdin !== undefined) req.stdin = b.stdin;
  return req;
}

/** `SIGTERM`, `TERM` or `term` → `SIGTERM`; anything else is refused. */
export function parseSignalName(raw: unknown, field = 'signal'): SignalName {
  if (typeof raw !== 'string') throw invalidArgument(field, 'must be a signal name such as SIGTERM');
  const up = raw.toUpperCase();
  const name = (up.startsWith('SIG') ? up : `SIG${up}`) as SignalName;
  if (!SIGNALS.includes(name)) throw invalidArgument(field, `must be one of ${SIGNALS.join(', ')}`);
  return name;
}

export const SignalBodySchema = named(
  'SignalRequest',
  Strict({
    signal: Type.Optional(
      Type.String({
        default: 'SIGTERM',
        description: `A signal name: ${SIGNALS.join(', ')} (SIG optional).`,
      }),
    ),
  }),
);

export function parseSignalBody(body: unknown): { signal: SignalName } {
  const b = check(SignalBodySchema, body === undefined ? {} : body);
  return { signal: b.signal === undefined ? 'SIGTERM' : parseSignalName(b.signal) };
}

export interface LogsQuery {
  offset: number;
  limit: number;
  encoding: 'utf8' | 'base64';
}

export const LogsQuerySchema = Type.Object({
  offset: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      default: 0,
      description: 'Output offset to start at.',
    }),
  ),
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: COMMAND_LIMITS.maxLogsBytes, default: COMMAND_LIMITS.maxLogsBytes }),
  ),
  encoding: Type.Optional(StringEnum(['utf8', 'base64'] as const, { default: 'utf8' })),
});

export function parseLogsQuery(q: URLSearchParams): LogsQuery {
  const b = check(LogsQuerySchema, queryValues(q, LogsQuerySchema));
  return {
    offset: b.offset ?? 0,
    limit: b.limit ?? COMMAND_LIMITS.maxLogsBytes,
    encoding: b.encoding ?? 'utf8',
  };
}

/** `?offset=` of a process WebSocket: where to resume (output bytes). */
export const OffsetQuerySchema = Type.Object({
  offset: Type.Optional(Type.Integer({ minimum: 0, description: 'Output offset to resume at (default 0).' })),
});

export function parseOffsetQuery(q: URLSearchParams): { offset: number | undefined } {
  return { offset: check(OffsetQuerySchema, queryValues(q, OffsetQuerySchema)).offset };
}

export const PTY_LIMITS = {
  cols: { min: 1, max: 1000, default: 80 },
  rows: { min: 1, max: 1000, default: 24 },
};

export interface PtyCreateRequest {
  cols: number;
  rows: number;
  cmd?: string;
  args: string[];
  cwd?: string;
  envs: Record<string, string>;
  tag?: string;
}

const COLS = Type.Integer({
  minimum: PTY_LIMITS.cols.min,
  maximum: PTY_LIMITS.cols.max,
  default: PTY_LIMITS.cols.default,
});
const ROWS = Type.Integer({
  minimum: PTY_LIMITS.rows.min,
  maximum: PTY_LIMITS.rows.max,
  default: PTY_LIMITS.rows.default,
});

export const PtyCreateBodySchema = named(
  'PtyCreateRequest',
  Strict({
    cols: Type.Optional(COLS),
    rows: Type.Optional(ROWS),
    cmd: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 4096,
        description: "Program to run (default: the machine's login shell).",
      }),
    ),
    args: Type.Optional(ARGS),
    cwd: Type.Optional(CWD),
    envs: Type.Optional(EnvsSchema),
    tag: Type.Optional(Pattern(TAG, TAG_ERROR)),
  }),
);

export function parsePtyCreate(body: unknown): PtyCreateRequest {
  const b = check(PtyCreateBodySchema, body === undefined ? {} : body);
  const req: PtyCreateRequest = {
    cols: b.cols ?? PTY_LIMITS.cols.default,
    rows: b.rows ?? PTY_LIMITS.rows.default,
    args: b.args ?? [],
    envs: b.envs ?? {},
  };
  if (b.cmd !== undefined) req.cmd = b.cmd;
  if (b.cwd !== undefined) req.cwd = b.cwd;
  if (b.tag !== undefined) req.tag = b.tag;
  return req;
}

export const ResizeBodySchema = named('ResizeRequest', Strict({ cols: COLS, rows: ROWS }));

export function parseResize(body: unknown): { cols: number; rows: number } {
  return check(ResizeBodySchema, body);
}

/** Checks a client's WebSocket control message (kind 0) before it is passed on. */
export function parseStreamControl(text: string, pty: boolean): StreamControl {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw invalidArgument('message', 'control messages are JSON');
  }
  const obj = expectObject(raw, 'message');
  if (obj.type === 'close_stdin') {
    rejectUnknownKeys(obj, ['type']);
    return { type: 'close_stdin' };
  }
  if (obj.type === 'signal') {
    rejectUnknownKeys(obj, ['type', 'signal']);
    return { type: 'signal', signal: parseSignalName(obj.signal) };
  }
  if (obj.type === 'resize' && pty) {
    const { cols, rows } = parseResize({ cols: obj.cols, rows: obj.rows });
    return { type: 'resize', cols, rows };
  }
  throw invalidArgument('type', `must be close_stdin, signal${pty ? ' or resize' : ''}`);
}
