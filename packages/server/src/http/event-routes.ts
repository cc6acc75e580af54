import type http from 'node:http';
import type { Duplex } from 'node:stream';
import {
  CodedError,
  EVENTS_LIMITS,
  type LifecycleEvent,
  type LifecycleEventsPage,
  type LifecycleWsMessage,
  invalidArgument,
  optionalBoolean,
  optionalInteger,
  rejectUnknownKeys,
} from '@nullspace/protocol';
import { type WebSocket, WebSocketServer } from 'ws';
import type { EventLog } from '../events/event-log.js';
import type { Logger } from '../log.js';
import type { MachineService } from '../services/machine-service.js';
import type { Router } from './router.js';

/** A client that falls this far behind is dropped (it reconnects with `after_event_id`). */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
const PING_EVERY_MS = 20_000;
const WS_PATH = /^\/v1\/machines\/([^/]+)\/lifecycle\/ws$/;

/** Query values arrive as strings; the validators take JSON types. */
function queryValues(params: URLSearchParams, allowed: readonly string[]): Record<string, unknown> {
  const raw = Object.fromEntries(params);
  rejectUnknownKeys(raw, allowed);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'live_only') {
      if (!['true', 'false', '1', '0'].includes(v)) throw invalidArgument(k, 'must be true or false');
      out[k] = v === 'true' || v === '1';
    } else {
      if (!/^\d+$/.test(v)) throw invalidArgument(k, 'must be a non-negative integer');
      out[k] = Number(v);
    }
  }
  return out;
}

/** `GET /v1/machines/{id}/lifecycle/events`: the long-poll form of the event stream. */
export function addEventRoutes(router: Router, machines: MachineService, events: EventLog): void {
  router.add('GET', '/v1/machines/{id}/lifecycle/events', async (ctx) => {
    const id = ctx.params.id ?? '';
    const q = queryValues(ctx.url.searchParams, ['after_event_id', 'limit', 'wait_ms']);
    machines.get(id); // 404 machine_not_found
    const explicitAfter = optionalInteger(q, 'after_event_id', 0, Number.MAX_SAFE_INTEGER);
    const after = explicitAfter ?? 0;
    const limit =
      optionalInteger(q, 'limit', EVENTS_LIMITS.limit.min, EVENTS_LIMITS.limit.max) ??
      EVENTS_LIMITS.limit.default;
    const waitMs = optionalInteger(q, 'wait_ms', EVENTS_LIMITS.wait_ms.min, EVENTS_LIMITS.wait_ms.max) ?? 0;
    if (explicitAfter !== undefined && events.isExpired(explicitAfter))
      throw expired(explicitAfter, events.oldestId(id));
    let page = events.after(id, after, limit);
    if (page.length === 0 && waitMs > 0) {
      // Subscribe and re-read in one synchronous step: nothing appended in between is missed.
      page = await new Promise<LifecycleEvent[]>((resolve) => {
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          unsubscribe();
          clearTimeout(timer);
          ctx.req.off('close', finish);
          resolve(events.after(id, after, limit));
        };
        const unsubscribe = events.subscribe(id, finish);
        const timer = setTimeout(finish, waitMs);
        ctx.req.once('close', finish);
        if (events.after(id, after, 1).length > 0) finish();
      });
    }
    const body: LifecycleEventsPage = { events: page, last_event_id: page[page.length - 1]?.id ?? after };
    return { body };
  });
}

function expired(after: number, oldest: number | null): CodedError {
  return new CodedError(
    'events_expired',
    `events after ${after} are no longer all retained; resume from a newer id or without after_event_id`,
    { after_event_id: after, oldest_event_id: oldest },
  );
}

/**
 * `GET /v1/machines/{id}/lifecycle/ws`: replays the machine's events after `after_event_id` (all
 * retained ones when absent; none with `live_only=true`), sends `{type: "live"}`, then every new
 * event as it is appended. Replay and live are stitched in one synchronous step (read, send,
 * subscribe), so nothing is lost or sent twice. Authentication happened before the upgrade.
 */
export class LifecycleSockets {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  private readonly pinger: NodeJS.Timeout;

  constructor(
    private readonly machines: MachineService,
    private readonly events: EventLog,
    private readonly log: Logger,
  ) {
    this.pinger = setInterval(() => {
      for (const ws of this.wss.clients as Set<WebSocket & { alive?: boolean }>) {
        if (ws.alive === false) {
          ws.terminate();
          continue;
        }
        ws.alive = false;
        ws.ping();
      }
    }, PING_EVERY_MS);
    this.pinger.unref();
  }

  /** Whether this upgrade request is ours. */
  matches(url: URL): boolean {
    return WS_PATH.test(url.pathname);
  }

  /** Validates, then upgrades. Throws a CodedError (answered as HTTP) before upgrading. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    const id = decodeURIComponent(WS_PATH.exec(url.pathname)?.[1] ?? '');
    const q = queryValues(url.searchParams, ['after_event_id', 'live_only']);
    this.machines.get(id);
    const explicitAfter = optionalInteger(q, 'after_event_id', 0, Number.MAX_SAFE_INTEGER);
    const liveOnly = optionalBoolean(q, 'live_only') ?? false;
    this.wss.handleUpgrade(req, socket, head, (ws) =>
      this.serve(ws as WebSocket & { alive?: boolean }, id, explicitAfter, liveOnly),
    );
  }

  close(): void {
    clearInterval(this.pinger);
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    this.wss.close();
  }

  private serve(
    ws: WebSocket & { alive?: boolean },
    id: string,
    explicitAfter: number | undefined,
    liveOnly: boolean,
  ): void {
    ws.alive = true;
    ws.on('pong', () => {
      ws.alive = true;
    });
    const send = (m: LifecycleWsMessage) => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        ws.close(1013, 'client too slow; reconnect with after_event_id');
        return;
      }
      ws.send(JSON.stringify(m));
    };
    if (!liveOnly && explicitAfter !== undefined && this.events.isExpired(explicitAfter)) {
      send({
        type: 'events_expired',
        after_event_id: explicitAfter,
        oldest_event_id: this.events.oldestId(id),
        message: `events after ${explicitAfter} are no longer all retained; reconnect without after_event_id or with a newer one`,
      });
      ws.close(1000, 'events_expired');
      return;
    }
    // One synchronous block: replay, then subscribe. Nothing can be appended in between.
    let last = explicitAfter ?? 0;
    if (liveOnly) {
      last = this.events.latestId(id);
    } else {
      for (;;) {
        const page = this.events.after(id, last, 1000);
        for (const e of page) send({ type: 'event', event: e });
        if (page.length > 0) last = page[page.length - 1]?.id ?? last;
        if (page.length < 1000) break;
      }
    }
    const unsubscribe = this.events.subscribe(id, (e) => {
      if (e.id <= last) return;
      last = e.id;
      send({ type: 'event', event: e });
    });
    send({ type: 'live', last_event_id: last });
    ws.on('close', unsubscribe);
    ws.on('error', (err) => this.log.debug('lifecycle socket error', { machine_id: id, error: err }));
  }
}
