#!/usr/bin/env node
/**
 * Warm-pool benchmark: how long a create that checks a machine out of a warm pool takes until the
 * machine answers, beside a cold create of the same template (its start command an HTTP server,
 * so a cold create waits for the server's ready check) in the same run, interleaved sample by
 * sample, each sample taken with the pool full and nothing starting.
 * Run as root from the repository root: `node bench/warm-pool.mjs [options]`. See bench/README.md.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CGROUP_V2,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  apiRequest,
  checkInterrupted,
  cleanUpRun,
  createMachineViaApi,
  filesystemOf,
  fmt,
  hostLoad,
  killMachineViaApi,
  latencyRow,
  machineCpu,
  makeRunDir,
  percent,
  printConditions,
  printHints,
  printHost,
  printLatencyTable,
  printRun,
  printTable,
  progress,
  readClockTicks,
  runBench,
  runState,
  runcList,
  samples,
  shuffled,
  startServerProcess,
  statsOf,
  stopServerAndMachines,
  toolVersion,
  verdict,
} from './lib.mjs';

/** Issue 6's target (informational): a warm-pool checkout answers within 15 ms (p50; p95 shown too). */
const TARGET_CHECKOUT_MS = 15;
/** In the start command's command line (and the template's name), so the leak check finds only ours. */
const MARK = `nsbench-warm-pool-${process.pid}`;
/** The bench's template: built in this run's fresh data dir, deleted at the end. */
const TEMPLATE_REF = `nsbench/warm-pool-${process.pid}:bench`;
/** The HTTP server's port in the machine. */
const SERVICE_PORT = 8000;
/**
 * The template's start command: a plain HTTP server (`exec`: bash is replaced by it), serving the
 * working directory. socketserver's threading TCP server with http.server's handler, not
 * `http.server.ThreadingHTTPServer`: that one's `server_bind` asks DNS for the machine's own name
 * (`socket.getfqdn`), a query the machine's resolver forwards off the host, and whose time (part
 * of every cold create) would be the upstream resolver's.
 */
const START_CMD =
  `exec python3 -c 'import http.server as h, socketserver as s; ` +
  `S = type("S", (s.ThreadingMixIn, s.TCPServer), {"daemon_threads": True, "allow_reuse_address": True}); ` +
  `S(("0.0.0.0", ${SERVICE_PORT}), h.SimpleHTTPRequestHandler).serve_forever()' ${MARK}`;
/**
 * The server's machine addresses: a corner of the default pool (10.213.0.0/16) that servers using
 * the default, which take the lowest free blocks, do not reach. Host interfaces are named after
 * the block, and a teardown deletes its machine's interface by name after deleting the namespace
 * (which already removes it): with two servers on one pool, one's teardown can delete the
 * interface the other has just made under that name. With the test suite's servers running on
 * the default pool, three full runs failed so: a cold create's machine had no network at all (no
 * eth0, no host interface), its ready check failing for 60 s. The measured path is the same.
 */
const MACHINE_NETWORK = '10.213.192.0/18';
/** How often the pool is asked whether it is full again (ms). */
const POLL_MS = 20;
/** A pool not full again within this long (ms) fails the bench. */
const FILL_TIMEOUT_MS = 120_000;
/** A template build not finished within this long (ms) fails the bench. */
const BUILD_TIMEOUT_MS = 300_000;
/** Pause once the pool is full, before a sample: the refill's last steps (logs, store) settle. */
const SETTLE_MS = 100;

const USAGE = `usage: node bench/warm-pool.mjs [options]   (as root, from the repository root)
  --iterations N   timed checkouts, and as many timed cold creates (default 20)
  --warmup N       warm-up pairs (one checkout, one cold create) before, not counted (default 1)
  --pool-size N    machines the warm pool keeps ready (default 2)
${USAGE_ENVIRONMENT}`;

// ---- host -------------------------------------------------------------------------------------

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['runc', await toolVersion('runc', ['--version'], 2)],
    ['node', `${process.version} (bench and server)`],
    ['cgroups', CGROUP_V2 ? 'v2' : 'v1'],
    ['/tmp', `${await filesystemOf('/tmp')} (server data dir: machines' disks, template layer)`],
  ]);
}

