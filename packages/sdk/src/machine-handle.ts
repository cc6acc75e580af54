/**
 * What a handle on one machine offers besides its lifecycle and namespaces: its lifecycle events,
 * its network policy and preview URLs, SSH access, and its volume attachments. {@link Machine}
 * extends it; the split only keeps each file to one concern.
 */
import {
  type LifecycleEvent,
  type LifecycleEventsPage,
  type ListEventsOptions,
  type StreamEventsOptions,
  listLifecycleEvents,
  streamLifecycleEvents,
} from './events.js';
import type { LegacyNetworkPolicy, MachineInfo, NetworkPolicy } from './machine-info.js';
import {
  type ListPreviewUrlsOptions,
  type PreviewGrant,
  type PreviewProxyTarget,
  type PreviewReadiness,
  type PreviewRevocation,
  type PreviewUrl,
  type PreviewUrlOptions,
  type SshAccess,
  type SshAccessOptions,
  type WaitForPreviewOptions,
  createPreviewProxyTarget,
  createPreviewUrl,
  createSshAccess,
  getHostInfo,
  listPreviewUrls,
  revokePreviewUrl,
  setNetwork,
  waitForPreview,
} from './network.js';
import { type ConnectionOptions, type RequestOptions, Transport } from './transport.js';
import {
  type AttachVolumeOptions,
  type VolumeAttachment,
  type VolumeHealth,
  type VolumeMount,
  attachVolume,
  detachVolume,
  getVolumeHealth,
  listVolumes,
  remountVolume,
} from './volume.js';

/**
 * The part of a {@link Machine} handle that addresses the machine by id only: events, network,
 * previews, SSH and volumes. Use it through `Machine`.
 *
 * @example
 * ```ts
 * const machine = await Machine.create();
 * const preview = await machine.getPreviewUrl(3000);
 * ```
 */
export class MachineHandle {
  /**
   * The machine id (`mch_...`), stable across pause and resume.
   *
   * @example
   * ```ts
   * const machine = await Machine.create();
   * console.log(machine.id); // "mch_..."
   * ```
   */
  readonly id: string;
  /** The one HTTP client of this handle and its namespaces. */
  protected readonly transport: Transport;

  /**
   * Prefer {@link Machine.connect}; a `MachineHandle` is made by `Machine`'s constructor.
   *
   * @example
   * ```ts
   * const machine = new Machine('mch_aaaaaaaaaaaaaaaaaaaa');
   * ```
   */
  constructor(id: string, opts: ConnectionOptions = {}) {
    this.id = id;
    this.transport = new Transport(opts);
  }

  /**
   * The machine's lifecycle events (state changes, create, timeouts, snapshots, forks) as an async
   * iterator: the retained ones after `afterEventId` first (all retained ones without it, none
   * with `liveOnly`), then live ones. It reconnects by itself when the connection drops and resumes
   * after the last event it yielded; `break` (or `signal`) ends it.
   *
   * @example
   * ```ts
   * for await (const event of machine.streamEvents({ liveOnly: true })) {
   *   console.log(event.id, event.type, event.status);
   *   if (event.status === 'killed') break;
   * }
   * ```
   */
  streamEvents(opts: StreamEventsOptions = {}): AsyncGenerator<LifecycleEvent, void, undefined> {
    return streamLifecycleEvents(this.transport, this.id, opts);
  }

  /**
   * One page of the machine's lifecycle events after `afterEventId` (polling; `waitMs` long-polls
   * for the next one when there is none yet).
   *
   * @example
   * ```ts
   * let after = 0;
   * const { events, lastEventId } = await machine.listEvents({ afterEventId: after, waitMs: 10_000 });
   * after = lastEventId;
   * ```
   */
  listEvents(opts: ListEventsOptions = {}): Promise<LifecycleEventsPage> {
    return listLifecycleEvents(this.transport, this.id, opts);
  }

  /**
   * Replaces the machine's network policy (egress and `maskRequestHost`) and returns its info.
   * The whole policy is replaced: what is left out takes its default (egress `allow_all`, no
   * Host rewriting). Tightening fails closed: the stricter rules are in force when this returns,
   * and if they could not be applied the machine is left denying all egress (an `InternalError`
   * says so). Broadening returns once the new rules apply. Works on a running, paused or
   * hibernated machine; the policy survives pause, hibernate, resume and fork. The legacy form
   * (`internetAccess`, `allowOut`, `denyOut`) is accepted too, not mixed with the other.
   *
   * @example
   * ```ts
   * await machine.setNetwork({ egress: { mode: 'custom', allowCidrs: ['140.82.112.0/20'] } });
   * await machine.setNetwork({ egress: { mode: 'allow_all', rateLimit: { kbitPerSec: 8_000 } } });
   * const info = await machine.setNetwork({ internetAccess: false });
   * console.log(info.network.egress.mode, info.network.internetAccess); // "deny_all" false
   * ```
   */
  setNetwork(network: NetworkPolicy | LegacyNetworkPolicy, opts: RequestOptions = {}): Promise<MachineInfo> {
    return setNetwork(this.transport, this.id, network, opts);
  }

