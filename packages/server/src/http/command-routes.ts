import {
  AGENT_ROUTES,
  type AgentPtyRequest,
  type AgentRunRequest,
  FRAME,
  encodeEventMessage,
  invalidArgument,
  parseLogsQuery,
  parseOffsetQuery,
  parseProcessSelector,
  parsePtyCreate,
  parseResize,
  parseRunCommand,
  parseSignalBody,
  parseStreamControl,
  rejectUnknownKeys,
  selectorText,
} from '@nullspace/protocol';
import type { Logger } from '../log.js';
import type { MachineService } from '../services/machines/machine-service.js';
import { proxyToAgent } from './agent-proxy.js';
import { AgentSockets } from './agent-ws-bridge.js';
import type { RequestContext, Router } from './router.js';

/** The machine's envs travel with each command; the machine's id comes last (a fork's agent remembers its parent's). */
function envsFor(m: { id: string; envs: Record<string, string> }, extra: Record<string, string>) {
  return { ...m.envs, ...extra, NULLSPACE_MACHINE_ID: m.id };
}

function noQuery(ctx: RequestContext): void {
  rejectUnknownKeys(Object.fromEntries(ctx.url.searchParams), []);
}

/**
 * Commands and terminals inside a machine: `/v1/machines/{id}/commands...` and `.../pty...`,
 * validated here and served by the machine's agent.
 */
export function addCommandRoutes(router: Router, machines: MachineService): void {
  const id = (ctx: RequestContext) => ctx.params.id ?? '';
  const agentProc = (ctx: RequestContext, suffix = '') =>
    `${AGENT_ROUTES.process(selectorText(parseProcessSelector(ctx.params.pid ?? '')))}${suffix}`;

  router.on('runCommand', async (ctx) => {
    const req = parseRunCommand(await ctx.body());
    const foreground = !req.background && !req.stream;
    return proxyToAgent(ctx, machines, id(ctx), {
      method: 'POST',
      path: AGENT_ROUTES.processes,
      body: (m: { id: string; envs: Record<string, string>; cwd: string }): AgentRunRequest => ({
        cmd: req.cmd,
        args: req.args,
        shell: req.shell,
        cwd: req.cwd ?? m.cwd,
        envs: envsFor(m, req.envs),
        timeout_ms: req.timeout_ms,
        background: req.background,
        stream: req.stream,
        encoding: req.encoding,
        ...(req.stdin !== undefined ? { stdin: req.stdin } : {}),
        ...(req.tag !== undefined ? { tag: req.tag } : {}),
      }),
      long: req.stream,
      // The agent enforces the command's own timeout; ours only guards against a wedged agent.
      timeoutMs: foreground ? req.timeout_ms + 10_000 : 30_000,
    });
  });

  router.on('listCommands', async (ctx) => {
    noQuery(ctx);
    return proxyToAgent(ctx, machines, id(ctx), { method: 'GET', path: AGENT_ROUTES.processes });
  });

  const ids = {
    commands: ['getCommand', 'commandLogs', 'commandStdin', 'signalCommand', 'killCommand', 'attachCommand'],
    pty: ['getPty', 'ptyLogs', 'ptyInput', 'signalPty', 'killPty', 'attachPty'],
  } as const;
  for (const base of ['commands', 'pty'] as const) {
    const [get, logs, input, signal, kill] = ids[base];
    router.on(get, async (ctx) => {
      noQuery(ctx);
      return proxyToAgent(ctx, machines, id(ctx), { method: 'GET', path: agentProc(ctx) });
    });
    router.on(logs, async (ctx) => {
      const q = parseLogsQuery(ctx.url.searchParams);
      const query = new URLSearchParams({
        offset: String(q.offset),
        limit: String(q.limit),
        encoding: q.encoding,
      });
      return proxyToAgent(ctx, machines, id(ctx), { method: 'GET', path: agentProc(ctx, `/logs?${query}`) });
    });
    // Bytes for the process's stdin (a terminal's input), streamed as they come.
    router.on(input, async (ctx) => {
      noQuery(ctx);
      return proxyToAgent(ctx, machines, id(ctx), {
        method: 'POST',
        path: agentProc(ctx, '/stdin'),
        body: 'request',
      });
    });
    router.on(signal, async (ctx) => {
      const body = parseSignalBody(await ctx.body());
      return proxyToAgent(ctx, machines, id(ctx), { method: 'POST', path: agentProc(ctx, '/signal'), body });
    });
    // Kill: SIGKILL to the process and everything it started.
    router.on(kill, async (ctx) => {
      noQuery(ctx);
      return proxyToAgent(ctx, machines, id(ctx), {
        method: 'POST',
        path: agentProc(ctx, '/signal'),
        body: { signal: 'SIGKILL' },
      });
    });
  }

  router.on('closeStdin', async (ctx) => {
    const raw = await ctx.body();
    if (raw !== undefined) rejectUnknownKeys(raw as Record<string, unknown>, []);
    return proxyToAgent(ctx, machines, id(ctx), { method: 'POST', path: agentProc(ctx, '/close_stdin') });
  });

  router.on('createPty', async (ctx) => {
    const req = parsePtyCreate(await ctx.body());
    return proxyToAgent(ctx, machines, id(ctx), {
      method: 'POST',
      path: AGENT_ROUTES.pty,
      body: (m: { id: string; envs: Record<string, string>; cwd: string }): AgentPtyRequest => ({
        cols: req.cols,
        rows: req.rows,
        args: req.args,
        cwd: req.cwd ?? m.cwd,
        envs: envsFor(m, req.envs),
        ...(req.cmd !== undefined ? { cmd: req.cmd } : {}),
        ...(req.tag !== undefined ? { tag: req.tag } : {}),
      }),
    });
  });

  router.on('resizePty', async (ctx) => {
    const body = parseResize(await ctx.body());
    return proxyToAgent(ctx, machines, id(ctx), { method: 'POST', path: agentProc(ctx, '/resize'), body });
  });

  // A plain GET on a WebSocket route is told how to use it.
  for (const base of ['commands', 'pty'] as const)
    router.on(ids[base][5], async () => {
      throw invalidArgument('upgrade', 'this route is a WebSocket: connect with Upgrade: websocket');
    });
}

