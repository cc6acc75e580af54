import { invalidArgument } from './errors.js';
import { expectObject, optionalInteger, rejectUnknownKeys } from './validate.js';

/**
 * Preview URLs: port P of machine M is served at `http(s)://P-M.<preview domain>/`. Access needs a
 * grant: its token once in the query (`ns_token`, then a cookie) or in a header. A proxy grant's
 * token goes only in its own header, for a customer-run proxy in front of the preview domain.
 */
export const PREVIEW_QUERY_PARAM = 'ns_token';
export const PREVIEW_TOKEN_HEADER = 'x-nullspace-preview-token';
export const PREVIEW_PROXY_TOKEN_HEADER = 'x-nullspace-preview-proxy-token';
export const PREVIEW_COOKIE = 'nullspace_preview_token';
/** Every preview token starts with this, so redaction (and secret scanners) can find them. */
export const PREVIEW_TOKEN_PREFIX = 'nspv_';

export const PREVIEW_LIMITS = {
  /** Seconds a grant lives: default 1 hour, at most 7 days. */
  expiresIn: { min: 1, max: 7 * 24 * 3600, default: 3600 },
  /** wait_for_preview: default 30 s, at most 5 minutes. */
  waitTimeoutMs: { min: 100, max: 300_000, default: 30_000 },
} as const;

export type PreviewGrantKind = 'url' | 'proxy';

/** A grant as listed (its token is shown once, when it is made). */
export interface PreviewGrantInfo {
  id: string;
  machine_id: string;
  port: number;
  kind: PreviewGrantKind;
  /** The token's first characters, enough to tell grants apart (`nspv_abcd***`). */
  token_hint: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
}

/** `create_signed_preview_url` and `get_host_info`: a new grant with its URLs. */
export interface PreviewUrlInfo extends PreviewGrantInfo {
  /** `P-M.<domain>` (with the domain's port, if it has one). */
  host: string;
  token: string;
  /** The signed HTTP URL (token in the query). */
  url: string;
  /** The signed WebSocket URL. */
  websocket_url: string;
}

/** `create_preview_proxy_target`: a marker-only URL and the header a customer proxy adds. */
export interface PreviewProxyTargetInfo extends PreviewGrantInfo {
  /** The upstream URL, with no secret in it. */
  upstream_url: string;
  websocket_upstream_url: string;
  headers: Record<string, string>;
}

export interface PreviewRevocation {
  id: string;
  machine_id: string;
  port: number;
  revoked: true;
  revoked_at: string;
  /** Open HTTP and WebSocket connections of the grant that were closed. */
  closed_connections: number;
}

export interface PreviewReadiness {
  machine_id: string;
  port: number;
  ready: true;
  waited_ms: number;
}

export function parsePort(raw: unknown, field = 'port'): number {
  const n = typeof raw === 'string' && /^\d{1,5}$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535)
    throw invalidArgument(field, 'must be a TCP port, 1 to 65535');
  return n;
}

/** Body of `POST /v1/machines/{id}/preview_urls` (and `preview_proxy_targets`). */
export function parseCreatePreviewGrant(body: unknown): { port: number; expires_in: number } {
  const obj = expectObject(body ?? {}, 'body');
  rejectUnknownKeys(obj, ['port', 'expires_in']);
  if (obj.port === undefined) throw invalidArgument('port', 'is required');
  const { min, max, default: def } = PREVIEW_LIMITS.expiresIn;
  return { port: parsePort(obj.port), expires_in: optionalInteger(obj, 'expires_in', min, max) ?? def };
}

/** Body of `POST /v1/machines/{id}/ports/{port}/wait`. */
export function parseWaitForPreview(body: unknown): { timeout_ms: number } {
  const obj = expectObject(body ?? {}, 'body');
  rejectUnknownKeys(obj, ['timeout_ms']);
  const { min, max, default: def } = PREVIEW_LIMITS.waitTimeoutMs;
  return { timeout_ms: optionalInteger(obj, 'timeout_ms', min, max) ?? def };
}

const HOST_LABEL = /^(\d{1,5})-(mch_[a-z2-7]{20})$/;

/**
 * The machine and port a request's Host header names, when it is a preview host of `domain`
 * (compared without ports: the server may sit behind a proxy on another port).
 */
export function parsePreviewHost(
  hostHeader: string | undefined,
  domain: string,
): { machineId: string; port: number } | undefined {
  if (!hostHeader) return undefined;
  const host = stripPort(hostHeader.toLowerCase());
  const suffix = `.${stripPort(domain.toLowerCase())}`;
  if (!host.endsWith(suffix)) return undefined;
  const m = HOST_LABEL.exec(host.slice(0, -suffix.length));
  if (!m?.[1] || !m[2]) return undefined;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return undefined;
  return { machineId: m[2], port };
}

function stripPort(host: string): string {
  return host.replace(/:\d+$/, '');
}

const TOKEN_IN_TEXT = /nspv_([A-Za-z0-9_-]{0,4})[A-Za-z0-9_-]*/g;

/** `nspv_abcdefgh...` → `nspv_abcd***`: enough to recognise a token, not to use it. */
export function redactPreviewToken(token: string): string {
  return token.replace(TOKEN_IN_TEXT, (_all, head: string) => `${PREVIEW_TOKEN_PREFIX}${head}***`);
}

/** A preview URL with its token (in `ns_token` or anywhere else) redacted. */
export function redactPreviewUrl(url: string): string {
  return redactPreviewToken(url);
}
