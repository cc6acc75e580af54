import { type DesktopGeometry, DesktopGeometrySchema, desktopGeometry } from './desktop.js';
import { invalidArgument } from './errors.js';
import { ID_PREFIX } from './ids.js';
import { MACHINE_STATES, type MachineState } from './machine-states.js';
import { BASE_TEMPLATE, ENV_NAME, METADATA_KEY, TEMPLATE_NAME, canonicalTemplateRef } from './names.js';
import {
  LEGACY_NETWORK_PROPERTIES,
  NetworkBodySchema,
  NetworkInfoSchema,
  type NetworkSpec,
  parseNetworkFields,
} from './network.js';
import { check, queryValues } from './schema/check.js';
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
import {
  VOLUME_LIMITS,
  VolumeAttachmentInfoSchema,
  VolumeMountBodySchema,
  type VolumeMountRequest,
  parseVolumeMounts,
} from './volumes.js';

export const TIMEOUT_ACTIONS = ['kill', 'pause', 'hibernate'] as const;
export type TimeoutAction = (typeof TIMEOUT_ACTIONS)[number];
export const WARM_POOL_MODES = ['prefer', 'require', 'bypass'] as const;

export const MACHINE_LIMITS = {
  vcpus: { min: 1, max: 64, default: 1 },
  memory_mb: { min: 128, max: 65536, default: 512 },
  // mkfs.xfs (6.1) refuses file systems under 300 MB.
  disk_mb: { min: 300, max: 1048576, default: 2048 },
  timeout: { min: 1, max: 7 * 24 * 3600, default: 300 },
  cwd: { default: '/workspace' },
  envs: { maxEntries: 256, maxValueLength: 32768 },
  metadata: { maxEntries: 64, maxValueLength: 1024 },
} as const;

export type { EgressPolicy, NetworkInfo } from './network.js';

const TEMPLATE_NAME_ERROR = 'must be a template name such as "base" or "team/app:stable"';

/** What happened at create time when a warm pool was asked for. */
export const WarmPoolCheckoutSchema = named(
  'WarmPoolCheckout',
  Type.Object({ pool_id: Type.String(), waited_ms: Type.Integer(), hit: Type.Boolean() }),
);
export type WarmPoolCheckout = Static<typeof WarmPoolCheckoutSchema>;

/** Machine info as returned by the API (snake_case on the wire). */
export const MachineInfoSchema = named(
  'MachineInfo',
  Type.Object({
    id: Type.String({ description: 'The machine id (`mch_...`), stable across pause and resume.' }),
    execution_id: Type.String({ description: 'The current incarnation; a resume starts a new one.' }),
    status: StringEnum(MACHINE_STATES),
    template: Type.String(),
    snapshot_id: Nullable(Type.String(), {
      description: "The machine's latest pause snapshot (set by pause and hibernate).",
    }),
    vcpus: Type.Integer(),
    memory_mb: Type.Integer(),
    disk_mb: Type.Integer(),
    cwd: Type.String({ description: 'Default working directory of commands.' }),
    envs: Type.Array(Type.String(), {
      description: "Names of the machine's environment variables; values are never returned.",
    }),
    metadata: FreeStringMap(),
    network: NetworkInfoSchema,
    timeout: Type.Integer({
      description: 'Seconds from create (or the last timeout change) until on_timeout applies.',
    }),
    on_timeout: StringEnum(TIMEOUT_ACTIONS),
    auto_resume: Type.Boolean(),
    expires_at: DateTime(),
    created_at: DateTime(),
    started_at: Nullable(DateTime()),
    warm_pool_checkout: Nullable(WarmPoolCheckoutSchema),
    volumes: Type.Array(VolumeAttachmentInfoSchema, {
      description: 'The volumes mounted in the machine now.',
    }),
    status_reason: Type.Optional(
      Nullable(Type.String(), { description: 'Why the machine is in its state.' }),
    ),
  }),
);
export type MachineInfo = Static<typeof MachineInfoSchema>;

/** Labels and such: string values under keys the user chose, read back as given. */
function FreeStringMap() {
  return Type.Record(Type.String(), Type.String());
}

