/** The lifecycle bench's report: the latency table against its targets, then sizes and checks. */
import { MiB, fmt, latencyRow, printLatencyTable, printTable, statsOf } from '../lib.mjs';
import { BALLAST_MIB } from './ballast.mjs';

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

export function report({ R, info }) {
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
