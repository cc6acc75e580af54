#!/usr/bin/env node
/**
 * Inside-a-machine benchmark: streamed output throughput, a 1 MiB file write + read round trip and
 * PTY echo latency through the SDK, each beside the same operation on the host and beside the
 * hops under it (the server's HTTP API without the SDK, the machine's agent without the server),
 * all measured in the same run, interleaved iteration by iteration.
 * Run as root from the repository root: `node bench/inside.mjs [options]`. See bench/README.md.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountsUnder } from '@nullspace/runtime';
import WebSocket from 'ws';
import {
  CGROUP_V2,
  MACHINE_TIMEOUT_S,
  MiB,
  RATE_COLUMNS,
  REPO_ROOT,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  apiRequest,
  checkInterrupted,
  cleanUpRun,
  cmdline,
  cpuAdd,
  cpuSnapshot,
  createMachineViaSdk,
  filesystemOf,
  fmt,
  hostLoad,
  killChildren,
  killMachineViaSdk,
  latencyRow,
  machinePids,
  makeRunDir,
  percent,
  printConditions,
  printHints,
  printHost,
  printLatencyTable,
  printRun,
  printTable,
  processCpuMs,
  progress,
  rateCells,
  rateOf,
  readClockTicks,
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
  waitGone,
} from './lib.mjs';

/** Targets (informational): streamed output MB/s at p50, file round trip and PTY echo p50 in ms. */
const TARGETS = { streamMBs: 100, fileP50Ms: 20, ptyP50Ms: 5 };
const FILE_BYTES = MiB;
/** What the PTYs run: raw mode, no echo, so each byte sent comes straight back from `cat`. */
const PTY_SCRIPT = 'stty raw -echo; printf R; exec cat';
/** In every process the bench starts on the host, so the leak check can find (only) its own. */
const MARK = `nsbench-inside-${process.pid}`;

const USAGE = `usage: node bench/inside.mjs [options]   (as root, from the repository root)
  --stream-mib N        MiB each streamed-output run writes (default 256)
  --stream-runs N       timed runs of every streamed-output series (default 15)
  --file-iterations N   1 MiB write + read round trips per series (default 200)
  --pty-iterations N    one-byte PTY echoes per series (default 1000)
  --warmup N            warm-up iterations before each series, not counted (default 1; PTY: 20×)
  --vcpus N             vCPUs of the machine (default: the server's default, 1)
${USAGE_ENVIRONMENT}`;

// ---- host -------------------------------------------------------------------------------------

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['node', `${process.version} (bench, server, and the agent in the machine)`],
    ['cgroups', CGROUP_V2 ? 'v2' : 'v1'],
    ['/tmp', `${await filesystemOf('/tmp')} (server data dir; the host file baseline)`],
    ['host head', (await sh('head', ['--version']).catch(() => '?')).split('\n')[0]],
  ]);
}

// ---- state and cleanup --------------------------------------------------------------------------

/**
 * Everything the bench made (see runState); the server is a child process (its own event loop, so
 * it does not share the bench's). Its host processes are ChildProcesses or node-pty terminals (both
 * have pid and kill). Besides: the WebSockets we opened, closed before the machines are killed.
 */
const S = runState({ sockets: new Set() });

async function cleanup(note) {
  for (const ws of S.sockets) ws.terminate();
  // 1. Host processes we started, by pid.
  await killChildren(S.children, note);
  // 2. Machines through the API, then the server (by its pid).
  await stopServerAndMachines(S, note);
  // 3. Runtime leftovers (containers in the server's runc root, network namespaces, mounts), then
  //    the check.
  return cleanUpRun(S, note, { mark: MARK });
}

// ---- HTTP: the server's API without the SDK, and the agent without the server -----------------------

/** One JSON request to the server with the API key (fetch); resolves with the parsed body. */
const api = (method, path, body) => apiRequest(S.server, method, path, body);

/**
 * Where a raw request goes: the server over TCP (with the API key, keep-alive), or a machine's
 * agent over its Unix socket (what the server itself does: the agent trusts whoever reaches it).
 */
const serverAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const agentAgents = new Map();
const serverTarget = () => ({
  kind: 'server',
  opts: { host: '127.0.0.1', port: S.server.port, agent: serverAgent },
  headers: { authorization: `Bearer ${S.server.apiKey}` },
  prefix: (machineId) => `/v1/machines/${machineId}`,
});
function agentTarget(machineId) {
  const socketPath = join(S.dataDir, 'machines', machineId, 'run', 'agent.sock');
  // The socket's directory is writable from inside the machine: connect only to a real socket.
  if (!lstatSync(socketPath).isSocket()) throw new Error(`${socketPath} is not a socket`);
  if (!agentAgents.has(socketPath))
    agentAgents.set(socketPath, new http.Agent({ keepAlive: true, maxSockets: 16 }));
  return {
    kind: 'agent',
    socketPath,
    opts: { socketPath, agent: agentAgents.get(socketPath) },
    headers: {},
    prefix: () => '',
  };
}

