/**
 * Networking of a machine: its egress policy, preview URLs (signed grants for one port, over HTTP
 * and WebSocket), proxy targets for a preview proxy you run yourself, and SSH access. The
 * operations are methods of `Machine`; this module holds their types, the wire conversions, and
 * the helpers around them (redaction, the `ssh` command line).
 */
import {
  CreatePreviewGrantBodySchema,
  LegacyNetworkBodySchema,
  PREVIEW_LIMITS,
  PreviewGrantInfoSchema,
  PreviewProxyTargetInfoSchema,
  PreviewReadinessSchema,
  PreviewRevocationSchema,
  PreviewUrlInfoSchema,
  SshAccessBodySchema,
  SshAccessInfoSchema,
  WaitForPreviewBodySchema,
  type MachineInfo as WireMachineInfo,
  type PreviewGrantInfo as WirePreviewGrant,
  type PreviewProxyTargetInfo as WirePreviewProxyTarget,
  type PreviewReadiness as WirePreviewReadiness,
  type PreviewRevocation as WirePreviewRevocation,
  type PreviewUrlInfo as WirePreviewUrl,
  type SshAccessInfo as WireSshAccess,
  redactPreviewToken as redactToken,
  redactPreviewUrl as redactUrl,
  sshCommandLine as sshLine,
} from '@nullspace/protocol';
import { InvalidArgumentError } from './errors.js';
import {
  type LegacyNetworkPolicy,
  type MachineInfo,
  type NetworkPolicy,
  machineInfoFromWire,
  networkToWire,
} from './machine-info.js';
import type { RequestOptions, Transport } from './transport.js';
import { type FromWire, fromWire, requestBody, toWire } from './wire.js';

/**
 * A preview grant: a signed, revocable permission to reach one port of one machine. Listing
 * grants shows this; the token itself is only shown once, by the call that makes it.
 *
 * @example
 * ```ts
 * for (const grant of await machine.listPreviewUrls({ port: 3000 })) {
 *   console.log(grant.id, grant.tokenHint, grant.expiresAt, grant.revokedAt ?? 'active');
 * }
 * ```
 */
export interface PreviewGrant extends FromWire<typeof PreviewGrantInfoSchema> {}

/**
 * A new preview grant with its URLs: what {@link Machine.getPreviewUrl},
 * {@link Machine.createSignedPreviewUrl} and {@link Machine.getHostInfo} return. `url` and
 * `websocketUrl` carry the token in their query (`ns_token`); the first response sets a cookie
 * that carries it from then on, so a browser can follow links. Treat both URLs as secrets.
 *
 * @example
 * ```ts
 * const preview = await machine.getPreviewUrl(3000, { expiresIn: 600 });
 * console.log(preview.url, preview.websocketUrl, preview.id, preview.expiresAt);
 * ```
 */
export interface PreviewUrl extends FromWire<typeof PreviewUrlInfoSchema> {}

/**
 * A target for a preview proxy you run: URLs with no secret in them, and the header (with the
 * grant's token) your proxy adds to every request it forwards there.
 *
 * @example
 * ```ts
 * const target = await machine.createPreviewProxyTarget(3000);
 * await fetch(target.upstreamUrl, { headers: target.headers });
 * ```
 */
export interface PreviewProxyTarget extends FromWire<typeof PreviewProxyTargetInfoSchema> {}

/**
 * What {@link Machine.revokePreviewUrl} did. A revoked grant lets nothing in from then on, and
 * its open HTTP and WebSocket connections were closed.
 *
 * @example
 * ```ts
 * const { revokedAt, closedConnections } = await machine.revokePreviewUrl('pvg_aaaaaaaaaaaaaaaaaaaa');
 * ```
 */
export interface PreviewRevocation extends FromWire<typeof PreviewRevocationSchema> {}

/**
 * What {@link Machine.waitForPreview} saw: the port accepts connections.
 *
 * @example
 * ```ts
 * const { waitedMs } = await machine.waitForPreview(3000, { timeoutMs: 60_000 });
 * ```
 */
export interface PreviewReadiness extends FromWire<typeof PreviewReadinessSchema> {}

/**
 * Short-lived SSH access to a machine ({@link Machine.createSshAccess}): an OpenSSH user
 * certificate for your public key and where to connect. Save `certificate` as a `-cert.pub` file
 * and `knownHosts` in a known_hosts file, then run the command {@link sshCommandLine} makes.
 *
 * @example
 * ```ts
 * const access = await machine.createSshAccess({ publicKey: readFileSync(`${homedir()}/.ssh/id_ed25519.pub`, 'utf8') });
 * console.log(access.user, access.host, access.port, access.expiresAt);
 * ```
 */
export interface SshAccess extends FromWire<typeof SshAccessInfoSchema> {}

