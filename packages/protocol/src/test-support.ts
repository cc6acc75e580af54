/**
 * Assertions the unit tests share (not exported by the package: index.ts does not re-export it).
 * They check the contract of a refusal — the code and the field an error names — never the exact
 * wording of its message.
 */
import assert from 'node:assert/strict';
import { CodedError, type ErrorCode } from './errors.js';

/** `fn` throws a CodedError with `code`, whose `details.field` is `field` (when given). */
export function assertCoded(fn: () => unknown, code: ErrorCode, field?: string, phrase?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CodedError, `expected a CodedError, got ${String(err)}`);
    assert.equal(err.code, code, `code of: ${err.message}`);
    if (field !== undefined) assert.equal(err.details?.field, field, `field of: ${err.message}`);
    if (phrase !== undefined) assert.match(err.message, phrase);
    return true;
  });
}

/** `fn` is refused with `invalid_argument` naming `field` (and, if given, saying `phrase`). */
export function assertInvalid(fn: () => unknown, field: string, phrase?: RegExp): void {
  assertCoded(fn, 'invalid_argument', field, phrase);
}
