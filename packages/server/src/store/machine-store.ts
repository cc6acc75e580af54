import {
  CodedError,
  type ListMachinesQuery,
  MACHINE_STATES,
  type MachineState,
  type NetworkSpec,
  type TimeoutAction,
  type WarmPoolCheckout,
} from '@nullspace/protocol';
import Database from 'better-sqlite3';
import { prepared } from './prepared.js';

/** One machine as the server stores it (durable across restarts). */
export interface MachineRecord {
  id: string;
  execution_id: string;
  status: MachineState;
  status_reason: string | null;
  template: string;
  snapshot_id: string | null;
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  cwd: string;
  envs: Record<string, string>;
  metadata: Record<string, string>;
  timeout: number;
  on_timeout: TimeoutAction;
  auto_resume: boolean;
  /** Epoch milliseconds. */
  expires_at: number;
  created_at: number;
  started_at: number | null;
  updated_at: number;
  /** When the machine was last paused (epoch ms); null unless paused or hibernated. */
  paused_at: number | null;
  /** Deadline of the transition in progress (epoch ms); null when not transitioning. */
  transition_deadline: number | null;
  /** The egress policy in force (and the preview Host rewrite). */
  network: NetworkSpec;
  /**
   * The machine's block of the address pool, kept while it is alive or hibernated (a resume
   * restores it at the same address); null for a machine made before it had a network.
   */
  net_index: number | null;
  /** The template build it runs on (null: the built-in `base`). */
  template_id: string | null;
  /** The warm pool holding it, until a create checks it out (then null). */
  warm_pool_id: string | null;
  /** How its create was served by a warm pool, if it named one. */
  warm_pool_checkout: WarmPoolCheckout | null;
  /**
   * The tenant whose key made it (a fork child: its parent's; a warm pool's: the pool's; a build
   * machine: the template's); null: the operator's.
   */
  tenant: string | null;
}

interface Row
  extends Omit<MachineRecord, 'envs' | 'metadata' | 'auto_resume' | 'network' | 'warm_pool_checkout'> {
  warm_pool_checkout: string | null;
  envs: string;
  metadata: string;
  auto_resume: number;
  network: string;
}

/** JSON-encoded columns. */
const JSON_COLUMNS = new Set(['envs', 'metadata', 'network', 'warm_pool_checkout']);

