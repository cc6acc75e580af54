/**
 * The comparison bench's Podman: every call with the run's own storage, state, runc root and
 * cgroup parent (under the run's temp dir, nothing of the host's podman state), containers with
 * `--network none`, and an image imported from the base template's root filesystem (never pulled).
 * Its cleanup removes every container and the image, then checks that nothing is left: containers,
 * runc state, conmon processes, cgroups, the host paths Podman makes on first use.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { pidsWith, runcList, sh } from '../lib.mjs';
import { cgroupDirsFor } from '../lib/cgroups.mjs';

/** Paths Podman makes on the host on first use whatever `--root` says (its blob cache, a CNI lock). */
const HOST_PATHS = ['/var/lib/containers', '/etc/cni/net.d/cni.lock'];

/** A hard limit of this process from /proc/self/limits (`Max open files`, …). */
const hardLimit = (name) =>
  Number(new RegExp(`^${name}\\s+\\S+\\s+(\\d+)`, 'm').exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]);

/**
 * Podman's defaults (RLIMIT_NOFILE 1048576, RLIMIT_NPROC the host's maximum) and even 65536 open
 * files are refused by runc here ("error setting rlimit type 7/6: operation not permitted"): open
 * files up to this process's own hard limit, and 4096 processes.
 */
const ulimits = () => {
  const nofile = hardLimit('Max open files');
  return ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', 'nproc=4096:4096'];
};

/** A run's Podman, under `dir` (made by the caller, removed with the run's temp dir). */
export function makePodman(dir) {
  const P = {
    dir,
    root: join(dir, 'storage'),
    runRoot: join(dir, 'run'),
    runcRoot: join(dir, 'runc'),
    cgroupParent: `nsbench-compare-${process.pid}`,
    image: `localhost/nsbench-compare:${process.pid}`,
    containers: new Set(),
    hostPathsBefore: new Set(HOST_PATHS.filter((p) => existsSync(p))),
    imported: false,
  };
  const global = [
    '--root',
    P.root,
    '--runroot',
    P.runRoot,
    '--tmpdir',
    join(dir, 'libpod'),
    '--network-config-dir',
    join(dir, 'networks'),
    '--volumepath',
    join(dir, 'volumes'),
    '--cgroup-manager=cgroupfs',
    '--runtime',
    'runc',
    '--runtime-flag',
    `root=${P.runcRoot}`,
    '--events-backend=file',
    '--storage-driver',
    'overlay',
  ];
  /** `podman <global> …args`; resolves with its stdout. */
  P.podman = (args, opts = {}) => sh('podman', [...global, ...args], { timeoutMs: 120_000, ...opts });

  /** Imports the template's rootfs as the run's image (`tar -c | podman import -`). */
  P.importRootfs = (rootfs) =>
    new Promise((resolve, reject) => {
      const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const imp = spawn('podman', [...global, 'import', '-q', '-', P.image], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      P.imported = true;
      tar.stdout.pipe(imp.stdin);
      let err = '';
      tar.stderr.on('data', (d) => {
        err += d;
      });
      imp.stderr.on('data', (d) => {
        err += d;
      });
      imp.stdout.resume();
      let tarCode;
      tar.once('exit', (code) => {
        tarCode = code;
      });
      imp.once('error', reject);
      imp.once('exit', (code) => {
        if (code === 0 && tarCode === 0) resolve();
        else reject(new Error(`tar | podman import: tar ${tarCode}, podman ${code}: ${err.trim()}`));
      });
    });

  /** `podman run -d` of the image with `--network none`, named `name`, running `cmd`. */
  P.run = async (name, cmd) => {
    P.containers.add(name);
    await P.podman([
      'run',
      '-d',
      '--pull',
      'never',
      '--network',
      'none',
      '--cgroup-parent',
      `/${P.cgroupParent}`,
      ...ulimits(),
      '--name',
      name,
      P.image,
      ...cmd,
    ]);
  };
  P.exec = (name, cmd) => P.podman(['exec', name, ...cmd]);
  P.remove = async (name) => {
    await P.podman(['rm', '-f', '-t', '0', name]);
    P.containers.delete(name);
  };
  return P;
}

/**
 * Removes the run's containers and image, then lists what is left: containers (podman's view and
 * runc's), conmon or container processes (their command lines carry the run's dir), cgroups under
 * the run's parent (removed when empty), and the host paths Podman made that were not there
 * before (removed). Run before the temp dir goes (its mounts are the run's cleanup's).
 */
export async function cleanUpPodman(P, note) {
  if (!P) return [];
  const leaks = [];
  if (existsSync(P.root)) {
    const ids = (await P.podman(['ps', '-a', '-q']).catch(note('podman ps'))) ?? '';
    for (const id of ids.split('\n').filter(Boolean))
      await P.podman(['rm', '-f', '-t', '0', id]).catch(note(`podman rm ${id}`));
    if (P.imported) await P.podman(['rmi', '-f', P.image]).catch(note('podman rmi'));
    const left = ((await P.podman(['ps', '-a', '-q']).catch(() => '')) ?? '').split('\n').filter(Boolean);
    leaks.push(...left.map((id) => `podman container ${id}`));
    const images = ((await P.podman(['images', '-q']).catch(() => '')) ?? '').split('\n').filter(Boolean);
    leaks.push(...images.map((id) => `podman image ${id}`));
  }
  // Podman 4.3 leaves some containers (in a small check, those with an exec session) as a stopped
  // runc state after `rm -f`; their processes are gone: deleted here, and said so.
  const stale = await runcList(P.runcRoot).catch(() => []);
  for (const id of stale)
    await sh('runc', ['--root', P.runcRoot, 'delete', '--force', id]).catch(note(`runc delete ${id}`));
  if (stale.length > 0)
    console.log(
      `\nPodman left ${stale.length} stopped runc container state(s) after \`podman rm -f\`: deleted.`,
    );
  for (const id of await runcList(P.runcRoot).catch(() => [])) leaks.push(`runc container ${id} (podman's)`);
  for (const pid of pidsWith(P.dir)) leaks.push(`process ${pid} (podman's, under ${P.dir})`);
  for (const dir of cgroupDirsFor(P.cgroupParent)) {
    // Depth first: conmon's and each container's cgroup, then the parent; busy means a leak.
    const out = await sh('find', [dir, '-depth', '-type', 'd']).catch(() => '');
    for (const d of out.split('\n').filter(Boolean)) {
      try {
        rmdirSync(d);
      } catch (err) {
        leaks.push(`cgroup ${d} (${err.code})`);
      }
    }
  }
  for (const p of HOST_PATHS) {
    if (P.hostPathsBefore.has(p) || !existsSync(p)) continue;
    try {
      rmSync(p, { recursive: true, force: true });
    } catch (err) {
      note(`rm ${p}`)(err);
    }
    if (existsSync(p)) leaks.push(`host path ${p} (made by podman)`);
  }
  return leaks;
}
