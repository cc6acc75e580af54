import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { ConnectionOptions } from '@nullspace/sdk';

/** A mistake in the command line: reported with a pointer to the help, exit status 2. */
export class UsageError extends Error {
  /** The command whose `--help` explains the mistake, e.g. `nullspace machine create`. */
  readonly command: string;
  constructor(message: string, command = 'nullspace') {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;
export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Flags every command accepts, before or after the command words. */
export const GLOBAL_OPTIONS = {
  'api-url': { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export const GLOBAL_HELP = `Global flags:
  --api-url URL   API to talk to (default: $NULLSPACE_API_URL, else http://127.0.0.1:7070)
  --api-key KEY   API key (default: $NULLSPACE_API_KEY)
  --json          print JSON (the HTTP API's shape) instead of tables
  -h, --help      show help`;

export interface CommandLine {
  /** Leading words naming the command, e.g. `['machine', 'list']`. */
  words: string[];
  /** Every other argument before `--`, in order. */
  rest: string[];
  /** Arguments after the first `--`, or undefined when there is none. */
  afterDashDash: string[] | undefined;
}

const GLOBAL_STRING_FLAGS = new Set(['--api-url', '--api-key']);

/**
 * Splits argv into command words and the rest. Command words are the leading arguments that are
 * not flags; global flags may come before them (`nullspace --json machine list`).
 */
export function splitCommandLine(argv: readonly string[], maxWords: number): CommandLine {
  const dash = argv.indexOf('--');
  const before = dash === -1 ? [...argv] : argv.slice(0, dash);
  const words: string[] = [];
  const rest: string[] = [];
  let i = 0;
  while (i < before.length && words.length < maxWords) {
    const arg = before[i]!;
    if (GLOBAL_STRING_FLAGS.has(arg)) {
      rest.push(arg, ...before.slice(i + 1, i + 2));
      i += 2;
    } else if (arg.startsWith('-')) {
      // The first other flag ends the command words: it belongs to the command.
      if (!GLOBAL_STRING_FLAGS.has(arg.split('=')[0]!) && !isGlobalBooleanFlag(arg)) break;
      rest.push(arg);
      i += 1;
    } else {
      words.push(arg);
      i += 1;
    }
  }
  rest.push(...before.slice(i));
  return { words, rest, afterDashDash: dash === -1 ? undefined : argv.slice(dash + 1) };
}

function isGlobalBooleanFlag(arg: string): boolean {
  return arg === '--json' || arg === '--help' || arg === '-h';
}

/**
 * Parses a command's flags (plus the global ones unless `globals` is false), turning parse
 * errors into usage errors. `hint` is appended to an unknown-flag error.
 */
export function parseFlags(
  args: string[],
  options: OptionSpec,
  command: string,
  opts: { globals?: boolean; hint?: string } = {},
): { values: OptionValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args,
      options:
        opts.globals === false
          ? { help: GLOBAL_OPTIONS.help, ...options }
          : { ...GLOBAL_OPTIONS, ...options },
      strict: true,
      allowPositionals: true,
    });
    return { values: values as OptionValues, positionals };
  } catch (err) {
    if (!(err instanceof TypeError) || !('code' in err)) throw err;
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const name = /'([^']+)'/.exec(err.message)?.[1] ?? '?';
      throw new UsageError(
        `unknown flag "${name}"${opts.hint === undefined ? '' : `; ${opts.hint}`}`,
        command,
      );
    }
    if (String(err.code).startsWith('ERR_PARSE_ARGS')) throw new UsageError(err.message, command);
    throw err;
  }
}

/** The connection options the global flags give (unset ones fall back to the environment). */
export function connectionFrom(values: OptionValues): ConnectionOptions {
  const opts: ConnectionOptions = {};
  const apiUrl = optionalString(values, 'api-url');
  const apiKey = optionalString(values, 'api-key');
  if (apiUrl !== undefined) opts.apiUrl = apiUrl;
  if (apiKey !== undefined) opts.apiKey = apiKey;
  return opts;
}

export function optionalString(values: OptionValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

export function stringList(values: OptionValues, name: string): string[] {
  const value = values[name];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string');
}

export function flag(values: OptionValues, name: string): boolean {
  return values[name] === true;
}

/** An integer flag; anything else is a usage error naming the flag. */
export function optionalInteger(values: OptionValues, name: string, command: string): number | undefined {
  const value = optionalString(values, name);
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) throw new UsageError(`--${name}: expected an integer, got "${value}"`, command);
  return Number(value);
}

