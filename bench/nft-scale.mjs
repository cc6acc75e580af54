#!/usr/bin/env node
/**
 * nftables at scale: what machines' egress rules cost with many machines alive, in the host table
 * layout (one table `ip nullspace`, base chains dispatching by interface through verdict maps to
 * per-machine chains: the runtime's own programs) beside the layout before it (one table per
 * machine, bench/nft/legacy-layout.mjs), interleaved, with none and with `--machines` machines'
 * rules loaded. Everything runs in network namespaces the bench makes (no machine, no server):
 * `nft` transactions and listings as a create, a policy change, a kill and the inventory run them,
 * and the round trip of packets forwarded through a namespace holding the rules (traffic of no
 * machine: what every other packet of the host pays). Run as root from the repository root:
 * `node bench/nft-scale.mjs [--machines N] [--iterations N]`. See bench/README.md.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { NON_PUBLIC_CIDRS } from '@nullspace/protocol';
import {
  DISPATCH_MAPS,
  HOST_TABLE,
  linkFor,
  linkSetUpSteps,
  parsePool,
  planScript,
  renderEgressProgram,
  renderHostTable,
  renderRemovalProgram,
  writeLinkFiles,
} from '@nullspace/runtime';
import {
  fmt,
  printHost,
  printTable,
  processCpuMs,
  progress,
  readClockTicks,
  runBench,
  shuffled,
  stats,
  toolVersion,
} from './lib.mjs';
import { legacyEgressProgram, legacyLinkSetUpSteps } from './nft/legacy-layout.mjs';

const USAGE = `usage: node bench/nft-scale.mjs [options]   (as root, from the repository root)
  --machines N     machines whose rules are loaded in the "many" namespaces (default 100)
  --iterations N   timed runs of each step per namespace (default 20)
  --packets N      UDP round trips per packet measurement (default 5000)
  --links N        link set-ups (and teardowns) per form, old and new (default 20)`;

const PREFIX = `nsbench-nft-${process.pid}`;
const POOL = parsePool('10.213.0.0/16');
const DNS_PORT = 5353;
const ALLOW_ALL = { mode: 'allow_all', allow_cidrs: [], deny_cidrs: [], locked: false };
const RATE = { ...ALLOW_ALL, rate_limit: { kbit_per_sec: 80_000 } };
const namespaces = [];
/** The sinks' echo servers (children of this process). */
const echoes = [];
let tmp;

/** A made-up machine id for block `i` (the form the runtime's ids have: base32, a–z 2–7). */
const idOf = (i) => {
  let out = '';
  for (let k = 0, n = i; k < 20; k++, n = Math.floor(n / 32))
    out = 'abcdefghijklmnopqrstuvwxyz234567'[n % 32] + out;
  return `mch_${out}`;
};
const linkOf = (i) => ({ ...linkFor(POOL, i, idOf(i)), dnsPort: DNS_PORT });

const LAYOUTS = {
  /** One table per machine. */
  table: {
    setup: () => '',
    apply: (i, policy) =>
      legacyEgressProgram({
        id: idOf(i),
        hostIf: linkOf(i).hostIf,
        machineAddr: linkOf(i).machineAddr,
        dnsPort: DNS_PORT,
        nonPublic: NON_PUBLIC_CIDRS,
        rateKbit: policy.rate_limit?.kbit_per_sec,
      }),
    remove: (i) => ({ args: ['delete', 'table', 'ip', `ns_${idOf(i)}`] }),
    queryOne: (i) => ({ args: ['list', 'table', 'ip', `ns_${idOf(i)}`] }),
    listAll: () => ({ args: ['list', 'tables', 'ip'] }),
  },
  /** The host table (the runtime's programs). */
  host: {
    setup: () => renderHostTable(),
    // As the driver runs it: a create's set-up (no older table to drop) and applyEgress (drops one).
    apply: (i, policy, change = false) => renderEgressProgram(linkOf(i), policy, { dropLegacyTable: change }),
    remove: (i) => ({ input: renderRemovalProgram(idOf(i), [linkOf(i).hostIf]) }),
    queryOne: () => ({ args: ['-j', 'list', 'map', 'ip', HOST_TABLE, DISPATCH_MAPS.egress] }),
    listAll: () => ({ args: ['-j', 'list', 'ruleset', 'ip'] }),
  },
};

