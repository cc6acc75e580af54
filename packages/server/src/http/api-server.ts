import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CodedError, type ErrorBody, type RouteId, type RouteSpec, newId } from '@nullspace/protocol';
import type { Logger } from '../log.js';
import { type ApiKeys, OPERATOR, type Principal } from '../tenancy/keys.js';
import type { Ownership } from '../tenancy/ownership.js';
import { type RawRequestBody, installPreviewFront } from './preview-front.js';
import type { RequestContext, Router } from './router.js';

/** Largest request body accepted (foreground `stdin` can be 16 MiB of JSON-escaped text). */
export const MAX_BODY_BYTES = 48 * 1024 * 1024;

export interface ApiServerOptions {
  router: Router;
  /** The operator's key and tenants' keys (docs/tenants.md). */
  keys: ApiKeys;
  /** Tenants see only their own: checked on every route's path ids, HTTP and WebSocket alike. */
  ownership: Ownership;
  log: Logger;
  /** WebSocket routes: authenticated like every request, then handed the upgrade. */
  upgrades?: UpgradeRoute[];
  /** Requests for preview hosts: they carry a grant instead of the API key. */
  preview?: PreviewFront;
}

export interface PreviewFront {
  route(req: http.IncomingMessage): { machineId: string; port: number } | undefined;
  routeHost(host: string | undefined): { machineId: string; port: number } | undefined;
  /** `body`: the request's body as the front door reads it (preview-front.ts), if it read the request. */
  handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    target: { machineId: string; port: number },
    body?: RawRequestBody,
  ): Promise<void>;
  upgrade(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    url: URL,
    target: { machineId: string; port: number },
  ): Promise<void>;
}

export interface UpgradeRoute {
  matches(url: URL): boolean;
  /**
   * Validates and upgrades (the 101 response carries `requestId` as `x-request-id`); a thrown
   * (or rejected) CodedError is answered as a plain HTTP error response instead. `url`'s path
   * ids have passed the tenant's ownership check already.
   */
  upgrade(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    url: URL,
    requestId: string,
  ): void | Promise<void>;
}

/**
 * The HTTP edge: request ids, authentication, body parsing with a size limit, and the one place
 * where errors become responses (code → status from the protocol's map; unknown errors become
 * `internal`, logged with their cause and never shown to the client).
 */
