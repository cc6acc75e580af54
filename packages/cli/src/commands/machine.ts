import {
  CreateMachineBodySchema,
  ForkBodySchema,
  ListMachinesQuerySchema,
  ResumeBodySchema,
  SetTimeoutBodySchema,
} from '@nullspace/protocol';
import {
  MACHINE_INFO_KEYS,
  MACHINE_STATES,
  Machine,
  type MachineCreateOptions,
  type MachineInfo,
  type MachineInfoKey,
  type MachineSetTimeoutOptions,
  type MachineState,
  type NullspaceError,
  machineInfoToWire,
  snapshotInfoToWire,
} from '@nullspace/sdk';
import {
  type CommandInput,
  type Subcommand,
  UsageError,
  commaList,
  flag,
  groupHelp,
  keyValueMap,
  oneOf,
  optionalInteger,
  optionalString,
  runSubcommand,
  singleId,
} from '../args.js';
import {
  formatBytes,
  formatKeyValue,
  formatMachine,
  formatMachineTable,
  formatSnapshot,
  printJson,
} from '../output.js';
import { choices, schemaFlags } from '../schema-flags.js';
import { code } from './code.js';
import { desktop } from './desktop.js';
import { events } from './events.js';
import { cp, files } from './files.js';
import { git } from './git.js'; // nullspace machine git
import { NETWORK_FLAGS_HELP, NETWORK_OPTIONS, createNetworkOptions, network, preview } from './network.js';
import { exec, logs, ps, shell, signal } from './process.js';
import { ssh } from './ssh.js';
import { VOLUME_FLAG_HELP, machineVolume, volumeMountsFrom } from './volume.js';

function machineId(input: CommandInput): string {
  return singleId(input, 'machine id');
}

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `--fields` as SDK keys; accepts the API's names (`memory_mb`) and the SDK's (`memoryMb`). */
function parseFields(input: CommandInput): MachineInfoKey[] | undefined {
  if (input.values.fields === undefined) return undefined;
  const names = commaList(input.values, 'fields');
  if (names.length === 0) throw new UsageError('--fields: name at least one field', input.command);
  return names.map((name) => {
    const key = name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    if (!(MACHINE_INFO_KEYS as readonly string[]).includes(key))
      throw new UsageError(
        `--fields: unknown field "${name}"; known: ${MACHINE_INFO_KEYS.map(snakeCase).join(', ')}`,
        input.command,
      );
    return key as MachineInfoKey;
  });
}

function printMachine(info: Partial<MachineInfo>, json: boolean): void {
  const wire = machineInfoToWire(info);
  if (json) printJson(wire);
  else process.stdout.write(formatMachine(wire));
}

const CREATE_FLAGS = schemaFlags(CreateMachineBodySchema, [
  { field: 'template', metavar: 'NAME' },
  { field: 'snapshot_id', name: 'snapshot', metavar: 'ID' },
  { field: 'vcpus' },
  { field: 'memory_mb' },
  { field: 'disk_mb' },
  { field: 'timeout', metavar: 'SECONDS' },
  { field: 'on_timeout', metavar: 'ACTION' },
  { field: 'auto_resume' },
  { field: 'cwd', metavar: 'DIR' },
  { field: 'envs', name: 'env', metavar: 'KEY=VALUE' },
  { field: 'metadata', metavar: 'KEY=VALUE' },
]);
const WARM_POOL_FLAGS = schemaFlags(CreateMachineBodySchema, [
  { field: 'warm_pool', metavar: 'ID' },
  { field: 'warm_pool_mode', metavar: 'MODE' },
  { field: 'warm_pool_wait_ms', metavar: 'MS' },
]);
const TIMEOUT_ACTIONS = choices(CreateMachineBodySchema, 'on_timeout') as readonly MachineInfo['onTimeout'][];
const WARM_POOL_MODES = choices(CreateMachineBodySchema, 'warm_pool_mode') as readonly NonNullable<
  MachineCreateOptions['warmPoolMode']
>[];

/** `--desktop 1280x800[@DPI]` or `--desktop default`. */
function desktopFrom(values: CommandInput['values'], command: string): MachineCreateOptions['desktop'] {
  const raw = optionalString(values, 'desktop');
  if (raw === undefined) return undefined;
  if (raw === 'default' || raw === 'true') return true;
  const m = /^(\d+)x(\d+)(?:@(\d+))?$/.exec(raw);
  if (!m) throw new UsageError(`--desktop: expected WIDTHxHEIGHT[@DPI] or "default", got "${raw}"`, command);
  return { width: Number(m[1]), height: Number(m[2]), ...(m[3] === undefined ? {} : { dpi: Number(m[3]) }) };
}

