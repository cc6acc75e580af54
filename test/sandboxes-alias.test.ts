/**
 * `/v1/sandboxes/...` is another name of `/v1/machines/...` (the product docs use both), and the
 * SDK exports `Sandbox` as `Machine`: the same routes, the same answers, the WebSocket too.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { LifecycleWsMessage, MachineInfo } from '@nullspace/protocol';
import { Machine, Sandbox } from '@nullspace/sdk';
import WebSocket from 'ws';
import { api, describeWithServer } from './harness.js';

describeWithServer('the /v1/sandboxes alias', (ctx) => {
  it('answers every machine route under /v1/sandboxes, HTTP and WebSocket', async () => {
    const { server } = ctx;
    assert.equal(Sandbox, Machine);
    const created = (await api(server, 'POST', '/v1/sandboxes', {
      metadata: { via: 'alias' },
    })) as MachineInfo;
    assert.match(created.id, /^mch_/);
    const viaMachines = (await api(server, 'GET', `/v1/machines/${created.id}`)) as MachineInfo;
    const viaSandboxes = (await api(server, 'GET', `/v1/sandboxes/${created.id}`)) as MachineInfo;
    assert.deepEqual(viaSandboxes, viaMachines);
    const listed = (await api(server, 'GET', '/v1/sandboxes?metadata.via=alias')) as { items: MachineInfo[] };
    assert.deepEqual(
      listed.items.map((m) => m.id),
      [created.id],
    );
    const run = (await api(server, 'POST', `/v1/sandboxes/${created.id}/commands`, {
      cmd: 'echo alias',
      shell: true,
    })) as { stdout: string; exit_code: number };
    assert.equal(run.stdout, 'alias\n');
    assert.equal(run.exit_code, 0);

    // The lifecycle WebSocket of docs 004: GET /v1/sandboxes/{id}/lifecycle/ws.
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/sandboxes/${created.id}/lifecycle/ws`, {
      headers: { authorization: `Bearer ${server.apiKey}` },
    });
    const messages: LifecycleWsMessage[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as LifecycleWsMessage;
        messages.push(m);
        if (m.type === 'live') resolve();
      });
      ws.on('error', reject);
    });
    ws.close();
    const replayed = messages.flatMap((m) => (m.type === 'event' ? [m.event] : []));
    assert.ok(replayed.some((e) => e.type === 'created' && e.machine_id === created.id));

    const killed = (await api(server, 'DELETE', `/v1/sandboxes/${created.id}`)) as MachineInfo;
    assert.equal(killed.status, 'killed');
    // Unknown sandboxes answer like unknown machines.
    await assert.rejects(api(server, 'GET', '/v1/sandboxes/mch_aaaaaaaaaaaaaaaaaaaa'), {
      status: 404,
      code: 'machine_not_found',
    });
  });
});
