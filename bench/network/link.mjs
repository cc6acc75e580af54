/** The host's end of a machine's link, read from the host's interfaces. */
import os from 'node:os';
import { readText } from '../lib.mjs';

function ipv4ToNumber(a) {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}
function numberToIpv4(n) {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/**
 * The host's end of the machine's link: the interface holding the address just below the machine's
 * (the host's end) and the one just above it (the preview source: what the server connects from,
 * redirected in the machine to its 127.0.0.1). Read from the host's interfaces, not assumed.
 */
export function hostLink(machineAddr) {
  const n = ipv4ToNumber(machineAddr);
  const want = { hostAddr: numberToIpv4(n - 1), previewAddr: numberToIpv4(n + 1) };
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    const mine = (addrs ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address);
    if (mine.includes(want.hostAddr))
      return {
        ifname: name,
        hostAddr: want.hostAddr,
        previewAddr: mine.includes(want.previewAddr) ? want.previewAddr : undefined,
      };
  }
  return undefined;
}

/** A host interface's index, or undefined once it is gone (so a later one of the same name is not ours). */
export function ifindexOf(name) {
  const text = readText(`/sys/class/net/${name}/ifindex`);
  return text === undefined ? undefined : Number(text);
}