/** `--env K=V` style flags as a map; later pairs win. Values may contain `=`. */
export function keyValueMap(
  values: OptionValues,
  name: string,
  command: string,
): Record<string, string> | undefined {
  const pairs = stringList(values, name);
  if (pairs.length === 0) return undefined;
  const map: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${name}: expected KEY=VALUE, got "${pair}"`, command);
    map[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return map;
}

/** Values of a repeatable flag that also takes comma-separated lists (`--state a,b --state c`). */
export function commaList(values: OptionValues, name: string): string[] {
  return stringList(values, name)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** One parsed invocation of a subcommand, as its `run` gets it. */
export interface CommandInput {
  /** The command as typed in help, e.g. `nullspace machine create`. */
  command: string;
  values: OptionValues;
  positionals: string[];
  afterDashDash: string[] | undefined;
  connection: ConnectionOptions;
  json: boolean;
}

/** A command of a group such as `nullspace machine` or `nullspace snapshot`. */
export interface Subcommand {
  name: string;
  summary: string;
  usage: string;
  flags: string;
  options: OptionSpec;
  /** Takes arguments after `--` (only `machine exec`). */
  takesDashDash?: boolean;
  /** Appended to an unknown-flag error, e.g. where the flag probably belongs. */
  flagHint?: string;
  /** Returns the process exit status. */
  run(input: CommandInput): Promise<number>;
}

/** The help of a command group: its commands with their summaries. */
export function groupHelp(group: string, description: string, subcommands: readonly Subcommand[]): string {
  const width = Math.max(...subcommands.map((s) => s.name.length));
  return `usage: nullspace ${group} COMMAND [flags]

${description}

Commands:
${subcommands.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}`).join('\n')}

Run 'nullspace ${group} COMMAND --help' for a command's flags.

${GLOBAL_HELP}
`;
}

function subcommandHelp(sub: Subcommand): string {
  const flags = sub.flags === '' ? '' : `${sub.flags}\n\n`;
  return `usage: ${sub.usage}\n\n${sub.summary}\n\n${flags}${GLOBAL_HELP}\n`;
}

/**
 * Runs `nullspace GROUP NAME ...`: `words` are the command words after the group, `help` the
 * group's help text. Returns the exit status.
 */
export async function runSubcommand(
  group: string,
  subcommands: readonly Subcommand[],
  help: string,
  line: { words: string[]; rest: string[]; afterDashDash: string[] | undefined },
): Promise<number> {
  const [name, ...positionals] = line.words;
  const groupCommand = `nullspace ${group}`;
  if (name === undefined) {
    if (line.rest.includes('--help') || line.rest.includes('-h')) {
      process.stdout.write(help);
      return 0;
    }
    throw new UsageError('missing command', groupCommand);
  }
  const sub = subcommands.find((s) => s.name === name);
  if (sub === undefined) throw new UsageError(`unknown command "${group} ${name}"`, groupCommand);
  const command = `${groupCommand} ${sub.name}`;
  const parsed = parseFlags(
    [...positionals, ...line.rest],
    sub.options,
    command,
    sub.flagHint === undefined ? {} : { hint: sub.flagHint },
  );
  if (flag(parsed.values, 'help')) {
    process.stdout.write(subcommandHelp(sub));
    return 0;
  }
  if (line.afterDashDash !== undefined && sub.takesDashDash !== true) {
    const users = subcommands.filter((s) => s.takesDashDash === true).map((s) => `"${group} ${s.name}"`);
    throw new UsageError(
      users.length === 0
        ? `"--" is not used by "${group} ${sub.name}"`
        : `"--" is only used by ${users.join(', ')}`,
      command,
    );
  }
  return sub.run({
    command,
    values: parsed.values,
    positionals: parsed.positionals,
    afterDashDash: line.afterDashDash,
    connection: connectionFrom(parsed.values),
    json: flag(parsed.values, 'json'),
  });
}

/** The one id a command takes (`what` names it in errors, e.g. `machine id`). */
export function singleId(input: CommandInput, what: string): string {
  const [id, ...extra] = input.positionals;
  if (id === undefined) throw new UsageError(`missing ${what}`, input.command);
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, input.command);
  return id;
}

/** A flag that must be one of `allowed`; anything else is a usage error naming the flag. */
export function oneOf<T extends string>(
  values: OptionValues,
  name: string,
  allowed: readonly T[],
  command: string,
): T | undefined {
  const value = optionalString(values, name);
  if (value !== undefined && !(allowed as readonly string[]).includes(value))
    throw new UsageError(`--${name}: expected one of ${allowed.join(', ')}, got "${value}"`, command);
  return value as T | undefined;
}
