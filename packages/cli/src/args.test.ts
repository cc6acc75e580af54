/**
 * The CLI's command line: command words versus flags, flag parsing into usage errors, the typed
 * flag readers, and how a group runs one of its subcommands (help, unknown commands, `--`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CommandInput,
  type Subcommand,
  UsageError,
  commaList,
  connectionFrom,
  groupHelp,
  keyValueMap,
  oneOf,
  optionalInteger,
  parseFlags,
  runSubcommand,
  singleId,
  splitCommandLine,
} from './args.js';

function usage(fn: () => unknown, command: string, phrase: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.command, command);
    assert.match(err.message, phrase);
    return true;
  });
}

async function usageAsync(fn: () => Promise<unknown>, command: string, phrase: RegExp): Promise<void> {
  await assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.command, command);
    assert.match(err.message, phrase);
    return true;
  });
}

describe('splitCommandLine', () => {
  it('leading words are the command; global flags may come first', () => {
    assert.deepEqual(splitCommandLine(['machine', 'list', '--state', 'running'], 2), {
      words: ['machine', 'list'],
      rest: ['--state', 'running'],
      afterDashDash: undefined,
    });
    assert.deepEqual(splitCommandLine(['--json', '--api-url', 'http://x', 'machine', 'get', 'mch_a'], 2), {
      words: ['machine', 'get'],
      rest: ['--json', '--api-url', 'http://x', 'mch_a'],
      afterDashDash: undefined,
    });
    assert.deepEqual(splitCommandLine(['--api-key=k', '-h', 'machine'], 2).words, ['machine']);
  });

  it('the first command flag ends the words; what follows is the command’s', () => {
    assert.deepEqual(splitCommandLine(['machine', '--vcpus', '2', 'create'], 2), {
      words: ['machine'],
      rest: ['--vcpus', '2', 'create'],
      afterDashDash: undefined,
    });
  });

  it('words stop at the maximum; -- splits off the rest untouched', () => {
    assert.deepEqual(splitCommandLine(['machine', 'exec', 'mch_a', '--', 'ls', '--json', '-la'], 2), {
      words: ['machine', 'exec'],
      rest: ['mch_a'],
      afterDashDash: ['ls', '--json', '-la'],
    });
    assert.deepEqual(splitCommandLine(['x', '--', '--', 'y'], 1).afterDashDash, ['--', 'y']);
    assert.deepEqual(splitCommandLine(['x', '--'], 1).afterDashDash, []);
  });
});

describe('parseFlags', () => {
  const options = { vcpus: { type: 'string' }, env: { type: 'string', multiple: true } } as const;

  it('values and positionals, global flags included', () => {
    const { values, positionals } = parseFlags(
      ['mch_a', '--vcpus', '2', '--env', 'A=1', '--env', 'B=2', '--json'],
      options,
      'nullspace machine create',
    );
    assert.deepEqual(positionals, ['mch_a']);
    assert.equal(values.vcpus, '2');
    assert.deepEqual(values.env, ['A=1', 'B=2']);
    assert.equal(values.json, true);
  });

  it('an unknown flag is a usage error naming it, with the hint', () => {
    usage(
      () =>
        parseFlags(['--cpus', '2'], options, 'nullspace machine create', { hint: 'did you mean --vcpus?' }),
      'nullspace machine create',
      /unknown flag "--cpus"; did you mean --vcpus\?/,
    );
    usage(() => parseFlags(['--json'], options, 'nullspace x', { globals: false }), 'nullspace x', /--json/);
  });

  it('a string flag without its value is a usage error', () => {
    usage(
      () => parseFlags(['--vcpus'], options, 'nullspace machine create'),
      'nullspace machine create',
      /vcpus/,
    );
  });
});

describe('flag readers', () => {
  it('optionalInteger: digits with an optional sign, else a usage error naming the flag', () => {
    assert.equal(optionalInteger({ n: '42' }, 'n', 'c'), 42);
    assert.equal(optionalInteger({ n: '-3' }, 'n', 'c'), -3);
    assert.equal(optionalInteger({}, 'n', 'c'), undefined);
    for (const bad of ['4.2', '1e3', '', 'x', '0x10', ' 1'])
      usage(() => optionalInteger({ n: bad }, 'n', 'cmd'), 'cmd', /--n/);
  });

  it('keyValueMap: KEY=VALUE pairs, later ones win, values may hold =', () => {
    assert.deepEqual(keyValueMap({ env: ['A=1', 'B=x=y', 'A=2', 'C='] }, 'env', 'c'), {
      A: '2',
      B: 'x=y',
      C: '',
    });
    assert.deepEqual(keyValueMap({ env: 'A=1' }, 'env', 'c'), { A: '1' });
    assert.equal(keyValueMap({}, 'env', 'c'), undefined);
    usage(() => keyValueMap({ env: ['A'] }, 'env', 'cmd'), 'cmd', /--env/);
    usage(() => keyValueMap({ env: ['=1'] }, 'env', 'cmd'), 'cmd', /--env/);
  });

  it('commaList: repeated and comma-separated values, trimmed, empty ones dropped', () => {
    assert.deepEqual(commaList({ state: ['running, paused', 'killed', ',,'] }, 'state'), [
      'running',
      'paused',
      'killed',
    ]);
    assert.deepEqual(commaList({}, 'state'), []);
  });

  it('oneOf: an allowed value or a usage error listing them', () => {
    assert.equal(oneOf({ on: 'pause' }, 'on', ['kill', 'pause'] as const, 'c'), 'pause');
    assert.equal(oneOf({}, 'on', ['kill'] as const, 'c'), undefined);
    usage(() => oneOf({ on: 'stop' }, 'on', ['kill', 'pause'] as const, 'cmd'), 'cmd', /kill, pause/);
  });

  it('connectionFrom: only the flags given', () => {
    assert.deepEqual(connectionFrom({ 'api-url': 'http://h:1', 'api-key': 'k' }), {
      apiUrl: 'http://h:1',
      apiKey: 'k',
    });
    assert.deepEqual(connectionFrom({ json: true }), {});
  });

  it('singleId: exactly one positional', () => {
    const input = (positionals: string[]) =>
      ({ command: 'nullspace machine get', positionals }) as CommandInput;
    assert.equal(singleId(input(['mch_a']), 'machine id'), 'mch_a');
    usage(() => singleId(input([]), 'machine id'), 'nullspace machine get', /missing machine id/);
    usage(() => singleId(input(['a', 'b']), 'machine id'), 'nullspace machine get', /"b"/);
  });
});

describe('runSubcommand', () => {
  const calls: CommandInput[] = [];
  const sub = (name: string, extra: Partial<Subcommand> = {}): Subcommand => ({
    name,
    summary: `${name} things`,
    usage: `nullspace thing ${name} ID`,
    flags: '  --size N   how big',
    options: { size: { type: 'string' } },
    run: async (input) => {
      calls.push(input);
      return 7;
    },
    ...extra,
  });
  const subs = [sub('make'), sub('exec', { takesDashDash: true })];
  const help = groupHelp('thing', 'Things.', subs);

  /** Runs with stdout captured. */
  async function run(argv: string[]): Promise<{ status: number; out: string }> {
    const line = splitCommandLine(argv, 1);
    let out = '';
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    }) as typeof process.stdout.write;
    try {
      return { status: await runSubcommand('thing', subs, help, line), out };
    } finally {
      process.stdout.write = write;
    }
  }

  it('runs the subcommand with its flags, positionals, connection and --json', async () => {
    calls.length = 0;
    const { status } = await run(['make', 'id1', '--size', '3', '--json', '--api-url', 'http://h:9']);
    assert.equal(status, 7);
    assert.equal(calls.length, 1);
    const input = calls[0] as CommandInput;
    assert.equal(input.command, 'nullspace thing make');
    assert.deepEqual(input.positionals, ['id1']);
    assert.equal(input.values.size, '3');
    assert.equal(input.json, true);
    assert.deepEqual(input.connection, { apiUrl: 'http://h:9' });
    assert.equal(input.afterDashDash, undefined);
  });

  it('group help lists the commands; a command’s help shows its usage and flags; nothing runs', async () => {
    calls.length = 0;
    const group = await run(['--help']);
    assert.equal(group.status, 0);
    assert.match(group.out, /usage: nullspace thing COMMAND/);
    assert.match(group.out, /make {2}make things/);
    assert.match(group.out, /--api-url/);
    const one = await run(['make', '-h']);
    assert.equal(one.status, 0);
    assert.match(one.out, /usage: nullspace thing make ID/);
    assert.match(one.out, /--size N/);
    assert.equal(calls.length, 0);
  });

  it('missing or unknown commands, unknown flags and a stray -- are usage errors', async () => {
    await usageAsync(() => run([]), 'nullspace thing', /missing command/);
    await usageAsync(() => run(['destroy']), 'nullspace thing', /unknown command "thing destroy"/);
    await usageAsync(() => run(['make', '--colour', 'red']), 'nullspace thing make', /"--colour"/);
    await usageAsync(() => run(['make', 'id', '--', 'ls']), 'nullspace thing make', /"thing exec"/);
    calls.length = 0;
    assert.equal((await run(['exec', 'id', '--', 'ls', '-l'])).status, 7);
    assert.deepEqual(calls[0]?.afterDashDash, ['ls', '-l']);
  });
});
