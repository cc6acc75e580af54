import {
  COMMAND_LIMITS,
  CappedBytes,
  FRAME,
  type FrameKind,
  type StreamEvent,
  encodeMessage,
} from '@nullspace/protocol';
import WebSocket from 'ws';
import { type NullspaceError, UnavailableError, errorFromCode } from './errors.js';
import type { Transport } from './transport.js';

/**
 * Callbacks for a process's output as it comes. Text callbacks get UTF-8 decoded text (a character
 * split across chunks is kept whole); `onData` gets the exact bytes.
 *
 * @example
 * ```ts
 * await machine.commands.run('make', { onStdout: (s) => process.stdout.write(s) });
 * ```
 */
export interface OutputCallbacks {
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
  /** Every output chunk as bytes, stdout and stderr in the order they were written. */
  onData?: (bytes: Buffer, stream: 'stdout' | 'stderr') => void;
}

export type ExitEvent = Extract<StreamEvent, { type: 'exit' }>;

/**
 * What one client knows of a process's stream: the offset it has read up to (the resume point of
 * a re-attach), the output it keeps (bounded), and the exit once seen.
 *
 * @internal
 */
export class StreamState {
  pid: number | undefined;
  tag: string | null = null;
  offset = 0;
  exit: ExitEvent | undefined;
  /** Output bytes the server no longer had when this client re-attached. */
  droppedBytes = 0;
  /** Output kept for the result: up to 16 MiB per stream, like a foreground run. */
  readonly out = new CappedBytes(COMMAND_LIMITS.maxOutputBytes);
  readonly err = new CappedBytes(COMMAND_LIMITS.maxOutputBytes);
  private readonly decOut = new TextDecoder('utf-8');
  private readonly decErr = new TextDecoder('utf-8');
  private readonly exitWaiters: ((e: ExitEvent) => void)[] = [];

  constructor(public callbacks: OutputCallbacks) {}

  /** Takes one frame; returns the event if it was one. */
  take(kind: number, payload: Buffer): StreamEvent | undefined {
    if (kind === FRAME.stdout || kind === FRAME.stderr) {
      const isOut = kind === FRAME.stdout;
      this.offset += payload.length;
      (isOut ? this.out : this.err).push(payload);
      this.callbacks.onData?.(payload, isOut ? 'stdout' : 'stderr');
      const cb = isOut ? this.callbacks.onStdout : this.callbacks.onStderr;
      if (cb) {
        const text = (isOut ? this.decOut : this.decErr).decode(payload, { stream: true });
        if (text) cb(text);
      }
      return undefined;
    }
    if (kind !== FRAME.event) return undefined;
    const ev = JSON.parse(payload.toString('utf8')) as StreamEvent;
    if (ev.type === 'start') {
      this.pid = ev.pid;
      this.tag = ev.tag;
      // A re-attach resumes where this client was, or later when that output was dropped.
      this.offset = Math.max(this.offset, ev.offset);
    } else if (ev.type === 'gap') {
      this.droppedBytes += ev.to - ev.from;
      this.offset = ev.to;
    } else if (ev.type === 'exit') {
      this.exit = ev;
      for (const w of this.exitWaiters.splice(0)) w(ev);
    }
    return ev;
  }

  waitExit(): Promise<ExitEvent> {
    if (this.exit) return Promise.resolve(this.exit);
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }
}

const FIRST_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 1_000;
/** The server pings every 20 s: this much silence means the connection is dead. */
const IDLE_LIMIT_MS = 45_000;

/**
 * Keeps a process's WebSocket attached until the process exits: a connection that drops, or that
 * the server ends because the machine is being checkpointed, is re-opened from the offset reached,
 * so output comes exactly once and in order. Errors the server answers that will not change (the
 * process or machine is gone) end it with a typed error.
 *
 * @internal
 */
export class Attachment {
  private ws: WebSocket | undefined;
  stopped = false;
  private readonly done: Promise<void>;

  constructor(
    private readonly transport: Transport,
    /** e.g. `/v1/machines/mch_x/commands/123/ws`. */
    private readonly path: string,
    private readonly state: StreamState,
  ) {
    this.done = this.loop();
    this.done.catch(() => undefined);
  }

  /** Resolves when the process exited (or `stop` was called); rejects when attaching is impossible. */
  finished(): Promise<void> {
    return this.done;
  }

  /** Sends a frame (stdin bytes or a control message) on the open socket; false when not open. */
  send(kind: number, payload: Buffer): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(encodeMessage(kind as FrameKind, payload));
    return true;
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Stops attaching (the process goes on). */
  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }

  private async loop(): Promise<void> {
    let backoff = FIRST_BACKOFF_MS;
    let everOpened = false;
    while (!this.stopped && !this.state.exit) {
      const url = `${this.transport.apiUrl.replace(/^http/, 'ws')}${this.path}?offset=${this.state.offset}`;
      const outcome = await this.once(url);
      if (outcome.opened) {
        everOpened = true;
        backoff = FIRST_BACKOFF_MS;
      }
      if (this.state.exit || this.stopped) return;
      if (outcome.error) {
        const code = outcome.error.code;
        const status = (outcome.error.details as { status?: unknown } | undefined)?.status;
        // Waiting out a transition or a paused machine is worth it; a missing process or a killed machine is not.
        const transient =
          code === 'unavailable' ||
          code === 'machine_transitioning' ||
          (code === 'invalid_state' && (status === 'paused' || status === 'hibernated'));
        if (!transient) throw outcome.error;
      } else if (!outcome.opened && !everOpened) {
        throw new UnavailableError('unavailable', `cannot attach at ${url} (${outcome.reason ?? 'closed'})`, {
          details: { url, reason: outcome.reason ?? 'closed' },
        });
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    }
  }

  private once(url: string): Promise<{ opened: boolean; error?: NullspaceError; reason?: string }> {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, {
        headers: this.transport.authHeaders(),
        maxPayload: 64 * 1024 * 1024,
        perMessageDeflate: false,
      });
      this.ws = ws;
      let opened = false;
      let error: NullspaceError | undefined;
      let lastError: NullspaceError | undefined;
      let reason: string | undefined;
      let idle: ReturnType<typeof setTimeout> | undefined;
      const touch = () => {
        clearTimeout(idle);
        idle = setTimeout(() => ws.terminate(), IDLE_LIMIT_MS);
      };
      ws.on('open', () => {
        opened = true;
        touch();
      });
      ws.on('ping', touch);
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        touch();
        if (!isBinary || data.length === 0) return;
        const ev = this.state.take(data[0] as number, data.subarray(1));
        if (ev?.type === 'error') lastError = errorFromCode(ev.code, ev.message, {});
      });
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => {
          let e: { code?: string; message?: string; details?: Record<string, unknown> } | undefined;
          try {
            e = (JSON.parse(body) as { error?: typeof e }).error;
          } catch {
            // not a Nullspace error body
          }
          error = errorFromCode(e?.code, e?.message ?? `HTTP ${res.statusCode}`, {
            status: res.statusCode ?? 500,
            ...(e?.details ? { details: e.details } : {}),
          });
          ws.terminate();
        });
      });
      ws.on('error', (err: Error & { code?: string }) => {
        reason = err.code ?? err.message;
      });
      ws.on('close', (code, why) => {
        clearTimeout(idle);
        // 4000+: the server or agent refused for good (the reason is the error code).
        if (code >= 4000 && !error)
          error = lastError ?? errorFromCode(why.toString() || undefined, `attach refused (${code})`, {});
        resolve({ opened, ...(error ? { error } : {}), ...(reason ? { reason } : {}) });
      });
    });
  }
}
