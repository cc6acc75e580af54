#!/usr/bin/env node
/**
 * Network benchmark: what the preview proxy adds to an HTTP service in a machine (latency with a
 * new connection per request and with keep-alive, download and upload throughput) and how long a
 * preview request takes when it has to wake a paused or hibernated machine, each beside a
 * baseline measured in the same run: the same request sent straight from the host to the
 * machine's address, a minimal Node reverse proxy in its own process, the explicit resume call.
 * Run as root from the repository root: `node bench/network.mjs [options]`. See bench/README.md.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CGROUP_V2,
  MiB,
  RATE_COLUMNS,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  apiRequest,
  checkInterrupted,
  cleanUpRun,
  cmdline,
  cpuAdd,
  cpuSnapshot,
  createMachineViaApi,
  firstLine,
  fmt,
  hostLoad,
  killChildren,
  killMachineViaApi,
  latencyRow,
  machineMemoryBytes,
  machinePids,
  makeRunDir,
  percent,
  printConditions,
  printHints,
  printHost,
  printLatencyTable,
  printRun,
  printTable,
  procText,
  processCpuMs,
  progress,
  rateCells,
  rateOf,
  readClockTicks,
  readText,
  rssBytes,
  runBench,
  runState,
  samples,
  selfCpuMs,
  sh,
  shuffled,
  signed,
  startServerProcess,
  statsOf,
  stopServerAndMachines,
  templateHas,
  toolVersion,
} from './lib.mjs';

/**
 * Targets from issue 5 (informational): the proxy adds at most 1 ms at p50, moves at least 70 % of
 * the direct throughput, and a preview request wakes a paused machine within 50 ms and a
 * hibernated one within 1 s (p50).
 */
const TARGETS = { addedP50Ms: 1, throughputRatio: 0.7, wakePausedMs: 50, wakeHibernatedMs: 1000 };
/** The service's port in the machine. */
const SERVICE_PORT = 8000;
/** In every process the bench starts on the host, so the leak check can find (only) its own. */
const MARK = `nsbench-network-${process.pid}`;
/** What the bench uploads and the service sends: one preallocated chunk, written again and again. */
const CHUNK_BYTES = MiB;
/** A latency request without an answer for this long (ms) fails the bench. */
const REQUEST_TIMEOUT_MS = 10_000;
/** A request in the wake series without an answer for this long (ms) is counted as stalled. */
const WAKE_TIMEOUT_MS = 10_000;

const USAGE = `usage: node bench/network.mjs [options]   (as root, from the repository root)
  --iterations N       GET /small requests per path and connection mode (default 500)
  --warmup N           warm-up iterations before each series, not counted (default 1; latency: 20×)
  --transfer-mib N     MiB per download and per upload (default 256)
  --transfer-runs N    timed downloads and uploads per path (default 9)
  --wake-paused N      wakes from pause by a preview request (default 10)
  --wake-hibernated N  wakes from hibernation by a preview request (default 5)
  --vcpus N            vCPUs of the machine (default: the server's default, 1)
${USAGE_ENVIRONMENT}`;

// ---- what runs in the machine, and the reference proxy on the host --------------------------------

/**
 * The service in the machine (Node, CommonJS; run by the agent's own binary): `/small` answers
 * `ok <pid> <tag>` (so every answer proves it is the same process, across pauses and
 * hibernations), `/big?bytes=N` streams N bytes from one preallocated 1 MiB chunk with
 * backpressure, `POST /upload` counts what it receives and discards it. Keep-alive stays open
 * far longer than the bench runs. One chunk, not a 256 MiB buffer: the machine's memory stays
 * small, so the hibernation image (and the wake from it) is not a 256 MiB buffer's.
 */
const serviceScript = (tag) => `'use strict';
const http = require('node:http');
const SMALL = Buffer.from('ok ' + process.pid + ' ${tag}\\n');
const CHUNK = Buffer.alloc(${CHUNK_BYTES}, 0x78);
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://service');
  if (req.method === 'GET' && u.pathname === '/small') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': SMALL.length });
    res.end(SMALL);
  } else if (req.method === 'GET' && u.pathname === '/big') {
    let left = Number(u.searchParams.get('bytes'));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left });
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return res.once('drain', pump);
      }
      res.end();
    };
    pump();
  } else if (req.method === 'POST' && u.pathname === '/upload') {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => {
      const body = Buffer.from(JSON.stringify({ received: n }));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  } else {
    res.writeHead(404, { 'content-length': 0 });
    res.end();
  }
});
server.keepAliveTimeout = 600000;
server.headersTimeout = 610000;
server.requestTimeout = 0;
server.listen(${SERVICE_PORT}, '0.0.0.0');
`;