/**
 * One raw request with node:http; `onChunk` sees the response body as it arrives (else it is
 * collected). Resolves with the status and, without `onChunk`, the body.
 */
function rawRequest(target, method, path, { body, headers = {}, onChunk } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
    const req = http.request({
      ...target.opts,
      method,
      path,
      headers: { ...target.headers, ...headers, 'content-length': payload?.length ?? 0 },
    });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks = [];
      const ok = (res.statusCode ?? 500) < 300;
      res.on('data', (c) => {
        if (ok && onChunk) onChunk(c);
        else chunks.push(c);
      });
      res.once('error', reject);
      res.once('end', () => {
        const all = Buffer.concat(chunks);
        if (!ok)
          reject(new Error(`${method} ${path}: HTTP ${res.statusCode} ${all.toString().slice(0, 300)}`));
        else resolve({ status: res.statusCode, body: all });
      });
    });
    req.end(payload);
  });
}

/**
 * Counts the output of an HTTP frame stream (`[kind][u32 length][payload]`) without copying it,
 * whatever the chunking; keeps the (small) event frames, parsed.
 */
function frameCounter() {
  const head = Buffer.alloc(5);
  let headFill = 0;
  let remaining = 0;
  let kind = -1;
  let eventParts = [];
  const c = { outputBytes: 0, events: [] };
  const endFrame = () => {
    if (kind === 0) c.events.push(JSON.parse(Buffer.concat(eventParts).toString('utf8')));
    eventParts = [];
    headFill = 0;
  };
  c.push = (chunk) => {
    let i = 0;
    while (i < chunk.length) {
      if (headFill < 5) {
        const take = Math.min(5 - headFill, chunk.length - i);
        chunk.copy(head, headFill, i, i + take);
        headFill += take;
        i += take;
        if (headFill === 5) {
          kind = head[0];
          remaining = head.readUInt32BE(1);
          if (remaining === 0) endFrame();
        }
        continue;
      }
      const take = Math.min(remaining, chunk.length - i);
      if (kind === 0) eventParts.push(chunk.subarray(i, i + take));
      else c.outputBytes += take;
      remaining -= take;
      i += take;
      if (remaining === 0) endFrame();
    }
  };
  return c;
}

// ---- CPU accounting ------------------------------------------------------------------------------

/**
 * The host's load (see hostLoad): the children this process reaped, counted as ours, are the host
 * `head` and the PTY's bash.
 */
const load = hostLoad(S);

/** The agent's pid on the host: the node process running agent.mjs in the machine's cgroup. */
const agentPid = (id) =>
  machinePids(id).find((pid) => /node\b.*agent\.mjs/.test(cmdline(pid)) && !cmdline(pid).includes('/init'));

/** CPU time of every party (ms) at one moment: the bench (the client), the server, the agent. */
const cpuNow = (machineId, agent) =>
  cpuSnapshot(machineId, {
    bench: selfCpuMs,
    server: () => processCpuMs(S.server.child.pid),
    agent: () => (agent === undefined ? Number.NaN : processCpuMs(agent)),
  });

// ---- 1. streamed output ------------------------------------------------------------------------------

const headArgs = (bytes) => ['-c', String(bytes), '/dev/zero'];

function checkStream(what, got, bytes, exit) {
  if (got !== bytes) throw new Error(`${what}: ${got} bytes of output, expected ${bytes}`);
  if (exit !== undefined && exit !== 0) throw new Error(`${what}: exit code ${exit}`);
}

/** Through the SDK: `commands.run('head', { onData })`, until the call resolves. */
async function streamSdk(machine, bytes) {
  let got = 0;
  const t0 = performance.now();
  const r = await machine.commands.run('head', {
    args: headArgs(bytes),
    timeoutMs: 300_000,
    onData: (b, stream) => {
      if (stream === 'stdout') got += b.length;
    },
  });
  const ms = performance.now() - t0;
  checkStream('SDK stream', got, bytes, r.exitCode);
  return ms;
}

/**
 * The same streaming run as one raw HTTP request (node:http, frames counted, nothing decoded or
 * kept): to the server's API (`POST /v1/machines/{id}/commands`, `stream: true`), or straight to
 * the agent's socket (`POST /v1/processes`, the request the server sends it).
 */
