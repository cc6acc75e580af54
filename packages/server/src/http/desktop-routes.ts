import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  AGENT_ROUTES,
  type AgentDesktopSession,
  type CreateMachineSpec,
  DESKTOP_MARKER,
  DESKTOP_PORTS,
  DESKTOP_VIEWER_PAGE,
  type MachineInfo,
  type RouteId,
  type StreamStatus,
  desktopUnavailable,
  parseButton,
  parseClick,
  parseClipboard,
  parseDrag,
  parseLaunch,
  parseOpen,
  parsePoint,
  parsePress,
  parseRecordingId,
  parseRecordingStart,
  parseScreenshotQuery,
  parseScroll,
  parseStreamStart,
  parseWindowId,
  parseWrite,
  rejectUnknownKeys,
  screenshotQueryText,
} from '@nullspace/protocol';
import type { Logger } from '../log.js';
import type { MachineService } from '../services/machines/machine-service.js';
import type { PreviewService } from '../services/preview-service.js';
import type { TemplateResolver } from '../services/template-catalog.js';
import { agentJson, proxyToAgent } from './agent-proxy.js';
import type { RequestContext, Router } from './router.js';

const A = AGENT_ROUTES.desktop;

/**
 * What the server does for desktops besides passing requests on: it checks at create that the
 * template has a desktop (its layers hold the marker file the `desktop` template installs), sets
 * the size a create asks for, and makes the viewer's signed URLs (ordinary preview grants).
 */
export class Desktops {
  constructor(
    private readonly o: {
      machines: MachineService;
      templates: TemplateResolver;
      /** The preview grants (made after the routes that need this are registered). */
      previews: () => PreviewService;
      log: Logger;
    },
  ) {}

  /** Refuses (400 `desktop_unavailable`) a create that asks for a desktop of a template without one. */
  checkCreate(spec: CreateMachineSpec): void {
    if (!spec.desktop || spec.snapshot_id !== undefined || spec.warm_pool !== undefined) return;
    const lowerdir = this.o.templates.resolve(spec.template).lowerdir;
    const marker = DESKTOP_MARKER.slice(1);
    if (!lowerdir.split(':').some((layer) => existsSync(join(layer, marker))))
      throw desktopUnavailable(`template ${spec.template}`);
  }

  /** After a create: the desktop at the size asked for (the machine is killed if that fails). */
  async afterCreate(spec: CreateMachineSpec, info: MachineInfo): Promise<void> {
    const g = spec.desktop;
    if (!g) return;
    try {
      await agentJson<AgentDesktopSession>(this.o.machines, info.id, {
        method: 'POST',
        path: `${A}/session`,
        body: g satisfies AgentDesktopSession,
        timeoutMs: 30_000,
      });
    } catch (err) {
      await this.o.machines.kill(info.id).catch((e: unknown) =>
        this.o.log.warn('killing a machine whose desktop failed', {
          machine_id: info.id,
          error: String(e),
        }),
      );
      throw err;
    }
  }

  async streamUrl(id: string, viewOnly: boolean, expiresIn: number) {
    await agentJson<StreamStatus>(this.o.machines, id, {
      method: 'POST',
      path: `${A}/stream`,
      timeoutMs: 30_000,
    });
    const port = viewOnly ? DESKTOP_PORTS.viewerViewOnly : DESKTOP_PORTS.viewer;
    const grant = this.o.previews().createUrl(id, port, expiresIn);
    const url = new URL(grant.url);
    url.pathname = DESKTOP_VIEWER_PAGE;
    return { url: url.toString(), view_only: viewOnly, grant_id: grant.id, expires_at: grant.expires_at };
  }

  /** Stops the viewer and revokes every grant of its ports (their connections close now). */
  async streamStop(id: string): Promise<StreamStatus> {
    const status = await agentJson<StreamStatus>(this.o.machines, id, {
      method: 'DELETE',
      path: `${A}/stream`,
    });
    for (const port of [DESKTOP_PORTS.viewer, DESKTOP_PORTS.viewerViewOnly])
      for (const g of this.o.previews().list(id, port))
        if (g.revoked_at === null && Date.parse(g.expires_at) > Date.now())
          this.o.previews().revoke(id, g.id);
    return status;
  }
}

function noQuery(ctx: RequestContext): void {
  rejectUnknownKeys(Object.fromEntries(ctx.url.searchParams), []);
}

