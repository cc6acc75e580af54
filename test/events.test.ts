/**
 * The lifecycle event stream: durable events for every transition, replay + live over a WebSocket
 * without gaps or duplicates (also across a dropped connection), `live_only`, long polling, auth,
 * and an explicit `events_expired` once retention removed what a client asks for.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { it } from 'node:test';
import type { LifecycleEvent, LifecycleEventsPage, LifecycleWsMessage } from '@nullspace/protocol';
import { Machine, type LifecycleEvent as SdkEvent } from '@nullspace/sdk';
import WebSocket from 'ws';
import { CLI, type TestServer, api, cli, describeWithServer, eventually } from './harness.js';

const page = (s: TestServer, id: string, q = '') =>
  api(s, 'GET', `/v1/machines/${id}/lifecycle/events${q}`) as Promise<LifecycleEventsPage>;

function wsMessages(s: TestServer, id: string, q: string, headers?: Record<string, string>) {
  const url = `${s.url.replace('http', 'ws')}/v1/machines/${id}/lifecycle/ws${q}`;
  const ws = new WebSocket(url, { headers: headers ?? { authorization: `Bearer ${s.apiKey}` } });
  const got: LifecycleWsMessage[] = [];
  ws.on('message', (d) => got.push(JSON.parse(String(d)) as LifecycleWsMessage));
  return { ws, got };
}

/** Resolves once the socket is closed, with the close code and reason. */
function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve({ code: 1006, reason: '' });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

/** The HTTP status (and x-request-id) a WebSocket upgrade is answered with; 101 when it opens. */
function upgradeAnswer(url: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; requestId: string | undefined; body: string }>((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, requestId: res.headers['x-request-id'] as string, body });
        ws.terminate();
      });
    });
    ws.on('upgrade', (res) => {
      resolve({ status: 101, requestId: res.headers['x-request-id'] as string, body: '' });
      ws.close();
    });
    ws.on('error', () => undefined);
  });
}

/** A port that was free a moment ago, for a server that must come back on the same address. */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