export const MACHINE_INFO_FIELDS = [
  'id',
  'execution_id',
  'status',
  'template',
  'snapshot_id',
  'vcpus',
  'memory_mb',
  'disk_mb',
  'cwd',
  'envs',
  'metadata',
  'network',
  'timeout',
  'on_timeout',
  'auto_resume',
  'expires_at',
  'created_at',
  'started_at',
  'warm_pool_checkout',
  'volumes',
  'status_reason',
] as const satisfies readonly (keyof MachineInfo)[];
export type MachineInfoField = (typeof MACHINE_INFO_FIELDS)[number];

/** A validated create request with defaults applied. */
export interface CreateMachineSpec {
  template: string;
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  timeout: number;
  on_timeout: TimeoutAction;
  auto_resume: boolean;
  cwd: string;
  envs: Record<string, string>;
  metadata: Record<string, string>;
  /** Set when the request named a snapshot to start from. */
  snapshot_id?: string;
  /** Whether the request named the template (a warm pool's template applies otherwise). */
  template_given: boolean;
  /** Whether the request gave `cwd` (a template's workdir applies otherwise). */
  cwd_given: boolean;
  /** The sizes the request gave explicitly (a snapshot's own sizes apply to the others). */
  sized: Partial<Pick<CreateMachineSpec, 'vcpus' | 'memory_mb' | 'disk_mb'>>;
  /** Set when the request named volumes to mount. */
  volumes?: VolumeMountRequest[];
  warm_pool?: string;
  warm_pool_mode: 'prefer' | 'require' | 'bypass';
  warm_pool_wait_ms: number;
  /** Set when the request gave a network policy (else the server's default applies). */
  network?: NetworkSpec;
  /** A desktop of this size (the template must have one). */
  desktop?: DesktopGeometry;
}

const LIMIT = (l: { min: number; max: number; default: number }, description: string) =>
  Type.Optional(Type.Integer({ minimum: l.min, maximum: l.max, default: l.default, description }));

/** Environment variables: names as in a shell, values up to the machine limits. */
export const EnvsSchema = StringMap({
  key: ENV_NAME,
  keyError: 'environment variable names are letters, digits and _ and do not start with a digit',
  maxEntries: MACHINE_LIMITS.envs.maxEntries,
  maxValueLength: MACHINE_LIMITS.envs.maxValueLength,
  description: 'Environment variables of every command.',
});

/** The body of `POST /v1/machines`: every field optional, the server fills in its defaults. */
export const CreateMachineBodySchema = named(
  'CreateMachineRequest',
  Strict({
    template: Type.Optional(
      Pattern(TEMPLATE_NAME, TEMPLATE_NAME_ERROR, {
        maxLength: 128,
        default: BASE_TEMPLATE,
        description: 'Template to start from, e.g. `base` or `team/app:stable`; not with snapshot_id.',
      }),
    ),
    snapshot_id: Type.Optional(
      Pattern(/^snap_[a-z2-7]{20}$/, `must be a snapshot id (${ID_PREFIX.snapshot}...)`, {
        maxLength: 64,
        description: 'Start from a reusable snapshot (`snap_...`) instead of a template.',
      }),
    ),
    vcpus: LIMIT(MACHINE_LIMITS.vcpus, 'Virtual CPUs.'),
    memory_mb: LIMIT(MACHINE_LIMITS.memory_mb, 'Memory in MB.'),
    disk_mb: LIMIT(MACHINE_LIMITS.disk_mb, 'Disk in MB.'),
    timeout: LIMIT(MACHINE_LIMITS.timeout, 'Seconds until on_timeout applies.'),
    on_timeout: Type.Optional(
      StringEnum(TIMEOUT_ACTIONS, { default: 'kill', description: 'What happens at the timeout.' }),
    ),
    auto_resume: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Resume on a command or preview traffic while paused (needs on_timeout pause or hibernate).',
      }),
    ),
    cwd: Type.Optional(
      Pattern(ABSOLUTE_PATH, 'must be an absolute path', {
        maxLength: 4096,
        default: MACHINE_LIMITS.cwd.default,
        description: 'Default working directory of commands.',
      }),
    ),
    envs: Type.Optional(EnvsSchema),
    metadata: Type.Optional(
      StringMap({
        key: METADATA_KEY,
        keyError: 'metadata keys are 1-128 of letters, digits and _ . : / -',
        maxEntries: MACHINE_LIMITS.metadata.maxEntries,
        maxValueLength: MACHINE_LIMITS.metadata.maxValueLength,
        description: 'Labels to filter lists by.',
      }),
    ),
    network: Type.Optional(NetworkBodySchema),
    ...LEGACY_NETWORK_PROPERTIES,
    volumes: Type.Optional(
      Type.Array(VolumeMountBodySchema, {
        maxItems: VOLUME_LIMITS.perMachine,
        description: 'Volumes to mount.',
      }),
    ),
    desktop: Type.Optional(
      Type.Union([Type.Boolean(), DesktopGeometrySchema], {
        description:
          'A desktop of this size (`true`: 1024x768, 96 dpi); the template must have one (`desktop`).',
      }),
    ),
    warm_pool: Type.Optional(
      Pattern(/^twp_[a-z2-7]{20}$/, `must be a warm pool id (${ID_PREFIX.warmPool}...)`, {
        maxLength: 64,
        description: 'Warm pool id (`twp_...`) to check a ready machine out of.',
      }),
    ),
    warm_pool_mode: Type.Optional(
      StringEnum(WARM_POOL_MODES, {
        default: 'prefer',
        description: 'prefer (pool or cold create), require (pool or warm_pool_unavailable), bypass.',
      }),
    ),
    warm_pool_wait_ms: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 60000, default: 0, description: 'How long require waits, in ms.' }),
    ),
  }),
);
export type CreateMachineBody = Static<typeof CreateMachineBodySchema>;

