/** Error codes and their HTTP statuses (one each), and the shape of a coded error. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError, ERROR_STATUS, type ErrorCode, invalidArgument, isErrorCode, statusOf } from './index.js';

describe('error codes', () => {
  it('every code maps to its documented status', () => {
    const expected: Record<ErrorCode, number> = {
      invalid_argument: 400,
      desktop_unavailable: 400,
      unauthenticated: 401,
      permission_denied: 403,
      not_found: 404,
      machine_not_found: 404,
      snapshot_not_found: 404,
      template_not_found: 404,
      volume_not_found: 404,
      method_not_allowed: 405,
      conflict: 409,
      machine_transitioning: 409,
      invalid_state: 409,
      warm_pool_unavailable: 409,
      events_expired: 410,
      payload_too_large: 413,
      git_error: 422,
      install_failed: 422,
      resource_exhausted: 429,
      internal: 500,
      checkpoint_failed: 500,
      restore_failed: 500,
      unavailable: 503,
      timeout: 504,
      disk_full: 507,
    };
    assert.deepEqual({ ...ERROR_STATUS }, expected);
    for (const [code, status] of Object.entries(expected)) assert.equal(statusOf(code as ErrorCode), status);
  });

  it('every status is an HTTP error status: 4xx for the caller, 5xx for the server', () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      assert.ok(status >= 400 && status < 600, code);
      assert.equal(
        status >= 500,
        ['internal', 'checkpoint_failed', 'restore_failed', 'unavailable', 'timeout', 'disk_full'].includes(
          code,
        ),
        code,
      );
    }
  });

  it('isErrorCode knows the codes and nothing else, not even inherited names', () => {
    for (const code of Object.keys(ERROR_STATUS)) assert.equal(isErrorCode(code), true);
    for (const other of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'INTERNAL', '', 404, null])
      assert.equal(isErrorCode(other), false, String(other));
  });
});

describe('CodedError', () => {
  it('carries code, status, details and cause', () => {
    const cause = new Error('ENOSPC');
    const err = new CodedError('disk_full', 'no space left', { machine_id: 'mch_x' }, { cause });
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'disk_full');
    assert.equal(err.status, 507);
    assert.deepEqual(err.details, { machine_id: 'mch_x' });
    assert.equal(err.cause, cause);
    assert.equal(err.message, 'no space left');
    assert.equal(new CodedError('conflict', 'x').details, undefined);
  });

  it('invalidArgument is a 400 naming the field, in details and in the message', () => {
    const err = invalidArgument('volumes[0].mount_path', 'must be an absolute path');
    assert.equal(err.code, 'invalid_argument');
    assert.equal(err.status, 400);
    assert.deepEqual(err.details, { field: 'volumes[0].mount_path' });
    assert.match(err.message, /volumes\[0\]\.mount_path/);
  });
});
