/**
 * The Nullspace agent: runs inside every machine under its init (tini, pid 1, which reaps orphaned
 * zombies), and serves the server's requests over a Unix socket. It opens no host file: its code
 * and Node.js runtime are read-only bind mounts, and its socket and log live in the machine's run
 * directory, so the whole process tree can later be checkpointed by CRIU.
 */
import { existsSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { AGENT_ROUTES, type AgentHealth, DESKTOP_DISPLAY, DESKTOP_MARKER } from '@nullspace/protocol/core';
import { addCodeRoutes } from './code-routes.js';
import { addFileRoutes } from './files/routes.js';
import { log } from './log.js';
import { addProcessRoutes } from './process-routes.js';
import { ProcessTable } from './processes.js';
import { AgentRouter } from './router.js';

const VERSION = '0.2.0';

const { values } = parseArgs({
  options: {
    socket: { type: 'string' },
    log: { type: 'string' },
    cwd: { type: 'string', default: '/workspace' },
  },
});
if (!values.socket) {
  process.stderr.write('usage: agent --socket PATH [--log PATH] [--cwd DIR]\n');
  process.exit(2);
}
const socketPath = values.socket;
const defaultCwd = values.cwd ?? '/workspace';
if (values.log) log.open(values.log);

// In a machine with a desktop every command and terminal reaches it (a template's own env may say
// otherwise: it is applied over this).
const hasDesktop = existsSync(DESKTOP_MARKER);
if (hasDesktop) process.env.DISPLAY ??= DESKTOP_DISPLAY;

const router = new AgentRouter();
addProcessRoutes(router, new ProcessTable(defaultCwd));
const files = addFileRoutes(router);
addCodeRoutes(router);
// The desktop's module (X tools, PNG encoding, the viewer's WebSocket bridge) loads with the agent
// only where there is a desktop, which starts at boot; elsewhere on the first desktop request.
const loadDesktop = async (): Promise<void> => {
  const { addDesktopRoutes } = await import('./desktop/routes.js');
  addDesktopRoutes(router);
};
if (!hasDesktop) router.defer(AGENT_ROUTES.desktop, loadDesktop);
router.add('GET', AGENT_ROUTES.health, async ({ req }): Promise<AgentHealth> => {
  // A health check on a closing connection is the server's drain before a checkpoint (see
  // AgentClient.drain): CRIU cannot dump inotify handles, so file watches let go of theirs until
  // after it (they come back by themselves and rescan); and it is answered once every other
  // connection is closed here, not only ended by the server.
  if (req.headers.connection === 'close') {
    files.suspendWatches();
    await othersClosed(req.socket, DRAIN_WAIT_MS);
  }
  return { ok: true, version: VERSION, uptime_s: Math.round(process.uptime()), pid: process.pid };
});

/**
 * Every connection open now. Before a checkpoint the server ends its side of each, and Node closes
 * ours a few turns of the event loop after it sees the end (end, then shutdown, then close): a
 * socket still open here at the freeze has its peer outside the machine, and CRIU cannot dump it
 * ("Unix socket … not found"). So the drain waits for their `close` (the fd is gone by then).
 */
const connections = new Set<Socket>();
/** How long a drain waits for other connections (one from inside the machine may never end). */
const DRAIN_WAIT_MS = 3000;

function othersClosed(mine: Socket, waitMs: number): Promise<void> {
  const others = [...connections].filter((s) => s !== mine);
  if (others.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    let left = others.length;
    const timer = setTimeout(resolve, waitMs);
    for (const s of others)
      s.once('close', () => {
        if (--left === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
  });
}

const server = http.createServer((req, res) => router.handle(req, res));
server.on('connection', (socket: Socket) => {
  connections.add(socket);
  socket.once('close', () => connections.delete(socket));
});
server.on('upgrade', (req, socket, head) => router.upgrade(req, socket, head));
server.keepAliveTimeout = 60_000;
// Streams (a long command's output, a terminal) stay open as long as they are used.
server.requestTimeout = 0;
server.headersTimeout = 60_000;

async function start(): Promise<void> {
  if (hasDesktop) await loadDesktop();
  // The machine's default working directory, if the template does not have it.
  await mkdir(defaultCwd, { recursive: true });
  rmSync(socketPath, { force: true });
  server.listen(socketPath, () =>
    log.write('info', 'agent listening', { socket: socketPath, pid: process.pid }),
  );
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
process.on('uncaughtException', (err) => {
  log.write('error', 'uncaught exception', { error: err.stack ?? String(err) });
});

start().catch((err: unknown) => {
  log.write('error', 'agent failed to start', { error: String(err) });
  process.exit(1);
});
