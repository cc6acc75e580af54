#!/usr/bin/env node
/**
 * Python SDK benchmark: create → `commands.run("true")` → kill, sequential and 20 concurrent, with
 * the Python SDK (sync and async, bench/python-sdk.py) and the TS SDK side by side in one run, on
 * one server; then `commands.run("true")` alone on one warm machine, many times. The clients take
 * turns round by round, so a change in the host's load hits all of them alike.
 * Run as root from the repository root: `npm run bench:python [-- --rounds N --n N]`.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { mountsUnder } from '@nullspace/runtime';
import { Machine } from '@nullspace/sdk';
import {
  DEFAULT_TEMPLATES_DIR,
  REPO_ROOT,
  fmt,
  parseIntOptions,
  printTable,
  progress,
  stats,
} from './lib.mjs';

const run = promisify(execFile);
const USAGE = `usage: node bench/python-sdk.mjs [options]   (as root, from the repository root)
  --rounds N   rounds; in each, every client takes its turn (default 3)
  --n N        sequential create → run("true") → kill cycles per client per round (default 5)
  --runs N     commands.run("true") calls per client per round on one warm machine (default 100)
  -h, --help   this text`;
let opts;
try {
  opts = parseIntOptions(process.argv.slice(2), {
    rounds: ['rounds', 3, 1],
    n: ['n', 5, 1],
    runs: ['runs', 100, 1],
  });
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}
const ROUNDS = opts.rounds;
/** Sequential cycles per client per round. */
const N = opts.n;
const CONCURRENCY = 20;
/** `commands.run("true")` calls per client per round on the warm machine. */
const RUNS = opts.runs;
const PY = '/usr/bin/python3';

