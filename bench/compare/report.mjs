/**
 * The comparison bench's report: each figure through Nullspace and through Podman side by side
 * with their ratio, then the hibernate figures against a raw criu dump/restore; PASS/MISS against
 * issue 19's targets where it names one (informational, never a test).
 */
import os from 'node:os';
import { MiB, fmt, printTable, statsOf, verdict } from '../lib.mjs';
import { BALLAST_MIB } from '../lifecycle/ballast.mjs';

/** Issue 19's targets on the Nullspace p50: bar and goal (ms, or × of the raw criu figure). */
const TARGETS = {
  create: { bar: 100, goal: 50 },
  fork: { bar: 250, goal: 80 },
  hibernateVsCriu: { bar: 1.25, goal: 1.1 },
  resumeVsCriu: { bar: 1.25, goal: 1.1 },
};

const ratio = (a, b) => (a === undefined || b === undefined || b === 0 ? undefined : a / b);
const times = (x) => (x === undefined ? '-' : `${fmt(x, 2)}×`);
const targetCells = (value, t, unit) =>
  t === undefined
    ? ['', '']
    : [
        `≤ ${t.bar}${unit} (goal ≤ ${t.goal}${unit})`,
        `${verdict(value, t.bar)} (goal ${verdict(value, t.goal)})`,
      ];

export function report({ R, info }) {
  const s = statsOf(R);
  const st = (side, key) => s[`${side}.${key}`];
  const mib = (b) => (b === undefined ? '?' : `${fmt(b / MiB)} MiB`);

  console.log(
    '\nNullspace against Podman (ms; p50/p95 nearest-rank; ratio = Nullspace p50 / Podman p50, < 1 is faster;' +
      ' the target applies to the Nullspace p50)',
  );
  const rows = [
    ['create → `true` answers', 'create', TARGETS.create],
    ['fork (count 1) → the child answers', 'fork', TARGETS.fork],
    [`hibernate, ${BALLAST_MIB} MiB resident`, 'hibernate'],
    ['resume from hibernation (connect / restore)', 'resume'],
    ['resume → `true` answers', 'resumeAnswers'],
  ];
  printTable(
    ['figure', 'n', 'Nullspace p50', 'p95', 'Podman p50', 'p95', 'ratio', 'target', 'result'],
    rows.map(([label, key, target]) => {
      const ns = st('nullspace', key);
      const pm = st('podman', key);
      return [
        label,
        ns?.n ?? 0,
        fmt(ns?.p50),
        fmt(ns?.p95),
        fmt(pm?.p50),
        fmt(pm?.p95),
        times(ratio(ns?.p50, pm?.p50)),
        ...targetCells(ns?.p50, target, ' ms'),
      ];
    }),
    'lrrrrrrll',
  );

  console.log(
    `\nHibernation against a raw criu of a host process holding the same ${BALLAST_MIB} MiB (ms, p50)`,
  );
  const criuDump = st('criu', 'hibernate')?.p50;
  const criuRestore = st('criu', 'resume')?.p50;
  const vs = (side, key, raw, target) => {
    const x = st(side, key)?.p50;
    return [fmt(x), fmt(raw), times(ratio(x, raw)), ...targetCells(ratio(x, raw), target, '×')];
  };
  printTable(
    ['figure', 'p50', 'raw criu p50', 'ratio', 'target', 'result'],
    [
      ['Nullspace hibernate / criu dump', ...vs('nullspace', 'hibernate', criuDump, TARGETS.hibernateVsCriu)],
      ['Podman checkpoint / criu dump', ...vs('podman', 'hibernate', criuDump)],
      [
        'Nullspace resume (connect) / criu restore',
        ...vs('nullspace', 'resume', criuRestore, TARGETS.resumeVsCriu),
      ],
      ['Podman restore / criu restore', ...vs('podman', 'resume', criuRestore)],
    ],
    'lrrrll',
  );

  console.log('\nDetails');
  const exportSt = st('podman', 'forkExport');
  printTable(
    null,
    [
      [
        'podman fork: of which checkpoint --leave-running --export',
        `p50 ${fmt(exportSt?.p50)} ms, p95 ${fmt(exportSt?.p95)} ms (the rest: restore --import + exec)`,
      ],
      [
        'ballast resident: Nullspace machine / podman container / host (criu)',
        `${mib(info.heavyRss)} / ${mib(info.podmanRss)} / ${mib(info.hostRss)} at the start; ` +
          `${mib(info.heavyRssEnd)} / ${mib(info.podmanRssEnd)} after the hibernate series`,
      ],
      ['raw criu image', mib(info.criuImageBytes)],
      [
        'load avg at the end (1, 5, 15 min)',
        `${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')} (the start's is in the Host table; above 2 the host was busy with other work)`,
      ],
    ],
    'll',
  );
}
