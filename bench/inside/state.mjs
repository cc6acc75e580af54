/**
 * Everything one run of the inside bench made, and how it is torn down: the run's state, the mark
 * in its host processes' command lines, and the cleanup that runs on every exit path.
 */
import { apiRequest, cleanUpRun, killChildren, runState, stopServerAndMachines } from '../lib.mjs';

/** In every process the bench starts on the host, so the leak check can find (only) its own. */
export const MARK = `nsbench-inside-${process.pid}`;

/**
 * Everything the bench made (see runState); the server is a child process (its own event loop, so
 * it does not share the bench's). Its host processes are ChildProcesses or node-pty terminals (both
 * have pid and kill). Besides: the WebSockets we opened, closed before the machines are killed.
 */
export const S = runState({ sockets: new Set() });

/** One JSON request to the server with the API key (fetch); resolves with the parsed body. */
export const api = (method, path, body) => apiRequest(S.server, method, path, body);

export async function cleanup(note) {
  for (const ws of S.sockets) ws.terminate();
  // 1. Host processes we started, by pid.
  await killChildren(S.children, note);
  // 2. Machines through the API, then the server (by its pid).
  await stopServerAndMachines(S, note);
  // 3. Runtime leftovers (containers in the server's runc root, network namespaces, mounts), then
  //    the check.
  return cleanUpRun(S, note, { mark: MARK });
}
