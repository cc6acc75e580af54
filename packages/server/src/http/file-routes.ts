import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import {
  AGENT_FILE_ROUTES,
  CodedError,
  type ErrorBody,
  FILE_LIMITS,
  type SignedUrlOp,
  type SignedUrlResponse,
  fileQuery,
  invalidArgument,
  parseFilePath,
  parseMakeDir,
  parseMove,
  parseReplace,
  parseSearch,
  parseSignedUrl,
  parseWatch,
  parseWatchId,
  queryInteger,
} from '@nullspace/protocol';
import { WebSocket } from 'ws';
import type { Logger } from '../log.js';
import type { AgentLease, MachineService } from '../services/machine-service.js';
import type { SecretStore } from '../store/secret-store.js';
import { callAgent, proxyToAgent } from './agent-proxy.js';
import type { UpgradeRoute } from './api-server.js';
import type { RequestContext, Router } from './router.js';
import { PingedWebSocketServer } from './ws-server.js';

export interface FileRoutesOptions {
  secrets: SecretStore;
  log: Logger;
}

/** What `addFileRoutes` hands back to the server: the watch WebSocket route, and how to stop it. */
export interface FileRoutes {
  sockets: FileWatchSockets;
  close(): void;
}

const R = AGENT_FILE_ROUTES;
const ANY_AFTER = { min: 0, max: Number.MAX_SAFE_INTEGER, default: 0 };

/** An agent path with its query (values already validated). */
function agentPath(path: string, query: Record<string, string | number>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) q.set(k, String(v));
  return `${path}?${q}`;
}

/** `?path=` (required) plus the other allowed query parameters, refused when unknown or repeated. */
function pathQuery(
  ctx: RequestContext,
  allowed: readonly string[] = [],
): { path: string; q: Record<string, string> } {
  const q = fileQuery(ctx.url.searchParams, ['path', ...allowed]);
  return { path: parseFilePath(q.path), q };
}

async function noBody(ctx: RequestContext): Promise<void> {
  const raw = await ctx.body();
  if (raw !== undefined) throw invalidArgument('body', 'this route takes no body');
}

/**
 * `/v1/machines/{id}/files...`: validated here, then served by the machine's agent through
 * {@link proxyToAgent} (bodies stream both ways, never held whole). Also the signed URL routes
 * under `/v1/signed/files/{id}`, which need no API key: the HMAC in the URL is the permission.
 */
