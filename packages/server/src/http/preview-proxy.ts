import type http from 'node:http';
import type { OnReadOpts, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  CodedError,
  PREVIEW_COOKIE,
  PREVIEW_PROXY_TOKEN_HEADER,
  PREVIEW_QUERY_PARAM,
  PREVIEW_TOKEN_HEADER,
  parsePreviewHost,
} from '@nullspace/protocol';
import type { Logger } from '../log.js';
import type { MachineService, PortLease } from '../services/machines/machine-service.js';
import type { PreviewAccess, PreviewService, PreviewTarget } from '../services/preview-service.js';
import {
  type BodyFraming,
  ChunkedReader,
  type ResponseHead,
  bodyFraming,
  parseResponseHead,
} from './http1-frames.js';
import { FIRST_WINS, QUEUED_BYTES, type RawRequestBody } from './preview-front.js';
import { RelayedBytes } from './young-gc.js';

/** Headers of one hop only (RFC 9110 §7.6.1), and the preview's own credentials. */
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  PREVIEW_TOKEN_HEADER,
  PREVIEW_PROXY_TOKEN_HEADER,
]);

export interface PreviewProxyOptions {
  previews: PreviewService;
  machines: MachineService;
  domain: () => string;
  scheme: 'http' | 'https';
  /** How long a request waits for a paused or hibernated machine to resume before a 503. */
  wakeTimeoutMs: number;
  log: Logger;
}

/**
 * The preview front: requests whose Host is `PORT-MACHINE.<preview domain>` are proxied to that
 * port of the machine (HTTP and WebSocket, bodies streamed both ways with backpressure), once
 * their grant is checked and the machine is awake. The service sees the original Host (or the
 * machine's `mask_request_host`), `x-forwarded-*`, and none of the preview's credentials.
 */
export class PreviewProxy {
  constructor(private readonly o: PreviewProxyOptions) {}

  route(req: http.IncomingMessage): PreviewTarget | undefined {
    return this.routeHost(req.headers.host);
  }

  routeHost(host: string | undefined): PreviewTarget | undefined {
    return parsePreviewHost(host, this.o.domain());
  }

