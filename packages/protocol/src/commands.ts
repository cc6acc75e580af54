import { invalidArgument } from './errors.js';
import { optionalEnvs } from './machine.js';
import type { StreamControl } from './stream.js';
import {
  ABSOLUTE_PATH,
  expectObject,
  optionalBoolean,
  optionalEnum,
  optionalInteger,
  optionalString,
  optionalStringArray,
  rejectUnknownKeys,
} from './validate.js';

export const COMMAND_LIMITS = {
  timeout_ms: { min: 1, max: 24 * 3600 * 1000, default: 60_000 },
  /** Bytes of stdout (and separately stderr) a foreground run keeps; the rest is dropped and flagged. */
  maxOutputBytes: 16 * 1024 * 1024,
  maxStdinBytes: 16 * 1024 * 1024,
  /** Output bytes (stdout and stderr together) the agent keeps per process for logs and re-attach. */
  retainedOutputBytes: 4 * 1024 * 1024,
  /** Finished processes the agent still lists (oldest forgotten first); running ones are all kept. */
  finishedKept: 256,
  /** Output bytes all finished processes together keep; the oldest lose theirs first. */
  finishedOutputBudget: 32 * 1024 * 1024,
  /** Output bytes all running processes together keep (each at most retainedOutputBytes, at least the minimum). */
  runningOutputBudget: 64 * 1024 * 1024,
  minRetainedOutputBytes: 256 * 1024,
  maxLogsBytes: 4 * 1024 * 1024,
} as const;

/** A tag names a background process so another client can find it: letters first, then [A-Za-z0-9_.-]. */
export const TAG = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

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
export interface ProcessInfo {
  pid: number;
  tag: string | null;
  kind: 'command' | 'pty';
  cmd: string;
  args: string[];
  cwd: string;
  running: boolean;
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  started_at: string;
  ended_at: string | null;
  /** Output bytes written so far (stdout and stderr together): the offset a re-attach resumes at. */
  output_bytes: number;
  stdin_open: boolean;
}

/** `GET .../commands/{pid}/logs`: the retained output from `offset` on. */
export interface ProcessLogs {
  process: ProcessInfo;
  /** Where this answer starts; larger than the requested offset when older output was dropped. */
  offset: number;
  next_offset: number;
  /** Output before `offset` was dropped (retention is bounded): `dropped_bytes` of it. */
  truncated: boolean;
  dropped_bytes: number;
  encoding: 'utf8' | 'base64';
  stdout: string;
  stderr: string;
}

export interface RunCommandResult {
  pid: number;
  exit_code: number | null;
  /** Name of the signal that ended the process, if one did. */
  signal: string | null;
  stdout: string;
  stderr: string;
  timed_out: boolean;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  duration_ms: number;
}

const FIELDS = [
  'cmd',
  'args',
  'shell',
  'cwd',
  'envs',
  'timeout_ms',
  'stdin',
  'background',
  'tag',
  'stream',
  'encoding',
] as const;

export function parseRunCommand(body: unknown): RunCommandRequest {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, FIELDS);
  const background = optionalBoolean(obj, 'background') ?? false;
  const stream = optionalBoolean(obj, 'stream') ?? false;
  if (background && stream)
    throw invalidArgument('stream', 'cannot be combined with background: true (attach to the pid instead)');
  const tag = optionalString(obj, 'tag', {
    pattern: TAG,
    patternHelp: 'must start with a letter and hold at most 64 of A-Z a-z 0-9 _ . -',
  });
  const encoding = optionalEnum(obj, 'encoding', ['utf8', 'base64'] as const) ?? 'utf8';
  const cmd = optionalString(obj, 'cmd', { max: 128 * 1024 });
  if (cmd === undefined || cmd === '') throw invalidArgument('cmd', 'is required');
  const shell = optionalBoolean(obj, 'shell') ?? false;
  const args = optionalStringArray(obj, 'args', { maxItems: 4096, maxLength: 128 * 1024 }) ?? [];
  if (shell && args.length > 0) throw invalidArgument('args', 'cannot be combined with shell: true');
  const req: RunCommandRequest = {
    cmd,
    args,
    shell,
    envs: optionalEnvs(obj),
    timeout_ms:
      optionalInteger(obj, 'timeout_ms', 0, COMMAND_LIMITS.timeout_ms.max) ??
      (background ? 0 : COMMAND_LIMITS.timeout_ms.default),
    background,
    stream,
    encoding,
  };
  if (req.timeout_ms === 0 && !background && !stream)
    throw invalidArgument(
      'timeout_ms',
      'must be at least 1 for a foreground command (0 = none is for background)',
    );
  if (tag !== undefined) req.tag = tag;
  const cwd = optionalString(obj, 'cwd', {
    max: 4096,
    pattern: ABSOLUTE_PATH,
    patternHelp: 'must be an absolute path',
  });
  if (cwd !== undefined) req.cwd = cwd;
  const stdin = optionalString(obj, 'stdin', { max: COMMAND_LIMITS.maxStdinBytes });
  if (stdin !== undefined) req.stdin = stdin;
  return req;
}

