import { invalidArgument } from './errors.js';
import { MACHINE_LIMITS } from './machine.js';
import { BASE_TEMPLATE, ENV_NAME, TEMPLATE_NAME, canonicalTemplateRef, parseTemplateRef } from './names.js';
import { check } from './schema/check.js';
import {
  DateTime,
  Nullable,
  Pattern,
  type Static,
  Strict,
  StringEnum,
  StringMap,
  Type,
  named,
} from './schema/kit.js';
import { ABSOLUTE_PATH } from './validate.js';

/** A tag of a template build: 1-64 of a-z 0-9 . _ - (starting with a letter or digit). */
const TAG = /^[a-z0-9][a-z0-9._-]{0,63}$/;

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

const TEMPLATE_NAME_ERROR = 'must be a template name such as "team/app" or "team/app:stable"';
const SIZE = (l: { min: number; max: number; default: number }, description: string) =>
  Type.Optional(Type.Integer({ minimum: l.min, maximum: l.max, default: l.default, description }));

/** How a machine's start command is known to be up: `port` (optionally with `http_path`) or `command`. */
export const ReadyCheckBodySchema = named(
  'ReadyCheckRequest',
  Strict({
    port: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 65535,
        description: 'TCP port that accepts connections once ready.',
      }),
    ),
    http_path: Type.Optional(
      Pattern(/^\/[\x21-\x7e]*$/, 'must be a path starting with /', {
        maxLength: 2048,
        description: 'With port: this path must answer HTTP below 500.',
      }),
    ),
    command: Type.Optional(
      Type.String({
        maxLength: TEMPLATE_LIMITS.runLength,
        description: 'A shell command that exits 0 once ready.',
      }),
    ),
    timeout_ms: Type.Optional(
      Type.Integer({
        minimum: TEMPLATE_LIMITS.readyTimeoutMs.min,
        maximum: TEMPLATE_LIMITS.readyTimeoutMs.max,
        default: TEMPLATE_LIMITS.readyTimeoutMs.default,
      }),
    ),
  }),
);

export const ReadyCheckSchema = named(
  'ReadyCheck',
  Type.Object({
    port: Type.Optional(Type.Integer()),
    http_path: Type.Optional(Type.String()),
    command: Type.Optional(Type.String()),
    timeout_ms: Type.Integer(),
  }),
);
export type ReadyCheck = Static<typeof ReadyCheckSchema>;

export interface TemplateFile {
  path: string;
  /** Base64 of the bytes. */
  content_base64: string;
  mode: number;
}

