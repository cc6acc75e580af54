import { constants } from 'node:os';
import {
  type CommandResult,
  type ConnectionOptions,
  MACHINE_INFO_KEYS,
  MACHINE_STATES,
  Machine,
  type MachineCreateOptions,
  type MachineInfo,
  type MachineInfoKey,
  type MachineState,
  TIMEOUT_ACTIONS,
  type TimeoutAction,
  commandResultToWire,
  machineInfoToWire,
} from '@nullspace/sdk';
import {
  GLOBAL_HELP,
  type OptionSpec,
  type OptionValues,
  UsageError,
  commaList,
  connectionFrom,
  flag,
  keyValueMap,
  optionalInteger,
  optionalString,
  parseFlags,
} from '../args.js';
import { formatMachine, formatMachineTable, printJson } from '../output.js';

interface CommandInput {
  /** The command as typed in help, e.g. `nullspace machine create`. */
  command: string;
  values: OptionValues;
  positionals: string[];
  afterDashDash: string[] | undefined;
  connection: ConnectionOptions;
  json: boolean;
}

interface Subcommand {
  name: string;
  summary: string;
  usage: string;
  flags: string;
  options: OptionSpec;
  /** Returns the process exit status. */
  run(input: CommandInput): Promise<number>;
}

function machineId(input: CommandInput): string {
  const [id, ...extra] = input.positionals;
  if (id === undefined) throw new UsageError('missing machine id', input.command);
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, input.command);
  return id;
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

