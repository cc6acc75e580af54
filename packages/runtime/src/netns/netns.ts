import { existsSync } from 'node:fs';
import { host } from '../exec.js';

/**
 * A machine's network namespace, created by the host (`ip netns add`, in the link's set-up batch:
 * net/link.ts linkSetUpSteps) and bound at /run/netns/NAME so it outlives any process: the machine
 * joins it by path, the host can configure it from outside (links, addresses, nftables) and CRIU
 * can treat it as external on checkpoint.
 */
export const NETNS_DIR = '/run/netns';

export function netnsName(machineId: string): string {
  return `ns-${machineId}`;
}

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** Deletes the namespace. Idempotent. */
export async function deleteNetns(name: string): Promise<void> {
  if (existsSync(netnsPath(name))) await host('ip', ['netns', 'delete', name]);
}
