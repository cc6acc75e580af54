/** The optional `{timeout}` body of connect and resume. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError } from '@nullspace/protocol';
import { parseResumeTimeout } from './machine-routes.js';

function invalid(body: unknown, field: string): void {
  assert.throws(
    () => parseResumeTimeout(body),
    (err: unknown) =>
      err instanceof CodedError && err.code === 'invalid_argument' && err.details?.field === field,
  );
}

describe('parseResumeTimeout', () => {
  it('absent means the machine keeps its timeout; else 1 s to 7 days', () => {
    assert.equal(parseResumeTimeout(undefined), undefined);
    assert.equal(parseResumeTimeout({}), undefined);
    assert.equal(parseResumeTimeout({ timeout: 1 }), 1);
    assert.equal(parseResumeTimeout({ timeout: 604800 }), 604800);
    for (const bad of [0, 604801, 2.5, '60']) invalid({ timeout: bad }, 'timeout');
    invalid({ timeout: 60, on_timeout: 'pause' }, 'on_timeout');
    invalid([], 'body');
  });
});
