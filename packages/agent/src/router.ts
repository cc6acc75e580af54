import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { CodedError, STREAM_KEEPALIVE_MS } from '@nullspace/protocol/core';
import type { WebSocket, WebSocketServer } from 'ws';
import { log } from './log.js';

/** One request to the agent. The server validated it at the API edge; the agent trusts its caller. */
export interface AgentRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  /** The JSON body (undefined when empty); only for routes that do not stream their body. */
  json(): Promise<unknown>;
}

/**
 * A handler returns what to answer as JSON (status 200), or `RESPONDED` when it wrote the
 * response itself (a stream). A thrown CodedError becomes its status and error body.
 */
export type AgentHandler = (r: AgentRequest) => Promise<unknown>;
export const RESPONDED = Symbol('responded');
export type WsHandler = (ws: WebSocket, url: URL, params: Record<string, string>) => void;
/** Checks a WebSocket request before the upgrade: a thrown CodedError is answered as HTTP. */
export type WsCheck = (url: URL, params: Record<string, string>) => void;

/** Routes a module registers on the first request under its prefix (see AgentRouter.defer). */
interface Deferred {
  prefix: string;
  load: () => Promise<void>;
  loading?: Promise<void>;
}

interface Route<H> {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: H;
  check?: WsCheck;
}

function compile(path: string): { pattern: RegExp; keys: string[] } {
  const keys: string[] = [];
  const source = path.replace(/\{(\w+)\}/g, (_, key: string) => {
    keys.push(key);
    return '([^/]+)';
  });
  return { pattern: new RegExp(`^${source}$`), keys };
}

function paramsOf(keys: string[], m: RegExpExecArray): Record<string, string> {
  const params: Record<string, string> = {};
  keys.forEach((k, i) => {
    params[k] = decodeURIComponent(m[i + 1] ?? '');
  });
  return params;
}

/** Whether the request carries a body (a length above 0, or chunks). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown, route: string): void {
  if (res.headersSent) {
    // A stream already started: all that is left is to cut it, so the reader sees it incomplete.
    log.write('error', 'stream failed', { route, error: String(err) });
    res.destroy(err instanceof Error ? err : new Error(String(err)));
    return;
  }
  if (err instanceof CodedError) {
    sendJson(res, err.status, { error: { code: err.code, message: err.message, details: err.details } });
  } else {
    log.write('error', 'request failed', { route, error: String(err) });
    sendJson(res, 500, { error: { code: 'internal', message: String(err) } });
  }
}

/** Method + path routing with `{param}` segments, for plain requests and WebSocket upgrades. */
export class AgentRouter {
  private readonly routes: Route<AgentHandler>[] = [];
  private readonly wsRoutes: Route<WsHandler>[] = [];
  /**
   * ws is loaded at the first WebSocket, not at the agent's start: it and the modules it requires
   * (https, tls, crypto, zlib) took ~14 ms of every machine's create, which waits for the agent.
   */
  private wss: WebSocketServer | undefined;
  private wssLoading: Promise<WebSocketServer> | undefined;
  private readonly alive = new WeakMap<WebSocket, boolean>();
  private readonly deferred: Deferred[] = [];

  constructor() {
    // Every WebSocket is pinged; one that did not answer since the last ping is gone (its server
    // went away without a FIN) and is ended, which ends whatever it was attached to.
    setInterval(() => {
      for (const ws of this.wss?.clients ?? []) {
        if (this.alive.get(ws) === false) {
          ws.terminate();
          continue;
        }
        this.alive.set(ws, false);
        ws.ping();
      }
    }, STREAM_KEEPALIVE_MS).unref();
  }

  add(method: string, path: string, handler: AgentHandler): this {
    this.routes.push({ method, ...compile(path), handler });
    return this;
  }

  /**
   * Routes under `prefix` that `load` registers (with `add`) on the first request there: a module
   * most machines never use (the desktop) is not loaded while the machine starts.
   */
  defer(prefix: string, load: () => Promise<void>): this {
    this.deferred.push({ prefix, load });
    return this;
  }

