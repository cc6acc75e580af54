import type {
  LifecycleEventType,
  LifecycleEventsPage,
  LifecycleWsMessage,
  MachineState,
  LifecycleEvent as WireEvent,
} from '@nullspace/protocol';
import WebSocket from 'ws';
import { type NullspaceError, errorFromCode } from './errors.js';
import type { Transport } from './transport.js';

/**
 * One lifecycle event of a machine: a state change, its creation, a timeout, a snapshot or a fork.
 *
 * @example
 * ```ts
 * for await (const e of machine.streamEvents()) console.log(e.id, e.type, e.previousStatus, '→', e.status);
 * ```
 */
export interface LifecycleEvent {
  /** Strictly increasing across the server; pass the last one you handled as `afterEventId`. */
  id: number;
  machineId: string;
  executionId: string;
  type: LifecycleEventType;
  /** The machine's status right after the event. */
  status: MachineState;
  previousStatus: MachineState | null;
  reason: string | null;
  data: Record<string, unknown>;
  at: Date;
}

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
  /** Skip the replay: only events from now on. */
  liveOnly?: boolean;
  /** Ends the stream (the loop then finishes without an error). */
  signal?: AbortSignal;
}

export function lifecycleEventFromWire(e: WireEvent): LifecycleEvent {
  return {
    id: e.id,
    machineId: e.machine_id,
    executionId: e.execution_id,
    type: e.type,
    status: e.status,
    previousStatus: e.previous_status,
    reason: e.reason,
    data: e.data,
    at: new Date(e.at),
  };
}

/**
 * Options of {@link Machine.listEvents}.
 *
 * @example
 * ```ts
 * const opts: ListEventsOptions = { afterEventId: 10, limit: 50, waitMs: 5000 };
 * ```
 */
export interface ListEventsOptions {
  afterEventId?: number;
  /** At most this many (1..1000, default 100). */
  limit?: number;
  /** When there is nothing after `afterEventId`, wait up to this long for the next event (long poll). */
  waitMs?: number;
}

/** One page of events from the polling route; `lastEventId` is the `afterEventId` of the next call. */
export async function listLifecycleEvents(
  transport: Transport,
  machineId: string,
  opts: ListEventsOptions = {},
): Promise<{ events: LifecycleEvent[]; lastEventId: number }> {
  const query = new URLSearchParams();
  if (opts.afterEventId !== undefined) query.set('after_event_id', String(opts.afterEventId));
  if (opts.limit !== undefined) query.set('limit', String(opts.limit));
  if (opts.waitMs !== undefined) query.set('wait_ms', String(opts.waitMs));
  const page = await transport.request<LifecycleEventsPage>({
    method: 'GET',
    path: `/v1/machines/${encodeURIComponent(machineId)}/lifecycle/events`,
    query,
    timeoutMs: transport.requestTimeoutMs + (opts.waitMs ?? 0),
  });
  return { events: page.events.map(lifecycleEventFromWire), lastEventId: page.last_event_id };
}

const MAX_BACKOFF_MS = 2_000;

/**
 * The machine's lifecycle events over the server's WebSocket, as an async iterator. When the
 * connection drops it reconnects by itself (backing off up to 2 s) and resumes after the last event
 * it yielded, so every event comes exactly once and in order. Errors the server answers (unknown
 * machine, wrong key, `events_expired`) end the stream with a typed error.
 */
export async function* streamLifecycleEvents(
  transport: Transport,
  machineId: string,
  opts: StreamEventsOptions = {},
): AsyncGenerator<LifecycleEvent, void, undefined> {
  let last = opts.afterEventId;
  let liveOnly = opts.liveOnly === true;
  let backoff = 50;
  while (!opts.signal?.aborted) {
    const query = new URLSearchParams();
    if (last !== undefined) query.set('after_event_id', String(last));
    else if (liveOnly) query.set('live_only', 'true');
    const url = `${transport.apiUrl.replace(/^http/, 'ws')}/v1/machines/${encodeURIComponent(machineId)}/lifecycle/ws?${query}`;
    const conn = new Connection(url, transport.authHeaders(), opts.signal);
    try {
      for (;;) {
        const m = await conn.next();
        if (m === undefined) break; // closed: reconnect
        backoff = 50;
        if (m.type === 'event') {
          if (last !== undefined && m.event.id <= last) continue;
          last = m.event.id;
          yield lifecycleEventFromWire(m.event);
        } else if (m.type === 'live') {
          if (last === undefined && liveOnly) last = m.last_event_id;
          liveOnly = false;
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
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
  }
}

/** One WebSocket, read as a queue of messages; `undefined` once it closed or failed to connect. */
class Connection {
  private readonly ws: WebSocket;
  private readonly queue: LifecycleWsMessage[] = [];
  private waiting: ((m: LifecycleWsMessage | undefined) => void) | undefined;
  private ended = false;
  private failure: NullspaceError | undefined;

  constructor(url: string, headers: Record<string, string>, signal?: AbortSignal) {
    this.ws = new WebSocket(url, { headers, maxPayload: 16 * 1024 * 1024 });
    this.ws.on('message', (data) => {
      try {
        this.push(JSON.parse(String(data)) as LifecycleWsMessage);
      } catch {
        // not ours; ignore
      }
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
          // no JSON
        }
        this.failure = errorFromCode(err?.code, err?.message ?? `HTTP ${res.statusCode}`, {
          status: res.statusCode ?? 500,
          ...(err?.details ? { details: err.details } : {}),
        });
        this.end();
      });
    });
    this.ws.on('close', () => this.end());
    this.ws.on('error', () => this.end());
    signal?.addEventListener('abort', () => this.close(), { once: true });
  }

  async next(): Promise<LifecycleWsMessage | undefined> {
    const m = this.queue.shift();
    if (m !== undefined) return m;
    if (this.ended) {
      if (this.failure) throw this.failure;
      return undefined;
    }
    const got = await new Promise<LifecycleWsMessage | undefined>((resolve) => {
      this.waiting = resolve;
    });
    if (got === undefined && this.failure) throw this.failure;
    return got;
  }

  close(): void {
    this.ws.removeAllListeners('message');
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN)
      this.ws.terminate();
    this.end();
  }

  private push(m: LifecycleWsMessage): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w(m);
    } else this.queue.push(m);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    const w = this.waiting;
    this.waiting = undefined;
    w?.(undefined);
  }
}