/** Features of the contract this server does not offer yet: refused loudly, never ignored. */
export const UNSUPPORTED_CREATE_FIELDS: Record<string, string> = {};

export function parseCreateMachine(body: unknown): CreateMachineSpec {
  const raw = body === undefined || body === null ? {} : body;
  const b = check(CreateMachineBodySchema, raw);
  for (const [field, why] of Object.entries(UNSUPPORTED_CREATE_FIELDS)) {
    const v = (b as Record<string, unknown>)[field];
    if (v !== undefined && v !== false) throw invalidArgument(field, why);
  }
  const network = parseNetworkFields(b);
  const onTimeout = b.on_timeout ?? 'kill';
  const autoResume = b.auto_resume ?? false;
  if (autoResume && onTimeout === 'kill')
    throw invalidArgument('auto_resume', 'is only valid with on_timeout "pause" or "hibernate"');
  const volumes = parseVolumeMounts(b.volumes);
  const sized: CreateMachineSpec['sized'] = {};
  if (b.vcpus !== undefined) sized.vcpus = b.vcpus;
  if (b.memory_mb !== undefined) sized.memory_mb = b.memory_mb;
  if (b.disk_mb !== undefined) sized.disk_mb = b.disk_mb;
  const spec: CreateMachineSpec = {
    template: b.template === undefined ? BASE_TEMPLATE : canonicalTemplateRef(b.template),
    template_given: b.template !== undefined,
    cwd_given: b.cwd !== undefined,
    vcpus: b.vcpus ?? MACHINE_LIMITS.vcpus.default,
    memory_mb: b.memory_mb ?? MACHINE_LIMITS.memory_mb.default,
    disk_mb: b.disk_mb ?? MACHINE_LIMITS.disk_mb.default,
    sized,
    timeout: b.timeout ?? MACHINE_LIMITS.timeout.default,
    on_timeout: onTimeout,
    auto_resume: autoResume,
    cwd: b.cwd ?? MACHINE_LIMITS.cwd.default,
    envs: b.envs ?? {},
    metadata: b.metadata ?? {},
    warm_pool_mode: b.warm_pool_mode ?? 'prefer',
    warm_pool_wait_ms: b.warm_pool_wait_ms ?? 0,
  };
  if (b.snapshot_id !== undefined) {
    if (b.template !== undefined)
      throw invalidArgument('snapshot_id', 'give either template or snapshot_id, not both');
    spec.snapshot_id = b.snapshot_id;
  }
  if (volumes.length > 0) spec.volumes = volumes;
  if (b.warm_pool !== undefined) spec.warm_pool = b.warm_pool;
  if (network !== undefined) spec.network = network;
  const desktop = desktopGeometry(b.desktop);
  if (desktop !== undefined) spec.desktop = desktop;
  return spec;
}

/** A validated list query. */
export interface ListMachinesQuery {
  states: MachineState[];
  template?: string;
  metadata: Record<string, string>;
  limit: number;
  next_token?: string;
  fields?: MachineInfoField[];
}

export const LIST_LIMIT = { default: 100, max: 1000 } as const;

