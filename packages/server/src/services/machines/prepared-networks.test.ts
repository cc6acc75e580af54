/**
 * Networks made ahead (PreparedNetworks): each entry gets its own id and address block (claimed
 * host-wide, in a claims directory of the test's), is taken once, a made one before one being
 * made; a failed one gives its block up and is never taken; close removes what nobody took and
 * waits for what is being made. Real records and address claims; the driver is a fake whose
 * preparations finish when the test says so.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DriverNetwork, type MachineDriver, parsePool } from '@nullspace/runtime';
import { EventLog } from '../../events/event-log.js';
import { Logger } from '../../log.js';
import { MachineStore } from '../../store/machine-store.js';
import { MachineNetworks } from './machine-networks.js';
import { MachineRecords } from './machine-records.js';
import { PreparedNetworks } from './prepared-networks.js';

/** A driver whose preparations end when the test resolves or rejects them. */
class FakeHost implements Pick<MachineDriver, 'prepareNetwork' | 'destroy' | 'setEgress' | 'blockEgress'> {
  readonly prepared: { id: string; network: DriverNetwork; done: (err?: Error) => void }[] = [];
  readonly destroyed: string[] = [];

  prepareNetwork(id: string, network: DriverNetwork): Promise<void> {
    return new Promise((resolve, reject) => {
      this.prepared.push({ id, network, done: (err) => (err ? reject(err) : resolve()) });
    });
  }
  async destroy(id: string): Promise<void> {
    this.destroyed.push(id);
  }
  async setEgress(): Promise<void> {}
  async blockEgress(): Promise<void> {}
}

let store: MachineStore;
let dir: string;
let host: FakeHost;
let networks: MachineNetworks;
const claims = () => readdirSync(join(dir, 'claims')).filter((f) => !f.endsWith('.lock'));
/** Lets the fake's settled promises reach the pool. */
const settle = () => sleep(0);

beforeEach(() => {
  store = new MachineStore(':memory:');
  dir = mkdtempSync(join(tmpdir(), 'ns-prepared-'));
  host = new FakeHost();
  networks = new MachineNetworks(new MachineRecords(store, new EventLog(store.database)), {
    driver: host,
    // A pool no server uses: no host interface of it exists.
    addressPool: parsePool('172.31.250.0/24'),
    machinesDir: join(dir, 'machines'),
    claimsDir: join(dir, 'claims'),
    dnsPort: 5300,
    log: new Logger('error'),
  });
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('PreparedNetworks', () => {
  it('makes `size` entries with ids and blocks of their own, each taken once, made ones first', async () => {
    const pool = new PreparedNetworks(networks, { size: 2, driver: host, log: new Logger('error') });
    assert.equal(host.prepared.length, 0, 'nothing before start (re-adoption first)');
    pool.start();
    assert.equal(host.prepared.length, 2);
    const [a, b] = host.prepared;
    assert.ok(a && b);
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.network.link.machineAddr, b.network.link.machineAddr);
    assert.equal(a.network.link.dnsPort, 5300);
    assert.equal(a.network.egress.mode, 'allow_all', 'made with the default policy');
    assert.equal(claims().length, 2, 'both blocks claimed host-wide');
    assert.equal(pool.take(), undefined, 'none made yet');
    b.done();
    await settle();
    assert.equal(pool.take()?.id, b.id, 'the made one');
    assert.equal(pool.take(), undefined);
    const beingMade = pool.take({ orBeingMade: true });
    assert.equal(beingMade?.id, a.id, 'no block left elsewhere: one being made');
    assert.equal(pool.take({ orBeingMade: true }), undefined, 'each once');
    assert.equal(host.prepared.length, 2, 'not made again at once');
    await sleep(700);
    assert.equal(host.prepared.length, 4, 'made again after a pause in takes');
    assert.equal(new Set(host.prepared.map((p) => p.id)).size, 4);
    // A taken entry that then fails keeps its block: its machine's record holds it.
    a.done(new Error('nft failed'));
    await settle();
    assert.equal(claims().length, 4);
    for (const p of host.prepared.slice(2)) p.done();
    await pool.close();
  });

  it('a failed entry gives its block up and is never taken; close removes what nobody took', async () => {
    const pool = new PreparedNetworks(networks, { size: 2, driver: host, log: new Logger('error') });
    pool.start();
    const [a, b] = host.prepared;
    assert.ok(a && b);
    a.done(new Error('ip: RTNETLINK answers: File exists'));
    b.done();
    await settle();
    assert.equal(pool.count, 1);
    assert.equal(claims().length, 1, "the failed one's block given up");
    assert.equal(pool.take({ orBeingMade: true })?.id, b.id);
    assert.equal(pool.take({ orBeingMade: true }), undefined);
    // After a failure none is made for a while, takes or not.
    await sleep(700);
    assert.equal(host.prepared.length, 2);
    await pool.close();
    assert.deepEqual(host.destroyed, [], 'the taken one is its machine’s');
  });

  it('close waits for entries being made and removes every one nobody took', async () => {
    const pool = new PreparedNetworks(networks, { size: 3, driver: host, log: new Logger('error') });
    pool.start();
    const [a, b, c] = host.prepared;
    assert.ok(a && b && c);
    a.done();
    await settle();
    const closed = pool.close();
    b.done();
    c.done(new Error('failed'));
    await closed;
    assert.deepEqual(host.destroyed.sort(), [a.id, b.id].sort());
    assert.deepEqual(claims(), [], 'every block given up');
    assert.equal(pool.take({ orBeingMade: true }), undefined);
  });

  it('size 0 makes none', () => {
    const pool = new PreparedNetworks(networks, { size: 0, driver: host, log: new Logger('error') });
    pool.start();
    assert.equal(host.prepared.length, 0);
    assert.equal(pool.take({ orBeingMade: true }), undefined);
  });
});
