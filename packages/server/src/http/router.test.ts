/** The router: method and path to a handler, `{param}` segments, 404 versus 405. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError, type ErrorCode } from '@nullspace/protocol';
import { type Handler, Router } from './router.js';

const names = new Map<Handler, string>();
function handler(name: string): Handler {
  const h: Handler = async () => ({ body: name });
  names.set(h, name);
  return h;
}

/** The name of the handler a request goes to. */
function routeName(router: Router, method: string, path: string): string | undefined {
  return names.get(router.match(method, path).handler);
}

function refused(fn: () => unknown, code: ErrorCode, field?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CodedError);
    assert.equal(err.code, code);
    if (field !== undefined) assert.equal(err.details?.field, field);
    return true;
  });
}

describe('Router', () => {
  const router = new Router()
    .add('GET', '/v1/machines', handler('list'))
    .add('POST', '/v1/machines', handler('create'))
    .add('GET', '/v1/machines/{id}', handler('get'))
    .add('DELETE', '/v1/machines/{id}', handler('kill'))
    .add('GET', '/v1/machines/{id}/commands/{pid}/logs', handler('logs'));

  it('picks the handler by method and path', () => {
    assert.equal(routeName(router, 'GET', '/v1/machines'), 'list');
    assert.equal(routeName(router, 'POST', '/v1/machines'), 'create');
    assert.equal(routeName(router, 'DELETE', '/v1/machines/mch_a'), 'kill');
    assert.equal(routeName(router, 'GET', '/v1/machines/mch_a/commands/12/logs'), 'logs');
  });

  it('gives the params, percent-decoded', () => {
    assert.deepEqual(router.match('GET', '/v1/machines/mch_a/commands/web%2F1/logs').params, {
      id: 'mch_a',
      pid: 'web/1',
    });
    assert.deepEqual(router.match('GET', '/v1/machines/a%20b').params, { id: 'a b' });
  });

  it('bad percent-encoding in a param is invalid_argument naming it', () => {
    refused(() => router.match('GET', '/v1/machines/%E0%A4%A'), 'invalid_argument', 'id');
    refused(() => router.match('GET', '/v1/machines/mch_a/commands/%ZZ/logs'), 'invalid_argument', 'pid');
  });

  it('a known path with another method is method_not_allowed; an unknown path is not_found', () => {
    refused(() => router.match('PUT', '/v1/machines'), 'method_not_allowed');
    refused(() => router.match('POST', '/v1/machines/mch_a'), 'method_not_allowed');
    refused(() => router.match('GET', '/v1/machine'), 'not_found');
    refused(() => router.match('GET', '/v1/machines/'), 'not_found');
    refused(() => router.match('GET', '/v1/machines/mch_a/'), 'not_found');
    refused(() => router.match('GET', '/v1/machines/mch_a/extra'), 'not_found');
    refused(() => router.match('GET', '/V1/MACHINES'), 'not_found');
  });

  it('a param is one whole segment', () => {
    refused(() => router.match('DELETE', '/v1/machines/a/b'), 'not_found');
    refused(() => router.match('GET', '/v1/machines/mch_a/commands//logs'), 'not_found');
  });

  it('the first route added wins when two match', () => {
    const r = new Router()
      .add('GET', '/v1/x/{id}', handler('param'))
      .add('GET', '/v1/x/special', handler('fixed'));
    assert.equal(routeName(r, 'GET', '/v1/x/special'), 'param');
  });
});
