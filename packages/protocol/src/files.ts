import { invalidArgument } from './errors.js';
import { FILE_LIMITS } from './files-core.js';
import { check } from './schema/check.js';
import { DateTime, Nullable, type Static, Strict, StringEnum, Type, named } from './schema/kit.js';
import { optionalInteger } from './validate.js';

/**
 * The `files` namespace of a machine: wire types and the validation done at the API edge. The
 * agent inside the machine serves every route; the server checks requests first, so a path the
 * agent sees is always absolute, at most 4096 characters, without NUL and without `..` segments.
 * A path is resolved inside the machine (its own mount namespace and root): a symlink pointing to
 * `/` leads to the machine's root, never the host's.
 */

export * from './files-core.js';

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

// ---- entries and answers -------------------------------------------------------------------

export const FILE_TYPES = ['file', 'dir', 'symlink', 'other'] as const;
export type FileType = (typeof FILE_TYPES)[number];

/** One file, directory or link as `list`, `stat`, `write`, `mkdir` and `move` answer it. */
export const FileEntrySchema = named(
  'FileEntry',
  Type.Object({
    name: Type.String({ description: 'Last path segment (`/` for the root).' }),
    path: Type.String({ description: 'Absolute path in the machine.' }),
    type: StringEnum(FILE_TYPES, {
      description: 'What the path itself is: a symlink is `symlink` (not followed).',
    }),
    size: Type.Integer({ description: 'Bytes (of the link itself for a symlink).' }),
    mode: Type.String({ description: 'Permission bits as octal, e.g. `"644"`.' }),
    mtime: DateTime({ description: 'Last modification.' }),
    symlink_target: Type.Optional(
      Type.String({ description: 'Where a symlink points, as written in the link.' }),
    ),
  }),
);
export type FileEntry = Static<typeof FileEntrySchema>;

export const ListFilesResponseSchema = named(
  'FileList',
  Type.Object({
    entries: Type.Array(FileEntrySchema),
    truncated: Type.Boolean({ description: 'More than 100 000 entries: the rest was left out.' }),
  }),
);
export type ListFilesResponse = Static<typeof ListFilesResponseSchema>;

export const ExistsResponseSchema = Type.Object({
  exists: Type.Boolean(),
  type: Nullable(StringEnum(FILE_TYPES), { description: 'What the path is, when it exists.' }),
});
export type ExistsResponse = Static<typeof ExistsResponseSchema>;

/** `write` (PUT) answers with the entry written. */
export type WriteFileResponse = FileEntry;

export const RemoveFileResponseSchema = Type.Object({ path: Type.String(), removed: Type.Literal(true) });
export type RemoveFileResponse = Static<typeof RemoveFileResponseSchema>;

export const MakeDirBodySchema = named(
  'MakeDirRequest',
  Strict({
    path: Type.String({ description: 'Absolute path in the machine.' }),
    parents: Type.Optional(
      Type.Boolean({
        default: true,
        description: 'Create missing parents, and accept an existing directory.',
      }),
    ),
  }),
);

export interface MakeDirRequest {
  path: string;
  /** Create missing parents, and accept an existing directory (`mkdir -p`). Default true. */
  parents: boolean;
}

export const MakeDirResponseSchema = Type.Object({
  entry: FileEntrySchema,
  created: Type.Boolean({ description: 'False when the directory was already there (with `parents`).' }),
});
export type MakeDirResponse = Static<typeof MakeDirResponseSchema>;

export const MoveBodySchema = named(
  'MoveRequest',
  Strict({
    from: Type.String(),
    to: Type.String({ description: 'Missing parents are created.' }),
    overwrite: Type.Optional(
      Type.Boolean({
        default: false,
        description: 'Replace an existing `to` (never a non-empty directory).',
      }),
    ),
  }),
);

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

const GLOBS = (description: string) =>
  Type.Optional(
    Type.Array(Type.String({ maxLength: FILE_LIMITS.globs.maxLength }), {
      maxItems: FILE_LIMITS.globs.maxItems,
      description,
    }),
  );
const PATTERN = Type.String({
  minLength: 1,
  maxLength: FILE_LIMITS.search.maxPatternLength,
  description: 'A literal string, or a JavaScript regular expression with `regex`.',
});
const MATCHING = {
  regex: Type.Optional(Type.Boolean({ default: false, description: '`pattern` is a regular expression.' })),
  case_sensitive: Type.Optional(Type.Boolean({ default: true })),
  include: GLOBS('Globs a file must match (any); relative to path; `*.ts` matches at any depth.'),
  exclude: GLOBS('Globs of files or whole directories to skip.'),
};

export const SearchBodySchema = named(
  'SearchRequest',
  Strict({
    path: Type.String({ description: 'Directory to search under.' }),
    pattern: PATTERN,
    ...MATCHING,
    max_results: Type.Optional(
      Type.Integer({
        minimum: FILE_LIMITS.search.max_results.min,
        maximum: FILE_LIMITS.search.max_results.max,
        default: FILE_LIMITS.search.max_results.default,
      }),
    ),
  }),
);