  /**
   * Proxies one HTTP request on a connection of its own to the machine's port. (Kept upstream
   * connections were tried: they save ~0.2 ms, but a service that writes its head and body apart,
   * such as Python's http.server, then meets Nagle's algorithm and the delayed ACK: 40 ms a
   * request.) A refusal (grant, machine state, nothing listening) is thrown before any response,
   * for the caller to answer.
   *
   * Past the heads, bodies are relayed with as little work per chunk as Node allows: the request's
   * body, when the front door read the request (`body`, preview-front.ts), goes from the client's
   * socket onto the upstream socket as it was read; otherwise from the client's request (copied by
   * Node's parser); framed by us when it is chunked. The response's head is read here (http1-frames.ts) and a body of known length is
   * written as it arrived onto the client's socket, not parsed, copied and framed again by
   * `http.request` and the response object.
   */
  async handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    target: PreviewTarget,
    body?: RawRequestBody,
  ): Promise<void> {
    // The upstream request runs on `socket`, which `end` destroys: closing the response is all a
    // cut adds.
    const abort = () => res.destroy();
    const reads = new Reads();
    const { access, lease, socket, end } = await this.admit(req, url, target, abort, reads);
    const cut = () => {
      abort();
      end();
    };
    res.on('close', end);
    const method = req.method ?? 'GET';
    const chunked = body ? body.chunked : req.headers['transfer-encoding'] !== undefined;
    const headers = this.forwardedHeaders(req, lease, target);
    if (chunked) headers['transfer-encoding'] = 'chunked';
    headers.connection = 'close';
    socket.write(requestHead(method, pathWithoutToken(req.url ?? '/'), headers), 'latin1');
    let response: { head: ResponseHead; rest: Buffer };
    try {
      if (body) body.pipe(socket);
      else sendBody(req, socket, chunked);
      response = await readResponseHead(socket, reads);
    } catch (err) {
      end();
      const e = err as NodeJS.ErrnoException;
      throw new CodedError('unavailable', `the service on port ${target.port} closed the connection`, {
        port: target.port,
        reason: e.code ?? (e.message && e.message !== 'closed' ? 'bad_response' : 'closed'),
      });
    }
    const { head, rest } = response;
    socket.on('error', cut);
    let framing: BodyFraming;
    try {
      framing = bodyFraming(method, head);
    } catch {
      end();
      throw new CodedError('unavailable', `the service on port ${target.port} sent a malformed response`, {
        port: target.port,
        reason: 'bad_response',
      });
    }
    const out: http.OutgoingHttpHeaders = {};
    for (const [k, v] of head.headers) {
      if (NOT_FORWARDED.has(k)) continue;
      const had = out[k];
      if (k === 'set-cookie') out[k] = [...((had as string[] | undefined) ?? []), v];
      else if (had === undefined) out[k] = v;
      else if (!FIRST_WINS.has(k)) out[k] = `${had}, ${v}`;
    }
    if (access.setCookie)
      out['set-cookie'] = [...((out['set-cookie'] as string[] | undefined) ?? []), access.setCookie];
    if (framing.kind === 'length') out['content-length'] = String(framing.bytes);
    res.writeHead(head.status, head.statusMessage, out);
    relayBody(socket, reads, res, framing, rest, cut);
  }

  /**
   * The grant checked, the machine awake (a lease on it), a connection to its port open, and the
   * connection's end: `end` (idempotent) untracks it, releases the lease and closes the socket;
   * revoking the grant, its expiry or the lease's cut call `onCut` and then `end`.
   */
  private async admit(
    req: http.IncomingMessage,
    url: URL,
    target: PreviewTarget,
    onCut: () => void,
    onread?: OnReadOpts,
  ): Promise<{ access: PreviewAccess; lease: PortLease; socket: Socket; end: () => void }> {
    const access = this.o.previews.authorize(req, url, target);
    const { lease, socket } = await this.o.machines.connectPort(target.machineId, target.port, {
      long: true,
      wakeTimeoutMs: this.o.wakeTimeoutMs,
      ...(onread ? { onread } : {}),
    });
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      untrack();
      lease.release();
      socket.destroy();
    };
    const cut = () => {
      onCut();
      end();
    };
    const untrack = this.o.previews.track(access.grant, cut);
    lease.onCut(cut);
    return { access, lease, socket, end };
  }

  /** Proxies a WebSocket (any Upgrade): the handshake and then raw bytes, both ways. */
  async upgrade(
    req: http.IncomingMessage,
    client: Duplex,
    head: Buffer,
    url: URL,
    target: PreviewTarget,
  ): Promise<void> {
    const { lease, socket, end: endUpstream } = await this.admit(req, url, target, () => client.destroy());
    const end = () => {
      endUpstream();
      client.destroy();
    };
    const headers = this.forwardedHeaders(req, lease, target);
    headers.connection = 'Upgrade';
    if (req.headers.upgrade) headers.upgrade = req.headers.upgrade;
    const lines = [`${req.method ?? 'GET'} ${pathWithoutToken(req.url ?? '/')} HTTP/1.1`];
    for (const [k, v] of Object.entries(headers)) for (const one of [v].flat()) lines.push(`${k}: ${one}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) socket.write(head);
    (client as Socket).setNoDelay?.(true);
    socket.pipe(client);
    client.pipe(socket);
    socket.on('error', end);
    client.on('error', end);
    socket.on('close', end);
    client.on('close', end);
  }

  private forwardedHeaders(
    req: http.IncomingMessage,
    lease: PortLease,
    target: PreviewTarget,
  ): Record<string, string | string[]> {
    const drop = new Set(NOT_FORWARDED);
    for (const name of (req.headers.connection ?? '').split(',')) drop.add(name.trim().toLowerCase());
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || drop.has(k)) continue;
      if (k === 'cookie') {
        const rest = String(v)
          .split(';')
          .filter((c) => c.trim().split('=')[0] !== PREVIEW_COOKIE)
          .join(';')
          .trim();
        if (rest) out.cookie = rest;
        continue;
      }
      out[k] = v;
    }
    const mask = lease.machine.network.mask_request_host;
    out.host = mask ? mask.replace('${PORT}', String(target.port)) : (req.headers.host ?? '');
    const peer = req.socket.remoteAddress ?? '';
    const prior = req.headers['x-forwarded-for'];
    out['x-forwarded-for'] = prior ? `${prior}, ${peer}` : peer;
    out['x-forwarded-host'] = req.headers.host ?? '';
    out['x-forwarded-proto'] = this.o.scheme;
    return out;
  }
}

/**
 * The request target as the client sent it (no normalisation), without the grant token: the
 * service never sees it. Names are compared decoded (`ns%5Ftoken` too), as the grant check reads
 * them.
 */
export function pathWithoutToken(raw: string): string {
  const q = raw.indexOf('?');
  if (q < 0) return raw;
  const kept = raw
    .slice(q + 1)
    .split('&')
    .filter((p) => new URLSearchParams(p).keys().next().value !== PREVIEW_QUERY_PARAM);
  return raw.slice(0, q) + (kept.length > 0 ? `?${kept.join('&')}` : '');
}

/** Bodies this process relays through buffers Node allocated for them: freed young (young-gc.ts). */
const relayed = new RelayedBytes();

function requestHead(method: string, path: string, headers: Record<string, string | string[]>): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(headers))
    for (const one of Array.isArray(v) ? v : [v]) head += `${k}: ${one}\r\n`;
  return `${head}\r\n`;
}

/**
 * The client's request body onto the upstream socket as it arrives, with backpressure: as is when
 * its length is known, in chunks of our own when the client sent it chunked (Node has read the
 * client's chunks). Each piece is a buffer Node's parser made for it: counted, so that they are
 * freed by a young-generation collection instead of a full one (young-gc.ts).
 */
function sendBody(req: http.IncomingMessage, socket: Socket, chunked: boolean): void {
  const resume = () => req.resume();
  if (!chunked) {
    // What the client's reads of one turn of the event loop bring goes out in one system call.
    let corked = false;
    const uncork = () => {
      corked = false;
      socket.uncork();
    };
    req.on('data', (c: Buffer) => {
      relayed.add(c.length);
      if (!corked) {
        corked = true;
        socket.cork();
        setImmediate(uncork);
      }
      if (!socket.write(c) && socket.writableLength >= QUEUED_BYTES) {
        req.pause();
        socket.once('drain', resume);
      }
    });
    return;
  }
  req.on('data', (c: Buffer) => {
    if (c.length === 0) return;
    relayed.add(c.length);
    socket.cork();
    socket.write(`${c.length.toString(16)}\r\n`, 'latin1');
    socket.write(c);
    const ok = socket.write('\r\n', 'latin1');
    socket.uncork();
    if (!ok) {
      req.pause();
      socket.once('drain', resume);
    }
  });
  req.on('end', () => socket.write('0\r\n\r\n', 'latin1'));
}

/** Bytes read at once from the service (Node's own reads are 64 KiB). */
const READ_BYTES = 256 * 1024;

/**
 * The upstream socket's reads (`net.connect`'s `onread`): into one buffer of the connection's
 * own, handed to `handler` as a view of it, valid until the handler returns or, when it returns
 * false (the socket pauses), until the socket is resumed. No buffer is allocated per read, so
 * a relayed body makes no garbage for the collector. Reads before a handler is set are kept.
 */
class Reads implements OnReadOpts {
  readonly buffer = Buffer.allocUnsafeSlow(READ_BYTES);
  handler: ((view: Buffer) => boolean) | undefined;
  private early: Buffer[] = [];
  readonly callback = (n: number, buf: Uint8Array): boolean => {
    const view = (buf as Buffer).subarray(0, n);
    if (this.handler) return this.handler(view);
    this.early.push(Buffer.from(view));
    return true;
  };
  /** Sets the handler and hands it what was read before (copies). */
  take(handler: (view: Buffer) => boolean): void {
    this.handler = handler;
    const early = this.early;
    this.early = [];
    for (const b of early) handler(b);
  }
}

/**
 * The service's response head (informational 1xx heads skipped) and the bytes read after it
 * (a copy); rejects when the connection ends or fails first, or the head is malformed. The socket
 * is left paused.
 */
function readResponseHead(socket: Socket, reads: Reads): Promise<{ head: ResponseHead; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (err?: Error, value?: { head: ResponseHead; rest: Buffer }) => {
      if (settled) return;
      settled = true;
      socket.pause();
      reads.handler = undefined;
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', done);
      if (err) reject(err);
      else if (value) resolve(value);
    };
    const onEnd = () => done(new Error('closed'));
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', done);
    reads.take((view) => {
      buf = Buffer.concat([buf, view]);
      try {
        for (;;) {
          const head = parseResponseHead(buf);
          if (!head) return true;
          if (head.status >= 200) {
            done(undefined, { head, rest: buf.subarray(head.length) });
            return false;
          }
          if (head.status === 101) throw new Error('unexpected 101 response');
          buf = buf.subarray(head.length);
        }
      } catch (err) {
        done(err as Error);
        return false;
      }
    });
  });
}

/**
 * The response body from the upstream socket (`rest`: what came with the head) to the client,
 * with backpressure; `cut` when the service's connection ends before the body did or its framing
 * is broken. A body of known length on a socket this response owns goes onto that socket as it
 * was read: reading waits while a write of the read buffer is not yet flushed. Any other (chunked,
 * up to the connection's end, or a pipelined response still queued behind another) is copied
 * into the response object, which frames it for the client.
 */
function relayBody(
  socket: Socket,
  reads: Reads,
  res: http.ServerResponse,
  framing: BodyFraming,
  rest: Buffer,
  cut: () => void,
) {
  if (framing.kind === 'none' || (framing.kind === 'length' && framing.bytes === 0)) {
    res.end();
    return;
  }
  const client = res.socket;
  const raw = framing.kind === 'length' && client !== null && !client.destroyed;
  if (raw) res.flushHeaders();
  const resume = () => socket.resume();
  let finished = false;
  const finish = () => {
    finished = true;
    reads.handler = () => false;
    socket.off('end', onEnd);
    res.end();
  };
  /** Writes a piece; false when reading must wait (resumed once the client can take more). */
  const write = (c: Buffer, view: boolean): boolean => {
    if (raw && client) {
      // A view of the read buffer may be reused only once flushed.
      if (view) {
        client.write(c, flushed);
        return client.writableLength === 0;
      }
      client.write(c);
      if (client.writableLength < QUEUED_BYTES) return true;
      client.once('drain', resume);
      return false;
    }
    if (view) relayed.add(c.length); // a copy, freed young like a request body's pieces
    if (res.write(view ? Buffer.from(c) : c)) return true;
    res.once('drain', resume);
    return false;
  };
  const flushed = () => {
    if (!finished) socket.resume();
  };
  let onData: (c: Buffer, view: boolean) => boolean;
  if (framing.kind === 'length') {
    let left = framing.bytes;
    onData = (c, view) => {
      const piece = c.length > left ? c.subarray(0, left) : c;
      left -= piece.length;
      const more = write(piece, view);
      if (left === 0) finish();
      return more && !finished;
    };
  } else if (framing.kind === 'chunked') {
    const reader = new ChunkedReader();
    onData = (c, view) => {
      let more = true;
      try {
        reader.feed(c, (piece) => {
          more = write(piece, view) && more;
        });
      } catch {
        cut();
        return false;
      }
      if (reader.done) finish();
      return more && !finished;
    };
  } else onData = write;
  const onEnd = () => {
    if (finished) return;
    if (framing.kind === 'close') finish();
    else cut();
  };
  socket.on('end', onEnd);
  socket.on('close', onEnd);
  reads.handler = (view) => onData(view, true);
  if (rest.length > 0 && !onData(rest, false)) return;
  if (!finished) socket.resume();
}