const WS_PATH = /^\/v1\/machines\/([^/]+)\/(commands|pty)\/([^/]+)\/ws$/;

/** `GET .../commands/{pid|tag}/ws` and `.../pty/{pid}/ws`: attach to a process's stream. */
export function processSockets(machines: MachineService, log: Logger): AgentSockets {
  return new AgentSockets(machines, log, WS_PATH, (url, m) => {
    const decode = (raw: string, field: string) => {
      try {
        return decodeURIComponent(raw);
      } catch {
        throw invalidArgument(field, `"${raw}" is not valid percent-encoding`);
      }
    };
    const machineId = decode(m[1] ?? '', 'id');
    const pty = m[2] === 'pty';
    const sel = parseProcessSelector(decode(m[3] ?? '', 'pid'));
    const { offset } = parseOffsetQuery(url.searchParams);
    const q = offset === undefined ? '' : `?offset=${offset}`;
    return {
      machineId,
      agentPath: `${AGENT_ROUTES.process(selectorText(sel))}/ws${q}`,
      slowClient: 'pause',
      // The stream says why it ends without an exit: re-attach from the offset reached.
      interrupted: (reason) => encodeEventMessage({ type: 'interrupted', reason }),
      filter: (data, isBinary) => {
        // Binary: [kind][payload]; text: a control message. Stdin passes; controls are checked.
        let text = data;
        if (isBinary) {
          if (data.length === 0) throw invalidArgument('message', 'empty message');
          if (data[0] === FRAME.stdout) return data;
          if (data[0] !== FRAME.event)
            throw invalidArgument('message', 'kind must be 0 (control) or 1 (stdin)');
          text = data.subarray(1);
        }
        return encodeEventMessage(parseStreamControl(text.toString('utf8'), pty));
      },
    };
  });
}
