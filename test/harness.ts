/**
 * Test fixtures: a real server (the `nullspace serve` CLI as a child process) on 127.0.0.1 with a
 * free port and its own data directory, the real SDK pointed at it, and a teardown that kills every
 * machine, stops the server and proves nothing the server made is left on the host.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { MACHINE_STATES, isId } from '@nullspace/protocol';
import {
  type RuntimeDirs,
  describeResources,
  host,
  inventory,
  mountsUnder,
  tearDownMachine,
} from '@nullspace/runtime';
import { type ConnectionOptions, Machine } from '@nullspace/sdk';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
export const CLI = join(ROOT, 'packages/cli/bin/nullspace.js');
export const TEMPLATES_DIR = process.env.NULLSPACE_TEMPLATES_DIR ?? '/var/lib/nullspace/templates';

/** Why privileged tests cannot run here, or undefined when they can. */
export function cannotRunMachines(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (namespaces, cgroups, mounts)';
  if (!existsSync(join(TEMPLATES_DIR, 'base', 'rootfs')))
    return `no base template in ${TEMPLATES_DIR}; run scripts/setup.sh`;
  return undefined;
}

export interface TestServer {
  url: string;
  apiKey: string;
  dataDir: string;
  conn: ConnectionOptions;
  process: ChildProcess;
  /** Stops the server process (SIGTERM, or SIGKILL to simulate a crash). Machines keep running. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same data directory (and a new port). */
  /** With `extra`, those settings apply to this start only (e.g. a short transition deadline). */
  restart(extra?: Record<string, string>): Promise<void>;
  /** Kills every machine, stops the server, asserts nothing is left behind, removes the data dir. */
  teardown(): Promise<void>;
  logs(): string;
}

/**
 * Starts a server on a new data dir (`env.NULLSPACE_DATA_DIR` if given: an empty directory the test
 * made, e.g. on a filesystem of its own; teardown removes it as it removes its own).
 */