const MIGRATIONS = [
  `CREATE TABLE machines (
     id TEXT PRIMARY KEY,
     execution_id TEXT NOT NULL,
     status TEXT NOT NULL,
     status_reason TEXT,
     template TEXT NOT NULL,
     snapshot_id TEXT,
     vcpus INTEGER NOT NULL,
     memory_mb INTEGER NOT NULL,
     disk_mb INTEGER NOT NULL,
     cwd TEXT NOT NULL,
     envs TEXT NOT NULL,
     metadata TEXT NOT NULL,
     timeout INTEGER NOT NULL,
     on_timeout TEXT NOT NULL,
     auto_resume INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     started_at INTEGER,
     updated_at INTEGER NOT NULL
   );
   CREATE INDEX machines_by_created ON machines (created_at DESC, id DESC);
   CREATE INDEX machines_by_status ON machines (status);`,
  // Lifecycle: when a machine was paused (spill to hibernate), the deadline of the transition it
  // is in, snapshots, and the event log. AUTOINCREMENT: an event id is never reused, also after
  // old events are removed.
  `ALTER TABLE machines ADD COLUMN paused_at INTEGER;
   ALTER TABLE machines ADD COLUMN transition_deadline INTEGER;
   CREATE TABLE snapshots (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     machine_id TEXT NOT NULL,
     status TEXT NOT NULL,
     template TEXT NOT NULL,
     vcpus INTEGER NOT NULL,
     memory_mb INTEGER NOT NULL,
     disk_mb INTEGER NOT NULL,
     cwd TEXT NOT NULL,
     envs TEXT NOT NULL,
     metadata TEXT NOT NULL,
     size_bytes INTEGER NOT NULL,
     paused_ms INTEGER,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX snapshots_by_machine ON snapshots (machine_id);
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     machine_id TEXT NOT NULL,
     execution_id TEXT NOT NULL,
     type TEXT NOT NULL,
     status TEXT NOT NULL,
     previous_status TEXT,
     reason TEXT,
     data TEXT NOT NULL,
     at INTEGER NOT NULL
   );
   CREATE INDEX events_by_machine ON events (machine_id, id);
   CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  // Signed file URLs: one HMAC key per machine, made the first time one is asked for.
  'CREATE TABLE machine_secrets (machine_id TEXT PRIMARY KEY, secret TEXT NOT NULL);',
  // Network: the policy and the address block of each machine (older machines: deny-all, no
  // block until they next start), and preview grants (only a hash of each token is kept).
  `ALTER TABLE machines ADD COLUMN network TEXT NOT NULL
     DEFAULT '{"egress":{"mode":"deny_all","allow_cidrs":[],"deny_cidrs":[],"locked":false}}';
   ALTER TABLE machines ADD COLUMN net_index INTEGER;
   CREATE INDEX machines_by_net_index ON machines (net_index);
   CREATE TABLE preview_grants (
     id TEXT PRIMARY KEY,
     machine_id TEXT NOT NULL,
     port INTEGER NOT NULL,
     kind TEXT NOT NULL,
     token_hash TEXT NOT NULL UNIQUE,
     token_hint TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     revoked_at INTEGER
   );
   CREATE INDEX preview_grants_by_machine ON preview_grants (machine_id, port);`,
  // SSH relays: the port each machine's relay listens on and until when, so a restarted server
  // opens them again on the same ports (the ssh command lines it gave out keep working).
  'CREATE TABLE ssh_relays (machine_id TEXT PRIMARY KEY, port INTEGER NOT NULL, until INTEGER NOT NULL);',
  // Templates: one row per build (a content key names what was built), the name:tag pointers, warm
  // pools, and on machines and snapshots the build they run on and their warm-pool state.
  `CREATE TABLE templates (
     id TEXT PRIMARY KEY,
     key TEXT NOT NULL,
     status TEXT NOT NULL,
     spec TEXT NOT NULL,
     base_id TEXT,
     base_recipe TEXT NOT NULL,
     snapshot_id TEXT,
     size_bytes INTEGER NOT NULL,
     error TEXT,
     created_at INTEGER NOT NULL,
     finished_at INTEGER
   );
   CREATE INDEX templates_by_key ON templates (key);
   CREATE TABLE template_tags (
     name TEXT NOT NULL,
     tag TEXT NOT NULL,
     template_id TEXT NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (name, tag)
   );
   CREATE TABLE warm_pools (
     id TEXT PRIMARY KEY,
     template TEXT NOT NULL,
     vcpus INTEGER NOT NULL,
     memory_mb INTEGER NOT NULL,
     disk_mb INTEGER,
     size INTEGER NOT NULL,
     hits INTEGER NOT NULL,
     misses INTEGER NOT NULL,
     created_at INTEGER NOT NULL
   );
   ALTER TABLE machines ADD COLUMN template_id TEXT;
   ALTER TABLE machines ADD COLUMN warm_pool_id TEXT;
   ALTER TABLE machines ADD COLUMN warm_pool_checkout TEXT;
   ALTER TABLE snapshots ADD COLUMN template_id TEXT;`,
  // Tenants (docs/tenants.md): what a tenant's key made carries the tenant; NULL is the operator's,
  // so every row made before tenants existed stays the operator's. API keys of tenants are kept as
  // the SHA-256 of the key, never the key.
  `ALTER TABLE machines ADD COLUMN tenant TEXT;
   CREATE INDEX machines_by_tenant ON machines (tenant, status);
   ALTER TABLE snapshots ADD COLUMN tenant TEXT;
   ALTER TABLE templates ADD COLUMN tenant TEXT;
   ALTER TABLE warm_pools ADD COLUMN tenant TEXT;
   CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     tenant TEXT NOT NULL,
     name TEXT,
     key_hash TEXT NOT NULL UNIQUE,
     hint TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     revoked_at INTEGER
   );`,
];

/** Encodes the position after the last row of a page; opaque to clients. */
function encodeToken(createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

function decodeToken(token: string): [number, string] {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // fall through
  }
  throw new CodedError('invalid_argument', 'next_token: is not a token this server issued', {
    field: 'next_token',
  });
}

/** States a plain list shows when no `state` filter is given: everything that is not gone. */
export const LISTED_BY_DEFAULT: MachineState[] = MACHINE_STATES.filter((s) => s !== 'killed');

/** The server's SQLite database (WAL mode), migrated forward on open. */
export class MachineStore {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    // SQLite's own default page cache (2 MiB), not the 16 MiB better-sqlite3 builds it with: the
    // database grows with every machine kept for the events' retention, and a cache that fills
    // as it grows is resident memory the server never gives back; the kernel caches the file too.
    this.db.pragma('cache_size = -2000');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v] as string);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /** The same database, for the other tables the server keeps (snapshots, events). */
  get database(): Database.Database {
    return this.db;
  }

  close(): void {
    this.db.close();
  }

  insert(m: MachineRecord): void {
    prepared(
      this.db,
      `INSERT INTO machines (id, execution_id, status, status_reason, template, snapshot_id, vcpus, memory_mb,
           disk_mb, cwd, envs, metadata, timeout, on_timeout, auto_resume, expires_at, created_at, started_at, updated_at,
           paused_at, transition_deadline, network, net_index, template_id, warm_pool_id, warm_pool_checkout, tenant)
         VALUES (@id, @execution_id, @status, @status_reason, @template, @snapshot_id, @vcpus, @memory_mb,
           @disk_mb, @cwd, @envs, @metadata, @timeout, @on_timeout, @auto_resume, @expires_at, @created_at,
           @started_at, @updated_at, @paused_at, @transition_deadline, @network, @net_index, @template_id,
           @warm_pool_id, @warm_pool_checkout, @tenant)`,
    ).run(toRow(m));
  }

  get(id: string): MachineRecord | undefined {
    const row = prepared(this.db, 'SELECT * FROM machines WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  /**
   * Whose machine `id` is (`tenant` null: the operator's); undefined when there is none. One
   * column, not the record: every request of a tenant's key asks it, and reading the whole row
   * with its JSON columns made the check 2.4 times as slow (bench/tenants-check.mjs).
   */
  ownerOf(id: string): { tenant: string | null } | undefined {
    return prepared(this.db, 'SELECT tenant FROM machines WHERE id = ?').get(id) as
      | { tenant: string | null }
      | undefined;
  }

  /** Updates the given columns (and updated_at) and returns the new record. */
  update(id: string, patch: Partial<Omit<MachineRecord, 'id'>>): MachineRecord {
    const entries = Object.entries({ ...patch, updated_at: Date.now() });
    const row: Record<string, unknown> = { id };
    for (const [k, v] of entries) {
      row[k] = JSON_COLUMNS.has(k) ? JSON.stringify(v) : k === 'auto_resume' ? Number(v) : v;
    }
    prepared(
      this.db,
      `UPDATE machines SET ${entries.map(([k]) => `${k} = @${k}`).join(', ')} WHERE id = @id`,
    ).run(row);
    const updated = this.get(id);
    if (!updated) throw new CodedError('machine_not_found', `machine ${id} not found`);
    return updated;
  }

  /** Address blocks held by machines in `states`. */
  netIndexesInStates(states: readonly MachineState[]): Set<number> {
    const rows = prepared(
      this.db,
      `SELECT net_index FROM machines WHERE net_index IS NOT NULL AND status IN (${states.map(() => '?').join(',')})`,
    ).all(...states) as { net_index: number }[];
    return new Set(rows.map((r) => r.net_index));
  }

  /**
   * Removes machines killed before `cutoff` (epoch ms), with what only they used (signing secret,
   * SSH relay, preview grants). Their snapshots stay: a snapshot outlives its machine. Returns how
   * many machines went.
   */
  purgeKilledBefore(cutoff: number): number {
    const gone = `SELECT id FROM machines WHERE status = 'killed' AND updated_at < ?`;
    return this.db.transaction(() => {
      for (const table of ['machine_secrets', 'ssh_relays', 'preview_grants'])
        prepared(this.db, `DELETE FROM ${table} WHERE machine_id IN (${gone})`).run(cutoff);
      return prepared(this.db, `DELETE FROM machines WHERE status = 'killed' AND updated_at < ?`).run(cutoff)
        .changes;
    })();
  }

  /** What `tenant`'s machines in `states` hold together (its quota's usage). */
  usageOf(
    tenant: string,
    states: readonly MachineState[],
  ): { machines: number; vcpus: number; memory_mb: number; disk_mb: number } {
    const row = prepared(
      this.db,
      `SELECT count(*) AS machines, coalesce(sum(vcpus), 0) AS vcpus, coalesce(sum(memory_mb), 0) AS memory_mb,
           coalesce(sum(disk_mb), 0) AS disk_mb
         FROM machines WHERE tenant = ? AND status IN (${states.map(() => '?').join(',')})`,
    ).get(tenant, ...states) as { machines: number; vcpus: number; memory_mb: number; disk_mb: number };
    return row;
  }

  countInStates(states: readonly MachineState[]): number {
    const row = prepared(
      this.db,
      `SELECT count(*) AS n FROM machines WHERE status IN (${states.map(() => '?').join(',')})`,
    ).get(...states) as { n: number };
    return row.n;
  }

  listInStates(states: readonly MachineState[]): MachineRecord[] {
    return (
      prepared(this.db, `SELECT * FROM machines WHERE status IN (${states.map(() => '?').join(',')})`).all(
        ...states,
      ) as Row[]
    ).map(fromRow);
  }

  /**
   * One page, newest first, filtered by state, template and metadata (all ANDed); with `tenant`,
   * only that tenant's machines (undefined: everyone's, for the operator).
   */
  list(q: ListMachinesQuery, tenant?: string): { items: MachineRecord[]; nextToken: string | null } {
    const where: string[] = [];
    const params: unknown[] = [];
    if (tenant !== undefined) {
      where.push('tenant = ?');
      params.push(tenant);
    }
    const states = q.states.length > 0 ? q.states : LISTED_BY_DEFAULT;
    where.push(`status IN (${states.map(() => '?').join(',')})`);
    params.push(...states);
    // Machines waiting in a warm pool belong to nobody yet (GET /v1/warm_pools shows them).
    where.push('warm_pool_id IS NULL');
    if (q.template !== undefined) {
      where.push('template = ?');
      params.push(q.template);
    }
    if (q.tenant !== undefined) {
      where.push('tenant = ?');
      params.push(q.tenant);
    }
    for (const [k, v] of Object.entries(q.metadata)) {
      // Keys are validated against a pattern without quotes, so embedding them in a JSON path is safe.
      where.push(`json_extract(metadata, '$."${k}"') = ?`);
      params.push(v);
    }
    if (q.next_token !== undefined) {
      const [createdAt, id] = decodeToken(q.next_token);
      where.push('(created_at, id) < (?, ?)');
      params.push(createdAt, id);
    }
    const rows = prepared(
      this.db,
      `SELECT * FROM machines WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ?`,
    ).all(...params, q.limit + 1) as Row[];
    const hasNext = rows.length > q.limit;
    const page = rows.slice(0, q.limit).map(fromRow);
    const last = page[page.length - 1];
    return { items: page, nextToken: hasNext && last ? encodeToken(last.created_at, last.id) : null };
  }
}

function toRow(m: MachineRecord): Row {
  return {
    ...m,
    envs: JSON.stringify(m.envs),
    metadata: JSON.stringify(m.metadata),
    auto_resume: Number(m.auto_resume),
    network: JSON.stringify(m.network),
    warm_pool_checkout: m.warm_pool_checkout ? JSON.stringify(m.warm_pool_checkout) : null,
  };
}

function fromRow(r: Row): MachineRecord {
  return {
    ...r,
    envs: JSON.parse(r.envs) as Record<string, string>,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    auto_resume: r.auto_resume === 1,
    network: JSON.parse(r.network) as NetworkSpec,
    warm_pool_checkout: r.warm_pool_checkout ? (JSON.parse(r.warm_pool_checkout) as WarmPoolCheckout) : null,
  };
}
