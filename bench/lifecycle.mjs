#!/usr/bin/env node
/**
 * Lifecycle benchmark: pause/resume, hibernate/resume (100 MiB resident), snapshot freeze, fork
 * until the child answers, and lifecycle event delivery, through a real server over HTTP, beside the
 * raw building blocks (cgroup v1 freezer, criu dump/restore of a plain process, create from a
 * template) measured in the same run.
 * Run as root from the repository root: `node bench/lifecycle.mjs [--iterations N]`. See bench/README.md.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiError,
  CGROUP_V2,
  MiB,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  apiRequest,
  checkInterrupted,
  cleanUpRun,
  cmdline,
  createMachineViaApi,
  filesystemOf,
  fmt,
  killChildren,
  killMachineViaApi,
  latencyRow,
  makeRunDir,
  pidGone,
  pidsWith,
  printHost,
  printLatencyTable,
  printRun,
  printTable,
  progress,
  rssBytes,
  runBench,
  runState,
  samples,
  sh,
  startServerProcess,
  statsOf,
  stopServerAndMachines,
  timed,
  toolVersion,
  trackMachine,
  waitGone,
} from './lib.mjs';

/** Targets from the lifecycle issue (ms); they apply to p50 and are informational. */
const TARGETS = {
  pause: 20,
  resume: 20,
  hibernate: 400,
  restore: 400,
  snapshotPaused: 300,
  fork: 500,
  event: 20,
};
const BALLAST_MIB = 100;
/** In every ballast process's command line, so the bench can recognise (and only kill) its own. */
const MARK = `nsbench-lifecycle-${process.pid}`;
const FREEZER_ROOT = '/sys/fs/cgroup/freezer';
const CRIU = '/usr/local/sbin/criu';
/** Long poll: how long the server may hold a poll, and the pause before the transition is triggered. */
const POLL_WAIT_MS = 10_000;
const SUBSCRIBE_SETTLE_MS = 30;

const USAGE = `usage: node bench/lifecycle.mjs [options]   (as root, from the repository root)
  --iterations N   timed iterations of every series (default 10)
  --warmup N       warm-up iterations before each series, not counted (default 1)
${USAGE_ENVIRONMENT}`;

// ---- small helpers ----------------------------------------------------------------------------

/** Kills a pid only if it is still one of ours (its command line carries `needle`). */
async function killOurs(pid, needle) {
  if (pidGone(pid) || !cmdline(pid).includes(needle)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitGone(pid);
}

async function dirBytes(dir) {
  return Number((await sh('du', ['-sb', dir])).split(/\s/)[0]);
}

// ---- host -------------------------------------------------------------------------------------

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['runc', await toolVersion('runc', ['--version'], 2)],
    ['criu', await toolVersion(CRIU, ['--version'])],
    ['node', process.version],
    [
      'cgroups',
      CGROUP_V2
        ? 'v2'
        : `v1 (hybrid; freezer at ${FREEZER_ROOT}${existsSync(FREEZER_ROOT) ? '' : ': MISSING'})`,
    ],
    [
      '/tmp',
      `${await filesystemOf('/tmp')} (server data dir, snapshot images and the criu baseline's images)`,
    ],
  ]);
}

// ---- state and cleanup --------------------------------------------------------------------------

/**
 * Everything the bench made (see runState); the server is a child process (its own event loop, so
 * timings are not shared with the bench). Besides: reusable snapshots not deleted yet, the pids of
 * restored criu baseline processes (no longer node's children) and our freezer cgroup.
 */
const S = runState({ snapshots: new Set(), restoredPids: new Set(), freezerDir: undefined });

