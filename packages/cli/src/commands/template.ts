import { readFileSync } from 'node:fs';
import { TemplateInfoSchema, TemplateSpecBodySchema, WarmPoolSpecBodySchema } from '@nullspace/protocol';
import {
  Template,
  type TemplateBuildSpec,
  type TemplateInfo,
  WarmPool,
  type WarmPoolCreateOptions,
  type WarmPoolInfo,
  toWire,
} from '@nullspace/sdk';
import {
  type CommandInput,
  type Subcommand,
  UsageError,
  flag,
  groupHelp,
  keyValueMap,
  optionalInteger,
  optionalString,
  runSubcommand,
  singleId,
  stringList,
} from '../args.js';
import { formatBytes, formatKeyValue, formatTable, printJson, relativeTime } from '../output.js';
import { schemaFlags } from '../schema-flags.js';

/** `--file LOCAL:REMOTE[:MODE]` → a file spec read from the local path. */
function fileFlag(value: string, command: string): NonNullable<TemplateBuildSpec['files']>[number] {
  const m = /^([^:]+):(\/[^:]*)(?::([0-7]{3,4}))?$/.exec(value);
  if (!m?.[1] || !m[2])
    throw new UsageError(`--file: expected LOCAL:/REMOTE[:MODE], got "${value}"`, command);
  let content: Buffer;
  try {
    content = readFileSync(m[1]);
  } catch (err) {
    throw new UsageError(`--file: cannot read ${m[1]}: ${(err as Error).message}`, command);
  }
  return { path: m[2], content, ...(m[3] ? { mode: Number.parseInt(m[3], 8) } : {}) };
}

function formatTemplate(t: TemplateInfo): string {
  return formatKeyValue([
    ['id', t.id],
    ['names', t.names.join(', ') || '-'],
    ['status', t.error ? `${t.status} (${t.error})` : t.status],
    ['base', t.base ?? '-'],
    ...(t.purpose ? [['purpose', t.purpose] as [string, string]] : []),
    ['packages', t.packages.join(' ') || '-'],
    ['start', t.startCmd ?? '-'],
    ['snapshot', t.snapshotBacked ? (t.snapshotId ?? 'yes') : 'no'],
    ['disk', `${t.diskMb} MB`],
    ['size', formatBytes(t.sizeBytes)],
    ['built in', t.buildMs === null ? '-' : `${(t.buildMs / 1000).toFixed(1)} s`],
  ]);
}

const BUILD_FLAGS = schemaFlags(TemplateSpecBodySchema, [
  { field: 'base', metavar: 'TEMPLATE' },
  { field: 'packages', name: 'package', metavar: 'NAME' },
  { field: 'run', metavar: 'CMD' },
  { field: 'env', metavar: 'KEY=VALUE' },
  { field: 'workdir', metavar: 'PATH' },
  { field: 'start_cmd', name: 'start', metavar: 'CMD' },
  { field: 'ready_check.port', name: 'ready-port', metavar: 'PORT' },
  { field: 'ready_check.http_path', name: 'ready-path', metavar: 'PATH' },
  { field: 'ready_check.command', name: 'ready-cmd', metavar: 'CMD' },
  {
    field: 'ready_check.timeout_ms',
    name: 'ready-timeout-ms',
    help: 'How long a machine may take to get ready',
  },
  { field: 'disk_mb' },
  { field: 'vcpus' },
  { field: 'memory_mb' },
  { field: 'snapshot' },
  { field: 'tags', name: 'tag', metavar: 'TAG' },
]);

