import type http from 'node:http';
import type { Duplex } from 'node:stream';
import {
  CodedError,
  EVENTS_LIMITS,
  type LifecycleEventsPage,
  type LifecycleWsMessage,
  invalidArgument,
  optionalBoolean,
  optionalInteger,
} from '@nullspace/protocol';
import type { WebSocket } from 'ws';
import type { EventLog } from '../events/event-log.js';
import type { Logger } from '../log.js';
import type { MachineService } from '../services/machines/machine-service.js';
import type { Router } from './router.js';
import { PingedWebSocketServer } from './ws-server.js';

/** A client with more than this queued and unsent is dropped (it reconnects with `after_event_id`). */
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** Every socket is pinged this often; one that has not answered the previous ping is dropped. */
const WS_PATH = /^\/v1\/machines\/([^/]+)\/lifecycle\/ws$/;
/** WebSocket close codes the server uses (the reason says what to do next). */
const CLOSE_NORMAL = 1000;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_TRY_AGAIN_LATER = 1013;

/**
 * Query parameters as JSON values for the protocol's validators: unknown or repeated keys are
 * refused, `live_only` is a boolean (`true`/`false`/`1`/`0`), everything else a non-negative integer.
 */
export function queryValues(params: URLSearchParams, allowed: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of params) {
    if (!allowed.includes(k))
      throw invalidArgument(k, `unknown query parameter; known: ${allowed.join(', ')}`);
    if (k in out) throw invalidArgument(k, 'is given more than once');
    if (k === 'live_only') {
      if (!['true', 'false', '1', '0'].includes(v))
        throw invalidArgument(k, `must be true, false, 1 or 0, got "${v}"`);
      out[k] = v === 'true' || v === '1';
    } else {
      if (!/^\d+$/.test(v)) throw invalidArgument(k, `must be a non-negative integer, got "${v}"`);
      out[k] = Number(v);
    }
  }
  return out;
}

function afterEventId(q: Record<string, unknown>, events: EventLog): number | undefined {
  const after = optionalInteger(q, 'after_event_id', 0, Number.MAX_SAFE_INTEGER);
  // An id this server never gave out (another server's, or one from before its data was reset)
  // would wait for events that are never coming: say so instead.
  const newest = events.highWater();
  if (after !== undefined && after > newest)
    throw invalidArgument('after_event_id', `is newer than the newest event id of this server (${newest})`);
  return after;
}

function expiredMessage(after: number): string {
  return (
    `events after ${after} are no longer all retained (NULLSPACE_EVENTS_RETENTION removed some); ` +
    'start again without after_event_id to get every retained event'
  );
}

/** The pending long polls, so that a stopping server can answer them at once. */
export interface EventPolls {
  /** Answers every waiting long poll now (with what there is). */
  close(): void;
}

/**
 * `GET /v1/machines/{id}/lifecycle/events`: the polling form of the event stream. Returns at once
 * when events follow `after_event_id`; else waits up to `wait_ms` for the next one. The WebSocket
 * route is served by {@link LifecycleSockets}; a plain GET on it is told to upgrade.
 */
export function addEventRoutes(router: Router, machines: MachineService, events: EventLog): EventPolls {
  const waiting = new Set<() => void>();

  router.on('listEvents', async (ctx) => {
    const id = ctx.params.id ?? '';
    const q = queryValues(ctx.url.searchParams, ['after_event_id', 'limit', 'wait_ms']);
    const limit =
      optionalInteger(q, 'limit', EVENTS_LIMITS.limit.min, EVENTS_LIMITS.limit.max) ??
      EVENTS_LIMITS.limit.default;
    const waitMs =
      optionalInteger(q, 'wait_ms', EVENTS_LIMITS.wait_ms.min, EVENTS_LIMITS.wait_ms.max) ??
      EVENTS_LIMITS.wait_ms.default;
    machines.get(id); // 404 machine_not_found
    const after = afterEventId(q, events);

    // Expiry is checked with every read: a purge may run while a poll waits.
    const read = (): LifecycleEventsPage => {
      if (after !== undefined && events.isExpired(after))
        throw new CodedError('events_expired', expiredMessage(after), {
          after_event_id: after,
          oldest_event_id: events.oldestId(id),
        });
      const page = events.after(id, after ?? 0, limit);
      // Without an after_event_id and no events, the newest id of the server is where to go on
      // from: none of this machine's events up to it exists any more.
      const last = page[page.length - 1]?.id ?? after ?? events.highWater();
      return { events: page, last_event_id: last };
    };

    const first = read();
    if (first.events.length > 0 || waitMs === 0) return { body: first };
    // Subscribe in the same synchronous step as the read above: nothing appended in between is
    // missed. The wake-up reads again after the appending code has finished its step, so events
    // appended together come together.
    await new Promise<void>((resolve) => {
      const done = () => {
        unsubscribe();
        clearTimeout(timer);
        ctx.res.off('close', done);
        waiting.delete(done);
        resolve();
      };
      const unsubscribe = events.subscribe(id, done);
      const timer = setTimeout(done, waitMs);
      ctx.res.once('close', done); // the client went away
      waiting.add(done);
    });
    if (ctx.res.destroyed) return undefined;
    return { body: read() };
  });

  router.on('streamEvents', async () => {
    throw new CodedError(
      'invalid_argument',
      'this route is a WebSocket: send the request with "Connection: Upgrade" and "Upgrade: websocket"',
    );
  });

  return {
    close() {
      for (const done of [...waiting]) done();
    },
  };
}