/**
 * A minimal reverse proxy on the host, in its own process (own event loop, like the server): what
 * one Node hop costs without anything of ours. Three listeners on 127.0.0.1: `fresh` connects to
 * the machine for every request the way the preview proxy does (from the preview source address,
 * awaited, then `http.request` on that socket; hop-by-hop headers dropped), `pooled` the same
 * with a keep-alive upstream connection (an `http.Agent`), `relay` copies bytes between the
 * client's connection and one upstream connection opened for it, no HTTP parsing at all (what the
 * preview proxy does for a WebSocket after the handshake): the floor for a proxy in Node.
 * argv: mark, machine address, preview source address, port.
 */
const REFERENCE_PROXY = `'use strict';
const http = require('node:http');
const net = require('node:net');
const [, , machineAddr, sourceAddr, portText] = process.argv;
const port = Number(portText);
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const pool = new http.Agent({ keepAlive: true, maxSockets: 8, localAddress: sourceAddr });
function forward(req, res, upstreamOpts) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
  const up = http.request({ ...upstreamOpts, method: req.method, path: req.url, headers });
  up.on('response', (r) => {
    const h = {};
    for (const [k, v] of Object.entries(r.headers)) if (!HOP.has(k)) h[k] = v;
    res.writeHead(r.statusCode, h);
    r.pipe(res);
  });
  up.on('error', (err) => { if (!res.headersSent) res.writeHead(502); res.end(String(err)); });
  req.pipe(up);
}
const fresh = http.createServer((req, res) => {
  const s = net.connect({ host: machineAddr, port, localAddress: sourceAddr, noDelay: true });
  s.once('error', (err) => { res.writeHead(502); res.end(String(err)); });
  s.once('connect', () => {
    forward(req, res, { createConnection: () => s });
    res.on('close', () => s.destroy());
  });
});
const pooled = http.createServer((req, res) =>
  forward(req, res, { host: machineAddr, port, localAddress: sourceAddr, agent: pool }));
for (const s of [fresh, pooled]) { s.keepAliveTimeout = 600000; s.headersTimeout = 610000; s.requestTimeout = 0; }
const relay = net.createServer((c) => {
  c.setNoDelay(true);
  const s = net.connect({ host: machineAddr, port, localAddress: sourceAddr, noDelay: true });
  const cut = () => { c.destroy(); s.destroy(); };
  c.on('error', cut);
  s.on('error', cut);
  c.on('close', () => s.destroy());
  c.pipe(s);
  s.pipe(c);
});
let up = 0;
const ready = () => {
  if (++up < 3) return;
  const ports = { fresh: fresh.address().port, pooled: pooled.address().port, relay: relay.address().port };
  process.stdout.write(JSON.stringify(ports) + '\\n');
};
fresh.listen(0, '127.0.0.1', ready);
pooled.listen(0, '127.0.0.1', ready);
relay.listen(0, '127.0.0.1', ready);
`;

// ---- host -------------------------------------------------------------------------------------

async function describeHost(templatesDir) {
  const sysctl = (k) => readText(`/proc/sys/${k.replaceAll('.', '/')}`)?.trim() ?? '?';
  printHost(templatesDir, [
    ['node', `${process.version} (bench, server, reference proxy, and the service in the machine)`],
    ['cgroups', CGROUP_V2 ? 'v2' : 'v1'],
    ['nft', await toolVersion('nft', ['--version'])],
    ['criu', await toolVersion('criu', ['--version'])],
    [
      'tcp',
      `congestion control ${sysctl('net.ipv4.tcp_congestion_control')}, ` +
        `ephemeral ports ${sysctl('net.ipv4.ip_local_port_range').replace(/\s+/, '–')}`,
    ],
  ]);
}

// ---- state and cleanup --------------------------------------------------------------------------

/**
 * Everything the bench made (see runState): the server and the reference proxy are child
 * processes (the proxy is in `children`). Besides: the keep-alive client agents, destroyed first.
 */
const S = runState({ agents: new Set(), links: [] });

/** A host interface's index, or undefined once it is gone (so a later one of the same name is not ours). */
function ifindexOf(name) {
  const text = readText(`/sys/class/net/${name}/ifindex`);
  return text === undefined ? undefined : Number(text);
}

