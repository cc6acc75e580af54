import type {
  MachineInfoField,
  MachineState,
  TimeoutAction,
  MachineInfo as WireMachineInfo,
} from '@nullspace/protocol';
import { InvalidArgumentError } from './errors.js';
import { type VolumeAttachment, volumeAttachmentFromWire, volumeAttachmentToWire } from './volume.js';

/**
 * Best-effort shaping of a machine's outbound traffic: one of `kbitPerSec` or `pps`, with an
 * optional `burst` (in kilobits with `kbitPerSec`, in packets with `pps`).
 *
 * @example
 * ```ts
 * const rateLimit: EgressRateLimit = { kbitPerSec: 10_000, burst: 256 };
 * ```
 */
export interface EgressRateLimit {
  kbitPerSec?: number;
  pps?: number;
  burst?: number;
}

/**
 * An outbound network policy, camelCase. On the wire this is `network.egress` with snake_case
 * fields. IPv4 only; within `custom`, deny wins over allow, and `custom` without `allowCidrs`
 * allows everything but `denyCidrs`.
 *
 * @example
 * ```ts
 * const egress: EgressPolicy = { mode: 'custom', allowCidrs: ['10.0.0.0/8'], denyCidrs: ['10.1.0.0/16'] };
 * ```
 */
export interface EgressPolicy {
  mode: 'allow_all' | 'deny_all' | 'custom';
  allowCidrs?: string[];
  denyCidrs?: string[];
  /** Best-effort shaping: set one of `kbitPerSec` or `pps`, with an optional `burst`. */
  rateLimit?: EgressRateLimit;
}

/**
 * A machine's network settings, as given to `Machine.create({ network })` and
 * `machine.setNetwork()`.
 *
 * @example
 * ```ts
 * const network: NetworkPolicy = { egress: { mode: 'deny_all' }, maskRequestHost: 'localhost:${PORT}' };
 * ```
 */
export interface NetworkPolicy {
  egress?: EgressPolicy;
  /**
   * The Host header preview requests reach the machine's service with, `${PORT}` standing for
   * the port (e.g. `localhost:${PORT}`), for dev servers that only answer their own host name.
   */
  maskRequestHost?: string;
}

/**
 * The legacy network fields (`internet_access`, `allow_out`, `deny_out` on the wire), accepted by
 * `Machine.create()` and `machine.setNetwork()` for code written against them. They cannot set
 * a rate limit or `maskRequestHost`; prefer {@link NetworkPolicy}.
 *
 * @example
 * ```ts
 * await machine.setNetwork({ internetAccess: false }); // deny everything; no allow rule re-opens it
 * await machine.setNetwork({ allowOut: ['203.0.113.0/24'], denyOut: ['203.0.113.7'] });
 * ```
 */
export interface LegacyNetworkPolicy {
  /** `false`: deny all egress, fail closed, whatever `allowOut` says. */
  internetAccess?: boolean;
  /** IPv4 CIDRs the machine may reach (the policy becomes `custom`). */
  allowOut?: string[];
  /** IPv4 CIDRs the machine may not reach. */
  denyOut?: string[];
}

/**
 * The egress policy in force, as machine info reports it: every field present.
 *
 * @example
 * ```ts
 * const { egress } = (await machine.getInfo()).network;
 * console.log(egress.mode, egress.allowCidrs, egress.rateLimit?.kbitPerSec ?? 'unlimited');
 * ```
 */
export interface EgressInfo {
  mode: 'allow_all' | 'deny_all' | 'custom';
  /** Canonical CIDRs (`10.1.2.3/8` comes back as `10.0.0.0/8`; a bare address as a `/32`). */
  allowCidrs: string[];
  denyCidrs: string[];
  rateLimit: EgressRateLimit | null;
}

/**
 * `network` of {@link MachineInfo}: the policy in force and the machine's address.
 *
 * @example
 * ```ts
 * const { network } = await machine.getInfo();
 * console.log(network.egress.mode, network.internetAccess, network.address); // "allow_all" true "10.213.0.2"
 * ```
 */
export interface NetworkInfo {
  egress: EgressInfo;
  /** `false` when the legacy `internetAccess: false` locked the machine to deny-all. */
  internetAccess: boolean;
  maskRequestHost: string | null;
  /** The machine's IPv4 address on its private link to the host; `null` until it first starts. */
  address: string | null;
}

/**
 * What happened at create time when a warm pool was asked for.
 *
 * @example
 * ```ts
 * const { warmPoolCheckout } = await machine.getInfo();
 * if (warmPoolCheckout?.hit) console.log(`from pool ${warmPoolCheckout.poolId}`);
 * ```
 */
