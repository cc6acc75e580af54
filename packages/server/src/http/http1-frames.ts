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

/** Node's own limit for a request head (`--max-http-header-size`, 16 KiB). */
export const MAX_REQUEST_HEAD_BYTES = 16 * 1024;

export interface RequestHead {
  method: string;
  /** The request target as sent (origin-form or absolute-form; never checked further here). */
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: 0 | 1;
  /** Lowercase names in the order received; repeated names keep each value. */
  headers: [string, string][];
  /** The names as sent and their values, alternating (as `IncomingMessage.rawHeaders`). */
  rawHeaders: string[];
  /** Bytes of the head, the blank line included. */
  length: number;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A request target of visible ASCII only (anything else is left to Node's parser). */
const TARGET = /^[\x21-\x7e]+$/;
/** A field value: visible characters, spaces, tabs and obs-text; no other control character. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The request head at the start of `buf`: `undefined` while incomplete (and under
 * {@link MAX_REQUEST_HEAD_BYTES}), `null` when it is not one this strict reading accepts (too
 * large, a bare CR or LF, folded or malformed lines, a version other than 1.0 or 1.1). A `null` is
 * no verdict on the request: the caller hands it to Node's parser, which answers it as it always
 * did. Only heads read the same way by any HTTP/1.1 parser are accepted here.
 */
export function parseRequestHead(buf: Buffer): RequestHead | null | undefined {
  const end = buf.indexOf(CRLFCRLF);
  if (end < 0) return buf.length > MAX_REQUEST_HEAD_BYTES ? null : undefined;
  if (end + 4 > MAX_REQUEST_HEAD_BYTES) return null;
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const parts = (lines[0] ?? '').split(' ');
  if (parts.length !== 3) return null;
  const [method, target, version] = parts as [string, string, string];
  if (!TOKEN.test(method) || !TARGET.test(target)) return null;
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') return null;
  const headers: [string, string][] = [];
  const rawHeaders: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) return null;
    headers.push([name.toLowerCase(), value]);
    rawHeaders.push(name, value);
  }
  return { method, target, minor: version === 'HTTP/1.1' ? 1 : 0, headers, rawHeaders, length: end + 4 };
}

/** How a request's body ends: none, a Content-Length, or chunked. */
export type RequestFraming = { kind: 'none' } | { kind: 'length'; bytes: number } | { kind: 'chunked' };

/**
 * The framing of a request's body (RFC 9112 §6.1–6.3), or `null` for any head that is ambiguous
 * or unusual: both Transfer-Encoding and Content-Length (the classic request-smuggling head), a
 * repeated or malformed length, any coding but one `chunked`. Those are left to Node's parser.
 */
export function requestFraming(head: RequestHead): RequestFraming | null {
  const te = head.headers.filter(([k]) => k === 'transfer-encoding');
  const cl = head.headers.filter(([k]) => k === 'content-length');
  if (te.length > 0) {
    if (te.length > 1 || cl.length > 0 || te[0]?.[1].toLowerCase() !== 'chunked') return null;
    return { kind: 'chunked' };
  }
  if (cl.length === 0) return { kind: 'none' };
  const v = cl[0]?.[1] ?? '';
  if (cl.length > 1 || !/^\d{1,15}$/.test(v)) return null;
  const bytes = Number(v);
  return bytes === 0 ? { kind: 'none' } : { kind: 'length', bytes };
}