/**
 * Options of {@link Machine.getPreviewUrl}, {@link Machine.createSignedPreviewUrl},
 * {@link Machine.getUrl}, {@link Machine.getWebsocketUrl} and
 * {@link Machine.createPreviewProxyTarget}.
 *
 * @example
 * ```ts
 * const preview = await machine.createSignedPreviewUrl(8080, { expiresIn: 15 * 60 });
 * ```
 */
export interface PreviewUrlOptions
  extends Omit<FromWire<typeof CreatePreviewGrantBodySchema>, 'port'>,
    RequestOptions {}

/**
 * Options of {@link Machine.listPreviewUrls}.
 *
 * @example
 * ```ts
 * const grants = await machine.listPreviewUrls({ port: 3000 });
 * ```
 */
export interface ListPreviewUrlsOptions extends RequestOptions {
  /** Only grants for this port. */
  port?: number;
}

/**
 * Options of {@link Machine.waitForPreview}.
 *
 * @example
 * ```ts
 * await machine.waitForPreview(3000, { timeoutMs: 120_000 });
 * ```
 */
export interface WaitForPreviewOptions extends FromWire<typeof WaitForPreviewBodySchema>, RequestOptions {}

/**
 * Options of {@link Machine.createSshAccess}.
 *
 * @example
 * ```ts
 * const opts: SshAccessOptions = { publicKey: 'ssh-ed25519 AAAAC3Nz... me@laptop', expiresInMinutes: 30 };
 * ```
 */
export interface SshAccessOptions extends FromWire<typeof SshAccessBodySchema>, RequestOptions {}

/**
 * Where the files {@link sshCommandLine} and {@link sshArgs} name are.
 *
 * @example
 * ```ts
 * const files: SshFiles = {
 *   certificateFile: '/home/me/.config/nullspace/ssh/mch_aaaaaaaaaaaaaaaaaaaa-cert.pub',
 *   knownHostsFile: '/home/me/.config/nullspace/known_hosts',
 *   identityFile: '/home/me/.ssh/id_ed25519',
 * };
 * ```
 */
export interface SshFiles {
  /** Holds {@link SshAccess.certificate}. */
  certificateFile: string;
  /** Holds the {@link SshAccess.knownHosts} line. */
  knownHostsFile: string;
  /** The private key the certificate was made for; default: ssh's own choice. */
  identityFile?: string;
}

// ---- wire conversions --------------------------------------------------------------------------

/**
 * Converts a preview grant (as listed) from the wire's snake_case to the SDK's camelCase.
 *
 * @example
 * ```ts
 * const grant = previewGrantFromWire(json.items[0]);
 * grant.expiresAt instanceof Date; // true
 * ```
 */
export function previewGrantFromWire(w: WirePreviewGrant): PreviewGrant {
  return fromWire(PreviewGrantInfoSchema, w);
}

/**
 * Converts a preview grant back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify((await machine.listPreviewUrls()).map(previewGrantToWire)));
 * ```
 */
export function previewGrantToWire(g: PreviewGrant): WirePreviewGrant {
  return toWire(PreviewGrantInfoSchema, g);
}

/**
 * Converts a preview URL (a grant with its token and URLs) from the wire's snake_case.
 *
 * @example
 * ```ts
 * const preview = previewUrlFromWire(json);
 * preview.websocketUrl; // "ws://3000-mch_....preview.localhost:7070/?ns_token=nspv_..."
 * ```
 */
export function previewUrlFromWire(w: WirePreviewUrl): PreviewUrl {
  return fromWire(PreviewUrlInfoSchema, w);
}

/**
 * Converts a preview URL back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(previewUrlToWire(await machine.getPreviewUrl(3000))));
 * ```
 */
export function previewUrlToWire(p: PreviewUrl): WirePreviewUrl {
  return toWire(PreviewUrlInfoSchema, p);
}

/**
 * Converts a proxy target from the wire's snake_case.
 *
 * @example
 * ```ts
 * const target = previewProxyTargetFromWire(json);
 * target.upstreamUrl; // "http://3000-mch_....preview.localhost:7070/"
 * ```
 */
export function previewProxyTargetFromWire(w: WirePreviewProxyTarget): PreviewProxyTarget {
  return fromWire(PreviewProxyTargetInfoSchema, w);
}

/**
 * Converts a proxy target back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(previewProxyTargetToWire(await machine.createPreviewProxyTarget(3000))));
 * ```
 */
export function previewProxyTargetToWire(t: PreviewProxyTarget): WirePreviewProxyTarget {
  return toWire(PreviewProxyTargetInfoSchema, t);
}

/**
 * Converts a revocation back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(previewRevocationToWire(await machine.revokePreviewUrl(grantId))));
 * ```
 */