async function streamRaw(target, machineId, bytes) {
  const body =
    target.kind === 'server'
      ? { cmd: 'head', args: headArgs(bytes), shell: false, stream: true, timeout_ms: 300_000 }
      : {
          cmd: 'head',
          args: headArgs(bytes),
          shell: false,
          cwd: '/workspace',
          envs: {},
          timeout_ms: 300_000,
          background: false,
          stream: true,
          encoding: 'utf8',
        };
  const counter = frameCounter();
  const t0 = performance.now();
  await rawRequest(
    target,
    'POST',
    target.kind === 'server' ? `${target.prefix(machineId)}/commands` : '/v1/processes',
    {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
      onChunk: counter.push,
    },
  );
  const ms = performance.now() - t0;
  const exit = counter.events.find((e) => e.type === 'exit');
  if (!exit)
    throw new Error(`${target.kind} stream: no exit event (${JSON.stringify(counter.events.at(-1))})`);
  checkStream(`${target.kind} stream`, counter.outputBytes, bytes, exit.exit_code);
  return ms;
}

/**
 * The server's API with fetch, the HTTP client the SDK uses, body read the way the SDK reads it
 * (`for await` over `res.body`) but only counted: the SDK's own work (frame decoding, keeping the
 * output for the result, callbacks) is what separates this row from the SDK's.
 */
