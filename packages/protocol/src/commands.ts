import { invalidArgument } from './errors.js';
import { ENV_NAME } from './machine.js';
import {
  ABSOLUTE_PATH,
  expectObject,
  optionalBoolean,
  optionalInteger,
  optionalString,
  optionalStringArray,
  optionalStringMap,
  rejectUnknownKeys,
} from './validate.js';

export const COMMAND_LIMITS = {
  timeout_ms: { min: 1, max: 24 * 3600 * 1000, default: 60_000 },
  /** Bytes of stdout (and separately stderr) a foreground run keeps; the rest is dropped and flagged. */
  maxOutputBytes: 16 * 1024 * 1024,
  maxStdinBytes: 16 * 1024 * 1024,
} as const;

/** A validated `POST /v1/machines/{id}/commands` body. */
export interface RunCommandRequest {
  cmd: string;
  args: string[];
  shell: boolean;
  cwd?: string;
  envs: Record<string, string>;
  timeout_ms: number;
  stdin?: string;
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

const FIELDS = ['cmd', 'args', 'shell', 'cwd', 'envs', 'timeout_ms', 'stdin', 'background', 'tag'] as const;

export function parseRunCommand(body: unknown): RunCommandRequest {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, FIELDS);
  if (obj.background === true)
    throw invalidArgument('background', 'background commands are not available on this server yet');
  if (obj.tag !== undefined)
    throw invalidArgument('tag', 'tags name background commands, which are not available yet');
  optionalBoolean(obj, 'background');
  const cmd = optionalString(obj, 'cmd', { max: 128 * 1024 });
  if (cmd === undefined || cmd === '') throw invalidArgument('cmd', 'is required');
  const shell = optionalBoolean(obj, 'shell') ?? false;
  const args = optionalStringArray(obj, 'args', { maxItems: 4096, maxLength: 128 * 1024 }) ?? [];
  if (shell && args.length > 0) throw invalidArgument('args', 'cannot be combined with shell: true');
  const req: RunCommandRequest = {
    cmd,
    args,
    shell,
    envs:
      optionalStringMap(obj, 'envs', {
        maxEntries: 256,
        keyPattern: ENV_NAME,
        keyHelp: 'environment variable names are letters, digits and _ and do not start with a digit',
        maxValueLength: 32768,
      }) ?? {},
    timeout_ms:
      optionalInteger(obj, 'timeout_ms', COMMAND_LIMITS.timeout_ms.min, COMMAND_LIMITS.timeout_ms.max) ??
      COMMAND_LIMITS.timeout_ms.default,
  };
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