export function addFileRoutes(router: Router, machines: MachineService, o: FileRoutesOptions): FileRoutes {
  const base = '/v1/machines/{id}/files';
  const mid = (ctx: RequestContext) => ctx.params.id ?? '';

  // Bytes: a download or upload may take long, so it is a `long` lease (cut by a checkpoint).
  router.add('GET', base, async (ctx) => {
    const { path } = pathQuery(ctx);
    return proxyToAgent(ctx, machines, mid(ctx), {
      method: 'GET',
      path: agentPath(R.file, { path }),
      long: true,
    });
  });
  router.add('PUT', base, async (ctx) => {
    const { path } = pathQuery(ctx);
    // Never through ctx.body(): the bytes are piped to the agent as they arrive.
    return proxyToAgent(ctx, machines, mid(ctx), {
      method: 'PUT',
      path: agentPath(R.file, { path }),
      body: 'request',
      long: true,
    });
  });
  router.add('DELETE', base, async (ctx) => {
    const { path } = pathQuery(ctx);
    return callAgent(ctx, machines, mid(ctx), 'DELETE', agentPath(R.file, { path }));
  });

  router.add('GET', `${base}/list`, async (ctx) => {
    const { path, q } = pathQuery(ctx, ['depth']);
    const depth = queryInteger(q, 'depth', FILE_LIMITS.depth);
    return callAgent(ctx, machines, mid(ctx), 'GET', agentPath(R.list, { path, depth }));
  });
  router.add('GET', `${base}/stat`, async (ctx) => {
    const { path } = pathQuery(ctx);
    return callAgent(ctx, machines, mid(ctx), 'GET', agentPath(R.stat, { path }));
  });
  router.add('GET', `${base}/exists`, async (ctx) => {
    const { path } = pathQuery(ctx);
    return callAgent(ctx, machines, mid(ctx), 'GET', agentPath(R.exists, { path }));
  });
  router.add('POST', `${base}/mkdir`, async (ctx) =>
    callAgent(ctx, machines, mid(ctx), 'POST', R.mkdir, parseMakeDir(await ctx.body())),
  );
  router.add('POST', `${base}/move`, async (ctx) =>
    callAgent(ctx, machines, mid(ctx), 'POST', R.move, parseMove(await ctx.body())),
  );
  router.add('POST', `${base}/search`, async (ctx) => {
    const req = parseSearch(await ctx.body());
    return proxyToAgent(ctx, machines, mid(ctx), {
      method: 'POST',
      path: R.search,
      body: req,
      timeoutMs: 300_000,
    });
  });
  router.add('POST', `${base}/replace`, async (ctx) => {
    const req = parseReplace(await ctx.body());
    return proxyToAgent(ctx, machines, mid(ctx), {
      method: 'POST',
      path: R.replace,
      body: req,
      timeoutMs: 300_000,
    });
  });

  router.add('POST', `${base}/watches`, async (ctx) =>
    callAgent(ctx, machines, mid(ctx), 'POST', R.watches, parseWatch(await ctx.body())),
  );
  router.add('GET', `${base}/watches/{wid}/events`, async (ctx) => {
    const wid = parseWatchId(ctx.params.wid ?? '');
    const q = fileQuery(ctx.url.searchParams, ['after', 'wait_ms', 'limit']);
    const query = {
      after: queryInteger(q, 'after', ANY_AFTER),
      wait_ms: queryInteger(q, 'wait_ms', FILE_LIMITS.watch.wait_ms),
      limit: queryInteger(q, 'limit', FILE_LIMITS.watch.limit),
    };
    // A long poll: not counted in flight (a pause need not wait for it); a checkpoint cuts it.
    return proxyToAgent(ctx, machines, mid(ctx), {
      method: 'GET',
      path: agentPath(`${R.watch(wid)}/events`, query),
      long: true,
    });
  });
  router.add('DELETE', `${base}/watches/{wid}`, async (ctx) => {
    const wid = parseWatchId(ctx.params.wid ?? '');
    fileQuery(ctx.url.searchParams, []);
    return callAgent(ctx, machines, mid(ctx), 'DELETE', R.watch(wid));
  });
  router.add('GET', `${base}/watches/{wid}/ws`, async () => {
    throw new CodedError(
      'invalid_argument',
      'this route is a WebSocket: send the request with "Connection: Upgrade" and "Upgrade: websocket"',
    );
  });

  // ---- signed URLs ----------------------------------------------------------------------------

  router.add('POST', `${base}/signed_url`, async (ctx) => {
    const req = parseSignedUrl(await ctx.body());
    const id = mid(ctx);
    machines.get(id); // 404 machine_not_found
    const expires = Math.floor(Date.now() / 1000) + req.expires_in;
    const sig = sign(o.secrets.getOrCreate(id), id, req.op, req.path, expires);
    const query = new URLSearchParams({ path: req.path, op: req.op, expires: String(expires), sig });
    const body: SignedUrlResponse = {
      url: `${originOf(ctx.req)}/v1/signed/files/${encodeURIComponent(id)}?${query}`,
      op: req.op,
      path: req.path,
      expires_at: new Date(expires * 1000).toISOString(),
      method: req.op === 'read' ? 'GET' : 'PUT',
    };
    return { status: 201, body };
  });

  const signed = async (ctx: RequestContext) => {
    const id = mid(ctx);
    const { path, op } = verifySigned(ctx, o.secrets, id);
    const method = ctx.req.method ?? 'GET';
    if (op === 'read' && method !== 'GET')
      throw new CodedError('permission_denied', 'this signed URL is for reading: use GET');
    if (op === 'write' && method === 'GET')
      throw new CodedError(
        'permission_denied',
        'this signed URL is for writing: use PUT (or POST) with the bytes',
      );
    if (op === 'read')
      return proxyToAgent(ctx, machines, id, {
        method: 'GET',
        path: agentPath(R.file, { path }),
        long: true,
      });
    return proxyToAgent(ctx, machines, id, {
      method: 'PUT',
      path: agentPath(R.file, { path }),
      body: 'request',
      long: true,
    });
  };
  for (const method of ['GET', 'PUT', 'POST']) router.add(method, '/v1/signed/files/{id}', signed);

  const sockets = new FileWatchSockets(machines, o.log);
  return { sockets, close: () => sockets.close() };
}

// ---- signing ----------------------------------------------------------------------------------

function sign(secret: Buffer, machineId: string, op: SignedUrlOp, path: string, expires: number): string {
  return createHmac('sha256', secret)
    .update(`nullspace-file-url\n${machineId}\n${op}\n${path}\n${expires}`)
    .digest('hex');
}

/**
 * Checks a signed URL's query against the machine's secret. Everything wrong is the same 403, so
 * a caller learns nothing about what was close; only a valid signature that ran out says so.
 */
