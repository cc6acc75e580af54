import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { agentBundleDir } from '@nullspace/agent';
import {
  DEFAULT_CGROUP_PARENT,
  type HostResource,
  RuncDriver,
  type RuntimeDirs,
  VolumeImage,
  describeResources,
  host,
  inventory,
  machineIds,
  mountsUnder,
  tearDownMachine,
} from '@nullspace/runtime';
import { driverConformance } from './driver-conformance.js';
import { TEMPLATES_DIR, cannotRunMachines } from './harness.js';

// Drivers, and what each skips and why:
//   runc — runs wherever machines can (root + base template); required in CI; skips nothing.
const skip = cannotRunMachines();
if (skip && process.env.CI) throw new Error(`driver conformance cannot run in CI: ${skip}`);

driverConformance(
  'runc',
  async () => {
    const dir = mkdtempSync('/tmp/nsd-');
    const dirs: RuntimeDirs = { machinesDir: join(dir, 'machines'), runcRoot: join(dir, 'runc') };
    const workDir = join(dir, 'work');
    mkdirSync(workDir);
    const found = async (id: string, files: boolean) =>
      describeResources(
        (await inventory(dirs, { machineId: id })).filter(
          (r: HostResource) => (r.kind === 'machine-dir') === files,
        ),
      );
    let volumes = 0;
    return {
      newDriver: () => new RuncDriver({ ...dirs, agentHomeDir: agentBundleDir() }),
      templateRootfs: join(TEMPLATES_DIR, 'base', 'rootfs'),
      workDir,
      leftovers: (id) => found(id, false),
      files: (id) => found(id, true),
      crash: async (id) => {
        await host('runc', ['--root', dirs.runcRoot, 'kill', '--all', id, 'KILL']);
      },
      cpuPriority: async (id) => {
        // cgroup v1 cpu.shares (hybrid hosts: 2 is background), else v2 cpu.weight (1 is).
        const v1 = join('/sys/fs/cgroup/cpu', DEFAULT_CGROUP_PARENT, id, 'cpu.shares');
        if (existsSync(v1)) return Number(readFileSync(v1, 'utf8')) === 2 ? 'background' : 'normal';
        const v2 = join('/sys/fs/cgroup', DEFAULT_CGROUP_PARENT, id, 'cpu.weight');
        return Number(readFileSync(v2, 'utf8')) === 1 ? 'background' : 'normal';
      },
      makeVolume: async () => {
        const image = new VolumeImage(join(workDir, `volume-${volumes++}`));
        await image.create(512);
        return { root: image.mountPoint, remove: () => image.destroy() };
      },
      cleanup: async () => {
        // What a failed test left: never delete through a mount.
        for (const id of await machineIds(dirs)) await tearDownMachine(dirs, id, { keepFiles: false });
        for (const m of await mountsUnder(dir)) await host('umount', ['-l', m]);
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
  { skip },
);
