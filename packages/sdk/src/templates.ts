import { createInterface } from 'node:readline';
import {
  type ReadyCheckBodySchema,
  type TemplateBuildEvent,
  type TemplateBuildStarted,
  TemplateInfoSchema,
  TemplateSpecBodySchema,
  WarmPoolInfoSchema,
  WarmPoolSpecBodySchema,
  type TemplateInfo as WireTemplateInfo,
  type WarmPoolInfo as WireWarmPoolInfo,
} from '@nullspace/protocol';
import { errorFromCode } from './errors.js';
import { type ConnectionOptions, Transport } from './transport.js';
import { type FromWire, fromWire, requestBody } from './wire.js';

/**
 * A template build as the server describes it, camelCase; times are `Date`s.
 *
 * @example
 * ```ts
 * const t = await Template.get('team/review-api:stable');
 * console.log(t.id, t.names, t.status, t.sizeBytes);
 * ```
 */
export interface TemplateInfo extends FromWire<typeof TemplateInfoSchema> {}

/** How a template's start command is known to be ready: a port (optionally an HTTP path) or a command. */
export interface ReadyCheckOptions extends FromWire<typeof ReadyCheckBodySchema> {}

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
export interface TemplateBuildSpec extends Omit<FromWire<typeof TemplateSpecBodySchema>, 'files'> {
  files?: TemplateFileSpec[];
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
  return fromWire(TemplateInfoSchema, w);
}

/** The body of `POST /v1/templates` for `spec`. */
export function templateSpecToWire(spec: TemplateBuildSpec): Record<string, unknown> {
  // A file's content is text or bytes in the SDK, `content` or `content_base64` on the wire.
  const files = spec.files?.map((f) =>
    typeof f.content === 'string'
      ? { path: f.path, content: f.content, mode: f.mode }
      : { path: f.path, content_base64: Buffer.from(f.content).toString('base64'), mode: f.mode },
  );
  return {
    ...requestBody(TemplateSpecBodySchema, { ...spec, files: undefined }),
    ...(files ? { files } : {}),
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
export interface WarmPoolInfo extends FromWire<typeof WarmPoolInfoSchema> {}

/** Options of {@link WarmPool.create}. */
export interface WarmPoolCreateOptions extends FromWire<typeof WarmPoolSpecBodySchema>, ConnectionOptions {}

export function warmPoolInfoFromWire(w: WireWarmPoolInfo): WarmPoolInfo {
  return fromWire(WarmPoolInfoSchema, w);
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
    return warmPoolInfoFromWire(
      await new Transport(opts).request<WireWarmPoolInfo>({
        method: 'POST',
        path: '/v1/warm_pools',
        body: requestBody(WarmPoolSpecBodySchema, opts),
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