// ---- state and cleanup --------------------------------------------------------------------------

/** Everything the bench made (see runState); besides: the warm pool's id and the template build's. */
const S = runState({ poolId: undefined, templateId: undefined });

const api = (method, path, body) => apiRequest(S.server, method, path, body);

/** Waits (up to `ms`) until `done()` resolves true; false if it never did. */
async function waitUntil(done, ms) {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (await done()) return true;
    await sleep(POLL_MS);
  }
  return false;
}

async function cleanup(note) {
  const leaks = [];
  noteMachines();
  if (S.server?.url) {
    // 1. The machines the bench created (checked out or cold), through the API.
    for (const id of [...S.live]) await killMachineViaApi(S, id).catch(note(`kill ${id}`));
    // 2. The pool: once nothing is starting in it (a machine that finishes starting after the
    //    delete is killed by the server, but after the answer), then deleted with its machines.
    if (S.poolId) {
      const id = S.poolId;
      await waitUntil(async () => (await api('GET', `/v1/warm_pools/${id}`)).starting === 0, 30_000).catch(
        note(`warm pool ${id}`),
      );
      noteMachines();
      await api('DELETE', `/v1/warm_pools/${id}`).then(
        () => {
          S.poolId = undefined;
        },
        note(`delete warm pool ${id}`),
      );
      const items = (await api('GET', '/v1/warm_pools').catch(note('list warm pools')))?.items ?? [];
      if (items.some((p) => p.id === id)) leaks.push(`warm pool ${id}`);
    }
    // 3. The template: once its build has ended (by id: a build is tagged only once ready) and no
    //    machine of it is left. A failed build has no tag to delete; its files are in the temp dir.
    if (S.templateId) {
      const id = S.templateId;
      let t;
      await waitUntil(async () => {
        t = await api('GET', `/v1/templates/${id}`);
        return t.status !== 'building';
      }, 60_000).catch(note(`template ${id}`));
      await waitUntil(async () => (await runcList(join(S.dataDir, 'runc'))).length === 0, 10_000).catch(
        note('runc list'),
      );
      if (t?.status === 'ready')
        await api('DELETE', `/v1/templates/${encodeURIComponent(TEMPLATE_REF)}`).catch(
          note(`delete template ${TEMPLATE_REF}`),
        );
      // A deleted build is not found any more.
      t = await api('GET', `/v1/templates/${id}`).catch((err) =>
        err.code === 'template_not_found' ? undefined : note(`template ${id}`)(err),
      );
      if (t && t.status !== 'failed') leaks.push(`template ${TEMPLATE_REF} (${t.status})`);
    }
  }
  // 4. Any other machine through the API, then the server (by its pid).
  await stopServerAndMachines(S, note);
  // 5. Runtime leftovers of this run's machines (the pool's included: their directories are in
  //    the data dir), then the check.
  const run = await cleanUpRun(S, note, { mark: MARK });
  return { leaks: [...leaks, ...run.leaks], checked: run.checked };
}

// ---- the pool and the template ---------------------------------------------------------------------

/** Builds the bench's template (no packages: no network) and waits until it is ready. */
async function buildTemplate() {
  const started = await api('POST', '/v1/templates', {
    name: TEMPLATE_REF,
    start_cmd: START_CMD,
    ready_check: { port: SERVICE_PORT, http_path: '/' },
  });
  S.templateId = started.template.id;
  let t = started.template;
  const deadline = performance.now() + BUILD_TIMEOUT_MS;
  while (t.status === 'building') {
    checkInterrupted();
    if (performance.now() > deadline)
      throw new Error(`template ${TEMPLATE_REF}: still building after ${BUILD_TIMEOUT_MS} ms`);
    await sleep(100);
    noteMachines();
    t = await api('GET', `/v1/templates/${S.templateId}`);
  }
  if (t.status !== 'ready') throw new Error(`template ${TEMPLATE_REF}: build ${t.status}: ${t.error}`);
  return t;
}