async function streamFetch(machineId, bytes) {
  const counter = frameCounter();
  const t0 = performance.now();
  const res = await fetch(`${S.server.url}/v1/machines/${machineId}/commands`, {
    method: 'POST',
    headers: { authorization: `Bearer ${S.server.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      cmd: 'head',
      args: headArgs(bytes),
      shell: false,
      stream: true,
      timeout_ms: 300_000,
    }),
  });
  if (!res.ok) throw new Error(`fetch stream: HTTP ${res.status} ${await res.text()}`);
  for await (const chunk of res.body)
    counter.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  const ms = performance.now() - t0;
  const exit = counter.events.find((e) => e.type === 'exit');
  if (!exit) throw new Error('fetch stream: no exit event');
  checkStream('fetch stream', counter.outputBytes, bytes, exit.exit_code);
  return ms;
}

/**
 * Inside the machine alone: `head -c N /dev/zero | cat >/dev/null`, timed by the agent (spawn to
 * exit, `duration_ms`): the floor a pipe in the machine, at its vCPU quota, sets.
 */
async function streamInMachine(machine, bytes) {
  const r = await machine.commands.run('bash', {
    args: ['-c', `head -c ${bytes} /dev/zero | cat >/dev/null`],
    timeoutMs: 300_000,
  });
  if (r.exitCode !== 0) throw new Error(`in-machine pipe: exit ${r.exitCode}: ${r.stderr}`);
  return r.durationMs;
}

/** Host baseline: the same `head` spawned with node:child_process, stdout read until it closes. */
function streamHost(bytes) {
  return new Promise((resolve, reject) => {
    let got = 0;
    const t0 = performance.now();
    const child = spawn('head', headArgs(bytes), { stdio: ['ignore', 'pipe', 'inherit'] });
    S.children.add(child);
    child.stdout.on('data', (c) => {
      got += c.length;
    });
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = performance.now() - t0;
      S.children.delete(child);
      try {
        checkStream('host stream', got, bytes, code);
        resolve(ms);
      } catch (err) {
        reject(err);
      }
    });
  });
}

// ---- 2. 1 MiB file round trip -------------------------------------------------------------------------

/** A fresh 1 MiB body per iteration: random, with the iteration number up front. */
function fileBody(base, i) {
  const b = Buffer.from(base);
  b.writeUInt32BE(i, 0);
  return b;
}

function checkSame(what, got, want) {
  if (!Buffer.from(got).equals(want))
    throw new Error(`${what}: read back ${got.length} bytes that differ from the ${want.length} written`);
}

/** Through the SDK: `files.write(path, data)` then `files.read(path, { format: 'bytes' })`. */
async function fileSdk(machine, path, data) {
  const t0 = performance.now();
  await machine.files.write(path, data);
  const t1 = performance.now();
  const back = await machine.files.read(path, { format: 'bytes' });
  const t2 = performance.now();
  checkSame('SDK files', back, data);
  return { total: t2 - t0, write: t1 - t0, read: t2 - t1 };
}

/** The same as raw HTTP (PUT then GET of the bytes), to the server or to the agent's socket. */
async function fileRaw(target, machineId, path, data) {
  const route =
    target.kind === 'server'
      ? `${target.prefix(machineId)}/files?path=${encodeURIComponent(path)}`
      : `/v1/files?path=${encodeURIComponent(path)}`;
  const t0 = performance.now();
  await rawRequest(target, 'PUT', route, {
    body: data,
    headers: { 'content-type': 'application/octet-stream' },
  });
  const t1 = performance.now();
  const { body } = await rawRequest(target, 'GET', route);
  const t2 = performance.now();
  checkSame(`${target.kind} files`, body, data);
  return { total: t2 - t0, write: t1 - t0, read: t2 - t1 };
}

/** The server's API with fetch (what the SDK's files.write/read send), without the SDK. */
async function fileFetch(machineId, path, data) {
  const url = `${S.server.url}/v1/machines/${machineId}/files?path=${encodeURIComponent(path)}`;
  const auth = { authorization: `Bearer ${S.server.apiKey}` };
  const t0 = performance.now();
  const put = await fetch(url, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/octet-stream' },
    body: data,
  });
  if (!put.ok) throw new Error(`fetch PUT: HTTP ${put.status} ${await put.text()}`);
  await put.json();
  const t1 = performance.now();
  const get = await fetch(url, { headers: auth });
  if (!get.ok) throw new Error(`fetch GET: HTTP ${get.status} ${await get.text()}`);
  const back = new Uint8Array(await get.arrayBuffer());
  const t2 = performance.now();
  checkSame('fetch files', back, data);
  return { total: t2 - t0, write: t1 - t0, read: t2 - t1 };
}

/** Host baseline: fs.promises writeFile + readFile. */
async function fileHost(path, data) {
  const t0 = performance.now();
  await writeFile(path, data);
  const t1 = performance.now();
  const back = await readFile(path);
  const t2 = performance.now();
  checkSame('host files', back, data);
  return { total: t2 - t0, write: t1 - t0, read: t2 - t1 };
}

/**
 * Host, the agent's way: a temp file beside the target, fsync, rename, fsync of the directory,
 * then readFile. In `dir` on the machine's own disk (its filesystem on its loop device), so the
 * difference to the agent's figure is the agent and the hops, not the disk.
 */
async function fileHostAtomic(dir, path, data) {
  const t0 = performance.now();
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const d = await open(dir, 'r');
  await d.sync().catch(() => undefined);
  await d.close();
  const t1 = performance.now();
  const back = await readFile(path);
  const t2 = performance.now();
  checkSame('host atomic files', back, data);
  return { total: t2 - t0, write: t1 - t0, read: t2 - t1 };
}

/** Where the machine's disk is mounted on the host (its upper dir is under it), if it is. */
async function machineDiskMount(machineId) {
  const dir = join(S.dataDir, 'machines', machineId);
  const mounts = await mountsUnder(dir);
  return mounts.find((m) => m.endsWith('/disk')) ?? undefined;
}

// ---- 3. PTY echo ----------------------------------------------------------------------------------

/**
 * Times one-byte echoes on a terminal running PTY_SCRIPT: `send(byte)` writes it, `deliver(buf)`
 * must be called with every output chunk. Waits for the script's `R` (raw mode on) first.
 */
function echoer(name, send) {
  let waiting;
  let ready;
  const readyP = new Promise((resolve) => {
    ready = resolve;
  });
  let seenReady = false;
  const stray = [];
  const deliver = (buf) => {
    if (!seenReady) {
      if (buf.includes(0x52)) {
        seenReady = true;
        ready();
      }
      return;
    }
    if (!waiting) {
      stray.push(buf);
      return;
    }
    const w = waiting;
    waiting = undefined;
    if (buf.length !== 1 || buf[0] !== w.byte)
      w.reject(new Error(`${name}: sent ${w.byte}, got ${JSON.stringify(buf.toString('latin1'))}`));
    else w.resolve(performance.now() - w.t0);
  };
  let n = 0;
  const once = () => {
    if (stray.length)
      throw new Error(`${name}: unexpected output ${JSON.stringify(Buffer.concat(stray).toString())}`);
    const byte = 0x61 + (n++ % 26); // a..z
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: no echo within 5 s`)), 5000);
      waiting = {
        byte,
        t0: performance.now(),
        resolve: (ms) => {
          clearTimeout(timer);
          resolve(ms);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      send(Buffer.from([byte]));
    });
  };
  const whenReady = (ms = 10_000) =>
    Promise.race([
      readyP,
      sleep(ms).then(() => {
        throw new Error(`${name}: the terminal did not start (${PTY_SCRIPT}) within ${ms} ms`);
      }),
    ]);
  return { deliver, once, whenReady };
}

/** Through the SDK: `pty.create({ onData })`, `sendInput(byte)`. */
async function ptySdk(machine) {
  // The script's `R` may arrive before create() resolves: the echoer exists first.
  const e = echoer('SDK pty', (b) => {
    term.sendInput(b).catch(() => undefined);
  });
  const term = await machine.pty.create({
    cols: 80,
    rows: 24,
    cmd: 'bash',
    args: ['-c', PTY_SCRIPT],
    onData: (b) => e.deliver(b),
  });
  await e.whenReady();
  return { once: e.once, close: () => term.kill().catch(() => undefined) };
}