export interface WarmPoolCheckout {
  poolId: string;
  waitedMs: number;
  hit: boolean;
}

/**
 * Everything the server says about a machine, camelCase. Timestamps are `Date` objects.
 * The keys of `metadata`, and the names in `envs`, are kept exactly as given.
 *
 * @example
 * ```ts
 * const info = await Machine.getInfoById('mch_aaaaaaaaaaaaaaaaaaaa');
 * console.log(info.status, info.memoryMb, info.expiresAt.toISOString(), info.metadata.project);
 * ```
 */
export interface MachineInfo {
  id: string;
  /** The current incarnation; a resume starts a new execution with a new id. */
  executionId: string;
  status: MachineState;
  template: string;
  /**
   * The machine's latest `pause` snapshot, set by pause and hibernate (a resume uses it up; the id
   * stays here). `null` until the machine is first paused, also for a machine created from a
   * reusable snapshot.
   */
  snapshotId: string | null;
  vcpus: number;
  memoryMb: number;
  diskMb: number;
  /** Default working directory of commands. */
  cwd: string;
  /** Names of the machine's environment variables; values are never returned. */
  envs: string[];
  metadata: Record<string, string>;
  network: NetworkInfo;
  /** Seconds from create (or the last timeout change) until `onTimeout` applies. */
  timeout: number;
  onTimeout: TimeoutAction;
  autoResume: boolean;
  expiresAt: Date;
  createdAt: Date;
  startedAt: Date | null;
  warmPoolCheckout: WarmPoolCheckout | null;
  /** The volumes mounted in the machine now (see `machine.listVolumes()`). */
  volumes: VolumeAttachment[];
  /** Why the machine is in its state, e.g. the reason it `failed`. */
  statusReason?: string | null;
}

/**
 * The name of a field of {@link MachineInfo}, as accepted by `fields` options.
 *
 * @example
 * ```ts
 * const fields: MachineInfoKey[] = ['id', 'status', 'expiresAt'];
 * ```
 */
export type MachineInfoKey = keyof MachineInfo;

// One table between SDK and wire names. `satisfies` makes a missing SDK key an error, and
// `AllWireFieldsMapped` makes a wire field without an SDK key an error.
const WIRE_NAME = {
  id: 'id',
  executionId: 'execution_id',
  status: 'status',
  template: 'template',
  snapshotId: 'snapshot_id',
  vcpus: 'vcpus',
  memoryMb: 'memory_mb',
  diskMb: 'disk_mb',
  cwd: 'cwd',
  envs: 'envs',
  metadata: 'metadata',
  network: 'network',
  timeout: 'timeout',
  onTimeout: 'on_timeout',
  autoResume: 'auto_resume',
  expiresAt: 'expires_at',
  createdAt: 'created_at',
  startedAt: 'started_at',
  warmPoolCheckout: 'warm_pool_checkout',
  volumes: 'volumes',
  statusReason: 'status_reason',
} as const satisfies Record<MachineInfoKey, MachineInfoField>;
type AllWireFieldsMapped = Exclude<MachineInfoField, (typeof WIRE_NAME)[MachineInfoKey]> extends never
  ? true
  : never;
const allWireFieldsMapped: AllWireFieldsMapped = true;
void allWireFieldsMapped;

const SDK_NAME = new Map<string, MachineInfoKey>(
  Object.entries(WIRE_NAME).map(([sdk, wire]) => [wire, sdk as MachineInfoKey]),
);

/**
 * Every field name of {@link MachineInfo}, in the order the API documents them.
 *
 * @example
 * ```ts
 * MACHINE_INFO_KEYS.includes('memoryMb'); // true
 * ```
 */
export const MACHINE_INFO_KEYS = Object.keys(WIRE_NAME) as readonly MachineInfoKey[];

/**
 * Wire field names for SDK field names, for the `fields` query parameter.
 *
 * @example
 * ```ts
 * wireFieldNames(['id', 'memoryMb']); // ['id', 'memory_mb']
 * ```
 */
export function wireFieldNames(fields: readonly MachineInfoKey[]): MachineInfoField[] {
  return fields.map((f) => {
    const wire = (WIRE_NAME as Record<string, MachineInfoField>)[f];
    if (wire === undefined)
      throw new InvalidArgumentError('invalid_argument', `fields: unknown field "${f}"`, {
        details: { field: 'fields' },
      });
    return wire;
  });
}