const create: Subcommand = {
  name: 'create',
  summary: 'Create a machine and print its info.',
  usage: 'nullspace machine create [flags]',
  flags: `Flags:
  --template NAME          template to start from (default: base)
  --snapshot ID            start from a reusable snapshot instead of a template
  --vcpus N                virtual CPUs (default: 1)
  --memory-mb N            memory in MB (default: 512)
  --disk-mb N              disk in MB (default: 2048)
  --timeout SECONDS        lifetime before --on-timeout applies (default: 300)
  --on-timeout ACTION      kill (default), pause or hibernate
  --auto-resume            wake on preview traffic (needs --on-timeout pause|hibernate)
  --cwd DIR                default working directory of commands (default: /workspace)
  --env KEY=VALUE          environment variable of every command (repeatable)
  --metadata KEY=VALUE     label to filter lists by (repeatable)
  --warm-pool ID           check a ready machine out of this warm pool
  --warm-pool-mode MODE    prefer (default), require or bypass
  --warm-pool-wait-ms N    how long "require" waits for a ready machine
  -q, --quiet              print only the machine id`,
  options: {
    template: { type: 'string' },
    snapshot: { type: 'string' },
    vcpus: { type: 'string' },
    'memory-mb': { type: 'string' },
    'disk-mb': { type: 'string' },
    timeout: { type: 'string' },
    'on-timeout': { type: 'string' },
    'auto-resume': { type: 'boolean' },
    cwd: { type: 'string' },
    env: { type: 'string', multiple: true },
    metadata: { type: 'string', multiple: true },
    'warm-pool': { type: 'string' },
    'warm-pool-mode': { type: 'string' },
    'warm-pool-wait-ms': { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
  },
  async run(input) {
    const { values, command } = input;
    if (input.positionals.length > 0)
      throw new UsageError(`unexpected argument "${input.positionals[0]}"`, command);
    const opts: MachineCreateOptions = { ...input.connection };
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
    set('onTimeout', oneOf(values, 'on-timeout', TIMEOUT_ACTIONS, command) as TimeoutAction | undefined);
    if (flag(values, 'auto-resume')) opts.autoResume = true;
    set('cwd', optionalString(values, 'cwd'));
    set('envs', keyValueMap(values, 'env', command));
    set('metadata', keyValueMap(values, 'metadata', command));
    set('warmPool', optionalString(values, 'warm-pool'));
    set(
      'warmPoolMode',
      oneOf(
        values,
        'warm-pool-mode',
        ['prefer', 'require', 'bypass'],
        command,
      ) as MachineCreateOptions['warmPoolMode'],
    );
    set('warmPoolWaitMs', optionalInteger(values, 'warm-pool-wait-ms', command));

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

function oneOf(
  values: OptionValues,
  name: string,
  allowed: readonly string[],
  command: string,
): string | undefined {
  const value = optionalString(values, name);
  if (value !== undefined && !allowed.includes(value))
    throw new UsageError(`--${name}: expected one of ${allowed.join(', ')}, got "${value}"`, command);
  return value;
}

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

const list: Subcommand = {
  name: 'list',
  summary: 'List machines, newest first.',
  usage: 'nullspace machine list [flags]',
  flags: `Flags:
  --state STATE          only machines in this state (repeatable, or comma-separated)
  --template NAME        only machines of this template
  --metadata KEY=VALUE   only machines with this label (repeatable; all must match)
  --limit N              machines per page (default: 100, at most 1000)
  --next-token TOKEN     continue from a previous page
  --all                  follow every page
  --fields LIST          only these fields, comma-separated
  -q, --quiet            print only machine ids`,
  options: {
    state: { type: 'string', multiple: true },
    template: { type: 'string' },
    metadata: { type: 'string', multiple: true },
    limit: { type: 'string' },
    'next-token': { type: 'string' },
    all: { type: 'boolean' },
    fields: { type: 'string', multiple: true },
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
    const query: { state?: MachineState[]; template?: string; metadata?: Record<string, string> } = {};
    if (states.length > 0) query.state = states as MachineState[];
    const template = optionalString(values, 'template');
    if (template !== undefined) query.template = template;
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

const connect: Subcommand = {
  name: 'connect',
  summary: 'Resume a machine if it is paused or hibernated, and print its info.',
  usage: 'nullspace machine connect ID [--timeout SECONDS]',
  flags: `Flags:
  --timeout SECONDS   new lifetime, counted from now`,
  options: { timeout: { type: 'string' } },
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

/** The exit status a shell would report: the code, 128 + signal number, or 124 on timeout. */
export function exitStatusOf(result: CommandResult): number {
  if (result.timedOut) return 124;
  if (result.signal !== null) {
    const number = (constants.signals as Record<string, number | undefined>)[result.signal];
    return 128 + (number ?? 0);
  }
  return result.exitCode ?? 1;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const exec: Subcommand = {
  name: 'exec',
  summary: 'Run a command in a machine; exits with its exit status.',
  usage: 'nullspace machine exec ID [flags] -- CMD [ARGS...]',
  flags: `One argument after -- is a shell command line (bash -c); several are run as an argv.
The command's stdout and stderr are printed as they are. Exit status: the command's,
128+N when signal N ended it, 124 when it ran past --timeout-ms.

Flags:
  --cwd DIR            working directory (default: the machine's)
  --env KEY=VALUE      environment variable (repeatable)
  --timeout-ms N       kill the command after N milliseconds (default: 60000)
  --stdin              send this program's standard input to the command`,
  options: {
    cwd: { type: 'string' },
    env: { type: 'string', multiple: true },
    'timeout-ms': { type: 'string' },
    stdin: { type: 'boolean' },
  },
  async run(input) {
    const { values, command } = input;
    const [id, ...beforeDash] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', command);
    if (input.afterDashDash !== undefined && beforeDash.length > 0)
      throw new UsageError(`unexpected argument "${beforeDash[0]}" before --`, command);
    const argv = input.afterDashDash ?? beforeDash;
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new UsageError('missing command: put it after --', command);

    const timeoutMs = optionalInteger(values, 'timeout-ms', command);
    const cwd = optionalString(values, 'cwd');
    const envs = keyValueMap(values, 'env', command);
    const stdin = flag(values, 'stdin') ? await readStdin() : undefined;
    const machine = new Machine(id, input.connection);
    const result = await machine.commands.run(cmd, {
      ...(argv.length > 1 ? { args } : {}),
      ...(cwd === undefined ? {} : { cwd }),
      ...(envs === undefined ? {} : { envs }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(stdin === undefined ? {} : { stdin }),
    });

    if (input.json) {
      printJson(commandResultToWire(result));
    } else {
      process.stdout.write(result.stdout);
      process.stderr.write(result.stderr);
      if (result.stdoutTruncated) process.stderr.write('nullspace: stdout was truncated by the server\n');
      if (result.stderrTruncated) process.stderr.write('nullspace: stderr was truncated by the server\n');
      if (result.timedOut)
        process.stderr.write(`nullspace: command timed out after ${result.durationMs} ms\n`);
    }
    return exitStatusOf(result);
  },
};

const SUBCOMMANDS: Subcommand[] = [create, get, list, connect, kill, exec];

export const MACHINE_HELP = `usage: nullspace machine COMMAND [flags]

Create, inspect and drive machines.

Commands:
${SUBCOMMANDS.map((s) => `  ${s.name.padEnd(9)} ${s.summary}`).join('\n')}

Run 'nullspace machine COMMAND --help' for a command's flags.

${GLOBAL_HELP}
`;

function subcommandHelp(sub: Subcommand): string {
  const flags = sub.flags === '' ? '' : `${sub.flags}\n\n`;
  return `usage: ${sub.usage}\n\n${sub.summary}\n\n${flags}${GLOBAL_HELP}\n`;
}

/** `nullspace machine ...`: `words` are the command words after `machine`. */
export async function runMachineCommand(
  words: string[],
  rest: string[],
  afterDashDash: string[] | undefined,
): Promise<number> {
  const [name, ...positionals] = words;
  if (name === undefined) {
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(MACHINE_HELP);
      return 0;
    }
    throw new UsageError('missing command', 'nullspace machine');
  }
  const sub = SUBCOMMANDS.find((s) => s.name === name);
  if (sub === undefined) throw new UsageError(`unknown command "machine ${name}"`, 'nullspace machine');
  const command = `nullspace machine ${sub.name}`;
  const parsed = parseFlags(
    [...positionals, ...rest],
    sub.options,
    command,
    sub.name === 'exec'
      ? { hint: 'put the command after --, as in: nullspace machine exec ID -- ls -la' }
      : {},
  );
  if (flag(parsed.values, 'help')) {
    process.stdout.write(subcommandHelp(sub));
    return 0;
  }
  if (afterDashDash !== undefined && sub.name !== 'exec')
    throw new UsageError('"--" is only used by "machine exec"', command);
  return sub.run({
    command,
    values: parsed.values,
    positionals: parsed.positionals,
    afterDashDash,
    connection: connectionFrom(parsed.values),
    json: flag(parsed.values, 'json'),
  });
}
