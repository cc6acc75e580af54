import { invalidArgument } from './errors.js';
import { MACHINE_LIMITS } from './machine.js';
import { BASE_TEMPLATE, ENV_NAME, TEMPLATE_NAME, canonicalTemplateRef, parseTemplateRef } from './names.js';
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

/** The metadata key that marks a template's build machine (its value is the build's id). */
export const BUILD_METADATA = 'nullspace.template_build';
/** Debian package names (policy §5.6.1). */
export const DEBIAN_PACKAGE = /^[a-z0-9][a-z0-9+.-]+$/;

export const TEMPLATE_LIMITS = {
  packages: 200,
  files: 200,
  /** Bytes of all file contents of one spec together. */
  filesBytes: 8 * 1024 * 1024,
  run: 100,
  runLength: 16 * 1024,
  readyTimeoutMs: { min: 100, max: 600_000, default: 60_000 },
  stepTimeoutMs: 30 * 60_000,
} as const;

/** How a machine's start command is known to be up. One of `port`, `command`. */
export interface ReadyCheck {
  /** TCP port in the machine that accepts connections once ready; with `http_path`, answers HTTP < 500. */
  port?: number;
  http_path?: string;
  /** A shell command in the machine that exits 0 once ready. */
  command?: string;
  timeout_ms: number;
}

export interface TemplateFile {
  path: string;
  /** Base64 of the bytes. */
  content_base64: string;
  mode: number;
}

/** A validated template spec (what `POST /v1/templates` builds). */
export interface TemplateSpec {
  /** `name` without its tag. */
  name: string;
  /** Tags the build gets (the one in `name`, else `latest`, plus `tags`). */
  tags: string[];
  /** Template reference this one starts from (default `base`). */
  base: string;
  packages: string[];
  files: TemplateFile[];
  run: string[];
  env: Record<string, string>;
  workdir: string | null;
  start_cmd: string | null;
  ready_check: ReadyCheck | null;
  disk_mb: number;
  vcpus: number;
  memory_mb: number;
  /** Capture the machine once the start command is ready: machines start from that memory state. */
  snapshot: boolean;
}

export type TemplateStatus = 'building' | 'ready' | 'failed' | 'deleted';

export interface TemplateInfo {
  id: string;
  /** Every `name:tag` that points at this build. */
  names: string[];
  status: TemplateStatus;
  /** Content hash of the spec and its base: an unchanged spec is not built again. */
  key: string;
  base: string;
  packages: string[];
  env: string[];
  workdir: string | null;
  start_cmd: string | null;
  ready_check: ReadyCheck | null;
  disk_mb: number;
  vcpus: number;
  memory_mb: number;
  snapshot_backed: boolean;
  snapshot_id: string | null;
  size_bytes: number;
  error: string | null;
  created_at: string;
  finished_at: string | null;
  /** Milliseconds the build took (null while building). */
  build_ms: number | null;
}

/** `POST /v1/templates` answers with the build to follow (`cached`: it was there already). */
export interface TemplateBuildStarted {
  build_id: string;
  cached: boolean;
  template: TemplateInfo;
}

/** One line of `GET /v1/templates/builds/{id}/logs` (NDJSON). */
export type TemplateBuildEvent =
  | { type: 'step'; step: number; total: number; name: string; at: string }
  | { type: 'log'; step: number; line: string; at: string }
  | { type: 'done'; template: TemplateInfo; at: string }
  | { type: 'error'; error: { code: string; message: string }; at: string };

const SPEC_FIELDS = [
  'name',
  'tags',
  'base',
  'packages',
  'files',
  'run',
  'env',
  'workdir',
  'start_cmd',
  'ready_check',
  'disk_mb',
  'vcpus',
  'memory_mb',
  'snapshot',
] as const;