async function cleanup(note) {
  // 1. Snapshots and machines through the API, then the server (by its pid).
  if (S.server?.url) {
    for (const id of [...S.snapshots]) {
      await api('DELETE', `/v1/snapshots/${id}`).then(
        () => S.snapshots.delete(id),
        note(`delete snapshot ${id}`),
      );
    }
  }
  await stopServerAndMachines(S, note);
  // 2. Baselines: thaw and empty our freezer cgroup, kill what we started, by pid.
  if (S.freezerDir && existsSync(S.freezerDir)) {
    try {
      writeFileSync(join(S.freezerDir, 'freezer.state'), 'THAWED');
    } catch (err) {
      note('thaw freezer cgroup')(err);
    }
  }
  for (const pid of S.restoredPids) await killOurs(pid, MARK).catch(note(`criu baseline process ${pid}`));
  await killChildren(S.children, note);
  if (S.freezerDir && existsSync(S.freezerDir)) {
    for (let i = 0; i < 50 && existsSync(S.freezerDir); i++) {
      try {
        rmdirSync(S.freezerDir);
      } catch (err) {
        if (i === 49) note(`rmdir ${S.freezerDir}`)(err);
        else await sleep(20);
      }
    }
  }
  // 3. Runtime leftovers (containers in the server's runc root, network namespaces, mounts), then
  //    the check.
  const { leaks, checked } = await cleanUpRun(S, note, { mark: MARK });
  if (S.freezerDir && existsSync(S.freezerDir)) leaks.push(`cgroup ${S.freezerDir}`);
  return { leaks, checked };
}

// ---- HTTP ---------------------------------------------------------------------------------------

/** One JSON request to the server with the API key (see apiRequest). */
const api = (method, path, body) => apiRequest(S.server, method, path, body);

const createMachine = () => createMachineViaApi(S);
const killMachine = (id) => killMachineViaApi(S, id);

async function run(id, cmd, opts = {}) {
  const r = await api('POST', `/v1/machines/${id}/commands`, { cmd, ...opts });
  if (r.exit_code !== 0) throw new Error(`${cmd} in ${id} exited ${r.exit_code}: ${r.stderr}`);
  return r;
}

function expectStatus(info, status, what) {
  if (info?.status !== status) throw new Error(`${what}: status ${info?.status}, expected ${status}`);
  return info;
}

// ---- ballast: ~100 MiB resident -----------------------------------------------------------------

const ballastPython = (tag) =>
  `import time; tag="${tag}"; b=bytearray(${BALLAST_MIB}*1024*1024); ` +
  '[b.__setitem__(i,1) for i in range(0,len(b),4096)]; time.sleep(1e9)';

async function waitRss(pids, what) {
  const deadline = performance.now() + 20_000;
  for (;;) {
    const rss = pids().reduce((sum, pid) => sum + rssBytes(pid), 0);
    if (rss >= BALLAST_MIB * MiB) return rss;
    if (performance.now() > deadline)
      throw new Error(`${what}: resident ${fmt(rss / MiB)} MiB after 20 s, expected ≥ ${BALLAST_MIB}`);
    await sleep(50);
  }
}

/** The ballast processes of one machine, seen from the host (same kernel). */
const machineBallastPids = (machineId) => () => pidsWith(`${MARK}-${machineId}`);

async function startMachineBallast(machineId) {
  const py = ballastPython(`${MARK}-${machineId}`);
  await run(machineId, `nohup python3 -c '${py}' >/dev/null 2>&1 </dev/null &`, { shell: true });
  return waitRss(machineBallastPids(machineId), `ballast in ${machineId}`);
}

// ---- baselines ------------------------------------------------------------------------------------

/** A plain `sleep` in our own freezer cgroup (v1). */
async function makeFreezerBaseline() {
  if (!existsSync(FREEZER_ROOT)) return undefined;
  S.freezerDir = join(FREEZER_ROOT, `nullspace-bench-${process.pid}`);
  await mkdir(S.freezerDir);
  const child = spawn('/bin/sleep', ['1000000', MARK], { stdio: 'ignore' });
  S.children.add(child);
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  writeFileSync(join(S.freezerDir, 'cgroup.procs'), String(child.pid));
  const state = join(S.freezerDir, 'freezer.state');
  /** Writes `to` and reads freezer.state until it says so (as runc does); ms. */
  const transition = (to) => {
    const t0 = performance.now();
    writeFileSync(state, to);
    for (let i = 0; readFileSync(state, 'utf8').trim() !== to; i++) {
      if (i > 1_000_000) throw new Error(`freezer.state never reached ${to}`);
    }
    return performance.now() - t0;
  };
  return { freeze: () => transition('FROZEN'), thaw: () => transition('THAWED') };
}