const build: Subcommand = {
  name: 'build',
  summary: 'Build a template from a spec (a JSON file, flags, or both; flags win).',
  usage: 'nullspace template build NAME[:TAG] [flags]',
  flags: `Flags:
  -f, --spec FILE          a JSON spec as POST /v1/templates takes it (docs/templates.md)
  --file LOCAL:/PATH[:MODE] copy a local file in (repeatable; MODE in octal, e.g. 755)
${BUILD_FLAGS.help}
  -q, --quiet              print only the template id

Shows each step and the build's output as it runs; a spec built before returns at once.`,
  options: {
    spec: { type: 'string', short: 'f' },
    file: { type: 'string', multiple: true },
    ...BUILD_FLAGS.options,
    quiet: { type: 'boolean', short: 'q' },
  },
  async run(input) {
    const { values, command } = input;
    const name = singleId(input, 'template name');
    let spec: TemplateBuildSpec = { name };
    const file = optionalString(values, 'spec');
    if (file !== undefined) {
      try {
        spec = { ...(JSON.parse(readFileSync(file, 'utf8')) as TemplateBuildSpec), name };
      } catch (err) {
        throw new UsageError(`--spec: cannot read ${file}: ${(err as Error).message}`, command);
      }
    }
    const set = <K extends keyof TemplateBuildSpec>(k: K, v: TemplateBuildSpec[K] | undefined) => {
      if (v !== undefined && !(Array.isArray(v) && v.length === 0)) spec[k] = v;
    };
    set('base', optionalString(values, 'base'));
    set('packages', stringList(values, 'package'));
    set(
      'files',
      stringList(values, 'file').map((f) => fileFlag(f, command)),
    );
    set('run', stringList(values, 'run'));
    set('env', keyValueMap(values, 'env', command));
    set('workdir', optionalString(values, 'workdir'));
    set('startCmd', optionalString(values, 'start'));
    set('diskMb', optionalInteger(values, 'disk-mb', command));
    set('vcpus', optionalInteger(values, 'vcpus', command));
    set('memoryMb', optionalInteger(values, 'memory-mb', command));
    set('tags', stringList(values, 'tag'));
    if (flag(values, 'snapshot')) spec.snapshot = true;
    const readyPort = optionalInteger(values, 'ready-port', command);
    const readyPath = optionalString(values, 'ready-path');
    const readyCmd = optionalString(values, 'ready-cmd');
    const readyTimeout = optionalInteger(values, 'ready-timeout-ms', command);
    if (
      readyPort !== undefined ||
      readyCmd !== undefined ||
      readyPath !== undefined ||
      readyTimeout !== undefined
    )
      spec.readyCheck = {
        ...spec.readyCheck,
        ...(readyPort !== undefined ? { port: readyPort } : {}),
        ...(readyPath !== undefined ? { httpPath: readyPath } : {}),
        ...(readyCmd !== undefined ? { command: readyCmd } : {}),
        ...(readyTimeout !== undefined ? { timeoutMs: readyTimeout } : {}),
      };
    const quiet = flag(values, 'quiet') || input.json;
    const started = Date.now();
    const { template, cached } = await Template.build(spec, {
      ...input.connection,
      onProgress: (p) => {
        if (!quiet) process.stderr.write(`[${p.step}/${p.total}] ${p.name}\n`);
      },
      onLog: (line) => {
        if (!quiet) process.stderr.write(`    ${line}\n`);
      },
    });
    if (input.json) printJson({ cached, template: toWire(TemplateInfoSchema, template) });
    else if (flag(values, 'quiet')) process.stdout.write(`${template.id}\n`);
    else
      process.stdout.write(
        cached
          ? `${template.names.join(', ')} is up to date (${template.id}, built before; nothing to do)\n`
          : `built ${template.names.join(', ')} (${template.id}) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
      );
    return 0;
  },
};

const list: Subcommand = {
  name: 'list',
  summary: 'List templates: those shipped with the server, then builds, newest first.',
  usage: 'nullspace template list',
  flags: '',
  options: {},
  async run(input) {
    const rows = await Template.list(input.connection);
    if (input.json) printJson({ items: rows.map((t) => toWire(TemplateInfoSchema, t)) });
    else
      process.stdout.write(
        formatTable(
          ['ID', 'NAMES', 'STATUS', 'BASE', 'SIZE', 'CREATED'],
          rows.map((t) => [
            t.id,
            t.names.join(',') || '-',
            t.status,
            t.base ?? '-',
            formatBytes(t.sizeBytes),
            relativeTime(t.createdAt.toISOString()),
          ]),
        ),
      );
    return 0;
  },
};

const get: Subcommand = {
  name: 'get',
  summary: "Print a template's info.",
  usage: 'nullspace template get NAME[:TAG]|TEMPLATE_ID',
  flags: '',
  options: {},
  async run(input) {
    const t = await Template.get(singleId(input, 'template'), input.connection);
    if (input.json) printJson(toWire(TemplateInfoSchema, t));
    else process.stdout.write(formatTemplate(t));
    return 0;
  },
};

const logs: Subcommand = {
  name: 'logs',
  summary: "Print a build's steps and output (following it while it runs).",
  usage: 'nullspace template logs NAME[:TAG]|TEMPLATE_ID [--no-follow]',
  flags: `Flags:
  --no-follow    print what is there and return`,
  options: { 'no-follow': { type: 'boolean' } },
  async run(input) {
    let failed = false;
    for await (const e of Template.follow(singleId(input, 'template'), {
      ...input.connection,
      follow: !flag(input.values, 'no-follow'),
    })) {
      if (input.json) printJson(e);
      else if (e.type === 'step') process.stdout.write(`[${e.step}/${e.total}] ${e.name}\n`);
      else if (e.type === 'log') process.stdout.write(`    ${e.line}\n`);
      else if (e.type === 'done') process.stdout.write(`built ${e.template.names.join(', ')}\n`);
      else {
        failed = true;
        process.stdout.write(`failed: ${e.error.code}: ${e.error.message}\n`);
      }
    }
    return failed ? 1 : 0;
  },
};

const remove: Subcommand = {
  name: 'delete',
  summary: 'Delete NAME[:TAG] (and its build once no tag names it).',
  usage: 'nullspace template delete NAME[:TAG]',
  flags: 'Refused (invalid_state) while a machine, a warm pool or another template uses it.',
  options: {},
  async run(input) {
    const ref = singleId(input, 'template');
    const t = await Template.delete(ref, input.connection);
    if (input.json) printJson(toWire(TemplateInfoSchema, t));
    else process.stdout.write(`${ref} deleted${t.status === 'deleted' ? ` (build ${t.id} removed)` : ''}\n`);
    return 0;
  },
};

const TEMPLATE_SUBCOMMANDS: Subcommand[] = [build, list, get, logs, remove];

export const TEMPLATE_HELP = groupHelp(
  'template',
  'Build, list and delete templates. Machines start from one with\n' +
    '"nullspace machine create --template NAME[:TAG]".',
  TEMPLATE_SUBCOMMANDS,
);

export async function runTemplateCommand(
  words: string[],
  rest: string[],
  afterDashDash: string[] | undefined,
): Promise<number> {
  return runSubcommand('template', TEMPLATE_SUBCOMMANDS, TEMPLATE_HELP, { words, rest, afterDashDash });
}

// ---- warm pools ----------------------------------------------------------------------------------

function poolWire(p: WarmPoolInfo): Record<string, unknown> {
  return {
    id: p.id,
    template: p.template,
    vcpus: p.vcpus,
    memory_mb: p.memoryMb,
    disk_mb: p.diskMb,
    size: p.size,
    ready: p.ready,
    starting: p.starting,
    hits: p.hits,
    misses: p.misses,
    hit_rate: p.hitRate,
    checkout_ms: p.checkoutMs,
    last_error: p.lastError,
    created_at: p.createdAt.toISOString(),
  };
}

function poolRow(p: WarmPoolInfo): string[] {
  return [
    p.id,
    p.template,
    `${p.ready}/${p.size}`,
    String(p.starting),
    p.hitRate === null ? '-' : `${Math.round(p.hitRate * 100)}% (${p.hits}/${p.hits + p.misses})`,
    p.checkoutMs.p50 === null ? '-' : `${p.checkoutMs.p50} / ${p.checkoutMs.p95} ms`,
  ];
}

const POOL_COLUMNS = ['ID', 'TEMPLATE', 'READY', 'STARTING', 'HIT RATE', 'CHECKOUT P50/P95'];

const POOL_FLAGS = schemaFlags(WarmPoolSpecBodySchema, [
  { field: 'size', help: 'Machines kept ready (required)' },
  { field: 'template', metavar: 'NAME' },
  { field: 'vcpus' },
  { field: 'memory_mb' },
  { field: 'disk_mb' },
]);

const poolCreate: Subcommand = {
  name: 'create',
  summary: 'Create a warm pool: SIZE machines of a template kept started.',
  usage: 'nullspace pool create --size N [--template NAME[:TAG]] [--vcpus N] [--memory-mb N] [--disk-mb N]',
  flags: `Flags:
${POOL_FLAGS.help}
  -q, --quiet              print only the pool id`,
  options: {
    ...POOL_FLAGS.options,
    quiet: { type: 'boolean', short: 'q' },
  },
  async run(input) {
    const { values, command } = input;
    if (input.positionals.length > 0)
      throw new UsageError(`unexpected argument "${input.positionals[0]}"`, command);
    const size = optionalInteger(values, 'size', command);
    if (size === undefined) throw new UsageError('--size is required', command);
    const opts: WarmPoolCreateOptions = { ...input.connection, size };
    const template = optionalString(values, 'template');
    if (template !== undefined) opts.template = template;
    const vcpus = optionalInteger(values, 'vcpus', command);
    if (vcpus !== undefined) opts.vcpus = vcpus;
    const memory = optionalInteger(values, 'memory-mb', command);
    if (memory !== undefined) opts.memoryMb = memory;
    const disk = optionalInteger(values, 'disk-mb', command);
    if (disk !== undefined) opts.diskMb = disk;
    const p = await WarmPool.create(opts);
    if (input.json) printJson(poolWire(p));
    else if (flag(values, 'quiet')) process.stdout.write(`${p.id}\n`);
    else process.stdout.write(`${p.id} created: filling to ${p.size} machines of ${p.template}\n`);
    return 0;
  },
};

const poolList: Subcommand = {
  name: 'list',
  summary: 'List warm pools with their ready count, hit rate and checkout latency.',
  usage: 'nullspace pool list',
  flags: '',
  options: {},
  async run(input) {
    const pools = await WarmPool.list(input.connection);
    if (input.json) printJson({ items: pools.map(poolWire) });
    else process.stdout.write(formatTable(POOL_COLUMNS, pools.map(poolRow)));
    return 0;
  },
};

const poolGet: Subcommand = {
  name: 'get',
  summary: "Print a warm pool's status.",
  usage: 'nullspace pool get POOL_ID',
  flags: '',
  options: {},
  async run(input) {
    const p = await WarmPool.get(singleId(input, 'warm pool id'), input.connection);
    if (input.json) printJson(poolWire(p));
    else process.stdout.write(formatTable(POOL_COLUMNS, [poolRow(p)]));
    return 0;
  },
};

const poolDelete: Subcommand = {
  name: 'delete',
  summary: 'Delete a warm pool and the machines waiting in it.',
  usage: 'nullspace pool delete POOL_ID',
  flags: 'Machines already checked out of it are not touched.',
  options: {},
  async run(input: CommandInput) {
    const p = await WarmPool.delete(singleId(input, 'warm pool id'), input.connection);
    if (input.json) printJson(poolWire(p));
    else process.stdout.write(`${p.id} deleted\n`);
    return 0;
  },
};

const POOL_SUBCOMMANDS: Subcommand[] = [poolCreate, poolList, poolGet, poolDelete];

export const POOL_HELP = groupHelp(
  'pool',
  'Warm pools: machines of one template kept started. Check one out with\n' +
    '"nullspace machine create --warm-pool POOL_ID [--warm-pool-mode prefer|require|bypass]".',
  POOL_SUBCOMMANDS,
);

export async function runPoolCommand(
  words: string[],
  rest: string[],
  afterDashDash: string[] | undefined,
): Promise<number> {
  return runSubcommand('pool', POOL_SUBCOMMANDS, POOL_HELP, { words, rest, afterDashDash });
}
