import type { FRAME } from '@nullspace/protocol/core';

export type OutKind = typeof FRAME.stdout | typeof FRAME.stderr;

export interface OutChunk {
  offset: number;
  kind: OutKind;
  data: Buffer;
}

/**
 * A process's output as one ordered byte log (stdout and stderr interleaved as they came), of which
 * the newest `cap` bytes are kept. Offsets count every byte ever written, so a reader that comes
 * back with the offset it reached gets exactly what follows, or learns how much it missed.
 */
export class OutputLog {
  private chunks: OutChunk[] = [];
  private retained = 0;
  /** Offset of the first byte still kept. */
  start = 0;
  /** Offset one past the last byte written. */
  end = 0;

  constructor(private cap: number) {}

  append(kind: OutKind, data: Buffer): OutChunk {
    const chunk = { offset: this.end, kind, data };
    this.chunks.push(chunk);
    this.end += data.length;
    this.retained += data.length;
    this.trim();
    return chunk;
  }

  /** Changes how much is kept (dropping the oldest output at once when it shrinks). */
  setCap(cap: number): void {
    this.cap = cap;
    this.trim();
  }

  private trim(): void {
    while (this.retained > this.cap) {
      const first = this.chunks[0] as OutChunk;
      const over = this.retained - this.cap;
      if (first.data.length <= over) {
        this.chunks.shift();
        this.retained -= first.data.length;
        this.start = first.offset + first.data.length;
      } else {
        // Keep the tail of the oldest chunk (a copy, so the dropped part can be freed).
        this.chunks[0] = {
          offset: first.offset + over,
          kind: first.kind,
          data: Buffer.from(first.data.subarray(over)),
        };
        this.retained -= over;
        this.start = first.offset + over;
      }
    }
  }

  /** Bytes kept now. */
  get retainedBytes(): number {
    return this.retained;
  }

  /** Drops everything kept (offsets stay: a reader learns what it missed). */
  release(): void {
    this.chunks = [];
    this.retained = 0;
    this.start = this.end;
  }

  /** The kept chunks from `offset` on (the first one cut to start there), at most `limit` bytes. */
  since(offset: number, limit = Number.POSITIVE_INFINITY): { from: number; chunks: OutChunk[] } {
    const from = Math.max(offset, this.start);
    const out: OutChunk[] = [];
    let bytes = 0;
    for (const c of this.chunks) {
      const cEnd = c.offset + c.data.length;
      if (cEnd <= from) continue;
      let data = c.offset < from ? c.data.subarray(from - c.offset) : c.data;
      if (bytes + data.length > limit) data = data.subarray(0, limit - bytes);
      if (data.length === 0) break;
      out.push({ offset: Math.max(c.offset, from), kind: c.kind, data });
      bytes += data.length;
      if (bytes >= limit) break;
    }
    return { from, chunks: out };
  }
}
