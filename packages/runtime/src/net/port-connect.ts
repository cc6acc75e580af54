import net from 'node:net';
import { CodedError } from '@nullspace/protocol';
import type { MachineLink } from './egress-rules.js';

/**
 * Opens a TCP connection from the host to `port` of a machine. First from the link's preview
 * address, which the machine's namespace redirects to its 127.0.0.1 (so services listening on
 * loopback only, or on all addresses, answer); if that is refused, directly to the machine's
 * address from the host's (a service bound to that address alone). `onread`: the socket reads into
 * that buffer and hands each read to its callback instead of emitting `data` (see `net.connect`).
 */
export async function connectToMachinePort(
  link: MachineLink,
  port: number,
  timeoutMs = 5000,
  onread?: net.OnReadOpts,
): Promise<net.Socket> {
  try {
    return await connectFrom(link.previewAddr, link.machineAddr, port, timeoutMs, onread);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw portError(link, port, err);
  }
  try {
    return await connectFrom(link.hostAddr, link.machineAddr, port, timeoutMs, onread);
  } catch (err) {
    throw portError(link, port, err);
  }
}

function connectFrom(
  localAddress: string,
  host: string,
  port: number,
  timeoutMs: number,
  onread: net.OnReadOpts | undefined,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, localAddress, noDelay: true, ...(onread ? { onread } : {}) });
    const timer = setTimeout(() => {
      socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function portError(link: MachineLink, port: number, err: unknown): CodedError {
  const code = (err as NodeJS.ErrnoException).code;
  return new CodedError(
    'unavailable',
    code === 'ECONNREFUSED'
      ? `nothing listens on port ${port} in the machine`
      : `port ${port} of the machine did not answer (${code ?? String(err)})`,
    {
      port,
      reason: code === 'ECONNREFUSED' ? 'connection_refused' : 'unreachable',
      address: link.machineAddr,
    },
    { cause: err },
  );
}
