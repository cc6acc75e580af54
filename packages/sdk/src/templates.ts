import { createInterface } from 'node:readline';
import type {
  ReadyCheck,
  TemplateBuildEvent,
  TemplateBuildStarted,
  TemplateInfo as WireTemplateInfo,
  WarmPoolInfo as WireWarmPoolInfo,
} from '@nullspace/protocol';
import { errorFromCode } from './errors.js';
import { type ConnectionOptions, Transport } from './transport.js';

/**
 * A template build as the server describes it, camelCase; times are `Date`s.
 *
 * @example
 * ```ts
 * const t = await Template.get('team/review-api:stable');
 * console.log(t.id, t.names, t.status, t.sizeBytes);
 * ```
 */
export interface TemplateInfo {
  /** `tpl_...` */
  id: string;
  /** Every `name:tag` pointing at this build. */
  names: string[];
  status: 'building' | 'ready' | 'failed' | 'deleted';
  /** Content hash of the spec and its base. */
  key: string;
  base: string;
  packages: string[];
  /** Names of the template's environment variables. */
  env: string[];
  workdir: string | null;
  startCmd: string | null;
  readyCheck: ReadyCheckOptions | null;
  diskMb: number;
  vcpus: number;
  memoryMb: number;
  snapshotBacked: boolean;
  snapshotId: string | null;
  sizeBytes: number;
  error: string | null;
  createdAt: Date;
  finishedAt: Date | null;
  buildMs: number | null;
}

/** How a template's start command is known to be ready: a port (optionally an HTTP path) or a command. */
export interface ReadyCheckOptions {
  port?: number;
  httpPath?: string;
  command?: string;
  timeoutMs?: number;
}

/** A file put into the template: text `content` or bytes. */
export interface TemplateFileSpec {
  path: string;
  content: string | Uint8Array;
  /** Permission bits, e.g. `0o755` (default `0o644`). */
  mode?: number;
}

/**
 * What {@link Template.build} builds. Only `name` is required.
 *
 * @example
 * ```ts
 * const spec: TemplateBuildSpec = {
 *   name: 'team/review-api:stable',
 *   packages: ['jq'],
 *   files: [{ path: '/srv/app/server.py', content: 'print("hi")' }],
 *   run: ['python3 -m compileall /srv/app'],
 *   startCmd: 'python3 -m http.server 8000 --directory /srv/app',
 *   readyCheck: { port: 8000, httpPath: '/' },
 * };
 * ```
 */
export interface TemplateBuildSpec {
  /** `name` or `name:tag` (tag `latest` when left out). */
  name: string;
  /** More tags for the same build. */
  tags?: string[];
  /** The template to start from (default `base`). */
  base?: string;
  /** Debian (bookworm) packages to install. */
  packages?: string[];
  files?: TemplateFileSpec[];
  /** Shell commands run in order (bash, as root, in `workdir`); one failing fails the build. */
  run?: string[];
  /** Environment of the run steps and of every process in machines made from the template. */
  env?: Record<string, string>;
  /** Default working directory of machines made from the template. */
  workdir?: string;
  /** Started in every machine made from the template (tag `start`); a create returns once it is ready. */
  startCmd?: string;
  readyCheck?: ReadyCheckOptions;
  diskMb?: number;
  /** Size of the build machine (and of a snapshot-backed template's machines). */
  vcpus?: number;
  memoryMb?: number;
  /** Capture the machine with the start command ready: machines start from that memory state. */
  snapshot?: boolean;
}

/** A build step starting (`step` of `total`). */
export interface TemplateBuildProgress {
  step: number;
  total: number;
  name: string;
}

/** Options of {@link Template.build}. */
export interface TemplateBuildOptions extends ConnectionOptions {
  /** Each line the build writes (apt, run steps ...). */
  onLog?: (line: string) => void;
  /** Each step as it starts. */
  onProgress?: (progress: TemplateBuildProgress) => void;
}

/** The answer of {@link Template.build}: the template, and whether it was built already. */
export interface TemplateBuildResult {
  template: TemplateInfo;
  /** True when the same spec (on the same base) had been built before: nothing was done. */
  cached: boolean;
}

export function templateInfoFromWire(w: WireTemplateInfo): TemplateInfo {
  return {
    id: w.id,
    names: w.names,
    status: w.status,
    key: w.key,
    base: w.base,
    packages: w.packages,
    env: w.env,
    workdir: w.workdir,
    startCmd: w.start_cmd,
    readyCheck: w.ready_check ? readyCheckFromWire(w.ready_check) : null,
    diskMb: w.disk_mb,
    vcpus: w.vcpus,
    memoryMb: w.memory_mb,
    snapshotBacked: w.snapshot_backed,
    snapshotId: w.snapshot_id,
    sizeBytes: w.size_bytes,
    error: w.error,
    createdAt: new Date(w.created_at),
    finishedAt: w.finished_at ? new Date(w.finished_at) : null,
    buildMs: w.build_ms,
  };
}