  /**
   * Host information of a port: the host name that serves it (`PORT-MACHINE.<preview domain>`),
   * with a fresh grant (valid one hour) and its signed HTTP and WebSocket URLs. Nothing needs to
   * listen on the port yet.
   *
   * @example
   * ```ts
   * const { host, url, websocketUrl, expiresAt } = await machine.getHostInfo(3000);
   * console.log(host); // "3000-mch_....preview.localhost:7070"
   * ```
   */
  getHostInfo(port: number, opts: RequestOptions = {}): Promise<PreviewUrl> {
    return getHostInfo(this.transport, this.id, port, opts);
  }

  /**
   * A signed HTTP URL of a port, for a browser or `curl` (a new grant each call). The token is in
   * its query once; the first response sets a cookie that carries it from then on.
   *
   * @example
   * ```ts
   * await machine.commands.run('python3 -m http.server 8000', { background: true });
   * await machine.waitForPreview(8000);
   * const url = await machine.getUrl(8000);
   * console.log(await (await fetch(url)).text());
   * ```
   */
  async getUrl(port: number, opts: PreviewUrlOptions = {}): Promise<string> {
    return (await createPreviewUrl(this.transport, this.id, port, opts)).url;
  }

  /**
   * A signed WebSocket URL of a port (a new grant each call).
   *
   * @example
   * ```ts
   * const ws = new WebSocket(await machine.getWebsocketUrl(3000));
   * ws.onmessage = (e) => console.log(e.data);
   * ```
   */
  async getWebsocketUrl(port: number, opts: PreviewUrlOptions = {}): Promise<string> {
    return (await createPreviewUrl(this.transport, this.id, port, opts)).websocketUrl;
  }

  /**
   * A preview of a port with everything about it: the signed HTTP and WebSocket URLs, the host
   * name, the token (also accepted in the `x-nullspace-preview-token` header) and the grant's id
   * and expiry, to revoke it later. The same as {@link Machine.createSignedPreviewUrl}.
   *
   * @example
   * ```ts
   * const preview = await machine.getPreviewUrl(3000, { expiresIn: 3600 });
   * console.log(redactPreviewUrl(preview.url), preview.id, preview.expiresAt);
   * await machine.revokePreviewUrl(preview.id);
   * ```
   */
  getPreviewUrl(port: number, opts: PreviewUrlOptions = {}): Promise<PreviewUrl> {
    return createPreviewUrl(this.transport, this.id, port, opts);
  }

  /**
   * Creates a preview grant for a port, valid `expiresIn` seconds (default 3600, at most 7 days),
   * and returns it with its signed URLs. The token is shown only here: listing grants shows a
   * hint of it. Revoking the grant closes its open connections at once.
   *
   * @example
   * ```ts
   * const grant = await machine.createSignedPreviewUrl(8080, { expiresIn: 600 });
   * await fetch(new URL('/api', grant.url), { headers: { 'x-nullspace-preview-token': grant.token } });
   * ```
   */
  createSignedPreviewUrl(port: number, opts: PreviewUrlOptions = {}): Promise<PreviewUrl> {
    return createPreviewUrl(this.transport, this.id, port, opts);
  }

  /**
   * The machine's preview grants (URL and proxy grants, revoked and expired ones too), oldest
   * first, optionally of one port. Tokens are not shown, only their hint.
   *
   * @example
   * ```ts
   * const active = (await machine.listPreviewUrls({ port: 3000 })).filter(
   *   (g) => g.revokedAt === null && g.expiresAt > new Date(),
   * );
   * ```
   */
  listPreviewUrls(opts: ListPreviewUrlsOptions = {}): Promise<PreviewGrant[]> {
    return listPreviewUrls(this.transport, this.id, opts);
  }

  /**
   * Revokes a preview grant (`pvg_...`): no request gets in with it from now on, and its open HTTP
   * and WebSocket connections are closed. Revoking a revoked grant is not an error.
   *
   * @example
   * ```ts
   * const { closedConnections } = await machine.revokePreviewUrl(preview.id);
   * ```
   */
  revokePreviewUrl(grantId: string, opts: RequestOptions = {}): Promise<PreviewRevocation> {
    return revokePreviewUrl(this.transport, this.id, grantId, opts);
  }

  /**
   * Waits until a port of the machine accepts connections (waking a paused machine with
   * `autoResume`, as preview traffic would), for at most `timeoutMs` (default 30 000). Throws
   * `TimeoutError` when nothing answered in time. Call it before sharing a preview link.
   *
   * @example
   * ```ts
   * await machine.commands.run('npm run dev', { background: true, cwd: '/workspace/app' });
   * const { waitedMs } = await machine.waitForPreview(5173, { timeoutMs: 60_000 });
   * console.log(`dev server up after ${waitedMs} ms:`, await machine.getUrl(5173));
   * ```
   */
  waitForPreview(port: number, opts: WaitForPreviewOptions = {}): Promise<PreviewReadiness> {
    return waitForPreview(this.transport, this.id, port, opts);
  }