/**
 * A WebSocket attached to a terminal without the SDK: the server's route (`/v1/machines/{id}/pty/
 * {pid}/ws`, the server bridges it to the agent) or the agent's own (`/v1/processes/{pid}/ws` on
 * its socket). Messages are `[kind][payload]`; kind 1 is terminal input and output.
 */
async function ptyRawWs(target, machineId) {
  const create = target.kind === 'server' ? `${target.prefix(machineId)}/pty` : '/v1/pty';
  const body =
    target.kind === 'server'
      ? { cols: 80, rows: 24, cmd: 'bash', args: ['-c', PTY_SCRIPT] }
      : { cols: 80, rows: 24, cmd: 'bash', args: ['-c', PTY_SCRIPT], cwd: '/workspace', envs: {} };
  const { body: infoBuf } = await rawRequest(target, 'POST', create, {
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  const { pid } = JSON.parse(infoBuf.toString());
  const url =
    target.kind === 'server'
      ? `ws://127.0.0.1:${S.server.port}${target.prefix(machineId)}/pty/${pid}/ws`
      : `ws+unix://${target.socketPath}:/v1/processes/${pid}/ws`;
  const ws = new WebSocket(url, { headers: target.headers, perMessageDeflate: false });
  S.sockets.add(ws);
  const e = echoer(`${target.kind} pty ws`, (b) => {
    const msg = Buffer.allocUnsafe(2);
    msg[0] = 1;
    msg[1] = b[0];
    ws.send(msg);
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary && data.length > 0 && data[0] === 1) e.deliver(data.subarray(1));
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`${url}: HTTP ${res.statusCode}`)));
  });
  ws.on('error', () => undefined); // a late error shows up as a missing echo
  await e.whenReady();
  const close = async () => {
    await rawRequest(
      target,
      'POST',
      target.kind === 'server'
        ? `${target.prefix(machineId)}/pty/${pid}/signal`
        : `/v1/processes/${pid}/signal`,
      { body: JSON.stringify({ signal: 'SIGKILL' }), headers: { 'content-type': 'application/json' } },
    ).catch(() => undefined);
    ws.terminate();
    S.sockets.delete(ws);
  };
  return { once: e.once, close };
}

/** Host baseline: the same script on a PTY opened with node-pty in this process. */
async function ptyHost() {
  const nodePty = createRequire(join(REPO_ROOT, 'packages/agent/package.json'))('node-pty');
  const term = nodePty.spawn('bash', ['-c', PTY_SCRIPT, MARK], {
    name: 'xterm-256color',
    cols: 80,
    rows: 24,
    cwd: os.tmpdir(),
    env: { ...process.env, TERM: 'xterm-256color' },
    encoding: null,
  });
  const child = { pid: term.pid, kill: (sig) => term.kill(sig) };
  S.children.add(child);
  const e = echoer('host pty', (b) => term.write(b));
  term.onData((d) => e.deliver(typeof d === 'string' ? Buffer.from(d) : d));
  await e.whenReady();
  const close = async () => {
    term.kill('SIGKILL');
    await waitGone(term.pid).catch(() => undefined);
    S.children.delete(child);
  };
  return { once: e.once, close };
}

// ---- the benchmark ------------------------------------------------------------------------------

