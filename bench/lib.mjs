/**
 * What the benches share, in one import: each part lives in its own module under bench/lib/ (see
 * there); the benches import from here. What only bench/lib's own modules use is left out
 * (MACHINE_CGROUP_PARENT, cgroupDirsFor, processLeaks, stopServerProcess). Plain ESM like the
 * benches; see bench/README.md.
 */
export { CGROUP_V2, machineMemoryBytes, machinePids, runcList } from './lib/cgroups.mjs';
export * from './lib/cleanup.mjs';
export * from './lib/common.mjs';
export * from './lib/cpu.mjs';
export * from './lib/host.mjs';
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
export * from './lib/run.mjs';
export * from './lib/run-state.mjs';
export { ApiError, apiRequest, serverConfig, startServerProcess } from './lib/server.mjs';
export * from './lib/tables.mjs';
