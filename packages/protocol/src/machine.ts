import { invalidArgument } from './errors.js';
import { ID_PREFIX, isId } from './ids.js';
import { MACHINE_STATES, type MachineState } from './machine-states.js';
import { ENV_NAME, METADATA_KEY, TEMPLATE_NAME, canonicalTemplateRef } from './names.js';
import { type EgressRateLimit, type NetworkSpec, parseNetworkFields, parseNetworkObject } from './network.js';
import {
  ABSOLUTE_PATH,
  expectObject,
  optionalBoolean,
  optionalEnum,
  optionalInteger,
  optionalString,
  optionalStringMap,
  rejectUnknownKeys,
} from './validate.js';
import { type VolumeAttachmentInfo, type VolumeMountRequest, parseVolumeMounts } from './volumes.js';

export const TIMEOUT_ACTIONS = ['kill', 'pause', 'hibernate'] as const;
export type TimeoutAction = (typeof TIMEOUT_ACTIONS)[number];

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

export interface EgressPolicy {
  mode: 'allow_all' | 'deny_all' | 'custom';
  allow_cidrs: string[];
  deny_cidrs: string[];
  rate_limit: EgressRateLimit | null;
}

/** `network` in machine info: the policy in force, and the machine's address on its link. */
export interface NetworkInfo {
  egress: EgressPolicy;
  /** False when the legacy `internet_access: false` locked the machine to deny-all. */
  internet_access: boolean;
  mask_request_host: string | null;
  /** The machine's IPv4 address on its private link to the host (null until it first starts). */
  address: string | null;
}

export interface WarmPoolCheckout {
  pool_id: string;
  waited_ms: number;
  hit: boolean;
}

/** Machine info as returned by the API (snake_case on the wire). */
export interface MachineInfo {
  id: string;
  execution_id: string;
  status: MachineState;
  template: string;
  snapshot_id: string | null;
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  cwd: string;
  /** Names only: values are never returned. */
  envs: string[];
  metadata: Record<string, string>;
  network: NetworkInfo;
  timeout: number;
  on_timeout: TimeoutAction;
  auto_resume: boolean;
  expires_at: string;
  created_at: string;
  started_at: string | null;
  warm_pool_checkout: WarmPoolCheckout | null;
  volumes: VolumeAttachmentInfo[];
  status_reason?: string | null;
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
}

const CREATE_FIELDS = [
  'internet_access',
  'allow_out',
  'deny_out',
  'template',
  'snapshot_id',
  'vcpus',
  'memory_mb',
  'disk_mb',
  'timeout',
  'on_timeout',
  'auto_resume',
  'cwd',
  'envs',
  'metadata',
  'network',
  'volumes',
  'desktop',
  'warm_pool',
  'warm_pool_mode',
  'warm_pool_wait_ms',
] as const;

/** Features of the contract this server does not offer yet: refused loudly, never ignored. */
export const UNSUPPORTED_CREATE_FIELDS: Record<string, string> = {
  desktop: 'desktop machines are not available on this server yet',
};

