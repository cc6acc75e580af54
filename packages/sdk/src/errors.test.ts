/** The SDK's typed errors: one class per family of codes, mapped in one place. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_STATUS, type ErrorCode } from '@nullspace/protocol';
import {
  AuthenticationError,
  CheckpointFailedError,
  ConflictError,
  DesktopUnavailableError,
  DiskFullError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  NullspaceError,
  PermissionDeniedError,
  RateLimitError,
  RestoreFailedError,
  TimeoutError,
  UnavailableError,
  errorFromCode,
  redactPreviewToken,
  redactPreviewUrl,
} from './index.js';

const CLASS_OF: Record<ErrorCode, typeof NullspaceError> = {
  invalid_argument: InvalidArgumentError,
  desktop_unavailable: DesktopUnavailableError,
  payload_too_large: InvalidArgumentError,
  unauthenticated: AuthenticationError,
  permission_denied: PermissionDeniedError,
  not_found: NotFoundError,
  machine_not_found: NotFoundError,
  snapshot_not_found: NotFoundError,
  template_not_found: NotFoundError,
  volume_not_found: NotFoundError,
  method_not_allowed: NullspaceError,
  conflict: ConflictError,
  machine_transitioning: ConflictError,
  invalid_state: ConflictError,
  warm_pool_unavailable: ConflictError,
  resource_exhausted: RateLimitError,
  internal: InternalError,
  checkpoint_failed: CheckpointFailedError,
  restore_failed: RestoreFailedError,
  unavailable: UnavailableError,
  timeout: TimeoutError,
  disk_full: DiskFullError,
  events_expired: NullspaceError,
  git_error: NullspaceError,
  install_failed: NullspaceError,
};

describe('errorFromCode', () => {
  it('every code gets its class, its status and the class name as name', () => {
    for (const code of Object.keys(ERROR_STATUS) as ErrorCode[]) {
      const err = errorFromCode(code, `failed: ${code}`);
      assert.equal(err.constructor, CLASS_OF[code], code);
      assert.ok(err instanceof NullspaceError && err instanceof Error);
      assert.equal(err.code, code);
      assert.equal(err.status, ERROR_STATUS[code]);
      assert.equal(err.name, CLASS_OF[code].name);
      assert.equal(err.message, `failed: ${code}`);
    }
  });

  it('keeps what the response said: status, request id, details, Retry-After, cause', () => {
    const cause = new Error('socket hang up');
    const err = errorFromCode('machine_transitioning', 'machine is pausing', {
      status: 409,
      requestId: 'req_1',
      details: { machine_id: 'mch_a' },
      retryAfter: 2,
      cause,
    });
    assert.ok(err instanceof ConflictError);
    assert.deepEqual(
      [err.status, err.requestId, err.details, err.retryAfter, err.cause],
      [409, 'req_1', { machine_id: 'mch_a' }, 2, cause],
    );
    const bare = errorFromCode('internal', 'x');
    assert.deepEqual(
      [bare.requestId, bare.details, bare.retryAfter, bare.cause],
      [undefined, undefined, undefined, undefined],
    );
  });

  it('a code from a newer server: by HTTP status, the code kept in details.server_code', () => {
    const err = errorFromCode('quota_exceeded', 'over quota', { status: 429, details: { limit: 5 } });
    assert.ok(err instanceof RateLimitError);
    assert.equal(err.code, 'resource_exhausted');
    assert.deepEqual(err.details, { limit: 5, server_code: 'quota_exceeded' });
    assert.equal(err.status, 429);
  });

  it('no code at all (not a Nullspace error): by HTTP status alone', () => {
    const cases: [number, typeof NullspaceError, ErrorCode][] = [
      [400, InvalidArgumentError, 'invalid_argument'],
      [401, AuthenticationError, 'unauthenticated'],
      [403, PermissionDeniedError, 'permission_denied'],
      [404, NotFoundError, 'not_found'],
      [405, NullspaceError, 'method_not_allowed'],
      [409, ConflictError, 'conflict'],
      [413, InvalidArgumentError, 'payload_too_large'],
      [429, RateLimitError, 'resource_exhausted'],
      [502, UnavailableError, 'unavailable'],
      [503, UnavailableError, 'unavailable'],
      [504, TimeoutError, 'timeout'],
      [507, DiskFullError, 'disk_full'],
      [500, InternalError, 'internal'],
      [418, InternalError, 'internal'],
    ];
    for (const [status, cls, code] of cases) {
      const err = errorFromCode(undefined, 'x', { status });
      assert.equal(err.constructor, cls, String(status));
      assert.equal(err.code, code, String(status));
      assert.equal(err.status, status);
      assert.equal(err.details, undefined);
    }
    assert.equal(errorFromCode(undefined, 'x').code, 'internal');
  });
});

describe('preview URL redaction in the SDK', () => {
  it('as the server redacts its logs', () => {
    assert.equal(
      redactPreviewUrl('http://3000-mch_x.preview.localhost:7070/?ns_token=nspv_abcdefghijkl'),
      'http://3000-mch_x.preview.localhost:7070/?ns_token=nspv_abcd***',
    );
    assert.equal(redactPreviewToken('nspv_abcdefghijkl'), 'nspv_abcd***');
    assert.equal(redactPreviewToken('token: nspv_zz'), 'token: nspv_zz***');
  });
});