function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function toDate(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date;
}

function fromDate(value: unknown): unknown {
  return value instanceof Date ? value.toISOString() : value;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Renames the keys of a policy object one level at a time; values are kept as they are. */
function renameKeys(value: unknown, rename: (key: string) => string, nested: readonly string[]): unknown {
  if (!isObject(value)) return value;
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    const name = rename(key);
    out[name] = nested.includes(name) || nested.includes(key) ? renameKeys(v, rename, nested) : v;
  }
  return out;
}

// Objects inside `network` whose own keys are renamed too (CIDR lists and numbers are values).
const NETWORK_NESTED = ['egress', 'rate_limit', 'rateLimit'];

/**
 * Converts machine info's `network` object from the wire's snake_case to the SDK's camelCase.
 *
 * @example
 * ```ts
 * networkFromWire({ egress: { mode: 'custom', allow_cidrs: ['10.0.0.0/8'] }, internet_access: true });
 * // { egress: { mode: 'custom', allowCidrs: ['10.0.0.0/8'] }, internetAccess: true }
 * ```
 */
export function networkFromWire(value: unknown): NetworkInfo {
  return renameKeys(value, camelCase, NETWORK_NESTED) as NetworkInfo;
}

/**
 * Converts an SDK network policy to the wire's snake_case.
 *
 * @example
 * ```ts
 * networkToWire({ egress: { mode: 'deny_all' }, maskRequestHost: 'localhost:${PORT}' });
 * // { egress: { mode: 'deny_all' }, mask_request_host: 'localhost:${PORT}' }
 * ```
 */
export function networkToWire(value: NetworkPolicy | NetworkInfo): Record<string, unknown> {
  return renameKeys(value, snakeCase, NETWORK_NESTED) as Record<string, unknown>;
}

function valueFromWire(key: MachineInfoKey | undefined, value: unknown): unknown {
  switch (key) {
    case 'expiresAt':
    case 'createdAt':
    case 'startedAt':
      return toDate(value);
    case 'network':
      return networkFromWire(value);
    case 'warmPoolCheckout':
      return renameKeys(value, camelCase, []);
    case 'volumes':
      return Array.isArray(value) ? value.map(volumeAttachmentFromWire) : value;
    default:
      return value;
  }
}

function valueToWire(key: string, value: unknown): unknown {
  switch (key) {
    case 'expiresAt':
    case 'createdAt':
    case 'startedAt':
      return fromDate(value);
    case 'network':
      return isObject(value) ? networkToWire(value as unknown as NetworkInfo) : value;
    case 'warmPoolCheckout':
      return renameKeys(value, snakeCase, []);
    case 'volumes':
      return Array.isArray(value) ? value.map(volumeAttachmentToWire) : value;
    default:
      return value;
  }
}

/**
 * Converts machine info (or a partial row from a `fields` query) from the wire's snake_case to
 * the SDK's camelCase; fields the SDK does not know yet are kept under their camelCased name.
 *
 * @example
 * ```ts
 * const info = machineInfoFromWire({ id: 'mch_aaaaaaaaaaaaaaaaaaaa', memory_mb: 512 });
 * info.memoryMb; // 512
 * ```
 */
export function machineInfoFromWire<T = MachineInfo>(
  wire: Partial<WireMachineInfo> | Record<string, unknown>,
): T {
  const out: Json = {};
  for (const [wireKey, value] of Object.entries(wire)) {
    const key = SDK_NAME.get(wireKey);
    out[key ?? camelCase(wireKey)] = valueFromWire(key, value);
  }
  return out as T;
}

/**
 * Converts SDK machine info (full or partial) back to the wire's snake_case JSON shape, as the
 * HTTP API returns it: what the CLI prints with `--json`.
 *
 * @example
 * ```ts
 * const info = await machine.getInfo();
 * console.log(JSON.stringify(machineInfoToWire(info))); // {"id":"mch_...","execution_id":"exe_...",...}
 * ```
 */
export function machineInfoToWire(info: MachineInfo): WireMachineInfo;
export function machineInfoToWire(info: Partial<MachineInfo>): Partial<WireMachineInfo>;
export function machineInfoToWire(info: Partial<MachineInfo>): Partial<WireMachineInfo> {
  const out: Json = {};
  for (const [key, value] of Object.entries(info)) {
    const wireKey = (WIRE_NAME as Record<string, string>)[key] ?? snakeCase(key);
    out[wireKey] = valueToWire(key, value);
  }
  return out as Partial<WireMachineInfo>;
}
