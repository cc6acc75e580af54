/**
 * The inside bench's streamed-output series: `head -c N /dev/zero` in the machine, its output
 * streamed through the SDK, the server's API (fetch, node:http) and the agent alone, beside the
 * same pipe inside the machine and `head` on the host.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { MiB, checkInterrupted, cpuAdd, progress, shuffled } from '../lib.mjs';
import { cpuNow } from './cpu.mjs';
import { frameCounter, rawRequest } from './raw-http.mjs';
import { S } from './state.mjs';

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

/**
 * 1. Streamed output: every path once per run (SDK, fetch, node:http, agent alone, in-machine
 * pipe, host), in a random order; `push` keeps the samples, `info.cpu` where the CPU goes. Resolves
 * with the bytes per run.
 */
export async function measureStream({ machine, server, agent, agentPidOnHost, opts, push, info }) {
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
  return bytes;
}
