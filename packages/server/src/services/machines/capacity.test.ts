/**
 * The machine limit counts killed machines whose teardown is not done (they still hold a live
 * machine's host resources), and a create that only teardowns keep out waits for them. Real
 * records (in-memory SQLite), the real teardown queue; the host side is a driver whose `destroy`
 * finishes when the test says so.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CodedError, LIVE_STATES, type MachineState, newId } from '@nullspace/protocol';
import { type MachineDriver, parsePool } from '@nullspace/runtime';
import { EventLog } from '../../events/event-log.js';
import { Logger } from '../../log.js';
import { type MachineRecord, MachineStore } from '../../store/machine-store.js';
import { SnapshotStore } from '../../store/snapshot-store.js';
import { MachineCapacity } from './capacity.js';
import { MachineNetworks } from './machine-networks.js';
import { MachineRecords } from './machine-records.js';
import { SnapshotImages } from './snapshot-images.js';
import { Teardowns } from './teardowns.js';

/** The host side of a teardown: each `destroy` waits until {@link finish} is called for it. */
class HostTeardowns implements Pick<MachineDriver, 'destroy' | 'setEgress' | 'blockEgress'> {
  readonly started: string[] = [];
  private readonly gates = new Map<string, () => void>();
  private readonly waiters: (() => void)[] = [];

  async destroy(id: string): Promise<void> {
    this.started.push(id);
    for (const w of this.waiters.splice(0)) w();
    await new Promise<void>((resolve) => this.gates.set(id, resolve));
  }