export function previewRevocationToWire(r: PreviewRevocation): WirePreviewRevocation {
  return toWire(PreviewRevocationSchema, r);
}

/**
 * Converts a readiness answer back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(previewReadinessToWire(await machine.waitForPreview(3000))));
 * ```
 */
export function previewReadinessToWire(r: PreviewReadiness): WirePreviewReadiness {
  return toWire(PreviewReadinessSchema, r);
}

/**
 * Converts SSH access from the wire's snake_case to the SDK's camelCase.
 *
 * @example
 * ```ts
 * const access = sshAccessFromWire(json);
 * access.expiresAt instanceof Date; // true
 * ```
 */
export function sshAccessFromWire(w: WireSshAccess): SshAccess {
  return fromWire(SshAccessInfoSchema, w);
}

/**
 * Converts SSH access back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(sshAccessToWire(access)));
 * ```
 */
export function sshAccessToWire(a: SshAccess): WireSshAccess {
  return toWire(SshAccessInfoSchema, a);
}

// ---- helpers -----------------------------------------------------------------------------------

/**
 * A preview URL with its token replaced by `nspv_abcd***`: enough to recognise it, not to use it.
 * Use it before a preview URL goes into a log, a terminal recording or a support bundle; the
 * server redacts its own logs the same way.
 *
 * @example
 * ```ts
 * redactPreviewUrl('http://3000-mch_x.preview.localhost:7070/?ns_token=nspv_abcdefghijkl');
 * // "http://3000-mch_x.preview.localhost:7070/?ns_token=nspv_abcd***"
 * ```
 */
export function redactPreviewUrl(url: string): string {
  return redactUrl(url);
}

/**
 * A preview token (or any text holding one) with the secret part replaced: `nspv_abcd***`.
 *
 * @example
 * ```ts
 * console.log(`proxy token: ${redactPreviewToken(target.headers['x-nullspace-preview-proxy-token']!)}`);
 * ```
 */
export function redactPreviewToken(token: string): string {
  return redactToken(token);
}

/**
 * The arguments (after `ssh` itself) that log in with {@link SshAccess}, its certificate and
 * known_hosts line saved in `files`: what `spawn('ssh', sshArgs(...))` needs. The host key is
 * checked strictly, against the machine id (`HostKeyAlias`), never `[host]:port`: relays of all
 * machines share the server's host name and reuse ports.
 *
 * @example
 * ```ts
 * spawn('ssh', [...sshArgs(access, files), 'uname', '-a'], { stdio: 'inherit' });
 * ```
 */
export function sshArgs(access: SshAccess, files: SshFiles): string[] {
  const args = ['-p', String(access.port)];
  if (files.identityFile !== undefined) args.push('-i', files.identityFile, '-o', 'IdentitiesOnly=yes');
  args.push(
    '-o',
    `CertificateFile=${files.certificateFile}`,
    '-o',
    `UserKnownHostsFile=${files.knownHostsFile}`,
    '-o',
    `HostKeyAlias=${access.machineId}`,
    '-o',
    'StrictHostKeyChecking=yes',
    `${access.user}@${access.host}`,
  );
  return args;
}

/**
 * The same login as {@link sshArgs}, as one command line quoted for a POSIX shell, to print or
 * paste.
 *
 * @example
 * ```ts
 * console.log(sshCommandLine(access, { certificateFile: '~/.config/nullspace/ssh/mch_aaaaaaaaaaaaaaaaaaaa-cert.pub', knownHostsFile: '~/.config/nullspace/known_hosts' }));
 * // ssh -p 40123 -o CertificateFile=~/.config/nullspace/ssh/mch_aaaaaaaaaaaaaaaaaaaa-cert.pub ... root@127.0.0.1
 * ```
 */
export function sshCommandLine(access: SshAccess, files: SshFiles): string {
  return sshLine({
    machineId: access.machineId,
    user: access.user,
    host: access.host,
    port: access.port,
    certificateFile: files.certificateFile,
    knownHostsFile: files.knownHostsFile,
    ...(files.identityFile === undefined ? {} : { identityFile: files.identityFile }),
  });
}

// ---- operations (the methods of Machine call these) --------------------------------------------

function machinePath(id: string): string {
  return `/v1/machines/${encodeURIComponent(id)}`;
}

function perCall(opts: RequestOptions): { timeoutMs?: number } {
  return opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs };
}

const LEGACY_KEYS = ['internetAccess', 'allowOut', 'denyOut'] as const;
const POLICY_KEYS = ['egress', 'maskRequestHost'] as const;

/**
 * The body of `PUT .../network`. The two forms are kept apart here: a server given both takes the
 * legacy fields alone, and a policy meant to tighten must not be dropped on the way.
 */