/** Runs `file args` to its end; resolves with its stdout, rejects with its stderr. */
function run(file, args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${file} ${args.join(' ')}: ${err.trim() || code}`)),
    );
    child.stdin.on('error', () => undefined); // a tool that reads no input may end before we write
    child.stdin.end(input ?? '');
  });
}

const inNs = (ns, file, args, input) => run('nsenter', [`--net=/run/netns/${ns}`, file, ...args], input);
const nft = (ns, { args, input }) => inNs(ns, 'nft', input !== undefined ? ['-f', '-'] : args, input);

async function addNs(name) {
  await run('ip', ['netns', 'add', name]);
  namespaces.push(name);
  await inNs(name, 'ip', ['link', 'set', 'lo', 'up']);
}

/**
 * A lab: a router namespace holding the rules, a client and a sink namespace on either side of it
 * (veth pairs, addresses of a private range that exists only in these namespaces).
 */
async function makeLab(name) {
  const lab = { router: `${PREFIX}-${name}`, client: `${PREFIX}-${name}-c`, sink: `${PREFIX}-${name}-s` };
  for (const ns of Object.values(lab)) await addNs(ns);
  const batch = [
    `link add r0 netns ${lab.router} type veth peer name c0 netns ${lab.client}`,
    `link add r1 netns ${lab.router} type veth peer name s0 netns ${lab.sink}`,
  ].join('\n');
  await run('ip', ['-batch', '-'], batch);
  await inNs(
    lab.router,
    'ip',
    ['-batch', '-'],
    'addr add 10.99.1.1/24 dev r0\naddr add 10.99.2.1/24 dev r1\nlink set r0 up\nlink set r1 up\n',
  );
  await inNs(lab.router, 'sh', ['-c', 'printf 1 > /proc/sys/net/ipv4/ip_forward']);
  await inNs(
    lab.client,
    'ip',
    ['-batch', '-'],
    'addr add 10.99.1.2/24 dev c0\nlink set c0 up\nroute add default via 10.99.1.1\n',
  );
  await inNs(
    lab.sink,
    'ip',
    ['-batch', '-'],
    'addr add 10.99.2.2/24 dev s0\nlink set s0 up\nroute add default via 10.99.2.1\n',
  );
  return lab;
}

/** Loads `count` machines' rules of `layout` into the lab's router, in one transaction. */
async function populate(lab, layout, count) {
  const program = [
    layout.setup(),
    ...Array.from({ length: count }, (_, i) => layout.apply(i + 1, ALLOW_ALL)),
  ].join('\n');
  const file = join(tmp, `${lab.router}.nft`);
  await writeFile(file, program);
  await inNs(lab.router, 'nft', ['-f', file]);
}

const ECHO = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(9000,'10.99.2.2',()=>console.log('ready'));`;
const PINGS = `const s=require('dgram').createSocket('udp4');const n=+process.argv[1];let i=0,t0;const b=Buffer.alloc(32);s.on('message',()=>{if(++i===n){console.log(Number(process.hrtime.bigint()-t0)/n/1000);process.exit(0)}s.send(b,9000,'10.99.2.2')});t0=process.hrtime.bigint();s.send(b,9000,'10.99.2.2');setTimeout(()=>{console.error('lost packets');process.exit(1)},60000);`;

/** µs per UDP round trip from the lab's client to its sink, through the router (twice per trip). */
async function roundTrip(lab, packets) {
  const out = await inNs(lab.client, process.execPath, ['-e', PINGS, String(packets)]);
  return Number(out.trim());
}

async function startEcho(lab) {
  const child = spawn('nsenter', [`--net=/run/netns/${lab.sink}`, process.execPath, '-e', ECHO], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('exit', () => reject(new Error('the echo server ended')));
  });
  echoes.push(child);
}

/**
 * A machine link's set-up as the driver runs it (one \`sh\` plan: its files written, then its steps),
 * in the form before (one process per step) and now (nft, two \`ip -batch\`, one nsenter), each
 * inside a namespace of the bench standing for the host (its veth, its nftables) and a new machine
 * namespace under /run/netns; then torn down (not timed).
 */
