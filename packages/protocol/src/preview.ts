import { invalidArgument } from './errors.js';
import { check, queryValues } from './schema/check.js';
import { DateTime, Nullable, type Static, Strict, StringEnum, Type, named } from './schema/kit.js';
import { expectObject } from './validate.js';

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

const GRANT = {
  id: Type.String({ description: '`pvg_...`' }),
  machine_id: Type.String(),
  port: Type.Integer(),
  kind: StringEnum(['url', 'proxy'] as const, {
    description: 'url: a preview URL (query, cookie or header); proxy: a proxy target header token.',
  }),
  token_hint: Type.String({
    description: "The token's first characters, enough to tell grants apart (`nspv_abcd***`).",
  }),
  created_at: DateTime(),
  expires_at: DateTime(),
  revoked_at: Nullable(DateTime()),
};

/** A grant as listed (its token is shown once, when it is made). */
export const PreviewGrantInfoSchema = named('PreviewGrant', Type.Object(GRANT));
export type PreviewGrantInfo = Static<typeof PreviewGrantInfoSchema>;

export const ListPreviewGrantsResponseSchema = Type.Object({ items: Type.Array(PreviewGrantInfoSchema) });

/** `create_signed_preview_url` and `get_host_info`: a new grant with its URLs. */
export const PreviewUrlInfoSchema = named(
  'PreviewUrl',
  Type.Object({
    ...GRANT,
    host: Type.String({ description: "`P-M.<domain>` (with the domain's port, if it has one)." }),
    token: Type.String(),
    url: Type.String({ description: 'The signed HTTP URL (token in the query).' }),
    websocket_url: Type.String({ description: 'The signed WebSocket URL.' }),
  }),
);
export type PreviewUrlInfo = Static<typeof PreviewUrlInfoSchema>;

/** `create_preview_proxy_target`: a marker-only URL and the header a customer proxy adds. */
export const PreviewProxyTargetInfoSchema = named(
  'PreviewProxyTarget',
  Type.Object({
    ...GRANT,
    upstream_url: Type.String({ description: 'The upstream URL, with no secret in it.' }),
    websocket_upstream_url: Type.String(),
    headers: Type.Record(Type.String(), Type.String(), {
      description: 'Headers the proxy adds (with the token).',
    }),
  }),
);
export type PreviewProxyTargetInfo = Static<typeof PreviewProxyTargetInfoSchema>;

export const PreviewRevocationSchema = named(
  'PreviewRevocation',
  Type.Object({
    id: Type.String(),
    machine_id: Type.String(),
    port: Type.Integer(),
    revoked: Type.Literal(true),
    revoked_at: DateTime(),
    closed_connections: Type.Integer({
      description: 'Open HTTP and WebSocket connections of the grant that were closed.',
    }),
  }),
);
export type PreviewRevocation = Static<typeof PreviewRevocationSchema>;

export const PreviewReadinessSchema = named(
  'PreviewReadiness',
  Type.Object({
    machine_id: Type.String(),
    port: Type.Integer(),
    ready: Type.Literal(true),
    waited_ms: Type.Integer(),
  }),
);
export type PreviewReadiness = Static<typeof PreviewReadinessSchema>;

const PORT = Type.Integer({ minimum: 1, maximum: 65535, description: 'TCP port in the machine.' });

/** Body of `POST /v1/machines/{id}/preview_urls` (and `preview_proxy_targets`). */
export const CreatePreviewGrantBodySchema = named(
  'CreatePreviewGrantRequest',
  Strict({
    port: PORT,
    expires_in: Type.Optional(
      Type.Integer({
        minimum: PREVIEW_LIMITS.expiresIn.min,
        maximum: PREVIEW_LIMITS.expiresIn.max,
        default: PREVIEW_LIMITS.expiresIn.default,
        description: 'Seconds the grant lives.',
      }),
    ),
  }),
);

/** Body of `POST /v1/machines/{id}/ports/{port}/wait`. */
export const WaitForPreviewBodySchema = named(
  'WaitForPreviewRequest',
  Strict({
    timeout_ms: Type.Optional(
      Type.Integer({
        minimum: PREVIEW_LIMITS.waitTimeoutMs.min,
        maximum: PREVIEW_LIMITS.waitTimeoutMs.max,
        default: PREVIEW_LIMITS.waitTimeoutMs.default,
        description: 'How long to wait for the port to answer.',
      }),
    ),
  }),
);

export const ListPreviewGrantsQuerySchema = Type.Object({
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Only grants of this port.' })),
});

/**
 * `GET .../preview_urls` query: `port` once (a second one was ignored before the fuzzed edge
 * checked it against the schema), 1 to 65535.
 */
export function parseListPreviewGrantsQuery(params: URLSearchParams): { port?: number } {
  return check(ListPreviewGrantsQuerySchema, queryValues(params, ListPreviewGrantsQuerySchema));
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
  if (obj.port === undefined) throw invalidArgument('port', 'is required');
  // A port given as text ("8080") is accepted, as in a path.
  const b = check(CreatePreviewGrantBodySchema, { ...obj, port: parsePort(obj.port) });
  return { port: b.port, expires_in: b.expires_in ?? PREVIEW_LIMITS.expiresIn.default };
}

/** Body of `POST /v1/machines/{id}/ports/{port}/wait`. */
export function parseWaitForPreview(body: unknown): { timeout_ms: number } {
  const b = check(WaitForPreviewBodySchema, body ?? {});
  return { timeout_ms: b.timeout_ms ?? PREVIEW_LIMITS.waitTimeoutMs.default };
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
