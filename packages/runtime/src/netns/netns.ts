import { existsSync } from 'node:fs';
import { type Argv, host } from '../exec.js';

/**
 * A machine's network namespace, created by the host (`ip netns add`) and bound at
 * /run/netns/NAME so it outlives any process: the machine joins it by path, the host can configure
 * it from outside (links, addresses, nftables) and CRIU can treat it as external on checkpoint.
 * For now it holds only a loopback interface that is up: the machine reaches nothing else.
 */
export const NETNS_DIR = '/run/netns';

export function netnsName(machineId: string): string {
  return `ns-${machineId}`;
}

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** Host commands that create the namespace with its loopback up. */
export function createNetnsSteps(name: string): Argv[] {
  return [
    ['ip', 'netns', 'add', name],
    ['ip', '-n', name, 'link', 'set', 'lo', 'up'],
  ];
}

/** Deletes the namespace. Idempotent. */
export async function deleteNetns(name: string): Promise<void> {
  if (existsSync(netnsPath(name))) await host('ip', ['netns', 'delete', name]);
}