/**
 * A plain host python holding the same 100 MiB (setsid, stdio /dev/null), dumped and restored with
 * criu as it is: `dump` kills it, `restore -d` brings it back under the same pid.
 */
async function makeCriuBaseline() {
  const tag = `${MARK}-host`;
  const child = spawn('/usr/bin/python3', ['-c', ballastPython(tag)], { stdio: 'ignore', detached: true });
  // Tracked by pid (with its tag checked before a kill): after a restore the same pid is no longer
  // node's child.
  S.restoredPids.add(child.pid);
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid;
  const rss = await waitRss(() => [pid], 'host ballast');
  let n = 0;
  const imagesDir = () => join(S.tmp, 'criu', String(n));
  const criu = async (args, dir, log) => {
    try {
      await sh(CRIU, [...args, '-D', dir, '-o', log], { timeoutMs: 60_000 });
    } catch (err) {
      const text = await readFile(join(dir, log), 'utf8').catch(() => '');
      const errors = text
        .split('\n')
        .filter((l) => /Error|error/.test(l))
        .slice(0, 3)
        .join(' | ');
      throw new Error(`${err.message}${errors ? `: ${errors}` : ''}`);
    }
  };
  return {
    pid,
    rss,
    /** `criu dump` (the process ends) then `criu restore -d`; ms each, and the image size. */
    async dumpRestore() {
      n++;
      const dir = imagesDir();
      await mkdir(dir, { recursive: true });
      const t0 = performance.now();
      await criu(['dump', '-t', String(pid)], dir, 'dump.log');
      const t1 = performance.now();
      // criu restores the same pid: it must be free (node reaps its child, pid 1 a restored one).
      await waitGone(pid, { free: true });
      const bytes = await dirBytes(dir);
      const t2 = performance.now();
      await criu(['restore', '-d', '--pidfile', join(dir, 'restore.pid')], dir, 'restore.log');
      const t3 = performance.now();
      const restored = Number(readFileSync(join(dir, 'restore.pid'), 'utf8').trim());
      S.restoredPids.add(restored);
      if (restored !== pid) throw new Error(`criu restored pid ${restored}, expected ${pid}`);
      await rm(dir, { recursive: true, force: true });
      return { dump: t1 - t0, restore: t3 - t2, bytes };
    },
    /** `criu dump --leave-running`: the process is frozen for about this long; ms. */
    async dumpLeaveRunning() {
      n++;
      const dir = imagesDir();
      await mkdir(dir, { recursive: true });
      const t0 = performance.now();
      await criu(['dump', '--leave-running', '-t', String(pid)], dir, 'dump.log');
      const ms = performance.now() - t0;
      await rm(dir, { recursive: true, force: true });
      return ms;
    },
    residentNow: () => rssBytes(pid),
  };
}

// ---- lifecycle events -----------------------------------------------------------------------------

/** The machine's newest event id (pages through the long-poll route with wait_ms=0). */
async function lastEventId(machineId, after = 0) {
  let cursor = after;
  for (;;) {
    const page = await api(
      'GET',
      `/v1/machines/${machineId}/lifecycle/events?after_event_id=${cursor}&limit=1000`,
    );
    cursor = page.last_event_id;
    if (page.events.length < 1000) return cursor;
  }
}

const isPausedEvent = (e) => e.type === 'status_changed' && e.status === 'paused';

/**
 * Long-polls from `after` until an event matching `pred` arrives; resolves with its arrival time
 * (performance.now() when the page holding it had fully arrived) and the number of polls it took.
 */
