#!/usr/bin/env node
/**
 * With many machines alive: a policy change of one of them, and a lone create and kill, through a
 * real server over HTTP. `--repo DIR` runs the server of another checkout's build (its
 * packages/server/dist), e.g. the build before the host table, so the two can be compared run by
 * run (alternate them: two builds' machines on one host would share its nftables). Run as root
 * from the repository root: `node bench/nft/alive.mjs [--machines N] [--iterations N] [--repo DIR]`.
 * See bench/README.md, "nftables at scale".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    machines: { type: 'string', default: '100' },
    iterations: { type: 'string', default: '10' },
    repo: { type: 'string', default: '.' },
  },
});
const n = Number(values.machines);
const iterations = Number(values.iterations);
if (!(n >= 1 && iterations >= 1)) throw new Error('--machines and --iterations must be at least 1');
const repo = resolve(values.repo);
const { startServer } = await import(join(repo, 'packages/server/dist/index.js'));
const dataDir = mkdtempSync('/tmp/nsbench-alive-');
const server = await startServer({
  host: '127.0.0.1',
  port: 0,
  dataDir: join(dataDir, 'data'),
  logLevel: 'warn',
  maxMachines: n + 10,
});

async function api(method, path, body) {
  const res = await fetch(server.url + path, {
    method,
    headers: {
      authorization: `Bearer ${server.apiKey}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function ms(fn) {
  const t0 = performance.now();
  const result = await fn();
  return [performance.now() - t0, result];
}

const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
};

const alive = [];
const R = { 'policy change of one machine': [], 'lone create (until 201)': [], 'lone kill': [] };
let code = 0;
try {
  process.stderr.write(`  … ${n} machines, 4 at a time (${repo})\n`);
  while (alive.length < n) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(4, n - alive.length) }, () => api('POST', '/v1/machines', {})),
    );
    alive.push(...batch.map((m) => m.id));
  }
  for (let i = 0; i < iterations; i++) {
    const egress = i % 2 ? { mode: 'allow_all' } : { mode: 'custom', deny_cidrs: ['192.0.2.0/24'] };
    R['policy change of one machine'].push(
      (await ms(() => api('PUT', `/v1/machines/${alive[0]}/network`, { egress })))[0],
    );
    const [createMs, m] = await ms(() => api('POST', '/v1/machines', {}));
    R['lone create (until 201)'].push(createMs);
    R['lone kill'].push((await ms(() => api('DELETE', `/v1/machines/${m.id}`)))[0]);
  }
  console.log(`${n} machines alive, ${iterations} iterations (ms; p50 / p95), server of ${repo}`);
  for (const [k, xs] of Object.entries(R))
    console.log(`  ${k.padEnd(30)} ${percentile(xs, 0.5).toFixed(1)} / ${percentile(xs, 0.95).toFixed(1)}`);
} catch (err) {
  console.error(`bench failed: ${err?.stack ?? err}`);
  code = 1;
} finally {
  for (let i = 0; i < alive.length; i += 8)
    await Promise.all(
      alive.slice(i, i + 8).map((id) =>
        api('DELETE', `/v1/machines/${id}`).catch((err) => {
          console.error(`kill ${id}: ${err.message}`);
          code = 1;
        }),
      ),
    );
  await server.close();
  // Only when every machine was killed: a recursive delete must never cross a machine's mounts.
  if (code === 0) rmSync(dataDir, { recursive: true, force: true });
  else console.error(`left ${dataDir} for inspection`);
}
process.exit(code);
