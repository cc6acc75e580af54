/** What a route of the table says about itself, and the pieces the tables share. */
import type { ErrorCode } from '../errors.js';
import { type TObject, type TSchema, Type } from '../schema/kit.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/**
 * What a route answers on success: JSON (`response`), bytes, NDJSON lines of `response`, a
 * WebSocket whose messages are `response`, or plain text.
 */
export type RouteKind = 'json' | 'bytes' | 'ndjson' | 'websocket' | 'text';

export interface RouteSpec {
  method: HttpMethod;
  /** With `{param}` segments, as OpenAPI writes them. */
  path: string;
  summary: string;
  description?: string;
  /** Groups routes in the document: machines, commands, files, ... */
  tag: string;
  /**
   * `key` (default): any API key (a tenant's sees only its own resources); `operator`: only the
   * operator's key (`NULLSPACE_API_KEY`), a tenant's gets 403; `none`: public; `signed`: an HMAC in
   * the URL is the permission.
   */
  auth?: 'key' | 'operator' | 'none' | 'signed';
  params?: Record<string, TSchema>;
  query?: TObject;
  /** A JSON body (`body`), or bytes streamed as they come (`bodyBytes`). */
  body?: TSchema;
  bodyRequired?: boolean;
  bodyBytes?: boolean;
  kind?: RouteKind;
  response?: TSchema;
  /** Success status (default 200). */
  status?: number;
  /** Also answers with a frame stream (a command with `stream: true`). */
  frameStream?: boolean;
  /** The error codes it may answer besides `internal` (and `unauthenticated` with the key). */
  errors: readonly ErrorCode[];
}

// ---- parameters and error sets ----------------------------------------------------------------

// ---- parameters and error sets ----------------------------------------------------------------

export const P = {
  id: Type.String({ description: 'Machine id (`mch_...`).' }),
  pid: Type.String({ description: 'A pid, or the tag of a process.' }),
  vol: Type.String({ description: 'Volume id (`vol_...`) or name.' }),
  vat: Type.String({ description: 'Volume attachment id (`vat_...`).' }),
  ref: Type.String({ description: 'Template `name[:tag]` (percent-encoded) or build id (`tpl_...`).' }),
  wid: Type.String({ description: 'Watch id (`fwt_...`).' }),
  grant: Type.String({ description: 'Preview grant id (`pvg_...`).' }),
  port: Type.Integer({ minimum: 1, maximum: 65535, description: 'TCP port in the machine.' }),
  snap: Type.String({ description: 'Snapshot id (`snap_...`).' }),
  pool: Type.String({ description: 'Warm pool id (`twp_...`).' }),
  key: Type.String({ description: 'API key id (`key_...`).' }),
};
export const M = { id: P.id };
export const MP = { id: P.id, pid: P.pid };

export const MACHINE = ['invalid_argument', 'machine_not_found'] as const;
export const BUSY = ['machine_transitioning', 'invalid_state'] as const;
/** Everything served by the agent inside a running machine. */
export const AGENT = [...MACHINE, ...BUSY, 'unavailable', 'timeout', 'not_found'] as const;
export const FILES = [...AGENT, 'conflict', 'disk_full', 'payload_too_large'] as const;

export const noBody = Type.Object(
  {},
  { additionalProperties: false, description: 'No fields (an empty body is fine).' },
);

// ---- the table --------------------------------------------------------------------------------