async function bench(opts, templatesDir) {
  const { R, push } = samples();
  const info = {};
  await readClockTicks();

  makeRunDir(S);
  await startServerProcess(S, templatesDir, { args: [MARK] });
  const machine = await createMachineViaSdk(S, {
    timeout: MACHINE_TIMEOUT_S,
    ...(opts.vcpus === undefined ? {} : { vcpus: opts.vcpus }),
  });
  const m = await api('GET', `/v1/machines/${machine.id}`);
  info.vcpus = m.vcpus;
  info.memoryMb = m.memory_mb;
  info.machineHead = (await machine.commands.run('head', { args: ['--version'] })).stdout.split('\n')[0];
  info.machineFs = (
    await machine.commands.run('bash', {
      args: ['-c', 'findmnt -n -o FSTYPE,SOURCE -T /workspace || df -T /workspace | tail -1'],
    })
  ).stdout.trim();
  const server = serverTarget();
  const agent = agentTarget(machine.id);
  const agentPidOnHost = agentPid(machine.id);
  const hostBefore = load.sample(machine.id);
  printRun(S, [
    [
      'machine',
      `${machine.id}: ${info.vcpus} vCPU (CFS quota), ${info.memoryMb} MB, template ${TEMPLATE}; agent pid ${agentPidOnHost ?? '?'} on the host`,
    ],
    ['machine head', info.machineHead],
    [
      'settings',
      `stream ${opts.streamMiB} MiB × ${opts.streamRuns}, file 1 MiB × ${opts.fileIterations}, ` +
        `pty × ${opts.ptyIterations}, warm-up ${opts.warmup} per series`,
    ],
  ]);

  // 1. Streamed output: every path once per run (SDK, fetch, node:http, agent alone, in-machine
  //    pipe, host), in a random order.
  const bytes = opts.streamMiB * MiB;
  progress(
    `streamed output: ${opts.streamMiB} MiB × ${opts.streamRuns} (+${opts.warmup}) each through the SDK, ` +
      'the server with fetch and node:http, the agent alone, inside the machine, and on the host',
  );
  // Where the CPU goes while each machine path streams: sampled around every timed run, summed.
  info.cpu = { streamSdk: {}, streamFetch: {}, streamServer: {}, streamAgent: {} };
  const paths = [
    ['streamSdk', () => streamSdk(machine, bytes)],
    ['streamFetch', () => streamFetch(machine.id, bytes)],
    ['streamServer', () => streamRaw(server, machine.id, bytes)],
    ['streamAgent', () => streamRaw(agent, machine.id, bytes)],
    ['streamInside', () => streamInMachine(machine, bytes)],
    ['streamHost', () => streamHost(bytes)],
  ];
  for (let i = -opts.warmup; i < opts.streamRuns; i++) {
    checkInterrupted();
    for (const [key, run] of shuffled(paths)) {
      const before = info.cpu[key] && cpuNow(machine.id, agentPidOnHost);
      const ms = await run();
      if (i < 0) continue;
      push(key, ms);
      if (before) cpuAdd(info.cpu[key], before, cpuNow(machine.id, agentPidOnHost));
    }
  }

  // 2. 1 MiB file round trip.
  const base = randomBytes(FILE_BYTES);
  const hostDir = join(S.tmp, 'host-files');
  await mkdir(hostDir, { recursive: true });
  const diskMount = await machineDiskMount(machine.id);
  const diskDir = diskMount ? join(diskMount, `nsbench-host-files-${process.pid}`) : undefined;
  if (diskDir) await mkdir(diskDir, { recursive: true });
  info.diskFs = diskMount ? await filesystemOf(diskMount) : undefined;
  const hasFiles = typeof machine.files?.write === 'function' && typeof machine.files?.read === 'function';
  info.filesSdk = hasFiles;
  const filesPath = '/workspace/nsbench-1mib.bin';
  const probe = async (fn) => {
    try {
      await fn();
      return undefined;
    } catch (err) {
      return err.message.slice(0, 160);
    }
  };
  info.filesServer = await probe(() => fileRaw(server, machine.id, filesPath, fileBody(base, 0)));
  info.filesAgent = await probe(() => fileRaw(agent, machine.id, filesPath, fileBody(base, 0)));
  info.filesSdkError = hasFiles
    ? await probe(() => fileSdk(machine, filesPath, fileBody(base, 0)))
    : undefined;
  progress(
    `1 MiB file write + read × ${opts.fileIterations} (+${opts.warmup}) through the SDK, the server ` +
      '(fetch, node:http), the agent alone, and on the host',
  );
  const filePaths = [
    ...(hasFiles && !info.filesSdkError ? [['fileSdk', (d) => fileSdk(machine, filesPath, d)]] : []),
    ...(info.filesServer
      ? []
      : [
          ['fileFetch', (d) => fileFetch(machine.id, filesPath, d)],
          ['fileServer', (d) => fileRaw(server, machine.id, filesPath, d)],
        ]),
    ...(info.filesAgent ? [] : [['fileAgent', (d) => fileRaw(agent, machine.id, filesPath, d)]]),
    ['fileHost', (d) => fileHost(join(hostDir, 'f.bin'), d)],
    ...(diskDir ? [['fileHostAtomic', (d) => fileHostAtomic(diskDir, join(diskDir, 'f.bin'), d)]] : []),
  ];
  for (let i = -opts.warmup; i < opts.fileIterations; i++) {
    if (i % 20 === 0) checkInterrupted();
    const data = fileBody(base, i + opts.warmup);
    for (const [key, run] of shuffled(filePaths)) {
      const t = await run(data);
      if (i < 0) continue;
      push(key, t.total);
      push(`${key}Write`, t.write);
      push(`${key}Read`, t.read);
    }
  }
  if (diskDir) await rm(diskDir, { recursive: true, force: true });

  // 3. PTY echo: one terminal per path, one echo on each per iteration.
  progress(
    `PTY echo × ${opts.ptyIterations} (+${opts.warmup * 20}): SDK, server WebSocket, agent WebSocket, host node-pty`,
  );
  const terms = [
    ['ptySdk', await ptySdk(machine)],
    ['ptyServer', await ptyRawWs(server, machine.id)],
    ['ptyAgent', await ptyRawWs(agent, machine.id)],
    ['ptyHost', await ptyHost()],
  ];
  try {
    for (let i = -opts.warmup * 20; i < opts.ptyIterations; i++) {
      if (i % 50 === 0) checkInterrupted();
      for (const [key, t] of shuffled(terms)) {
        const ms = await t.once();
        if (i >= 0) push(key, ms);
      }
    }
  } finally {
    for (const [, t] of terms) await t.close();
  }

  load.add(hostBefore, load.sample(machine.id));
  info.load = load.summary();
  await killMachineViaSdk(S, machine);
  return { R, info, opts, bytes };
}