  /** Resolves once `destroy` of `id` has started. */
  async untilStarted(id: string): Promise<void> {
    while (!this.started.includes(id)) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  finish(id: string): void {
    const gate = this.gates.get(id);
    assert.ok(gate, `destroy of ${id} has not started`);
    gate();
  }

  // A machine here has no network (net_index null): the networks part never changes egress.
  async setEgress(): Promise<void> {
    throw new Error('no egress in this test');
  }
  async blockEgress(): Promise<void> {
    throw new Error('no egress in this test');
  }
}

let store: MachineStore;
let dir: string;
let host: HostTeardowns;
let records: MachineRecords;
let teardowns: Teardowns;

beforeEach(() => {
  store = new MachineStore(':memory:');
  dir = mkdtempSync(join(tmpdir(), 'ns-capacity-'));
  host = new HostTeardowns();
  records = new MachineRecords(store, new EventLog(store.database));
  const log = new Logger('error');
  const networks = new MachineNetworks(records, {
    driver: host,
    addressPool: parsePool('10.213.0.0/16'),
    machinesDir: join(dir, 'machines'),
    claimsDir: join(dir, 'claims'),
    log,
  });
  const images = new SnapshotImages(new SnapshotStore(store.database), join(dir, 'snapshots'));
  teardowns = new Teardowns(records, { images, networks }, { driver: host, volumes: undefined, log });
});
afterEach(async () => {
  for (const id of host.started) host.finish(id);
  await teardowns.close(1000);
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function machine(status: MachineState): MachineRecord {
  const now = Date.now();
  const m: MachineRecord = {
    id: newId('machine'),
    execution_id: newId('execution'),
    status,
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
    expires_at: now + 300_000,
    created_at: now,
    started_at: now,
    updated_at: now,
    paused_at: null,
    transition_deadline: null,
    network: { egress: { mode: 'allow_all', allow_cidrs: [], deny_cidrs: [], locked: false } },
    net_index: null,
    template_id: null,
    warm_pool_id: null,
    warm_pool_checkout: null,
    tenant: null,
  };
  store.insert(m);
  return m;
}

/** A killed machine whose teardown has started on the host and not finished. */
async function tearingDown(): Promise<MachineRecord> {
  const m = machine('killed');
  void teardowns.enqueue(m);
  await host.untilStarted(m.id);
  return m;
}

const capacity = (max: number, o: { waitMs?: number; stallMs?: number } = {}) =>
  new MachineCapacity({
    max,
    live: () => store.countInStates(LIVE_STATES),
    teardowns,
    waitMs: o.waitMs ?? 60_000,
    stallMs: o.stallMs ?? 60_000,
  });

const exhausted = (e: unknown) =>
  e instanceof CodedError &&
  e.code === 'resource_exhausted' &&
  (e.details as { max_machines?: number } | undefined)?.max_machines !== undefined;

describe('MachineCapacity', () => {
  it('counts killed machines whose teardown is not done, until it is', async () => {
    machine('running');
    const a = await tearingDown();
    await tearingDown();
    const c = capacity(3);
    assert.equal(teardowns.holding(), 2);
    assert.throws(() => c.check(1), exhausted);
    assert.throws(() => c.check(1), /2 killed ones are still being torn down/);
    const done = teardowns.until((m) => m.id === a.id);
    host.finish(a.id);
    await done;
    assert.equal(teardowns.holding(), 1);
    c.check(1);
    assert.throws(() => c.check(2), exhausted);
  });

  /** What a create admits: a machine stored running (so it counts as live at once). */
  const store1 = () => machine('running');

  it('lets a create wait for a teardown when only teardowns stand in its way', async () => {
    machine('running');
    const a = await tearingDown();
    const c = capacity(2);
    assert.throws(() => c.check(1), exhausted);
    let admitted = false;
    const room = c.admit(1, store1).then(() => {
      admitted = true;
    });
    // Nothing has finished: it still waits (a turn of the event loop later).
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(admitted, false);
    host.finish(a.id);
    await room;
    assert.equal(store.countInStates(LIVE_STATES), 2);
  });

  it('admits one waiting create per finished teardown; the others wait on, none is refused', async () => {
    machine('running');
    const a = await tearingDown();
    const b = await tearingDown();
    // The stall ends the last waiter once nothing is left to finish (500 ms without progress).
    const c = capacity(3, { stallMs: 500 });
    const outcome: string[] = ['waiting', 'waiting', 'waiting'];
    const waiters = [0, 1, 2].map((n) =>
      c.admit(1, store1).then(
        () => {
          outcome[n] = 'admitted';
        },
        (e: unknown) => {
          outcome[n] = exhausted(e) ? 'refused' : String(e);
        },
      ),
    );
    const turns = async () => {
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    };
    await turns();
    assert.deepEqual(outcome, ['waiting', 'waiting', 'waiting']);
    // One place is freed: every waiter wakes, exactly one takes it and the others wait on.
    host.finish(a.id);
    await teardowns.until((m) => m.id === a.id);
    await turns();
    assert.equal(outcome.filter((o) => o === 'admitted').length, 1);
    assert.equal(outcome.filter((o) => o === 'waiting').length, 2);
    host.finish(b.id);
    await teardowns.until((m) => m.id === b.id);
    await turns();
    assert.equal(outcome.filter((o) => o === 'admitted').length, 2);
    assert.equal(store.countInStates(LIVE_STATES), 3);
    await Promise.all(waiters);
    assert.deepEqual(
      outcome.filter((o) => o !== 'admitted'),
      ['refused'],
    );
  });

  it('does not wait when live machines fill the capacity', async () => {
    machine('running');
    machine('paused');
    await tearingDown();
    // With a wait of 60 s, only refusing at once lets this test end in time.
    await assert.rejects(capacity(2).admit(1, store1), exhausted);
  });

  it('answers resource_exhausted when no teardown finishes within the wait', async () => {
    machine('running');
    await tearingDown();
    await assert.rejects(capacity(2, { waitMs: 20 }).admit(1, store1), exhausted);
  });

  it('stops waiting when the teardowns stall, long before the whole wait', async () => {
    machine('running');
    await tearingDown();
    // With a wait of 60 s, only the stall (no teardown finished for 20 ms) lets this end in time.
    await assert.rejects(capacity(2, { stallMs: 20 }).admit(1, store1), exhausted);
  });

  it('keeps waiting while teardowns progress, one after another', async () => {
    machine('running');
    const a = await tearingDown();
    const b = await tearingDown();
    const c = capacity(2);
    const room = c.admit(1, store1);
    host.finish(a.id);
    await teardowns.until((m) => m.id === a.id);
    // One gone, one still there: the create is still kept out, and still waits.
    assert.throws(() => c.check(1), exhausted);
    host.finish(b.id);
    await room;
    assert.equal(store.countInStates(LIVE_STATES), 2);
  });

  it('counts a given-up teardown: its machine still holds the host resources', async () => {
    const failing = new Teardowns(
      records,
      {
        images: new SnapshotImages(new SnapshotStore(store.database), join(dir, 'snapshots')),
        networks: new MachineNetworks(records, {
          driver: host,
          addressPool: parsePool('10.213.0.0/16'),
          machinesDir: join(dir, 'machines'),
          claimsDir: join(dir, 'claims'),
          log: new Logger('error'),
        }),
      },
      {
        driver: {
          destroy: async () => {
            throw new Error('the host said no');
          },
        },
        volumes: undefined,
        log: new Logger('error'),
        retryDelaysMs: [],
      },
    );
    await failing.enqueue(machine('killed'));
    assert.equal(failing.stats().failed, 1);
    assert.equal(failing.holding(), 1);
    const c = new MachineCapacity({
      max: 1,
      live: () => store.countInStates(LIVE_STATES),
      teardowns: failing,
    });
    assert.throws(() => c.check(1), exhausted);
    await failing.close(0);
  });
});