function verifySigned(
  ctx: RequestContext,
  secrets: SecretStore,
  machineId: string,
): { path: string; op: SignedUrlOp } {
  const denied = () => new CodedError('permission_denied', 'signed URL is not valid');
  let q: Record<string, string>;
  try {
    q = fileQuery(ctx.url.searchParams, ['path', 'op', 'expires', 'sig']);
  } catch {
    throw denied();
  }
  const { path, op, expires, sig } = q;
  if (path === undefined || (op !== 'read' && op !== 'write') || !/^\d{1,12}$/.test(expires ?? ''))
    throw denied();
  if (!/^[0-9a-f]{64}$/.test(sig ?? '')) throw denied();
  const secret = secrets.get(machineId);
  if (!secret) throw denied();
  const expected = Buffer.from(sign(secret, machineId, op, path, Number(expires)), 'hex');
  if (!timingSafeEqual(Buffer.from(sig as string, 'hex'), expected)) throw denied();
  const expiresAt = Number(expires);
  if (expiresAt <= Math.floor(Date.now() / 1000))
    throw new CodedError('permission_denied', 'signed URL expired', {
      expires_at: new Date(expiresAt * 1000).toISOString(),
    });
  return { path: parseFilePath(path), op };
}

const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** `scheme://host[:port]` the client used (a proxy's X-Forwarded-* first), for URLs handed back. */
function originOf(req: http.IncomingMessage): string {
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)?.split(',')[0]?.trim();
  const fwdProto = first(req.headers['x-forwarded-proto']);
  const proto =
    fwdProto === 'http' || fwdProto === 'https'
      ? fwdProto
      : (req.socket as TLSSocket).encrypted
        ? 'https'
        : 'http';
  const host = first(req.headers['x-forwarded-host']) ?? first(req.headers.host);
  if (host !== undefined && HOST.test(host)) return `${proto}://${host}`;
  const addr = req.socket.localAddress ?? '127.0.0.1';
  return `${proto}://${addr.includes(':') ? `[${addr}]` : addr}:${req.socket.localPort}`;
}

// ---- watch WebSocket ------------------------------------------------------------------------

const WS_PATH = /^\/v1\/machines\/([^/]+)\/files\/watches\/([^/]+)\/ws$/;
/** A client with more than this queued is dropped; it reconnects with `after`. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** 1012 "service restart": the machine was paused, hibernated or stopped; reconnect later. */
const CLOSE_AGENT_CUT = 1012;

function decode(raw: string, field: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw invalidArgument(field, `"${raw}" is not valid percent-encoding`);
  }
}

/** A close code a server may send on: codes only the library may use become 1011 / 1012. */
function forwardableCode(code: number): number {
  if (code === 1000 || code === 1001 || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))
    return code;
  return CLOSE_AGENT_CUT;
}

/**
 * `GET /v1/machines/{id}/files/watches/{wid}/ws`: bridges the client's WebSocket to the agent's
 * watch WebSocket, message for message. The agent connection is opened first, so a machine that
 * is not running is answered as a plain HTTP error; once bridged, either side closing closes the
 * other (with its code) and releases the agent lease, and a cut lease (pause, hibernate, kill)
 * closes the client with 1012: reconnect with `after` = the last event id seen.
 */
