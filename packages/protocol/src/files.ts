import { invalidArgument } from './errors.js';
import {
  expectObject,
  optionalBoolean,
  optionalEnum,
  optionalInteger,
  optionalString,
  optionalStringArray,
  rejectUnknownKeys,
} from './validate.js';

/**
 * The `files` namespace of a machine: wire types and the validation done at the API edge. The
 * agent inside the machine serves every route; the server checks requests first, so a path the
 * agent sees is always absolute, at most 4096 characters, without NUL and without `..` segments.
 * A path is resolved inside the machine (its own mount namespace and root): a symlink pointing to
 * `/` leads to the machine's root, never the host's.
 */

export const FILE_LIMITS = {
  maxPathLength: 4096,
  /** `list` depth: 1 = the directory's own entries. */
  depth: { min: 1, max: 32, default: 1 },
  /** Entries one `list` returns at most; more sets `truncated`. */
  maxListEntries: 100_000,
  search: {
    max_results: { min: 1, max: 10_000, default: 1000 },
    maxPatternLength: 4096,
    /** Longest `text` of a match (the line, cut at this many characters). */
    maxLineText: 1000,
  },
  /** Files larger than this are skipped by search and replace. */
  maxScannedFileBytes: 10 * 1024 * 1024,
  /** A file with a NUL byte in its first this many bytes is binary: search and replace skip it. */
  binaryProbeBytes: 8192,
  globs: { maxItems: 64, maxLength: 1024 },
  replace: { maxPaths: 10_000, maxReplacementLength: 1024 * 1024 },
  watch: {
    /** Watches one agent keeps at most; one more is `resource_exhausted`. */
    maxPerMachine: 64,
    /** A watch nobody read for this long (and with no WebSocket attached) is dropped. */
    idleMs: 5 * 60 * 1000,
    /** Events one watch retains; a reader further behind gets `events_expired`. */
    retainedEvents: 10_000,
    /** Directories one watch follows at most (each one costs an inotify watch). */
    maxDirs: 8192,
    wait_ms: { min: 0, max: 30_000, default: 0 },
    limit: { min: 1, max: 1000, default: 1000 },
  },
  signedUrl: { expires_in: { min: 1, max: 7 * 24 * 3600, default: 3600 } },
} as const;

// ---- paths --------------------------------------------------------------------------------

/**
 * Checks a machine path and returns it normalised (`//` and `/./` collapsed, no trailing slash).
 * Absolute only; a `..` segment is refused outright rather than resolved, so no request can name
 * a place by climbing out of another.
 */
export function parseFilePath(value: unknown, field = 'path'): string {
  if (value === undefined || value === null || value === '') throw invalidArgument(field, 'is required');
  if (typeof value !== 'string') throw invalidArgument(field, 'must be a string');
  if (value.includes('\0')) throw invalidArgument(field, 'must not contain NUL characters');
  if (value.length > FILE_LIMITS.maxPathLength)
    throw invalidArgument(field, `must be at most ${FILE_LIMITS.maxPathLength} characters`);
  if (!value.startsWith('/')) throw invalidArgument(field, 'must be an absolute path');
  const segments = value.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..'))
    throw invalidArgument(field, 'must not contain ".." segments (name the place directly)');
  return `/${segments.join('/')}`;
}

// ---- entries --------------------------------------------------------------------------------

export type FileType = 'file' | 'dir' | 'symlink' | 'other';

/** One file, directory or link as `list`, `stat`, `write`, `mkdir` and `move` answer it. */
export interface FileEntry {
  /** Last path segment (`/` for the root). */
  name: string;
  /** Absolute path in the machine. */
  path: string;
  /** What the path itself is: a symlink is `symlink` (it is not followed). */
  type: FileType;
  /** Bytes (of the link itself for a symlink). */
  size: number;
  /** Permission bits as octal, e.g. `"644"`, `"755"`, `"1777"`. */
  mode: string;
  /** Last modification, ISO 8601. */
  mtime: string;
  /** Where a symlink points, as written in the link. */
  symlink_target?: string;
}

export interface ListFilesResponse {
  entries: FileEntry[];
  /** More than `FILE_LIMITS.maxListEntries` entries: the rest was left out. */
  truncated: boolean;
}

export interface ExistsResponse {
  exists: boolean;
  /** What the path is, when it exists (a symlink is reported as `symlink`, not followed). */
  type: FileType | null;
}

/** `write` (PUT) answers with the entry written. */
export type WriteFileResponse = FileEntry;

export interface RemoveFileResponse {
  path: string;
  removed: true;
}

export interface MakeDirRequest {
  path: string;
  /** Create missing parents, and accept an existing directory (`mkdir -p`). Default true. */
  parents: boolean;
}

export interface MakeDirResponse {
  entry: FileEntry;
  /** False when the directory was already there (with `parents`). */
  created: boolean;
}

export interface MoveRequest {
  from: string;
  to: string;
  /** Replace an existing `to` (a non-empty directory is never replaced). Default false: `conflict`. */
  overwrite: boolean;
}

