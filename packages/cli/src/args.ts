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