export interface SearchRequest extends FileSelection {
  pattern: string;
  /** `pattern` is a JavaScript regular expression (else a literal string). */
  regex: boolean;
  case_sensitive: boolean;
  max_results: number;
}

export const SearchMatchSchema = Type.Object({
  path: Type.String(),
  line: Type.Integer({ description: '1-based line number.' }),
  column: Type.Integer({ description: '1-based column (in UTF-16 code units of the line).' }),
  text: Type.String({ description: 'The whole line (cut at 1000 characters).' }),
});
export type SearchMatch = Static<typeof SearchMatchSchema>;

export const SearchResponseSchema = named(
  'SearchResult',
  Type.Object({
    matches: Type.Array(SearchMatchSchema),
    truncated: Type.Boolean({ description: '`max_results` was reached: there may be more matches.' }),
    files_scanned: Type.Integer(),
  }),
);
export type SearchResponse = Static<typeof SearchResponseSchema>;

export const ReplaceBodySchema = named(
  'ReplaceRequest',
  Strict({
    paths: Type.Optional(
      Type.Array(Type.String({ maxLength: FILE_LIMITS.maxPathLength }), {
        maxItems: FILE_LIMITS.replace.maxPaths,
        description: 'Exactly these files (not with path, include, exclude).',
      }),
    ),
    path: Type.Optional(Type.String({ description: 'Every text file under this directory.' })),
    pattern: PATTERN,
    replacement: Type.String({
      maxLength: FILE_LIMITS.replace.maxReplacementLength,
      description: 'With regex, `$1`, `$<name>` and `$&` refer to the match. May be "".',
    }),
    ...MATCHING,
  }),
);

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

export const ReplaceResponseSchema = named(
  'ReplaceResult',
  Type.Object({
    files: Type.Array(Type.Object({ path: Type.String(), replacements: Type.Integer() })),
    total_replacements: Type.Integer(),
    files_changed: Type.Integer(),
  }),
);
export type ReplaceResponse = Static<typeof ReplaceResponseSchema>;

// ---- watch ------------------------------------------------------------------------------------

export const WatchBodySchema = named(
  'WatchRequest',
  Strict({
    path: Type.String({ description: 'Directory to watch.' }),
    recursive: Type.Optional(Type.Boolean({ default: false, description: 'Follow subdirectories too.' })),
  }),
);

export interface WatchRequest {
  path: string;
  /** Follow subdirectories too (new ones as they appear). Default false. */
  recursive: boolean;
}

export const WatchInfoSchema = named(
  'WatchInfo',
  Type.Object({ watch_id: Type.String(), path: Type.String(), recursive: Type.Boolean() }),
);
export type WatchInfo = Static<typeof WatchInfoSchema>;

export const WATCH_EVENT_TYPES = ['create', 'write', 'remove', 'rename'] as const;
export type WatchEventType = (typeof WATCH_EVENT_TYPES)[number];

/**
 * One change under a watched directory. Ids increase by one per watch, so `after=<id>` resumes
 * exactly. `rename` has `from` and `to` (and `path` = `to`).
 */
export const WatchEventSchema = named(
  'WatchEvent',
  Type.Object({
    id: Type.Integer(),
    type: StringEnum(WATCH_EVENT_TYPES),
    path: Type.String(),
    is_dir: Type.Boolean({ description: 'What the path is (for `remove`, what it was).' }),
    from: Type.Optional(Type.String()),
    to: Type.Optional(Type.String()),
    at: DateTime({ description: 'When the agent saw it.' }),
  }),
);
export type WatchEvent = Static<typeof WatchEventSchema>;

export const WatchEventsPageSchema = named(
  'WatchEventsPage',
  Type.Object({
    events: Type.Array(WatchEventSchema),
    last_event_id: Type.Integer({
      description: 'Pass as `after` to continue: the id of the last event returned (or `after` when none).',
    }),
  }),
);
export type WatchEventsPage = Static<typeof WatchEventsPageSchema>;

/** Watch ids: `fwt_` + 20 lower-case base32 characters, made by the agent. */
export const WATCH_ID = /^fwt_[a-z2-7]{20}$/;

export function parseWatchId(raw: string): string {
  if (!WATCH_ID.test(raw)) throw invalidArgument('watch_id', `"${raw.slice(0, 80)}" is not a watch id`);
  return raw;
}

// ---- signed URLs ----------------------------------------------------------------------------

export type SignedUrlOp = 'read' | 'write';

export const SignedUrlBodySchema = named(
  'SignedUrlRequest',
  Strict({
    path: Type.String(),
    op: StringEnum(['read', 'write'] as const, {
      description: 'read (GET the URL) or write (PUT or POST to it).',
    }),
    expires_in: Type.Optional(
      Type.Integer({
        minimum: FILE_LIMITS.signedUrl.expires_in.min,
        maximum: FILE_LIMITS.signedUrl.expires_in.max,
        default: FILE_LIMITS.signedUrl.expires_in.default,
        description: 'Seconds from now.',
      }),
    ),
  }),
);

export interface SignedUrlRequest {
  path: string;
  op: SignedUrlOp;
  /** Seconds from now, 1 to 7 days. Default 3600. */
  expires_in: number;
}

