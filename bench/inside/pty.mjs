/**
 * The inside bench's PTY series: one-byte echoes on a terminal in the machine through the SDK, the
 * server's WebSocket and the agent's own, beside a terminal on the host (node-pty).
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { REPO_ROOT, checkInterrupted, progress, shuffled, waitGone } from '../lib.mjs';
import { rawRequest } from './raw-http.mjs';
import { MARK, S } from './state.mjs';

/** What the PTYs run: raw mode, no echo, so each byte sent comes straight back from `cat`. */
const PTY_SCRIPT = 'stty raw -echo; printf R; exec cat';

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

/**
 * 3. PTY echo: one terminal per path, one echo on each per iteration, in a random order; `push`
 * keeps the samples. The terminals are closed at the end, also on a failure.
 */
export async function measurePty({ machine, server, agent, opts, push }) {
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
}
