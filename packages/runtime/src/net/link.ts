import type { EgressSpec } from '@nullspace/protocol';
import { host } from '../exec.js';
import { type MachineLink, renderEgressProgram } from './egress-rules.js';

/**
 * A machine's link to the host: a veth pair, the host end (`hostIf`) in the host's namespace, the
 * other moved into the machine's namespace as `eth0`, a /30 between them, the machine's default
 * route via the host, forwarding on for the host end only (the global `ip_forward` is untouched).
 * The egress rules are loaded before the link comes up, so the machine is never reachable or
 * reaching anything unruled (docs/research/network.md: without its table a machine reached host
 * listeners).
 */
export async function setUpLink(netns: string, link: MachineLink, policy: EgressSpec): Promise<void> {
  const peer = `${link.hostIf}p`;
  await applyEgress(link, policy);
  const steps: string[][] = [
    ['ip', 'link', 'add', link.hostIf, 'type', 'veth', 'peer', 'name', peer],
    ['ip', 'link', 'set', peer, 'netns', netns],
    ['ip', '-n', netns, 'link', 'set', peer, 'name', 'eth0'],
    ['ip', 'addr', 'add', `${link.hostAddr}/30`, 'dev', link.hostIf],
    ['ip', '-n', netns, 'addr', 'add', `${link.machineAddr}/30`, 'dev', 'eth0'],
    ['sysctl', '-qw', `net.ipv4.conf.${link.hostIf}.forwarding=1`],
    ['ip', 'link', 'set', link.hostIf, 'up'],
    ['ip', '-n', netns, 'link', 'set', 'eth0', 'up'],
    ['ip', '-n', netns, 'route', 'add', 'default', 'via', link.hostAddr],
  ];
  for (const [file, ...args] of steps) await host(file as string, args);
}

/**
 * Puts `policy` in force for the machine: one nftables transaction that replaces its table. If it
 * fails nothing changed, so a caller tightening the policy must then fall back to `denyAll`.
 */
export async function applyEgress(link: MachineLink, policy: EgressSpec): Promise<void> {
  await host('nft', ['-f', '-'], { input: renderEgressProgram(link, policy) });
}

/** The fail-closed fallback: the machine reaches nothing (its replies and anti-spoofing stay). */
export async function denyAll(link: MachineLink): Promise<void> {
  await applyEgress(link, { mode: 'deny_all', allow_cidrs: [], deny_cidrs: [], locked: true });
}

/** Removes the link and the machine's table. Idempotent. */
export async function tearDownLink(link: MachineLink): Promise<void> {
  await host('ip', ['link', 'del', link.hostIf]).catch(() => undefined);
  await host('nft', ['delete', 'table', 'ip', link.table]).catch(() => undefined);
}
