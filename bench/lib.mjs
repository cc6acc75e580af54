/**
 * What the benches share, in one import: each part lives in its own module under bench/lib/ (see
 * there); the benches import from here. Plain ESM like the benches; see bench/README.md.
 */
export { CGROUP_V2, machineMemoryBytes, machinePids, runcList } from './lib/cgroups.mjs';
export { cleanUpRun, stopServerAndMachines } from './lib/cleanup.mjs';
export {
  DEFAULT_TEMPLATES_DIR,
  MACHINE_TIMEOUT_S,
  MB,
  MiB,
  REPO_ROOT,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  progress,
  sh,
  timed,
} from './lib/common.mjs';
export {
  cpuAdd,
  cpuSnapshot,
  hostLoad,
  machineCpu,
  processCpuMs,
  readClockTicks,
  selfCpuMs,
} from './lib/cpu.mjs';
export { filesystemOf, meminfo, printHost, toolVersion } from './lib/host.mjs';
export {
  cmdline,
  firstLine,
  killChildren,
  pidGone,
  pidsWith,
  procText,
  readText,
  rssBytes,
  waitGone,
} from './lib/processes.mjs';
export { checkInterrupted, parseIntOptions, runBench, templateHas } from './lib/run.mjs';
export {
  createMachineViaApi,
  createMachineViaSdk,
  killMachineViaApi,
  killMachineViaSdk,
  makeRunDir,
  runState,
  trackMachine,
} from './lib/run-state.mjs';
export { ApiError, apiRequest, serverConfig, startServerProcess } from './lib/server.mjs';
export {
  RATE_COLUMNS,
  fmt,
  latencyRow,
  percent,
  printConditions,
  printHints,
  printLatencyTable,
  printRun,
  printTable,
  rateCells,
  rateOf,
  samples,
  shuffled,
  signed,
  stats,
  statsOf,
  verdict,
} from './lib/tables.mjs';
