/**
 * The little of HTTP/1.1 the preview proxy reads itself on its upstream connection: a response
 * head, and where a response body ends (Content-Length, chunked, or the connection's end), so that
 * the body's bytes can be relayed as they arrived instead of being parsed, copied and framed again.
 */

/** A response head larger than this is refused (Node's own default limit is 16 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;

export interface ResponseHead {
  status: number;
  statusMessage: string;
  /** Lowercase names in the order received; repeated names keep each value. */
  headers: [string, string][];
  /** Bytes of the head, the blank line included. */
  length: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * The response head at the start of `buf`, `undefined` while it is incomplete; throws on a head
 * that is malformed or larger than {@link MAX_HEAD_BYTES}.
 */
export function parseResponseHead(buf: Buffer): ResponseHead | undefined {
  const end = buf.indexOf(CRLFCRLF);
  if (end < 0) {
    if (buf.length > MAX_HEAD_BYTES) throw new Error('response head too large');
    return undefined;
  }
  if (end > MAX_HEAD_BYTES) throw new Error('response head too large');
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!status) throw new Error('malformed status line');
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const last = headers[headers.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      last[1] = `${last[1]} ${line.trim()}`; // obsolete line folding
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(line.slice(0, colon)))
      throw new Error('malformed header line');
    headers.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return { status: Number(status[1]), statusMessage: status[2] ?? '', headers, length: end + 4 };
}

/** How a response's body ends (RFC 9112 §6.3), for a response to `method`. */
export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; bytes: number }
  | { kind: 'chunked' }
  | { kind: 'close' };

export function bodyFraming(method: string, head: ResponseHead): BodyFraming {
  if (method === 'HEAD' || head.status === 204 || head.status === 304 || head.status < 200)
    return { kind: 'none' };
  const te = head.headers.filter(([k]) => k === 'transfer-encoding').map(([, v]) => v.toLowerCase());
  if (te.length > 0) {
    const codings = te
      .join(',')
      .split(',')
      .map((c) => c.trim());
    return codings[codings.length - 1] === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  const lengths = new Set(
    head.headers
      .filter(([k]) => k === 'content-length')
      .flatMap(([, v]) => v.split(',').map((x) => x.trim())),
  );
  if (lengths.size === 0) return { kind: 'close' };
  const [only] = lengths;
  if (lengths.size > 1 || !/^\d{1,15}$/.test(only ?? '')) throw new Error('invalid content-length');
  return { kind: 'length', bytes: Number(only) };
}

/**
 * Reads a chunked body as its bytes go by: `feed` hands each piece of chunk data to `onData` (a
 * view of the buffer, not a copy) and says how many bytes of the buffer the body used; `done` once
 * its last chunk, trailers (dropped) and final blank line have gone by. Bytes after it are left.
 */
export class ChunkedReader {
  private state: 'size' | 'ext' | 'size-lf' | 'data' | 'data-cr' | 'data-lf' | 'trailer' | 'trailer-lf' =
    'size';
  private size = 0;
  private digits = 0;
  private left = 0;
  private lineEmpty = true;
  done = false;

  feed(buf: Buffer, onData: (piece: Buffer) => void): number {
    let i = 0;
    const n = buf.length;
    while (i < n && !this.done) {
      const c = buf[i] as number;
      switch (this.state) {
        case 'data': {
          const take = Math.min(this.left, n - i);
          onData(buf.subarray(i, i + take));
          i += take;
          this.left -= take;
          if (this.left === 0) this.state = 'data-cr';
          continue;
        }
        case 'size': {
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > 12) throw new Error('chunk size too large');
            this.size = this.size * 16 + v;
          } else if (this.digits > 0 && (c === 0x3b || c === 0x20 || c === 0x09)) this.state = 'ext';
          else if (this.digits > 0 && c === 0x0d) this.state = 'size-lf';
          else throw new Error('malformed chunk size');
          break;
        }
        case 'ext':
          if (c === 0x0d) this.state = 'size-lf';
          break;
        case 'size-lf':
          if (c !== 0x0a) throw new Error('malformed chunk size line');
          this.left = this.size;
          this.state = this.size === 0 ? 'trailer' : 'data';
          this.size = 0;
          this.digits = 0;
          this.lineEmpty = true;
          break;
        case 'data-cr':
          if (c !== 0x0d) throw new Error('chunk longer than its size');
          this.state = 'data-lf';
          break;
        case 'data-lf':
          if (c !== 0x0a) throw new Error('chunk longer than its size');
          this.state = 'size';
          break;
        case 'trailer':
          if (c === 0x0d) this.state = 'trailer-lf';
          else this.lineEmpty = false;
          break;
        case 'trailer-lf':
          if (c !== 0x0a) throw new Error('malformed trailer');
          if (this.lineEmpty) this.done = true;
          else {
            this.lineEmpty = true;
            this.state = 'trailer';
          }
          break;
      }
      i++;
    }
    return i;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
