/**
 * Where the CPU goes while the network bench measures: the main threads of the two processes a
 * request can pass through on the host (the server, the reference proxy), and the host's load.
 */
import { cpuSnapshot, hostLoad, procText, processCpuMs, selfCpuMs } from '../lib.mjs';
import { S } from './state.mjs';

/**
 * Time on a CPU (ms, nanosecond resolution) of a process's main thread, from its schedstat: where
 * Node runs JavaScript and does its socket I/O. 0 once it is gone.
 */
export function mainThreadCpuMs(pid) {
  const text = pid === undefined ? undefined : procText(pid, `task/${pid}/schedstat`);
  return text ? Number(text.split(' ')[0]) / 1e6 : 0;
}

/**
 * CPU time of every party (ms) at one moment: the client (this process), the two hops' main threads
 * and their whole processes (main thread + V8's helper threads, where concurrent marking of a full
 * garbage collection runs, + libuv's pool; clock-tick resolution).
 */
export const cpuNow = (machineId) =>
  cpuSnapshot(machineId, {
    client: selfCpuMs,
    server: () => mainThreadCpuMs(S.server.child.pid),
    serverAll: () => processCpuMs(S.server.child.pid),
    reference: () => mainThreadCpuMs(S.reference?.child.pid),
    referenceAll: () => processCpuMs(S.reference?.child.pid),
  });

/**
 * The host's load (see hostLoad); the reference proxy is ours too. Interrupt and softirq time, where
 * the kernel moves our packets, is left out of the host's busy time.
 */
export const load = hostLoad(S, { interrupts: false, others: () => processCpuMs(S.reference?.child.pid) });