/** Which files a search or a replace walks: everything under `path`, narrowed by globs. */
export interface FileSelection {
  path: string;
  /** Globs a file must match (any of them); none = every file. Relative to `path`; `*.ts` matches any depth. */
  include: string[];
  /** Globs that exclude a file or a whole directory (e.g. `node_modules`). */
  exclude: string[];
}

export interface SearchRequest extends FileSelection {
  pattern: string;
  /** `pattern` is a JavaScript regular expression (else a literal string). */
  regex: boolean;
  case_sensitive: boolean;
  max_results: number;
}

export interface SearchMatch {
  path: string;
  /** 1-based line number. */
  line: number;
  /** 1-based column (in UTF-16 code units of the line) where the match starts. */
  column: number;
  /** The whole line (cut at `FILE_LIMITS.search.maxLineText` characters). */
  text: string;
}

export interface SearchResponse {
  matches: SearchMatch[];
  /** `max_results` was reached: there may be more matches. */
  truncated: boolean;
  /** Text files read (binary files, files over 10 MiB and non-regular files are not counted). */
  files_scanned: number;
}

export interface ReplaceRequest {
  /** Exactly these files; or, without it, every file of the selection below. */
  paths?: string[];
  path?: string;
  include: string[];
  exclude: string[];
  pattern: string;
  /** With `regex`, `$1`, `$<name>` and `$&` refer to the match; else it is inserted as is. */
  replacement: string;
  regex: boolean;
  case_sensitive: boolean;
}

export interface ReplaceResponse {
  /** Files that changed, with how many replacements each. */
  files: { path: string; replacements: number }[];
  total_replacements: number;
  files_changed: number;
}

// ---- watch ------------------------------------------------------------------------------------

export interface WatchRequest {
  path: string;
  /** Follow subdirectories too (new ones as they appear). Default false. */
  recursive: boolean;
}

export interface WatchInfo {
  watch_id: string;
  path: string;
  recursive: boolean;
}

export type WatchEventType = 'create' | 'write' | 'remove' | 'rename';

/**
 * One change under a watched directory. Ids increase by one per watch, so `after=<id>` resumes
 * exactly. `rename` has `from` and `to` (and `path` = `to`).
 */
export interface WatchEvent {
  id: number;
  type: WatchEventType;
  path: string;
  /** What the path is (for `remove`, what it was). */
  is_dir: boolean;
  from?: string;
  to?: string;
  /** When the agent saw it, ISO 8601. */
  at: string;
}

export interface WatchEventsPage {
  events: WatchEvent[];
  /** Pass as `after` to continue: the id of the last event returned (or `after` when none). */
  last_event_id: number;
}

/** Watch ids: `fwt_` + 20 lower-case base32 characters, made by the agent. */
export const WATCH_ID = /^fwt_[a-z2-7]{20}$/;

export function parseWatchId(raw: string): string {
  if (!WATCH_ID.test(raw)) throw invalidArgument('watch_id', `"${raw.slice(0, 80)}" is not a watch id`);
  return raw;
}

// ---- signed URLs ----------------------------------------------------------------------------

export type SignedUrlOp = 'read' | 'write';

export interface SignedUrlRequest {
  path: string;
  op: SignedUrlOp;
  /** Seconds from now, 1 to 7 days. Default 3600. */
  expires_in: number;
}

export interface SignedUrlResponse {
  /** Usable without an API key: GET it (read), or PUT/POST the bytes to it (write). */
  url: string;
  op: SignedUrlOp;
  path: string;
  /** ISO 8601. */
  expires_at: string;
  method: 'GET' | 'PUT';
}

// ---- agent routes -----------------------------------------------------------------------------

/** Agent paths of the files namespace (the server adds the query). */
export const AGENT_FILE_ROUTES = {
  /** GET bytes, PUT bytes, DELETE: `?path=`. */
  file: '/v1/files',
  list: '/v1/files/list',
  stat: '/v1/files/stat',
  exists: '/v1/files/exists',
  mkdir: '/v1/files/mkdir',
  move: '/v1/files/move',
  search: '/v1/files/search',
  replace: '/v1/files/replace',
  watches: '/v1/files/watches',
  watch: (id: string) => `/v1/files/watches/${id}`,
  /** POST before a checkpoint: watches let go of their inotify watches (CRIU cannot dump them). */
  suspendWatches: '/v1/files/watches/suspend',
} as const;

// ---- validation -----------------------------------------------------------------------------

/**
 * Query parameters as a plain object for the validators: unknown or repeated keys are refused.
 */
export function fileQuery(params: URLSearchParams, allowed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of params) {
    if (!allowed.includes(k))
      throw invalidArgument(k, `unknown query parameter; known: ${allowed.join(', ')}`);
    if (k in out) throw invalidArgument(k, 'is given more than once');
    out[k] = v;
  }
  return out;
}

