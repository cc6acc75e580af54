/**
 * The network bench's report: the latency, throughput and wake tables against their targets, the
 * conditions of the run, and hints on where the time goes for a missed target.
 */
import {
  MiB,
  RATE_COLUMNS,
  fmt,
  latencyRow,
  percent,
  printConditions,
  printHints,
  printLatencyTable,
  printTable,
  rateCells,
  rateOf,
  signed,
  statsOf,
} from '../lib.mjs';
import { LATENCY_PATHS, TRANSFER_PATHS } from './paths.mjs';
import { SERVICE_PORT } from './service.mjs';
import { WAKE_TIMEOUT_MS } from './wake.mjs';

/**
 * Targets from issue 5 (informational): the proxy adds at most 1 ms at p50, moves at least 70 % of
 * the direct throughput, and a preview request wakes a paused machine within 50 ms and a
 * hibernated one within 1 s (p50).
 */
const TARGETS = { addedP50Ms: 1, throughputRatio: 0.7, wakePausedMs: 50, wakeHibernatedMs: 1000 };

export function report({ R, info, opts, bytes }) {
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
      "   reference proxy = their main thread, then the whole process: + V8's helper threads, which mark for full garbage\n" +
      `   collections; machine = its cgroup: the service, its quota ${info.vcpus} vCPU = ${100 * info.vcpus}%)`,
  );
  printTable(
    ['transfer', 'client', 'server', '(process)', 'ref proxy', '(process)', 'machine', 'throttled periods'],
    TRANSFER_PATHS.flatMap((k) =>
      ['down', 'up'].map((dir) => {
        const c = info.cpu[`${dir}.${k}`];
        if (!c) return [`${dir} ${k}`];
        return [
          `${dir === 'down' ? 'download' : 'upload'} ${{ refFresh: 'reference proxy', relay: 'TCP relay' }[k] ?? k}`,
          ...[c.client, c.server, c.serverAll, c.reference, c.referenceAll, c.machine].map((x) =>
            percent(x, c.wall),
          ),
          `${c.throttled} of ${c.periods}`,
        ];
      }),
    ),
    'lrrrrrrr',
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
        `${percent(c.client, c.wall)}, the server ${percent(c.server, c.wall)} (its whole process ${percent(c.serverAll, c.wall)}), ` +
        `the machine ${percent(c.machine, c.wall)} of a core.`,
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
