import http from 'node:http';
import type { Socket } from 'node:net';
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
    return parsePreviewHost(req.headers.host, this.o.domain());
  }

  /**
   * Proxies one HTTP request on a connection of its own to the machine's port. (Kept upstream
   * connections were tried: they save ~0.2 ms, but a service that writes its head and body apart,
   * such as Python's http.server, then meets Nagle's algorithm and the delayed ACK: 40 ms a
   * request.) A refusal (grant, machine state, nothing listening) is thrown before any response,
   * for the caller to answer.
   */
  async handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    target: PreviewTarget,
  ): Promise<void> {
    // The upstream request runs on `socket`, which `end` destroys: closing the response is all a
    // cut adds.
    const abort = () => res.destroy();
    const { access, lease, socket, end } = await this.admit(req, url, target, abort);
    const request = http.request({
      createConnection: () => socket,
      method: req.method,
      path: pathWithoutToken(req.url ?? '/'),
      headers: this.forwardedHeaders(req, lease, target),
    });
    const cut = () => {
      abort();
      end();
    };
    res.on('close', end);
    req.pipe(request);
    let up: http.IncomingMessage;
    try {
      up = await new Promise<http.IncomingMessage>((resolve, reject) => {
        request.once('response', resolve);
        request.once('error', reject);
      });
    } catch (err) {
      end();
      throw new CodedError('unavailable', `the service on port ${target.port} closed the connection`, {
        port: target.port,
        reason: (err as NodeJS.ErrnoException).code ?? 'closed',
      });
    }
    request.on('error', cut);
    const out: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(up.headers)) if (!NOT_FORWARDED.has(k) && v !== undefined) out[k] = v;
    if (access.setCookie) {
      const own = out['set-cookie'];
      out['set-cookie'] = [...(Array.isArray(own) ? own : own ? [String(own)] : []), access.setCookie];
    }
    res.writeHead(up.statusCode ?? 502, up.statusMessage, out);
    up.pipe(res);
    up.on('error', cut);
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
  ): Promise<{ access: PreviewAccess; lease: PortLease; socket: Socket; end: () => void }> {
    const access = this.o.previews.authorize(req, url, target);
    const { lease, socket } = await this.o.machines.connectPort(target.machineId, target.port, {
      long: true,
      wakeTimeoutMs: this.o.wakeTimeoutMs,
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
