/**
 * The lifecycle event log over an in-memory database: ids only grow, a subscriber sees each event
 * as it is appended, and retention removes a prefix whose end is remembered (replays from before
 * it are expired). Purges are given their clock, so nothing here waits.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { LifecycleEvent } from '@nullspace/protocol';
import { MachineStore } from '../store/machine-store.js';
import { EventLog, type NewLifecycleEvent } from './event-log.js';

const RETENTION_MS = 60_000;
let store: MachineStore;
let log: EventLog;
beforeEach(() => {
  store = new MachineStore(':memory:');
  log = new EventLog(store.database, RETENTION_MS);
});
afterEach(() => {
  log.close();
  store.close();
});

const event = (machine_id: string, over: Partial<NewLifecycleEvent> = {}): NewLifecycleEvent => ({
  machine_id,
  execution_id: 'exe_1',
  type: 'status_changed',
  status: 'running',
  ...over,
});

describe('EventLog', () => {
  it('appends with growing ids and reads a machine’s events after an id, oldest first', () => {
    assert.equal(log.highWater(), 0);
    const a1 = log.append(
      event('mch_a', { type: 'created', status: 'starting', data: { template: 'base' } }),
    );
    const b1 = log.append(event('mch_b'));
    const a2 = log.append(event('mch_a', { previous_status: 'starting', reason: 'because' }));
    assert.ok(a1.id < b1.id && b1.id < a2.id);
    assert.deepEqual(
      log.after('mch_a', 0, 100).map((e) => e.id),
      [a1.id, a2.id],
    );
    assert.deepEqual(log.after('mch_a', a1.id, 100), [a2]);
    assert.deepEqual(log.after('mch_a', 0, 1), [a1]);
    assert.deepEqual(a1.data, { template: 'base' });
    assert.equal(a1.previous_status, null);
    assert.equal(a2.reason, 'because');
    assert.ok(!Number.isNaN(Date.parse(a1.at)));
    assert.equal(log.highWater(), a2.id);
    assert.equal(log.oldestId('mch_a'), a1.id);
    assert.equal(log.oldestId('mch_none'), null);
  });

  it('subscribers see their machine’s events during append, and nothing after unsubscribing', () => {
    const seen: LifecycleEvent[] = [];
    const unsubscribe = log.subscribe('mch_a', (e) => seen.push(e));
    log.subscribe('mch_a', () => {
      throw new Error('a failing subscriber');
    });
    const e1 = log.append(event('mch_a'));
    assert.deepEqual(seen, [e1]);
    log.append(event('mch_b'));
    unsubscribe();
    log.append(event('mch_a'));
    assert.deepEqual(seen, [e1]);
  });

  it('retention removes old events and remembers where: replays from before it are expired', () => {
    const old = [log.append(event('mch_a')), log.append(event('mch_b')), log.append(event('mch_a'))];
    const newest = old[2] as LifecycleEvent;
    assert.equal(log.purge(Date.now()), 0);
    assert.equal(log.isExpired(0), false);
    assert.equal(log.purge(Date.now() + RETENTION_MS + 1000), 3);
    assert.deepEqual(log.after('mch_a', 0, 100), []);
    assert.equal(log.purgedThrough(), newest.id);
    assert.equal(log.isExpired(0), true);
    assert.equal(log.isExpired(newest.id - 1), true);
    assert.equal(log.isExpired(newest.id), false);
    // Ids go on from where they were; the high water mark does not fall back.
    assert.equal(log.highWater(), newest.id);
    const next = log.append(event('mch_a'));
    assert.ok(next.id > newest.id);
    assert.equal(log.oldestId('mch_a'), next.id);
  });

  it('the watermark survives a new log over the same database (a server restart)', () => {
    log.append(event('mch_a'));
    const last = log.append(event('mch_a'));
    log.purge(Date.now() + RETENTION_MS + 1000);
    log.close();
    log = new EventLog(store.database, RETENTION_MS);
    assert.equal(log.purgedThrough(), last.id);
    assert.equal(log.highWater(), last.id);
  });
});
