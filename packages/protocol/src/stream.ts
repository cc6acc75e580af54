/**
 * The byte stream of a running process (or terminal), shared by every hop: agent → server →
 * client. Output stays bytes end to end, so output that is not UTF-8 survives unchanged.
 *
 * Over HTTP (a streaming run, `content-type: application/vnd.nullspace.stream`) a stream is a
 * sequence of frames `[kind: u8][length: u32 big-endian][payload]`. Over WebSocket every binary
 * message is one frame without the length: `[kind: u8][payload]`.
 *
 * Kinds: 0 a JSON event (UTF-8), 1 stdout (or terminal output), 2 stderr. From the client, kind 1
 * is stdin (terminal input) and kind 0 a JSON control message.
 */
export const FRAME = { event: 0, stdout: 1, stderr: 2 } as const;
export type FrameKind = (typeof FRAME)[keyof typeof FRAME];
export const STREAM_CONTENT_TYPE = 'application/vnd.nullspace.stream';
/** Keepalive period of every process stream (HTTP frames and WebSocket pings). */
export const STREAM_KEEPALIVE_MS = 15_000;

/** What a stream says besides output. Offsets count output bytes (stdout and stderr together). */
export type StreamEvent =
  | { type: 'start'; pid: number; tag: string | null; offset: number }
  | {
      type: 'exit';
      pid: number;
      exit_code: number | null;
      signal: string | null;
      timed_out: boolean;
      duration_ms: number;
      offset: number;
    }
  /** Output between `from` and `to` was dropped before this client read it (retention is bounded). */
  | { type: 'gap'; from: number; to: number }
  | { type: 'keepalive' }
  /** The stream ends without the process ending (the machine is being checkpointed, or stopped). */
  | { type: 'interrupted'; reason: string }
  | { type: 'error'; code: string; message: string };

/** What a client may send on an attached WebSocket (kind 0). */
export type StreamControl =
  | { type: 'close_stdin' }
  | { type: 'signal'; signal: string }
  | { type: 'resize'; cols: number; rows: number };

export function encodeFrame(kind: FrameKind, payload: Buffer): Buffer {
  const head = Buffer.allocUnsafe(5);
  head[0] = kind;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export function encodeEventFrame(event: StreamEvent): Buffer {
  return encodeFrame(FRAME.event, Buffer.from(JSON.stringify(event)));
}

/** A JSON event (or a client's control message) as one WebSocket message: `[0][json]`. */
export function encodeEventMessage(event: StreamEvent | StreamControl): Buffer {
  return encodeMessage(FRAME.event, Buffer.from(JSON.stringify(event)));
}

/** A WebSocket message: `[kind][payload]`. */
export function encodeMessage(kind: FrameKind, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(payload.length + 1);
  out[0] = kind;
  payload.copy(out, 1);
  return out;
}

export interface Frame {
  kind: number;
  payload: Buffer;
}

/** Splits an HTTP frame stream back into frames, whatever the chunking. */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes needed before the next frame is whole (0: not known yet). */
  private need = 5;

  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Frame[] = [];
    if (this.pendingBytes < this.need) return frames;
    let buf = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
    let at = 0;
    while (buf.length - at >= 5) {
      const len = buf.readUInt32BE(at + 1);
      if (buf.length - at - 5 < len) break;
      frames.push({ kind: buf[at] as number, payload: buf.subarray(at + 5, at + 5 + len) });
      at += 5 + len;
    }
    buf = buf.subarray(at);
    this.pending = buf.length ? [buf] : [];
    this.pendingBytes = buf.length;
    this.need = buf.length >= 5 ? 5 + buf.readUInt32BE(1) : 5;
    return frames;
  }

  /** Bytes of an unfinished frame left over (non-zero at the end means the stream was cut). */
  get leftover(): number {
    return this.pendingBytes;
  }
}

export function parseEvent(payload: Buffer): StreamEvent {
  return JSON.parse(payload.toString('utf8')) as StreamEvent;
}

/**
 * A stream's bytes collected up to a cap (a foreground run's result: 16 MiB per stream),
 * remembering whether anything was dropped.
 */
export class CappedBytes {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    const room = this.cap - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part !== chunk) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }

  text(encoding: 'utf8' | 'base64' = 'utf8'): string {
    return this.bytes().toString(encoding);
  }
}
