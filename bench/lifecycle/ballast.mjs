/**
 * The lifecycle bench's ballast: a python process holding ~100 MiB resident, in a machine (what
 * hibernation and snapshots have to write) or on the host (the criu baseline's process).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { MiB, fmt, pidsWith, rssBytes } from '../lib.mjs';
import { MARK, run } from './state.mjs';

export const BALLAST_MIB = 100;

/** A python that touches every page of BALLAST_MIB MiB, then sleeps; `tag` is in its command line. */
export const ballastPython = (tag) =>
  `import time; tag="${tag}"; b=bytearray(${BALLAST_MIB}*1024*1024); ` +
  '[b.__setitem__(i,1) for i in range(0,len(b),4096)]; time.sleep(1e9)';

/** Resident bytes of these processes together. */
const residentBytes = (pids) => pids.reduce((sum, pid) => sum + rssBytes(pid), 0);

/** Waits (at most 20 s) until `pids()` hold BALLAST_MIB MiB resident; resolves with their bytes. */
export async function waitRss(pids, what) {
  const deadline = performance.now() + 20_000;
  for (;;) {
    const rss = residentBytes(pids());
    if (rss >= BALLAST_MIB * MiB) return rss;
    if (performance.now() > deadline)
      throw new Error(`${what}: resident ${fmt(rss / MiB)} MiB after 20 s, expected ≥ ${BALLAST_MIB}`);
    await sleep(50);
  }
}

/** The ballast processes of one machine, seen from the host (same kernel). */
const machineBallastPids = (machineId) => () => pidsWith(`${MARK}-${machineId}`);

/** What the ballast of one machine holds resident now (bytes). */
export const machineBallastRss = (machineId) => residentBytes(machineBallastPids(machineId)());

/** Starts the ballast in the machine, in the background; resolves once it is all resident. */
export async function startMachineBallast(machineId) {
  const py = ballastPython(`${MARK}-${machineId}`);
  await run(machineId, `nohup python3 -c '${py}' >/dev/null 2>&1 </dev/null &`, { shell: true });
  return waitRss(machineBallastPids(machineId), `ballast in ${machineId}`);
}
