/**
 * The network bench's machine: created with the service running in it, its link read from the
 * host, a preview grant, and a check of every answer its service gives.
 */
import { randomBytes } from 'node:crypto';
import { cmdline, createMachineViaApi, machinePids } from '../lib.mjs';
import { send } from './client.mjs';
import { hostLink, ifindexOf } from './link.mjs';
import { SERVICE_PORT, serviceScript } from './service.mjs';
import { MARK, S, api } from './state.mjs';

/** Writes the service into the machine, starts it in the background, waits for its port. */
async function startService(id, tag) {
  const res = await fetch(`${S.server.url}/v1/machines/${id}/files?path=${encodeURIComponent('/srv/s.js')}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${S.server.apiKey}`, 'content-type': 'application/octet-stream' },
    body: serviceScript(tag),
  });
  if (!res.ok) throw new Error(`PUT /srv/s.js: HTTP ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  // The mark in its command line: the leak check would find the service if it outlived its machine.
  await api('POST', `/v1/machines/${id}/commands`, {
    cmd: `/.nullspace/bin/node /srv/s.js ${MARK} >/tmp/s.log 2>&1`,
    shell: true,
    background: true,
  });
  await api('POST', `/v1/machines/${id}/ports/${SERVICE_PORT}/wait`, { timeout_ms: 20_000 });
}

/** The service's host pid: the process in the machine's cgroup running /srv/s.js. */
export const servicePidOnHost = (id) =>
  machinePids(id).find((pid) => /^\S*node \/srv\/s\.js/.test(cmdline(pid)));

/**
 * A machine (on_timeout pause, auto_resume) with the service running, its link read from the
 * host, a preview grant, and the preview proxy as a request target. `expectSmall(t)` sends GET
 * /small to target `t` and checks the answer: this machine's service, always the same process.
 */
export async function serviceMachine(vcpus) {
  const { id } = await createMachineViaApi(S, {
    on_timeout: 'pause',
    auto_resume: true,
    ...(vcpus === undefined ? {} : { vcpus }),
  });
  const tag = randomBytes(6).toString('hex');
  await startService(id, tag);
  const m = await api('GET', `/v1/machines/${id}`);
  const addr = m.network?.address;
  if (!addr) throw new Error(`machine ${id} has no network.address`);
  const link = hostLink(addr);
  if (!link) throw new Error(`no host interface holds the host end of ${addr}'s link`);
  const ownLink = { name: link.ifname, ifindex: ifindexOf(link.ifname) };
  S.links.push(ownLink);
  const grant = await api('POST', `/v1/machines/${id}/preview_urls`, { port: SERVICE_PORT });
  if (!grant.token) throw new Error('preview_urls: no token');
  const previewHost = `${SERVICE_PORT}-${id}.preview.localhost:${S.server.port}`;
  const M = {
    id,
    addr,
    link,
    vcpus: m.vcpus,
    memoryMb: m.memory_mb,
    previewHost,
    proxy: {
      name: 'preview proxy',
      host: '127.0.0.1',
      port: S.server.port,
      headers: { host: previewHost, 'x-nullspace-preview-token': grant.token },
    },
    pid: undefined,
    smallBytes: undefined,
    /** A restore makes the machine's link again: its host end's index is noted after each one. */
    relink: () => {
      ownLink.ifindex = ifindexOf(link.ifname) ?? ownLink.ifindex;
    },
  };
  M.expectSmall = async (t, o) => {
    const r = await send(t, o);
    const text = r.body.toString();
    const match = /^ok (\d+) ([0-9a-f]+)\n$/.exec(text);
    if (!match || match[2] !== tag)
      throw new Error(`${t.name}: unexpected answer ${JSON.stringify(text.slice(0, 80))}`);
    M.pid ??= match[1];
    M.smallBytes ??= r.bytes;
    if (match[1] !== M.pid)
      throw new Error(
        `${t.name}: the service's pid changed from ${M.pid} to ${match[1]}: it did not survive`,
      );
    return r;
  };
  await M.expectSmall(M.proxy);
  M.hostPid = servicePidOnHost(id);
  return M;
}