/** A process named in a path: a pid (digits) or a tag. */
export type ProcessSelector = { pid: number } | { tag: string };

export function parseProcessSelector(raw: string): ProcessSelector {
  if (/^[0-9]{1,9}$/.test(raw)) {
    const pid = Number(raw);
    if (pid >= 1) return { pid };
  }
  if (TAG.test(raw)) return { tag: raw };
  throw invalidArgument('pid', `"${raw.slice(0, 80)}" is neither a pid nor a tag`);
}

export function selectorText(sel: ProcessSelector): string {
  return 'pid' in sel ? String(sel.pid) : sel.tag;
}

/** `SIGTERM`, `TERM` or `term` → `SIGTERM`; anything else is refused. */
export function parseSignalName(raw: unknown, field = 'signal'): SignalName {
  if (typeof raw !== 'string') throw invalidArgument(field, 'must be a signal name such as SIGTERM');
  const up = raw.toUpperCase();
  const name = (up.startsWith('SIG') ? up : `SIG${up}`) as SignalName;
  if (!SIGNALS.includes(name)) throw invalidArgument(field, `must be one of ${SIGNALS.join(', ')}`);
  return name;
}

export function parseSignalBody(body: unknown): { signal: SignalName } {
  const obj = body === undefined ? {} : expectObject(body, 'body');
  rejectUnknownKeys(obj, ['signal']);
  return { signal: obj.signal === undefined ? 'SIGTERM' : parseSignalName(obj.signal) };
}

export interface LogsQuery {
  offset: number;
  limit: number;
  encoding: 'utf8' | 'base64';
}

export function parseLogsQuery(q: URLSearchParams): LogsQuery {
  const obj = Object.fromEntries(q);
  rejectUnknownKeys(obj, ['offset', 'limit', 'encoding']);
  const int = (key: string, min: number, max: number, dflt: number): number => {
    const v = obj[key];
    if (v === undefined) return dflt;
    if (!/^[0-9]{1,16}$/.test(v)) throw invalidArgument(key, 'must be a non-negative integer');
    const n = Number(v);
    if (n < min || n > max) throw invalidArgument(key, `must be between ${min} and ${max}`);
    return n;
  };
  const encoding = obj.encoding ?? 'utf8';
  if (encoding !== 'utf8' && encoding !== 'base64')
    throw invalidArgument('encoding', 'must be utf8 or base64');
  return {
    offset: int('offset', 0, Number.MAX_SAFE_INTEGER, 0),
    limit: int('limit', 1, COMMAND_LIMITS.maxLogsBytes, COMMAND_LIMITS.maxLogsBytes),
    encoding,
  };
}

export function parseOffsetQuery(q: URLSearchParams): { offset: number | undefined } {
  const obj = Object.fromEntries(q);
  rejectUnknownKeys(obj, ['offset']);
  const v = obj.offset;
  if (v === undefined) return { offset: undefined };
  if (!/^[0-9]{1,16}$/.test(v)) throw invalidArgument('offset', 'must be a non-negative integer');
  return { offset: Number(v) };
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

export function parsePtyCreate(body: unknown): PtyCreateRequest {
  const obj = body === undefined ? {} : expectObject(body, 'body');
  rejectUnknownKeys(obj, ['cols', 'rows', 'cmd', 'args', 'cwd', 'envs', 'tag']);
  const req: PtyCreateRequest = {
    cols: optionalInteger(obj, 'cols', PTY_LIMITS.cols.min, PTY_LIMITS.cols.max) ?? PTY_LIMITS.cols.default,
    rows: optionalInteger(obj, 'rows', PTY_LIMITS.rows.min, PTY_LIMITS.rows.max) ?? PTY_LIMITS.rows.default,
    args: optionalStringArray(obj, 'args', { maxItems: 4096, maxLength: 128 * 1024 }) ?? [],
    envs: optionalEnvs(obj),
  };
  const cmd = optionalString(obj, 'cmd', { max: 4096 });
  if (cmd === '') throw invalidArgument('cmd', 'must not be empty');
  if (cmd !== undefined) req.cmd = cmd;
  const cwd = optionalString(obj, 'cwd', {
    max: 4096,
    pattern: ABSOLUTE_PATH,
    patternHelp: 'must be an absolute path',
  });
  if (cwd !== undefined) req.cwd = cwd;
  const tag = optionalString(obj, 'tag', {
    pattern: TAG,
    patternHelp: 'must start with a letter and hold at most 64 of A-Z a-z 0-9 _ . -',
  });
  if (tag !== undefined) req.tag = tag;
  return req;
}

export function parseResize(body: unknown): { cols: number; rows: number } {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, ['cols', 'rows']);
  const cols = optionalInteger(obj, 'cols', PTY_LIMITS.cols.min, PTY_LIMITS.cols.max);
  const rows = optionalInteger(obj, 'rows', PTY_LIMITS.rows.min, PTY_LIMITS.rows.max);
  if (cols === undefined) throw invalidArgument('cols', 'is required');
  if (rows === undefined) throw invalidArgument('rows', 'is required');
  return { cols, rows };
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