export const SignedUrlResponseSchema = named(
  'SignedUrl',
  Type.Object({
    url: Type.String({
      description: 'Usable without an API key: GET it (read), or PUT/POST the bytes to it (write).',
    }),
    op: StringEnum(['read', 'write'] as const),
    path: Type.String(),
    expires_at: DateTime(),
    method: StringEnum(['GET', 'PUT'] as const),
  }),
);
export type SignedUrlResponse = Static<typeof SignedUrlResponseSchema>;

// ---- queries ----------------------------------------------------------------------------------

const PATH_PARAM = Type.String({ description: 'Absolute path in the machine (no `..`).' });
export const PathQuerySchema = Type.Object({ path: PATH_PARAM });
export const ListFilesQuerySchema = Type.Object({
  path: PATH_PARAM,
  depth: Type.Optional(
    Type.Integer({
      minimum: FILE_LIMITS.depth.min,
      maximum: FILE_LIMITS.depth.max,
      default: FILE_LIMITS.depth.default,
      description: "Levels to list: 1 = the directory's own entries.",
    }),
  ),
});
const AFTER = Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Events after this id.' }));
export const WatchEventsQuerySchema = Type.Object({
  after: AFTER,
  wait_ms: Type.Optional(
    Type.Integer({
      minimum: FILE_LIMITS.watch.wait_ms.min,
      maximum: FILE_LIMITS.watch.wait_ms.max,
      default: FILE_LIMITS.watch.wait_ms.default,
      description: 'With nothing after `after`, wait this long for one (long poll).',
    }),
  ),
  limit: Type.Optional(
    Type.Integer({
      minimum: FILE_LIMITS.watch.limit.min,
      maximum: FILE_LIMITS.watch.limit.max,
      default: 1000,
    }),
  ),
});
export const WatchWsQuerySchema = Type.Object({ after: AFTER });
export const SignedFileQuerySchema = Type.Object({
  path: Type.String(),
  op: StringEnum(['read', 'write'] as const),
  expires: Type.Integer({ description: 'Unix time the URL stops working.' }),
  sig: Type.String({ description: 'HMAC-SHA256 of the rest, hex.' }),
});

// ---- agent routes -----------------------------------------------------------------------------

/** Agent paths of the files namespace (the server adds the query). */

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

function patternOf(value: string, regex: boolean, caseSensitive: boolean): string {
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
  const b = check(MakeDirBodySchema, body);
  return { path: parseFilePath(b.path), parents: b.parents ?? true };
}

export function parseMove(body: unknown): MoveRequest {
  const b = check(MoveBodySchema, body);
  const from = parseFilePath(b.from, 'from');
  const to = parseFilePath(b.to, 'to');
  if (from === '/') throw invalidArgument('from', 'cannot be the root directory');
  if (to === from || to.startsWith(`${from}/`))
    throw invalidArgument('to', 'cannot be the source itself or inside it');
  return { from, to, overwrite: b.overwrite ?? false };
}

export function parseSearch(body: unknown): SearchRequest {
  const b = check(SearchBodySchema, body);
  const regex = b.regex ?? false;
  const caseSensitive = b.case_sensitive ?? true;
  return {
    path: parseFilePath(b.path),
    pattern: patternOf(b.pattern, regex, caseSensitive),
    regex,
    case_sensitive: caseSensitive,
    include: b.include ?? [],
    exclude: b.exclude ?? [],
    max_results: b.max_results ?? FILE_LIMITS.search.max_results.default,
  };
}

export function parseReplace(body: unknown): ReplaceRequest {
  const b = check(ReplaceBodySchema, body);
  const regex = b.regex ?? false;
  const caseSensitive = b.case_sensitive ?? true;
  const req: ReplaceRequest = {
    include: b.include ?? [],
    exclude: b.exclude ?? [],
    pattern: patternOf(b.pattern, regex, caseSensitive),
    replacement: b.replacement,
    regex,
    case_sensitive: caseSensitive,
  };
  if (b.paths !== undefined) {
    if (b.path !== undefined)
      throw invalidArgument('paths', 'give either paths or path (with include/exclude), not both');
    if (req.include.length > 0 || req.exclude.length > 0)
      throw invalidArgument('paths', 'cannot be combined with include/exclude (they apply to path)');
    if (b.paths.length === 0) throw invalidArgument('paths', 'must name at least one file');
    req.paths = [...new Set(b.paths.map((p, i) => parseFilePath(p, `paths[${i}]`)))];
  } else {
    req.path = parseFilePath(b.path);
  }
  return req;
}

export function parseWatch(body: unknown): WatchRequest {
  const b = check(WatchBodySchema, body);
  return { path: parseFilePath(b.path), recursive: b.recursive ?? false };
}

export function parseSignedUrl(body: unknown): SignedUrlRequest {
  const b = check(SignedUrlBodySchema, body);
  return {
    path: parseFilePath(b.path),
    op: b.op,
    expires_in: b.expires_in ?? FILE_LIMITS.signedUrl.expires_in.default,
  };
}
