/**
 * The machine store over an in-memory SQLite database: records round-trip, and `list` pages
 * newest first with opaque tokens — no machine twice, none skipped, ties on the creation time
 * included — filtered by state, template and metadata.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  CodedError,
  type ListMachinesQuery,
  type MachineState,
  newId,
  parseListMachinesQuery,
} from '@nullspace/protocol';
import { type MachineRecord, MachineStore } from './machine-store.js';

let store: MachineStore;
beforeEach(() => {
  store = new MachineStore(':memory:');
});
afterEach(() => store.close());

function record(over: Partial<MachineRecord> = {}): MachineRecord {
  return {
    id: newId('machine'),
    execution_id: newId('execution'),
    status: 'running',
    status_reason: null,
    template: 'base',
    snapshot_id: null,
    vcpus: 1,
    memory_mb: 512,
    disk_mb: 2048,
    cwd: '/workspace',
    envs: {},
    metadata: {},
    timeout: 300,
    on_timeout: 'kill',
    auto_resume: false,
    expires_at: 2_000_000,
    created_at: 1_000_000,
    started_at: null,
    updated_at: 1_000_000,
    paused_at: null,
    transition_deadline: null,
    network: { egress: { mode: 'allow_all', allow_cidrs: [], deny_cidrs: [], locked: false } },
    net_index: null,
    template_id: null,
    warm_pool_id: null,
    warm_pool_checkout: null,
    tenant: null,
    ...over,
  };
}

const query = (q: string) => parseListMachinesQuery(new URLSearchParams(q));

/** Every page of a query, following next_token to the end. */
function allPages(q: ListMachinesQuery): { ids: string[]; pages: number } {
  const ids: string[] = [];
  let pages = 0;
  let token: string | undefined;
  do {
    const page = store.list({ ...q, ...(token === undefined ? {} : { next_token: token }) });
    pages++;
    assert.ok(page.items.length <= q.limit);
    ids.push(...page.items.map((m) => m.id));
    token = page.nextToken ?? undefined;
    assert.ok(pages < 1000, 'pagination does not end');
  } while (token !== undefined);
  return { ids, pages };
}

describe('MachineStore records', () => {
  it('a record comes back as it went in (JSON and boolean columns included)', () => {
    const m = record({
      envs: { A: '1' },
      metadata: { 'team/app': 'x' },
      auto_resume: true,
      on_timeout: 'pause',
      network: {
        egress: {
          mode: 'custom',
          allow_cidrs: ['1.1.1.1/32'],
          deny_cidrs: [],
          locked: false,
          rate_limit: { pps: 5 },
        },
        mask_request_host: 'localhost',
      },
      warm_pool_checkout: { pool_id: newId('warmPool'), waited_ms: 3, hit: true },
      net_index: 7,
    });
    store.insert(m);
    assert.deepEqual(store.get(m.id), m);
    assert.equal(store.get(newId('machine')), undefined);
  });

  it('update changes the named columns and updated_at, and says when the machine is gone', () => {
    const m = record();
    store.insert(m);
    const u = store.update(m.id, { status: 'paused', metadata: { k: 'v' }, auto_resume: true });
    assert.equal(u.status, 'paused');
    assert.deepEqual(u.metadata, { k: 'v' });
    assert.equal(u.auto_resume, true);
    assert.ok(u.updated_at > m.updated_at);
    assert.equal(u.vcpus, m.vcpus);
    assert.throws(
      () => store.update(newId('machine'), { status: 'killed' }),
      (err: unknown) => err instanceof CodedError && err.code === 'machine_not_found',
    );
  });

  it('counts, lists and collects address blocks by state', () => {
    store.insert(record({ status: 'running', net_index: 1 }));
    store.insert(record({ status: 'hibernated', net_index: 2 }));
    store.insert(record({ status: 'killed', net_index: 3 }));
    store.insert(record({ status: 'running' }));
    assert.equal(store.countInStates(['running']), 2);
    assert.equal(store.countInStates(['running', 'hibernated', 'killed']), 4);
    assert.deepEqual(store.netIndexesInStates(['running', 'hibernated']), new Set([1, 2]));
    assert.equal(store.listInStates(['killed']).length, 1);
  });
});

describe('MachineStore.purgeKilledBefore', () => {
  it('removes machines killed before the cutoff, with their secrets; the rest stays', () => {
    const old = record({ status: 'killed', updated_at: 1_000 });
    const recent = record({ status: 'killed', updated_at: 5_000 });
    const failed = record({ status: 'failed', updated_at: 1_000 });
    const hibernated = record({ status: 'hibernated', updated_at: 1_000 });
    for (const m of [old, recent, failed, hibernated]) store.insert(m);
    store.database.prepare('INSERT INTO machine_secrets (machine_id, secret) VALUES (?, ?)').run(old.id, 's');
    assert.equal(store.purgeKilledBefore(2_000), 1);
    assert.equal(store.get(old.id), undefined);
    for (const m of [recent, failed, hibernated]) assert.ok(store.get(m.id), m.status);
    const secrets = store.database.prepare('SELECT count(*) AS n FROM machine_secrets').get() as {
      n: number;
    };
    assert.equal(secrets.n, 0);
    assert.equal(store.purgeKilledBefore(2_000), 0);
  });
});

