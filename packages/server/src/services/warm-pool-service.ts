import {
  CodedError,
  type CreateMachineSpec,
  type MachineInfo,
  type WarmPoolCheckout,
  type WarmPoolInfo,
  type WarmPoolSpec,
  canonicalTemplateRef,
  newId,
  parseCreateMachine,
} from '@nullspace/protocol';
import type { Logger } from '../log.js';
import type { MachineStore } from '../store/machine-store.js';
import type { TemplateStore, WarmPoolRecord } from '../store/template-store.js';
import type { MachineService } from './machines/machine-service.js';
import type { WarmPoolStats } from './metrics-service.js';
import type { TemplateResolver } from './template-catalog.js';

/** What the warm pools ask of the machine service. */
export type PoolMachines = Pick<
  MachineService,
  'create' | 'createPooled' | 'handOver' | 'kill' | 'planVolumes'
>;

/** Recent checkout times kept per pool for its p50/p95. */
const LATENCY_SAMPLES = 200;
/** Longest pause between failed starts of a pool's machines (doubling from 1 s). */
const MAX_BACKOFF_MS = 60_000;
/** How often pools are compared with what the store holds (machines killed or failed meanwhile). */
const RECONCILE_MS = 5_000;

interface Pool {
  rec: WarmPoolRecord;
  /** Started machines waiting for a checkout, oldest first. */
  ready: string[];
  starting: number;
  waiters: ((id: string | undefined) => void)[];
  latencies: number[];
  lastError: string | null;
  backoffMs: number;
  retryAt: number;
  deleted: boolean;
}

/**
 * Warm pools: N machines of one template and sizing kept started (agent answering, start command
 * ready) for creates that name the pool. A checkout hands over a running machine, which becomes an
 * ordinary machine (never returned); the pool starts a replacement at once. Pools and their waiting
 * machines are in the store, so a restarted server finds them again.
 */