export const TemplateFileBodySchema = Strict({
  // The look-ahead runs from the start, so a first segment of . or .. is caught as well.
  path: Pattern(
    /^(?!.*\/\.\.?(\/|$))\/[^\0]*[^/]$/,
    'must be an absolute file path without . or .. segments',
    {
      maxLength: 4096,
    },
  ),
  content: Type.Optional(Type.String({ description: 'Text (UTF-8); or give content_base64.' })),
  content_base64: Type.Optional(
    Pattern(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64', { description: 'Bytes, base64.' }),
  ),
  mode: Type.Optional(
    Type.Integer({ minimum: 0, maximum: 0o7777, default: 0o644, description: 'Permission bits.' }),
  ),
});

/** The body of `POST /v1/templates`: only `name` is required. */
export const TemplateSpecBodySchema = named(
  'TemplateBuildRequest',
  Strict({
    name: Pattern(TEMPLATE_NAME, TEMPLATE_NAME_ERROR, {
      maxLength: 128,
      description: '`name` or `name:tag` (tag `latest` when left out).',
    }),
    tags: Type.Optional(
      Type.Array(
        Pattern(TAG, 'must be 1-64 of a-z 0-9 . _ - (starting with a letter or digit)', { maxLength: 64 }),
        { maxItems: 16, description: 'More tags for the same build.' },
      ),
    ),
    base: Type.Optional(
      Pattern(TEMPLATE_NAME, 'must be a template name such as "base" or "team/app:stable"', {
        maxLength: 128,
        default: BASE_TEMPLATE,
        description: 'The template to start from.',
      }),
    ),
    packages: Type.Optional(
      Type.Array(Pattern(DEBIAN_PACKAGE, 'must be a Debian package name', { maxLength: 128 }), {
        maxItems: TEMPLATE_LIMITS.packages,
        description: 'Debian (bookworm) packages to install.',
      }),
    ),
    files: Type.Optional(
      Type.Array(TemplateFileBodySchema, {
        maxItems: TEMPLATE_LIMITS.files,
        description: 'Files put into the template.',
      }),
    ),
    run: Type.Optional(
      Type.Array(Type.String({ maxLength: TEMPLATE_LIMITS.runLength }), {
        maxItems: TEMPLATE_LIMITS.run,
        description: 'Shell commands run in order (bash, as root, in workdir); one failing fails the build.',
      }),
    ),
    env: Type.Optional(
      StringMap({
        key: ENV_NAME,
        keyError: 'environment variable names are letters, digits and _ (not starting with a digit)',
        maxEntries: 100,
        maxValueLength: 32 * 1024,
        description: 'Environment of the run steps and of every process in its machines.',
      }),
    ),
    workdir: Type.Optional(
      Pattern(ABSOLUTE_PATH, 'must be an absolute path', {
        maxLength: 4096,
        description: 'Default working directory of its machines.',
      }),
    ),
    start_cmd: Type.Optional(
      Type.String({
        maxLength: TEMPLATE_LIMITS.runLength,
        description:
          'Started in every machine made from it (tag `start`); a create returns once it is ready.',
      }),
    ),
    ready_check: Type.Optional(ReadyCheckBodySchema),
    disk_mb: SIZE(MACHINE_LIMITS.disk_mb, 'Disk of its machines, in MB.'),
    vcpus: SIZE(MACHINE_LIMITS.vcpus, 'Size of the build machine (and of a snapshot-backed template).'),
    memory_mb: SIZE(MACHINE_LIMITS.memory_mb, 'Memory of the build machine, in MB.'),
    snapshot: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Capture the machine with the start command ready: machines start from that memory state.',
      }),
    ),
  }),
);

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

export const TEMPLATE_STATUSES = ['building', 'ready', 'failed', 'deleted'] as const;
export type TemplateStatus = (typeof TEMPLATE_STATUSES)[number];

export const TemplateInfoSchema = named(
  'TemplateInfo',
  Type.Object({
    id: Type.String({
      description:
        '`tpl_...`; for a template shipped with the server (`base`, `code-interpreter` …), its name.',
    }),
    names: Type.Array(Type.String(), { description: 'Every `name:tag` that points at this build.' }),
    status: StringEnum(TEMPLATE_STATUSES),
    key: Type.String({
      description: 'Content hash of the spec and its base: an unchanged spec is not built again.',
    }),
    base: Nullable(Type.String(), { description: 'What it is built on (null for `base` itself).' }),
    packages: Type.Array(Type.String()),
    env: Type.Array(Type.String(), { description: "Names of the template's environment variables." }),
    workdir: Nullable(Type.String()),
    start_cmd: Nullable(Type.String()),
    ready_check: Nullable(ReadyCheckSchema),
    disk_mb: Type.Integer(),
    vcpus: Type.Integer(),
    memory_mb: Type.Integer(),
    snapshot_backed: Type.Boolean(),
    snapshot_id: Nullable(Type.String()),
    size_bytes: Type.Integer(),
    error: Nullable(Type.String()),
    created_at: DateTime(),
    finished_at: Nullable(DateTime()),
    build_ms: Nullable(Type.Integer(), { description: 'Milliseconds the build took (null while building).' }),
    shipped: Type.Boolean({
      description: 'Shipped with the server and built by its set-up (cannot be deleted or built over).',
    }),
    purpose: Nullable(Type.String(), { description: "A shipped template's one-line purpose." }),
  }),
);
export type TemplateInfo = Static<typeof TemplateInfoSchema>;