function readyCheckFromWire(r: ReadyCheck): ReadyCheckOptions {
  return {
    ...(r.port !== undefined ? { port: r.port } : {}),
    ...(r.http_path !== undefined ? { httpPath: r.http_path } : {}),
    ...(r.command !== undefined ? { command: r.command } : {}),
    timeoutMs: r.timeout_ms,
  };
}

/** The body of `POST /v1/templates` for `spec`. */
export function templateSpecToWire(spec: TemplateBuildSpec): Record<string, unknown> {
  const r = spec.readyCheck;
  return {
    name: spec.name,
    tags: spec.tags,
    base: spec.base,
    packages: spec.packages,
    files: spec.files?.map((f) =>
      typeof f.content === 'string'
        ? { path: f.path, content: f.content, mode: f.mode }
        : { path: f.path, content_base64: Buffer.from(f.content).toString('base64'), mode: f.mode },
    ),
    run: spec.run,
    env: spec.env,
    workdir: spec.workdir,
    start_cmd: spec.startCmd,
    ready_check: r && { port: r.port, http_path: r.httpPath, command: r.command, timeout_ms: r.timeoutMs },
    disk_mb: spec.diskMb,
    vcpus: spec.vcpus,
    memory_mb: spec.memoryMb,
    snapshot: spec.snapshot,
  };
}

function templatePath(ref: string): string {
  return `/v1/templates/${encodeURIComponent(ref)}`;
}

/**
 * Templates: build them from a spec (cached by content: an unchanged spec is not built again),
 * follow a build's log, list, read and delete them. Machines start from one with
 * `Machine.create({ template: 'team/app:stable' })`.
 *
 * @example
 * ```ts
 * import { Machine, Template } from '@nullspace/sdk';
 *
 * const { template, cached } = await Template.build(
 *   { name: 'team/web:stable', packages: ['jq'], startCmd: 'python3 -m http.server 8000', readyCheck: { port: 8000 } },
 *   { onProgress: (p) => console.log(`[${p.step}/${p.total}] ${p.name}`), onLog: (l) => console.log(l) },
 * );
 * const machine = await Machine.create({ template: 'team/web:stable' }); // port 8000 answers now
 * ```
 */
export const Template = {
  /**
   * Builds `spec` and resolves once the template is ready (at once when it was built before),
   * reporting progress and log lines while it builds. A failed build throws the build's error.
   */
  async build(spec: TemplateBuildSpec, opts: TemplateBuildOptions = {}): Promise<TemplateBuildResult> {
    const { onLog, onProgress, ...connection } = opts;
    const transport = new Transport(connection);
    const started = await transport.request<TemplateBuildStarted>({
      method: 'POST',
      path: '/v1/templates',
      body: templateSpecToWire(spec),
    });
    if (started.cached) return { template: templateInfoFromWire(started.template), cached: true };
    for await (const e of Template.follow(started.build_id, connection)) {
      if (e.type === 'step') onProgress?.({ step: e.step, total: e.total, name: e.name });
      else if (e.type === 'log') onLog?.(e.line);
      else if (e.type === 'done') return { template: templateInfoFromWire(e.template), cached: false };
      else throw errorFromCode(e.error.code, e.error.message);
    }
    // The stream ended without an outcome (server restarted): say what the server knows now.
    const now = await Template.get(started.build_id, connection);
    if (now.status === 'ready') return { template: now, cached: false };
    throw errorFromCode('internal', now.error ?? `the build of ${spec.name} ended without a result`);
  },

  /**
   * A build's events (as the wire sends them: `step`, `log`, then `done` or `error`), from its
   * start; with `follow` (default) live until it ends.
   */
  async *follow(
    refOrId: string,
    opts: ConnectionOptions & { follow?: boolean } = {},
  ): AsyncGenerator<TemplateBuildEvent> {
    const { follow = true, ...connection } = opts;
    const res = await new Transport(connection).raw({
      method: 'GET',
      path: `${templatePath(refOrId)}/logs`,
      query: new URLSearchParams({ follow: String(follow) }),
    });
    for await (const line of createInterface({ input: res.stream, crlfDelay: Number.POSITIVE_INFINITY })) {
      if (line.trim() !== '') yield JSON.parse(line) as TemplateBuildEvent;
    }
  },

  async list(opts: ConnectionOptions = {}): Promise<TemplateInfo[]> {
    const page = await new Transport(opts).request<{ items: WireTemplateInfo[] }>({
      method: 'GET',
      path: '/v1/templates',
    });
    return page.items.map(templateInfoFromWire);
  },

  /** By `name[:tag]` or build id; `NotFoundError` (`template_not_found`) when unknown. */
  async get(refOrId: string, opts: ConnectionOptions = {}): Promise<TemplateInfo> {
    return templateInfoFromWire(
      await new Transport(opts).request<WireTemplateInfo>({ method: 'GET', path: templatePath(refOrId) }),
    );
  },

  /**
   * Deletes `name[:tag]` (the build too once no tag names it). `ConflictError` (`invalid_state`)
   * while a machine, a warm pool or another template uses it.
   */
  async delete(ref: string, opts: ConnectionOptions = {}): Promise<TemplateInfo> {
    return templateInfoFromWire(
      await new Transport(opts).request<WireTemplateInfo>({ method: 'DELETE', path: templatePath(ref) }),
    );
  },
} as const;