/** A non-negative integer query parameter. */
export function queryInteger(
  q: Record<string, string>,
  key: string,
  limits: { min: number; max: number; default: number },
): number {
  const raw = q[key];
  if (raw === undefined) return limits.default;
  if (!/^\d{1,15}$/.test(raw)) throw invalidArgument(key, `must be an integer, got "${raw.slice(0, 40)}"`);
  return optionalInteger({ [key]: Number(raw) }, key, limits.min, limits.max) ?? limits.default;
}

function globs(obj: Record<string, unknown>, key: string): string[] {
  return optionalStringArray(obj, key, FILE_LIMITS.globs) ?? [];
}

function pattern(obj: Record<string, unknown>, regex: boolean, caseSensitive: boolean): string {
  const value = optionalString(obj, 'pattern', { max: FILE_LIMITS.search.maxPatternLength });
  if (value === undefined || value === '') throw invalidArgument('pattern', 'is required');
  if (regex) {
    try {
      new RegExp(value, caseSensitive ? 'g' : 'gi');
    } catch (err) {
      throw invalidArgument('pattern', `is not a valid regular expression (${(err as Error).message})`);
    }
  }
  return value;
}

export function parseMakeDir(body: unknown): MakeDirRequest {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, ['path', 'parents']);
  return { path: parseFilePath(obj.path), parents: optionalBoolean(obj, 'parents') ?? true };
}

export function parseMove(body: unknown): MoveRequest {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, ['from', 'to', 'overwrite']);
  const from = parseFilePath(obj.from, 'from');
  const to = parseFilePath(obj.to, 'to');
  if (from === '/') throw invalidArgument('from', 'cannot be the root directory');
  if (to === from || to.startsWith(`${from}/`))
    throw invalidArgument('to', 'cannot be the source itself or inside it');
  return { from, to, overwrite: optionalBoolean(obj, 'overwrite') ?? false };
}

export function parseSearch(body: unknown): SearchRequest {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, ['path', 'pattern', 'regex', 'case_sensitive', 'include', 'exclude', 'max_results']);
  const regex = optionalBoolean(obj, 'regex') ?? false;
  const caseSensitive = optionalBoolean(obj, 'case_sensitive') ?? true;
  const limits = FILE_LIMITS.search.max_results;
  return {
    path: parseFilePath(obj.path),
    pattern: pattern(obj, regex, caseSensitive),
    regex,
    case_sensitive: caseSensitive,
    include: globs(obj, 'include'),
    exclude: globs(obj, 'exclude'),
    max_results: optionalInteger(obj, 'max_results', limits.min, limits.max) ?? limits.default,
  };
}

export function parseReplace(body: unknown): ReplaceRequest {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, [
    'paths',
    'path',
    'include',
    'exclude',
    'pattern',
    'replacement',
    'regex',
    'case_sensitive',
  ]);
  const regex = optionalBoolean(obj, 'regex') ?? false;
  const caseSensitive = optionalBoolean(obj, 'case_sensitive') ?? true;
  const replacement = optionalString(obj, 'replacement', { max: FILE_LIMITS.replace.maxReplacementLength });
  if (replacement === undefined) throw invalidArgument('replacement', 'is required (may be "")');
  const req: ReplaceRequest = {
    include: globs(obj, 'include'),
    exclude: globs(obj, 'exclude'),
    pattern: pattern(obj, regex, caseSensitive),
    replacement,
    regex,
    case_sensitive: caseSensitive,
  };
  if (obj.paths !== undefined && obj.paths !== null) {
    if (obj.path !== undefined && obj.path !== null)
      throw invalidArgument('paths', 'give either paths or path (with include/exclude), not both');
    if (req.include.length > 0 || req.exclude.length > 0)
      throw invalidArgument('paths', 'cannot be combined with include/exclude (they apply to path)');
    const paths = optionalStringArray(obj, 'paths', {
      maxItems: FILE_LIMITS.replace.maxPaths,
      maxLength: FILE_LIMITS.maxPathLength,
    });
    if (!paths || paths.length === 0) throw invalidArgument('paths', 'must name at least one file');
    req.paths = [...new Set(paths.map((p, i) => parseFilePath(p, `paths[${i}]`)))];
  } else {
    req.path = parseFilePath(obj.path);
  }
  return req;
}

export function parseWatch(body: unknown): WatchRequest {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, ['path', 'recursive']);
  return { path: parseFilePath(obj.path), recursive: optionalBoolean(obj, 'recursive') ?? false };
}

export function parseSignedUrl(body: unknown): SignedUrlRequest {
  const obj = expectObject(body, 'body');
  rejectUnknownKeys(obj, ['path', 'op', 'expires_in']);
  const op = optionalEnum(obj, 'op', ['read', 'write'] as const);
  if (op === undefined) throw invalidArgument('op', 'is required: read or write');
  const limits = FILE_LIMITS.signedUrl.expires_in;
  return {
    path: parseFilePath(obj.path),
    op,
    expires_in: optionalInteger(obj, 'expires_in', limits.min, limits.max) ?? limits.default,
  };
}
