import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { agentBundleDir } from '@nullspace/agent';
import { RuncDriver, host } from '@nullspace/runtime';
import { driverConformance } from './driver-conformance.js';
import { TEMPLATES_DIR, cannotRunMachines, leftovers } from './harness.js';

// Drivers and why any is skipped:
//   runc — runs wherever machines can (root + base template); required in CI.
const skip = cannotRunMachines();
if (skip && process.env.CI) throw new Error(`driver conformance cannot run in CI: ${skip}`);

driverConformance(
  'runc',
  async () => {
    const dir = mkdtempSync('/tmp/nsd-');
    return {
      driver: new RuncDriver({
        machinesDir: join(dir, 'machines'),
        runcRoot: join(dir, 'runc'),
        agentHomeDir: agentBundleDir(),
      }),
      templateRootfs: join(TEMPLATES_DIR, 'base', 'rootfs'),
      leftovers: (id) => leftovers(dir, [id]),
      crash: async (id) => {
        await host('runc', ['--root', join(dir, 'runc'), 'kill', '--all', id, 'KILL']);
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  skip,
);
