import type { IncomingMessage, ServerResponse } from 'node:http';
import { CodedError, ROUTES, type RouteId, type RouteSpec } from '@nullspace/protocol';
import type { Principal } from '../tenancy/keys.js';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  requestId: string;
  /**
   * Who the request acts for (the operator, or a tenant that sees only its own); the operator for
   * routes without the API key (public, signed), which act for nobody.
   */
  principal: Principal;
  /** Parses the JSON body (undefined when empty). Throws invalid_argument / payload_too_large. */
  body(): Promise<unknown>;
}

/** What a handler returns: a JSON body with a status, or nothing when it wrote the response itself. */
export type HandlerResult = { status?: number; body: unknown; headers?: Record<string, string> } | undefined;
export type Handler = (ctx: RequestContext) => Promise<HandlerResult>;

interface Route {
  id: RouteId;
  spec: RouteSpec;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

/** What {@link Router.find} found: the route and its (still encoded) parameters, or why none. */
export type Found =
  | { route: Route; raw: string[] }
  | { route: undefined; error: 'not_found' | 'method_not_allowed' };

/**
 * Method + path routing over the route table (protocol's `ROUTES`): a handler is registered by
 * route id, so the router knows no route the table does not declare, and `missing()` lists the
 * declared routes nobody handles (the server refuses to start with any). `{param}` segments are
 * percent-decoded. Unknown path → 404, known path with another method → 405.
 */
export class Router {
  private readonly routes: Route[] = [];

  on(id: RouteId, handler: Handler): this {
    if (this.routes.some((r) => r.id === id)) throw new Error(`route ${id} has a handler already`);
    const spec: RouteSpec = ROUTES[id];
    const keys: string[] = [];
    const source = spec.path.replace(/\{(\w+)\}/g, (_, key: string) => {
      keys.push(key);
      return '([^/]+)';
    });
    this.routes.push({ id, spec, pattern: new RegExp(`^${source}$`), keys, handler });
    return this;
  }

  /** Route ids of the table that have no handler. */
  missing(): RouteId[] {
    const handled = new Set(this.routes.map((r) => r.id));
    return (Object.keys(ROUTES) as RouteId[]).filter((id) => !handled.has(id));
  }

  /** The routes with a handler, as `METHOD path`. */
  known(): string[] {
    return this.routes.map((r) => `${r.spec.method} ${r.spec.path}`);
  }

  find(method: string, pathname: string): Found {
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.pattern.exec(pathname);
      if (!m) continue;
      pathMatched = true;
      if (r.spec.method === method) return { route: r, raw: m.slice(1) };
    }
    return { route: undefined, error: pathMatched ? 'method_not_allowed' : 'not_found' };
  }

  match(
    method: string,
    pathname: string,
  ): { id: RouteId; spec: RouteSpec; handler: Handler; params: Record<string, string> } {
    const found = this.find(method, pathname);
    if (found.route === undefined) {
      if (found.error === 'method_not_allowed')
        throw new CodedError('method_not_allowed', `${method} is not allowed on ${pathname}`);
      throw new CodedError('not_found', `no route for ${method} ${pathname}`);
    }
    const params: Record<string, string> = {};
    found.route.keys.forEach((k, i) => {
      const raw = found.raw[i] ?? '';
      try {
        params[k] = decodeURIComponent(raw);
      } catch {
        throw new CodedError('invalid_argument', `path: "${raw}" is not valid percent-encoding`, {
          field: k,
        });
      }
    });
    return { id: found.route.id, spec: found.route.spec, handler: found.route.handler, params };
  }
}
