#!/usr/bin/env node
/**
 * Load and soak benchmark (issue 20, item 6): first a burst of concurrent creates (all must
 * succeed), then minutes of mixed operations from several workers at once — create, command,
 * file write and read-back, pause/connect, hibernate/connect, snapshot → machine from it, fork,
 * kill — reporting operations per second, errors (which must be 0), p50/p95/p99 of each operation,
 * and the drift of host memory and of the server's own memory over the run.
 * Run as root from the repository root: `node bench/soak.mjs [options]`. See bench/README.md.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CGROUP_V2,
  MACHINE_TIMEOUT_S,
  MiB,
  USAGE_ENVIRONMENT,
  apiRequest,
  checkInterrupted,
  cleanUpRun,
  createMachineViaApi,
  fmt,
  killMachineViaApi,
  makeRunDir,
  meminfo,
  printHost,
  printRun,
  printTable,
  progress,
  rssBytes,
  runBench,
  runState,
  startServerProcess,
  stats,
  stopServerAndMachines,
  templateHas,
  toolVersion,
  trackMachine,
} from './lib.mjs';

const USAGE = `usage: node bench/soak.mjs [--minutes N] [--workers N] [--burst N] [--burst-kill N]

  --minutes N     how long the mixed operations run (default 30; 0: the burst only)
  --workers N     workers running mixed operations at once (default 8)
  --burst N       concurrent creates at the start, all awaited together (default 200; 0: none)
  --burst-kill N  kills in flight at once when the burst's machines are killed (default 16)
  --lifecycle N   1 (default): each cycle does one of pause, hibernate, snapshot, fork or nothing
                  between its write and read-back; 0: nothing (the tightest create → kill loop)

${USAGE_ENVIRONMENT}`;

/** In the server's command line, so the leak check finds only this run's processes. */
const MARK = `nsbench-soak-${process.pid}`;

const S = runState();

/** The server process's resident memory, bytes (0 once it is gone). */
const serverRss = () => rssBytes(S.server.child.pid);

const hostUsed = () => {
  const m = meminfo();
  return m.total - m.available;
};

/**
 * From the server's metrics (operator key): its teardown queue — killed machines whose host side is
 * not freed yet, by state, and the totals; those count toward the machine limit, so a queue that
 * falls behind the kills is what refuses creates (`resource_exhausted`) — and its own memory as
 * Node.js reports it (JavaScript heap in use and committed, C++ objects bound to it).
 */
async function serverStats() {
  const res = await fetch(`${S.server.url}/metrics`, {
    headers: { authorization: `Bearer ${S.server.apiKey}` },
  });
  const text = await res.text();
  const value = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return {
    teardowns: {
      pending: value('nullspace_teardowns\\{state="pending"\\}'),
      running: value('nullspace_teardowns\\{state="running"\\}'),
      failed: value('nullspace_teardowns\\{state="failed"\\}'),
      done: value('nullspace_teardowns_done_total'),
      failures: value('nullspace_teardown_failures_total'),
    },
    heapUsed: value('nodejs_heap_size_used_bytes'),
    heapTotal: value('nodejs_heap_size_total_bytes'),
    external: value('nodejs_external_memory_bytes'),
  };
}

/** A machine from reusable snapshot `snapshotId` (no template: the snapshot is its source). */
async function createFromSnapshot(snapshotId) {
  const info = await apiRequest(S.server, 'POST', '/v1/machines', {
    snapshot_id: snapshotId,
    timeout: MACHINE_TIMEOUT_S,
  });
  trackMachine(S, info.id);
  return info;
}

const create = () => createMachineViaApi(S);
const kill = (id) => killMachineViaApi(S, id);

async function run(id, text) {
  const r = await apiRequest(S.server, 'POST', `/v1/machines/${id}/commands`, { cmd: 'echo', args: [text] });
  if (r.stdout !== `${text}\n`) throw new Error(`echo answered ${JSON.stringify(r.stdout)}`);
}