export class WarmPoolService {
  private readonly pools = new Map<string, Pool>();
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly o: {
      templates: TemplateStore;
      resolver: TemplateResolver;
      machines: PoolMachines;
      machineStore: MachineStore;
      /** Starts of pool machines at once per pool (the host has few cores). */
      concurrency?: number;
      log: Logger;
    },
  ) {
    this.log = o.log.child({ component: 'warm_pools' });
  }

  /** Loads the pools, counts the machines each still holds, and starts filling them. */
  start(): void {
    for (const rec of this.o.templates.pools()) this.pools.set(rec.id, this.newPool(rec));
    this.reconcile();
    this.timer = setInterval(() => this.reconcile(), RECONCILE_MS);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const p of this.pools.values()) for (const w of p.waiters.splice(0)) w(undefined);
  }

  // ---- API --------------------------------------------------------------------------------------

  /** A pool of `tenant` (null: the operator's): its machines are the tenant's and count to its quota. */
  create(spec: WarmPoolSpec, tenant: string | null): WarmPoolInfo {
    // An unknown or stale template is refused now, not at every refill.
    const t = this.o.resolver.resolve(spec.template);
    if (t.snapshot_id !== null && spec.disk_mb !== null && spec.disk_mb !== t.disk_mb)
      throw new CodedError(
        'invalid_argument',
        `disk_mb: must be ${t.disk_mb} (the built-in disk of snapshot-backed template ${t.ref}) or left out`,
        { field: 'disk_mb' },
      );
    const rec: WarmPoolRecord = {
      ...spec,
      id: newId('warmPool'),
      hits: 0,
      misses: 0,
      created_at: Date.now(),
      tenant,
    };
    this.o.templates.insertPool(rec);
    const pool = this.newPool(rec);
    this.pools.set(rec.id, pool);
    this.log.info('warm pool created', { warm_pool_id: rec.id, template: rec.template, size: rec.size });
    this.fill(pool);
    return this.info(pool);
  }

  /** Pools; with `tenant`, only that tenant's (undefined: everyone's, for the operator). */
  list(tenant?: string): WarmPoolInfo[] {
    return [...this.pools.values()]
      .filter((p) => tenant === undefined || p.rec.tenant === tenant)
      .map((p) => this.info(p));
  }

  /** The tenant a pool belongs to (null: the operator); undefined: no such pool. */
  tenantOf(id: string): string | null | undefined {
    return this.pools.get(id)?.rec.tenant;
  }

  get(id: string): WarmPoolInfo {
    return this.info(this.pool(id));
  }

  /** Deletes the pool and kills the machines waiting in it (checked-out ones are not its any more). */
  async delete(id: string): Promise<WarmPoolInfo> {
    const pool = this.pool(id);
    pool.deleted = true;
    this.pools.delete(id);
    this.o.templates.deletePool(id);
    for (const w of pool.waiters.splice(0)) w(undefined);
    const waiting = this.o.machineStore
      .listInStates(['starting', 'running'])
      .filter((m) => m.warm_pool_id === id);
    await Promise.all(
      waiting.map((m) => this.o.machines.kill(m.id, 'warm pool deleted').catch(() => undefined)),
    );
    this.log.info('warm pool deleted', { warm_pool_id: id, killed: waiting.length });
    return { ...this.info(pool), ready: 0, starting: 0 };
  }

  /** Pools whose template is build `templateId` (a template in use cannot be deleted). */
  usersOf(templateId: string): string[] {
    return [...this.pools.values()]
      .filter((p) => {
        try {
          return this.o.resolver.resolve(p.rec.template).id === templateId;
        } catch {
          return false;
        }
      })
      .map((p) => `warm pool ${p.rec.id}`);
  }

  /** Hit rate and sizes per pool, for /metrics. */
  stats(): WarmPoolStats[] {
    return [...this.pools.values()].map((p) => ({
      id: p.rec.id,
      template: p.rec.template,
      ready: p.ready.length,
      hits: p.rec.hits,
      misses: p.rec.misses,
    }));
  }

  /**
   * A create that names a warm pool: a ready machine of the pool handed over (a hit), or a cold
   * create with the pool's template (`prefer` and `bypass`); `require` fails with
   * `warm_pool_unavailable` when none is ready in time. A create from a snapshot never checks out.
   */
  async createMachine(spec: CreateMachineSpec, caller: string | null): Promise<MachineInfo> {
    const { machines } = this.o;
    if (spec.snapshot_id !== undefined) {
      if (spec.volumes !== undefined) machines.planVolumes(spec.volumes, caller);
      return machines.create(spec, caller);
    }
    // Another tenant's pool answers as if it did not exist. The machine is the pool's tenant's
    // (the operator creating from a tenant's pool acts for that tenant).
    const owner = this.pool(spec.warm_pool as string, caller).rec.tenant;
    // A warm machine has started already: its volumes are attached at handover. They are checked
    // before one is taken, so an unknown volume costs the pool nothing.
    if (spec.volumes !== undefined) machines.planVolumes(spec.volumes, owner);
    const requested = Date.now();
    const taken = await this.checkout(spec);
    if (taken.machineId === undefined)
      return machines.create(spec.template_given ? spec : { ...spec, template: taken.template }, owner, {
        checkout: taken.checkout,
        requested,
      });
    const info = await machines.handOver(taken.machineId, spec, taken.checkout);
    const ms = Date.now() - requested;
    this.recordCheckout(taken.checkout.pool_id, ms);
    this.log.info('machine checked out of a warm pool', {
      machine_id: info.id,
      warm_pool_id: taken.checkout.pool_id,
      ms,
    });
    return info;
  }

  private async checkout(
    spec: CreateMachineSpec,
  ): Promise<{ machineId?: string; checkout: WarmPoolCheckout; template: string }> {
    const started = Date.now();
    const id = spec.warm_pool as string;
    const pool = this.pools.get(id);
    if (!pool) throw new CodedError('not_found', `warm pool ${id} not found`, { warm_pool: id });
    this.checkMatches(pool, spec);
    const template = pool.rec.template;
    if (spec.warm_pool_mode === 'bypass')
      return { checkout: { pool_id: id, waited_ms: 0, hit: false }, template };
    let machineId = this.take(pool);
    if (machineId === undefined && spec.warm_pool_wait_ms > 0)
      machineId = await this.waitFor(pool, spec.warm_pool_wait_ms);
    const waited = Date.now() - started;
    const hit = machineId !== undefined;
    pool.rec[hit ? 'hits' : 'misses']++;
    this.o.templates.countCheckout(id, hit);
    // The replacement starts once this request has its answer: its own start-up work (a record,
    // host commands) is not on the checkout's path.
    setImmediate(() => this.fill(pool));
    if (!hit && spec.warm_pool_mode === 'require')
      throw new CodedError(
        'warm_pool_unavailable',
        `warm pool ${id} had no ready machine within ${spec.warm_pool_wait_ms} ms`,
        { warm_pool: id, waited_ms: waited, retry_after: 1 },
      );
    return { ...(hit ? { machineId } : {}), checkout: { pool_id: id, waited_ms: waited, hit }, template };
  }

  /** Records how long a hit took in all (the machine service's part included). */
  private recordCheckout(poolId: string, ms: number): void {
    const pool = this.pools.get(poolId);
    if (!pool) return;
    pool.latencies.push(ms);
    if (pool.latencies.length > LATENCY_SAMPLES) pool.latencies.shift();
  }

  // ---- filling ----------------------------------------------------------------------------------

  private newPool(rec: WarmPoolRecord): Pool {
    return {
      rec,
      ready: [],
      starting: 0,
      waiters: [],
      latencies: [],
      lastError: null,
      backoffMs: 0,
      retryAt: 0,
      deleted: false,
    };
  }

  /** A ready machine off the pool, if one is still running. */
  private take(pool: Pool): string | undefined {
    for (;;) {
      const id = pool.ready.shift();
      if (id === undefined) return undefined;
      const m = this.o.machineStore.get(id);
      if (m && m.status === 'running' && m.warm_pool_id === pool.rec.id) return id;
    }
  }

  private waitFor(pool: Pool, ms: number): Promise<string | undefined> {
    return new Promise((resolve) => {
      const waiter = (id: string | undefined) => {
        clearTimeout(timer);
        resolve(id);
      };
      const timer = setTimeout(() => {
        pool.waiters = pool.waiters.filter((w) => w !== waiter);
        resolve(undefined);
      }, ms);
      pool.waiters.push(waiter);
    });
  }

  /** Starts machines until ready + starting reaches the pool's size. */
  private fill(pool: Pool): void {
    if (this.closed || pool.deleted) return;
    if (Date.now() < pool.retryAt) return;
    const limit = this.o.concurrency ?? 2;
    while (pool.ready.length + pool.starting < pool.rec.size && pool.starting < limit) {
      pool.starting++;
      void this.startOne(pool);
    }
  }

  private async startOne(pool: Pool): Promise<void> {
    const r = pool.rec;
    let id: string | undefined;
    try {
      const spec = parseCreateMachine({
        template: r.template,
        vcpus: r.vcpus,
        memory_mb: r.memory_mb,
        ...(r.disk_mb !== null ? { disk_mb: r.disk_mb } : {}),
      });
      id = (await this.o.machines.createPooled(r.id, spec, r.tenant)).id;
      pool.backoffMs = 0;
      pool.lastError = null;
    } catch (err) {
      // The failed machine holds nothing any more; its record goes from `failed` to `killed`, since
      // nobody else sees it (pool machines are not listed).
      const failed = err instanceof CodedError ? err.details?.machine_id : undefined;
      if (typeof failed === 'string')
        await this.o.machines.kill(failed, 'warm pool start failed').catch(() => undefined);
      pool.lastError = err instanceof Error ? err.message : String(err);
      pool.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(1000, pool.backoffMs * 2));
      pool.retryAt = Date.now() + pool.backoffMs;
      this.log.error('warm pool machine failed to start', { warm_pool_id: r.id, error: err });
    } finally {
      pool.starting--;
    }
    if (id !== undefined) {
      if (pool.deleted) {
        await this.o.machines.kill(id, 'warm pool deleted').catch(() => undefined);
        return;
      }
      const waiter = pool.waiters.shift();
      if (waiter) waiter(id);
      else pool.ready.push(id);
    }
    this.fill(pool);
  }

  /** Drops machines that died, adopts the ones a restart found, refills. */
  private reconcile(): void {
    const held = this.o.machineStore.listInStates(['running']).filter((m) => m.warm_pool_id !== null);
    for (const pool of this.pools.values()) {
      const mine = new Set(held.filter((m) => m.warm_pool_id === pool.rec.id).map((m) => m.id));
      pool.ready = pool.ready.filter((id) => mine.has(id));
      for (const id of mine) if (!pool.ready.includes(id)) pool.ready.push(id);
      this.fill(pool);
    }
  }

  private checkMatches(pool: Pool, spec: CreateMachineSpec): void {
    const r = pool.rec;
    const differs: string[] = [];
    if (spec.template_given && canonicalTemplateRef(spec.template) !== r.template)
      differs.push(`template ${r.template}`);
    if (spec.sized.vcpus !== undefined && spec.sized.vcpus !== r.vcpus) differs.push(`vcpus ${r.vcpus}`);
    if (spec.sized.memory_mb !== undefined && spec.sized.memory_mb !== r.memory_mb)
      differs.push(`memory_mb ${r.memory_mb}`);
    if (spec.sized.disk_mb !== undefined && r.disk_mb !== null && spec.sized.disk_mb !== r.disk_mb)
      differs.push(`disk_mb ${r.disk_mb}`);
    if (differs.length > 0)
      throw new CodedError(
        'invalid_argument',
        `warm_pool: pool ${r.id} holds machines with ${differs.join(', ')}; leave those fields out or match them`,
        { field: 'warm_pool' },
      );
  }

  /** The pool `id`; with `caller` a tenant, only that tenant's (another's is `not_found` like none). */
  private pool(id: string, caller: string | null = null): Pool {
    const p = this.pools.get(id);
    if (!p || (caller !== null && p.rec.tenant !== caller))
      throw new CodedError('not_found', `warm pool ${id} not found`, { warm_pool: id });
    return p;
  }

  private info(p: Pool): WarmPoolInfo {
    const total = p.rec.hits + p.rec.misses;
    const sorted = [...p.latencies].sort((a, b) => a - b);
    const pct = (q: number) =>
      sorted.length ? (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? null) : null;
    return {
      id: p.rec.id,
      template: p.rec.template,
      vcpus: p.rec.vcpus,
      memory_mb: p.rec.memory_mb,
      disk_mb: p.rec.disk_mb,
      size: p.rec.size,
      ready: p.ready.length,
      starting: p.starting,
      hits: p.rec.hits,
      misses: p.rec.misses,
      hit_rate: total ? p.rec.hits / total : null,
      checkout_ms: { p50: pct(0.5), p95: pct(0.95), samples: sorted.length },
      last_error: p.lastError,
      created_at: new Date(p.rec.created_at).toISOString(),
    };
  }
}
