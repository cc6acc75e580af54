/**
 * Tenants' API keys (docs/tenants.md): the operator's key (`NULLSPACE_API_KEY`) creates, lists
 * and revokes them; a tenant's key gets a `PermissionDeniedError` here. A tenant's key sees and
 * touches only that tenant's machines, snapshots, volumes, templates (and the operator's shared
 * ones) and warm pools.
 */
import {
  ApiKeyInfoSchema,
  CreatedApiKeySchema,
  type ListKeysResponse,
  type ApiKeyInfo as WireApiKeyInfo,
  type CreatedApiKey as WireCreatedApiKey,
} from '@nullspace/protocol';
import { type ConnectionOptions, Transport } from './transport.js';
import { type FromWire, fromWire, toWire } from './wire.js';

/**
 * A tenant's key as listed: never the key itself, only its last 4 characters (`hint`).
 *
 * @example
 * ```ts
 * for (const k of await ApiKey.list()) console.log(k.id, k.tenant, k.name, `…${k.hint}`);
 * ```
 */
export interface ApiKeyInfo extends FromWire<typeof ApiKeyInfoSchema> {}

/**
 * A key just made: `key` is in this answer only (the server keeps its SHA-256).
 *
 * @example
 * ```ts
 * const { id, key } = await ApiKey.create('acme', { name: 'ci' });
 * ```
 */
export interface CreatedApiKey extends FromWire<typeof CreatedApiKeySchema> {}

/**
 * Options of {@link ApiKey.create}, plus connection options (the operator's key).
 *
 * @example
 * ```ts
 * const opts: ApiKeyCreateOptions = { name: 'ci' };
 * ```
 */
export interface ApiKeyCreateOptions extends ConnectionOptions {
  /** A label for people: who or what uses the key. */
  name?: string;
}

/**
 * Converts a listed key from the wire's snake_case.
 *
 * @example
 * ```ts
 * apiKeyInfoFromWire(json).createdAt; // a Date
 * ```
 */
export function apiKeyInfoFromWire(w: WireApiKeyInfo): ApiKeyInfo {
  return fromWire(ApiKeyInfoSchema, w);
}

/**
 * Converts a listed key back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify((await ApiKey.list()).map(apiKeyInfoToWire)));
 * ```
 */
export function apiKeyInfoToWire(k: ApiKeyInfo): WireApiKeyInfo {
  return toWire(ApiKeyInfoSchema, k);
}

/**
 * Converts a created key back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(createdApiKeyToWire(await ApiKey.create('acme'))));
 * ```
 */
export function createdApiKeyToWire(k: CreatedApiKey): WireCreatedApiKey {
  return toWire(CreatedApiKeySchema, k);
}

/**
 * Tenants' API keys, managed with the operator's key. Each call takes connection options; with
 * none, `NULLSPACE_API_URL` and `NULLSPACE_API_KEY` (the operator's) apply.
 *
 * @example
 * ```ts
 * import { ApiKey, Machine } from '@nullspace/sdk';
 *
 * const created = await ApiKey.create('acme', { name: 'ci' });
 * // Hand `created.key` to tenant acme: it sees only its own machines.
 * const machine = await Machine.create({ apiKey: created.key });
 * await machine.kill();
 * await ApiKey.revoke(created.id); // refused at once, its open streams closed
 * ```
 */
export class ApiKey {
  private constructor() {}

  /**
   * Creates a key for `tenant` (1-63 of a-z, 0-9, `_`, `-`); the answer's `key` is shown only
   * this once.
   *
   * @example
   * ```ts
   * const { key } = await ApiKey.create('acme', { name: 'ci' });
   * ```
   */
  static async create(tenant: string, opts: ApiKeyCreateOptions = {}): Promise<CreatedApiKey> {
    const { name, ...connection } = opts;
    const wire = await new Transport(connection).request<WireCreatedApiKey>({
      method: 'POST',
      path: '/v1/keys',
      body: { tenant, ...(name !== undefined ? { name } : {}) },
    });
    return fromWire(CreatedApiKeySchema, wire);
  }

  /**
   * The keys not revoked, oldest first (never the keys themselves).
   *
   * @example
   * ```ts
   * const keys = await ApiKey.list();
   * ```
   */
  static async list(opts: ConnectionOptions = {}): Promise<ApiKeyInfo[]> {
    const page = await new Transport(opts).request<ListKeysResponse>({ method: 'GET', path: '/v1/keys' });
    return page.items.map(apiKeyInfoFromWire);
  }

  /**
   * Revokes a key by id (`key_...`): refused from now on, its open streams and WebSockets closed.
   * `NotFoundError` for an unknown or already revoked id.
   *
   * @example
   * ```ts
   * await ApiKey.revoke('key_...');
   * ```
   */
  static async revoke(id: string, opts: ConnectionOptions = {}): Promise<ApiKeyInfo> {
    const wire = await new Transport(opts).request<WireApiKeyInfo>({
      method: 'DELETE',
      path: `/v1/keys/${encodeURIComponent(id)}`,
    });
    return apiKeyInfoFromWire(wire);
  }
}