const eventIds = (got: LifecycleWsMessage[]) => got.flatMap((m) => (m.type === 'event' ? [m.event.id] : []));

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
  it('replays from after_event_id on a raw WebSocket: every event exactly once across a reconnect', async () => {
    const s = ctx.server;
    const m = await Machine.create(s.conn);
    const a = wsMessages(s, m.id, '');
    await eventually(async () => a.got.some((x) => x.type === 'live'), 'the first replay');
    await m.pause();
    await eventually(async () => eventIds(a.got).length >= 4, 'the live pause events');
    a.ws.close();
    await closed(a.ws);
    const seen = eventIds(a.got);
    // While nobody listens: resume and pause again.
    await Machine.connect(m.id, s.conn);
    await m.pause();
    const b = wsMessages(s, m.id, `?after_event_id=${seen[seen.length - 1]}`);
    await eventually(async () => b.got.some((x) => x.type === 'live'), 'the second replay');
    await m.kill();
    await eventually(
      async () => b.got.some((x) => x.type === 'event' && x.event.status === 'killed'),
      'the kill, live',
    );
    b.ws.close();
    const all = (await page(s, m.id)).events.map((e) => e.id);
    assert.deepEqual([...seen, ...eventIds(b.got)], all, 'no gap, no duplicate, in order');
    // `live` comes after the replay and is a resume point at or after the last replayed event.
    const liveAt = b.got.findIndex((x) => x.type === 'live');
    const live = b.got[liveAt] as Extract<LifecycleWsMessage, { type: 'live' }>;
    assert.ok(live.last_event_id >= (eventIds(b.got.slice(0, liveAt)).at(-1) ?? 0));
    const statuses = b.got.flatMap((x) => (x.type === 'event' ? [x.event.status] : []));
    assert.deepEqual(statuses, ['resuming', 'running', 'pausing', 'paused', 'killing', 'killed']);
  });

  it('follows several machines at once, each stream with only its own events', async () => {
    const s = ctx.server;
    const [m1, m2] = await Promise.all([Machine.create(s.conn), Machine.create(s.conn)]);
    if (!m1 || !m2) throw new Error('two machines');
    const streams = [m1, m2].map((m) => {
      const got: SdkEvent[] = [];
      const done = (async () => {
        for await (const e of m.streamEvents()) {
          got.push(e);
          if (e.status === 'killed') break;
        }
      })();
      return { m, got, done };
    });
    await Promise.all([m1.kill(), m2.kill()]);
    for (const { m, got, done } of streams) {
      await done;
      assert.ok(got.every((e) => e.machineId === m.id));
      assert.deepEqual(
        got.map((e) => e.id),
        (await page(s, m.id)).events.map((e) => e.id),
      );
    }
  });

  it('validates the query and answers refusals before the upgrade, with x-request-id', async () => {
    const s = ctx.server;
    const m = await Machine.create(s.conn);
    const ws = `${s.url.replace('http', 'ws')}/v1/machines/${m.id}/lifecycle/ws`;
    const auth = { authorization: `Bearer ${s.apiKey}` };
    const opened = await upgradeAnswer(ws, auth);
    assert.equal(opened.status, 101);
    assert.match(String(opened.requestId), /^req_/);
    assert.equal((await upgradeAnswer(ws, { 'x-api-key': s.apiKey })).status, 101);
    const refused = await upgradeAnswer(`${ws}?live_only=true&after_event_id=1`, auth);
    assert.equal(refused.status, 400);
    assert.match(String(refused.requestId), /^req_/);
    assert.equal((JSON.parse(refused.body) as { error: { code: string } }).error.code, 'invalid_argument');
    for (const q of ['?live_only=maybe', '?after_event_id=-1', '?after_event_id=1&after_event_id=2', '?x=1'])
      assert.equal((await upgradeAnswer(ws + q, auth)).status, 400, q);
    assert.equal(
      (await upgradeAnswer(`${ws}?after_event_id=999999999`, auth)).status,
      400,
      'an id never issued',
    );
    for (const q of ['?limit=0', '?limit=1001', '?wait_ms=60001', '?after_event_id=1&after_event_id=1'])
      await assert.rejects(page(s, m.id, q), { code: 'invalid_argument' }, q);
    await assert.rejects(page(s, m.id, '?after_event_id=999999999'), { code: 'invalid_argument' });
    // Without the upgrade headers the route says what it is.
    await assert.rejects(api(s, 'GET', `/v1/machines/${m.id}/lifecycle/ws`), {
      code: 'invalid_argument',
      message: /WebSocket/,
    });
    await m.kill();
  });

  it('prints events with the CLI, as text, JSON lines, after an id, and following', async () => {
    const s = ctx.server;
    const m = await Machine.create(s.conn);
    await m.pause();
    const all = (await page(s, m.id)).events;
    const text = await cli(s, ['machine', 'events', m.id]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trim().split('\n');
    assert.equal(lines.length, all.length);
    assert.match(lines[1] ?? '', /starting -> running/);
    const json = await cli(s, ['machine', 'events', m.id, '--json', '--after', String(all[1]?.id)]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(
      json.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as LifecycleEvent),
      all.slice(2),
    );
    const usage = await cli(s, ['machine', 'events', m.id, '--live-only']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--live-only needs --follow/);
    const unknown = await cli(s, ['machine', 'events', 'mch_aaaaaaaaaaaaaaaaaaaa']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /machine_not_found/);

    // --follow: the past, then live events, until Ctrl-C.
    const p = spawn(process.execPath, [CLI, 'machine', 'events', m.id, '--follow'], {
      env: { ...process.env, NULLSPACE_API_URL: s.url, NULLSPACE_API_KEY: s.apiKey },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = once(p, 'exit');
    await eventually(async () => out.includes('pausing -> paused'), 'the replay');
    await m.kill();
    await eventually(async () => out.includes('killing -> killed'), 'the live kill event');
    p.kill('SIGINT');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
    assert.equal(out.trim().split('\n').length, all.length + 2);
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

    it('hands out resume points that stay valid when a machine has no retained events', async () => {
      const s = ctx.server;
      const m = await Machine.create(s.conn);
      await eventually(
        async () => (await page(s, m.id)).events.length === 0,
        'retention to remove the events',
      );
      // Polling without an id: nothing retained, and a cursor to go on from that is not expired.
      const empty = await page(s, m.id);
      assert.ok(empty.last_event_id > 0);
      const next = await page(s, m.id, `?after_event_id=${empty.last_event_id}`);
      assert.deepEqual(next.events, []);
      const listed = await cli(s, ['machine', 'events', m.id]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(listed.stdout, '');
      // The WebSocket's `live` cursor likewise; the SDK resumes from it.
      const ws = wsMessages(s, m.id, '');
      await eventually(async () => ws.got.some((x) => x.type === 'live'), 'live');
      ws.ws.close();
      const live = ws.got[0] as Extract<LifecycleWsMessage, { type: 'live' }>;
      assert.equal(live.type, 'live');
      assert.ok(live.last_event_id >= empty.last_event_id);
      const statuses: string[] = [];
      // The server logs every accepted upgrade (status 101) once the socket is subscribed.
      const upgrades = () =>
        s
          .logs()
          .split('\n')
          .filter((l) => l.includes('/lifecycle/ws') && l.includes('"status":101')).length;
      const before = upgrades();
      const reading = (async () => {
        for await (const e of m.streamEvents({ liveOnly: true })) {
          statuses.push(e.status);
          if (e.status === 'killed') break;
        }
      })();
      await eventually(async () => upgrades() > before, 'the SDK to connect');
      await m.kill();
      await reading;
      assert.deepEqual(statuses, ['killing', 'killed']);
    });

    it('a killed machine is kept as long as its events, then forgotten (404)', async () => {
      const s = ctx.server;
      const m = await Machine.create(s.conn);
      // Killed, it is still answered for (as `killed`) until its events' retention (1 s here) passes.
      await m.kill();
      await eventually(
        async () =>
          api(s, 'GET', `/v1/machines/${m.id}`).then(
            () => false,
            (err: { status?: number; code?: string }) =>
              err.status === 404 && err.code === 'machine_not_found',
          ),
        'retention to remove the killed machine',
      );
    });
  },
  { NULLSPACE_EVENTS_RETENTION: '1' },
);

// The same port after a restart, so a client that holds the URL can come back.
const restartPort = await freePort();

describeWithServer(
  'lifecycle events: server restart',
  (ctx) => {
    it('the SDK stream survives a server restart without a gap or a duplicate', async () => {
      const s = ctx.server;
      const m = await Machine.create({ ...s.conn, timeout: 600 });
      const got: SdkEvent[] = [];
      const reading = (async () => {
        for await (const e of m.streamEvents()) {
          got.push(e);
          if (e.status === 'killed') break;
        }
      })();
      await eventually(async () => got.length >= 2, 'the replay');
      await s.stop(); // the socket closes with 1001; the SDK keeps trying
      await s.restart();
      assert.equal(s.url, `http://127.0.0.1:${restartPort}`);
      await m.pause();
      await Machine.connect(m.id, s.conn);
      await m.kill();
      await reading;
      assert.deepEqual(
        got.map((e) => e.id),
        (await page(s, m.id)).events.map((e) => e.id),
      );
      assert.deepEqual(
        got.map((e) => e.status),
        ['starting', 'running', 'pausing', 'paused', 'resuming', 'running', 'killing', 'killed'],
      );
    });

    it('a stream that never connected fails with UnavailableError instead of waiting forever', async () => {
      const nowhere = new Machine('mch_aaaaaaaaaaaaaaaaaaaa', {
        apiUrl: `http://127.0.0.1:${await freePort()}`,
        apiKey: 'k',
      });
      await assert.rejects(
        (async () => {
          for await (const _ of nowhere.streamEvents()) break;
        })(),
        { code: 'unavailable' },
      );
    });
  },
  { NULLSPACE_PORT: String(restartPort) },
);