  /**
   * A target for a preview proxy you run in front of the preview domain: upstream URLs with no
   * secret in them, and the `x-nullspace-preview-proxy-token` header your proxy adds to each
   * request it forwards. The token works only in that header (never in a URL or cookie).
   *
   * @example
   * ```ts
   * const target = await machine.createPreviewProxyTarget(3000, { expiresIn: 86_400 });
   * const res = await fetch(new URL('/health', target.upstreamUrl), { headers: target.headers });
   * ```
   */
  createPreviewProxyTarget(port: number, opts: PreviewUrlOptions = {}): Promise<PreviewProxyTarget> {
    return createPreviewProxyTarget(this.transport, this.id, port, opts);
  }

  /**
   * Short-lived SSH access: the server signs your public key into an OpenSSH user certificate
   * (default 60 minutes, at most 1440) and says where its relay for this machine listens. Only the
   * public key leaves your computer. Save the certificate and the known_hosts line, then log in
   * with {@link sshArgs} or {@link sshCommandLine} (or `nullspace machine ssh ID`, which does all
   * of it).
   *
   * @example
   * ```ts
   * const key = `${homedir()}/.ssh/id_ed25519`;
   * const access = await machine.createSshAccess({ publicKey: readFileSync(`${key}.pub`, 'utf8') });
   * writeFileSync(`${key}-cert.pub`, `${access.certificate}\n`);
   * writeFileSync('/tmp/known_hosts', `${access.knownHosts}\n`);
   * spawnSync('ssh', sshArgs(access, { certificateFile: `${key}-cert.pub`, knownHostsFile: '/tmp/known_hosts', identityFile: key }), { stdio: 'inherit' });
   * ```
   */
  createSshAccess(opts: SshAccessOptions): Promise<SshAccess> {
    return createSshAccess(this.transport, this.id, opts);
  }

  /**
   * The machine's volume attachments (the volumes mounted in it now), in the order they were made.
   *
   * @example
   * ```ts
   * for (const a of await machine.listVolumes()) console.log(a.id, a.volumeName, a.mountPath);
   * ```
   */
  listVolumes(opts: RequestOptions = {}): Promise<VolumeAttachment[]> {
    return listVolumes(this.transport, this.id, opts);
  }

  /**
   * Mounts a volume (id or name) into the running machine at `mountPath` (created if missing),
   * read-write unless `readOnly`; `subpath` mounts one directory of it. Also takes one
   * {@link VolumeMount} object. The mount survives pause, hibernate and resume, and a fork or a
   * machine started from a snapshot of this one gets it too.
   *
   * @example
   * ```ts
   * const a = await machine.attachVolume('datasets', '/data', { readOnly: true, subpath: 'v2' });
   * await machine.attachVolume({ volume: 'cache', mountPath: '/root/.cache' });
   * ```
   */
  attachVolume(mount: VolumeMount, opts?: RequestOptions): Promise<VolumeAttachment>;
  attachVolume(volume: string, mountPath: string, opts?: AttachVolumeOptions): Promise<VolumeAttachment>;
  attachVolume(
    volume: string | VolumeMount,
    mountPathOrOpts?: string | RequestOptions,
    opts: AttachVolumeOptions = {},
  ): Promise<VolumeAttachment> {
    if (typeof volume !== 'string')
      return attachVolume(
        this.transport,
        this.id,
        volume,
        (mountPathOrOpts as RequestOptions | undefined) ?? {},
      );
    const { readOnly, subpath, ...request } = opts;
    const mount: VolumeMount = { volume, mountPath: String(mountPathOrOpts ?? '') };
    if (readOnly !== undefined) mount.readOnly = readOnly;
    if (subpath !== undefined) mount.subpath = subpath;
    return attachVolume(this.transport, this.id, mount, request);
  }

  /**
   * Unmounts a volume attachment (`vat_...`) from the running machine; the volume keeps its data.
   *
   * @example
   * ```ts
   * await machine.detachVolume(attachment.id);
   * ```
   */
  detachVolume(attachmentId: string, opts: RequestOptions = {}): Promise<VolumeAttachment> {
    return detachVolume(this.transport, this.id, attachmentId, opts);
  }

  /**
   * Checks now whether an attachment is mounted as it should be (the right volume and directory
   * at its path, read-only when asked) and returns the result; `reason` says what is wrong.
   *
   * @example
   * ```ts
   * const { healthy, reason } = await machine.getVolumeHealth(attachment.id);
   * ```
   */
  getVolumeHealth(attachmentId: string, opts: RequestOptions = {}): Promise<VolumeHealth> {
    return getVolumeHealth(this.transport, this.id, attachmentId, opts);
  }

  /**
   * Repairs an attachment in place: whatever of the volume is at its path is unmounted and the
   * volume mounted again as the attachment says. Returns it with a fresh health check.
   *
   * @example
   * ```ts
   * if (!(await machine.getVolumeHealth(a.id)).healthy) await machine.remountVolume(a.id);
   * ```
   */
  remountVolume(attachmentId: string, opts: RequestOptions = {}): Promise<VolumeAttachment> {
    return remountVolume(this.transport, this.id, attachmentId, opts);
  }
}