function setNetworkBody(network: NetworkPolicy | LegacyNetworkPolicy): Record<string, unknown> {
  const given = (keys: readonly string[]) =>
    keys.filter((k) => (network as Record<string, unknown>)[k] !== undefined);
  const legacy = given(LEGACY_KEYS);
  const policy = given(POLICY_KEYS);
  if (legacy.length > 0 && policy.length > 0)
    throw new InvalidArgumentError(
      'invalid_argument',
      `network: give ${policy.join(' and ')} or the legacy ${legacy.join(', ')}, not both`,
      { details: { field: legacy[0] } },
    );
  if (legacy.length === 0) return networkToWire(network as NetworkPolicy);
  return requestBody(LegacyNetworkBodySchema, network);
}

export async function setNetwork(
  transport: Transport,
  machineId: string,
  network: NetworkPolicy | LegacyNetworkPolicy,
  opts: RequestOptions,
): Promise<MachineInfo> {
  const wire = await transport.request<WireMachineInfo>({
    method: 'PUT',
    path: `${machinePath(machineId)}/network`,
    body: setNetworkBody(network),
    ...perCall(opts),
  });
  return machineInfoFromWire(wire);
}

export async function getHostInfo(
  transport: Transport,
  machineId: string,
  port: number,
  opts: RequestOptions,
): Promise<PreviewUrl> {
  const wire = await transport.request<WirePreviewUrl>({
    method: 'GET',
    path: `${machinePath(machineId)}/ports/${encodeURIComponent(String(port))}/host`,
    ...perCall(opts),
  });
  return previewUrlFromWire(wire);
}

export async function createPreviewUrl(
  transport: Transport,
  machineId: string,
  port: number,
  opts: PreviewUrlOptions,
): Promise<PreviewUrl> {
  const wire = await transport.request<WirePreviewUrl>({
    method: 'POST',
    path: `${machinePath(machineId)}/preview_urls`,
    body: requestBody(CreatePreviewGrantBodySchema, { ...opts, port }),
    ...perCall(opts),
  });
  return previewUrlFromWire(wire);
}

export async function listPreviewUrls(
  transport: Transport,
  machineId: string,
  opts: ListPreviewUrlsOptions,
): Promise<PreviewGrant[]> {
  const page = await transport.request<{ items: WirePreviewGrant[] }>({
    method: 'GET',
    path: `${machinePath(machineId)}/preview_urls`,
    ...(opts.port === undefined ? {} : { query: new URLSearchParams({ port: String(opts.port) }) }),
    ...perCall(opts),
  });
  return page.items.map((item) => previewGrantFromWire(item));
}

export async function revokePreviewUrl(
  transport: Transport,
  machineId: string,
  grantId: string,
  opts: RequestOptions,
): Promise<PreviewRevocation> {
  const w = await transport.request<WirePreviewRevocation>({
    method: 'DELETE',
    path: `${machinePath(machineId)}/preview_urls/${encodeURIComponent(grantId)}`,
    ...perCall(opts),
  });
  return fromWire(PreviewRevocationSchema, w);
}

export async function waitForPreview(
  transport: Transport,
  machineId: string,
  port: number,
  opts: WaitForPreviewOptions,
): Promise<PreviewReadiness> {
  // The server's wait is on purpose: it comes on top of the request timeout (0 = no limit), so the
  // answer is the server's own `timeout` error rather than the SDK giving up first.
  const base = opts.requestTimeoutMs ?? transport.requestTimeoutMs;
  const wait = opts.timeoutMs ?? PREVIEW_LIMITS.waitTimeoutMs.default;
  const w = await transport.request<WirePreviewReadiness>({
    method: 'POST',
    path: `${machinePath(machineId)}/ports/${encodeURIComponent(String(port))}/wait`,
    body: requestBody(WaitForPreviewBodySchema, opts),
    timeoutMs: base === 0 ? 0 : base + wait,
  });
  return fromWire(PreviewReadinessSchema, w);
}

export async function createPreviewProxyTarget(
  transport: Transport,
  machineId: string,
  port: number,
  opts: PreviewUrlOptions,
): Promise<PreviewProxyTarget> {
  const wire = await transport.request<WirePreviewProxyTarget>({
    method: 'POST',
    path: `${machinePath(machineId)}/preview_proxy_targets`,
    body: requestBody(CreatePreviewGrantBodySchema, { ...opts, port }),
    ...perCall(opts),
  });
  return previewProxyTargetFromWire(wire);
}

export async function createSshAccess(
  transport: Transport,
  machineId: string,
  opts: SshAccessOptions,
): Promise<SshAccess> {
  const wire = await transport.request<WireSshAccess>({
    method: 'POST',
    path: `${machinePath(machineId)}/ssh_access`,
    body: requestBody(SshAccessBodySchema, opts),
    ...perCall(opts),
  });
  return sshAccessFromWire(wire);
}
