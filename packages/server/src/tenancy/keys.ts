import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  type ApiKeyInfo,
  CodedError,
  type CreateKeyRequest,
  type CreatedApiKey,
  newId,
} from '@nullspace/protocol';
import type Database from 'better-sqlite3';
import { keyMatches } from '../api-key.js';
import { prepared } from '../store/prepared.js';

/**
 * Who a request acts for: the operator (`tenant: null`, the key of `NULLSPACE_API_KEY`), who sees
 * everything, or a tenant, who sees only its own (docs/tenants.md).
 */
export interface Principal {
  tenant: string | null;
  /** The tenant key's id (`key_...`); null for the operator's key. */
  keyId: string | null;
}

export const OPERATOR: Principal = Object.freeze({ tenant: null, keyId: null });

interface KeyRow {
  id: string;
  tenant: string;
  name: string | null;
  key_hash: string;
  hint: string;
  created_at: number;
  revoked_at: number | null;
}

/** SHA-256 of a key: what is stored and looked up (a 192-bit random key needs no slow KDF). */
function hashOf(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/**
 * The API keys: the operator's (given or generated, kept as it is, see api-key.ts) and tenants'
 * (table `api_keys`: only each key's SHA-256). Every key not revoked is held in memory by its hash,
 * so authenticating a request reads no database; a revoke drops it from memory in the same call and
 * ends the connections it has open (streams, WebSockets), so it takes effect at once.
 */
export class ApiKeys {
  /** Hex SHA-256 → key, for keys not revoked. */
  private readonly live = new Map<string, KeyRow>();
  /** Key id → sockets of requests and WebSockets open with that key. */
  private readonly open = new Map<string, Set<Socket>>();

  constructor(
    private readonly db: Database.Database,
    private readonly operatorKey: string,
  ) {
    for (const row of prepared(db, 'SELECT * FROM api_keys WHERE revoked_at IS NULL').all() as KeyRow[])
      this.live.set(row.key_hash, row);
  }

  /**
   * The principal a presented key stands for, or undefined (no key, an unknown or revoked one).
   * The operator's key is compared in constant time; a tenant's is found by its hash, which the
   * caller cannot steer byte by byte, and the hash then compared in constant time too.
   */
  authenticate(presented: string | undefined): Principal | undefined {
    if (presented === undefined) return undefined;
    if (keyMatches(presented, this.operatorKey)) return OPERATOR;
    const digest = hashOf(presented);
    const row = this.live.get(digest.toString('hex'));
    if (!row || !timingSafeEqual(Buffer.from(row.key_hash, 'hex'), digest)) return undefined;
    return { tenant: row.tenant, keyId: row.id };
  }

  /** A new key of `req.tenant`: `ns_` + 32 base64url characters (192 random bits), shown only here. */
  create(req: CreateKeyRequest): CreatedApiKey {
    const key = `ns_${randomBytes(24).toString('base64url')}`;
    const row: KeyRow = {
      id: newId('apiKey'),
      tenant: req.tenant,
      name: req.name,
      key_hash: hashOf(key).toString('hex'),
      hint: key.slice(-4),
      created_at: Date.now(),
      revoked_at: null,
    };
    prepared(
      this.db,
      `INSERT INTO api_keys (id, tenant, name, key_hash, hint, created_at, revoked_at)
         VALUES (@id, @tenant, @name, @key_hash, @hint, @created_at, @revoked_at)`,
    ).run(row);
    this.live.set(row.key_hash, row);
    return {
      id: row.id,
      key,
      tenant: row.tenant,
      name: row.name,
      created_at: new Date(row.created_at).toISOString(),
    };
  }

  /** Keys not revoked, oldest first. */
  list(): ApiKeyInfo[] {
    return (
      prepared(
        this.db,
        'SELECT * FROM api_keys WHERE revoked_at IS NULL ORDER BY created_at, id',
      ).all() as KeyRow[]
    ).map(info);
  }

  /**
   * Revokes a key: refused from this call on, and every connection that carried it closed (a
   * long poll, a log stream, a WebSocket). `not_found` for an unknown or already revoked id.
   */
  revoke(id: string): ApiKeyInfo {
    const row = prepared(this.db, 'SELECT * FROM api_keys WHERE id = ? AND revoked_at IS NULL').get(id) as
      | KeyRow
      | undefined;
    if (!row) throw new CodedError('not_found', `API key ${id} not found`, { key_id: id });
    prepared(this.db, 'UPDATE api_keys SET revoked_at = ? WHERE id = ?').run(Date.now(), id);
    this.live.delete(row.key_hash);
    const sockets = this.open.get(id);
    this.open.delete(id);
    for (const s of sockets ?? []) s.destroy();
    return info(row);
  }

  /**
   * Remembers that `socket` carries a request or WebSocket of `principal`'s key until it closes or
   * `until` fires, so a revoke can end it. The operator's key is never revoked: nothing to track.
   */
  track(principal: Principal, socket: Socket, until?: (done: () => void) => void): void {
    const id = principal.keyId;
    if (id === null) return;
    let set = this.open.get(id);
    if (!set) {
      set = new Set();
      this.open.set(id, set);
    }
    set.add(socket);
    const forget = () => {
      const current = this.open.get(id);
      current?.delete(socket);
      if (current?.size === 0) this.open.delete(id);
    };
    socket.once('close', forget);
    until?.(() => {
      socket.off('close', forget);
      forget();
    });
  }
}

function info(row: KeyRow): ApiKeyInfo {
  return {
    id: row.id,
    tenant: row.tenant,
    name: row.name,
    hint: row.hint,
    created_at: new Date(row.created_at).toISOString(),
  };
}