const TAG = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function parseTemplateSpec(body: unknown): TemplateSpec {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, SPEC_FIELDS);
  const ref = optionalString(obj, 'name', {
    max: 128,
    pattern: TEMPLATE_NAME,
    patternHelp: 'must be a template name such as "team/app" or "team/app:stable"',
  });
  if (ref === undefined) throw invalidArgument('name', 'is required');
  const { name, tag } = parseTemplateRef(ref);
  if (name === BASE_TEMPLATE) throw invalidArgument('name', '"base" is the built-in template');
  const extraTags = optionalStringArray(obj, 'tags', { maxItems: 16, maxLength: 64 }) ?? [];
  extraTags.forEach((t, i) => {
    if (!TAG.test(t))
      throw invalidArgument(`tags[${i}]`, 'must be 1-64 of a-z 0-9 . _ - (starting with a letter or digit)');
  });
  const base = optionalString(obj, 'base', {
    max: 128,
    pattern: TEMPLATE_NAME,
    patternHelp: 'must be a template name such as "base" or "team/app:stable"',
  });
  const packages =
    optionalStringArray(obj, 'packages', { maxItems: TEMPLATE_LIMITS.packages, maxLength: 128 }) ?? [];
  packages.forEach((p, i) => {
    if (!DEBIAN_PACKAGE.test(p)) throw invalidArgument(`packages[${i}]`, 'must be a Debian package name');
  });
  const run =
    optionalStringArray(obj, 'run', {
      maxItems: TEMPLATE_LIMITS.run,
      maxLength: TEMPLATE_LIMITS.runLength,
    }) ?? [];
  run.forEach((r, i) => {
    if (r.trim() === '') throw invalidArgument(`run[${i}]`, 'must not be empty');
  });
  const env =
    optionalStringMap(obj, 'env', {
      maxEntries: 100,
      keyPattern: ENV_NAME,
      keyHelp: 'environment variable names are letters, digits and _ (not starting with a digit)',
      maxValueLength: 32 * 1024,
    }) ?? {};
  const workdir =
    optionalString(obj, 'workdir', {
      max: 4096,
      pattern: ABSOLUTE_PATH,
      patternHelp: 'must be an absolute path',
    }) ?? null;
  const startCmd = optionalString(obj, 'start_cmd', { max: TEMPLATE_LIMITS.runLength }) ?? null;
  if (startCmd !== null && startCmd.trim() === '') throw invalidArgument('start_cmd', 'must not be empty');
  const readyCheck = parseReadyCheck(obj.ready_check);
  if (readyCheck && startCmd === null)
    throw invalidArgument('ready_check', 'needs a start_cmd (what would become ready?)');
  const snapshot = optionalBoolean(obj, 'snapshot') ?? false;
  if (snapshot && startCmd === null)
    throw invalidArgument('snapshot', 'needs a start_cmd (the snapshot captures it running)');
  const tags = [...new Set([tag, ...extraTags])];
  return {
    name,
    tags,
    base: base === undefined ? BASE_TEMPLATE : canonicalTemplateRef(base),
    packages: [...new Set(packages)].sort(),
    files: parseFiles(obj.files),
    run,
    env,
    workdir,
    start_cmd: startCmd,
    ready_check: readyCheck,
    disk_mb:
      optionalInteger(obj, 'disk_mb', MACHINE_LIMITS.disk_mb.min, MACHINE_LIMITS.disk_mb.max) ??
      MACHINE_LIMITS.disk_mb.default,
    vcpus:
      optionalInteger(obj, 'vcpus', MACHINE_LIMITS.vcpus.min, MACHINE_LIMITS.vcpus.max) ??
      MACHINE_LIMITS.vcpus.default,
    memory_mb:
      optionalInteger(obj, 'memory_mb', MACHINE_LIMITS.memory_mb.min, MACHINE_LIMITS.memory_mb.max) ??
      MACHINE_LIMITS.memory_mb.default,
    snapshot,
  };
}

function parseReadyCheck(value: unknown): ReadyCheck | null {
  if (value === undefined || value === null) return null;
  const obj = expectObject(value, 'ready_check');
  const prefix = 'ready_check.';
  rejectUnknownKeys(obj, ['port', 'http_path', 'command', 'timeout_ms'], prefix);
  const port = optionalInteger(obj, 'port', 1, 65535, prefix);
  const httpPath = optionalString(obj, 'http_path', {
    max: 2048,
    pattern: /^\/[\x21-\x7e]*$/,
    patternHelp: 'must be a path starting with /',
    prefix,
  });
  const command = optionalString(obj, 'command', { max: TEMPLATE_LIMITS.runLength, prefix });
  if ((port === undefined) === (command === undefined))
    throw invalidArgument('ready_check', 'give exactly one of port or command');
  if (httpPath !== undefined && port === undefined)
    throw invalidArgument(`${prefix}http_path`, 'needs a port');
  const { min, max, default: def } = TEMPLATE_LIMITS.readyTimeoutMs;
  const check: ReadyCheck = { timeout_ms: optionalInteger(obj, 'timeout_ms', min, max, prefix) ?? def };
  if (port !== undefined) check.port = port;
  if (httpPath !== undefined) check.http_path = httpPath;
  if (command !== undefined) check.command = command;
  return check;
}