  ws(path: string, handler: WsHandler, check?: WsCheck): this {
    this.wsRoutes.push({ method: 'GET', ...compile(path), handler, ...(check ? { check } : {}) });
    return this;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    // The agent is never the first to close a connection that carried a body: its writer closes
    // it once it has read the answer (idle ones go after the server's keepAliveTimeout). The
    // server pipes an upload into the agent as it arrives, so its last write (the body's end, or
    // the empty write of `end()`) can come after the agent has read every byte and answered.
    // Asked `Connection: close` (a long request has no pool on the server), Node would close
    // right after the answer, that late write would meet EPIPE, and Node's client reports it
    // before reading the answer already there: the caller saw "agent not reachable" for a file
    // write that had happened (about 1 in 150 writes under load, bench/README.md "Load and soak").
    if (hasBody(req)) res.setHeader('connection', 'keep-alive');
    const url = new URL(req.url ?? '/', 'http://agent');
    const route = `${req.method} ${url.pathname}`;
    let found: { handler: AgentHandler; params: Record<string, string> } | undefined;
    for (const r of this.routes) {
      const m = r.pattern.exec(url.pathname);
      if (m && r.method === req.method) {
        found = { handler: r.handler, params: paramsOf(r.keys, m) };
        break;
      }
    }
    if (!found) {
      const later = this.deferred.find(
        (d) => url.pathname === d.prefix || url.pathname.startsWith(`${d.prefix}/`),
      );
      if (later) {
        // Registered by then; the body is unread (the request stays paused) until a handler reads it.
        later.loading ??= later.load().then(
          () => {
            this.deferred.splice(this.deferred.indexOf(later), 1);
          },
          (err: unknown) => {
            later.loading = undefined; // the next request tries again
            throw err;
          },
        );
        later.loading.then(
          () => this.handle(req, res),
          (err: unknown) => {
            req.resume();
            sendError(res, err, route);
          },
        );
        return;
      }
      req.resume();
      sendJson(res, 404, { error: { code: 'not_found', message: `agent has no route ${route}` } });
      return;
    }
    const json = (): Promise<unknown> =>
      new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('error', reject);
        req.on('end', () => {
          if (chunks.length === 0) return resolve(undefined);
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch {
            reject(new CodedError('invalid_argument', 'body is not JSON'));
          }
        });
      });
    found.handler({ req, res, url, params: found.params, json }).then(
      (result) => {
        if (result !== RESPONDED) sendJson(res, 200, result ?? {});
      },
      (err: unknown) => sendError(res, err, route),
    );
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.wss) {
      this.upgradeWith(this.wss, req, socket, head);
      return;
    }
    // Until ws is loaded nothing reads the socket (an upgraded socket has no data listener), so
    // nothing the client sent is lost; a socket closed meanwhile is refused by handleUpgrade.
    this.wssLoading ??= import('ws').then(
      ({ WebSocketServer }) => new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 }),
      (err: unknown) => {
        this.wssLoading = undefined; // the next upgrade tries again
        throw err;
      },
    );
    this.wssLoading.then(
      (wss) => {
        this.wss = wss;
        this.upgradeWith(wss, req, socket, head);
      },
      (err: unknown) => {
        log.write('error', 'could not load ws', { error: String(err) });
        socket.destroy();
      },
    );
  }

  private upgradeWith(wss: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://agent');
    for (const r of this.wsRoutes) {
      const m = r.pattern.exec(url.pathname);
      if (!m) continue;
      const params = paramsOf(r.keys, m);
      try {
        r.check?.(url, params);
      } catch (err) {
        const e = err instanceof CodedError ? err : new CodedError('internal', String(err));
        const text = JSON.stringify({ error: { code: e.code, message: e.message, details: e.details } });
        socket.end(
          `HTTP/1.1 ${e.status} ${e.code}\r\ncontent-type: application/json\r\n` +
            `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
        );
        return;
      }
      // The upgrade completes synchronously: the handler sees what `check` just accepted.
      wss.handleUpgrade(req, socket, head, (ws) => {
        this.alive.set(ws, true);
        ws.on('pong', () => this.alive.set(ws, true));
        r.handler(ws, url, params);
      });
      return;
    }
    socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  }
}
