/** Query parameters of the lifecycle event routes, as values for the protocol's validators. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError } from '@nullspace/protocol';
import { queryValues } from './event-routes.js';

const q = (s: string) =>
  queryValues(new URLSearchParams(s), ['after_event_id', 'limit', 'wait_ms', 'live_only']);

function invalid(s: string, field: string): void {
  assert.throws(
    () => q(s),
    (err: unknown) =>
      err instanceof CodedError && err.code === 'invalid_argument' && err.details?.field === field,
    s,
  );
}

describe('queryValues', () => {
  it('integers as numbers, live_only as a boolean', () => {
    assert.deepEqual(q('after_event_id=12&limit=5&wait_ms=0'), { after_event_id: 12, limit: 5, wait_ms: 0 });
    for (const [v, b] of [
      ['true', true],
      ['1', true],
      ['false', false],
      ['0', false],
    ] as const)
      assert.deepEqual(q(`live_only=${v}`), { live_only: b });
    assert.deepEqual(q(''), {});
  });

  it('refuses unknown and repeated parameters, signs, fractions and other booleans', () => {
    invalid('after=1', 'after');
    invalid('limit=1&limit=2', 'limit');
    invalid('limit=-1', 'limit');
    invalid('wait_ms=1.5', 'wait_ms');
    invalid('after_event_id=', 'after_event_id');
    invalid('live_only=yes', 'live_only');
    invalid('live_only=', 'live_only');
  });
});