/** A warm pool as the server describes it, camelCase. */
export interface WarmPoolInfo {
  /** `twp_...` */
  id: string;
  template: string;
  vcpus: number;
  memoryMb: number;
  diskMb: number | null;
  size: number;
  /** Started and waiting for a checkout. */
  ready: number;
  /** Being started (refill). */
  starting: number;
  hits: number;
  misses: number;
  /** hits / (hits + misses); null before the first checkout. */
  hitRate: number | null;
  /** Server-side checkout time of recent hits, in milliseconds. */
  checkoutMs: { p50: number | null; p95: number | null; samples: number };
  lastError: string | null;
  createdAt: Date;
}

/** Options of {@link WarmPool.create}. */
export interface WarmPoolCreateOptions extends ConnectionOptions {
  /** Template of the pool's machines (default `base`). */
  template?: string;
  /** Machines kept ready. */
  size: number;
  vcpus?: number;
  memoryMb?: number;
  diskMb?: number;
}

export function warmPoolInfoFromWire(w: WireWarmPoolInfo): WarmPoolInfo {
  return {
    id: w.id,
    template: w.template,
    vcpus: w.vcpus,
    memoryMb: w.memory_mb,
    diskMb: w.disk_mb,
    size: w.size,
    ready: w.ready,
    starting: w.starting,
    hits: w.hits,
    misses: w.misses,
    hitRate: w.hit_rate,
    checkoutMs: w.checkout_ms,
    lastError: w.last_error,
    createdAt: new Date(w.created_at),
  };
}

/**
 * Warm pools: machines of one template and size kept started for instant creates. A create names
 * the pool with `warmPool` and `warmPoolMode` (`prefer`, `require`, `bypass`); `getInfo()`'s
 * `warmPoolCheckout` says whether it was a hit.
 *
 * @example
 * ```ts
 * const pool = await WarmPool.create({ template: 'team/web:stable', size: 3 });
 * const m = await Machine.create({ warmPool: pool.id, warmPoolMode: 'prefer' });
 * console.log((await m.getInfo()).warmPoolCheckout); // { poolId, waitedMs, hit: true }
 * ```
 */
export const WarmPool = {
  async create(opts: WarmPoolCreateOptions): Promise<WarmPoolInfo> {
    const { template, size, vcpus, memoryMb, diskMb, ...connection } = opts;
    return warmPoolInfoFromWire(
      await new Transport(connection).request<WireWarmPoolInfo>({
        method: 'POST',
        path: '/v1/warm_pools',
        body: { template, size, vcpus, memory_mb: memoryMb, disk_mb: diskMb },
      }),
    );
  },

  async list(opts: ConnectionOptions = {}): Promise<WarmPoolInfo[]> {
    const page = await new Transport(opts).request<{ items: WireWarmPoolInfo[] }>({
      method: 'GET',
      path: '/v1/warm_pools',
    });
    return page.items.map(warmPoolInfoFromWire);
  },

  async get(id: string, opts: ConnectionOptions = {}): Promise<WarmPoolInfo> {
    return warmPoolInfoFromWire(
      await new Transport(opts).request<WireWarmPoolInfo>({
        method: 'GET',
        path: `/v1/warm_pools/${encodeURIComponent(id)}`,
      }),
    );
  },

  /** Deletes the pool and the machines waiting in it (checked-out machines are not touched). */
  async delete(id: string, opts: ConnectionOptions = {}): Promise<WarmPoolInfo> {
    return warmPoolInfoFromWire(
      await new Transport(opts).request<WireWarmPoolInfo>({
        method: 'DELETE',
        path: `/v1/warm_pools/${encodeURIComponent(id)}`,
      }),
    );
  },
} as const;