/**
 * Waits until the pool is full (ready == size) with nothing starting; resolves with the time that
 * took (ms, polled every POLL_MS) and the pool's answer. A start error of the pool fails at once.
 */
async function waitPoolFull(size) {
  const t0 = performance.now();
  for (;;) {
    checkInterrupted();
    const pool = await api('GET', `/v1/warm_pools/${S.poolId}`);
    noteMachines();
    if (pool.ready === size && pool.starting === 0) return { ms: performance.now() - t0, pool };
    if (pool.last_error)
      throw new Error(`warm pool ${S.poolId}: a machine failed to start: ${pool.last_error}`);
    if (performance.now() - t0 > FILL_TIMEOUT_MS)
      throw new Error(
        `warm pool ${S.poolId}: not full within ${FILL_TIMEOUT_MS} ms (ready ${pool.ready}, starting ${pool.starting} of ${size})`,
      );
    await sleep(POLL_MS);
  }
}

/** `true` in the machine (exec, no shell), through the server and its agent; fails unless it exits 0. */
async function runTrue(id) {
  const r = await api('POST', `/v1/machines/${id}/commands`, { cmd: 'true', args: [] });
  if (r.exit_code !== 0) throw new Error(`machine ${id}: \`true\` exited ${r.exit_code}`);
}

/** The template's HTTP server answers in the machine (curl to its 127.0.0.1, untimed). */
async function checkService(id) {
  const r = await api('POST', `/v1/machines/${id}/commands`, {
    cmd: 'curl',
    args: ['-sf', '-o', '/dev/null', `http://127.0.0.1:${SERVICE_PORT}/`],
    timeout_ms: 10_000,
  });
  if (r.exit_code !== 0)
    throw new Error(`machine ${id}: the template's HTTP server does not answer (curl exit ${r.exit_code})`);
}

/** The ids of the machines the run's server has now (one directory each, pool machines included). */
function machineDirs() {
  const dir = S.dataDir && join(S.dataDir, 'machines');
  return dir && existsSync(dir) ? readdirSync(dir) : [];
}

/**
 * Notes every machine the server has now for the leak check: the pool's waiting machines and the
 * template build's are never in `GET /v1/machines`, and a killed one's directory is gone.
 */
function noteMachines() {
  for (const id of machineDirs()) S.machineIds.add(id);
}

/** CPU (ms) of this run's machines' cgroups so far: the pool's, the sample's and any refill. */
function machinesCpuMs() {
  return machineDirs()
    .map((id) => machineCpu(id).usageMs)
    .filter(Number.isFinite)
    .reduce((a, b) => a + b, 0);
}

// ---- the benchmark ------------------------------------------------------------------------------