const dataDir = mkdtempSync('/tmp/nst-');
const apiKey = `bench-${Math.random().toString(36).slice(2)}`;
const templatesDir = process.env.NULLSPACE_TEMPLATES_DIR ?? DEFAULT_TEMPLATES_DIR;
const server = spawn(process.execPath, [join(REPO_ROOT, 'packages/cli/bin/nullspace.js'), 'serve'], {
  env: {
    ...process.env,
    NULLSPACE_DATA_DIR: dataDir,
    NULLSPACE_TEMPLATES_DIR: templatesDir,
    NULLSPACE_PORT: '0',
    NULLSPACE_HOST: '127.0.0.1',
    NULLSPACE_API_KEY: apiKey,
    NULLSPACE_UPLINKS: 'none',
    NULLSPACE_LOG_LEVEL: 'warn',
    // A corner of the default pool that servers on the default (the lowest free blocks) do not
    // reach, and apart from bench:pool's 10.213.192.0/18: two servers picking the same block at
    // once fail one create with "a host error" (bench/README.md).
    NULLSPACE_MACHINE_NETWORK: '10.213.128.0/18',
  },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const url = await new Promise((resolve, reject) => {
  let out = '';
  server.stdout.on('data', (d) => {
    out += d;
    const m = /Nullspace is listening on (http:\/\/\S+)/.exec(out);
    if (m) resolve(m[1]);
  });
  server.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
});
const conn = { apiUrl: url, apiKey };
const env = { ...process.env, NULLSPACE_API_URL: url, NULLSPACE_API_KEY: apiKey };

async function py(...args) {
  const { stdout } = await run(PY, [join(REPO_ROOT, 'bench/python-sdk.py'), ...args.map(String)], {
    env,
    maxBuffer: 16 << 20,
  });
  return JSON.parse(stdout);
}

/** Cycles that failed, per client, with the reason the server gave. */
const failures = [];

async function tsCycle(samples) {
  const t0 = performance.now();
  let m;
  try {
    m = await Machine.create({ ...conn, template: 'base', timeout: 3600 });
  } catch (err) {
    const id = err?.details?.machine_id;
    const reason = id ? (await Machine.getInfoById(id, conn)).statusReason : err?.message;
    failures.push(`ts: ${err?.code ?? 'error'}: ${reason}`);
    return;
  }
  samples.create.push(performance.now() - t0);
  let t = performance.now();
  await m.commands.run('true');
  samples.run.push(performance.now() - t);
  t = performance.now();
  await m.kill();
  samples.kill.push(performance.now() - t);
  samples.cycle.push(performance.now() - t0);
}

const empty = () => ({ create: [], run: [], kill: [], cycle: [] });
const merge = (into, from, client) => {
  for (const k of Object.keys(into)) into[k].push(...(from[k] ?? []));
  for (const f of from.failures ?? []) failures.push(`${client}: ${f}`);
};
const R = {
  seq: { ts: empty(), 'py sync': empty(), 'py async': empty() },
  conc: { ts: empty(), 'py sync': empty(), 'py async': empty() },
  run: { ts: empty(), 'py sync': empty(), 'py async': empty() },
};

let failed = false;
try {
  const warm = await Machine.create({ ...conn, template: 'base', timeout: 3600 });
  await warm.commands.run('true');
  const started = performance.now();
  for (let round = 1; round <= ROUNDS; round++) {
    progress(`round ${round}/${ROUNDS}: sequential`);
    for (let i = 0; i < N; i++) await tsCycle(R.seq.ts);
    merge(R.seq['py sync'], await py('cycle', 'sync', N, 1), 'py sync');
    merge(R.seq['py async'], await py('cycle', 'async', N, 1), 'py async');
    progress(`round ${round}/${ROUNDS}: ${CONCURRENCY} concurrent`);
    await Promise.all(Array.from({ length: CONCURRENCY }, () => tsCycle(R.conc.ts)));
    merge(R.conc['py sync'], await py('cycle', 'sync', CONCURRENCY, CONCURRENCY), 'py sync');
    merge(R.conc['py async'], await py('cycle', 'async', CONCURRENCY, CONCURRENCY), 'py async');
    progress(`round ${round}/${ROUNDS}: commands.run("true") x ${RUNS}`);
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      await warm.commands.run('true');
      R.run.ts.run.push(performance.now() - t);
    }
    merge(R.run['py sync'], await py('run', 'sync', warm.id, RUNS), 'py sync');
    merge(R.run['py async'], await py('run', 'async', warm.id, RUNS), 'py async');
  }
  const wallS = (performance.now() - started) / 1000;
  await warm.kill();

  console.log('\nPython SDK vs TS SDK, one server, same run');
  console.log(
    `host: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}, ` +
      `node ${process.version}, ${(await run(PY, ['--version'])).stdout.trim()}; ${ROUNDS} rounds, ${fmt(wallS, 0)} s`,
  );
  const rows = [];
  for (const [section, label] of [
    ['seq', 'sequential'],
    ['conc', `${CONCURRENCY} concurrent`],
  ])
    for (const client of ['ts', 'py sync', 'py async'])
      for (const step of ['create', 'run', 'kill', 'cycle']) {
        const st = stats(R[section][client][step]);
        rows.push([label, client, step, String(st.n), fmt(st.p50, 1), fmt(st.p95, 1)]);
      }
  printTable(['mode', 'client', 'step', 'n', 'p50 ms', 'p95 ms'], rows, 'lllrrr');

  console.log(`\ncommands.run("true") on one warm machine (${RUNS} per client per round)`);
  const ts50 = stats(R.run.ts.run).p50;
  const runRows = ['ts', 'py sync', 'py async'].map((client) => {
    const st = stats(R.run[client].run);
    const over = client === 'ts' ? '' : `${st.p50 - ts50 >= 0 ? '+' : ''}${fmt(st.p50 - ts50, 2)}`;
    const target = client === 'ts' ? '' : st.p50 - ts50 <= 2 && st.p50 <= 10 ? 'PASS' : 'MISS';
    return [client, String(st.n), fmt(st.p50, 2), fmt(st.p95, 2), over, target];
  });
  printTable(['client', 'n', 'p50 ms', 'p95 ms', 'vs TS p50', 'target ≤ +2 ms, ≤ 10 ms'], runRows, 'lrrrrl');
  if (failures.length > 0) console.log(`\nfailed cycles (${failures.length}):\n  ${failures.join('\n  ')}`);
  console.log('Targets are informational: a MISS does not fail the bench.');
} catch (err) {
  failed = true;
  console.error(err);
} finally {
  progress('cleanup');
  try {
    const page = await Machine.list({ ...conn, limit: 1000 });
    for await (const m of page)
      if (m.status !== 'killed') await Machine.killById(m.id, conn).catch(() => undefined);
  } catch (err) {
    console.error('cleanup:', err);
  }
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  const left = await mountsUnder(dataDir);
  if (left.length > 0) {
    console.error(`LEAKED mounts under ${dataDir}:\n  ${left.join('\n  ')}`);
    failed = true;
  } else rmSync(dataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
