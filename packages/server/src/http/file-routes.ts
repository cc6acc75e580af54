import { createHmac, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { TLSSocket } from 'node:tls';
import {
  AGENT_FILE_ROUTES,
  CodedError,
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
import type { Logger } from '../log.js';
import type { MachineService } from '../services/machines/machine-service.js';
import type { SecretStore } from '../store/secret-store.js';
import { callAgent, proxyToAgent } from './agent-proxy.js';
import { AgentSockets } from './agent-ws-bridge.js';
import type { RequestContext, Router } from './router.js';

export interface FileRoutesOptions {
  secrets: SecretStore;
  log: Logger;
}

/** What `addFileRoutes` hands back to the server: the watch WebSocket route, and how to stop it. */
export interface FileRoutes {
  sockets: AgentSockets;
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

/**
 * `/v1/machines/{id}/files...`: validated here, then served by the machine's agent through
 * {@link proxyToAgent} (bodies stream both ways, never held whole). Also the signed URL routes
 * under `/v1/signed/files/{id}`, which need no API key: the HMAC in the URL is the permission.
 */
export function addFileRoutes(router: Router, machines: MachineService, o: FileRoutesOptions): FileRoutes {
  const mid = (ctx: RequestContext) => ctx.params.id ?? '';
  // Secrets of machines killed while the server was away (or before this was done) go too.
  o.secrets.forgetDead();

  // Bytes: a download or upload may take long, so it is a `long` lease (cut by a checkpoint).
  router.on('readFile', async (ctx) => {
    const { path } = pathQuery(ctx);
    return proxyToAgent(ctx, machines, mid(ctx), {
      method: 'GET',
      path: agentPath(R.file, { path }),
      long: true,
    });
  });
  router.on('writeFile', async (ctx) => {
    const { path } = pathQuery(ctx);
    // Never through ctx.body(): the bytes are piped to the agent as they arrive.
    return proxyToAgent(ctx, machines, mid(ctx), {
      method: 'PUT',
      path: agentPath(R.file, { path }),
      body: 'request',
      long: true,
    });
  });
  router.on('removeFile', async (ctx) => {
    const { path } = pathQuery(ctx);
    return callAgent(ctx, machines, mid(ctx), 'DELETE', agentPath(R.file, { path }));
  });

  router.on('listFiles', async (ctx) => {
    const { path, q } = pathQuery(ctx, ['depth']);
    const depth = queryInteger(q, 'depth', FILE_LIMITS.depth);
    return callAgent(ctx, machines, mid(ctx), 'GET', agentPath(R.list, { path, depth }));
  });
  router.on('statFile', async (ctx) => {
    const { path } = pathQuery(ctx);
    return callAgent(ctx, machines, mid(ctx), 'GET', agentPath(R.stat, { path }));
  });
  router.on('fileExists', async (ctx) => {
    const { path } = pathQuery(ctx);
    return callAgent(ctx, machines, mid(ctx), 'GET', agentPath(R.exists, { path }));
  });
  router.on('makeDir', async (ctx) =>
    callAgent(ctx, machines, mid(ctx), 'POST', R.mkdir, parseMakeDir(await ctx.body())),
  );
  router.on('moveFile', async (ctx) =>
    callAgent(ctx, machines, mid(ctx), 'POST', R.move, parseMove(await ctx.body())),
  );
  router.on('searchFiles', async (ctx) => {
    const req = parseSearch(await ctx.body());
    return proxyToAgent(ctx, machines, mid(ctx), {
      method: 'POST',
      path: R.search,
      body: req,
      timeoutMs: 300_000,
    });
  });
  router.on('replaceInFiles', async (ctx) => {
    const req = parseReplace(await ctx.body());
    return proxyToAgent(ctx, machines, mid(ctx), {
      method: 'POST',
      path: R.replace,
      body: req,
      timeoutMs: 300_000,
    });
  });

  router.on('createWatch', async (ctx) =>
    callAgent(ctx, machines, mid(ctx), 'POST', R.watches, parseWatch(await ctx.body())),
  );
  router.on('watchEvents', async (ctx) => {
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
  router.on('deleteWatch', async (ctx) => {
    const wid = parseWatchId(ctx.params.wid ?? '');
    fileQuery(ctx.url.searchParams, []);
    return callAgent(ctx, machines, mid(ctx), 'DELETE', R.watch(wid));
  });
  router.on('streamWatch', async () => {
    throw new CodedError(
      'invalid_argument',
      'this route is a WebSocket: send the request with "Connection: Upgrade" and "Upgrade: websocket"',
    );
  });

  // ---- signed URLs ----------------------------------------------------------------------------

  router.on('signedUrl', async (ctx) => {
    const req = parseSignedUrl(await ctx.body());
    const id = mid(ctx);
    const status = machines.get(id).status; // 404 machine_not_found
    if (status === 'killed' || status === 'killing')
      throw new CodedError('invalid_state', `machine ${id} is ${status}`, { machine_id: id, status });
    o.secrets.forgetDead();
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
    const { path, op } = verifySigned(ctx.url.searchParams, o.secrets, id);
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
  router.on('signedRead', signed).on('signedWrite', signed).on('signedPost', signed);

  const sockets = fileWatchSockets(machines, o.log);
  return { sockets, close: () => sockets.close() };
}

// ---- signing ----------------------------------------------------------------------------------

export function sign(
  secret: Buffer,
  machineId: string,
  op: SignedUrlOp,
  path: string,
  expires: number,
): string {
  return createHmac('sha256', secret)
    .update(`nullspace-file-url\n${machineId}\n${op}\n${path}\n${expires}`)
    .digest('hex');
}

/**
 * Checks a signed URL's query against the machine's secret. Everything wrong is the same 403, so
 * a caller learns nothing about what was close; only a valid signature that ran out says so.
 */
export function verifySigned(
  params: URLSearchParams,
  secrets: SecretStore,
  machineId: string,
): { path: string; op: SignedUrlOp } {
  const denied = () => new CodedError('permission_denied', 'signed URL is not valid');
  let q: Record<string, string>;
  try {
    q = fileQuery(params, ['path', 'op', 'expires', 'sig']);
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

function decode(raw: string, field: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw invalidArgument(field, `"${raw}" is not valid percent-encoding`);
  }
}

/**
 * `GET /v1/machines/{id}/files/watches/{wid}/ws`: the client's WebSocket joined to the agent's
 * watch WebSocket, message for message (see AgentSockets: refusals are HTTP errors before the
 * upgrade; a cut lease — hibernate, kill — closes with 1012; a client over 4 MiB behind is closed
 * with 1013): reconnect with `after` = the last event id seen.
 */
export function fileWatchSockets(machines: MachineService, log: Logger): AgentSockets {
  return new AgentSockets(
    machines,
    log,
    WS_PATH,
    (url, m) => {
      const id = decode(m[1] ?? '', 'id');
      const wid = parseWatchId(decode(m[2] ?? '', 'watch_id'));
      const after = queryInteger(fileQuery(url.searchParams, ['after']), 'after', ANY_AFTER);
      return { machineId: id, agentPath: `${R.watch(wid)}/ws?after=${after}`, slowClient: 'close' };
    },
    64 * 1024,
  );
}
