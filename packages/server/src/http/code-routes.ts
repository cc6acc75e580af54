import {
  parseAttachCodeQuery,
  parseCodeArtifactId,
  parseCodeContextId,
  parseCodeExecutionId,
  parseCreateCodeContext,
  parseInstallCode,
  parseRunCode,
  rejectUnknownKeys,
} from '@nullspace/protocol';
import type { MachineService } from '../services/machines/machine-service.js';
import { proxyToAgent } from './agent-proxy.js';
import type { RequestContext, Router } from './router.js';

type Machine = { id: string; execution_id: string; envs: Record<string, string>; cwd: string };

function noQuery(ctx: RequestContext): void {
  rejectUnknownKeys(Object.fromEntries(ctx.url.searchParams), []);
}

/**
 * The code interpreter, `/v1/machines/{id}/code/...`: validated here, served by the machine's agent,
 * which hands each request to the bridge holding the kernels (see packages/agent/src/code-routes.ts).
 */
export function addCodeRoutes(router: Router, machines: MachineService): void {
  const id = (ctx: RequestContext) => ctx.params.id ?? '';
  const ctxPath = (ctx: RequestContext, suffix = '') =>
    `/v1/code/contexts/${encodeURIComponent(parseCodeContextId(ctx.params.ctx ?? ''))}${suffix}`;

  router.on('createCodeContext', async (ctx) => {
    noQuery(ctx);
    const req = parseCreateCodeContext(await ctx.body());
    return proxyToAgent(ctx, machines, id(ctx), {
      method: 'POST',
      path: '/v1/code/contexts',
      body: (m: Machine) => ({
        language: req.language,
        cwd: req.cwd ?? m.cwd,
        envs: { ...m.envs, ...req.envs, NULLSPACE_MACHINE_ID: m.id },
      }),
      // A kernel's start takes a few seconds on a busy host.
      timeoutMs: 120_000,
    });
  });

  router.on('listCodeContexts', async (ctx) => {
    noQuery(ctx);
    return proxyToAgent(ctx, machines, id(ctx), { method: 'GET', path: '/v1/code/contexts' });
  });

  router.on('deleteCodeContext', async (ctx) => {
    noQuery(ctx);
    return proxyToAgent(ctx, machines, id(ctx), { method: 'DELETE', path: ctxPath(ctx) });
  });

  router.on('restartCodeContext', async (ctx) => {
    noQuery(ctx);
    const raw = await ctx.body();
    if (raw !== undefined) rejectUnknownKeys(raw as Record<string, unknown>, []);
    return proxyToAgent(ctx, machines, id(ctx), {
      method: 'POST',
      path: ctxPath(ctx, '/restart'),
      timeoutMs: 120_000,
    });
  });

  router.on('runCode', async (ctx) => {
    noQuery(ctx);
    const req = parseRunCode(await ctx.body());
    return proxyToAgent(ctx, machines, id(ctx), {
      method: 'POST',
      path: '/v1/code/run',
      // The generation changes when the machine's memory was restored into another machine or
      // execution (fork, snapshot, resume): the bridge then reseeds every context's random state.
      // With it, the machine's envs as they are now (its id among them) for the contexts.
      body: (m: Machine) => ({
        ...req,
        generation: `${m.id}/${m.execution_id}`,
        machine_envs: { ...m.envs, NULLSPACE_MACHINE_ID: m.id },
      }),
      long: true,
    });
  });

  router.on('attachCodeExecution', async (ctx) => {
    const q = parseAttachCodeQuery(ctx.url.searchParams);
    const exe = parseCodeExecutionId(ctx.params.execution ?? '');
    return proxyToAgent(ctx, machines, id(ctx), {
      method: 'GET',
      path: `/v1/code/executions/${exe}?after=${q.after}`,
      long: true,
    });
  });

  router.on('installCodePackages', async (ctx) => {
    noQuery(ctx);
    const req = parseInstallCode(await ctx.body());
    return proxyToAgent(ctx, machines, id(ctx), {
      method: 'POST',
      path: '/v1/code/install',
      body: req,
      long: true,
    });
  });

  router.on('listCodeArtifacts', async (ctx) => {
    noQuery(ctx);
    return proxyToAgent(ctx, machines, id(ctx), { method: 'GET', path: '/v1/code/artifacts' });
  });

  router.on('downloadCodeArtifact', async (ctx) => {
    noQuery(ctx);
    const art = parseCodeArtifactId(ctx.params.artifact ?? '');
    return proxyToAgent(ctx, machines, id(ctx), {
      method: 'GET',
      path: `/v1/code/artifacts/${art}`,
      long: true,
    });
  });
}
