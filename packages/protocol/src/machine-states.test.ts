/** The machine states and the groups both the server and its clients reason with. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KEPT_STATES, LIVE_STATES, MACHINE_STATES, TRANSITIONAL_STATES } from './index.js';

describe('machine state groups', () => {
  it('the ten states of the contract, each once', () => {
    assert.deepEqual([...MACHINE_STATES].sort(), [
      'failed',
      'hibernated',
      'hibernating',
      'killed',
      'killing',
      'paused',
      'pausing',
      'resuming',
      'running',
      'starting',
    ]);
  });

  it('live: every state that holds runtime resources; not hibernated, killed or failed', () => {
    assert.deepEqual(
      MACHINE_STATES.filter((s) => !LIVE_STATES.includes(s)),
      ['hibernated', 'killed', 'failed'],
    );
  });

  it('kept: the live states and hibernated (a hibernated machine still holds its address and volumes)', () => {
    assert.deepEqual(new Set(KEPT_STATES), new Set([...LIVE_STATES, 'hibernated']));
    assert.ok(!KEPT_STATES.includes('killed'));
    assert.ok(!KEPT_STATES.includes('failed'));
  });

  it('transitional: the -ing states, all of them live', () => {
    assert.deepEqual(
      [...TRANSITIONAL_STATES].sort(),
      MACHINE_STATES.filter((s) => s.endsWith('ing') && s !== 'running').sort(),
    );
    for (const s of TRANSITIONAL_STATES) assert.ok(LIVE_STATES.includes(s), s);
  });
});