export const ListTemplatesResponseSchema = Type.Object({ items: Type.Array(TemplateInfoSchema) });

/** `POST /v1/templates` answers with the build to follow (`cached`: it was there already). */
export const TemplateBuildStartedSchema = named(
  'TemplateBuildStarted',
  Type.Object({ build_id: Type.String(), cached: Type.Boolean(), template: TemplateInfoSchema }),
);
export type TemplateBuildStarted = Static<typeof TemplateBuildStartedSchema>;

/** One line of `GET /v1/templates/{ref}/logs` (NDJSON). */
export const TemplateBuildEventSchema = named(
  'TemplateBuildEvent',
  Type.Union([
    Type.Object({
      type: Type.Literal('step'),
      step: Type.Integer(),
      total: Type.Integer(),
      name: Type.String(),
      at: DateTime(),
    }),
    Type.Object({ type: Type.Literal('log'), step: Type.Integer(), line: Type.String(), at: DateTime() }),
    Type.Object({ type: Type.Literal('done'), template: TemplateInfoSchema, at: DateTime() }),
    Type.Object({
      type: Type.Literal('error'),
      error: Type.Object({ code: Type.String(), message: Type.String() }),
      at: DateTime(),
    }),
  ]),
);
export type TemplateBuildEvent = Static<typeof TemplateBuildEventSchema>;

export const TemplateLogsQuerySchema = Type.Object({
  follow: Type.Optional(Type.Boolean({ default: true, description: 'Keep streaming until the build ends.' })),
});

export function parseTemplateSpec(body: unknown): TemplateSpec {
  const b = check(TemplateSpecBodySchema, body);
  const { name, tag } = parseTemplateRef(b.name);
  if (name === BASE_TEMPLATE) throw invalidArgument('name', '"base" is the built-in template');
  const run = b.run ?? [];
  run.forEach((r, i) => {
    if (r.trim() === '') throw invalidArgument(`run[${i}]`, 'must not be empty');
  });
  const startCmd = b.start_cmd ?? null;
  if (startCmd !== null && startCmd.trim() === '') throw invalidArgument('start_cmd', 'must not be empty');
  const readyCheck = b.ready_check === undefined ? null : readyCheckSpec(b.ready_check);
  if (readyCheck && startCmd === null)
    throw invalidArgument('ready_check', 'needs a start_cmd (what would become ready?)');
  const snapshot = b.snapshot ?? false;
  if (snapshot && startCmd === null)
    throw invalidArgument('snapshot', 'needs a start_cmd (the snapshot captures it running)');
  return {
    name,
    tags: [...new Set([tag, ...(b.tags ?? [])])],
    base: b.base === undefined ? BASE_TEMPLATE : canonicalTemplateRef(b.base),
    packages: [...new Set(b.packages ?? [])].sort(),
    files: filesSpec(b.files ?? []),
    run,
    env: b.env ?? {},
    workdir: b.workdir ?? null,
    start_cmd: startCmd,
    ready_check: readyCheck,
    disk_mb: b.disk_mb ?? MACHINE_LIMITS.disk_mb.default,
    vcpus: b.vcpus ?? MACHINE_LIMITS.vcpus.default,
    memory_mb: b.memory_mb ?? MACHINE_LIMITS.memory_mb.default,
    snapshot,
  };
}

function readyCheckSpec(r: Static<typeof ReadyCheckBodySchema>): ReadyCheck {
  if ((r.port === undefined) === (r.command === undefined))
    throw invalidArgument('ready_check', 'give exactly one of port or command');
  if (r.http_path !== undefined && r.port === undefined)
    throw invalidArgument('ready_check.http_path', 'needs a port');
  const check: ReadyCheck = { timeout_ms: r.timeout_ms ?? TEMPLATE_LIMITS.readyTimeoutMs.default };
  if (r.port !== undefined) check.port = r.port;
  if (r.http_path !== undefined) check.http_path = r.http_path;
  if (r.command !== undefined) check.command = r.command;
  return check;
}

