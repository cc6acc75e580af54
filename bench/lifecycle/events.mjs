/**
 * The lifecycle bench's event series: how long a `status_changed → paused` event takes to reach a
 * subscriber, by long poll and by WebSocket.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, checkInterrupted, progress } from '../lib.mjs';
import { S, api, expectStatus } from './state.mjs';

/** Long poll: how long the server may hold a poll, and the pause before the transition is triggered. */
const POLL_WAIT_MS = 10_000;
const SUBSCRIBE_SETTLE_MS = 30;

/** The machine's newest event id (pages through the long-poll route with wait_ms=0). */
async function lastEventId(machineId, after = 0) {
  let cursor = after;
  for (;;) {
    const page = await api(
      'GET',
      `/v1/machines/${machineId}/lifecycle/events?after_event_id=${cursor}&limit=1000`,
    );
    cursor = page.last_event_id;
    if (page.events.length < 1000) return cursor;
  }
}

const isPausedEvent = (e) => e.type === 'status_changed' && e.status === 'paused';

/**
 * Long-polls from `after` until an event matching `pred` arrives; resolves with its arrival time
 * (performance.now() when the page holding it had fully arrived) and the number of polls it took.
 */
async function longPollFor(machineId, after, pred) {
  let cursor = after;
  for (let polls = 1; ; polls++) {
    const page = await api(
      'GET',
      `/v1/machines/${machineId}/lifecycle/events?after_event_id=${cursor}&wait_ms=${POLL_WAIT_MS}`,
    );
    const at = performance.now();
    const hit = page.events.find(pred);
    if (hit) return { at, polls, event: hit };
    if (page.events.length === 0 && polls > 3) throw new Error('long poll: no paused event within 3 polls');
    cursor = page.last_event_id;
  }
}

/** Opens the WebSocket route (live only) with the `ws` package, if it is installed; else a reason. */
async function openWs(machineId) {
  let WebSocket;
  try {
    ({ WebSocket } = await import('ws'));
    WebSocket ??= (await import('ws')).default;
  } catch (err) {
    return { unavailable: `the ws package is not installed (${err.code ?? err.message})` };
  }
  const url = `${S.server.url.replace(/^http/, 'ws')}/v1/machines/${machineId}/lifecycle/ws?live_only=true`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${S.server.apiKey}` } });
  const waiters = new Set();
  ws.on('message', (data) => {
    const at = performance.now();
    let msg;
    try {
      msg = JSON.parse(String(data));
    } catch {
      return;
    }
    for (const w of waiters) w(msg, at);
  });
  const next = (pred, ms = 10_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`WebSocket: nothing matching within ${ms} ms`));
      }, ms);
      const w = (msg, at) => {
        if (!pred(msg)) return;
        clearTimeout(timer);
        waiters.delete(w);
        resolve({ msg, at });
      };
      waiters.add(w);
    });
  // With live_only the server says `live` at once; wait for it (briefly) so no event is missed.
  const live = next((m) => m.type === 'live', 2000);
  live.catch(() => undefined);
  try {
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  } catch (err) {
    ws.terminate();
    return { unavailable: `WebSocket route: ${err.message}` };
  }
  ws.on('error', () => undefined); // a late error shows up as a missing event instead
  const sawLive = await live.then(
    () => true,
    () => false,
  );
  return { ws, next, sawLive };
}

/**
 * 5. Event delivery on the machine `id`: subscribe, pause, time the `status_changed → paused`
 * event, by long poll then by WebSocket; `push` keeps the samples, `info` a route that is not
 * available and why.
 */
export async function measureEvents(id, { n, warmup }, { R, push, info }) {
  progress(`event delivery ×${n} (+${warmup}): long poll (wait_ms) and WebSocket`);
  let cursor;
  try {
    cursor = await lastEventId(id);
  } catch (err) {
    info.pollUnavailable = err instanceof ApiError ? `${err.status} ${err.code ?? ''}`.trim() : err.message;
  }
  if (cursor !== undefined) {
    for (let i = -warmup; i < n; i++) {
      checkInterrupted();
      const sub = longPollFor(id, cursor, isPausedEvent);
      sub.catch(() => undefined); // awaited below
      await sleep(SUBSCRIBE_SETTLE_MS); // let the poll reach the server and wait there
      const t0 = performance.now();
      expectStatus(await api('POST', `/v1/machines/${id}/pause`), 'paused', 'pause');
      const t1 = performance.now();
      const got = await sub;
      await api('POST', `/v1/machines/${id}/connect`, {});
      cursor = await lastEventId(id, got.event.id);
      if (i < 0) continue;
      push('pollAfterResponse', got.at - t1);
      push('pollAfterSend', got.at - t0);
      push('pollPolls', got.polls);
    }
  }
  const wsConn = await openWs(id);
  if (wsConn.unavailable) info.wsUnavailable = wsConn.unavailable;
  else {
    if (!wsConn.sawLive) info.wsNoLive = true;
    try {
      for (let i = -warmup; i < n; i++) {
        checkInterrupted();
        const ev = wsConn.next((m) => m.type === 'event' && isPausedEvent(m.event));
        ev.catch(() => undefined);
        const t0 = performance.now();
        expectStatus(await api('POST', `/v1/machines/${id}/pause`), 'paused', 'pause');
        const t1 = performance.now();
        const { at } = await ev;
        await api('POST', `/v1/machines/${id}/connect`, {});
        if (i < 0) continue;
        push('wsAfterResponse', at - t1);
        push('wsAfterSend', at - t0);
      }
    } catch (err) {
      info.wsUnavailable = `failed: ${err.message}`;
      R.wsAfterResponse = [];
      R.wsAfterSend = [];
    } finally {
      wsConn.ws.terminate();
    }
  }
}
