/** The young-generation collections a relay asks for (young-gc.ts), seen through V8's own GC events. */
import assert from 'node:assert/strict';
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { it } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import vm from 'node:vm';
import { RelayedBytes, scavenge } from './young-gc.js';

/** The kinds of the collections V8 reports while `fn` runs (entries arrive after a turn). */
async function collectionsDuring(fn: () => void): Promise<number[]> {
  const kinds: number[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[])
      if (e.detail?.kind !== undefined) kinds.push(e.detail.kind);
  });
  obs.observe({ entryTypes: ['gc'] });
  try {
    fn();
    for (let i = 0; i < 5; i++) await turn();
  } finally {
    obs.disconnect();
  }
  return kinds;
}

it('scavenge() runs a young-generation collection, and leaves no gc global behind', async () => {
  const kinds = await collectionsDuring(() => scavenge());
  assert.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR), `collections seen: ${kinds.join(', ')}`);
  assert.ok(!kinds.includes(constants.NODE_PERFORMANCE_GC_MAJOR), 'no full collection is asked for');
  assert.equal(vm.runInNewContext('typeof gc'), 'undefined');
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
});

it('RelayedBytes collects once per threshold crossed, not per piece', async () => {
  const relay = new RelayedBytes(1000);
  const below = await collectionsDuring(() => {
    for (let i = 0; i < 9; i++) relay.add(100); // 900: under the threshold
  });
  assert.ok(!below.includes(constants.NODE_PERFORMANCE_GC_MINOR), `collections seen: ${below.join(', ')}`);
  const crossed = await collectionsDuring(() => relay.add(100));
  assert.equal(crossed.filter((k) => k === constants.NODE_PERFORMANCE_GC_MINOR).length, 1);
  const after = await collectionsDuring(() => relay.add(999));
  assert.ok(!after.includes(constants.NODE_PERFORMANCE_GC_MINOR), 'the count starts again after one');
});