// ---- report -------------------------------------------------------------------------------------

function report({ R, info, opts, bytes }) {
  const s = statsOf(R);
  const rate = rateOf(bytes);

  console.log(
    `\n1. Streamed output, ${opts.streamMiB} MiB of \`head -c ${bytes} /dev/zero\` (MB/s = 10^6 B/s; ` +
      'p50 from the median time, p95 from the 95th-percentile time, i.e. the slow end)',
  );
  const streamRow = (label, st, target) => [
    label,
    ...rateCells(st, rate),
    target === undefined ? '' : `≥ ${target}`,
    target === undefined ? '' : rate(st?.p50) >= target ? 'PASS' : 'MISS',
  ];
  printTable(
    ['path', ...RATE_COLUMNS, 'target', 'result'],
    [
      streamRow('SDK: commands.run(head, { onData })', s.streamSdk, TARGETS.streamMBs),
      streamRow('  server API with fetch (web streams), bytes counted', s.streamFetch),
      streamRow('  server API with node:http, frames counted', s.streamServer),
      streamRow("  agent alone (its Unix socket, the server's request)", s.streamAgent),
      streamRow('  inside the machine: head | cat >/dev/null (agent-timed)', s.streamInside),
      streamRow('  baseline: head spawned on the host (child_process)', s.streamHost),
    ],
    'lrrrrrrrl',
  );
  console.log(
    '\n   CPU while streaming: % of one core, summed over the timed runs of each path (bench = this\n' +
      "   process, i.e. the client; command = the machine's cgroup minus the agent: head, tini); the\n" +
      `   machine's CFS quota is ${info.vcpus} vCPU = ${100 * info.vcpus}%`,
  );
  printTable(
    ['path', 'client', 'server', 'agent', 'command', 'machine', 'throttled periods'],
    [
      ['streamSdk', 'SDK'],
      ['streamFetch', 'fetch'],
      ['streamServer', 'node:http via server'],
      ['streamAgent', 'agent alone'],
    ].map(([key, label]) => {
      const c = info.cpu[key];
      const pct = (x) => percent(x, c.wall);
      return [
        label,
        pct(c.bench),
        key === 'streamAgent' ? '-' : pct(c.server),
        pct(c.agent),
        pct(c.machine - c.agent),
        pct(c.machine),
        `${c.throttled} of ${c.periods} (${fmt(c.throttledMs, 0)} ms)`,
      ];
    }),
    'lrrrrrr',
  );

  console.log('\n2. 1 MiB file: write then read back the bytes, compared (ms; p50/p95 nearest-rank)');
  const msRow = (label, st, target) => latencyRow(label, st, target, 2);
  const fileRows = [];
  const fileSeries = [
    ['fileSdk', 'SDK: files.write + files.read(bytes)', TARGETS.fileP50Ms],
    ['fileFetch', '  server API with fetch: PUT + GET …/files?path='],
    ['fileServer', '  server API with node:http: PUT + GET …/files?path='],
    ['fileAgent', '  agent alone: PUT + GET /v1/files?path= on its socket'],
    ['fileHostAtomic', `  host, the agent's way (tmp, fsync, rename) on the machine's disk`],
    ['fileHost', '  baseline: fs.promises writeFile + readFile on the host (/tmp)'],
  ];
  for (const [key, label, target] of fileSeries) {
    fileRows.push(msRow(label, s[key], target));
    if (s[key]?.n) {
      fileRows.push(msRow('      of which write', s[`${key}Write`]));
      fileRows.push(msRow('      of which read', s[`${key}Read`]));
    }
  }
  printLatencyTable('path', fileRows);
  const notAvailable = [
    [
      'SDK files',
      info.filesSdk ? info.filesSdkError : 'machine.files is not in the SDK (packages/sdk/src/files.ts)',
    ],
    ['server files route', info.filesServer],
    ['agent files route', info.filesAgent],
  ].filter(([, why]) => why);
  for (const [what, why] of notAvailable) console.log(`   not measured: ${what}: ${why}`);
  if (info.diskFs)
    console.log(`   the machine's disk: ${info.diskFs}; /workspace in the machine: ${info.machineFs}`);

  console.log('\n3. PTY echo: one byte sent, until it comes back (ms; `stty raw -echo; cat`; sequential)');
  printLatencyTable('path', [
    msRow('SDK: pty.create + sendInput, onData', s.ptySdk, TARGETS.ptyP50Ms),
    msRow('  server WebSocket without the SDK (ws)', s.ptyServer),
    msRow('  agent alone: its WebSocket on its socket', s.ptyAgent),
    msRow('  baseline: node-pty on the host, in this process', s.ptyHost),
  ]);

  printConditions(
    info.load,
    'the bench, its server and its machine',
    " (kernel threads doing the machine's disk I/O included)",
  );
  hints(s, info, rate);
}

