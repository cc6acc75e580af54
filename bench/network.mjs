#!/usr/bin/env node
/**
 * Network benchmark: what the preview proxy adds to an HTTP service in a machine (latency with a
 * new connection per request and with keep-alive, download and upload throughput) and how long a
 * preview request takes when it has to wake a paused or hibernated machine, each beside a
 * baseline measured in the same run: the same request sent straight from the host to the
 * machine's address, a minimal Node reverse proxy in its own process, the explicit resume call.
 * Run as root from the repository root: `node bench/network.mjs [options]`. See bench/README.md.
 */
import { performance } from 'node:perf_hooks';
import {
  CGROUP_V2,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  fmt,
  killMachineViaApi,
  makeRunDir,
  printHost,
  printRun,
  progress,
  readClockTicks,
  readText,
  runBench,
  samples,
  startServerProcess,
  templateHas,
  toolVersion,
} from './lib.mjs';
import { load } from './network/cpu.mjs';
import { serviceMachine } from './network/machine.mjs';
import { LATENCY_PATHS, measureLatency, measureThroughput, pathTargets } from './network/paths.mjs';
import { startReferenceProxy } from './network/reference-proxy.mjs';
import { report } from './network/report.mjs';
import { SERVICE_PORT } from './network/service.mjs';
import { MARK, S, api, cleanup } from './network/state.mjs';
import { measureWakes } from './network/wake.mjs';

const USAGE = `usage: node bench/network.mjs [options]   (as root, from the repository root)
  --iterations N       GET /small requests per path and connection mode (default 500)
  --warmup N           warm-up iterations before each series, not counted (default 1; latency: 20×)
  --transfer-mib N     MiB per download and per upload (default 256)
  --transfer-runs N    timed downloads and uploads per path (default 9)
  --wake-paused N      wakes from pause by a preview request (default 10)
  --wake-hibernated N  wakes from hibernation by a preview request (default 5)
  --vcpus N            vCPUs of the machine (default: the server's default, 1)
${USAGE_ENVIRONMENT}`;

// ---- host -------------------------------------------------------------------------------------

async function describeHost(templatesDir) {
  const sysctl = (k) => readText(`/proc/sys/${k.replaceAll('.', '/')}`)?.trim() ?? '?';
  printHost(templatesDir, [
    ['node', `${process.version} (bench, server, reference proxy, and the service in the machine)`],
    ['cgroups', CGROUP_V2 ? 'v2' : 'v1'],
    ['nft', await toolVersion('nft', ['--version'])],
    ['criu', await toolVersion('criu', ['--version'])],
    [
      'tcp',
      `congestion control ${sysctl('net.ipv4.tcp_congestion_control')}, ` +
        `ephemeral ports ${sysctl('net.ipv4.ip_local_port_range').replace(/\s+/, '–')}`,
    ],
  ]);
}

// ---- the benchmark ------------------------------------------------------------------------------

async function bench(opts, templatesDir) {
  const { R, push } = samples();
  const info = { cpu: {}, stalls: [] };
  const started = performance.now();
  /** Progress on stderr, with the seconds since the bench started. */
  const phase = (msg) => progress(`[${fmt((performance.now() - started) / 1000, 0)} s] ${msg}`);
  await readClockTicks();

  makeRunDir(S);
  phase('server (own process), machine, service, reference proxy');
  await startServerProcess(S, templatesDir, { args: [MARK], config: { pauseSpillAfterS: 24 * 3600 } });
  const A = await serviceMachine(opts.vcpus);
  await startReferenceProxy(A.addr, A.link.previewAddr ?? A.link.hostAddr);
  const T = pathTargets(A);
  for (const key of LATENCY_PATHS) if (T[key] && key !== 'healthz') await A.expectSmall(T[key]);
  info.serviceVersion = (
    await api('POST', `/v1/machines/${A.id}/commands`, { cmd: '/.nullspace/bin/node --version', shell: true })
  ).stdout?.trim();
  Object.assign(info, { vcpus: A.vcpus, machineAddr: A.addr, link: A.link, smallBytes: A.smallBytes });

  printRun(S, [
    [
      'machine',
      `${A.id}: ${A.vcpus} vCPU (CFS quota), ${A.memoryMb} MB, template ${TEMPLATE}, on_timeout pause, auto_resume`,
    ],
    [
      'link',
      `machine ${A.addr}, host end ${A.link.hostAddr}, preview source ${A.link.previewAddr ?? 'not found'} on ${A.link.ifname}`,
    ],
    [
      'service',
      `node ${info.serviceVersion ?? '?'} (/.nullspace/bin/node /srv/s.js), 0.0.0.0:${SERVICE_PORT}, pid ${A.pid} in the machine, ${A.hostPid ?? '?'} on the host`,
    ],
    ['preview host', `${A.previewHost} (token in x-nullspace-preview-token)`],
    [
      'reference proxy',
      `127.0.0.1:${S.reference.fresh} (fresh), :${S.reference.pooled} (pooled), :${S.reference.relay} (TCP relay); pid ${S.reference.child.pid}`,
    ],
    [
      'settings',
      `latency × ${opts.iterations} (+${opts.warmup * 20}), transfers ${opts.transferMiB} MiB × ${opts.transferRuns} (+${opts.warmup}), ` +
        `wakes ${opts.wakePaused} paused / ${opts.wakeHibernated} hibernated (+${opts.warmup} each)`,
    ],
  ]);
  const hostBefore = load.sample(A.id);

  // 1. Latency and 2. throughput on every path (network/paths.mjs).
  await measureLatency(A, T, opts, { push, info, phase });
  const bytes = await measureThroughput(A, T, opts, { push, info, phase });
  load.add(hostBefore, load.sample(A.id));

  // 3. Wakes, on a second machine made for them (see measureWakes).
  await killMachineViaApi(S, A.id);
  await measureWakes(opts, { push, info, phase });
  info.load = load.summary();
  return { R, info, opts, bytes };
}

runBench({
  script: 'bench/network.mjs',
  usage: USAGE,
  options: {
    iterations: ['iterations', 500, 1],
    warmup: ['warmup', 1, 0],
    transferMiB: ['transfer-mib', 256, 1],
    transferRuns: ['transfer-runs', 9, 1],
    wakePaused: ['wake-paused', 10, 1],
    wakeHibernated: ['wake-hibernated', 5, 1],
    vcpus: ['vcpus', undefined, 1],
  },
  preflight: templateHas(),
  title: 'Nullspace network benchmark (preview proxy, throughput, wake on request)',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machine(s) checked: no runc container, mount, loop device, netns or cgroup left;` +
    ' server and reference proxy stopped, temp dir removed',
});
