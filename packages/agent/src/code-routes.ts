/**
 * The code interpreter's routes in the agent: each request is one connection to the bridge
 * (templates/code-interpreter/bridge.py, a Python process in the machine holding the kernels),
 * one JSON request line, answered by `{"ok": …}` or `{"error": …}` and, for runs and installs,
 * the events as JSON lines, passed on as NDJSON. The bridge is started on first use when the
 * template's start command has not (a machine booted cold).
 */
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, openSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import { CODE_PATHS, CodedError, isErrorCode } from '@nullspace/protocol/core';
import { log } from './log.js';
import { type AgentRouter, RESPONDED } from './router.js';

const NDJSON = 'application/x-ndjson';
/** How long a bridge started here may take to answer (it starts no kernel before the first run). */
const BRIDGE_START_MS = 30_000;

interface Opened {
  socket: net.Socket;
  /** The first line's `ok` value. */
  ok: unknown;
  /** The lines after the first, as they come (without their newline). */
  lines: AsyncGenerator<string>;
}

async function* splitLines(
  socket: net.Socket,
  first: { resolve(l: string | null): void },
): AsyncGenerator<string> {
  let buf = '';
  let firstDone = false;
  for await (const chunk of socket) {
    buf += (chunk as Buffer).toString('utf8');
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!firstDone) {
        firstDone = true;
        first.resolve(line);
      } else yield line;
      i = buf.indexOf('\n');
    }
  }
  if (!firstDone) first.resolve(null);
}

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(CODE_PATHS.socket);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

let starting: Promise<void> | undefined;

/** Starts the bridge (once at a time) and waits until it accepts connections. */
function startBridge(): Promise<void> {
  starting ??= (async () => {
    if (!existsSync(CODE_PATHS.bridge))
      throw new CodedError(
        'invalid_state',
        "this machine's template has no code interpreter: create the machine from the code-interpreter template",
      );
    mkdirSync(dirname(CODE_PATHS.log), { recursive: true });
    const out = openSync(CODE_PATHS.log, 'a');
    const child = spawn('/usr/bin/python3', [CODE_PATHS.bridge], {
      detached: true,
      stdio: ['ignore', out, out],
      cwd: '/',
      env: {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: process.env.HOME ?? '/root',
        LANG: 'C.UTF-8',
        MPLCONFIGDIR: '/var/lib/nullspace-code/matplotlib',
      },
    });
    child.unref();
    log.write('info', 'code interpreter bridge started', { pid: child.pid });
    const deadline = Date.now() + BRIDGE_START_MS;
    for (;;) {
      try {
        (await connect()).destroy();
        return;
      } catch (err) {
        if (Date.now() > deadline || child.exitCode !== null)
          throw new CodedError('unavailable', `the code interpreter did not start: ${String(err)}`, {
            retry_after: 1,
          });
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  })().finally(() => {
    starting = undefined;
  });
  return starting;
}

/** One request to the bridge: its first answer line (an error is thrown), then the rest. */
async function openBridge(op: string, body: Record<string, unknown>): Promise<Opened> {
  let socket: net.Socket;
  try {
    socket = await connect();
  } catch {
    await startBridge();
    socket = await connect();
  }
  let resolveFirst: (l: string | null) => void = () => {};
  const firstLine = new Promise<string | null>((r) => {
    resolveFirst = r;
  });
  socket.on('error', () => resolveFirst(null));
  const lines = splitLines(socket, { resolve: resolveFirst });
  socket.write(`${JSON.stringify({ ...body, op })}\n`);
  // The generator is what reads the socket: start it, keeping what it yields for the caller.
  const pending: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const pump = (async () => {
    try {
      for await (const l of lines) {
        pending.push(l);
        wake?.();
      }
    } catch {
      // a cut connection ends the stream
    } finally {
      ended = true;
      wake?.();
    }
  })();
  const line = await firstLine;
  if (line === null) {
    socket.destroy();
    throw new CodedError('unavailable', 'the code interpreter closed the connection', { retry_after: 1 });
  }
  const first = JSON.parse(line) as { ok?: unknown; error?: { code?: unknown; message?: unknown } };
  if (first.error) {
    socket.destroy();
    const code = isErrorCode(first.error.code) ? first.error.code : 'internal';
    throw new CodedError(code, String(first.error.message ?? 'code interpreter error'));
  }
  async function* rest(): AsyncGenerator<string> {
    for (;;) {
      const l = pending.shift();
      if (l !== undefined) {
        yield l;
        continue;
      }
      if (ended) break;
      await new Promise<void>((r) => {
        wake = r;
      });
      wake = undefined;
    }
    await pump;
  }
  return { socket, ok: first.ok, lines: rest() };
}

async function call(op: string, body: Record<string, unknown> = {}): Promise<unknown> {
  const o = await openBridge(op, body);
  o.socket.destroy();
  return o.ok;
}

export function addCodeRoutes(router: AgentRouter): void {
  const stream = async (
    r: Parameters<Parameters<AgentRouter['add']>[2]>[0],
    op: string,
    body: Record<string, unknown>,
  ) => {
    const o = await openBridge(op, body);
    r.res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-store' });
    r.res.on('close', () => o.socket.destroy());
    for await (const line of o.lines) {
      if (!r.res.write(`${line}\n`))
        await new Promise((ok) => {
          r.res.once('drain', ok);
          r.res.once('close', ok);
        });
    }
    r.res.end();
    return RESPONDED;
  };

  router.add('POST', '/v1/code/contexts', async ({ json }) =>
    call('create_context', (await json()) as Record<string, unknown>),
  );
  router.add('GET', '/v1/code/contexts', async () => call('list_contexts'));
  router.add('DELETE', '/v1/code/contexts/{ctx}', async ({ params }) =>
    call('delete_context', { id: params.ctx }),
  );
  router.add('POST', '/v1/code/contexts/{ctx}/restart', async ({ params }) =>
    call('restart_context', { id: params.ctx }),
  );
  router.add('POST', '/v1/code/run', async (r) =>
    stream(r, 'run', (await r.json()) as Record<string, unknown>),
  );
  router.add('GET', '/v1/code/executions/{exe}', async (r) =>
    stream(r, 'attach', { execution_id: r.params.exe, after: Number(r.url.searchParams.get('after') ?? 0) }),
  );
  router.add('POST', '/v1/code/install', async (r) =>
    stream(r, 'install', (await r.json()) as Record<string, unknown>),
  );
  router.add('GET', '/v1/code/artifacts', async () => call('list_artifacts'));
  router.add('GET', '/v1/code/artifacts/{art}', async ({ params, res }) => {
    const a = (await call('get_artifact', { id: params.art })) as {
      path: string;
      mime_type: string;
      size: number;
    };
    const file = createReadStream(a.path);
    await new Promise<void>((resolve, reject) => {
      file.once('open', () => resolve());
      file.once('error', (err) =>
        reject(new CodedError('not_found', `artifact ${params.art}: ${err.message}`)),
      );
    });
    res.writeHead(200, { 'content-type': a.mime_type, 'content-length': a.size });
    file.pipe(res);
    return RESPONDED;
  });
}
