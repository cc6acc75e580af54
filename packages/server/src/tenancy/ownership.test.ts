/** The route table against the tenancy check: every route's path ids are classified. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ROUTES, type RouteId, type RouteSpec, Type } from '@nullspace/protocol';
import { ownedParams } from './ownership.js';

describe('ownedParams', () => {
  it('every route of the API key that has path parameters names an owned resource in them', () => {
    for (const id of Object.keys(ROUTES) as RouteId[]) {
      const spec: RouteSpec = ROUTES[id];
      const owned = ownedParams(id);
      const auth = spec.auth ?? 'key';
      if (auth === 'key' && spec.params) assert.ok(owned.length > 0, id);
    }
  });

  it('machine routes are checked on {id}, snapshots, volumes, templates and pools on theirs', () => {
    assert.deepEqual(ownedParams('getMachine'), [{ name: 'id', kind: 'machine' }]);
    assert.deepEqual(ownedParams('detachVolume'), [{ name: 'id', kind: 'machine' }]);
    assert.deepEqual(ownedParams('getSnapshot'), [{ name: 'id', kind: 'snapshot' }]);
    assert.deepEqual(ownedParams('getVolume'), [{ name: 'vol', kind: 'volume' }]);
    assert.deepEqual(ownedParams('deleteTemplate'), [{ name: 'ref', kind: 'template' }]);
    assert.deepEqual(ownedParams('getWarmPool'), [{ name: 'id', kind: 'warm_pool' }]);
    assert.deepEqual(ownedParams('listMachines'), []);
  });

  it('a route whose path ids name nothing owned is refused (it would go unchecked)', () => {
    const spec = {
      method: 'GET',
      path: '/v1/gadgets/{gid}',
      tag: 'x',
      summary: 'x',
      params: { gid: Type.String() },
      errors: [],
    } as const satisfies RouteSpec;
    assert.throws(() => ownedParams('getMachine', spec), /none names an owned resource/);
    // The operator's own routes (keys) and signed ones carry their own permission.
    assert.deepEqual(ownedParams('getMachine', { ...spec, auth: 'operator' }), []);
  });
});
