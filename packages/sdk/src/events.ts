import {
  LifecycleEventSchema,
  type LifecycleWsMessage,
  type LifecycleEvent as WireEvent,
  type LifecycleEventsPage as WirePage,
} from '@nullspace/protocol';
import WebSocket from 'ws';
import { InvalidArgumentError, type NullspaceError, UnavailableError, errorFromCode } from './errors.js';
import type { RequestOptions, Transport } from './transport.js';
import { type FromWire, fromWire, toWire } from './wire.js';

/**
 * One lifecycle event of a machine: a state change, its creation, a timeout, a snapshot or a fork.
 *
 * @example
 * ```ts
 * for await (const e of machine.streamEvents()) console.log(e.id, e.type, e.previousStatus, '→', e.status);
 * ```
 */
export interface LifecycleEvent extends FromWire<typeof LifecycleEventSchema> {}

/**
 * Options of {@link Machine.streamEvents}.
 *
 * @example
 * ```ts
 * const opts: StreamEventsOptions = { afterEventId: 41, signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface StreamEventsOptions {
  /** Replay the events after this id first. Without it: every retained event, then live ones. */
  afterEventId?: number;
  /** Skip the replay: only events from now on. Not together with `afterEventId`. */
  liveOnly?: boolean;
  /** Ends the stream (the loop then finishes without an error). */
  signal?: AbortSignal;
}

/**
 * Converts an event from the API's shape (snake_case, ISO time) to the SDK's.
 *
 * @example
 * ```ts
 * const page = (await res.json()) as { events: WireLifecycleEvent[] };
 * const events = page.events.map(lifecycleEventFromWire);
 * ```
 */
export function lifecycleEventFromWire(e: WireEvent): LifecycleEvent {
  return fromWire(LifecycleEventSchema, e);
}

/**
 * Converts an event back to the API's shape, e.g. to print it as JSON.
 *
 * @example
 * ```ts
 * for await (const e of machine.streamEvents()) console.log(JSON.stringify(lifecycleEventToWire(e)));
 * ```
 */
export function lifecycleEventToWire(e: LifecycleEvent): WireEvent {
  return toWire(LifecycleEventSchema, e);
}

/**
 * Options of {@link Machine.listEvents}.
 *
 * @example
 * ```ts
 * const opts: ListEventsOptions = { afterEventId: 10, limit: 50, waitMs: 5000 };
 * ```
 */
export interface ListEventsOptions extends RequestOptions {
  /** Only events after this id (a `lastEventId` from an earlier page). Without it: from the oldest retained. */
  afterEventId?: number;
  /** At most this many (1..1000, default 100). */
  limit?: number;
  /** When there is nothing after `afterEventId`, wait up to this long for the next event (long poll). */
  waitMs?: number;
}

/**
 * One page of {@link Machine.listEvents}.
 *
 * @example
 * ```ts
 * const page: LifecycleEventsPage = await machine.listEvents({ afterEventId: 41 });
 * const next = await machine.listEvents({ afterEventId: page.lastEventId });
 * ```
 */
export interface LifecycleEventsPage {
  /** Oldest first. */
  events: LifecycleEvent[];
  /** Pass as `afterEventId` next time: the last event's id, or where to go on from when none came. */
  lastEventId: number;
}

/** One page of events from the polling route. */
export async function listLifecycleEvents(
  transport: Transport,
  machineId: string,
  opts: ListEventsOptions = {},
): Promise<LifecycleEventsPage> {
  const query = new URLSearchParams();
  if (opts.afterEventId !== undefined) query.set('after_event_id', String(opts.afterEventId));
  if (opts.limit !== undefined) query.set('limit', String(opts.limit));
  if (opts.waitMs !== undefined) query.set('wait_ms', String(opts.waitMs));
  // The long poll's wait is on purpose: it comes on top of the request timeout (0 = no limit).
  const timeoutMs = opts.requestTimeoutMs ?? transport.requestTimeoutMs;
  const page = await transport.request<WirePage>({
    method: 'GET',
    path: `/v1/machines/${encodeURIComponent(machineId)}/lifecycle/events`,
    query,
    timeoutMs: timeoutMs === 0 ? 0 : timeoutMs + (opts.waitMs ?? 0),
  });
  return { events: page.events.map(lifecycleEventFromWire), lastEventId: page.last_event_id };
}

const FIRST_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2_000;
/**
 * The server pings every socket every 20 s; a connection that has carried nothing (no event, no
 * ping) for this long is dead even when TCP has not noticed (a host gone without a FIN).
 */
const IDLE_LIMIT_MS = 45_000;
/** Messages read ahead of the consumer before reading pauses, and where it resumes. */
const QUEUE_HIGH = 1_000;
const QUEUE_LOW = 100;

/**
 * The machine's lifecycle events over the server's WebSocket, as an async iterator. When the
 * connection drops it reconnects by itself (backing off up to 2 s) and resumes after the last
 * event it yielded, so every event comes exactly once and in order. Failing to connect the first
 * time throws (`UnavailableError`); once connected it keeps trying until `signal` aborts or the
 * loop ends. Errors the server answers (unknown machine, wrong key, `events_expired`) end the
 * stream with a typed error.
 */
