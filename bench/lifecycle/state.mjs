/**
 * Everything one run of the lifecycle bench made, and how it is torn down: the run's state, the
 * mark in its host processes' command lines, the cleanup that runs on every exit path, and the
 * server's API as the bench calls it.
 */
import { existsSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  apiRequest,
  cleanUpRun,
  cmdline,
  killChildren,
  pidGone,
  runState,
  stopServerAndMachines,
  waitGone,
} from '../lib.mjs';

/** In every ballast process's command line, so the bench can recognise (and only kill) its own. */
export const MARK = `nsbench-lifecycle-${process.pid}`;

/**
 * Everything the bench made (see runState); the server is a child process (its own event loop, so
 * timings are not shared with the bench). Besides: reusable snapshots not deleted yet, the pids of
 * restored criu baseline processes (no longer node's children) and our freezer cgroup.
 */
export const S = runState({ snapshots: new Set(), restoredPids: new Set(), freezerDir: undefined });

/** Kills a pid only if it is still one of ours (its command line carries `needle`). */
async function killOurs(pid, needle) {
  if (pidGone(pid) || !cmdline(pid).includes(needle)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitGone(pid);
}

/** `extraRoots`: another server's machines to check too (see cleanUpRun). */
export async function cleanup(note, { extraRoots = [] } = {}) {
  // 1. Snapshots and machines through the API, then the server (by its pid).
  if (S.server?.url) {
    for (const id of [...S.snapshots]) {
      await api('DELETE', `/v1/snapshots/${id}`).then(
        () => S.snapshots.delete(id),
        note(`delete snapshot ${id}`),
      );
    }
  }
  await stopServerAndMachines(S, note);
  // 2. Baselines: thaw and empty our freezer cgroup, kill what we started, by pid.
  if (S.freezerDir && existsSync(S.freezerDir)) {
    try {
      writeFileSync(join(S.freezerDir, 'freezer.state'), 'THAWED');
    } catch (err) {
      note('thaw freezer cgroup')(err);
    }
  }
  for (const pid of S.restoredPids) await killOurs(pid, MARK).catch(note(`criu baseline process ${pid}`));
  await killChildren(S.children, note);
  if (S.freezerDir && existsSync(S.freezerDir)) {
    for (let i = 0; i < 50 && existsSync(S.freezerDir); i++) {
      try {
        rmdirSync(S.freezerDir);
      } catch (err) {
        if (i === 49) note(`rmdir ${S.freezerDir}`)(err);
        else await sleep(20);
      }
    }
  }
  // 3. Runtime leftovers (containers in the server's runc root, network namespaces, mounts), then
  //    the check.
  const { leaks, checked } = await cleanUpRun(S, note, { mark: MARK, extraRoots });
  if (S.freezerDir && existsSync(S.freezerDir)) leaks.push(`cgroup ${S.freezerDir}`);
  return { leaks, checked };
}

/** One JSON request to the server with the API key (see apiRequest). */
export const api = (method, path, body) => apiRequest(S.server, method, path, body);

export async function run(id, cmd, opts = {}) {
  const r = await api('POST', `/v1/machines/${id}/commands`, { cmd, ...opts });
  if (r.exit_code !== 0) throw new Error(`${cmd} in ${id} exited ${r.exit_code}: ${r.stderr}`);
  return r;
}

export function expectStatus(info, status, what) {
  if (info?.status !== status) throw new Error(`${what}: status ${info?.status}, expected ${status}`);
  return info;
}
