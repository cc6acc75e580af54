/** A run's state (what it made, for cleanup), and the machines it creates and kills. */
import { chmodSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { Machine } from '@nullspace/sdk';
import { MACHINE_TIMEOUT_S, TEMPLATE } from './common.mjs';
import { apiRequest } from './server.mjs';

/**
 * Everything a run makes, so every exit path can undo it: the temp dir and the server's data dir
 * in it, the server, the machines (`live`: not killed yet; `machineIds`: every id the server made
 * for us, for the leak check) and the host processes started (`children`). `extra`: a bench's own.
 */
export function runState(extra = {}) {
  return {
    tmp: undefined,
    dataDir: undefined,
    server: undefined,
    live: new Set(),
    machineIds: new Set(),
    children: new Set(),
    ...extra,
  };
}

/** Makes the run's temp dir `/tmp/nsbench-XXXXXX` and names the server's data dir in it. */
export function makeRunDir(S) {
  S.tmp = mkdtempSync('/tmp/nsbench-');
  // Machines run as unprivileged host ids that pass through it to their directories (search only).
  chmodSync(S.tmp, 0o711);
  S.dataDir = join(S.tmp, 'data');
}

/** Notes a machine the server made for the run: live until killed, and checked for leaks at the end. */
export function trackMachine(S, id) {
  S.live.add(id);
  S.machineIds.add(id);
}

/**
 * Creates a machine through the API (`POST /v1/machines`: the template, MACHINE_TIMEOUT_S, then
 * `body`) and tracks it; resolves with the server's answer.
 */
export async function createMachineViaApi(S, body = {}) {
  const info = await apiRequest(S.server, 'POST', '/v1/machines', {
    template: TEMPLATE,
    timeout: MACHINE_TIMEOUT_S,
    ...body,
  });
  trackMachine(S, info.id);
  return info;
}

/** Kills a machine through the API (`DELETE /v1/machines/{id}`); it is no longer live. */
export async function killMachineViaApi(S, id) {
  await apiRequest(S.server, 'DELETE', `/v1/machines/${id}`);
  S.live.delete(id);
}

/**
 * Creates a machine through the SDK (`Machine.create`: the template, then `options`, with the run's
 * server's URL and API key) and tracks it; resolves with the SDK's Machine.
 */
export async function createMachineViaSdk(S, options = {}) {
  const machine = await Machine.create({
    template: TEMPLATE,
    ...options,
    apiUrl: S.server.url,
    apiKey: S.server.apiKey,
  });
  trackMachine(S, machine.id);
  return machine;
}

/** Kills a machine made with the SDK (`machine.kill()`); it is no longer live. */
export async function killMachineViaSdk(S, machine) {
  await machine.kill();
  S.live.delete(machine.id);
}
