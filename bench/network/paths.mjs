/**
 * The paths a request to the machine's service can take (the preview proxy, straight to the
 * machine's address, the reference proxies, the server answering /healthz itself) and the two
 * series the network bench measures on them: latency in both connection modes, and throughput.
 */
import { MiB, checkInterrupted, cpuAdd, shuffled } from '../lib.mjs';
import { keepAliveAgent, send } from './client.mjs';
import { cpuNow, mainThreadCpuMs } from './cpu.mjs';
import { SERVICE_PORT } from './service.mjs';
import { S } from './state.mjs';

/** Latency paths (each in both connection modes), in the order they are printed. */
export const LATENCY_PATHS = ['proxy', 'direct', 'source', 'relay', 'refFresh', 'refPooled', 'healthz'];
export const TRANSFER_PATHS = ['proxy', 'direct', 'relay', 'refFresh'];

/**
 * The request target of every path to machine `A`'s service (`source` only where its link has a
 * preview source address), once the server and the reference proxy run.
 */
export function pathTargets(A) {
  return {
    proxy: A.proxy,
    direct: { name: 'direct', host: A.addr, port: SERVICE_PORT },
    source: A.link.previewAddr
      ? {
          name: 'direct from the preview source',
          host: A.addr,
          port: SERVICE_PORT,
          localAddress: A.link.previewAddr,
        }
      : undefined,
    relay: { name: 'reference TCP relay', host: '127.0.0.1', port: S.reference.relay },
    refFresh: { name: 'reference proxy (fresh)', host: '127.0.0.1', port: S.reference.fresh },
    refPooled: { name: 'reference proxy (pooled)', host: '127.0.0.1', port: S.reference.pooled },
    healthz: { name: 'server /healthz', host: '127.0.0.1', port: S.server.port, path: '/healthz' },
  };
}

/**
 * 1. Latency: GET /small on every path of `T` in both modes once per iteration, in a random order
 * (`push` keeps the samples); the CPU of the process in the middle goes to `info.middleCpu`.
 */
export async function measureLatency(A, T, opts, { push, info, phase }) {
  phase(
    `latency: GET /small × ${opts.iterations} (+${opts.warmup * 20}) per path, new connection and keep-alive`,
  );
  const agents = Object.fromEntries(LATENCY_PATHS.map((k) => [k, keepAliveAgent()]));
  const series = LATENCY_PATHS.filter((k) => T[k]).flatMap((k) => [
    [`${k}.new`, T[k], false],
    [`${k}.keep`, T[k], agents[k]],
  ]);
  // The CPU of the process in the middle (the server, or the reference proxy), read around each
  // request, outside the timed window.
  const middle = { proxy: S.server.child.pid, healthz: S.server.child.pid };
  for (const k of ['relay', 'refFresh', 'refPooled']) middle[k] = S.reference.child.pid;
  info.middleCpu = {};
  for (let i = -opts.warmup * 20; i < opts.iterations; i++) {
    if (i % 50 === 0) checkInterrupted();
    for (const [key, t, agent] of shuffled(series)) {
      const pid = middle[key.split('.')[0]];
      const cpu0 = mainThreadCpuMs(pid);
      const { ms } = key.startsWith('healthz') ? await send(t, { agent }) : await A.expectSmall(t, { agent });
      if (i < 0) continue;
      push(key, ms);
      if (pid !== undefined) info.middleCpu[key] = (info.middleCpu[key] ?? 0) + mainThreadCpuMs(pid) - cpu0;
    }
  }
  for (const a of Object.values(agents)) {
    a.destroy();
    S.agents.delete(a);
  }
}

/**
 * 2. Throughput: downloads and uploads on every transfer path, in a random order, a new connection
 * each; the CPU of every party during each goes to `info.cpu`. Resolves with the bytes per transfer.
 */
export async function measureThroughput(A, T, opts, { push, info, phase }) {
  const bytes = opts.transferMiB * MiB;
  phase(`throughput: ${opts.transferMiB} MiB down and up × ${opts.transferRuns} (+${opts.warmup}) per path`);
  const transferTimeoutMs = Math.max(60_000, bytes / 1000); // ≥ 1 MB/s
  const transfers = TRANSFER_PATHS.flatMap((k) => [
    [
      `down.${k}`,
      () => send(T[k], { path: `/big?bytes=${bytes}`, countOnly: true, timeoutMs: transferTimeoutMs }),
    ],
    [
      `up.${k}`,
      () => send(T[k], { path: '/upload', method: 'POST', upload: bytes, timeoutMs: transferTimeoutMs }),
    ],
  ]);
  for (let i = -opts.warmup; i < opts.transferRuns; i++) {
    checkInterrupted();
    for (const [key, run] of shuffled(transfers)) {
      const before = cpuNow(A.id);
      const r = await run();
      const after = cpuNow(A.id);
      if (key.startsWith('down') && r.bytes !== bytes)
        throw new Error(`${key}: ${r.bytes} bytes, expected ${bytes}`);
      if (key.startsWith('up') && JSON.parse(r.body.toString()).received !== bytes)
        throw new Error(`${key}: the service received ${r.body.toString()}, expected ${bytes}`);
      if (i < 0) continue;
      push(key, r.ms);
      info.cpu[key] ??= {};
      cpuAdd(info.cpu[key], before, after);
    }
  }
  return bytes;
}