async function cleanup(note) {
  for (const a of S.agents) a.destroy();
  // 1. Host processes we started (the reference proxy), by pid.
  await killChildren(S.children, note);
  // 2. Machines through the API, then the server (by its pid).
  await stopServerAndMachines(S, note);
  // 3. Runtime leftovers of our machines only (containers in our server's runc root, their network
  //    namespaces, mounts under our temp dir), then the check.
  const { leaks, checked } = await cleanUpRun(S, note, { mark: MARK });
  // 4. The host end of each machine's link goes with its network namespace, which the kernel
  //    dismantles a moment after the last reference goes. A namespace still held (by an orphaned
  //    TCP socket of the machine, retransmitting) keeps it: said, then deleted (only the same
  //    interface, by index: the name may be another server's by now).
  for (const l of S.links) {
    for (let i = 0; i < 40 && ifindexOf(l.name) === l.ifindex; i++) await sleep(50);
    if (ifindexOf(l.name) !== l.ifindex) continue;
    note(`veth ${l.name}`)(new Error('outlived its machine (its network namespace is still held); deleted'));
    await sh('ip', ['link', 'delete', l.name]).catch(note(`ip link delete ${l.name}`));
    if (ifindexOf(l.name) === l.ifindex) leaks.push(`veth ${l.name}`);
  }
  return { leaks, checked };
}

const api = (method, path, body) => apiRequest(S.server, method, path, body);

// ---- HTTP client --------------------------------------------------------------------------------

/**
 * One request with node:http, timed from just before it is created until its response has fully
 * arrived. `agent: false` is a new connection (`Connection: close`); an http.Agent with keep-alive
 * reuses its one. `upload`: that many bytes are sent from one chunk, with backpressure. The body
 * is kept unless `countOnly`. Rejects on an error or a status other than 2xx.
 */
function send(
  t,
  {
    path = t.path ?? '/small',
    method = 'GET',
    agent = false,
    upload,
    countOnly,
    timeoutMs = REQUEST_TIMEOUT_MS,
  } = {},
) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const headers = { ...t.headers };
    if (upload !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = upload;
    }
    const req = http.request({
      host: t.host,
      port: t.port,
      ...(t.localAddress ? { localAddress: t.localAddress } : {}),
      method,
      path,
      headers,
      agent,
    });
    req.once('error', reject);
    // A request without an answer is an error with its own code, not a bench that hangs.
    req.setTimeout(timeoutMs, () =>
      req.destroy(
        Object.assign(new Error(`${t.name}: ${method} ${path}: no answer within ${timeoutMs} ms`), {
          code: 'NSBENCH_TIMEOUT',
        }),
      ),
    );
    req.once('response', (res) => {
      const chunks = [];
      let bytes = 0;
      const ok = (res.statusCode ?? 500) < 300;
      res.on('data', (c) => {
        bytes += c.length;
        if (!countOnly || !ok) chunks.push(c);
      });
      res.once('error', reject);
      res.once('end', () => {
        const ms = performance.now() - t0;
        const body = Buffer.concat(chunks);
        if (!ok)
          reject(
            new Error(
              `${t.name}: ${method} ${path}: HTTP ${res.statusCode} ${body.toString().slice(0, 300)}`,
            ),
          );
        else resolve({ ms, bytes, body });
      });
    });
    if (upload === undefined) {
      req.end();
      return;
    }
    let left = upload;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!req.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}
const CHUNK = Buffer.alloc(CHUNK_BYTES, 0x79);

/** One JSON API call to the server on a new connection (node:http), timed like `send`. */
function apiTimed(method, path, body) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body ?? {}));
    const t0 = performance.now();
    const req = http.request({
      host: '127.0.0.1',
      port: S.server.port,
      method,
      path,
      agent: false,
      headers: {
        authorization: `Bearer ${S.server.apiKey}`,
        'content-type': 'application/json',
        'content-length': payload.length,
      },
    });
    req.once('error', reject);
    req.setTimeout(REQUEST_TIMEOUT_MS * 6, () => req.destroy(new Error(`${method} ${path}: no answer`)));
    req.once('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.once('end', () => {
        const ms = performance.now() - t0;
        const text = Buffer.concat(chunks).toString();
        if ((res.statusCode ?? 500) >= 300)
          reject(new Error(`${method} ${path}: HTTP ${res.statusCode} ${text.slice(0, 300)}`));
        else resolve({ ms, json: JSON.parse(text) });
      });
    });
    req.end(payload);
  });
}

/** Keep-alive client agents: one connection each (maxSockets 1), reused request after request. */
function keepAliveAgent() {
  const a = new http.Agent({ keepAlive: true, maxSockets: 1 });
  S.agents.add(a);
  return a;
}

// ---- CPU accounting ------------------------------------------------------------------------------

/**
 * Time on a CPU (ms, nanosecond resolution) of a process's main thread, from its schedstat: where
 * Node runs JavaScript and does its socket I/O. 0 once it is gone.
 */
