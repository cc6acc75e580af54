import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError } from '@nullspace/protocol';
import { requestUrl } from './api-server.js';

describe('requestUrl', () => {
  it('reads an origin-form target as a path, however it starts', () => {
    // `new URL('//', base)` throws (an empty host): before requestUrl, `GET //` ended the server.
    for (const [raw, path] of [
      ['//', '//'],
      ['///', '///'],
      ['//[', '//['],
      ['//x/../y', '//y'],
      ['/\\\\', '///'],
      ['/v1/machines?limit=1', '/v1/machines'],
    ] as const) {
      const url = requestUrl(raw);
      assert.ok(url instanceof URL, raw);
      assert.equal(url.pathname, path, raw);
      assert.equal(url.host, 'localhost', raw);
    }
  });

  it('gives the sandboxes alias to API paths only', () => {
    assert.equal((requestUrl('/v1/sandboxes/mch_x') as URL).pathname, '/v1/machines/mch_x');
    assert.equal((requestUrl('/v1/sandboxes/mch_x', false) as URL).pathname, '/v1/sandboxes/mch_x');
  });

  it('parses an absolute-form target as it is', () => {
    const url = requestUrl('http://example.test/v1/machines?limit=2');
    assert.ok(url instanceof URL);
    assert.equal(url.pathname, '/v1/machines');
    assert.equal(url.searchParams.get('limit'), '2');
  });

  it('answers invalid_argument for a target that is not a path, never a throw', () => {
    for (const raw of ['*', 'example.test:443', 'http://[', 'http://a b/']) {
      const err = requestUrl(raw);
      assert.ok(err instanceof CodedError, raw);
      assert.equal(err.code, 'invalid_argument');
      assert.equal(err.details?.field, 'path');
    }
  });
});