async function bench(opts, templatesDir) {
  const { iterations: n, warmup, poolSize } = opts;
  const { R, push } = samples();
  const info = { n, warmup, poolSize, hits: 0, misses: 0 };
  await readClockTicks();

  makeRunDir(S);
  await startServerProcess(S, templatesDir, {
    args: [MARK],
    // No packages in the template: the package cache is never read; this run's own, offline.
    config: {
      packageCacheDir: join(S.tmp, 'packages'),
      packagesOffline: true,
      machineNetwork: MACHINE_NETWORK,
    },
  });
  printRun(S, [
    [
      'template',
      `${TEMPLATE_REF} on ${TEMPLATE}: start_cmd a python3 HTTP server on :${SERVICE_PORT} (ready check GET /)`,
    ],
    ['pool', `size ${poolSize}, the template's sizing (the server's defaults)`],
    ['addresses', `machines on ${MACHINE_NETWORK} (apart from other servers' default pool)`],
    [
      'settings',
      `${n} timed checkouts and ${n} timed cold creates, interleaved in a random order; ${warmup} warm-up pair(s) not counted`,
    ],
  ]);

  progress(`template ${TEMPLATE_REF}: build`);
  const template = await buildTemplate();
  info.buildMs = template.build_ms;
  info.layerBytes = template.size_bytes;

  progress(`warm pool of ${poolSize}: create and fill`);
  const created = await api('POST', '/v1/warm_pools', { template: TEMPLATE_REF, size: poolSize });
  S.poolId = created.id;
  info.fillMs = (await waitPoolFull(poolSize)).ms;

  const load = hostLoad(S, { others: machinesCpuMs });

  /** A checkout: create in `prefer` mode, then the first `true`. Must be a hit. */
  const checkout = async (count, i) => {
    const before = load.sample();
    const t0 = performance.now();
    const m = await createMachineViaApi(S, {
      template: TEMPLATE_REF,
      warm_pool: S.poolId,
      warm_pool_mode: 'prefer',
    });
    const t1 = performance.now();
    await runTrue(m.id);
    const t2 = performance.now();
    await runTrue(m.id);
    const t3 = performance.now();
    load.add(before, load.sample());
    const c = m.warm_pool_checkout;
    if (c?.hit !== true) {
      info.misses++;
      throw new Error(
        `checkout ${i + 1}: a miss (warm_pool_checkout ${JSON.stringify(c)}, status ${m.status}) although the ` +
          'pool was full: this sample would be a cold create; stopping',
      );
    }
    info.hits++;
    if (m.status !== 'running') throw new Error(`checkout ${i + 1}: machine ${m.id} is ${m.status}`);
    await checkService(m.id);
    if (count) {
      push('warm', t2 - t0);
      push('warmCreate', t1 - t0);
      push('warmFirst', t2 - t1);
      push('warmWaited', c.waited_ms);
      push('warmSecond', t3 - t2);
    }
    await killMachineViaApi(S, m.id);
    const refill = await waitPoolFull(poolSize);
    if (count) push('refill', performance.now() - t1);
    return refill;
  };

  /** A cold create of the same template (no pool named), then the first `true`. */
  const cold = async (count, i) => {
    const before = load.sample();
    const t0 = performance.now();
    const m = await createMachineViaApi(S, { template: TEMPLATE_REF });
    const t1 = performance.now();
    await runTrue(m.id);
    const t2 = performance.now();
    await runTrue(m.id);
    const t3 = performance.now();
    load.add(before, load.sample());
    if (m.warm_pool_checkout !== null) throw new Error(`cold create ${i + 1}: came from a pool`);
    if (m.status !== 'running') throw new Error(`cold create ${i + 1}: machine ${m.id} is ${m.status}`);
    await checkService(m.id);
    if (count) {
      push('cold', t2 - t0);
      push('coldCreate', t1 - t0);
      push('coldFirst', t2 - t1);
      push('coldSecond', t3 - t2);
    }
    await killMachineViaApi(S, m.id);
    return waitPoolFull(poolSize);
  };

  progress(`${n} checkouts and ${n} cold creates (+${warmup} each), interleaved`);
  for (let i = -warmup; i < n; i++) {
    for (const kind of shuffled(['checkout', 'cold'])) {
      checkInterrupted();
      await sleep(SETTLE_MS);
      await (kind === 'checkout' ? checkout : cold)(i >= 0, i);
    }
    if (i >= 0 && (i + 1) % 5 === 0) progress(`${i + 1} of ${n}`);
  }

  info.pool = await api('GET', `/v1/warm_pools/${S.poolId}`);
  info.load = load.summary();
  return { R, info };
}

// ---- the report ---------------------------------------------------------------------------------