/**
 * Walks a path hop by hop (p50 ms, each row one hop more than the one before) and says where the
 * time is added: "a 2.6 → b 9.5 (+6.9) → …; the most is added by b (+6.9 ms, 34% of the total)".
 */
function pathHint(parts) {
  const known = parts.filter(([, v]) => v !== undefined && !Number.isNaN(v));
  let worst;
  const text = known
    .map(([name, v], i) => {
      if (i === 0) return `${name} ${fmt(v, 2)}`;
      const add = v - known[i - 1][1];
      if (!worst || add > worst.add) worst = { name, add };
      return `${name} ${fmt(v, 2)} (${signed(add)})`;
    })
    .join(' → ');
  const total = known.at(-1)?.[1];
  return worst
    ? `${text} ms; the most is added by "${worst.name}" (+${fmt(worst.add, 2)} ms, ${percent(worst.add, total)} of the total)`
    : text;
}

/** For a missed target: which hop the time goes to, from the rows above. */
function hints(s, info, rate) {
  const out = [];
  const sdkRate = rate(s.streamSdk?.p50);
  if (sdkRate !== undefined && sdkRate < TARGETS.streamMBs) {
    const share = (key, part) => (100 * info.cpu[key][part]) / info.cpu[key].wall;
    const busy = [];
    if (share('streamSdk', 'bench') > 85)
      busy.push(`the client (SDK) process was busy ${fmt(share('streamSdk', 'bench'), 0)}% of a core`);
    if (share('streamSdk', 'server') > 85) busy.push(`the server ${fmt(share('streamSdk', 'server'), 0)}%`);
    if (share('streamSdk', 'machine') > 85 * info.vcpus || info.cpu.streamSdk.throttled > 0)
      busy.push(
        `the machine ${fmt(share('streamSdk', 'machine'), 0)}% against its ${100 * info.vcpus}% quota ` +
          `(throttled in ${info.cpu.streamSdk.throttled} of ${info.cpu.streamSdk.periods} periods)`,
      );
    out.push(
      `streamed output misses ${TARGETS.streamMBs} MB/s (${fmt(sdkRate, 0)}). Time per run, p50: ` +
        pathHint([
          ['inside the machine', s.streamInside?.p50],
          ['agent alone', s.streamAgent?.p50],
          ['+ server (node:http)', s.streamServer?.p50],
          ['+ SDK', s.streamSdk?.p50],
        ]) +
        (busy.length ? `. During the SDK runs ${busy.join('; ')}.` : '.'),
    );
  }
  /** A missed latency target: the path hop by hop, the SDK's own row last. */
  const missed = (what, target, sdk, hops) => {
    if (sdk?.n && sdk.p50 > target)
      out.push(`${what} misses ${target} ms. p50: ${pathHint([...hops, ['+ SDK', sdk.p50]])}.`);
  };
  missed('the 1 MiB round trip', TARGETS.fileP50Ms, s.fileSdk, [
    ["host, the agent's way, on the machine's disk", s.fileHostAtomic?.p50],
    ['agent alone', s.fileAgent?.p50],
    ['+ server (node:http)', s.fileServer?.p50],
  ]);
  missed('PTY echo', TARGETS.ptyP50Ms, s.ptySdk, [
    ['host node-pty', s.ptyHost?.p50],
    ['agent alone', s.ptyAgent?.p50],
    ['+ server', s.ptyServer?.p50],
  ]);
  printHints(out);
}

runBench({
  script: 'bench/inside.mjs',
  usage: USAGE,
  options: {
    streamMiB: ['stream-mib', 256, 1],
    streamRuns: ['stream-runs', 15, 1],
    fileIterations: ['file-iterations', 200, 1],
    ptyIterations: ['pty-iterations', 1000, 1],
    warmup: ['warmup', 1, 0],
    vcpus: ['vcpus', undefined, 1],
  },
  preflight: templateHas('usr', 'bin', 'head'),
  title: 'Nullspace inside-a-machine benchmark',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machine(s) checked: no runc container, mount, loop device, netns or cgroup left;` +
    ' server stopped, host processes gone, temp dir removed',
});