async function longPollFor(machineId, after, pred) {
  let cursor = after;
  for (let polls = 1; ; polls++) {
    const page = await api(
      'GET',
      `/v1/machines/${machineId}/lifecycle/events?after_event_id=${cursor}&wait_ms=${POLL_WAIT_MS}`,
    );
    const at = performance.now();
    const hit = page.events.find(pred);
    if (hit) return { at, polls, event: hit };
    if (page.events.length === 0 && polls > 3) throw new Error('long poll: no paused event within 3 polls');
    cursor = page.last_event_id;
  }
}

/** Opens the WebSocket route (live only) with the `ws` package, if it is installed; else a reason. */
async function openWs(machineId) {
  let WebSocket;
  try {
    ({ WebSocket } = await import('ws'));
    WebSocket ??= (await import('ws')).default;
  } catch (err) {
    return { unavailable: `the ws package is not installed (${err.code ?? err.message})` };
  }
  const url = `${S.server.url.replace(/^http/, 'ws')}/v1/machines/${machineId}/lifecycle/ws?live_only=true`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${S.server.apiKey}` } });
  const waiters = new Set();
  ws.on('message', (data) => {
    const at = performance.now();
    let msg;
    try {
      msg = JSON.parse(String(data));
    } catch {
      return;
    }
    for (const w of waiters) w(msg, at);
  });
  const next = (pred, ms = 10_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`WebSocket: nothing matching within ${ms} ms`));
      }, ms);
      const w = (msg, at) => {
        if (!pred(msg)) return;
        clearTimeout(timer);
        waiters.delete(w);
        resolve({ msg, at });
      };
      waiters.add(w);
    });
  // With live_only the server says `live` at once; wait for it (briefly) so no event is missed.
  const live = next((m) => m.type === 'live', 2000);
  live.catch(() => undefined);
  try {
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  } catch (err) {
    ws.terminate();
    return { unavailable: `WebSocket route: ${err.message}` };
  }
  ws.on('error', () => undefined); // a late error shows up as a missing event instead
  const sawLive = await live.then(
    () => true,
    () => false,
  );
  return { ws, next, sawLive };
}

// ---- the benchmark ------------------------------------------------------------------------------

async function bench(opts, templatesDir) {
  const { iterations: n, warmup } = opts;
  const { R, push } = samples();
  const info = {};

  makeRunDir(S);
  await mkdir(join(S.tmp, 'criu'), { recursive: true });
  await startServerProcess(S, templatesDir, { config: { snapshotsDir: join(S.dataDir, 'snapshots') } });
  printRun(S, [
    ['settings', `${n} timed iterations per series, ${warmup} warm-up (not counted) before each`],
  ]);

  progress('machines: one idle (pause, snapshot, fork, events), one holding 100 MiB (hibernate, snapshot)');
  const idle = await createMachine();
  const heavy = await createMachine();
  info.heavyRssBefore = await startMachineBallast(heavy.id);

  // 1. pause / connect on the idle machine, interleaved with the raw freezer.
  progress(`pause/connect ×${n} (+${warmup}), interleaved with the freezer cgroup baseline`);
  const freezer = await makeFreezerBaseline();
  for (let i = -warmup; i < n; i++) {
    checkInterrupted();
    const [pauseMs, paused] = await timed(() => api('POST', `/v1/machines/${idle.id}/pause`));
    expectStatus(paused, 'paused', 'pause');
    if (!paused.snapshot_id) throw new Error('pause: no snapshot_id');
    const [resumeMs, resumed] = await timed(() => api('POST', `/v1/machines/${idle.id}/connect`, {}));
    expectStatus(resumed, 'running', 'connect after pause');
    await run(idle.id, 'true', { args: [] }); // it really runs again (untimed)
    const [getMs] = await timed(() => api('GET', `/v1/machines/${idle.id}`));
    const freezeMs = freezer?.freeze();
    const thawMs = freezer?.thaw();
    if (i < 0) continue;
    push('pause', pauseMs);
    push('resume', resumeMs);
    push('get', getMs);
    if (freezer) {
      push('freeze', freezeMs);
      push('thaw', thawMs);
    }
  }

  // 2. hibernate / connect of the 100 MiB machine, interleaved with criu dump/restore of a host process.
  progress(
    `hibernate/connect (${BALLAST_MIB} MiB resident) ×${n} (+${warmup}), interleaved with criu dump/restore`,
  );
  const criu = await makeCriuBaseline();
  info.hostRss = criu.rss;
  for (let i = -warmup; i < n; i++) {
    checkInterrupted();
    const [hibMs, hib] = await timed(() => api('POST', `/v1/machines/${heavy.id}/hibernate`));
    expectStatus(hib, 'hibernated', 'hibernate');
    if (i === n - 1) {
      const snap = await api('GET', `/v1/snapshots/${hib.snapshot_id}`).catch(() => undefined);
      info.hibernateImageBytes = snap?.size_bytes;
    }
    const [resMs, res] = await timed(() => api('POST', `/v1/machines/${heavy.id}/connect`, {}));
    expectStatus(res, 'running', 'connect after hibernate');
    await run(heavy.id, 'true', { args: [] });
    const raw = await criu.dumpRestore();
    if (i < 0) continue;
    push('hibernate', hibMs);
    push('restore', resMs);
    push('criuDump', raw.dump);
    push('criuRestore', raw.restore);
    info.criuImageBytes = raw.bytes;
  }
  info.heavyRssAfter = machineBallastPids(heavy.id)().reduce((sum, pid) => sum + rssBytes(pid), 0);
  info.hostRssAfter = criu.residentNow();

  // 3. reusable snapshots of both machines; paused_ms as the server reports it, and the wall time.
  progress(`snapshots ×${n} (+${warmup}) of each machine, interleaved with criu dump --leave-running`);
  for (let i = -warmup; i < n; i++) {
    checkInterrupted();
    for (const [key, m] of [
      ['snapIdle', idle],
      ['snapHeavy', heavy],
    ]) {
      const [ms, snap] = await timed(() => api('POST', `/v1/machines/${m.id}/snapshots`));
      S.snapshots.add(snap.id);
      if (snap.kind !== 'reusable') throw new Error(`snapshot kind ${snap.kind}`);
      await api('DELETE', `/v1/snapshots/${snap.id}`);
      S.snapshots.delete(snap.id);
      if (i < 0) continue;
      push(`${key}Wall`, ms);
      push(`${key}Paused`, snap.paused_ms);
      info[`${key}Bytes`] = snap.size_bytes;
    }
    const leaveRunningMs = await criu.dumpLeaveRunning();
    if (i >= 0) push('criuLeaveRunning', leaveRunningMs);
  }
  await run(idle.id, 'true', { args: [] });
  await run(heavy.id, 'true', { args: [] });

  // 4. fork the idle machine until the child runs `true`; baseline: a fresh create from the template.
  progress(`fork ×${n} (+${warmup}), interleaved with create-from-template`);
  for (let i = -warmup; i < n; i++) {
    checkInterrupted();
    const t0 = performance.now();
    const forked = await api('POST', `/v1/machines/${idle.id}/fork`, { count: 1 });
    const t1 = performance.now();
    const child = forked.children?.[0];
    if (!child || child.error) throw new Error(`fork: ${child?.error?.code} ${child?.error?.message}`);
    trackMachine(S, child.id);
    await run(child.id, 'true', { args: [] });
    const t2 = performance.now();
    const [killMs] = await timed(() => killMachine(child.id));
    const [createMs, fresh] = await timed(() => createMachine());
    await killMachine(fresh.id);
    if (i < 0) continue;
    push('forkHttp', t1 - t0);
    push('fork', t2 - t0);
    push('forkKill', killMs);
    push('create', createMs);
  }

  // 5. event delivery: subscribe, pause, time the `status_changed → paused` event.
  progress(`event delivery ×${n} (+${warmup}): long poll (wait_ms) and WebSocket`);
  let cursor;
  try {
    cursor = await lastEventId(idle.id);
  } catch (err) {
    info.pollUnavailable = err instanceof ApiError ? `${err.status} ${err.code ?? ''}`.trim() : err.message;
  }
  if (cursor !== undefined) {
    for (let i = -warmup; i < n; i++) {
      checkInterrupted();
      const sub = longPollFor(idle.id, cursor, isPausedEvent);
      sub.catch(() => undefined); // awaited below
      await sleep(SUBSCRIBE_SETTLE_MS); // let the poll reach the server and wait there
      const t0 = performance.now();
      expectStatus(await api('POST', `/v1/machines/${idle.id}/pause`), 'paused', 'pause');
      const t1 = performance.now();
      const got = await sub;
      await api('POST', `/v1/machines/${idle.id}/connect`, {});
      cursor = await lastEventId(idle.id, got.event.id);
      if (i < 0) continue;
      push('pollAfterResponse', got.at - t1);
      push('pollAfterSend', got.at - t0);
      push('pollPolls', got.polls);
    }
  }
  const wsConn = await openWs(idle.id);
  if (wsConn.unavailable) info.wsUnavailable = wsConn.unavailable;
  else {
    if (!wsConn.sawLive) info.wsNoLive = true;
    try {
      for (let i = -warmup; i < n; i++) {
        checkInterrupted();
        const ev = wsConn.next((m) => m.type === 'event' && isPausedEvent(m.event));
        ev.catch(() => undefined);
        const t0 = performance.now();
        expectStatus(await api('POST', `/v1/machines/${idle.id}/pause`), 'paused', 'pause');
        const t1 = performance.now();
        const { at } = await ev;
        await api('POST', `/v1/machines/${idle.id}/connect`, {});
        if (i < 0) continue;
        push('wsAfterResponse', at - t1);
        push('wsAfterSend', at - t0);
      }
    } catch (err) {
      info.wsUnavailable = `failed: ${err.message}`;
      R.wsAfterResponse = [];
      R.wsAfterSend = [];
    } finally {
      wsConn.ws.terminate();
    }
  }

  // The machines still hold their state after all that.
  await run(idle.id, 'true', { args: [] });
  info.heavyRssEnd = machineBallastPids(heavy.id)().reduce((sum, pid) => sum + rssBytes(pid), 0);
  await killMachine(idle.id);
  await killMachine(heavy.id);
  return { R, info, n };
}

function report({ R, info }) {
  const s = statsOf(R);
  // Here a row without figures says n/a even without a target (the missing freezer baseline).
  const row = (label, st, target) => {
    const cells = latencyRow(label, st, target);
    if (!st?.n) cells[7] = 'n/a';
    return cells;
  };
  const mib = (b) => (b === undefined ? '?' : `${fmt(b / MiB)} MiB`);
  console.log('\nLatency (ms; p50/p95 nearest-rank, min, max; the target applies to p50)');
  const rows = [
    ['1. pause (POST /pause, HTTP round trip)', s.pause, TARGETS.pause],
    ['   resume from pause (POST /connect)', s.resume, TARGETS.resume],
    ...(s.freeze?.n
      ? [
          ['   baseline: freezer.state FROZEN, plain process (v1)', s.freeze],
          ['   baseline: freezer.state THAWED', s.thaw],
        ]
      : [['   baseline: no v1 freezer hierarchy', undefined]]),
    ['   baseline: GET /v1/machines/{id} (HTTP + DB floor)', s.get],
    [`2. hibernate, ${BALLAST_MIB} MiB resident (POST /hibernate)`, s.hibernate, TARGETS.hibernate],
    ['   resume from hibernation (POST /connect)', s.restore, TARGETS.restore],
    [`   baseline: criu dump, plain process, ${BALLAST_MIB} MiB`, s.criuDump],
    ['   baseline: criu restore -d', s.criuRestore],
    ['3. snapshot of the idle machine: paused_ms', s.snapIdlePaused, TARGETS.snapshotPaused],
    ['   the same, POST /snapshots wall time', s.snapIdleWall],
    [`   snapshot, ${BALLAST_MIB} MiB machine: paused_ms`, s.snapHeavyPaused, TARGETS.snapshotPaused],
    ['   the same, POST /snapshots wall time', s.snapHeavyWall],
    [`   baseline: criu dump --leave-running, ${BALLAST_MIB} MiB`, s.criuLeaveRunning],
    ['4. fork {count:1} until the child runs `true`', s.fork, TARGETS.fork],
    ['   of which POST /fork', s.forkHttp],
    ['   kill of the child (not part of fork)', s.forkKill],
    ['   baseline: create from the template (agent answers)', s.create],
  ];
  if (s.pollAfterResponse?.n) {
    rows.push(
      ['5. event `paused` via long poll, after the response', s.pollAfterResponse, TARGETS.event],
      ['   the same, after the pause request was sent', s.pollAfterSend],
    );
  } else rows.push(['5. event via long poll: not available (below)', undefined, TARGETS.event]);
  if (s.wsAfterResponse?.n) {
    rows.push(
      ['   event `paused` via WebSocket, after the response', s.wsAfterResponse, TARGETS.event],
      ['   the same, after the pause request was sent', s.wsAfterSend],
    );
  } else rows.push(['   event via WebSocket: not available (below)', undefined, TARGETS.event]);
  printLatencyTable(
    'figure',
    rows.map(([label, st, target]) => row(label, st, target)),
  );

  console.log('\nSizes and checks');
  const pollPolls = s.pollPolls?.n ? `${s.pollPolls.min}–${s.pollPolls.max} polls per event` : 'n/a';
  printTable(
    null,
    [
      [
        `ballast resident in the ${BALLAST_MIB} MiB machine`,
        `${mib(info.heavyRssBefore)} before, ${mib(info.heavyRssAfter)} after the hibernate series, ${mib(info.heavyRssEnd)} at the end`,
      ],
      [
        'host ballast (criu baseline) resident',
        `${mib(info.hostRss)} before, ${mib(info.hostRssAfter)} after`,
      ],
      [
        'hibernation image (size_bytes) / raw criu image',
        `${mib(info.hibernateImageBytes)} / ${mib(info.criuImageBytes)}`,
      ],
      [
        'reusable snapshot size_bytes: idle / 100 MiB machine',
        `${mib(info.snapIdleBytes)} / ${mib(info.snapHeavyBytes)}`,
      ],
      ['long poll: polls until the paused event', pollPolls],
      ...(info.pollUnavailable ? [['long poll route', `not available: ${info.pollUnavailable}`]] : []),
      ...(info.wsUnavailable ? [['WebSocket route', `not available: ${info.wsUnavailable}`]] : []),
      ...(info.wsNoLive
        ? [['WebSocket route', 'no `live` message within 2 s of opening (live_only=true)']]
        : []),
    ],
    'll',
  );
}

runBench({
  script: 'bench/lifecycle.mjs',
  usage: USAGE,
  options: { iterations: ['iterations', 10, 1], warmup: ['warmup', 1, 0] },
  rootFor: 'runc, criu, cgroups',
  preflight: (templatesDir) => {
    if (!existsSync(join(templatesDir, TEMPLATE, 'rootfs', 'usr', 'bin', 'python3')))
      return `no ${TEMPLATE} template with python3 at ${join(templatesDir, TEMPLATE, 'rootfs')}`;
    for (const f of [CRIU, '/usr/bin/python3']) {
      if (!existsSync(f) || !(statSync(f).mode & 0o111)) return `${f} is needed for the baselines`;
    }
    return undefined;
  },
  title: 'Nullspace lifecycle benchmark',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machines checked: no runc container, mount, loop device, netns or cgroup left;` +
    ' server stopped, baseline processes and freezer cgroup gone, temp dir removed',
});