/** `/v1/machines/{id}/desktop/...`: validated here, done by the machine's agent. */
export function addDesktopRoutes(router: Router, machines: MachineService, desktops: Desktops): void {
  const id = (ctx: RequestContext) => ctx.params.id ?? '';

  // Routes passed on to the agent: the body parsed here, the agent's path beside it.
  const json: [RouteId, 'GET' | 'POST' | 'PUT' | 'DELETE', string, ((b: unknown) => unknown) | undefined][] =
    [
      ['desktopScreen', 'GET', '/screen', undefined],
      ['desktopCursor', 'GET', '/cursor', undefined],
      ['desktopMove', 'POST', '/mouse/move', parsePoint],
      ['desktopClick', 'POST', '/mouse/click', parseClick],
      ['desktopMouseDown', 'POST', '/mouse/press', parseButton],
      ['desktopMouseUp', 'POST', '/mouse/release', parseButton],
      ['desktopDrag', 'POST', '/mouse/drag', parseDrag],
      ['desktopScroll', 'POST', '/mouse/scroll', parseScroll],
      ['desktopWrite', 'POST', '/keyboard/write', parseWrite],
      ['desktopPress', 'POST', '/keyboard/press', parsePress],
      ['desktopWindows', 'GET', '/windows', undefined],
      ['desktopCurrentWindow', 'GET', '/windows/current', undefined],
      ['desktopGetClipboard', 'GET', '/clipboard', undefined],
      ['desktopSetClipboard', 'PUT', '/clipboard', parseClipboard],
      ['desktopLaunch', 'POST', '/launch', parseLaunch],
      ['desktopOpen', 'POST', '/open', parseOpen],
      ['desktopStreamStatus', 'GET', '/stream', undefined],
      ['desktopRecordings', 'GET', '/recordings', undefined],
    ];
  for (const [route, method, path, parse] of json)
    router.on(route, async (ctx) => {
      noQuery(ctx);
      const body = parse ? parse(await ctx.body()) : undefined;
      // Typing long text takes as long as it takes; everything else is quick.
      const timeoutMs = route === 'desktopWrite' ? 600_000 : 60_000;
      return proxyToAgent(ctx, machines, id(ctx), { method, path: `${A}${path}`, body, timeoutMs });
    });

  router.on('desktopScreenshot', async (ctx) => {
    const q = parseScreenshotQuery(ctx.url.searchParams);
    return proxyToAgent(ctx, machines, id(ctx), {
      method: 'GET',
      path: `${A}/screenshot?${screenshotQueryText(q)}`,
    });
  });

  const windowPath = (ctx: RequestContext) => `${A}/windows/${parseWindowId(ctx.params.window ?? '')}`;
  router.on('desktopFocusWindow', async (ctx) => {
    noQuery(ctx);
    const raw = await ctx.body();
    if (raw !== undefined) rejectUnknownKeys(raw as Record<string, unknown>, []);
    return proxyToAgent(ctx, machines, id(ctx), { method: 'POST', path: `${windowPath(ctx)}/focus` });
  });
  router.on('desktopCloseWindow', async (ctx) => {
    noQuery(ctx);
    return proxyToAgent(ctx, machines, id(ctx), { method: 'DELETE', path: windowPath(ctx) });
  });

  router.on('desktopStreamStart', async (ctx) => {
    noQuery(ctx);
    const o = parseStreamStart(await ctx.body());
    return { status: 200, body: await desktops.streamUrl(id(ctx), o.view_only, o.expires_in) };
  });
  router.on('desktopStreamUrl', async (ctx) => {
    noQuery(ctx);
    const o = parseStreamStart(await ctx.body());
    return { body: await desktops.streamUrl(id(ctx), o.view_only, o.expires_in) };
  });
  router.on('desktopStreamStop', async (ctx) => {
    noQuery(ctx);
    return { body: await desktops.streamStop(id(ctx)) };
  });

  const recPath = (ctx: RequestContext) => `${A}/recordings/${parseRecordingId(ctx.params.recording ?? '')}`;
  router.on('desktopRecordingStart', async (ctx) => {
    noQuery(ctx);
    const body = parseRecordingStart(await ctx.body());
    const info = await agentJson<unknown>(machines, id(ctx), {
      method: 'POST',
      path: `${A}/recordings`,
      body,
    });
    return { status: 201, body: info };
  });
  router.on('desktopRecordingStop', async (ctx) => {
    noQuery(ctx);
    const raw = await ctx.body();
    if (raw !== undefined) rejectUnknownKeys(raw as Record<string, unknown>, []);
    return proxyToAgent(ctx, machines, id(ctx), {
      method: 'POST',
      path: `${recPath(ctx)}/stop`,
      timeoutMs: 30_000,
    });
  });
  router.on('desktopRecordingDelete', async (ctx) => {
    noQuery(ctx);
    return proxyToAgent(ctx, machines, id(ctx), { method: 'DELETE', path: recPath(ctx), timeoutMs: 30_000 });
  });
  router.on('desktopRecordingDownload', async (ctx) => {
    noQuery(ctx);
    return proxyToAgent(ctx, machines, id(ctx), { method: 'GET', path: `${recPath(ctx)}/file`, long: true });
  });
}