describe('MachineStore.list pagination', () => {
  it('pages newest first, with ties on created_at broken by id, none twice and none skipped', () => {
    const made: MachineRecord[] = [];
    // Seven machines share one creation time: a token must not fall between them.
    for (let i = 0; i < 25; i++) made.push(record({ created_at: i < 7 ? 5000 : 1000 + i }));
    for (const m of made) store.insert(m);
    const expected = [...made]
      .sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .map((m) => m.id);
    for (const limit of [1, 2, 3, 7, 24, 25, 26, 1000]) {
      const { ids, pages } = allPages({ ...query(''), limit });
      assert.deepEqual(ids, expected, `limit ${limit}`);
      assert.equal(pages, Math.max(1, Math.ceil(25 / limit)), `limit ${limit}`);
    }
  });

  it('the last page has no token; an empty store answers one empty page', () => {
    assert.deepEqual(store.list(query('')), { items: [], nextToken: null });
    store.insert(record());
    store.insert(record());
    const first = store.list(query('limit=2'));
    assert.equal(first.items.length, 2);
    assert.equal(first.nextToken, null);
  });

  it('machines made while paging do not show up again on later pages', () => {
    for (let i = 0; i < 6; i++) store.insert(record({ created_at: 1000 + i }));
    const first = store.list(query('limit=3'));
    store.insert(record({ created_at: 9999 }));
    const second = store.list({ ...query('limit=3'), next_token: first.nextToken ?? '' });
    const seen = new Set([...first.items, ...second.items].map((m) => m.id));
    assert.equal(seen.size, 6);
    assert.ok(second.items.every((m) => m.created_at < 1003));
  });

  it('a token the server did not issue is invalid_argument on next_token', () => {
    const bad = [
      'garbage!',
      Buffer.from('{"a":1}').toString('base64url'),
      Buffer.from('[1]').toString('base64url'),
      Buffer.from('["1","mch_x"]').toString('base64url'),
    ];
    for (const token of bad)
      assert.throws(
        () => store.list({ ...query(''), next_token: token }),
        (err: unknown) =>
          err instanceof CodedError && err.code === 'invalid_argument' && err.details?.field === 'next_token',
        token,
      );
  });
});

describe('MachineStore.list filters', () => {
  beforeEach(() => {
    const states: MachineState[] = ['running', 'paused', 'killed', 'failed', 'hibernated'];
    states.forEach((status, i) =>
      store.insert(
        record({
          status,
          created_at: 1000 + i,
          template: i % 2 === 0 ? 'team/app:v1' : 'base',
          metadata: { env: i < 2 ? 'prod' : 'dev', 'team/app': String(i), 'k8s.io:x': 'y' },
        }),
      ),
    );
    store.insert(record({ status: 'running', warm_pool_id: newId('warmPool'), created_at: 2000 }));
  });

  const statuses = (q: string) => store.list(query(q)).items.map((m) => m.status);

  it('by default: everything but killed machines and warm pool machines', () => {
    assert.deepEqual(statuses(''), ['hibernated', 'failed', 'paused', 'running']);
  });

  it('by state (killed only when asked), template and metadata, all ANDed', () => {
    assert.deepEqual(statuses('state=killed'), ['killed']);
    assert.deepEqual(statuses('state=running,killed'), ['killed', 'running']);
    assert.deepEqual(statuses('template=team/app:v1'), ['hibernated', 'running']);
    assert.deepEqual(statuses('metadata.env=prod'), ['paused', 'running']);
    assert.deepEqual(statuses('metadata.env=prod&template=base'), ['paused']);
    assert.deepEqual(statuses('metadata.team/app=3'), ['failed']);
    assert.deepEqual(statuses('metadata.k8s.io:x=y&state=killed'), ['killed']);
    assert.deepEqual(statuses('metadata.env=staging'), []);
    assert.deepEqual(statuses('metadata.missing=x'), []);
  });

  it('filters and pagination together', () => {
    const { ids } = allPages({ ...query('state=running,paused,killed,failed,hibernated'), limit: 2 });
    assert.equal(ids.length, 5);
  });
});

describe('MachineStore tenants', () => {
  it("a tenant's list shows only its machines; the operator's (no tenant) shows everyone's", () => {
    const a = record({ tenant: 'acme', created_at: 3 });
    const b = record({ tenant: 'bravo', created_at: 2 });
    const op = record({ created_at: 1 });
    for (const m of [a, b, op]) store.insert(m);
    assert.equal(store.get(a.id)?.tenant, 'acme');
    assert.equal(store.get(op.id)?.tenant, null);
    assert.deepEqual(
      store.list(query('')).items.map((m) => m.id),
      [a.id, b.id, op.id],
    );
    assert.deepEqual(
      store.list(query(''), 'acme').items.map((m) => m.id),
      [a.id],
    );
    assert.deepEqual(store.list(query(''), 'nobody').items, []);
  });

  it("usageOf sums a tenant's machines in the given states, and nobody else's", () => {
    store.insert(record({ tenant: 'acme', vcpus: 2, memory_mb: 1024, disk_mb: 4096 }));
    store.insert(record({ tenant: 'acme', status: 'hibernated', vcpus: 1, memory_mb: 512, disk_mb: 2048 }));
    store.insert(record({ tenant: 'acme', status: 'killed', vcpus: 8, memory_mb: 8192, disk_mb: 9999 }));
    store.insert(record({ tenant: 'bravo', vcpus: 4 }));
    store.insert(record({ vcpus: 4 }));
    assert.deepEqual(
      { ...store.usageOf('acme', ['running', 'hibernated']) },
      { machines: 2, vcpus: 3, memory_mb: 1536, disk_mb: 6144 },
    );
    assert.deepEqual(
      { ...store.usageOf('nobody', ['running']) },
      { machines: 0, vcpus: 0, memory_mb: 0, disk_mb: 0 },
    );
  });
});
