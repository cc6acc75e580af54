#!/usr/bin/env node
/**
 * What a machine's user namespace costs: this checkout's server (every machine in a user
 * namespace) beside a baseline checkout's (built; e.g. one from before user namespaces), both in
 * this process, each with its own data directory, operations alternating between the two so both
 * see the same host load. Per build: cold create → first command answers; fork of a machine whose
 * disk holds `--files` small files (a child's copy of the disk has its owners shifted to its own
 * range) → the child answers; hibernate → resume → first command. Medians and p95, in ms.
 *
 *   NSBENCH_BASELINE_REPO=/work/main node bench/userns.mjs [--iterations 10] [--files 2000]
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Machine } from '@nullspace/sdk';
import { startServer } from '@nullspace/server';

const { values } = parseArgs({
  options: { iterations: { type: 'string', default: '10' }, files: { type: 'string', default: '2000' } },
});
const iterations = Number(values.iterations);
const files = Number(values.files);
const repo = process.env.NSBENCH_BASELINE_REPO;
if (!repo) throw new Error('set NSBENCH_BASELINE_REPO to a built checkout to compare with');
const templatesDir = process.env.NULLSPACE_TEMPLATES_DIR ?? '/var/lib/nullspace/templates';

const tmp = mkdtempSync('/tmp/nsb-userns-');
chmodSync(tmp, 0o711); // machines (unprivileged host ids) pass through it to their directories
const config = (name) => ({
  host: '127.0.0.1',
  port: 0,
  dataDir: join(tmp, name),
  templatesDir,
  logLevel: 'warn',
});
const { startServer: startBaseline } = await import(join(repo, 'packages/server/dist/index.js'));
const servers = [
  ['this checkout', await startServer(config('this'))],
  [`baseline ${repo}`, await startBaseline(config('baseline'))],
];

const series = {};
const add = (name, what, ms) => {
  const key = `${name}: ${what}`;
  series[key] ??= [];
  series[key].push(ms);
};

/**
 * A create, sent again once if the connection was reset before an answer (a keep-alive socket the
 * server closed as it was reused, seen once in 16 rounds): nothing was created then.
 */
async function createOnce(conn) {
  try {
    return await Machine.create(conn);
  } catch (err) {
    if (err?.details?.reason !== 'ECONNRESET') throw err;
    return await Machine.create(conn);
  }
}

async function round(name, server, counted) {
  const conn = { apiUrl: server.url, apiKey: server.apiKey };
  let t0 = performance.now();
  const m = await createOnce(conn);
  await m.commands.run('true');
  if (counted) add(name, 'create → first command', performance.now() - t0);
  try {
    await m.commands.run(
      `mkdir -p /root/many && cd /root/many && for i in $(seq ${files}); do echo $i > f$i; done`,
      {
        timeoutMs: 120_000,
      },
    );
    t0 = performance.now();
    const [child] = await m.fork({ count: 1 });
    if (!child?.machine) throw child?.error ?? new Error('fork failed');
    await child.machine.commands.run('true');
    if (counted) add(name, `fork (${files} files on its disk) → child answers`, performance.now() - t0);
    await child.machine.kill();
    t0 = performance.now();
    await m.hibernate();
    const again = await Machine.connect(m.id, conn);
    await again.commands.run('true');
    if (counted) add(name, 'hibernate → resume → first command', performance.now() - t0);
  } finally {
    await m.kill();
  }
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

try {
  for (let i = -1; i < iterations; i++) {
    for (const [name, server] of i % 2 === 0 ? servers : [...servers].reverse())
      await round(name, server, i >= 0);
    process.stderr.write(`round ${i + 1}/${iterations}\n`);
  }
  console.log(`\n${iterations} rounds, alternating; ms`);
  console.log('series'.padEnd(80), 'median'.padStart(8), 'p95'.padStart(8));
  for (const [key, xs] of Object.entries(series).sort())
    console.log(key.padEnd(80), pct(xs, 50).toFixed(0).padStart(8), pct(xs, 95).toFixed(0).padStart(8));
} finally {
  for (const [, s] of servers) await s.close();
  rmSync(tmp, { recursive: true, force: true });
}
