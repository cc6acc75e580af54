/**
 * The contract's OpenAPI document on a real server: served without a key, and every documented
 * operation routed (none answers "no route"). That the checked-in docs/openapi.json is current
 * and documents exactly the route table is a unit test (packages/protocol/src/openapi.test.ts).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ROUTES, openApiDocument } from '@nullspace/protocol';
import { describeWithServer } from './harness.js';

type Operations = Record<
  string,
  Record<string, { operationId: string; parameters?: { name: string; in: string }[] }>
>;

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