/**
 * The query of `GET /v1/machines` as the OpenAPI document describes it. `metadata.KEY=VALUE`
 * filters (repeatable, all must match) have keys of the user's choosing, so
 * {@link parseListMachinesQuery} reads them by their prefix.
 */
export const ListMachinesQuerySchema = Type.Object({
  state: Type.Optional(
    Type.Array(StringEnum(MACHINE_STATES), {
      description: 'Only machines in these states (repeatable or comma-separated; default: all but killed).',
    }),
  ),
  template: Type.Optional(
    Pattern(TEMPLATE_NAME, 'must be a template name', { description: 'Only machines of this template.' }),
  ),
  limit: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: LIST_LIMIT.max,
      default: LIST_LIMIT.default,
      description: 'Machines per page.',
    }),
  ),
  next_token: Type.Optional(Type.String({ description: 'Continue from a previous page.' })),
  fields: Type.Optional(
    Type.String({
      description: `Compact rows with only these fields, comma-separated: ${MACHINE_INFO_FIELDS.join(', ')}.`,
    }),
  ),
});

/** `?fields=` of `GET /v1/machines/{id}`. */
export const FieldsQuerySchema = Type.Object({
  fields: Type.Optional(Type.String({ description: 'Only these fields, comma-separated.' })),
});

/** `GET /v1/machines/{id}` query: `fields` at most once (a second one was ignored before). */
export function parseGetMachineQuery(params: URLSearchParams): { fields?: string } {
  return check(FieldsQuerySchema, queryValues(params, FieldsQuerySchema));
}

/** Parses `GET /v1/machines` query parameters. */
export function parseListMachinesQuery(params: URLSearchParams): ListMachinesQuery {
  const query: ListMachinesQuery = { states: [], metadata: {}, limit: LIST_LIMIT.default };
  for (const [key, value] of params) {
    if (key === 'state') {
      for (const s of value.split(',')) {
        if (!(MACHINE_STATES as readonly string[]).includes(s))
          throw invalidArgument('state', `must be one of ${MACHINE_STATES.join(', ')}`);
        query.states.push(s as MachineState);
      }
    } else if (key === 'template') {
      if (!TEMPLATE_NAME.test(value)) throw invalidArgument('template', 'must be a template name');
      query.template = value;
    } else if (key.startsWith('metadata.')) {
      const metaKey = key.slice('metadata.'.length);
      if (!METADATA_KEY.test(metaKey)) throw invalidArgument(key, 'is not a valid metadata key');
      query.metadata[metaKey] = value;
    } else if (key === 'limit') {
      const n = Number(value);
      if (!/^\d+$/.test(value) || n < 1 || n > LIST_LIMIT.max)
        throw invalidArgument('limit', `must be an integer between 1 and ${LIST_LIMIT.max}`);
      query.limit = n;
    } else if (key === 'next_token') {
      if (value !== '') query.next_token = value;
    } else if (key === 'fields') {
      query.fields = parseFields(value);
    } else {
      throw invalidArgument(key, 'unknown query parameter');
    }
  }
  return query;
}

export function parseFields(value: string): MachineInfoField[] {
  const fields = value
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '');
  if (fields.length === 0) throw invalidArgument('fields', 'must name at least one field');
  for (const f of fields) {
    if (!(MACHINE_INFO_FIELDS as readonly string[]).includes(f))
      throw invalidArgument('fields', `unknown field "${f}"; known: ${MACHINE_INFO_FIELDS.join(', ')}`);
  }
  return fields as MachineInfoField[];
}

export function pickFields(info: MachineInfo, fields: readonly MachineInfoField[]): Partial<MachineInfo> {
  const out: Record<string, unknown> = {};
  for (const f of fields) out[f] = info[f];
  return out as Partial<MachineInfo>;
}

export interface ListMachinesResponse<T = MachineInfo> {
  items: T[];
  next_token: string | null;
  has_next: boolean;
}

export const ListMachinesResponseSchema = Type.Object({
  items: Type.Array(MachineInfoSchema, { description: 'Machine info, or compact rows with `fields`.' }),
  next_token: Nullable(Type.String()),
  has_next: Type.Boolean(),
});

/** An `envs` object (names as in a shell, values up to the machine limits); `{}` when absent. */
export function optionalEnvs(obj: Record<string, unknown>): Record<string, string> {
  return obj.envs === undefined || obj.envs === null ? {} : check(EnvsSchema, obj.envs, 'envs');
}
