/**
 * The OpenAPI document: the checked-in `docs/openapi.json` is what the code generates
 * (`npm run openapi` rewrites it), and it documents exactly the routes of the table. That a
 * server routes every documented operation is checked against a real one in test/openapi.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { ROUTES, openApiDocument } from './index.js';

type Operations = Record<string, Record<string, { operationId: string; 'x-error-codes': string[] }>>;

it('docs/openapi.json is what the code generates (npm run openapi rewrites it)', () => {
  const checkedIn = readFileSync(new URL('../../../docs/openapi.json', import.meta.url), 'utf8');
  assert.equal(checkedIn, `${JSON.stringify(openApiDocument(), null, 2)}\n`, 'run `npm run openapi`');
});

it('documents every route of the table once, and nothing else, with its error codes', () => {
  const doc = openApiDocument() as { openapi: string; paths: Operations };
  assert.equal(doc.openapi, '3.1.0');
  const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => `${method.toUpperCase()} ${path} ${op.operationId}`),
  );
  const table = Object.entries(ROUTES).map(([id, r]) => `${r.method} ${r.path} ${id}`);
  assert.deepEqual(documented.sort(), table.sort());
  const create = doc.paths['/v1/machines']?.post;
  assert.ok(create?.['x-error-codes'].includes('template_not_found'));
  assert.ok(create?.['x-error-codes'].includes('unauthenticated'));
  assert.ok(!doc.paths['/v1/openapi.json']?.get?.['x-error-codes'].includes('unauthenticated'), 'public');
});
