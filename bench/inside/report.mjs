/**
 * The inside bench's report: the streamed-output, file and PTY tables against their targets, the
 * conditions of the run, and hints on which hop the time goes to for a missed target.
 */
import {
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

/** Targets (informational): streamed output MB/s at p50, file round trip and PTY echo p50 in ms. */
const TARGETS = { streamMBs: 100, fileP50Ms: 20, ptyP50Ms: 5 };

export function report({ R, info, opts, bytes }) {
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
