/**
 * Where the CPU goes while the inside bench measures: the client (this process), the server, the
 * machine's agent and the rest of the machine, and the host's load.
 */
import { cmdline, cpuSnapshot, hostLoad, machinePids, processCpuMs, selfCpuMs } from '../lib.mjs';
import { S } from './state.mjs';

/**
 * The host's load (see hostLoad): the children this process reaped, counted as ours, are the host
 * `head` and the PTY's bash.
 */
export const load = hostLoad(S);

/** The agent's pid on the host: the node process running the agent's bundle in the machine's cgroup. */
export const agentPid = (id) =>
  machinePids(id).find(
    (pid) => /node\b.*agent\.[cm]js/.test(cmdline(pid)) && !cmdline(pid).includes('/init'),
  );

/** CPU time of every party (ms) at one moment: the bench (the client), the server, the agent. */
export const cpuNow = (machineId, agent) =>
  cpuSnapshot(machineId, {
    bench: selfCpuMs,
    server: () => processCpuMs(S.server.child.pid),
    agent: () => (agent === undefined ? Number.NaN : processCpuMs(agent)),
  });