/**
 * `GET /v1/machines/{id}/lifecycle/ws`: replays the machine's events after `after_event_id` (every
 * retained one when absent; none with `live_only=true`), sends `{type: "live"}`, then every new
 * event as it is appended. Replay and live are stitched in one synchronous step (check expiry,
 * read, send, subscribe), so nothing is lost or sent twice. The API server authenticated the
 * request before handing it here.
 */
export class LifecycleSockets {
  private readonly wss = new PingedWebSocketServer(64 * 1024);
  private closed = false;

  constructor(
    private readonly machines: MachineService,
    private readonly events: EventLog,
    private readonly log: Logger,
  ) {}

  /** Whether this upgrade request is ours. */
  matches(url: URL): boolean {
    return WS_PATH.test(url.pathname);
  }

  /** Validates, then upgrades. Throws a CodedError (answered as HTTP) before upgrading. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL, requestId: string): void {
    if (this.closed)
      throw new CodedError('unavailable', 'the server is stopping; reconnect in a moment', {
        retry_after: 1,
      });
    const raw = WS_PATH.exec(url.pathname)?.[1] ?? '';
    let id: string;
    try {
      id = decodeURIComponent(raw);
    } catch {
      throw invalidArgument('id', `"${raw}" is not valid percent-encoding`);
    }
    const q = queryValues(url.searchParams, ['after_event_id', 'live_only']);
    const liveOnly = optionalBoolean(q, 'live_only') ?? false;
    if (liveOnly && q.after_event_id !== undefined)
      throw invalidArgument(
        'live_only',
        'cannot be combined with after_event_id (live_only skips the replay after_event_id asks for)',
      );
    this.machines.get(id); // 404 machine_not_found
    const after = afterEventId(q, this.events);
    this.wss.upgrade(req, socket, head, requestId, (ws) => this.serve(ws, id, after, liveOnly));
  }

  /** Closes every socket (code 1001: reconnect with `after_event_id`) and stops the pings. */
  close(): void {
    this.closed = true;
    this.wss.close(CLOSE_GOING_AWAY, 'server stopping; reconnect with after_event_id');
  }

  private serve(ws: WebSocket, id: string, after: number | undefined, liveOnly: boolean): void {
    ws.on('error', (err) => this.log.debug('lifecycle socket error', { machine_id: id, error: err }));
    // Client messages have no meaning here; they are read (and dropped) so pings keep flowing.
    ws.on('message', () => undefined);

    /** Sends, or drops a client that is not reading: it resumes from what it got. */
    const send = (m: LifecycleWsMessage): boolean => {
      if (ws.readyState !== ws.OPEN) return false;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        this.log.warn('dropping a slow lifecycle socket', {
          machine_id: id,
          buffered_bytes: ws.bufferedAmount,
        });
        ws.close(CLOSE_TRY_AGAIN_LATER, 'too slow: over 4 MiB unsent; reconnect with after_event_id');
        return false;
      }
      ws.send(JSON.stringify(m));
      return true;
    };

    // From here to the subscribe, one synchronous step: no append, no purge can come in between.
    if (!liveOnly && after !== undefined && this.events.isExpired(after)) {
      send({
        type: 'events_expired',
        after_event_id: after,
        oldest_event_id: this.events.oldestId(id),
        message: expiredMessage(after),
      });
      ws.close(CLOSE_NORMAL, 'events_expired: reconnect without after_event_id');
      return;
    }
    let last = after ?? 0;
    if (!liveOnly) {
      for (;;) {
        const page = this.events.after(id, last, 1000);
        for (const e of page) {
          if (!send({ type: 'event', event: e })) return;
          last = e.id;
        }
        if (page.length < 1000) break;
      }
    }
    // Every event of this machine up to the server's newest id is sent (or was removed before
    // this client asked): the newest id is the best resume point to hand out.
    last = Math.max(last, this.events.highWater());
    const unsubscribe = this.events.subscribe(id, (e) => {
      if (e.id <= last) return;
      last = e.id;
      if (!send({ type: 'event', event: e })) unsubscribe();
    });
    ws.on('close', unsubscribe);
    send({ type: 'live', last_event_id: last });
  }
}