function report({ R, info }) {
  const s = statsOf(R);
  const ratio = (a, b) => (a === undefined || b === undefined || b === 0 ? '-' : `${fmt(a / b, 1)}×`);
  console.log(
    '\nWarm-pool checkout vs cold create of the same template, until the machine answers ' +
      '(ms; p50/p95 nearest-rank, min, max; the target applies to p50)',
  );
  printLatencyTable('figure', [
    latencyRow('1. warm-pool checkout until the machine answers', s.warm, TARGET_CHECKOUT_MS),
    latencyRow('     of which POST /v1/machines {warm_pool, prefer}', s.warmCreate),
    latencyRow('     of which the first `true` (POST …/commands)', s.warmFirst),
    latencyRow('     server: warm_pool_checkout.waited_ms', s.warmWaited),
    latencyRow('   then a second `true` in the same machine', s.warmSecond),
    latencyRow('2. cold create of the same template until it answers', s.cold),
    latencyRow('     of which POST /v1/machines {template}', s.coldCreate),
    latencyRow('     of which the first `true`', s.coldFirst),
    latencyRow('   then a second `true` in the same machine', s.coldSecond),
  ]);

  const p = info.pool;
  const hm = p.hits + p.misses;
  console.log('');
  printTable(
    null,
    [
      [
        'target',
        `checkout p50 ${fmt(s.warm?.p50)} ms ≤ ${TARGET_CHECKOUT_MS}: ${verdict(s.warm?.p50, TARGET_CHECKOUT_MS)}; ` +
          `p95 ${fmt(s.warm?.p95)} ms ≤ ${TARGET_CHECKOUT_MS}: ${verdict(s.warm?.p95, TARGET_CHECKOUT_MS)}`,
      ],
      [
        'speed-up',
        `cold ÷ checkout: ${ratio(s.cold?.p50, s.warm?.p50)} at p50, ${ratio(s.cold?.p95, s.warm?.p95)} at p95`,
      ],
      [
        'pool (server side)',
        `checkout_ms p50 ${fmt(p.checkout_ms.p50, 0)}, p95 ${fmt(p.checkout_ms.p95, 0)} over ${p.checkout_ms.samples} hits ` +
          '(request parsed → answer ready, whole ms, warm-up included)',
      ],
      [
        'hits / misses',
        `server: ${p.hits} / ${p.misses} (hit rate ${p.hit_rate === null ? '-' : percent(p.hits, hm)}); ` +
          `bench: ${info.hits} hits of ${info.hits + info.misses} checkouts (warm-up included)`,
      ],
      [
        'refill',
        `pool full again ${fmt(s.refill?.p50, 0)} ms p50 (${fmt(s.refill?.min, 0)}–${fmt(s.refill?.max, 0)}) after a checkout's ` +
          `answer (polled every ${POLL_MS} ms); first fill of ${info.poolSize}: ${fmt(info.fillMs, 0)} ms`,
      ],
      [
        'template',
        `built in ${info.buildMs} ms (no packages, no network), layer ${fmt(info.layerBytes / 1024, 0)} KiB`,
      ],
    ],
    'll',
  );

  printConditions(
    info.load,
    'the bench, its server and the machines',
    ' (counted over the timed creates only; a refill the checkout starts runs during its first `true`)',
  );

  const hints = [];
  if (verdict(s.warm?.p50, TARGET_CHECKOUT_MS) === 'MISS')
    hints.push(
      `checkout p50 ${fmt(s.warm.p50)} ms misses ${TARGET_CHECKOUT_MS} ms: the create answered in ` +
        `${fmt(s.warmCreate.p50)} ms (the server waited ${fmt(s.warmWaited.p50)} ms for the pool), the first ` +
        `\`true\` took ${fmt(s.warmFirst.p50)} ms against ${fmt(s.warmSecond.p50)} ms for a second one ` +
        `(cold: first ${fmt(s.coldFirst.p50)}, second ${fmt(s.coldSecond.p50)} ms; the pool's refill, started by ` +
        'the checkout, runs during the first).',
    );
  printHints(hints);
}

runBench({
  script: 'bench/warm-pool.mjs',
  usage: USAGE,
  options: {
    iterations: ['iterations', 20, 1],
    warmup: ['warmup', 1, 0],
    poolSize: ['pool-size', 2, 1],
  },
  preflight: (templatesDir) => {
    const rootfs = join(templatesDir, TEMPLATE, 'rootfs');
    if (!existsSync(rootfs)) return `no ${TEMPLATE} template at ${rootfs}; set NULLSPACE_TEMPLATES_DIR`;
    for (const tool of ['python3', 'curl']) {
      if (!existsSync(join(rootfs, 'usr', 'bin', tool)))
        return `the ${TEMPLATE} template has no /usr/bin/${tool} (the start command and the service check need it)`;
    }
    return undefined;
  },
  title: 'Nullspace warm-pool benchmark',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machine(s) checked (the pool's, the samples', the template build's): no runc container, ` +
    'mount, loop device, netns or cgroup left; warm pool and template deleted, server stopped, temp dir removed',
});