export async function* streamLifecycleEvents(
  transport: Transport,
  machineId: string,
  opts: StreamEventsOptions = {},
): AsyncGenerator<LifecycleEvent, void, undefined> {
  if (opts.liveOnly === true && opts.afterEventId !== undefined)
    throw new InvalidArgumentError(
      'invalid_argument',
      'liveOnly: cannot be combined with afterEventId (liveOnly skips the replay afterEventId asks for)',
      { details: { field: 'liveOnly' } },
    );
  // The resume point: every event of this machine up to it has been yielded (or was removed by
  // retention before the first connection, when no afterEventId was given).
  let last = opts.afterEventId;
  let backoff = FIRST_BACKOFF_MS;
  let connectedOnce = false;
  const base = `${transport.apiUrl.replace(/^http/, 'ws')}/v1/machines/${encodeURIComponent(machineId)}/lifecycle/ws`;
  while (!opts.signal?.aborted) {
    const query = new URLSearchParams();
    if (last !== undefined) query.set('after_event_id', String(last));
    else if (opts.liveOnly === true) query.set('live_only', 'true');
    const conn = new Connection(`${base}?${query}`, transport.authHeaders(), opts.signal);
    try {
      for (;;) {
        let m: LifecycleWsMessage | undefined;
        try {
          m = await conn.next();
        } catch (err) {
          // A server that is stopping or starting says `unavailable`: like a drop, once connected.
          if (!(connectedOnce && err instanceof UnavailableError)) throw err;
        }
        if (m === undefined) break; // closed: reconnect
        backoff = FIRST_BACKOFF_MS;
        if (m.type === 'event') {
          if (last !== undefined && m.event.id <= last) continue;
          last = m.event.id;
          yield lifecycleEventFromWire(m.event);
        } else if (m.type === 'live') {
          last = Math.max(last ?? 0, m.last_event_id);
        } else if (m.type === 'events_expired') {
          throw errorFromCode('events_expired', m.message, {
            status: 410,
            details: { after_event_id: m.after_event_id, oldest_event_id: m.oldest_event_id },
          });
        }
      }
    } finally {
      conn.close();
    }
    if (opts.signal?.aborted) return;
    if (!connectedOnce && !conn.opened)
      throw new UnavailableError(
        'unavailable',
        `cannot open the lifecycle WebSocket at ${base} (${conn.failureReason ?? 'connection closed'})`,
        { details: { url: base, reason: conn.failureReason ?? 'closed' } },
      );
    if (conn.opened) connectedOnce = true;
    await sleep(backoff, opts.signal);
    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** One WebSocket, read as a queue of messages; `undefined` once it closed or failed to connect. */
class Connection {
  /** Whether the upgrade succeeded. */
  opened = false;
  /** Why the connection could not be opened or broke (a system error code or message). */
  failureReason: string | undefined;
  private readonly ws: WebSocket;
  private readonly queue: LifecycleWsMessage[] = [];
  private waiting: ((m: LifecycleWsMessage | undefined) => void) | undefined;
  private ended = false;
  private refusal: NullspaceError | undefined;
  private idle: ReturnType<typeof setTimeout> | undefined;
  private readonly signal: AbortSignal | undefined;
  private readonly onAbort = () => this.close();

  constructor(url: string, headers: Record<string, string>, signal?: AbortSignal) {
    this.signal = signal;
    this.ws = new WebSocket(url, { headers, maxPayload: 16 * 1024 * 1024 });
    this.ws.on('open', () => {
      this.opened = true;
      this.touch();
    });
    this.ws.on('ping', () => this.touch());
    this.ws.on('message', (data) => {
      this.touch();
      let m: LifecycleWsMessage;
      try {
        m = JSON.parse(String(data)) as LifecycleWsMessage;
      } catch {
        return; // not a message of this protocol
      }
      this.push(m);
    });
    this.ws.on('unexpected-response', (_req, res) => {
      // The server refused the upgrade with an error body: that is final, not a dropped connection.
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => {
        let err: { code?: string; message?: string; details?: Record<string, unknown> } | undefined;
        try {
          err = (JSON.parse(body) as { error?: typeof err }).error;
        } catch {
          // not a Nullspace error body
        }
        const requestId = res.headers['x-request-id'];
        this.refusal = errorFromCode(err?.code, err?.message ?? `HTTP ${res.statusCode}`, {
          status: res.statusCode ?? 500,
          ...(typeof requestId === 'string' ? { requestId } : {}),
          ...(err?.details ? { details: err.details } : {}),
        });
        this.end();
      });
    });
    this.ws.on('close', () => this.end());
    this.ws.on('error', (err: Error & { code?: string }) => {
      this.failureReason = err.code ?? err.message;
      this.end();
    });
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  async next(): Promise<LifecycleWsMessage | undefined> {
    const queued = this.queue.shift();
    if (queued !== undefined) {
      if (this.queue.length < QUEUE_LOW && this.ws.isPaused) this.ws.resume();
      return queued;
    }
    if (!this.ended) {
      const got = await new Promise<LifecycleWsMessage | undefined>((resolve) => {
        this.waiting = resolve;
      });
      if (got !== undefined) return got;
    }
    if (this.refusal) throw this.refusal;
    return undefined;
  }

  close(): void {
    this.ws.removeAllListeners('message');
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN)
      this.ws.terminate();
    this.end();
  }

  /** Restarts the idle clock: something arrived. */
  private touch(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      // Paused by a slow consumer: silence is ours, not the server's.
      if (this.ws.isPaused) {
        this.touch();
        return;
      }
      this.failureReason = `nothing received for ${IDLE_LIMIT_MS / 1000} s`;
      this.close();
    }, IDLE_LIMIT_MS);
  }

  private push(m: LifecycleWsMessage): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w(m);
      return;
    }
    this.queue.push(m);
    // A consumer that does not keep up stops the reading, so the server sees the backpressure (and
    // drops the connection past its bound; the stream then resumes after the last yielded event).
    if (this.queue.length >= QUEUE_HIGH && !this.ws.isPaused) this.ws.pause();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.idle);
    this.signal?.removeEventListener('abort', this.onAbort);
    const w = this.waiting;
    this.waiting = undefined;
    w?.(undefined);
  }
}
