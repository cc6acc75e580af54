/**
 * The route table: every route of the HTTP API, declared once. The server registers its handlers
 * by these ids (and refuses to start while one has none), the OpenAPI document is generated from
 * it (`openapi.ts`), and the SDK and the CLI name paths through it. Handlers live in
 * `packages/server/src/http/*-routes.ts`.
 */
import { CODE_ROUTES } from './routes/code.js';
import type { RouteSpec } from './routes/common.js';
import { DESKTOP_ROUTES } from './routes/desktop.js';
import { FILE_ROUTES } from './routes/files.js';
import { KEY_ROUTES } from './routes/keys.js';
import { MACHINE_ROUTES } from './routes/machines.js';
import { NETWORKING_ROUTES } from './routes/networking.js';
import { PROCESS_ROUTES } from './routes/processes.js';
import { STORAGE_ROUTES } from './routes/storage.js';
import { Type } from './schema/kit.js';

export type { HttpMethod, RouteKind, RouteSpec } from './routes/common.js';
/** The path parameters' schemas, by identity: the server's tenancy check knows what each names. */
export { P as ROUTE_PARAMS } from './routes/common.js';

export const ROUTES = {
  ...MACHINE_ROUTES,
  ...STORAGE_ROUTES,
  ...PROCESS_ROUTES,
  ...FILE_ROUTES,
  ...NETWORKING_ROUTES,
  ...CODE_ROUTES,
  ...DESKTOP_ROUTES,
  ...KEY_ROUTES,

  // the server itself
  openapi: {
    method: 'GET',
    path: '/v1/openapi.json',
    tag: 'server',
    auth: 'none',
    summary: 'This document (public: no API key)',
    response: Type.Object({}, { description: 'The OpenAPI 3.1 document.' }),
    errors: [],
  },
  health: {
    method: 'GET',
    path: '/healthz',
    tag: 'server',
    auth: 'none',
    summary: 'Liveness: the server answers',
    response: Type.Object({ ok: Type.Literal(true) }),
    errors: [],
  },
  prometheus: {
    method: 'GET',
    path: '/metrics',
    tag: 'server',
    // Host-wide figures of every tenant's machines: the operator's.
    auth: 'operator',
    summary: "The server's metrics in the Prometheus text format",
    kind: 'text',
    errors: [],
  },
} as const satisfies Record<string, RouteSpec>;

export type RouteId = keyof typeof ROUTES;

/** The path of a route with its parameters filled in (percent-encoded). */
export function routePath(id: RouteId, params: Record<string, string | number> = {}): string {
  return ROUTES[id].path.replace(/\{(\w+)\}/g, (_, key: string) => {
    const value = params[key];
    if (value === undefined) throw new Error(`routePath(${id}): no value for {${key}}`);
    return encodeURIComponent(String(value));
  });
}
