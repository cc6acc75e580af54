#!/usr/bin/env node
import { agentPid, load } from './inside/cpu.mjs';
import { measureFiles } from './inside/files.mjs';
import { measurePty } from './inside/pty.mjs';
import { agentTarget, serverTarget } from './inside/raw-http.mjs';
import { report } from './inside/report.mjs';
import { MARK, S, api, cleanup } from './inside/state.mjs';
import { measureStream } from './inside/stream.mjs';
/**
 * Inside-a-machine benchmark: streamed output throughput, a 1 MiB file write + read round trip and
 * PTY echo latency through the SDK, each beside the same operation on the host and beside the
 * hops under it (the server's HTTP API without the SDK, the machine's agent without the server),
 * all measured in the same run, interleaved iteration by iteration.
 * Run as root from the repository root: `node bench/inside.mjs [options]`. See bench/README.md.
 */
import {
  CGROUP_V2,
  MACHINE_TIMEOUT_S,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  createMachineViaSdk,
  filesystemOf,
  killMachineViaSdk,
  makeRunDir,
  printHost,
  printRun,
  readClockTicks,
  runBench,
  samples,
  sh,
  startServerProcess,
  templateHas,
} from './lib.mjs';

const USAGE = `usage: node bench/inside.mjs [options]   (as root, from the repository root)
  --stream-mib N        MiB each streamed-output run writes (default 256)
  --stream-runs N       timed runs of every streamed-output series (default 15)
  --file-iterations N   1 MiB write + read round trips per series (default 200)
  --pty-iterations N    one-byte PTY echoes per series (default 1000)
  --warmup N            warm-up iterations before each series, not counted (default 1; PTY: 20×)
  --vcpus N             vCPUs of the machine (default: the server's default, 1)
${USAGE_ENVIRONMENT}`;

// ---- host -------------------------------------------------------------------------------------

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['node', `${process.version} (bench, server, and the agent in the machine)`],
    ['cgroups', CGROUP_V2 ? 'v2' : 'v1'],
    ['/tmp', `${await filesystemOf('/tmp')} (server data dir; the host file baseline)`],
    ['host head', (await sh('head', ['--version']).catch(() => '?')).split('\n')[0]],
  ]);
}

// ---- the benchmark ------------------------------------------------------------------------------

async function bench(opts, templatesDir) {
  const { R, push } = samples();
  const info = {};
  await readClockTicks();

  makeRunDir(S);
  await startServerProcess(S, templatesDir, { args: [MARK] });
  const machine = await createMachineViaSdk(S, {
    timeout: MACHINE_TIMEOUT_S,
    ...(opts.vcpus === undefined ? {} : { vcpus: opts.vcpus }),
  });
  const m = await api('GET', `/v1/machines/${machine.id}`);
  info.vcpus = m.vcpus;
  info.memoryMb = m.memory_mb;
  info.machineHead = (await machine.commands.run('head', { args: ['--version'] })).stdout.split('\n')[0];
  info.machineFs = (
    await machine.commands.run('bash', {
      args: ['-c', 'findmnt -n -o FSTYPE,SOURCE -T /workspace || df -T /workspace | tail -1'],
    })
  ).stdout.trim();
  const server = serverTarget();
  const agent = agentTarget(machine.id);
  const agentPidOnHost = agentPid(machine.id);
  const hostBefore = load.sample(machine.id);
  printRun(S, [
    [
      'machine',
      `${machine.id}: ${info.vcpus} vCPU (CFS quota), ${info.memoryMb} MB, template ${TEMPLATE}; agent pid ${agentPidOnHost ?? '?'} on the host`,
    ],
    ['machine head', info.machineHead],
    [
      'settings',
      `stream ${opts.streamMiB} MiB × ${opts.streamRuns}, file 1 MiB × ${opts.fileIterations}, ` +
        `pty × ${opts.ptyIterations}, warm-up ${opts.warmup} per series`,
    ],
  ]);

  // The three series one after the other, each on every path (inside/stream.mjs, files.mjs, pty.mjs).
  const series = { machine, server, agent, agentPidOnHost, opts, push, info };
  const bytes = await measureStream(series);
  await measureFiles(series);
  await measurePty(series);

  load.add(hostBefore, load.sample(machine.id));
  info.load = load.summary();
  await killMachineViaSdk(S, machine);
  return { R, info, opts, bytes };
}

runBench({
  script: 'bench/inside.mjs',
  usage: USAGE,
  options: {
    streamMiB: ['stream-mib', 256, 1],
    streamRuns: ['stream-runs', 15, 1],
    fileIterations: ['file-iterations', 200, 1],
    ptyIterations: ['pty-iterations', 1000, 1],
    warmup: ['warmup', 1, 0],
    vcpus: ['vcpus', undefined, 1],
  },
  preflight: templateHas('usr', 'bin', 'head'),
  title: 'Nullspace inside-a-machine benchmark',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machine(s) checked: no runc container, mount, loop device, netns or cgroup left;` +
    ' server stopped, host processes gone, temp dir removed',
});
