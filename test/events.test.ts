/**
 * The lifecycle event stream: durable events for every transition, replay + live over a WebSocket
 * without gaps or duplicates (also across a dropped connection), `live_only`, long polling, auth,
 * and an explicit `events_expired` once retention removed what a client asks for.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { it } from 'node:test';
import type { LifecycleEvent, LifecycleEventsPage, LifecycleWsMessage } from '@nullspace/protocol';
import { Machine, type LifecycleEvent as SdkEvent } from '@nullspace/sdk';
import WebSocket from 'ws';
import { type TestServer, api, describeWithServer, eventually } from './harness.js';

const page = (s: TestServer, id: string, q = '') =>
  api(s, 'GET', `/v1/machines/${id}/lifecycle/events${q}`) as Promise<LifecycleEventsPage>;

function wsMessages(s: TestServer, id: string, q: string, headers?: Record<string, string>) {
  const url = `${s.url.replace('http', 'ws')}/v1/machines/${id}/lifecycle/ws${q}`;
  const ws = new WebSocket(url, { headers: headers ?? { authorization: `Bearer ${s.apiKey}` } });
  const got: LifecycleWsMessage[] = [];
  ws.on('message', (d) => got.push(JSON.parse(String(d)) as LifecycleWsMessage));
  return { ws, got };
}

/** A TCP proxy in front of the server whose connections the test can cut. */
async function cuttableProxy(target: string) {
  const { port } = new URL(target);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const u = net.connect(Number(port), '127.0.0.1');
    sockets.add(c).add(u);
    c.pipe(u).pipe(c);
    const drop = () => {
      c.destroy();
      u.destroy();
      sockets.delete(c);
      sockets.delete(u);
    };
    c.on('error', drop).on('close', drop);
    u.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${addr.port}`,
    cut: () => {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describeWithServer('lifecycle events', (ctx) => {
  it('records every transition with strictly increasing ids', async () => {
    const s = ctx.server;
    const m = await Machine.create(s.conn);
    await m.pause();
    await Machine.connect(m.id, s.conn);
    await m.kill();
    const { events } = await page(s, m.id);
    const seen = events.map((e) =>
      e.type === 'status_changed' ? `${e.previous_status}>${e.status}` : e.type,
    );
    assert.deepEqual(seen, [
      'created',
      'starting>running',
      'running>pausing',
      'pausing>paused',
      'paused>resuming',
      'resuming>running',
      'running>killing',
      'killing>killed',
    ]);
    for (let i = 1; i < events.length; i++) assert.ok((events[i]?.id ?? 0) > (events[i - 1]?.id ?? 0));
    assert.equal(events[6]?.reason, 'killed by request');
    // Paging and after_event_id.
    const second = await page(s, m.id, `?after_event_id=${events[1]?.id}&limit=2`);
    assert.deepEqual(
      second.events.map((e) => e.id),
      [events[2]?.id, events[3]?.id],
    );
    assert.equal(second.last_event_id, events[3]?.id);
  });

  it('streams replay then live over the SDK, and resumes exactly once after a cut connection', async () => {
    const s = ctx.server;
    const proxy = await cuttableProxy(s.url);
    try {
      const m = await Machine.create(s.conn);
      const viaProxy = new Machine(m.id, { apiUrl: proxy.url, apiKey: s.apiKey });
      const got: SdkEvent[] = [];
      const abort = new AbortController();
      const reading = (async () => {
        for await (const e of viaProxy.streamEvents({ signal: abort.signal })) {
          got.push(e);
          if (e.status === 'killed') break;
        }
      })();
      await eventually(async () => got.length >= 2, 'the replay');
      await m.pause();
      await eventually(async () => got.some((e) => e.status === 'paused'), 'a live event');
      proxy.cut(); // the stream drops here
      await Machine.connect(m.id, s.conn); // events while the client is disconnected
      await m.pause();
      proxy.cut();
      await Machine.connect(m.id, s.conn);
      await m.kill();
      await reading;
      const all = (await page(s, m.id)).events;
      assert.deepEqual(
        got.map((e) => e.id),
        all.map((e) => e.id),
        'every event exactly once, in order',
      );
      assert.ok(got.every((e) => e.at instanceof Date && e.machineId === m.id));
    } finally {
      await proxy.close();
    }
  });

  it('live_only skips the replay; after_event_id replays only what follows', async () => {
    const s = ctx.server;
    const m = await Machine.create(s.conn);
    const live = wsMessages(s, m.id, '?live_only=true');
    const replay = wsMessages(s, m.id, '?after_event_id=0');
    await eventually(
      async () => live.got.length >= 1 && replay.got.some((x) => x.type === 'live'),
      'both sockets',
    );
    assert.equal(live.got[0]?.type, 'live', 'nothing replayed before live');
    const replayed = replay.got.filter((x) => x.type === 'event').length;
    assert.equal(replayed, 2, 'created + running replayed');
    await m.pause();
    await eventually(async () => live.got.filter((x) => x.type === 'event').length >= 2, 'live events');
    const liveEvents = live.got.flatMap((x) => (x.type === 'event' ? [x.event.status] : []));
    assert.deepEqual(liveEvents, ['pausing', 'paused']);
    live.ws.close();
    replay.ws.close();
    await m.kill();
  });

  it('long polls until an event arrives', async () => {
    const s = ctx.server;
    const m = await Machine.create(s.conn);
    const { last_event_id } = await page(s, m.id);
    const waiting = page(s, m.id, `?after_event_id=${last_event_id}&wait_ms=30000`);
    await m.pause();
    const got = await waiting;
    assert.equal(got.events[0]?.status, 'pausing');
    assert.ok((got.events[0]?.id ?? 0) > last_event_id);
    await assert.rejects(page(s, m.id, '?wait_ms=abc'), { code: 'invalid_argument' });
    await assert.rejects(page(s, m.id, '?nope=1'), { code: 'invalid_argument' });
    await assert.rejects(page(s, 'mch_aaaaaaaaaaaaaaaaaaaa'), { code: 'machine_not_found' });
    await m.kill();
  });

  it('needs the API key for the WebSocket', async () => {
    const s = ctx.server;
    const m = await Machine.create(s.conn);
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${s.url.replace('http', 'ws')}/v1/machines/${m.id}/lifecycle/ws`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
    });
    assert.equal(status, 401);
    const unknown = await new Promise<number>((resolve) => {
      const ws = new WebSocket(
        `${s.url.replace('http', 'ws')}/v1/machines/mch_aaaaaaaaaaaaaaaaaaaa/lifecycle/ws`,
        {
          headers: { authorization: `Bearer ${s.apiKey}` },
        },
      );
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
    });
    assert.equal(unknown, 404);
    await m.kill();
  });
});

describeWithServer(
  'lifecycle events: retention',
  (ctx) => {
    it('says events_expired instead of leaving a silent gap', async () => {
      const s = ctx.server;
      const m = await Machine.create(s.conn);
      const first = (await page(s, m.id)).events[0] as LifecycleEvent;
      await eventually(
        async () => (await page(s, m.id)).events.length === 0,
        'retention to remove the events',
      );
      await assert.rejects(page(s, m.id, `?after_event_id=${first.id}`), {
        code: 'events_expired',
        status: 410,
      });
      const ws = wsMessages(s, m.id, `?after_event_id=${first.id}`);
      await eventually(async () => ws.got.length > 0, 'the expired message');
      assert.equal(ws.got[0]?.type, 'events_expired');
      // The SDK surfaces it as a typed error.
      await assert.rejects(
        (async () => {
          for await (const _ of m.streamEvents({ afterEventId: first.id })) break;
        })(),
        { code: 'events_expired' },
      );
      await m.kill();
    });
  },
  { NULLSPACE_EVENTS_RETENTION: '1' },
);
