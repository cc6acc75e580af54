#!/usr/bin/env node
/**
 * Tenants benchmark: what a tenant's key costs per request against the operator's, in the same
 * run, interleaved in random order sample by sample. The operator's key is compared in constant
 * time and passes the ownership check unlooked; a tenant's key is found by its SHA-256 and every
 * path id is looked up (a machine's row) before the route runs. Measured on the routes most calls
 * take: a machine's info, the machine list, and a command in the machine.
 * Run as root from the repository root: `node bench/tenants.mjs [options]`. See bench/README.md.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
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
  latencyRow,
  makeRunDir,
  printConditions,
  printHost,
  printLatencyTable,
  printRun,
  printTable,
  progress,
  runBench,
  runState,
  samples,
  shuffled,
  startServerProcess,
  statsOf,
  stopServerAndMachines,
  toolVersion,
  trackMachine,
} from './lib.mjs';

const USAGE = `usage: node bench/tenants.mjs [--iterations N] [--run-iterations N] [--warmup N]

  --iterations N       GET samples of each kind and key (default 400)
  --run-iterations N   command samples of each key (default 100)
  --warmup N           requests of each kind not counted, first (default 20)

${USAGE_ENVIRONMENT}`;

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['runc', await toolVersion('runc', ['--version'], 2)],
    ['node', `${process.version} (bench and server)`],
    ['cgroups', CGROUP_V2 ? 'v2' : 'v1'],
    ['/tmp', `${await filesystemOf('/tmp')} (server data dir)`],
  ]);
}

const S = runState();

async function cleanup(note) {
  await stopServerAndMachines(S, note);
  return cleanUpRun(S, note);
}

/** One request with `key` (keep-alive: the same connection pool for both keys); resolves with its ms. */
async function timedRequest(key, method, path, body) {
  const t0 = performance.now();
  const res = await fetch(`${S.server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await res.arrayBuffer();
  const ms = performance.now() - t0;
  if (!res.ok)
    throw new Error(`${method} ${path} as ${key === S.server.apiKey ? 'operator' : 'tenant'}: ${res.status}`);
  return ms;
}

async function bench(opts, templatesDir) {
  makeRunDir(S);
  progress('starting the server');
  await startServerProcess(S, templatesDir);
  const operatorKey = S.server.apiKey;
  const created = await apiRequest(S.server, 'POST', '/v1/keys', {
    tenant: 'bench',
    name: 'bench/tenants.mjs',
  });
  const tenantKey = created.key;
  progress('one machine of the operator, one of the tenant');
  const opMachine = (await createMachineViaApi(S)).id;
  // The tenant's machine through its own key (createMachineViaApi uses the operator's).
  const tenantMachine = await apiRequest({ ...S.server, apiKey: tenantKey }, 'POST', '/v1/machines', {
    template: TEMPLATE,
    timeout: 3600,
  });
  trackMachine(S, tenantMachine.id);

  const kinds = {
    get: (key, id) => ['GET', `/v1/machines/${id}`],
    list: () => ['GET', '/v1/machines'],
    run: (key, id) => ['POST', `/v1/machines/${id}/commands`, { cmd: 'true' }],
  };
  const who = { operator: [operatorKey, opMachine], tenant: [tenantKey, tenantMachine.id] };
  const { R, push } = samples();
  const one = async (kind, party) => {
    const [key, id] = who[party];
    const [method, path, body] = kinds[kind](key, id);
    return timedRequest(key, method, path, body);
  };

  progress(`warm-up: ${opts.warmup} of each`);
  for (let i = 0; i < opts.warmup; i++)
    for (const k of Object.keys(kinds)) for (const p of Object.keys(who)) await one(k, p);

  // The machines' own CPU is not counted as ours: `true` in them is part of the measured path anyway.
  const load = hostLoad(S);
  const before = load.sample();
  const plan = [];
  for (let i = 0; i < opts.iterations; i++)
    for (const p of Object.keys(who)) plan.push(['get', p], ['list', p]);
  for (let i = 0; i < opts.runIterations; i++) for (const p of Object.keys(who)) plan.push(['run', p]);
  progress(`${plan.length} requests in random order`);
  for (const [kind, party] of shuffled(plan)) {
    checkInterrupted();
    push(`${kind}.${party}`, await one(kind, party));
  }
  load.add(before, load.sample());
  return { R, load: load.summary() };
}

function report({ R, load }) {
  const s = statsOf(R);
  console.log(
    "\nA tenant's key against the operator's, same server, interleaved (ms; p50/p95 nearest-rank, min, max)",
  );
  printLatencyTable('request', [
    latencyRow('GET /v1/machines/{id}, operator key', s['get.operator'], undefined, 2),
    latencyRow('GET /v1/machines/{id}, tenant key (own machine)', s['get.tenant'], undefined, 2),
    latencyRow('GET /v1/machines, operator key (both machines)', s['list.operator'], undefined, 2),
    latencyRow('GET /v1/machines, tenant key (its one machine)', s['list.tenant'], undefined, 2),
    latencyRow('POST …/commands `true`, operator key', s['run.operator'], undefined, 2),
    latencyRow('POST …/commands `true`, tenant key', s['run.tenant'], undefined, 2),
  ]);
  const diff = (k) =>
    `${fmt(s[`${k}.tenant`]?.p50 - s[`${k}.operator`]?.p50, 3)} ms at p50, ${fmt(s[`${k}.tenant`]?.p95 - s[`${k}.operator`]?.p95, 3)} ms at p95`;
  console.log('');
  printTable(
    null,
    [
      ['tenant − operator, machine info', diff('get')],
      ['tenant − operator, machine list', `${diff('list')} (the lists differ: 1 machine against 2)`],
      ['tenant − operator, a command', diff('run')],
    ],
    'll',
  );
  printConditions(load, 'the bench, its server and the machines');
}

runBench({
  script: 'bench/tenants.mjs',
  usage: USAGE,
  options: {
    iterations: ['iterations', 400, 1],
    runIterations: ['run-iterations', 100, 1],
    warmup: ['warmup', 20, 0],
  },
  preflight: (templatesDir) => {
    const rootfs = join(templatesDir, TEMPLATE, 'rootfs');
    return existsSync(rootfs)
      ? undefined
      : `no ${TEMPLATE} template at ${rootfs}; set NULLSPACE_TEMPLATES_DIR`;
  },
  title: 'Nullspace tenants benchmark',
  describeHost,
  bench,
  report: (r) => {
    printRun(S, [['tenant', 'bench (one key, no quota)']]);
    report(r);
  },
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machine(s) checked: no runc container, mount, loop device, netns or cgroup left; server stopped, temp dir removed`,
});
