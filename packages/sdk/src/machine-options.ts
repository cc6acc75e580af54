/**
 * The options of `Machine`'s calls, and the query strings of its list and info calls.
 */
import type {
  CreateMachineBodySchema,
  ForkBodySchema,
  MachineState,
  ResumeBodySchema,
  SetTimeoutBodySchema,
} from '@nullspace/protocol';
import { type MachineInfoKey, wireFieldNames } from './machine-info.js';
import type { ConnectionOptions, RequestOptions } from './transport.js';
import type { FromWire } from './wire.js';

/**
 * Options of {@link Machine.create}: what to start, plus connection options. Every field is
 * optional; the server fills in its defaults (template `base`, 1 vCPU, 512 MB, 300 s, ...).
 *
 * @example
 * ```ts
 * const opts: MachineCreateOptions = {
 *   template: 'base',
 *   vcpus: 2,
 *   memoryMb: 1024,
 *   timeout: 600,
 *   envs: { APP_ENV: 'dev' },
 *   metadata: { project: 'docs' },
 * };
 * ```
 */
export interface MachineCreateOptions extends FromWire<typeof CreateMachineBodySchema>, ConnectionOptions {}

/**
 * Options of {@link Machine.connect} and {@link Machine.resume}.
 *
 * @example
 * ```ts
 * const machine = await Machine.connect('mch_aaaaaaaaaaaaaaaaaaaa', { timeout: 900 });
 * ```
 */
export interface MachineConnectOptions extends FromWire<typeof ResumeBodySchema>, ConnectionOptions {}

/**
 * Options of {@link Machine.fork}.
 *
 * @example
 * ```ts
 * const children = await machine.fork({ count: 3, requestTimeoutMs: 120_000 });
 * ```
 */
export interface MachineForkOptions extends FromWire<typeof ForkBodySchema>, RequestOptions {}

/**
 * Options of {@link Machine.setTimeout}. Fields left out keep the machine's current setting.
 *
 * @example
 * ```ts
 * await machine.setTimeout(3600, { onTimeout: 'hibernate', autoResume: true });
 * ```
 */
export interface MachineSetTimeoutOptions
  extends Omit<FromWire<typeof SetTimeoutBodySchema>, 'timeout'>,
    RequestOptions {}

/**
 * Filters of {@link Machine.list}; all given filters must match.
 *
 * @example
 * ```ts
 * const query: MachineQuery = { state: ['running', 'paused'], template: 'base', metadata: { project: 'docs' } };
 * ```
 */
export interface MachineQuery {
  /** One state or several (any of them matches). */
  state?: MachineState | MachineState[];
  template?: string;
  /** Only this tenant's machines (the operator's view; a tenant's key sees only its own anyway). */
  tenant?: string;
  /** Every pair must match the machine's metadata. */
  metadata?: Record<string, string>;
}

/**
 * Options of {@link Machine.list}.
 *
 * @example
 * ```ts
 * const opts: MachineListOptions = { query: { state: 'running' }, limit: 50 };
 * ```
 */
export interface MachineListOptions extends ConnectionOptions {
  query?: MachineQuery;
  /** Items per page (server default 100, at most 1000). */
  limit?: number;
  /** Continue from a page token returned earlier as `paginator.nextToken`. */
  nextToken?: string;
  /** Return plain rows with only these fields instead of full {@link MachineInfo}. */
  fields?: readonly MachineInfoKey[];
}

/**
 * Options of {@link Machine.getInfoById}.
 *
 * @example
 * ```ts
 * const row = await Machine.getInfoById('mch_aaaaaaaaaaaaaaaaaaaa', { fields: ['status'] });
 * ```
 */
export interface MachineGetInfoOptions extends ConnectionOptions {
  /** Return a plain row with only these fields. */
  fields?: readonly MachineInfoKey[];
}

/**
 * Options of {@link Machine.runOnce}: create options (`cwd` and `envs` apply to the command
 * through the machine) plus the command's own `timeoutMs` and `stdin`.
 *
 * @example
 * ```ts
 * const result = await Machine.runOnce('python3 -c "print(1+1)"', { template: 'base', timeoutMs: 30_000 });
 * ```
 */
export interface RunOnceOptions extends MachineCreateOptions {
  /** Kill the command after this many milliseconds (default 60 000). */
  timeoutMs?: number;
  /** Text written to the command's standard input. */
  stdin?: string;
}

export function listQuery(opts: MachineListOptions, nextToken: string | undefined): URLSearchParams {
  const params = new URLSearchParams();
  const { state, template, tenant, metadata } = opts.query ?? {};
  for (const s of state === undefined ? [] : Array.isArray(state) ? state : [state])
    params.append('state', s);
  if (template !== undefined) params.set('template', template);
  if (tenant !== undefined) params.set('tenant', tenant);
  for (const [key, value] of Object.entries(metadata ?? {})) params.append(`metadata.${key}`, value);
  if (opts.limit !== undefined) params.set('limit', String(opts.limit));
  if (nextToken !== undefined) params.set('next_token', nextToken);
  if (opts.fields !== undefined) params.set('fields', wireFieldNames(opts.fields).join(','));
  return params;
}

export function fieldsQuery(fields: readonly MachineInfoKey[] | undefined): URLSearchParams | undefined {
  return fields === undefined ? undefined : new URLSearchParams({ fields: wireFieldNames(fields).join(',') });
}