function mainThreadCpuMs(pid) {
  const text = pid === undefined ? undefined : procText(pid, `task/${pid}/schedstat`);
  return text ? Number(text.split(' ')[0]) / 1e6 : 0;
}

/** CPU time of every party (ms) at one moment: the client (this process), the two hops' main threads. */
const cpuNow = (machineId) =>
  cpuSnapshot(machineId, {
    client: selfCpuMs,
    server: () => mainThreadCpuMs(S.server.child.pid),
    reference: () => mainThreadCpuMs(S.reference?.child.pid),
  });

/**
 * The host's load (see hostLoad); the reference proxy is ours too. Interrupt and softirq time, where
 * the kernel moves our packets, is left out of the host's busy time.
 */
const load = hostLoad(S, { interrupts: false, others: () => processCpuMs(S.reference?.child.pid) });

// ---- the machine, its link and its service -----------------------------------------------------------

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
function hostLink(machineAddr) {
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
const servicePidOnHost = (id) => machinePids(id).find((pid) => /^\S*node \/srv\/s\.js/.test(cmdline(pid)));

/** Starts the reference proxy (its own node process, the bench's mark in its command line). */
async function startReferenceProxy(machineAddr, previewAddr) {
  const child = spawn(
    process.execPath,
    ['-e', REFERENCE_PROXY, MARK, machineAddr, previewAddr, String(SERVICE_PORT)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  S.children.add(child);
  S.reference = { child, ...JSON.parse(await firstLine(child, 'reference proxy')) };
}

// ---- the benchmark ------------------------------------------------------------------------------

/** Latency paths (each in both connection modes), in the order they are printed. */
const LATENCY_PATHS = ['proxy', 'direct', 'source', 'relay', 'refFresh', 'refPooled', 'healthz'];
const TRANSFER_PATHS = ['proxy', 'direct', 'relay', 'refFresh'];

/**
 * A machine (on_timeout pause, auto_resume) with the service running, its link read from the
 * host, a preview grant, and the preview proxy as a request target. `expectSmall(t)` sends GET
 * /small to target `t` and checks the answer: this machine's service, always the same process.
 */
async function serviceMachine(vcpus) {
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

async function bench(opts, templatesDir) {
  const { R, push } = samples();
  const info = { cpu: {}, stalls: [] };
  const started = performance.now();
  /** Progress on stderr, with the seconds since the bench started. */
  const phase = (msg) => progress(`[${fmt((performance.now() - started) / 1000, 0)} s] ${msg}`);
  await readClockTicks();

  makeRunDir(S);
  phase('server (own process), machine, service, reference proxy');
  await startServerProcess(S, templatesDir, { args: [MARK], config: { pauseSpillAfterS: 24 * 3600 } });
  const A = await serviceMachine(opts.vcpus);
  await startReferenceProxy(A.addr, A.link.previewAddr ?? A.link.hostAddr);
  const T = {
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
  for (const key of LATENCY_PATHS) if (T[key] && key !== 'healthz') await A.expectSmall(T[key]);
  info.serviceVersion = (
    await api('POST', `/v1/machines/${A.id}/commands`, { cmd: '/.nullspace/bin/node --version', shell: true })
  ).stdout?.trim();
  Object.assign(info, { vcpus: A.vcpus, machineAddr: A.addr, link: A.link, smallBytes: A.smallBytes });

  printRun(S, [
    [
      'machine',
      `${A.id}: ${A.vcpus} vCPU (CFS quota), ${A.memoryMb} MB, template ${TEMPLATE}, on_timeout pause, auto_resume`,
    ],
    [
      'link',
      `machine ${A.addr}, host end ${A.link.hostAddr}, preview source ${A.link.previewAddr ?? 'not found'} on ${A.link.ifname}`,
    ],
    [
      'service',
      `node ${info.serviceVersion ?? '?'} (/.nullspace/bin/node /srv/s.js), 0.0.0.0:${SERVICE_PORT}, pid ${A.pid} in the machine, ${A.hostPid ?? '?'} on the host`,
    ],
    ['preview host', `${A.previewHost} (token in x-nullspace-preview-token)`],
    [
      'reference proxy',
      `127.0.0.1:${S.reference.fresh} (fresh), :${S.reference.pooled} (pooled), :${S.reference.relay} (TCP relay); pid ${S.reference.child.pid}`,
    ],
    [
      'settings',
      `latency × ${opts.iterations} (+${opts.warmup * 20}), transfers ${opts.transferMiB} MiB × ${opts.transferRuns} (+${opts.warmup}), ` +
        `wakes ${opts.wakePaused} paused / ${opts.wakeHibernated} hibernated (+${opts.warmup} each)`,
    ],
  ]);
  const hostBefore = load.sample(A.id);

  // 1. Latency: every path in both modes once per iteration, in a random order.
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

  // 2. Throughput: downloads and uploads on every path, in a random order, a new connection each.
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
  load.add(hostBefore, load.sample(A.id));

  // 3. Wakes, on a second machine made for them: a restore brings back the machine's conntrack
  //    table (CRIU's netns-ct image), with it the entries of every connection from the preview
  //    source of the last two minutes, and a new connection that happens to reuse one of those
  //    source ports may hang (see the README). The first machine made thousands of them.
  await killMachineViaApi(S, A.id);
  phase('a fresh machine for the wakes');
  let B = await serviceMachine(opts.vcpus);
  let wakeBefore = load.sample(B.id);
  info.replaced = [];
  const useWakeMachine = (M) => {
    Object.assign(info, { wakeMachine: M.id, wakeAddr: M.addr, wakePid: M.pid, wakeHostPid: M.hostPid });
    info.stallsBefore = info.stalls.length;
  };
  useWakeMachine(B);
  info.serviceRss = rssBytes(B.hostPid);
  info.machineMemory = machineMemoryBytes(B.id);

  /**
   * After a stalled request the machine's old network namespace may outlive the next hibernation
   * (see the README), and the machine cannot be resumed for minutes: then the series goes on with
   * a new machine (at most twice), and the report says so.
   */
  const replaceIfStuck = async (err) => {
    if (info.stalls.length === info.stallsBefore || info.replaced.length >= 2) return false;
    const m = await api('GET', `/v1/machines/${B.id}`).catch(() => undefined);
    if (!m?.status_reason?.startsWith('resume failed')) return false;
    info.replaced.push(`${B.id} (${m.status}: ${m.status_reason}; ${err.message.slice(0, 80)}…)`);
    load.add(wakeBefore, load.sample(B.id));
    await killMachineViaApi(S, B.id);
    phase(`  ${B.id} cannot be resumed after a stalled request: a new machine for the rest of the series`);
    B = await serviceMachine(opts.vcpus);
    wakeBefore = load.sample(B.id);
    useWakeMachine(B);
    return true;
  };

  // Per iteration: pause (hibernate); one preview request on a new connection, which wakes the
  // machine; the same request once more now that it runs; pause (hibernate) again and resume with
  // the API's connect instead. A request that gets no answer within WAKE_TIMEOUT_MS is counted as
  // stalled, not timed, and the series goes on.
  const wake = async (action, n, wakeKey, connectKey) => {
    const asleep = action === 'pause' ? 'paused' : 'hibernated';
    // A failure names the step and the machine's status and status_reason (the server's own log
    // is not shown).
    const step = (what, fn) =>
      fn().catch(async (err) => {
        const m = await api('GET', `/v1/machines/${B.id}`).catch(() => undefined);
        const state = m ? ` (machine ${m.status}${m.status_reason ? `: ${m.status_reason}` : ''})` : '';
        const after = info.stalls.length
          ? ` after ${info.stalls.length} stalled request(s), see bench/README.md`
          : '';
        throw new Error(`${action} series, ${what}: ${err.message}${state}${after}`, { cause: err });
      });
    const unlessStalled = (what, i, fn) =>
      fn().catch((err) => {
        if (err.code !== 'NSBENCH_TIMEOUT') return step(what, () => Promise.reject(err));
        info.stalls.push(`${action} ${i < 0 ? 'warm-up' : i + 1}: ${what}`);
        return undefined;
      });
    const sleepNow = async () => {
      const slept = await step(`POST …/${action}`, () => api('POST', `/v1/machines/${B.id}/${action}`));
      if (slept.status !== asleep) throw new Error(`${action}: status ${slept.status}`);
      if (action === 'hibernate' && info.imageBytes === undefined && slept.snapshot_id)
        info.imageBytes = (
          await api('GET', `/v1/snapshots/${slept.snapshot_id}`).catch(() => ({}))
        ).size_bytes;
    };
    const request = () => B.expectSmall(B.proxy, { timeoutMs: WAKE_TIMEOUT_MS });
    const once = async (i) => {
      await sleepNow();
      const woken = await unlessStalled('the waking preview request', i, request);
      const now = await api('GET', `/v1/machines/${B.id}`);
      if (now.status !== 'running') throw new Error(`after the waking request: status ${now.status}`);
      B.relink();
      const running = await unlessStalled('the request to the running machine', i, request);
      await sleepNow();
      const connected = await step('POST …/connect', () =>
        apiTimed('POST', `/v1/machines/${B.id}/connect`, {}),
      );
      if (connected.json.status !== 'running') throw new Error(`connect: status ${connected.json.status}`);
      B.relink();
      await unlessStalled('the request after connect', i, request);
      return { woken, running, connected };
    };
    for (let i = -opts.warmup; i < n; i++) {
      checkInterrupted();
      let r;
      try {
        r = await once(i);
      } catch (err) {
        if (!(await replaceIfStuck(err))) throw err;
        i--; // this iteration again, on the new machine
        continue;
      }
      const { woken, running, connected } = r;
      phase(
        `  ${action} ${i < 0 ? 'warm-up' : `${i + 1}/${n}`}: woken by the request in ${woken ? fmt(woken.ms) : 'STALLED'} ms, ` +
          `running ${running ? fmt(running.ms) : 'STALLED'} ms, connect ${fmt(connected.ms)} ms`,
      );
      if (i < 0) continue;
      if (woken) push(wakeKey, woken.ms);
      if (running) push('wakeRunning', running.ms);
      push(connectKey, connected.ms);
      info.wakes = (info.wakes ?? 0) + 2;
    }
  };
  phase(`wake from pause × ${opts.wakePaused} (+${opts.warmup}): preview request, running request, connect`);
  await wake('pause', opts.wakePaused, 'wakePaused', 'connectPaused');
  phase(
    `wake from hibernation × ${opts.wakeHibernated} (+${opts.warmup}): preview request, running request, connect`,
  );
  await wake('hibernate', opts.wakeHibernated, 'wakeHibernated', 'connectHibernated');
  info.wakeHostPidAfter = servicePidOnHost(B.id);
  load.add(wakeBefore, load.sample(B.id));
  info.load = load.summary();

  await killMachineViaApi(S, B.id);
  return { R, info, opts, bytes };
}

// ---- report -------------------------------------------------------------------------------------

function report({ R, info, opts, bytes }) {
  const s = statsOf(R);

  console.log(
    `\n1. Preview proxy latency: GET /small (${info.smallBytes} bytes), ` +
      'request created → response fully read (ms; p50/p95 nearest-rank; "added" = this path − direct, same mode;\n' +
      '   "hop CPU" = ms on a CPU per request of the process in the middle, its main thread: the server, or the reference proxy)',
  );
  const labels = {
    proxy: 'preview proxy: 127.0.0.1:<server>, Host 8000-<id>.preview…',
    direct: `direct: host → ${info.machineAddr}:${SERVICE_PORT} (veth)`,
    source: `  direct from the preview source ${info.link.previewAddr} (→ the machine's 127.0.0.1)`,
    relay: '  reference TCP relay, own process (bytes only, no HTTP)',
    refFresh: '  reference Node proxy, own process, new upstream connection',
    refPooled: '  reference Node proxy, keep-alive upstream connection',
    healthz: '  baseline: the server answering GET /healthz itself',
  };
  const rows = [];
  for (const [mode, title] of [
    ['new', 'new connection per request (agent: false)'],
    ['keep', 'keep-alive (http.Agent keepAlive, maxSockets 1)'],
  ]) {
    rows.push([title]);
    const direct = s[`direct.${mode}`];
    for (const k of LATENCY_PATHS) {
      const st = s[`${k}.${mode}`];
      if (!st?.n) continue;
      const addP50 = k === 'direct' || k === 'healthz' ? undefined : st.p50 - direct.p50;
      const addP95 = k === 'direct' || k === 'healthz' ? undefined : st.p95 - direct.p95;
      const isProxy = k === 'proxy';
      const cpu = info.middleCpu[`${k}.${mode}`];
      rows.push([
        `  ${labels[k]}`,
        st.n,
        fmt(st.p50, 2),
        fmt(st.p95, 2),
        fmt(st.min, 2),
        fmt(st.max, 2),
        signed(addP50),
        signed(addP95),
        cpu === undefined ? '' : fmt(cpu / st.n, 2),
        isProxy ? `≤ ${TARGETS.addedP50Ms}` : '',
        isProxy ? (addP50 <= TARGETS.addedP50Ms ? 'PASS' : 'MISS') : '',
      ]);
    }
  }
  printTable(
    ['path', 'n', 'p50', 'p95', 'min', 'max', 'added p50', 'added p95', 'hop CPU', 'target', 'result'],
    rows,
    'lrrrrrrrrrl',
  );

  const rate = rateOf(bytes);
  console.log(
    `\n2. Throughput, ${opts.transferMiB} MiB per transfer, a new connection each (MB/s = 10^6 B/s; p50 from the ` +
      'median time, p95 from the 95th-percentile time, i.e. the slow end; "of direct" = p50 ÷ direct p50)',
  );
  const tRows = [];
  for (const [dir, title] of [
    ['down', `download: GET /big?bytes=${bytes}, bytes counted`],
    ['up', `upload: POST /upload of ${bytes} bytes (1 MiB writes, backpressure), the service counts them`],
  ]) {
    tRows.push([title]);
    const direct = rate(s[`${dir}.direct`]?.p50);
    for (const [k, label] of [
      ['proxy', 'preview proxy'],
      ['direct', `direct: host → ${info.machineAddr}:${SERVICE_PORT}`],
      ['relay', '  reference TCP relay (own process, bytes only)'],
      ['refFresh', '  reference Node HTTP proxy (own process)'],
    ]) {
      const st = s[`${dir}.${k}`];
      const ratio = k === 'direct' ? undefined : rate(st?.p50) / direct;
      tRows.push([
        `  ${label}`,
        ...rateCells(st, rate),
        ratio === undefined ? '' : `${fmt(100 * ratio, 0)}%`,
        k === 'proxy' ? `≥ ${100 * TARGETS.throughputRatio}%` : '',
        k === 'proxy' ? (ratio >= TARGETS.throughputRatio ? 'PASS' : 'MISS') : '',
      ]);
    }
  }
  printTable(['path', ...RATE_COLUMNS, 'of direct', 'target', 'result'], tRows, 'lrrrrrrrrl');
  console.log(
    "\n   CPU during the transfers: % of one core over the timed runs' wall time (client = this process; server and\n" +
      `   reference proxy = their main thread; machine = its cgroup: the service, its quota ${info.vcpus} vCPU = ${100 * info.vcpus}%)`,
  );
  printTable(
    ['transfer', 'client', 'server', 'ref proxy', 'machine', 'throttled periods'],
    TRANSFER_PATHS.flatMap((k) =>
      ['down', 'up'].map((dir) => {
        const c = info.cpu[`${dir}.${k}`];
        if (!c) return [`${dir} ${k}`];
        return [
          `${dir === 'down' ? 'download' : 'upload'} ${{ refFresh: 'reference proxy', relay: 'TCP relay' }[k] ?? k}`,
          ...[c.client, c.server, c.reference, c.machine].map((x) => percent(x, c.wall)),
          `${c.throttled} of ${c.periods}`,
        ];
      }),
    ),
    'lrrrrr',
  );

  console.log(
    '\n3. Wake: one preview request (new connection) to a sleeping machine with auto_resume, sent → full response (ms)',
  );
  printLatencyTable('figure', [
    latencyRow('preview request to a paused machine (wakes it)', s.wakePaused, TARGETS.wakePausedMs),
    latencyRow('  baseline: POST /v1/machines/{id}/connect of a paused machine', s.connectPaused),
    latencyRow(
      'preview request to a hibernated machine (wakes it)',
      s.wakeHibernated,
      TARGETS.wakeHibernatedMs,
    ),
    latencyRow('  baseline: POST /v1/machines/{id}/connect of a hibernated machine', s.connectHibernated),
    latencyRow('baseline: the same preview request, machine running', s.wakeRunning),
  ]);
  const mib = (b) => (b === undefined || Number.isNaN(b) ? '?' : `${fmt(b / MiB)} MiB`);
  printTable(
    null,
    [
      ['machine', `${info.wakeMachine} (a fresh one, ${info.wakeAddr}), on_timeout pause, auto_resume`],
      ...info.replaced.map((r) => ['replaced', r]),
      [
        'the service survived',
        `every answer came from pid ${info.wakePid} (in the machine) with this machine's tag, through ${info.wakes ?? 0} wakes and resumes${info.replaced.length ? ' (on the machines in turn)' : ''} ` +
          `(its host pid ${info.wakeHostPid ?? '?'} → ${info.wakeHostPidAfter ?? '?'}: a restore makes a new host process)`,
      ],
      [
        'memory',
        `service RSS ${mib(info.serviceRss)}, machine cgroup ${mib(info.machineMemory)} before the wakes; hibernation image ${mib(info.imageBytes)}`,
      ],
      [
        'stalled requests',
        info.stalls.length === 0
          ? `none (no answer within ${WAKE_TIMEOUT_MS / 1000} s would count as stalled and not be timed)`
          : `${info.stalls.length}, not timed: ${info.stalls.join('; ')}`,
      ],
    ],
    'll',
  );

  printConditions(info.load, 'the bench, its server, the reference proxy and the machine');
  hints(s, info, rate);
}

/** For a missed target: where the time goes, from the rows above. */
function hints(s, info, rate) {
  const out = [];
  const p = (k) => s[k]?.p50;
  for (const [mode, name] of [
    ['new', 'a new connection per request'],
    ['keep', 'keep-alive'],
  ]) {
    const added = p(`proxy.${mode}`) - p(`direct.${mode}`);
    if (!(added > TARGETS.addedP50Ms)) continue;
    const d = p(`direct.${mode}`);
    const parts = [
      `direct ${fmt(d, 2)}`,
      s[`source.${mode}`]?.n && `from the preview source ${fmt(p(`source.${mode}`), 2)}`,
      `TCP relay ${fmt(p(`relay.${mode}`), 2)}`,
      `Node HTTP proxy ${fmt(p(`refFresh.${mode}`), 2)} (pooled upstream ${fmt(p(`refPooled.${mode}`), 2)})`,
      `preview proxy ${fmt(p(`proxy.${mode}`), 2)}`,
    ].filter(Boolean);
    out.push(
      `with ${name} the proxy adds ${fmt(added, 2)} ms at p50 (target ${TARGETS.addedP50Ms}). p50: ${parts.join(' → ')} ms. ` +
        `A second process relaying bytes costs ${signed(p(`relay.${mode}`) - d)}, HTTP parsing and a fresh upstream ` +
        `request in it ${signed(p(`refFresh.${mode}`) - p(`relay.${mode}`))}, the server's own work on top ` +
        `${signed(p(`proxy.${mode}`) - p(`refFresh.${mode}`))} (its HTTP floor, /healthz, is ${fmt(p(`healthz.${mode}`), 2)}); ` +
        `a pooled upstream connection saves ${fmt(p(`refFresh.${mode}`) - p(`refPooled.${mode}`), 2)} in the reference proxy.`,
    );
  }
  for (const dir of ['down', 'up']) {
    const ratio = rate(p(`${dir}.proxy`)) / rate(p(`${dir}.direct`));
    if (!(ratio < TARGETS.throughputRatio)) continue;
    const c = info.cpu[`${dir}.proxy`];
    const ofDirect = (k) => percent(rate(p(`${dir}.${k}`)), rate(p(`${dir}.direct`)));
    out.push(
      `${dir === 'down' ? 'download' : 'upload'} through the proxy is ${fmt(100 * ratio, 0)}% of direct ` +
        `(TCP relay ${ofDirect('relay')}, Node HTTP proxy ${ofDirect('refFresh')}); during it the client used ` +
        `${percent(c.client, c.wall)}, the server ${percent(c.server, c.wall)}, the machine ${percent(c.machine, c.wall)} of a core.`,
    );
  }
  for (const [key, connectKey, target, what] of [
    ['wakePaused', 'connectPaused', TARGETS.wakePausedMs, 'paused'],
    ['wakeHibernated', 'connectHibernated', TARGETS.wakeHibernatedMs, 'hibernated'],
  ]) {
    if (!(p(key) > target)) continue;
    out.push(
      `waking a ${what} machine takes ${fmt(p(key))} ms at p50 (target ${target}): the explicit resume alone is ` +
        `${fmt(p(connectKey))} and a request to the running machine ${fmt(p('wakeRunning'))}, together ` +
        `${fmt(p(connectKey) + p('wakeRunning'))}: ${p(key) > 1.2 * (p(connectKey) + p('wakeRunning')) ? 'the wake path adds to the resume' : 'the resume itself is the cost'}.`,
    );
  }
  if (info.stalls.length > 0)
    out.push(
      `${info.stalls.length} request(s) in the wake series got no answer within ${WAKE_TIMEOUT_MS / 1000} s (${info.stalls.join('; ')}): ` +
        'most likely a new connection from the preview source that reused the source port of one still in the conntrack table a restore brought back (see bench/README.md).',
    );
  printHints(out);
}

runBench({
  script: 'bench/network.mjs',
  usage: USAGE,
  options: {
    iterations: ['iterations', 500, 1],
    warmup: ['warmup', 1, 0],
    transferMiB: ['transfer-mib', 256, 1],
    transferRuns: ['transfer-runs', 9, 1],
    wakePaused: ['wake-paused', 10, 1],
    wakeHibernated: ['wake-hibernated', 5, 1],
    vcpus: ['vcpus', undefined, 1],
  },
  preflight: templateHas(),
  title: 'Nullspace network benchmark (preview proxy, throughput, wake on request)',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machine(s) checked: no runc container, mount, loop device, netns or cgroup left;` +
    ' server and reference proxy stopped, temp dir removed',
});