const create: Subcommand = {
  name: 'create',
  summary: 'Create a machine and print its info.',
  usage: 'nullspace machine create [flags]',
  flags: `Flags:
${CREATE_FLAGS.help}
${VOLUME_FLAG_HELP}
${WARM_POOL_FLAGS.help}
  --desktop SIZE           a desktop (template desktop): WIDTHxHEIGHT[@DPI], or "default"
                           (1024x768@96)
  -q, --quiet              print only the machine id

Network (default: egress allow_all, public addresses only; see 'nullspace machine network'):
${NETWORK_FLAGS_HELP}`,
  options: {
    ...CREATE_FLAGS.options,
    volume: { type: 'string', multiple: true },
    ...WARM_POOL_FLAGS.options,
    desktop: { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
    ...NETWORK_OPTIONS,
  },
  async run(input) {
    const { values, command } = input;
    if (input.positionals.length > 0)
      throw new UsageError(`unexpected argument "${input.positionals[0]}"`, command);
    const opts: MachineCreateOptions = { ...input.connection, ...createNetworkOptions(values, command) };
    const set = <K extends keyof MachineCreateOptions>(
      key: K,
      value: MachineCreateOptions[K] | undefined,
    ) => {
      if (value !== undefined) opts[key] = value;
    };
    set('template', optionalString(values, 'template'));
    set('snapshotId', optionalString(values, 'snapshot'));
    set('vcpus', optionalInteger(values, 'vcpus', command));
    set('memoryMb', optionalInteger(values, 'memory-mb', command));
    set('diskMb', optionalInteger(values, 'disk-mb', command));
    set('timeout', optionalInteger(values, 'timeout', command));
    set('onTimeout', oneOf(values, 'on-timeout', TIMEOUT_ACTIONS, command));
    if (flag(values, 'auto-resume')) opts.autoResume = true;
    set('cwd', optionalString(values, 'cwd'));
    set('envs', keyValueMap(values, 'env', command));
    set('metadata', keyValueMap(values, 'metadata', command));
    set('volumes', volumeMountsFrom(values, command));
    set('warmPool', optionalString(values, 'warm-pool'));
    set('warmPoolMode', oneOf(values, 'warm-pool-mode', WARM_POOL_MODES, command));
    set('warmPoolWaitMs', optionalInteger(values, 'warm-pool-wait-ms', command));
    set('desktop', desktopFrom(values, command));

    const machine = await Machine.create(opts);
    if (flag(values, 'quiet')) {
      process.stdout.write(`${machine.id}\n`);
      return 0;
    }
    try {
      printMachine(await machine.getInfo(), input.json);
    } catch (err) {
      // The machine exists: say which one before reporting why its info could not be shown.
      process.stderr.write(`created ${machine.id}, but could not read its info\n`);
      throw err;
    }
    return 0;
  },
};

const get: Subcommand = {
  name: 'get',
  summary: "Print a machine's info. Read-only: a paused machine stays paused.",
  usage: 'nullspace machine get ID [--fields id,status,...]',
  flags: `Flags:
  --fields LIST   only these fields, comma-separated (e.g. id,status,expires_at)`,
  options: { fields: { type: 'string', multiple: true } },
  async run(input) {
    const id = machineId(input);
    const fields = parseFields(input);
    const info =
      fields === undefined
        ? await Machine.getInfoById(id, input.connection)
        : await Machine.getInfoById(id, { ...input.connection, fields });
    printMachine(info, input.json);
    return 0;
  },
};

const metrics: Subcommand = {
  name: 'metrics',
  summary: "Print a running or paused machine's CPU, memory, disk and network counters.",
  usage: 'nullspace machine metrics ID',
  flags: '',
  options: {},
  async run(input) {
    const m = await Machine.getMetricsById(machineId(input), input.connection);
    if (input.json) {
      printJson({
        machine_id: m.machineId,
        status: m.status,
        at: m.at.toISOString(),
        cpu_seconds: m.cpuSeconds,
        cpu_percent: m.cpuPercent,
        vcpus: m.vcpus,
        memory_bytes: m.memoryBytes,
        memory_limit_bytes: m.memoryLimitBytes,
        disk_used_bytes: m.diskUsedBytes,
        disk_total_bytes: m.diskTotalBytes,
        network_rx_bytes: m.networkRxBytes,
        network_tx_bytes: m.networkTxBytes,
        network_rx_packets: m.networkRxPackets,
        network_tx_packets: m.networkTxPackets,
        samples: m.samples.length,
      });
      return 0;
    }
    process.stdout.write(
      `${formatKeyValue([
        [
          'cpu',
          `${m.cpuPercent === null ? '-' : `${m.cpuPercent.toFixed(1)} %`} of a core (${m.vcpus} vcpu), ${m.cpuSeconds.toFixed(2)} s used`,
        ],
        ['memory', `${formatBytes(m.memoryBytes)} of ${formatBytes(m.memoryLimitBytes)}`],
        ['disk', `${formatBytes(m.diskUsedBytes)} of ${formatBytes(m.diskTotalBytes)}`],
        [
          'network',
          `received ${formatBytes(m.networkRxBytes)} (${m.networkRxPackets} packets), sent ${formatBytes(m.networkTxBytes)} (${m.networkTxPackets} packets)`,
        ],
        ['samples', `${m.samples.length}`],
      ])}\n`,
    );
    return 0;
  },
};

const LIST_FLAGS = schemaFlags(ListMachinesQuerySchema, [
  { field: 'state', metavar: 'STATE' },
  { field: 'template', metavar: 'NAME' },
  { field: 'tenant', metavar: 'TENANT' },
  { field: 'limit' },
  { field: 'next_token', metavar: 'TOKEN' },
  { field: 'fields', metavar: 'LIST', help: 'Only these fields, comma-separated, e.g. id,status,expires_at' },
]);

const list: Subcommand = {
  name: 'list',
  summary: 'List machines, newest first.',
  usage: 'nullspace machine list [flags]',
  flags: `Flags:
${LIST_FLAGS.help}
  --metadata KEY=VALUE     only machines with this label (repeatable; all must match)
  --all                    follow every page
  -q, --quiet              print only machine ids`,
  options: {
    ...LIST_FLAGS.options,
    fields: { type: 'string', multiple: true },
    metadata: { type: 'string', multiple: true },
    all: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
  },
  async run(input) {
    const { values, command } = input;
    if (input.positionals.length > 0)
      throw new UsageError(`unexpected argument "${input.positionals[0]}"`, command);
    const states = commaList(values, 'state');
    for (const s of states) {
      if (!(MACHINE_STATES as readonly string[]).includes(s))
        throw new UsageError(`--state: expected one of ${MACHINE_STATES.join(', ')}, got "${s}"`, command);
    }
    const query: {
      state?: MachineState[];
      template?: string;
      tenant?: string;
      metadata?: Record<string, string>;
    } = {};
    if (states.length > 0) query.state = states as MachineState[];
    const template = optionalString(values, 'template');
    if (template !== undefined) query.template = template;
    const tenant = optionalString(values, 'tenant');
    if (tenant !== undefined) query.tenant = tenant;
    const metadata = keyValueMap(values, 'metadata', command);
    if (metadata !== undefined) query.metadata = metadata;
    const limit = optionalInteger(values, 'limit', command);
    const nextToken = optionalString(values, 'next-token');
    const fields = parseFields(input);
    const quiet = flag(values, 'quiet');
    const opts = {
      ...input.connection,
      query,
      ...(limit === undefined ? {} : { limit }),
      ...(nextToken === undefined ? {} : { nextToken }),
    };
    // With --quiet only ids are printed, so only ids are fetched.
    const wanted: MachineInfoKey[] | undefined = quiet ? ['id'] : fields;
    const page =
      wanted === undefined ? await Machine.list(opts) : await Machine.list({ ...opts, fields: wanted });

    const items: Partial<MachineInfo>[] = [...page.items];
    if (flag(values, 'all')) {
      while (page.hasNext) items.push(...(await page.nextItems()));
    }
    const rows = items.map((item) => machineInfoToWire(item) as Record<string, unknown>);

    if (input.json) {
      printJson({ items: rows, next_token: page.nextToken, has_next: page.hasNext });
    } else if (quiet) {
      for (const row of rows) process.stdout.write(`${String(row.id)}\n`);
    } else {
      process.stdout.write(formatMachineTable(rows, fields?.map(snakeCase)));
    }
    if (!input.json && page.hasNext && page.nextToken !== null)
      process.stderr.write(`more machines: add --next-token ${page.nextToken} (or --all)\n`);
    return 0;
  },
};

const RESUME_FLAGS = schemaFlags(ResumeBodySchema, [{ field: 'timeout', metavar: 'SECONDS' }]);

const connect: Subcommand = {
  name: 'connect',
  summary: 'Resume a machine if it is paused or hibernated, and print its info.',
  usage: 'nullspace machine connect ID [--timeout SECONDS]',
  flags: `Flags:
${RESUME_FLAGS.help}`,
  options: RESUME_FLAGS.options,
  async run(input) {
    const id = machineId(input);
    const timeout = optionalInteger(input.values, 'timeout', input.command);
    const machine = await Machine.connect(id, {
      ...input.connection,
      ...(timeout === undefined ? {} : { timeout }),
    });
    printMachine(await machine.getInfo(), input.json);
    return 0;
  },
};

const kill: Subcommand = {
  name: 'kill',
  summary: 'Kill a machine. Killing a killed machine is not an error.',
  usage: 'nullspace machine kill ID',
  flags: '',
  options: {},
  async run(input) {
    const id = machineId(input);
    const info = await Machine.killById(id, input.connection);
    if (input.json) printJson(machineInfoToWire(info));
    else process.stdout.write(`${info.id} ${info.status}\n`);
    return 0;
  },
};

const pause: Subcommand = {
  name: 'pause',
  summary: 'Pause a machine: freeze its processes, keep its memory and files.',
  usage: 'nullspace machine pause ID',
  flags: `Prints "ID paused (snapshot SNAPSHOT_ID)". Resume with "nullspace machine resume ID".
Pausing a paused or hibernated machine changes nothing.`,
  options: {},
  async run(input) {
    const info = await Machine.pauseById(machineId(input), input.connection);
    printTransition(info, input.json);
    return 0;
  },
};

const hibernate: Subcommand = {
  name: 'hibernate',
  summary: 'Hibernate a machine: save its memory and files to disk and release it.',
  usage: 'nullspace machine hibernate ID',
  flags: `Works on a running or paused machine. Prints "ID hibernated (snapshot SNAPSHOT_ID)".
Resume with "nullspace machine resume ID".`,
  options: {},
  async run(input) {
    const info = await Machine.hibernateById(machineId(input), input.connection);
    printTransition(info, input.json);
    return 0;
  },
};

/** `ID STATUS (snapshot SNAP)` after pause and hibernate; the full info with --json. */
function printTransition(info: MachineInfo, json: boolean): void {
  if (json) printJson(machineInfoToWire(info));
  else
    process.stdout.write(
      `${info.id} ${info.status}${info.snapshotId === null ? '' : ` (snapshot ${info.snapshotId})`}\n`,
    );
}

const resume: Subcommand = {
  name: 'resume',
  summary: 'Resume a paused or hibernated machine, and print its info.',
  usage: 'nullspace machine resume ID|SNAPSHOT_ID [--timeout SECONDS]',
  flags: `Takes the machine id (mch_...) or the id of its pause snapshot (snap_...). The machine
keeps its id and gets a new execution id. Resuming a running machine changes nothing.

Flags:
${RESUME_FLAGS.help}`,
  options: RESUME_FLAGS.options,
  async run(input) {
    const id = singleId(input, 'machine or snapshot id');
    const timeout = optionalInteger(input.values, 'timeout', input.command);
    const opts = { ...input.connection, ...(timeout === undefined ? {} : { timeout }) };
    let machine: Machine;
    if (id.startsWith('snap_')) machine = await Machine.resume(id, opts);
    else if (id.startsWith('mch_')) machine = await Machine.connect(id, opts);
    else
      throw new UsageError(
        `expected a machine id (mch_...) or a snapshot id (snap_...), got "${id}"`,
        input.command,
      );
    printMachine(await machine.getInfo(), input.json);
    return 0;
  },
};

const snapshot: Subcommand = {
  name: 'snapshot',
  summary: 'Take a reusable snapshot of a machine, which keeps running.',
  usage: 'nullspace machine snapshot ID [-q]',
  flags: `Start machines from it with "nullspace machine create --snapshot SNAPSHOT_ID"; it is kept
until "nullspace snapshot delete SNAPSHOT_ID".

Flags:
  -q, --quiet   print only the snapshot id`,
  options: { quiet: { type: 'boolean', short: 'q' } },
  async run(input) {
    const info = await new Machine(machineId(input), input.connection).createSnapshot();
    if (input.json) printJson(snapshotInfoToWire(info));
    else if (flag(input.values, 'quiet')) process.stdout.write(`${info.id}\n`);
    else process.stdout.write(formatSnapshot(snapshotInfoToWire(info)));
    return 0;
  },
};

const FORK_FLAGS = schemaFlags(ForkBodySchema, [{ field: 'count' }]);

const fork: Subcommand = {
  name: 'fork',
  summary: 'Branch a running machine into new machines with its memory and files.',
  usage: 'nullspace machine fork ID [--count N]',
  flags: `Prints one line per child: its machine id on stdout, or, for a child that could not start,
"error: child N of M: CODE: MESSAGE" on stderr. Exits 1 when any child failed.
The machine itself keeps running.

Flags:
${FORK_FLAGS.help}`,
  options: FORK_FLAGS.options,
  async run(input) {
    const id = machineId(input);
    const count = optionalInteger(input.values, 'count', input.command);
    const children = await new Machine(id, input.connection).fork(count === undefined ? {} : { count });
    const failed = children.filter((c) => c.error !== undefined).length;
    if (input.json) {
      printJson({
        children: children.map((c) =>
          c.error === undefined ? machineInfoToWire(c.info) : { error: errorToWire(c.error) },
        ),
      });
    } else {
      children.forEach((child, i) => {
        if (child.error === undefined) process.stdout.write(`${child.machine.id}\n`);
        else
          process.stderr.write(
            `error: child ${i + 1} of ${children.length}: ${child.error.code}: ${child.error.message}\n`,
          );
      });
    }
    return failed === 0 ? 0 : 1;
  },
};

/** A typed SDK error back in the API's `{code, message, details?, request_id?}` shape. */
function errorToWire(err: NullspaceError): Record<string, unknown> {
  return {
    code: err.code,
    message: err.message,
    ...(err.details === undefined ? {} : { details: err.details }),
    ...(err.requestId === undefined ? {} : { request_id: err.requestId }),
  };
}

const TIMEOUT_FLAGS = schemaFlags(SetTimeoutBodySchema, [
  { field: 'on_timeout', metavar: 'ACTION' },
  { field: 'auto_resume' },
]);

const timeout: Subcommand = {
  name: 'timeout',
  summary: "Set a machine's deadline to SECONDS from now, and what happens then.",
  usage: 'nullspace machine timeout ID SECONDS [flags]',
  flags: `Flags left out keep the machine's current setting.

Flags:
${TIMEOUT_FLAGS.help}
  --no-auto-resume         turn auto-resume off`,
  options: {
    ...TIMEOUT_FLAGS.options,
    'no-auto-resume': { type: 'boolean' },
  },
  async run(input) {
    const { values, command } = input;
    const [id, seconds, ...extra] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', command);
    if (seconds === undefined) throw new UsageError('missing SECONDS', command);
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, command);
    if (!/^\d+$/.test(seconds))
      throw new UsageError(`SECONDS: expected a whole number of seconds, got "${seconds}"`, command);
    if (flag(values, 'auto-resume') && flag(values, 'no-auto-resume'))
      throw new UsageError('give --auto-resume or --no-auto-resume, not both', command);
    const opts: MachineSetTimeoutOptions = {};
    const onTimeout = oneOf(values, 'on-timeout', TIMEOUT_ACTIONS, command);
    if (onTimeout !== undefined) opts.onTimeout = onTimeout;
    if (flag(values, 'auto-resume')) opts.autoResume = true;
    if (flag(values, 'no-auto-resume')) opts.autoResume = false;
    const info = await new Machine(id, input.connection).setTimeout(Number(seconds), opts);
    if (input.json) printJson(machineInfoToWire(info));
    else {
      const { timeout, onTimeout: action, autoResume, expiresAt } = info;
      process.stdout.write(
        formatMachine(machineInfoToWire({ id: info.id, timeout, onTimeout: action, autoResume, expiresAt })),
      );
    }
    return 0;
  },
};

const SUBCOMMANDS: Subcommand[] = [
  create,
  get,
  metrics,
  list,
  connect,
  kill,
  pause,
  hibernate,
  resume,
  snapshot,
  fork,
  timeout,
  machineVolume,
  network,
  preview,
  ssh,
  events,
  exec,
  ps,
  logs,
  signal,
  shell,
  cp,
  files,
  git, // nullspace machine git ID ACTION
  code, // nullspace machine code ID 'CODE'
  desktop, // nullspace machine desktop ID ACTION
];

export const MACHINE_HELP = groupHelp('machine', 'Create, inspect and drive machines.', SUBCOMMANDS);

/** `nullspace machine ...`: `words` are the command words after `machine`. */
export async function runMachineCommand(
  words: string[],
  rest: string[],
  afterDashDash: string[] | undefined,
): Promise<number> {
  return runSubcommand('machine', SUBCOMMANDS, MACHINE_HELP, { words, rest, afterDashDash });
}