function filesSpec(files: Static<typeof TemplateFileBodySchema>[]): TemplateFile[] {
  let total = 0;
  const seen = new Set<string>();
  return files.map((f, i) => {
    if (seen.has(f.path)) throw invalidArgument(`files[${i}].path`, 'is given twice');
    seen.add(f.path);
    if ((f.content === undefined) === (f.content_base64 === undefined))
      throw invalidArgument(`files[${i}]`, 'give exactly one of content or content_base64');
    const bytes =
      f.content !== undefined
        ? Buffer.from(f.content, 'utf8')
        : Buffer.from(f.content_base64 ?? '', 'base64');
    total += bytes.length;
    if (total > TEMPLATE_LIMITS.filesBytes)
      throw invalidArgument('files', `contents must be at most ${TEMPLATE_LIMITS.filesBytes} bytes together`);
    return { path: f.path, content_base64: bytes.toString('base64'), mode: f.mode ?? 0o644 };
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

export const WarmPoolSpecBodySchema = named(
  'WarmPoolRequest',
  Strict({
    template: Type.Optional(
      Pattern(TEMPLATE_NAME, 'must be a template name such as "base" or "team/app:stable"', {
        maxLength: 128,
        default: BASE_TEMPLATE,
        description: 'Template of its machines.',
      }),
    ),
    vcpus: SIZE(MACHINE_LIMITS.vcpus, 'Virtual CPUs of its machines.'),
    memory_mb: SIZE(MACHINE_LIMITS.memory_mb, 'Memory of its machines, in MB.'),
    disk_mb: Type.Optional(
      Type.Integer({
        minimum: MACHINE_LIMITS.disk_mb.min,
        maximum: MACHINE_LIMITS.disk_mb.max,
        description: "Disk of its machines, in MB (default: the template's).",
      }),
    ),
    size: Type.Integer({
      minimum: WARM_POOL_LIMITS.size.min,
      maximum: WARM_POOL_LIMITS.size.max,
      description: 'Machines kept ready.',
    }),
  }),
);

export const WarmPoolInfoSchema = named(
  'WarmPoolInfo',
  Type.Object({
    id: Type.String({ description: '`twp_...`' }),
    template: Type.String(),
    vcpus: Type.Integer(),
    memory_mb: Type.Integer(),
    disk_mb: Nullable(Type.Integer()),
    size: Type.Integer(),
    ready: Type.Integer({ description: 'Started and waiting for a checkout.' }),
    starting: Type.Integer({ description: 'Being started (refill).' }),
    hits: Type.Integer(),
    misses: Type.Integer(),
    hit_rate: Nullable(Type.Number(), {
      description: 'hits / (hits + misses); null before the first checkout.',
    }),
    checkout_ms: Type.Object(
      { p50: Nullable(Type.Number()), p95: Nullable(Type.Number()), samples: Type.Integer() },
      { description: 'Server-side time of recent hits, from the request to a machine answering.' },
    ),
    last_error: Nullable(Type.String(), {
      description: 'The last start failure (the pool retries), if any.',
    }),
    created_at: DateTime(),
  }),
);
export type WarmPoolInfo = Static<typeof WarmPoolInfoSchema>;

export const ListWarmPoolsResponseSchema = Type.Object({ items: Type.Array(WarmPoolInfoSchema) });

export function parseWarmPoolSpec(body: unknown): WarmPoolSpec {
  const b = check(WarmPoolSpecBodySchema, body);
  return {
    template: canonicalTemplateRef(b.template ?? BASE_TEMPLATE),
    vcpus: b.vcpus ?? MACHINE_LIMITS.vcpus.default,
    memory_mb: b.memory_mb ?? MACHINE_LIMITS.memory_mb.default,
    disk_mb: b.disk_mb ?? null,
    size: b.size,
  };
}
