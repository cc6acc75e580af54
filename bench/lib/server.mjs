/** The server in its own process (started, stopped), and a plain `fetch` client for its API. */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { REPO_ROOT } from './common.mjs';
import { firstLine } from './processes.mjs';

const SERVER_MAIN = `
import { startServer } from '@nullspace/server';
const s = await startServer(JSON.parse(process.env.NSBENCH_SERVER_CONFIG));
process.stdout.write(JSON.stringify({ url: s.url, apiKey: s.apiKey }) + '\\n');
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  s.close().then(() => process.exit(0), () => process.exit(1));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
`;

/** A bench's server settings: 127.0.0.1, port 0, the run's data dir, `config`, log level warn. */
export const serverConfig = (S, templatesDir, config = {}) => ({
  host: '127.0.0.1',
  port: 0,
  dataDir: S.dataDir,
  templatesDir,
  ...config,
  logLevel: 'warn',
});

/**
 * Starts `startServer` in a child node process as `S.server` (own process group, so a ^C reaches
 * only the bench, which then kills the machines before stopping it): 127.0.0.1, port 0, data dir
 * `S.dataDir`, log level warn, plus `config`; no NULLSPACE_* variable inherited; `args` after the
 * script (a mark for the leak check). Its own process also means its own event loop and CPU time.
 * `repo`: the checkout whose server it runs (another, built, for a baseline in the same run).
 * `NSBENCH_SERVER_LOG=FILE` appends its log to FILE (else it is drained and dropped).
 * Resolves once it listens, with `S.server` = { child, url, apiKey, port }.
 */
export async function startServerProcess(S, templatesDir, { config = {}, args = [], repo = REPO_ROOT } = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NULLSPACE_')));
  env.NSBENCH_SERVER_CONFIG = JSON.stringify(serverConfig(S, templatesDir, config));
  const child = spawn(
    process.execPath,
    [
      ...(process.env.NSBENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean),
      '--input-type=module',
      '-e',
      SERVER_MAIN,
      ...args,
    ],
    {
      cwd: repo,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    },
  );
  S.server = { child };
  // The server logs (JSON lines, level warn) on stdout after its first line: kept if asked for.
  const logPath = process.env.NSBENCH_SERVER_LOG;
  const log = logPath ? createWriteStream(logPath, { flags: 'a' }) : undefined;
  const { url, apiKey } = JSON.parse(await firstLine(child, 'server', log));
  Object.assign(S.server, { url, apiKey, port: Number(new URL(url).port) });
}

/** Stops the server process: SIGTERM (it closes), SIGKILL after 15 s. */
export async function stopServerProcess(server) {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** An error answer of the API: `status` and the error `code`, if any. */
export class ApiError extends Error {
  constructor(method, path, status, body, text = '') {
    super(
      `${method} ${path}: HTTP ${status} ${body?.error?.code ?? ''} ${body?.error?.message ?? text.slice(0, 200)}`.trim(),
    );
    this.status = status;
    this.code = body?.error?.code;
  }
}

/**
 * One JSON request to `server` ({ url, apiKey }) with fetch; resolves with the parsed body once it
 * has fully arrived, rejects with an ApiError.
 */
export async function apiRequest(server, method, path, body) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.apiKey}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) throw new ApiError(method, path, res.status, json, text);
  return json;
}
