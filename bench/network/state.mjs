/**
 * Everything one run of the network bench made, and how it is torn down: the run's state, the mark
 * in its host processes' command lines, and the cleanup that runs on every exit path.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { apiRequest, cleanUpRun, killChildren, runState, sh, stopServerAndMachines } from '../lib.mjs';
import { ifindexOf } from './link.mjs';

/** In every process the bench starts on the host, so the leak check can find (only) its own. */
export const MARK = `nsbench-network-${process.pid}`;

/**
 * Everything the bench made (see runState): the server and the reference proxy are child
 * processes (the proxy is in `children`). Besides: the keep-alive client agents, destroyed first.
 */
export const S = runState({ agents: new Set(), links: [] });

/** One JSON request to the server with the API key (see apiRequest). */
export const api = (method, path, body) => apiRequest(S.server, method, path, body);

export async function cleanup(note) {
  for (const a of S.agents) a.destroy();
  // 1. Host processes we started (the reference proxy), by pid.
  await killChildren(S.children, note);
  // 2. Machines through the API, then the server (by its pid).
  await stopServerAndMachines(S, note);
  // 3. Runtime leftovers of our machines only (containers in our server's runc root, their network
  //    namespaces, mounts under our temp dir), then the check.
  const { leaks, checked } = await cleanUpRun(S, note, { mark: MARK });
  // 4. The host end of each machine's link goes with its network namespace, which the kernel
  //    dismantles a moment after the last reference goes. A namespace still held (by an orphaned
  //    TCP socket of the machine, retransmitting) keeps it: said, then deleted (only the same
  //    interface, by index: the name may be another server's by now).
  for (const l of S.links) {
    for (let i = 0; i < 40 && ifindexOf(l.name) === l.ifindex; i++) await sleep(50);
    if (ifindexOf(l.name) !== l.ifindex) continue;
    note(`veth ${l.name}`)(new Error('outlived its machine (its network namespace is still held); deleted'));
    await sh('ip', ['link', 'delete', l.name]).catch(note(`ip link delete ${l.name}`));
    if (ifindexOf(l.name) === l.ifindex) leaks.push(`veth ${l.name}`);
  }
  return { leaks, checked };
}