export function parseCreateMachine(body: unknown): CreateMachineSpec {
  const obj = body === undefined || body === null ? {} : expectObject(body, 'body');
  rejectUnknownKeys(obj, CREATE_FIELDS);
  for (const [field, why] of Object.entries(UNSUPPORTED_CREATE_FIELDS)) {
    if (obj[field] !== undefined && obj[field] !== null && obj[field] !== false)
      throw invalidArgument(field, why);
  }
  const network = parseNetworkFields(obj);
  const template = optionalString(obj, 'template', {
    max: 128,
    pattern: TEMPLATE_NAME,
    patternHelp: 'must be a template name such as "base" or "team/app:stable"',
  });
  const snapshotId = optionalString(obj, 'snapshot_id', { max: 64 });
  if (snapshotId !== undefined && !isId('snapshot', snapshotId))
    throw invalidArgument('snapshot_id', `must be a snapshot id (${ID_PREFIX.snapshot}...)`);
  const onTimeout = optionalEnum(obj, 'on_timeout', TIMEOUT_ACTIONS) ?? 'kill';
  const autoResume = optionalBoolean(obj, 'auto_resume') ?? false;
  if (autoResume && onTimeout === 'kill')
    throw invalidArgument('auto_resume', 'is only valid with on_timeout "pause" or "hibernate"');
  const cwd =
    optionalString(obj, 'cwd', {
      max: 4096,
      pattern: ABSOLUTE_PATH,
      patternHelp: 'must be an absolute path',
    }) ?? MACHINE_LIMITS.cwd.default;
  const envs = optionalEnvs(obj);
  const metadata =
    optionalStringMap(obj, 'metadata', {
      maxEntries: MACHINE_LIMITS.metadata.maxEntries,
      keyPattern: METADATA_KEY,
      keyHelp: 'metadata keys are 1-128 of letters, digits and _ . : / -',
      maxValueLength: MACHINE_LIMITS.metadata.maxValueLength,
    }) ?? {};
  const volumes = parseVolumeMounts(obj.volumes);
  const warmPool = optionalString(obj, 'warm_pool', { max: 64 });
  if (warmPool !== undefined && !isId('warmPool', warmPool))
    throw invalidArgument('warm_pool', `must be a warm pool id (${ID_PREFIX.warmPool}...)`);
  const sized: CreateMachineSpec['sized'] = {};
  const vcpus = optionalInteger(obj, 'vcpus', MACHINE_LIMITS.vcpus.min, MACHINE_LIMITS.vcpus.max);
  const memoryMb = optionalInteger(
    obj,
    'memory_mb',
    MACHINE_LIMITS.memory_mb.min,
    MACHINE_LIMITS.memory_mb.max,
  );
  const diskMb = optionalInteger(obj, 'disk_mb', MACHINE_LIMITS.disk_mb.min, MACHINE_LIMITS.disk_mb.max);
  if (vcpus !== undefined) sized.vcpus = vcpus;
  if (memoryMb !== undefined) sized.memory_mb = memoryMb;
  if (diskMb !== undefined) sized.disk_mb = diskMb;
  const spec: CreateMachineSpec = {
    template: template === undefined ? 'base' : canonicalTemplateRef(template),
    template_given: template !== undefined,
    cwd_given: obj.cwd !== undefined && obj.cwd !== null,
    vcpus: vcpus ?? MACHINE_LIMITS.vcpus.default,
    memory_mb: memoryMb ?? MACHINE_LIMITS.memory_mb.default,
    disk_mb: diskMb ?? MACHINE_LIMITS.disk_mb.default,
    sized,
    timeout:
      optionalInteger(obj, 'timeout', MACHINE_LIMITS.timeout.min, MACHINE_LIMITS.timeout.max) ??
      MACHINE_LIMITS.timeout.default,
    on_timeout: onTimeout,
    auto_resume: autoResume,
    cwd,
    envs,
    metadata,
    warm_pool_mode: optionalEnum(obj, 'warm_pool_mode', ['prefer', 'require', 'bypass'] as const) ?? 'prefer',
    warm_pool_wait_ms: optionalInteger(obj, 'warm_pool_wait_ms', 0, 60000) ?? 0,
  };
  if (snapshotId !== undefined) {
    if (template !== undefined)
      throw invalidArgument('snapshot_id', 'give either template or snapshot_id, not both');
    spec.snapshot_id = snapshotId;
  }
  if (volumes.length > 0) spec.volumes = volumes;
  if (warmPool !== undefined) spec.warm_pool = warmPool;
  if (network !== undefined) spec.network = network;
  return spec;
}

/**
 * The body of `PUT /v1/machines/{id}/network`: the `network` object of create (`egress`,
 * `mask_request_host`), or the legacy `internet_access` / `allow_out` / `deny_out`.
 */
export function parseSetNetwork(body: unknown): NetworkSpec {
  const obj = expectObject(body, 'body');
  const given = (k: string) => obj[k] !== undefined && obj[k] !== null;
  const legacy = LEGACY_NETWORK_FIELDS.filter(given);
  if (legacy.length === 0) {
    // Replacing the policy with nothing named would open the machine: say what to give instead.
    if (!given('egress'))
      throw invalidArgument('egress', 'is required (or the legacy internet_access, allow_out, deny_out)');
    return parseNetworkObject(obj, '');
  }
  rejectUnknownKeys(obj, LEGACY_NETWORK_FIELDS, '');
  // Only legacy fields are left here; they cannot name a rate limit or a Host rewrite.
  return parseNetworkFields(obj) as NetworkSpec;
}

const LEGACY_NETWORK_FIELDS = ['internet_access', 'allow_out', 'deny_out'];

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

/** An `envs` object (names as in a shell, values up to the machine limits); `{}` when absent. */
export function optionalEnvs(obj: Record<string, unknown>): Record<string, string> {
  return (
    optionalStringMap(obj, 'envs', {
      maxEntries: MACHINE_LIMITS.envs.maxEntries,
      keyPattern: ENV_NAME,
      keyHelp: 'environment variable names are letters, digits and _ and do not start with a digit',
      maxValueLength: MACHINE_LIMITS.envs.maxValueLength,
    }) ?? {}
  );
}