export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  // Short path: the agent's Unix socket lives under it, and socket paths are limited to 108 bytes.
  const dataDir = env.NULLSPACE_DATA_DIR ?? mkdtempSync('/tmp/nst-');
  const apiKey = `test-key-${Math.random().toString(36).slice(2)}`;
  let child: ChildProcess;
  let url = '';
  let logs = '';

  const start = async (extra: Record<string, string> = {}) => {
    child = spawn(process.execPath, [CLI, 'serve'], {
      env: {
        ...process.env,
        NULLSPACE_DATA_DIR: dataDir,
        NULLSPACE_TEMPLATES_DIR: TEMPLATES_DIR,
        NULLSPACE_PORT: '0',
        NULLSPACE_HOST: '127.0.0.1',
        NULLSPACE_API_KEY: apiKey,
        // Tests never change the host's own interfaces (the stand-in internet forwards by itself).
        NULLSPACE_UPLINKS: 'none',
        // Template builds use only the package cache scripts/test.sh filled (never the network).
        NULLSPACE_PACKAGES_OFFLINE: '1',
        ...env,
        ...extra,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const p = child;
    url = await new Promise<string>((resolveUrl, reject) => {
      let sinceStart = '';
      const onData = (d: Buffer) => {
        logs += d.toString();
        sinceStart += d.toString();
        const m = /Nullspace is listening on (http:\/\/\S+)/.exec(sinceStart);
        if (m?.[1]) resolveUrl(m[1]);
      };
      p.stdout?.on('data', onData);
      p.stderr?.on('data', (d: Buffer) => {
        logs += d.toString();
      });
      p.once('exit', (code) => reject(new Error(`server exited with ${code} before listening:\n${logs}`)));
      // Generous: a start re-adopts every machine first (about 1 s each for 20 machines at a load
      // average of 60, seen in the chaos test), and is not listening until then.
      setTimeout(() => reject(new Error(`server did not start in 120 s:\n${logs}`)), 120_000).unref();
    });
    server.url = url;
    server.conn = { apiUrl: url, apiKey };
    server.process = p;
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const p = child;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = once(p, 'exit');
    p.kill(signal);
    await exited;
  };

  const server: TestServer = {
    url,
    apiKey,
    dataDir,
    conn: { apiUrl: url, apiKey },
    process: undefined as unknown as ChildProcess,
    stop,
    restart: start,
    logs: () => logs,
    async teardown() {
      const ids = new Set<string>();
      // A server that does not answer (a start that timed out, a crash) fails the clean-up through
      // the API: the host is then cleaned from the inventory all the same, and the failure reported.
      let apiFailure: unknown;
      try {
        if (child.exitCode === null && child.signalCode === null) {
          // Warm pools first: deleting one kills the machines waiting in it (they are not listed).
          const pools = (await api(server, 'GET', '/v1/warm_pools')) as { items: { id: string }[] };
          for (const p of pools.items) await api(server, 'DELETE', `/v1/warm_pools/${p.id}`);
          const page = await Machine.list({ ...server.conn, query: { state: ALIVE }, limit: 1000 });
          for await (const m of page) {
            ids.add(m.id);
            await Machine.killById(m.id, server.conn).catch(() => undefined);
          }
          // Templates (their layers, a snapshot-backed one's snapshot), top of a chain first.
          for (let round = 0; round < 10; round++) {
            const t = (await api(server, 'GET', '/v1/templates')) as {
              items: { names: string[]; shipped: boolean }[];
            };
            // Shipped templates (base, code-interpreter …) belong to the host, not to the test.
            const names = t.items.filter((i) => !i.shipped).flatMap((i) => i.names);
            if (names.length === 0) break;
            for (const n of names)
              await api(server, 'DELETE', `/v1/templates/${encodeURIComponent(n)}`).catch(() => undefined);
          }
          // Reusable snapshots outlive their machines: delete them too (pause ones went with kill).
          const snaps = (await api(server, 'GET', '/v1/snapshots')) as { items: { id: string }[] };
          for (const s of snaps.items) await api(server, 'DELETE', `/v1/snapshots/${s.id}`);
          // Volumes too (their machines are killed now): their images and host mounts go with them.
          const volumes = (await api(server, 'GET', '/v1/volumes')) as { items: { id: string }[] };
          for (const v of volumes.items) await api(server, 'DELETE', `/v1/volumes/${v.id}`);
        }
      } catch (err) {
        apiFailure = err;
      } finally {
        await stop().catch(() => undefined);
        if (child.exitCode === null && child.signalCode === null) await stop('SIGKILL');
      }
      const machinesDir = join(dataDir, 'machines');
      if (existsSync(machinesDir)) for (const d of readdirSync(machinesDir)) ids.add(d);
      const leaks = await leftovers(dataDir, ids);
      // Clean up even when leaking, so one failure does not cascade into the next tests.
      if (leaks.length > 0) await forceClean(dataDir, ids);
      await rm(dataDir, { recursive: true, force: true });
      if (apiFailure !== undefined) throw apiFailure;
      if (leaks.length > 0) throw new Error(`left behind after teardown:\n  ${leaks.join('\n  ')}`);
    },
  };
  await start();
  return server;
}

/** Every state but `killed`: what teardown must kill. */
const ALIVE = MACHINE_STATES.filter((s) => s !== 'killed');

/** A test server's runtime directories (see startServer): what the inventory looks at. */
export function runtimeDirsOf(dataDir: string): RuntimeDirs {
  return {
    machinesDir: join(dataDir, 'machines'),
    runcRoot: join(dataDir, 'runc'),
    volumesDir: join(dataDir, 'volumes'),
  };
}

/**
 * Everything of these machines (and of the data dir's machines and volumes) still on the host,
 * from the runtime's inventory, plus any other mount under the data dir and snapshot files left in
 * it. `onlyThese`: of the machines, only what `ids` own (and what nobody owns) — for a check while
 * the server runs, whose networks made ahead (docs/network.md) are machines of the data dir too.
 */
export async function leftovers(
  dataDir: string,
  ids: Iterable<string>,
  o: { onlyThese?: boolean } = {},
): Promise<string[]> {
  const wanted = new Set(ids);
  const all = await inventory(runtimeDirsOf(dataDir), { ids: wanted });
  const found = o.onlyThese ? all.filter((r) => r.owner === null || wanted.has(r.owner)) : all;
  const out = describeResources(found);
  const listed = new Set(all.flatMap((r) => (r.kind === 'mount' ? [r.path] : [])));
  for (const m of await mountsUnder(dataDir)) if (!listed.has(m)) out.push(`mount ${m}`);
  const snapshotsDir = join(dataDir, 'snapshots');
  if (existsSync(snapshotsDir))
    for (const name of readdirSync(snapshotsDir)) out.push(`snapshot files ${join(snapshotsDir, name)}`);
  return out;
}

/** Tears down what the inventory finds (as the driver's destroy does), then any mount left. */
async function forceClean(dataDir: string, ids: Iterable<string>): Promise<void> {
  const dirs = runtimeDirsOf(dataDir);
  const owners = new Set((await inventory(dirs, { ids })).map((r) => r.owner));
  for (const id of owners)
    if (id !== null && isId('machine', id))
      await tearDownMachine(dirs, id, { keepFiles: false }).catch(() => undefined);
  for (const m of await mountsUnder(dataDir)) await host('umount', ['-l', m]).catch(() => undefined);
}

/**
 * One HTTP call to a test server with its API key; returns the parsed JSON body, or throws an
 * Error carrying `status` and the body's error `code`.
 */
export async function api(
  server: TestServer,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const res = await fetch(server.url + path, {
    method,
    headers: {
      authorization: `Bearer ${server.apiKey}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const json = text ? (JSON.parse(text) as unknown) : undefined;
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw Object.assign(new Error(`${method} ${path}: ${res.status} ${err?.code}: ${err?.message}`), {
      status: res.status,
      code: err?.code,
      headers: res.headers,
    });
  }
  return json;
}

/** Polls `fn` until it returns a truthy value (bounded by count, never by asserting on time). */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false>,
  what: string,
  tries = 300,
  everyMs = 100,
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(everyMs);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Runs the CLI against a test server; resolves with its exit code and output. */
export function cli(
  server: TestServer,
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args], {
    input,
    env: { ...process.env, NULLSPACE_API_URL: server.url, NULLSPACE_API_KEY: server.apiKey },
  });
}

/** Runs a program to its end whatever its exit status; resolves with the status and its output. */
export async function run(
  file: string,
  args: string[],
  o: { input?: string | undefined; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = spawn(file, args, { env: o.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  p.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  p.stdin.on('error', () => undefined);
  p.stdin.end(o.input ?? '');
  const [code] = (await once(p, 'close')) as [number | null];
  return { code: code ?? -1, stdout, stderr };
}

/**
 * A `describe` block with one test server for all its tests, torn down (and checked for leftovers)
 * after them. Skips loudly where machines cannot run; in CI that is an error, never a skip.
 */
export function describeWithServer(
  name: string,
  body: (ctx: { server: TestServer }) => void,
  env: Record<string, string> = {},
): void {
  const skip = cannotRunMachines();
  if (skip && process.env.CI) throw new Error(`${name}: cannot run in CI: ${skip}`);
  describe(name, { skip }, () => {
    const ctx = {} as { server: TestServer };
    before(async () => {
      ctx.server = await startTestServer(env);
    });
    after(async () => {
      await ctx.server?.teardown();
    });
    body(ctx);
  });
}