async function linkSetUps(count) {
  const forms = {};
  for (const form of ['per-step', 'batch']) {
    const hostNs = `${PREFIX}-links-${form}`;
    await addNs(hostNs);
    if (form === 'batch') await inNs(hostNs, 'nft', ['-f', '-'], renderHostTable());
    forms[form] = hostNs;
  }
  const R = { 'per-step': [], batch: [] };
  const cpu = { 'per-step': 0, batch: 0 };
  // CPU of the set-up's processes: what this process's reaped children (and theirs) used.
  const childrenCpuMs = () => processCpuMs(process.pid, { children: true }) - processCpuMs(process.pid);
  for (let i = 0; i < count; i++) {
    for (const form of shuffled(Object.keys(forms))) {
      const hostNs = forms[form];
      const index = 1000 + i;
      const link = linkOf(index);
      const netns = `${PREFIX}-m${i}-${form}`;
      const dir = join(tmp, netns);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      const cpu0 = childrenCpuMs();
      const ms = await timedMs(async () => {
        let steps;
        if (form === 'batch')
          steps = linkSetUpSteps(netns, link, await writeLinkFiles(dir, netns, link, ALLOW_ALL), {});
        else {
          const files = { egress: join(dir, 'egress.nft'), preview: join(dir, 'preview.nft') };
          await writeFile(files.egress, LAYOUTS.table.apply(index, ALLOW_ALL));
          await writeFile(files.preview, 'table ip nullspace_preview {\n}\n');
          steps = legacyLinkSetUpSteps(netns, link, files, link.owner);
        }
        await inNs(hostNs, 'sh', ['-c', planScript([steps])]);
      });
      cpu[form] += childrenCpuMs() - cpu0;
      namespaces.push(netns);
      R[form].push(ms);
      await inNs(hostNs, 'ip', ['link', 'del', link.hostIf]).catch(() => undefined);
      await run('ip', ['netns', 'delete', netns]);
      namespaces.splice(namespaces.indexOf(netns), 1);
      await nft(hostNs, form === 'batch' ? LAYOUTS.host.remove(index) : LAYOUTS.table.remove(index));
    }
  }
  return { R, cpu, count };
}