function parseFiles(value: unknown): TemplateFile[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidArgument('files', 'must be an array');
  if (value.length > TEMPLATE_LIMITS.files)
    throw invalidArgument('files', `must have at most ${TEMPLATE_LIMITS.files} items`);
  let total = 0;
  const seen = new Set<string>();
  return value.map((item, i) => {
    const prefix = `files[${i}].`;
    const f = expectObject(item, `files[${i}]`);
    rejectUnknownKeys(f, ['path', 'content', 'content_base64', 'mode'], prefix);
    const path = optionalString(f, 'path', {
      max: 4096,
      // The look-ahead runs from the start, so a first segment of . or .. is caught as well.
      pattern: /^(?!.*\/\.\.?(\/|$))\/[^\0]*[^/]$/,
      patternHelp: 'must be an absolute file path without . or .. segments',
      prefix,
    });
    if (path === undefined) throw invalidArgument(`${prefix}path`, 'is required');
    if (seen.has(path)) throw invalidArgument(`${prefix}path`, 'is given twice');
    seen.add(path);
    const text = optionalString(f, 'content', { prefix });
    const b64 = optionalString(f, 'content_base64', { prefix });
    if ((text === undefined) === (b64 === undefined))
      throw invalidArgument(`files[${i}]`, 'give exactly one of content or content_base64');
    if (b64 !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(b64))
      throw invalidArgument(`${prefix}content_base64`, 'must be base64');
    const bytes = text !== undefined ? Buffer.from(text, 'utf8') : Buffer.from(b64 ?? '', 'base64');
    total += bytes.length;
    if (total > TEMPLATE_LIMITS.filesBytes)
      throw invalidArgument('files', `contents must be at most ${TEMPLATE_LIMITS.filesBytes} bytes together`);
    const mode = optionalInteger(f, 'mode', 0, 0o7777, prefix) ?? 0o644;
    return { path, content_base64: bytes.toString('base64'), mode };
  });
}

// ---- warm pools ----------------------------------------------------------------------------

export const WARM_POOL_LIMITS = { size: { min: 1, max: 64 } } as const;

export interface WarmPoolSpec {
  template: string;
  vcpus: number;
  memory_mb: number;
  disk_mb: number | null;
  size: number;
}

export interface WarmPoolInfo {
  id: string;
  template: string;
  vcpus: number;
  memory_mb: number;
  disk_mb: number | null;
  size: number;
  /** Started and waiting for a checkout. */
  ready: number;
  /** Being started (refill). */
  starting: number;
  hits: number;
  misses: number;
  /** hits / (hits + misses); null before the first checkout. */
  hit_rate: number | null;
  /** Server-side time of recent hits, from the request to a machine answering. */
  checkout_ms: { p50: number | null; p95: number | null; samples: number };
  /** The last start failure (the pool retries with a back-off), if any. */
  last_error: string | null;
  created_at: string;
}

export function parseWarmPoolSpec(body: unknown): WarmPoolSpec {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, ['template', 'vcpus', 'memory_mb', 'disk_mb', 'size']);
  const template = optionalString(obj, 'template', {
    max: 128,
    pattern: TEMPLATE_NAME,
    patternHelp: 'must be a template name such as "base" or "team/app:stable"',
  });
  const size = optionalInteger(obj, 'size', WARM_POOL_LIMITS.size.min, WARM_POOL_LIMITS.size.max);
  if (size === undefined) throw invalidArgument('size', 'is required');
  return {
    template: canonicalTemplateRef(template ?? BASE_TEMPLATE),
    vcpus:
      optionalInteger(obj, 'vcpus', MACHINE_LIMITS.vcpus.min, MACHINE_LIMITS.vcpus.max) ??
      MACHINE_LIMITS.vcpus.default,
    memory_mb:
      optionalInteger(obj, 'memory_mb', MACHINE_LIMITS.memory_mb.min, MACHINE_LIMITS.memory_mb.max) ??
      MACHINE_LIMITS.memory_mb.default,
    disk_mb: optionalInteger(obj, 'disk_mb', MACHINE_LIMITS.disk_mb.min, MACHINE_LIMITS.disk_mb.max) ?? null,
    size,
  };
}
