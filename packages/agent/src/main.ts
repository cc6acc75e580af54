/**
 * The Nullspace agent: runs inside every machine under its init (tini, pid 1, which reaps orphaned
 * zombies), and serves the server's requests over a Unix socket. It opens no host file: its code
 * and Node.js runtime are read-only bind mounts, and its socket and log live in the machine's run
 * directory, so the whole process tree can later be checkpointed by CRIU.
 */
import { rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { AGENT_ROUTES, type AgentHealth, type AgentRunRequest, CodedError } from '@nullspace/protocol';
import { log } from './log.js';
import { runCommand } from './run-command.js';

const VERSION = '0.1.0';

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

type Handler = (body: unknown) => Promise<unknown>;

const routes: Record<string, Handler> = {
  [`GET ${AGENT_ROUTES.health}`]: async (): Promise<AgentHealth> => ({
    ok: true,
    version: VERSION,
    uptime_s: Math.round(process.uptime()),
    pid: process.pid,
  }),
  // The server validated the request at the API edge; the agent trusts its one caller.
  [`POST ${AGENT_ROUTES.run}`]: (body) => runCommand(body as AgentRunRequest, defaultCwd),
};

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const handler = routes[`${req.method} ${req.url}`];
    if (!handler) {
      send(res, 404, {
        error: { code: 'not_found', message: `agent has no route ${req.method} ${req.url}` },
      });
      return;
    }
    let body: unknown;
    try {
      body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    } catch {
      send(res, 400, { error: { code: 'invalid_argument', message: 'body is not JSON' } });
      return;
    }
    handler(body).then(
      (result) => send(res, 200, result),
      (err: unknown) => {
        if (err instanceof CodedError) {
          send(res, err.status, { error: { code: err.code, message: err.message, details: err.details } });
        } else {
          log.write('error', 'request failed', { route: req.url, error: String(err) });
          send(res, 500, { error: { code: 'internal', message: String(err) } });
        }
      },
    );
  });
});
server.keepAliveTimeout = 60_000;

async function start(): Promise<void> {
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
