#!/usr/bin/env node
/**
 * The tenants' check in-process, without HTTP: what authenticating a key and checking a path's
 * machine id costs a request, for the operator's key and a tenant's, against the constant-time
 * comparison of one key alone (what every request paid before tenants). An in-memory database
 * with one machine; rounds of each in turn (so drift of the host hits all three alike), the median
 * round quoted. No root needed. `node bench/tenants-check.mjs [--calls N] [--rounds N]`.
 */
import { keyMatches } from '../packages/server/dist/api-key.js';
import { MachineStore } from '../packages/server/dist/store/machine-store.js';
import { SnapshotStore } from '../packages/server/dist/store/snapshot-store.js';
import { VolumeStore } from '../packages/server/dist/store/volume-store.js';
import { ApiKeys } from '../packages/server/dist/tenancy/keys.js';
import { Ownership } from '../packages/server/dist/tenancy/ownership.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const CALLS = arg('calls', 200_000);
const ROUNDS = arg('rounds', 7);

const store = new MachineStore(':memory:');
const operatorKey = `ns_${'x'.repeat(32)}`;
const keys = new ApiKeys(store.database, operatorKey);
const tenant = keys.create({ tenant: 'acme', name: null });
const id = 'mch_aaaaaaaaaaaaaaaaaaaa';
store.database
  .prepare(
    `INSERT INTO machines (id, execution_id, status, template, vcpus, memory_mb, disk_mb, cwd, envs, metadata,
       timeout, on_timeout, auto_resume, expires_at, created_at, updated_at, tenant)
     VALUES (?, 'exe_x', 'running', 'base', 1, 512, 2048, '/', '{}', '{}', 300, 'kill', 0, 1, 1, 1, 'acme')`,
  )
  .run(id);
const ownership = new Ownership({
  machines: store,
  snapshots: new SnapshotStore(store.database),
  volumes: new VolumeStore(store.database),
  templateOwner: () => ({ tenant: null }),
  poolOwner: () => undefined,
});
const params = { id };
const series = {
  'one key compared (before tenants)': () => keyMatches(operatorKey, operatorKey),
  "operator's key: authenticate + check": () =>
    ownership.check('getMachine', params, keys.authenticate(operatorKey)),
  "tenant's key: authenticate + check": () =>
    ownership.check('getMachine', params, keys.authenticate(tenant.key)),
  // What the check cost when it read the machine's whole record (JSON columns parsed) for its
  // tenant, as the first version did: kept as the comparison for MachineStore.ownerOf.
  "tenant's key, whole record read instead": () =>
    store.get(keys.authenticate(tenant.key)?.tenant === 'acme' ? id : '')?.tenant === 'acme',
};
const out = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, fn] of Object.entries(series)) {
    for (let i = 0; i < 2000; i++) fn();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) fn();
    out[name] ??= [];
    out[name].push(Number(process.hrtime.bigint() - t0) / CALLS / 1000);
  }
}
console.log(`µs a request: median of ${ROUNDS} rounds of ${CALLS} calls (min–max)`);
for (const [name, xs] of Object.entries(out)) {
  xs.sort((a, b) => a - b);
  const med = xs[Math.floor(xs.length / 2)];
  console.log(
    `  ${name.padEnd(40)} ${med.toFixed(2)}  (${xs[0].toFixed(2)}–${xs[xs.length - 1].toFixed(2)})`,
  );
}
store.close();