export function createApiServer(o: ApiServerOptions): http.Server {
  const serve = (req: http.IncomingMessage, res: http.ServerResponse, body?: RawRequestBody) => {
    const started = process.hrtime.bigint();
    const requestId = newId('request');
    res.setHeader('x-request-id', requestId);
    const preview = o.preview?.route(req);
    const target = requestUrl(req.url, preview === undefined);
    // The unparsed target, for the log, when it is not a path at all.
    const url = target instanceof URL ? target : new URL('http://localhost/');
    res.on('finish', () => {
      o.log.info('request', {
        request_id: requestId,
        method: req.method,
        path: target instanceof URL ? url.pathname : String(req.url).slice(0, 200),
        ...(preview ? { preview_machine_id: preview.machineId, preview_port: preview.port } : {}),
        // Read by the preview front door (preview-front.ts) rather than Node's HTTP parser.
        ...(body ? { front_door: true } : {}),
        status: res.statusCode,
        ms: Number((process.hrtime.bigint() - started) / 1000n) / 1000,
      });
    });
    const done = !(target instanceof URL)
      ? Promise.reject(target)
      : preview && o.preview
        ? o.preview.handle(req, res, url, preview, body)
        : handle(o, req, res, url, requestId);
    done.catch((err: unknown) => sendError(o.log, res, err, requestId));
  };
  const server = http.createServer((req, res) => serve(req, res));
  const preview = o.preview;
  // Preview requests are read by the front door, their bodies relayed without Node's parser.
  if (preview)
    installPreviewFront(server, {
      isPreview: (host) => preview.routeHost(host) !== undefined,
      serve: (req, res, body) => serve(req, res, body),
    });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const requestId = newId('request');
    // Preview hosts carry the machine's own paths: only API paths have the sandboxes alias.
    const target = requestUrl(req.url, o.preview?.route(req) === undefined);
    const url = target instanceof URL ? target : new URL('http://localhost/');
    // Errors before the upgrade are ordinary HTTP responses, written by the same code as any other;
    // the connection ends once the response is flushed.
    const res = new http.ServerResponse(req);
    res.assignSocket(socket as Socket);
    res.setHeader('x-request-id', requestId);
    res.shouldKeepAlive = false;
    const log = (status: number) =>
      o.log.info('request', { request_id: requestId, method: req.method, path: url.pathname, status });
    res.on('finish', () => {
      log(res.statusCode);
      (socket as Socket).destroySoon();
    });
    try {
      if (!(target instanceof URL)) throw target;
      const preview = o.preview?.route(req);
      if (preview && o.preview) {
        o.preview.upgrade(req, socket, head, url, preview).then(
          () => res.detachSocket(socket as Socket),
          (err: unknown) => sendError(o.log, res, err, requestId),
        );
        return;
      }
      const principal = authenticate(o, req);
      const route = o.upgrades?.find((r) => r.matches(url));
      if (!route) throw new CodedError('not_found', `no WebSocket route for ${url.pathname}`);
      // The same route-table check as a plain request: another tenant's machine is not found.
      const matched = o.router.match('GET', url.pathname);
      authorize(o, matched.id, matched.spec, matched.params, principal);
      // A revoke of the key ends the WebSocket with the connection.
      o.keys.track(principal, socket as Socket);
      // A route may refuse until it upgrades (it may first check things that take a while): its
      // refusal is answered here, as an ordinary HTTP error.
      Promise.resolve(route.upgrade(req, socket, head, url, requestId)).then(
        () => {
          // The WebSocket owns the socket now; the error response is not needed.
          res.detachSocket(socket as Socket);
          log(101);
        },
        (err: unknown) => sendError(o.log, res, err, requestId),
      );
    } catch (err) {
      sendError(o.log, res, err, requestId);
    }
  });
  // A request Node's parser cannot read (a bad method or header, a head over its 16 KiB) gets
  // the same JSON error as any other, with a request id; Node's own answer was a bare 400 or 431
  // without either. A silent or broken connection is just closed.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // An answer already begun on this connection (Node's parser failed on what followed, e.g. a
    // bad chunk of a body the service answered early) cannot get a second head: it is cut, as
    // Node's own handler does.
    const answering = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!socket.writable || !err.code?.startsWith('HPE_') || answering?.headersSent === true) {
      socket.destroy();
      return;
    }
    const requestId = newId('request');
    const message =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 'request: its head (request line and headers) is larger than the server reads'
        : `request: not a well-formed HTTP request (${err.code})`;
    const body: ErrorBody = {
      error: { code: 'invalid_argument', message, details: { field: 'request' }, request_id: requestId },
    };
    const text = JSON.stringify(body);
    o.log.info('request', { request_id: requestId, status: 400, parse_error: err.code });
    socket.end(
      `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${text}`,
    );
  });
  // An `Expect` the server does not meet (anything but 100-continue, which Node answers itself):
  // the contract's JSON error with a request id, where Node's own answer was a bare 417.
  server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const requestId = newId('request');
    res.setHeader('x-request-id', requestId);
    res.shouldKeepAlive = false;
    sendError(
      o.log,
      res,
      new CodedError('invalid_argument', 'expect: only "100-continue" is supported', { field: 'expect' }),
      requestId,
    );
    req.resume();
  });
  server.keepAliveTimeout = 65_000;
  // Commands may run long; a request's own timeout_ms bounds them, not the socket.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  return server;
}

/**
 * The URL of a request, or the `invalid_argument` error to answer when its target is not a path.
 * Never throws: it runs before any error handler, where a throw ended the whole server (`GET //`
 * did, without an API key: `new URL('//', base)` reads `//` as a host that is not there).
 * An origin-form target (`/path?query`) is always a path, however it starts (`//x`, `/\\`), so it
 * is put after the origin rather than resolved against it; an absolute-form one (`http://h/p`) is
 * parsed as it is; anything else (`*`, `host:port`) names no resource of this server.
 */
export function requestUrl(raw: string | undefined, api = true): URL | CodedError {
  const target = raw ?? '/';
  let url: URL | undefined;
  try {
    url = target.startsWith('/') ? new URL(`http://localhost${target}`) : new URL(target);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    return new CodedError('invalid_argument', `path: "${target.slice(0, 100)}" is not a request path`, {
      field: 'path',
    });
  }
  return api ? apiUrl(url) : url;
}

/**
 * The URL of an API request. `/v1/sandboxes/...` is another name of `/v1/machines/...` (the
 * product docs use both): it is routed, authenticated and answered exactly the same.
 */
export function apiUrl(raw: string | URL | undefined): URL {
  const url = raw instanceof URL ? raw : new URL(raw ?? '/', 'http://localhost');
  const alias = '/v1/sandboxes';
  if (url.pathname === alias || url.pathname.startsWith(`${alias}/`))
    url.pathname = `/v1/machines${url.pathname.slice(alias.length)}`;
  return url;
}

