/**
 * The contract's OpenAPI document: the checked-in `docs/openapi.json` is what the code generates
 * (`npm run openapi` rewrites it), it documents exactly the routes of the route table, and a real
 * server serves it without a key and routes every documented operation (none answers "no route").
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ROUTES, openApiDocument } from '@nullspace/protocol';
import { ROOT, describeWithServer } from './harness.js';

type Operations = Record<
  string,
  Record<string, { operationId: string; parameters?: { name: string; in: string }[] }>
>;

it('docs/openapi.json is what the code generates (npm run openapi rewrites it)', () => {
  const checkedIn = readFileSync(join(ROOT, 'docs/openapi.json'), 'utf8');
  assert.equal(checkedIn, `${JSON.stringify(openApiDocument(), null, 2)}\n`, 'run `npm run openapi`');
});

it('documents every route of the table once, and nothing else', () => {
  const doc = openApiDocument() as { paths: Operations };
  const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => `${method.toUpperCase()} ${path} ${op.operationId}`),
  );
  const table = Object.entries(ROUTES).map(([id, r]) => `${r.method} ${r.path} ${id}`);
  assert.deepEqual(documented.sort(), table.sort());
  // Every /v1 route the API has is in the table: the ones a client of the docs would look for.
  for (const path of [
    '/v1/machines',
    '/v1/machines/{id}/commands',
    '/v1/machines/{id}/files',
    '/v1/openapi.json',
  ])
    assert.ok(doc.paths[path], path);
});

describeWithServer('the served contract', (ctx) => {
  it('serves the document at GET /v1/openapi.json without an API key', async () => {
    const res = await fetch(`${ctx.server.url}/v1/openapi.json`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), openApiDocument());
  });

  it('routes every documented operation (none answers "no route" or method_not_allowed)', async () => {
    const doc = openApiDocument() as { paths: Operations };
    const values: Record<string, string> = {
      id: 'mch_aaaaaaaaaaaaaaaaaaaa',
      pid: '1',
      port: '8080',
      ref: 'no-such-template',
      wid: 'fwt_aaaaaaaaaaaaaaaaaaaa',
      vat: 'vat_aaaaaaaaaaaaaaaaaaaa',
      vol: 'no-such-volume',
      grant: 'pvg_aaaaaaaaaaaaaaaaaaaa',
    };
    const unrouted: string[] = [];
    let probed = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (op.operationId === 'openapi') continue;
        const url = ctx.server.url + path.replace(/\{(\w+)\}/g, (_, k: string) => values[k] ?? 'x');
        // A field no body has: every JSON route refuses it before doing anything, so no probe
        // creates or changes a thing; the others answer for the made-up ids in the path.
        const res = await fetch(url, {
          method: method.toUpperCase(),
          headers: { authorization: `Bearer ${ctx.server.apiKey}`, 'content-type': 'application/json' },
          ...(method === 'get' || method === 'delete' ? {} : { body: '{"route_probe": 1}' }),
        });
        const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
        probed++;
        if (body.error?.code === 'method_not_allowed' || body.error?.message?.startsWith('no route for'))
          unrouted.push(`${method.toUpperCase()} ${path}: ${body.error.message}`);
      }
    }
    assert.deepEqual(unrouted, []);
    assert.equal(probed, Object.keys(ROUTES).length - 1);
  });
});
