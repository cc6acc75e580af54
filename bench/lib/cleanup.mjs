/**
 * A run's cleanup: its machines through the API and its server, then what the runtime may have left
 * (torn down and checked with the runtime's host-resource inventory), mounts and loop devices under
 * the temp dir, and the processes it started. What is still there is a leak.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describeResources, inventory, machineIds, mountsUnder, tearDownMachine } from '@nullspace/runtime';
import { cgroupDirsFor, runcList } from './cgroups.mjs';
import { sh } from './common.mjs';
import { processLeaks } from './processes.mjs';
import { apiRequest, stopServerProcess } from './server.mjs';

/** Kills through the API every machine the server knows that is not killed (fork children too). */
async function killMachinesViaApi(S, note) {
  if (!S.server?.url) return;
  try {
    const page = await apiRequest(S.server, 'GET', '/v1/machines?limit=1000');
    for (const m of page.items ?? []) {
      S.machineIds.add(m.id);
      if (m.status !== 'killed') S.live.add(m.id);
    }
  } catch (err) {
    note('list machines')(err);
  }
  for (const id of [...S.live]) {
    await apiRequest(S.server, 'DELETE', `/v1/machines/${id}`).then(
      () => S.live.delete(id),
      note(`kill ${id} via the API`),
    );
  }
}

/**
 * The first step of a cleanup once there is a server: the machines through the API, then the server
 * (its process, by pid; or `close()` when it runs in the bench's own process).
 */
export async function stopServerAndMachines(S, note) {
  if (!S.server) return;
  await killMachinesViaApi(S, note);
  if (S.server.child) await stopServerProcess(S.server).catch(note('stop server'));
  else await S.server.close().catch(note('server close'));
}

/**
 * The last step of a cleanup, once the server is stopped: the runtime's leftovers (cleanUpRuntime,
 * with `extraRoots`, from the runtime's inventory), then the processes (processLeaks: the server's, the run's children, any
 * carrying `mark`). Resolves with `{ leaks, checked }`; nothing to do before the temp dir is made.
 */
export async function cleanUpRun(S, note, { mark, extraRoots = [] } = {}) {
  if (!S.tmp) return { leaks: [], checked: 0 };
  const { leaks, checked } = await cleanUpRuntime(S, note, extraRoots);
  leaks.push(...processLeaks({ server: S.server?.child, children: S.children, mark }));
  return { leaks, checked };
}

/**
 * Removes what the runtime may have left, then checks that nothing is: once the server is stopped.
 * Machine roots: the server's (`<dataDir>/machines` + `<dataDir>/runc` + `<dataDir>/volumes`, ids
 * `S.machineIds`), then each of `extraRoots` with `machinesDir` (`{ root, machinesDir, ids }`, a
 * runc root and the machine directories beside it); their machines are torn down from the
 * runtime's inventory, as the driver's destroy does, and checked with it. `extraRoots` without
 * `machinesDir` hold plain runc containers (cgroups `<id>`): deleted with runc, checked with
 * `runc list` and their cgroups.
 *
 * Then the mounts under the temp dir (deepest first); the temp dir is removed unless something is
 * still mounted in it. Returns the leaks (one line each: whatever the inventory still finds, a
 * runc container, a mount or loop device under the temp dir, the temp dir, a plain container's
 * cgroup) and how many ids it checked.
 */
async function cleanUpRuntime(S, note, extraRoots = []) {
  const server = {
    dirs: {
      machinesDir: join(S.dataDir, 'machines'),
      runcRoot: join(S.dataDir, 'runc'),
      volumesDir: join(S.dataDir, 'volumes'),
    },
    ids: S.machineIds,
  };
  const machineRoots = [
    server,
    ...extraRoots
      .filter((r) => r.machinesDir)
      .map((r) => ({ dirs: { machinesDir: r.machinesDir, runcRoot: r.root }, ids: r.ids })),
  ];
  const plainRoots = extraRoots.filter((r) => !r.machinesDir);
  for (const { dirs, ids } of machineRoots) {
    for (const id of await machineIds(dirs)) ids.add(id);
    for (const id of ids)
      await tearDownMachine(dirs, id, { keepFiles: false }).catch(note(`tear down ${id}`));
  }
  for (const { root, ids } of plainRoots) {
    for (const id of await runcList(root).catch(() => [])) {
      ids.add(id);
      await sh('runc', ['--root', root, 'delete', '--force', id]).catch(note(`runc delete ${id}`));
    }
  }
  for (const m of await mountsUnder(S.tmp)) {
    await sh('umount', [m]).catch(() => sh('umount', ['-l', m]).catch(note(`umount ${m}`)));
  }

  const leaks = [];
  const listed = new Set();
  for (const { dirs, ids } of machineRoots) {
    const found = await inventory(dirs, { ids });
    for (const r of found) if (r.kind === 'mount') listed.add(r.path);
    for (const r of found) if (r.kind === 'loop-device') listed.add(r.backingFile);
    leaks.push(...describeResources(found));
  }
  for (const { root } of plainRoots) {
    for (const id of await runcList(root).catch(() => [])) leaks.push(`runc container ${id} (root ${root})`);
  }
  const mounts = await mountsUnder(S.tmp);
  leaks.push(...mounts.filter((m) => !listed.has(m)).map((m) => `mount ${m}`));
  const loops = (
    await sh('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE']).catch(() => '')
  )
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([, file]) => file?.startsWith(`${S.tmp}/`) && !listed.has(file));
  leaks.push(...loops.map(([dev, file]) => `loop device ${dev} on ${file}`));
  if (mounts.length === 0) await rm(S.tmp, { recursive: true, force: true }).catch(note(`rm ${S.tmp}`));
  if (existsSync(S.tmp)) leaks.push(`temp dir ${S.tmp}`);
  for (const { ids } of plainRoots) {
    for (const id of ids) leaks.push(...cgroupDirsFor(id).map((d) => `cgroup ${d}`));
  }
  const checked = [...machineRoots, ...plainRoots].reduce((sum, r) => sum + r.ids.size, 0);
  return { leaks, checked };
}