async function writeFile(id, path, body) {
  const res = await fetch(`${S.server.url}/v1/machines/${id}/files?path=${encodeURIComponent(path)}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${S.server.apiKey}` },
    body,
  });
  if (!res.ok) throw new Error(`write ${path}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  return true;
}

async function readFileOf(id, path) {
  const res = await fetch(`${S.server.url}/v1/machines/${id}/files?path=${encodeURIComponent(path)}`, {
    headers: { authorization: `Bearer ${S.server.apiKey}` },
  });
  if (!res.ok) throw new Error(`read ${path}: ${res.status} ${await res.text()}`);
  return res.text();
}

/** Measures `fn` as operation `name` into `R`; an error is counted and noted, not thrown. */
async function op(R, name, fn) {
  const t0 = performance.now();
  try {
    const out = await fn();
    R.ms[name] ??= [];
    R.ms[name].push(performance.now() - t0);
    return out;
  } catch (err) {
    R.errors.push(`${name} (after ${fmt(performance.now() - t0, 0)} ms): ${err?.message ?? err}`);
    return undefined;
  }
}

/**
 * One worker's loop until `until`: a machine made, used and ended, with one lifecycle operation of
 * the rotation in between; every acknowledged write is read back after that operation.
 */
async function worker(R, n, until, opts) {
  // --lifecycle 0: every cycle is plain (create, command, write, read back, kill), the tightest loop.
  const kinds = opts.lifecycle ? ['pause', 'hibernate', 'snapshot', 'fork', 'plain'] : ['plain'];
  for (let i = n; performance.now() < until; i++) {
    checkInterrupted();
    const m = await op(R, 'create', () => create());
    if (!m) continue;
    const mark = `${MARK}-${n}-${i}`;
    await op(R, 'command', () => run(m.id, mark));
    const wrote = await op(R, 'file write', () => writeFile(m.id, '/workspace/soak.txt', mark));
    const kind = kinds[i % kinds.length];
    if (kind === 'pause') {
      await op(R, 'pause', () => apiRequest(S.server, 'POST', `/v1/machines/${m.id}/pause`));
      await op(R, 'connect (from paused)', () =>
        apiRequest(S.server, 'POST', `/v1/machines/${m.id}/connect`),
      );
    } else if (kind === 'hibernate') {
      await op(R, 'hibernate', () => apiRequest(S.server, 'POST', `/v1/machines/${m.id}/hibernate`));
      await op(R, 'connect (from hibernated)', () =>
        apiRequest(S.server, 'POST', `/v1/machines/${m.id}/connect`),
      );
    } else if (kind === 'snapshot') {
      const snap = await op(R, 'snapshot', () =>
        apiRequest(S.server, 'POST', `/v1/machines/${m.id}/snapshots`),
      );
      if (snap) {
        const copy = await op(R, 'create from snapshot', () => createFromSnapshot(snap.id));
        if (copy) {
          const got = await op(R, 'file read', () => readFileOf(copy.id, '/workspace/soak.txt'));
          if (wrote !== undefined && got !== undefined && got !== mark)
            R.errors.push(`snapshot copy ${copy.id} lost a write: ${JSON.stringify(got)}`);
          await op(R, 'kill', () => kill(copy.id));
        }
        await op(R, 'delete snapshot', () => apiRequest(S.server, 'DELETE', `/v1/snapshots/${snap.id}`));
      }
    } else if (kind === 'fork') {
      const res = await op(R, 'fork (1 child)', () =>
        apiRequest(S.server, 'POST', `/v1/machines/${m.id}/fork`, { count: 1 }),
      );
      for (const c of res?.children ?? []) {
        if (c.error) R.errors.push(`fork child: ${c.error.code} ${c.error.message}`);
        else {
          trackMachine(S, c.id);
          await op(R, 'kill', () => kill(c.id));
        }
      }
    }
    if (wrote !== undefined) {
      const got = await op(R, 'file read', () => readFileOf(m.id, '/workspace/soak.txt'));
      if (got !== undefined && got !== mark)
        R.errors.push(`${m.id} lost an acknowledged write after ${kind}`);
    }
    await op(R, 'kill', () => kill(m.id));
    R.cycles++;
  }
}

async function burst(opts) {
  const B = { n: opts.burst, ok: 0, errors: [], createMs: [], allMs: 0, killMs: 0, killed: 0 };
  if (opts.burst === 0) return B;
  progress(`burst: ${opts.burst} concurrent creates`);
  const t0 = performance.now();
  const made = await Promise.all(
    Array.from({ length: opts.burst }, async () => {
      const s = performance.now();
      try {
        const info = await create();
        B.createMs.push(performance.now() - s);
        B.ok++;
        return info.id;
      } catch (err) {
        B.errors.push(err?.message ?? String(err));
        return undefined;
      }
    }),
  );
  B.allMs = performance.now() - t0;
  progress(`burst: killing ${B.ok} machines, ${opts.burstKill} in flight`);
  const queue = made.filter(Boolean);
  const k0 = performance.now();
  await Promise.all(
    Array.from({ length: opts.burstKill }, async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        try {
          await kill(id);
          B.killed++;
        } catch (err) {
          B.errors.push(`kill ${id}: ${err?.message ?? err}`);
        }
      }
    }),
  );
  B.killMs = performance.now() - k0;
  return B;
}

async function bench(opts, templatesDir) {
  makeRunDir(S);
  await startServerProcess(S, templatesDir, {
    config: { maxMachines: Math.max(100, opts.burst + 4 * opts.workers) },
    args: [MARK],
  });
  printRun(S, [
    [
      'settings',
      `burst ${opts.burst} (kills ${opts.burstKill} in flight), then ${opts.minutes} min × ${opts.workers} workers`,
    ],
  ]);
  const before = { host: hostUsed(), server: serverRss() };
  const B = await burst(opts);
  const R = { ms: {}, errors: [], cycles: 0, samples: [] };
  let soakS = 0;
  if (opts.minutes > 0) {
    progress(`soak: ${opts.minutes} min × ${opts.workers} workers`);
    const t0 = performance.now();
    const until = t0 + opts.minutes * 60_000;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const at = {
          s: (performance.now() - t0) / 1000,
          host: hostUsed(),
          server: serverRss(),
          live: S.live.size,
        };
        R.samples.push({ ...at, ...(await serverStats().catch(() => ({}))) });
        await sleep(10_000);
      }
    })();
    await Promise.all(Array.from({ length: opts.workers }, (_, n) => worker(R, n, until, opts)));
    sampling = false;
    await sampler;
    soakS = (performance.now() - t0) / 1000;
  }
  // Everything the run made is killed by now: the host should be back where it started.
  await sleep(2000);
  const afterAll = { host: hostUsed(), server: serverRss() };
  return { B, R, soakS, before, afterAll };
}

function report({ B, R, soakS, before, afterAll }) {
  if (B.n > 0) {
    const created = stats(B.createMs);
    console.log(`\nBurst: ${B.n} concurrent creates`);
    printTable(
      ['figure', 'value', 'bar', 'result'],
      [
        ['creates that succeeded', `${B.ok} / ${B.n}`, 'all', B.ok === B.n ? 'PASS' : 'MISS'],
        ['until every create answered (s)', fmt(B.allMs / 1000, 2), '', ''],
        [
          'create p50 / p95 / max (ms)',
          `${fmt(created.p50, 0)} / ${fmt(created.p95, 0)} / ${fmt(created.max, 0)}`,
          '',
          '',
        ],
        [
          'kill throughput (per s)',
          fmt(B.killed / (B.killMs / 1000), 1),
          '≥ 20',
          B.killed / (B.killMs / 1000) >= 20 ? 'PASS' : 'MISS',
        ],
      ],
      'lrll',
    );
    for (const e of B.errors.slice(0, 10)) console.log(`  error: ${e}`);
  }
  if (soakS > 0) {
    const ops = Object.values(R.ms).reduce((a, xs) => a + xs.length, 0);
    console.log(`\nSoak: ${fmt(soakS / 60, 1)} min, ${R.cycles} machine cycles, ${ops} operations`);
    printTable(
      ['figure', 'value', 'bar', 'result'],
      [
        ['operations per second', fmt(ops / soakS, 1), '', ''],
        ['errors', String(R.errors.length), '0', R.errors.length === 0 ? 'PASS' : 'MISS'],
      ],
      'lrll',
    );
    console.log('');
    printTable(
      ['operation (ms)', 'n', 'p50', 'p95', 'p99', 'max'],
      Object.entries(R.ms).map(([name, xs]) => {
        const st = stats(xs);
        return [name, st.n, ...[st.p50, st.p95, st.p99, st.max].map((x) => fmt(x, 0))];
      }),
      'lrrrrr',
    );
    for (const e of R.errors.slice(0, 20)) console.log(`  error: ${e}`);
    if (R.errors.length > 20) console.log(`  … and ${R.errors.length - 20} more`);
    // The server's memory once warmed up (the first sample after a minute) against the last sample.
    const warm = R.samples.find((x) => x.s >= 60) ?? R.samples[0];
    const last = R.samples.at(-1);
    if (warm && last) {
      console.log('\nMemory over the soak (MiB; samples every 10 s)');
      printTable(
        ['figure', 'first', 'warm', 'last', 'drift warm→last'],
        [
          [
            'server RSS',
            fmt(R.samples[0].server / MiB),
            fmt(warm.server / MiB),
            fmt(last.server / MiB),
            fmt((last.server - warm.server) / MiB),
          ],
          [
            'host used (MemTotal − MemAvailable)',
            fmt(R.samples[0].host / MiB),
            fmt(warm.host / MiB),
            fmt(last.host / MiB),
            fmt((last.host - warm.host) / MiB),
          ],
        ],
        'lrrrr',
      );
      // Flat or still growing, quarter by quarter: the RSS at each quarter's end, and what the
      // JavaScript heap keeps — its lowest "in use" in the quarter (right after a collection,
      // garbage is not counted) — beside what V8 has committed and the C++ objects bound to it.
      const quarters = [0, 1, 2, 3]
        .map((q) =>
          R.samples.slice(
            Math.floor((q * R.samples.length) / 4),
            Math.max(1, Math.ceil(((q + 1) * R.samples.length) / 4)),
          ),
        )
        .filter((xs) => xs.length > 0);
      const lowest = (xs, k) => Math.min(...xs.map((x) => x[k]).filter(Number.isFinite));
      console.log('  server memory at each quarter of the soak (MiB):');
      printTable(
        ['quarter ends at', 'RSS', 'heap in use (lowest)', 'heap committed', 'external (lowest)'],
        quarters.map((xs) => {
          const end = xs.at(-1);
          return [
            `${fmt(end.s / 60, 1)} min`,
            fmt(end.server / MiB),
            fmt(lowest(xs, 'heapUsed') / MiB),
            fmt(end.heapTotal / MiB),
            fmt(lowest(xs, 'external') / MiB),
          ];
        }),
        'lrrrr',
      );
    }
  }
  const queued = R.samples.map((x) => x.teardowns).filter(Boolean);
  if (queued.length > 0) {
    const lastQ = queued.at(-1);
    const most = (k) => Math.max(...queued.map((q) => q[k] + (k === 'pending' ? q.running : 0)));
    console.log(
      `\nTeardown queue over the soak (samples every 10 s): at most ${most('pending')} killed machines waiting or being torn down, ` +
        `at most ${most('failed')} given up; ${lastQ.done} torn down, ${lastQ.failures} failed attempts (each retry counts).`,
    );
  }
  console.log(
    `\nHost used before the run ${fmt(before.host / MiB)} MiB, after everything was killed ${fmt(afterAll.host / MiB)} MiB ` +
      `(drift ${fmt((afterAll.host - before.host) / MiB)} MiB: host-wide, so other work on the host counts too). ` +
      `Server RSS ${fmt(before.server / MiB)} → ${fmt(afterAll.server / MiB)} MiB.`,
  );
}

async function cleanup(note) {
  await stopServerAndMachines(S, note);
  return cleanUpRun(S, note, { mark: MARK });
}

runBench({
  script: 'bench/soak.mjs',
  usage: USAGE,
  options: {
    minutes: ['minutes', 30, 0],
    workers: ['workers', 8, 1],
    burst: ['burst', 200, 0],
    burstKill: ['burst-kill', 16, 1],
    lifecycle: ['lifecycle', 1, 0],
  },
  preflight: templateHas(),
  title: 'Nullspace load and soak benchmark',
  describeHost: async (templatesDir) =>
    printHost(templatesDir, [
      ['runc', await toolVersion('runc', ['--version'], 2)],
      ['node', `${process.version} (bench and server)`],
      ['cgroups', CGROUP_V2 ? 'v2' : 'v1'],
    ]),
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machine(s) checked: no runc container, mount, loop device, netns or cgroup left; server stopped, temp dir removed`,
});
