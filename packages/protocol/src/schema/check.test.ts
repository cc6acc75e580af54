/**
 * The validator's reading of a schema: null is absent, a field the schema does not name is an
 * error, and every error names the field by its path.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CreateMachineBodySchema, LogsQuerySchema, ROUTES, type RouteSpec } from '../index.js';
import { assertInvalid } from '../test-support.js';
import { check, queryValues } from './check.js';
import { Type } from './kit.js';

describe('check', () => {
  it('drops null fields (null is the same as leaving a field out)', () => {
    assert.deepEqual(check(CreateMachineBodySchema, { vcpus: null, template: 'base' }), { template: 'base' });
  });

  it('names the field by its path: nested objects, arrays, map keys, the body itself', () => {
    assertInvalid(() => check(CreateMachineBodySchema, { vcpu: 2 }), 'vcpu', /unknown field/);
    assertInvalid(
      () => check(CreateMachineBodySchema, { network: { egress: { mode: 'custom', allow: [] } } }),
      'network.egress.allow',
    );
    assertInvalid(
      () => check(CreateMachineBodySchema, { volumes: [{ volume: 'v' }] }),
      'volumes[0].mount_path',
    );
    assertInvalid(
      () => check(CreateMachineBodySchema, { metadata: { 'no spaces': 'x' } }),
      'metadata.no spaces',
    );
    assertInvalid(() => check(CreateMachineBodySchema, { envs: { OK: 1 } }), 'envs.OK', /must be a string/);
    assertInvalid(() => check(CreateMachineBodySchema, { desktop: 'yes' }), 'desktop');
    assertInvalid(() => check(CreateMachineBodySchema, 'a string'), 'body', /JSON object/);
  });

  it('says what is wrong in words: limits, choices, patterns', () => {
    assertInvalid(() => check(CreateMachineBodySchema, { vcpus: 0 }), 'vcpus', /between 1 and 64/);
    assertInvalid(
      () => check(CreateMachineBodySchema, { on_timeout: 'x' }),
      'on_timeout',
      /one of kill, pause/,
    );
    assertInvalid(() => check(CreateMachineBodySchema, { cwd: 'rel' }), 'cwd', /absolute path/);
    assertInvalid(() => check(Type.String({ maxLength: 2 }), 'abc', 'x'), 'x', /at most 2 characters/);
    assertInvalid(() => check(Type.String(), 'a\0b', 'x'), 'x', /NUL/);
  });

  it('every JSON request body of the route table refuses a field it does not name', () => {
    let bodies = 0;
    for (const [id, route] of Object.entries(ROUTES) as [string, RouteSpec][]) {
      if (route.body === undefined) continue;
      const body = route.body;
      assertInvalid(() => check(body, { route_probe: 1 }), 'route_probe');
      bodies++;
      assert.ok(id);
    }
    assert.ok(bodies >= 30, `only ${bodies} bodies`);
  });
});

describe('queryValues', () => {
  it('reads integers and booleans from their text, refuses unknown and repeated keys', () => {
    assert.deepEqual(check(LogsQuerySchema, queryValues(new URLSearchParams('offset=5'), LogsQuerySchema)), {
      offset: 5,
    });
    assertInvalid(() => queryValues(new URLSearchParams('offset=-1'), LogsQuerySchema), 'offset');
    assertInvalid(() => queryValues(new URLSearchParams('colour=blue'), LogsQuerySchema), 'colour');
    assertInvalid(() => queryValues(new URLSearchParams('offset=1&offset=2'), LogsQuerySchema), 'offset');
  });
});