async function handle(
  o: ApiServerOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  requestId: string,
): Promise<void> {
  // The route table says which routes are public (`none`) or carry their own permission (`signed`,
  // an HMAC the route checks); every other path under /v1, and /metrics (Prometheus sends the key
  // as a bearer token), needs the API key, also when it names no route (401 before 404).
  const found = o.router.find(req.method ?? 'GET', url.pathname);
  const auth = found.route?.spec.auth ?? 'key';
  const guarded = url.pathname.startsWith('/v1/') || url.pathname === '/v1' || url.pathname === '/metrics';
  const keyed = guarded && (auth === 'key' || auth === 'operator');
  const principal = keyed ? authenticate(o, req) : OPERATOR;
  const matched = o.router.match(req.method ?? 'GET', url.pathname);
  const params = keyed ? authorize(o, matched.id, matched.spec, matched.params, principal) : matched.params;
  // A long poll or a stream of a key that is revoked ends with its connection.
  if (keyed) o.keys.track(principal, req.socket, (done) => res.once('finish', done));
  const { handler } = matched;
  const ctx: RequestContext = {
    req,
    res,
    url,
    params,
    requestId,
    principal,
    body: () => readJsonBody(req),
  };
  const result = await handler(ctx);
  if (result === undefined) return;
  for (const [k, v] of Object.entries(result.headers ?? {})) res.setHeader(k, v);
  sendJson(res, result.status ?? 200, result.body);
}

/** The principal of the request's key; `unauthenticated` (401) without a valid one. */
function authenticate(o: ApiServerOptions, req: http.IncomingMessage): Principal {
  const principal = o.keys.authenticate(presentedKey(req));
  if (!principal)
    throw new CodedError(
      'unauthenticated',
      'missing, wrong or revoked API key (Authorization: Bearer <key> or X-API-Key)',
    );
  return principal;
}

/**
 * What `principal` may do on a route: an operator-only route refuses a tenant's key (403); every
 * other checks the path's ids against the tenant (404 as if absent). Returns the checked params.
 */
function authorize(
  o: ApiServerOptions,
  id: RouteId,
  spec: RouteSpec,
  params: Record<string, string>,
  principal: Principal,
): Record<string, string> {
  if (spec.auth === 'operator' && principal.tenant !== null)
    throw new CodedError('permission_denied', "only the operator's key (NULLSPACE_API_KEY) may do this", {
      tenant: principal.tenant,
    });
  return o.ownership.check(id, params, principal);
}

function presentedKey(req: http.IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  const bearer = auth === undefined ? null : /^bearer\s+(.+)$/i.exec(auth);
  if (bearer?.[1]) return bearer[1].trim();
  const header = req.headers['x-api-key'];
  return typeof header === 'string' ? header : undefined;
}

/** Whether a refused JSON body is small enough to be read to its end and dropped (see sendError). */
function drainsRefusedBody(req: http.IncomingMessage, coded: CodedError): boolean {
  const declared = Number(req.headers['content-length']);
  return (
    coded.code === 'payload_too_large' &&
    req.headers['transfer-encoding'] === undefined &&
    Number.isSafeInteger(declared) &&
    declared <= 2 * MAX_BODY_BYTES
  );
}

function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      reject(new CodedError('payload_too_large', `request body is larger than ${MAX_BODY_BYTES} bytes`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new CodedError('payload_too_large', `request body is larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size === 0) {
        resolve(undefined);
        return;
      }
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(
          new CodedError('invalid_argument', `body: is not valid JSON (${(err as Error).message})`, {
            field: 'body',
          }),
        );
      }
    });
  });
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(log: Logger, res: http.ServerResponse, err: unknown, requestId: string): void {
  let coded: CodedError;
  if (err instanceof CodedError && err.code !== 'internal') {
    coded = err;
  } else {
    log.error('request failed', {
      request_id: requestId,
      error: err,
      cause: err instanceof Error ? err.cause : undefined,
    });
    // Only errors the service raised on purpose about a machine (they name it) keep their message;
    // anything else could carry host paths or tool output, which stay in the log.
    const machineId = err instanceof CodedError ? err.details?.machine_id : undefined;
    coded =
      err instanceof CodedError && typeof machineId === 'string'
        ? new CodedError('internal', err.message, { machine_id: machineId })
        : new CodedError('internal', 'internal error; the server log has the cause under this request id');
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Answered before the request's body was all read (a refused upload, stdin for a process that
  // ended): the rest would arrive on a connection the client then reuses, so it closes instead —
  // except a JSON body refused for the size it declared, which is read to its end and dropped
  // (readJsonBody resumed it) when it is at most twice the limit: clients (fetch, the SDKs) send a
  // body whole before they read the answer, and a connection closed under their upload is reset,
  // so they met EPIPE instead of the 413.
  if (!res.req.complete && !drainsRefusedBody(res.req, coded)) res.setHeader('connection', 'close');
  const retryAfter = coded.details?.retry_after;
  if (coded.code === 'unavailable' || coded.code === 'machine_transitioning')
    res.setHeader('retry-after', String(typeof retryAfter === 'number' ? retryAfter : 1));
  const body: ErrorBody = {
    error: {
      code: coded.code,
      message: coded.message,
      ...(coded.details ? { details: coded.details } : {}),
      request_id: requestId,
    },
  };
  sendJson(res, coded.status, body);
}

export function listen(server: http.Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
