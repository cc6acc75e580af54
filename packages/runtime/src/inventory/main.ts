/**
 * `node packages/runtime/dist/inventory/main.js [--json] [--machines-dir DIR --runc-root DIR
 * [--volumes-dir DIR]] [--machine ID]`: prints what Nullspace machines hold on this host, one line
 * per resource (see describeResources), or as JSON. Without directories: host-wide, every
 * server's machines (what scripts/host-leftovers.sh records before and after the test suite).
 */
import { parseArgs } from 'node:util';
import { type RuntimeDirs, describeResources, inventory } from './inventory.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    'machines-dir': { type: 'string' },
    'runc-root': { type: 'string' },
    'volumes-dir': { type: 'string' },
    machine: { type: 'string' },
  },
});

const machinesDir = values['machines-dir'];
const runcRoot = values['runc-root'];
if ((machinesDir === undefined) !== (runcRoot === undefined)) {
  process.stderr.write('--machines-dir and --runc-root go together\n');
  process.exit(2);
}
const scope: RuntimeDirs | 'host' =
  machinesDir !== undefined && runcRoot !== undefined
    ? {
        machinesDir,
        runcRoot,
        ...(values['volumes-dir'] !== undefined ? { volumesDir: values['volumes-dir'] } : {}),
      }
    : 'host';
const found = await inventory(scope, values.machine !== undefined ? { machineId: values.machine } : {});
if (values.json) process.stdout.write(`${JSON.stringify(found, null, 2)}\n`);
else for (const line of describeResources(found)) process.stdout.write(`${line}\n`);
