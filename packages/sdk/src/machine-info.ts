import {
  type EgressBodySchema,
  type EgressPolicySchema,
  type EgressRateLimitSchema,
  type LegacyNetworkBodySchema,
  MACHINE_INFO_FIELDS,
  type MachineInfoField,
  MachineInfoSchema,
  type NetworkBodySchema,
  NetworkInfoSchema,
  type WarmPoolCheckoutSchema,
  type MachineInfo as WireMachineInfo,
} from '@nullspace/protocol';
import { InvalidArgumentError } from './errors.js';
import { type FromWire, camelCase, fromWire, toWire } from './wire.js';

/**
 * Best-effort shaping of a machine's outbound traffic: one of `kbitPerSec` or `pps`, with an
 * optional `burst` (in kilobits with `kbitPerSec`, in packets with `pps`).
 *
 * @example
 * ```ts
 * const rateLimit: EgressRateLimit = { kbitPerSec: 10_000, burst: 256 };
 * ```
 */
export interface EgressRateLimit extends FromWire<typeof EgressRateLimitSchema> {}

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
export interface EgressPolicy extends FromWire<typeof EgressBodySchema> {}

/**
 * A machine's network settings, as given to `Machine.create({ network })` and
 * `machine.setNetwork()`.
 *
 * @example
 * ```ts
 * const network: NetworkPolicy = { egress: { mode: 'deny_all' }, maskRequestHost: 'localhost:${PORT}' };
 * ```
 */
export interface NetworkPolicy extends FromWire<typeof NetworkBodySchema> {}

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
export interface LegacyNetworkPolicy extends FromWire<typeof LegacyNetworkBodySchema> {}

/**
 * The egress policy in force, as machine info reports it: every field present.
 *
 * @example
 * ```ts
 * const { egress } = (await machine.getInfo()).network;
 * console.log(egress.mode, egress.allowCidrs, egress.rateLimit?.kbitPerSec ?? 'unlimited');
 * ```
 */
export interface EgressInfo extends FromWire<typeof EgressPolicySchema> {}

/**
 * `network` of {@link MachineInfo}: the policy in force and the machine's address.
 *
 * @example
 * ```ts
 * const { network } = await machine.getInfo();
 * console.log(network.egress.mode, network.internetAccess, network.address); // "allow_all" true "10.213.0.2"
 * ```
 */
export interface NetworkInfo extends FromWire<typeof NetworkInfoSchema> {}

/**
 * What happened at create time when a warm pool was asked for.
 *
 * @example
 * ```ts
 * const { warmPoolCheckout } = await machine.getInfo();
 * if (warmPoolCheckout?.hit) console.log(`from pool ${warmPoolCheckout.poolId}`);
 * ```
 */
export interface WarmPoolCheckout extends FromWire<typeof WarmPoolCheckoutSchema> {}

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
export interface MachineInfo extends FromWire<typeof MachineInfoSchema> {}

/**
 * The name of a field of {@link MachineInfo}, as accepted by `fields` options.
 *
 * @example
 * ```ts
 * const fields: MachineInfoKey[] = ['id', 'status', 'expiresAt'];
 * ```
 */
export type MachineInfoKey = keyof MachineInfo;

/**
 * Every field name of {@link MachineInfo}, in the order the API documents them.
 *
 * @example
 * ```ts
 * MACHINE_INFO_KEYS.includes('memoryMb'); // true
 * ```
 */
export const MACHINE_INFO_KEYS = MACHINE_INFO_FIELDS.map(camelCase) as readonly MachineInfoKey[];

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
    const wire = MACHINE_INFO_FIELDS.find((w) => camelCase(w) === f);
    if (wire === undefined)
      throw new InvalidArgumentError('invalid_argument', `fields: unknown field "${f}"`, {
        details: { field: 'fields' },
      });
    return wire;
  });
}

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
  return fromWire(NetworkInfoSchema, value);
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
  return toWire(NetworkInfoSchema, value) as Record<string, unknown>;
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
  return fromWire(MachineInfoSchema, wire) as T;
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
  return toWire(MachineInfoSchema, info);
}