export class FileWatchSockets implements UpgradeRoute {
  private readonly wss = new PingedWebSocketServer(64 * 1024);
  private readonly open = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly machines: MachineService,
    private readonly log: Logger,
  ) {}

  matches(url: URL): boolean {
    return WS_PATH.test(url.pathname);
  }

  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL, requestId: string): void {
    if (this.closed)
      throw new CodedError('unavailable', 'the server is stopping; reconnect in a moment', {
        retry_after: 1,
      });
    const m = WS_PATH.exec(url.pathname);
    const id = decode(m?.[1] ?? '', 'id');
    const wid = parseWatchId(decode(m?.[2] ?? '', 'watch_id'));
    const after = queryInteger(fileQuery(url.searchParams, ['after']), 'after', ANY_AFTER);
    this.machines.get(id); // 404 machine_not_found, before anything is opened
    socket.on('error', () => undefined);
    this.bridge(req, socket, head, id, wid, after, requestId).catch((err: unknown) =>
      this.refuse(socket, err, requestId),
    );
  }

  /** Closes every bridge (1001: reconnect with `after`) and stops the pings. */
  close(): void {
    this.closed = true;
    for (const end of [...this.open]) end();
    this.wss.close();
  }

  private async bridge(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    id: string,
    wid: string,
    after: number,
    requestId: string,
  ): Promise<void> {
    const lease = await this.machines.openAgent(id, { long: true });
    if (socket.destroyed || this.closed) {
      lease.release();
      if (!socket.destroyed)
        this.refuse(socket, new CodedError('unavailable', 'the server is stopping'), requestId);
      return;
    }
    const upstream = new WebSocket(`ws+unix://${lease.socketPath}:${R.watch(wid)}/ws?after=${after}`, {
      maxPayload: 16 * 1024 * 1024,
    });
    let bridged = false;
    const refuse = async (err: unknown) => {
      if (bridged) return;
      bridged = true; // settled: no second answer
      upstream.removeAllListeners();
      upstream.on('error', () => undefined);
      upstream.terminate();
      this.refuse(socket, await lease.failed(err), requestId);
      lease.release();
    };
    lease.onCut((reason) => {
      if (!bridged)
        void refuse(new CodedError('unavailable', `the machine's agent connection was closed: ${reason}`));
    });
    upstream.once('unexpected-response', (_r, res) => {
      res.resume();
      void refuse(
        new CodedError('not_found', `the machine's agent has no file watch route (status ${res.statusCode})`),
      );
    });
    upstream.once('error', (err: Error & { code?: string }) => {
      void refuse(
        new CodedError('unavailable', `machine agent is not reachable: ${err.code ?? err.message}`, {
          retry_after: 1,
        }),
      );
    });
    upstream.once('open', () => {
      if (bridged) return;
      if (socket.destroyed || !socket.writable) {
        // The client left while the agent side was opened: nothing to bridge.
        bridged = true;
        upstream.removeAllListeners();
        upstream.on('error', () => undefined);
        upstream.terminate();
        lease.release();
        return;
      }
      bridged = true;
      upstream.removeAllListeners('error');
      upstream.on('error', (err) => this.log.debug('watch upstream error', { machine_id: id, error: err }));
      let served = false;
      this.wss.upgrade(req, socket, head, requestId, (client) => {
        served = true;
        this.serve(client, upstream, lease, id);
      });
      // ws completes an upgrade synchronously; one it aborted (the socket broke) never calls back.
      if (!served) {
        upstream.terminate();
        lease.release();
      }
    });
  }

  private serve(client: WebSocket, upstream: WebSocket, lease: AgentLease, id: string): void {
    let done = false;
    const end = (code: number, reason: string) => {
      if (done) return;
      done = true;
      this.open.delete(stop);
      lease.release();
      if (client.readyState === client.OPEN || client.readyState === client.CONNECTING)
        client.close(forwardableCode(code), reason.slice(0, 120));
      if (upstream.readyState === upstream.OPEN || upstream.readyState === upstream.CONNECTING)
        upstream.close();
    };
    const stop = () => end(1001, 'server stopping; reconnect with after');
    this.open.add(stop);
    upstream.on('message', (data: Buffer, isBinary: boolean) => {
      if (client.readyState !== client.OPEN) return;
      if (client.bufferedAmount > MAX_BUFFERED_BYTES) {
        end(1013, 'too slow: over 4 MiB unsent; reconnect with after');
        return;
      }
      client.send(data, { binary: isBinary });
    });
    // Client messages mean nothing here; they are read (and dropped) so pings keep flowing.
    client.on('message', () => undefined);
    upstream.on('close', (code: number, reason: Buffer) => end(code, reason.toString() || 'agent closed'));
    client.on('close', () => end(1000, 'client closed'));
    client.on('error', (err) => this.log.debug('watch socket error', { machine_id: id, error: err }));
    lease.onCut((reason) => {
      upstream.terminate();
      end(CLOSE_AGENT_CUT, `machine agent connection closed (${reason}); reconnect with after`);
    });
  }

  /** Answers a refused upgrade as a plain HTTP error, as the API server does for any request. */
  private refuse(socket: Duplex, err: unknown, requestId: string): void {
    let coded: CodedError;
    if (err instanceof CodedError && err.code !== 'internal') coded = err;
    else {
      this.log.error('watch upgrade failed', { request_id: requestId, error: err });
      coded = new CodedError(
        'internal',
        'internal error; the server log has the cause under this request id',
      );
    }
    const body: ErrorBody = {
      error: {
        code: coded.code,
        message: coded.message,
        ...(coded.details ? { details: coded.details } : {}),
        request_id: requestId,
      },
    };
    const text = JSON.stringify(body);
    const retry =
      coded.code === 'unavailable' || coded.code === 'machine_transitioning'
        ? `retry-after: ${typeof coded.details?.retry_after === 'number' ? coded.details.retry_after : 1}\r\n`
        : '';
    if (socket.destroyed) return;
    socket.end(
      `HTTP/1.1 ${coded.status} ${http.STATUS_CODES[coded.status] ?? ''}\r\n` +
        'content-type: application/json; charset=utf-8\r\n' +
        `content-length: ${Buffer.byteLength(text)}\r\n` +
        `x-request-id: ${requestId}\r\n${retry}connection: close\r\n\r\n${text}`,
    );
  }
}
