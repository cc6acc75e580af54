import type { IncomingMessage, ServerResponse } from 'node:http';
import { CodedError } from '@nullspace/protocol';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  requestId: string;
  /** Parses the JSON body (undefined when empty). Throws invalid_argument / payload_too_large. */
  body(): Promise<unknown>;
}

/** What a handler returns: a JSON body with a status, or nothing when it wrote the response itself. */
export type HandlerResult = { status?: number; body: unknown; headers?: Record<string, string> } | undefined;
export type Handler = (ctx: RequestContext) => Promise<HandlerResult>;

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

/** Method + path routing with `{param}` segments. Unknown path → 404, known path, wrong method → 405. */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, path: string, handler: Handler): this {
    const keys: string[] = [];
    const source = path.replace(/\{(\w+)\}/g, (_, key: string) => {
      keys.push(key);
      return '([^/]+)';
    });
    this.routes.push({ method, pattern: new RegExp(`^${source}$`), keys, handler });
    return this;
  }

  match(method: string, pathname: string): { handler: Handler; params: Record<string, string> } {
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.pattern.exec(pathname);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== method) continue;
      const params: Record<string, string> = {};
      r.keys.forEach((k, i) => {
        try {
          params[k] = decodeURIComponent(m[i + 1] ?? '');
        } catch {
          throw new CodedError('invalid_argument', `path: "${m[i + 1]}" is not valid percent-encoding`, {
            field: k,
          });
        }
      });
      return { handler: r.handler, params };
    }
    if (pathMatched) throw new CodedError('method_not_allowed', `${method} is not allowed on ${pathname}`);
    throw new CodedError('not_found', `no route for ${method} ${pathname}`);
  }
}