async function timedMs(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function bench(opts) {
  await readClockTicks();
  tmp = await mkdtemp('/tmp/nsbench-nft-');
  const { machines: n, iterations, packets } = opts;
  const labs = [];
  for (const [layoutName, layout] of Object.entries(LAYOUTS))
    for (const count of [0, n]) {
      progress(`namespace with ${count} machines' rules, ${layoutName} layout`);
      const lab = { ...(await makeLab(`${layoutName}${count}`)), layoutName, layout, count };
      await populate(lab, layout, count);
      await startEcho(lab);
      labs.push(lab);
    }
  const R = {};
  const push = (lab, step, x) => {
    const key = `${lab.layoutName}|${lab.count}|${step}`;
    R[key] ??= [];
    R[key].push(x);
  };
  // The machine a create adds (one past the loaded ones) and one whose policy changes.
  const fresh = n + 1;
  progress(`${iterations} iterations, each lab's steps in a fresh random order each time`);
  for (let it = 0; it < iterations; it++) {
    for (const lab of shuffled(labs)) {
      const { layout, router } = lab;
      const steps = shuffled([
        async () => {
          // A create then a kill: the new machine's rules in, then out (the lab is as before).
          push(
            lab,
            'create: load its rules',
            await timedMs(() => nft(router, { input: layout.apply(fresh, ALLOW_ALL) })),
          );
          push(lab, 'kill: delete its rules', await timedMs(() => nft(router, layout.remove(fresh))));
        },
        async () => {
          if (lab.count === 0) await nft(router, { input: layout.apply(1, ALLOW_ALL) });
          push(
            lab,
            'policy change of a machine',
            await timedMs(() => nft(router, { input: layout.apply(1, RATE, true) })),
          );
          await nft(router, lab.count === 0 ? layout.remove(1) : { input: layout.apply(1, ALLOW_ALL) });
        },
        async () =>
          push(
            lab,
            "one machine's query (teardown)",
            await timedMs(() => nft(router, layout.queryOne(1)).catch(() => undefined)),
          ),
        async () =>
          push(lab, 'host-wide listing (leak check)', await timedMs(() => nft(router, layout.listAll()))),
        async () =>
          push(lab, `UDP round trip through the rules (µs, ${packets})`, await roundTrip(lab, packets)),
      ]);
      for (const step of steps) await step();
    }
  }
  progress(`link set-ups: ${opts.links} of each form, interleaved`);
  const links = await linkSetUps(opts.links);
  return { R, n, iterations, links };
}

function report({ R, n, iterations, links }) {
  const steps = [...new Set(Object.keys(R).map((k) => k.split('|')[2]))];
  console.log(`\nnft with none and with ${n} machines' rules (ms unless said; p50 / p95 of ${iterations})`);
  const cell = (layoutName, count, step) => {
    const st = stats(R[`${layoutName}|${count}|${step}`] ?? []);
    return st.n ? `${fmt(st.p50)} / ${fmt(st.p95)}` : '-';
  };
  const ratio = (layoutName, step) => {
    const a = stats(R[`${layoutName}|0|${step}`] ?? []).p50;
    const b = stats(R[`${layoutName}|${n}|${step}`] ?? []).p50;
    return a && b ? `${fmt(b / a, 2)}×` : '-';
  };
  printTable(
    ['step', 'table per machine: 0', `${n}`, `${n}/0`, 'host table: 0', `${n}`, `${n}/0`],
    steps.map((step) => [
      step,
      cell('table', 0, step),
      cell('table', n, step),
      ratio('table', step),
      cell('host', 0, step),
      cell('host', n, step),
      ratio('host', step),
    ]),
    'lrrrrrr',
  );
  console.log(
    '\nEach nft figure is a whole `nsenter … nft` process as the runtime spawns it. The table-per-machine',
    "\nqueries are `nft list table ip ns_<id>` and `nft list tables ip`; the host table's are",
    `\n\`nft -j list map ip ${HOST_TABLE} ${DISPATCH_MAPS.egress}\` and \`nft -j list ruleset ip\`.`,
  );
  console.log(
    "\nA link's set-up (files written, then one sh plan: netns, rules, veth, addresses, sysctls, preview; ms)",
  );
  printTable(
    ['form', 'processes', 'n', 'p50', 'p95', 'min', 'max', 'CPU ms (mean)'],
    [
      [
        'one process per step (before)',
        '17 + sh',
        ...statCells(links.R['per-step']),
        fmt(links.cpu['per-step'] / links.count),
      ],
      [
        'nft + ip -batch + nsenter (ip -batch, nft)',
        '5 + sh',
        ...statCells(links.R.batch),
        fmt(links.cpu.batch / links.count),
      ],
    ],
    'lrrrrrrr',
  );
}

function statCells(xs) {
  const st = stats(xs);
  return [st.n, fmt(st.p50), fmt(st.p95), fmt(st.min), fmt(st.max)];
}

async function cleanup(note) {
  const leaks = [];
  // The echo servers (nsenter execs into node: the pid is node's); a namespace's processes keep it.
  for (const e of echoes) e.kill();
  for (const ns of [...namespaces].reverse())
    await run('ip', ['netns', 'delete', ns]).catch(note(`netns ${ns}`));
  for (const ns of namespaces) if (existsSync(`/run/netns/${ns}`)) leaks.push(`netns ${ns}`);
  if (tmp) await rm(tmp, { recursive: true, force: true }).catch(note('temporary files'));
  return { leaks, checked: namespaces.length };
}

runBench({
  script: 'bench/nft-scale.mjs',
  usage: USAGE,
  options: {
    machines: ['machines', 100, 1],
    iterations: ['iterations', 20, 1],
    packets: ['packets', 5000, 100],
    links: ['links', 20, 1],
  },
  rootFor: 'network namespaces and nftables',
  preflight: () => undefined,
  title: 'nftables at scale: a table per machine vs one host table with per-machine chains',
  describeHost: async () => printHost('none needed', [['nft', await toolVersion('nft', ['--version'])]]),
  bench,
  report,
  cleanup,
  cleanedUp: (checked) => `${checked} network namespaces deleted, nothing left`,
});
