/** The router: route ids of the table to handlers, `{param}` segments, 404 versus 405. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError, type ErrorCode, ROUTES, type RouteId } from '@nullspace/protocol';
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
    .on('listMachines', handler('list'))
    .on('createMachine', handler('create'))
    .on('getMachine', handler('get'))
    .on('killMachine', handler('kill'))
    .on('commandLogs', handler('logs'));

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

  it('knows only the routes of the table, each once, and lists those without a handler', () => {
    assert.throws(() => router.on('listMachines', handler('again')), /has a handler already/);
    const missing = router.missing();
    assert.equal(missing.length, Object.keys(ROUTES).length - 5);
    for (const id of [
      'listMachines',
      'createMachine',
      'getMachine',
      'killMachine',
      'commandLogs',
    ] as RouteId[])
      assert.ok(!missing.includes(id), id);
    assert.deepEqual(router.known(), [
      'GET /v1/machines',
      'POST /v1/machines',
      'GET /v1/machines/{id}',
      'DELETE /v1/machines/{id}',
      'GET /v1/machines/{id}/commands/{pid}/logs',
    ]);
  });

  it("says each route's authentication, from the table", () => {
    const r = new Router()
      .on('openapi', handler('doc'))
      .on('signedRead', handler('signed'))
      .on('getMachine', handler('get'));
    assert.equal(r.find('GET', '/v1/openapi.json').route?.spec.auth, 'none');
    assert.equal(r.find('GET', '/v1/signed/files/mch_a').route?.spec.auth, 'signed');
    assert.equal(r.find('GET', '/v1/machines/mch_a').route?.spec.auth, undefined);
    assert.deepEqual(r.find('PUT', '/v1/openapi.json'), { route: undefined, error: 'method_not_allowed' });
  });
});
