/**
 * Command and terminal requests at the API edge: run, process selectors, signals, logs and offset
 * queries, terminals and resizes, and a client's WebSocket control messages.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  SIGNALS,
  parseLogsQuery,
  parseOffsetQuery,
  parseProcessSelector,
  parsePtyCreate,
  parseResize,
  parseRunCommand,
  parseSignalBody,
  parseSignalName,
  parseStreamControl,
  selectorText,
} from './index.js';
import { assertInvalid } from './test-support.js';

const run = parseRunCommand;
const MiB = 1024 * 1024;

describe('parseRunCommand', () => {
  it('defaults of a foreground run', () => {
    assert.deepEqual(run({ cmd: 'ls' }), {
      cmd: 'ls',
      args: [],
      shell: false,
      envs: {},
      timeout_ms: 60_000,
      background: false,
      stream: false,
      encoding: 'utf8',
    });
  });

  it('a background run has no timeout unless one is given', () => {
    assert.equal(run({ cmd: 'sleep', args: ['9'], background: true }).timeout_ms, 0);
    assert.equal(run({ cmd: 'sleep', background: true, timeout_ms: 5 }).timeout_ms, 5);
  });

  it('cmd is required and non-empty, at most 128 KiB, without NUL', () => {
    assertInvalid(() => run({}), 'cmd');
    assertInvalid(() => run({ cmd: '' }), 'cmd');
    assertInvalid(() => run({ cmd: ['ls'] }), 'cmd');
    assertInvalid(() => run({ cmd: 'l\0s' }), 'cmd');
    assert.equal(run({ cmd: 'x'.repeat(128 * 1024 - 1), shell: true }).cmd.length, 128 * 1024 - 1);
    assertInvalid(() => run({ cmd: 'x'.repeat(128 * 1024 + 1) }), 'cmd');
  });

  it('cmd fits what the kernel takes: a program path of at most 4095 bytes, a shell line below 128 KiB', () => {
    // Without a shell cmd is the program: a longer path is ENAMETOOLONG at spawn (was a 500).
    assert.equal(run({ cmd: `/${'a'.repeat(4094)}` }).cmd.length, 4095);
    assertInvalid(() => run({ cmd: 'x'.repeat(100_000) }), 'cmd', /4095 bytes.*shell: true/);
    // With a shell it is one argument of bash -c: at most 128 KiB with its NUL (else E2BIG).
    assertInvalid(() => run({ cmd: 'x'.repeat(128 * 1024), shell: true }), 'cmd', /131071 bytes/);
    assertInvalid(() => run({ cmd: 'é'.repeat(70_000), shell: true }), 'cmd', /131071 bytes/);
    assertInvalid(() => run({ cmd: 'echo', args: ['x'.repeat(128 * 1024)] }), 'args[0]', /131071 bytes/);
    // Together (argv and envs) within what execve takes.
    assert.equal(run({ cmd: 'echo', args: Array(7).fill('x'.repeat(100_000)) }).args.length, 7);
    assertInvalid(
      () => run({ cmd: 'echo', args: Array(11).fill('x'.repeat(100_000)) }),
      'args',
      /at most 1048576/,
    );
    assertInvalid(
      () =>
        run({
          cmd: 'echo',
          args: Array(10).fill('x'.repeat(100_000)),
          envs: { BIG0: 'y'.repeat(30_000), BIG1: 'y'.repeat(30_000) },
        }),
      'args',
    );
  });

  it('args: strings, at most 4096 of at most 128 KiB; not with shell', () => {
    assert.deepEqual(run({ cmd: 'echo', args: ['a', '', 'b c'] }).args, ['a', '', 'b c']);
    assertInvalid(() => run({ cmd: 'echo', args: 'a' }), 'args');
    assertInvalid(() => run({ cmd: 'echo', args: ['a', 1] }), 'args[1]');
    assertInvalid(() => run({ cmd: 'echo', args: ['a\0'] }), 'args[0]');
    assert.equal(run({ cmd: 'echo', args: Array(4096).fill('a') }).args.length, 4096);
    assertInvalid(() => run({ cmd: 'echo', args: Array(4097).fill('a') }), 'args');
    assertInvalid(() => run({ cmd: 'echo', args: ['x'.repeat(128 * 1024 + 1)] }), 'args[0]');
    assert.equal(run({ cmd: 'echo hi', shell: true }).shell, true);
    assertInvalid(() => run({ cmd: 'echo', shell: true, args: ['hi'] }), 'args');
    assert.equal(run({ cmd: 'echo hi', shell: true, args: [] }).shell, true);
  });

  it('timeout_ms: 1 ms to 24 h for a foreground run; 0 only for background or streaming runs', () => {
    assert.equal(run({ cmd: 'x', timeout_ms: 1 }).timeout_ms, 1);
    assert.equal(run({ cmd: 'x', timeout_ms: 86_400_000 }).timeout_ms, 86_400_000);
    assertInvalid(() => run({ cmd: 'x', timeout_ms: 86_400_001 }), 'timeout_ms');
    assertInvalid(() => run({ cmd: 'x', timeout_ms: -1 }), 'timeout_ms');
    assertInvalid(() => run({ cmd: 'x', timeout_ms: 0 }), 'timeout_ms');
    assert.equal(run({ cmd: 'x', timeout_ms: 0, stream: true }).timeout_ms, 0);
    assert.equal(run({ cmd: 'x', timeout_ms: 0, background: true }).timeout_ms, 0);
  });

  it('stream and background do not go together', () => {
    assert.equal(run({ cmd: 'x', stream: true }).stream, true);
    assertInvalid(() => run({ cmd: 'x', stream: true, background: true }), 'stream');
  });

  it('tag: a letter first, then at most 63 of [A-Za-z0-9_.-]', () => {
    assert.equal(run({ cmd: 'x', tag: 'web.server-1_a' }).tag, 'web.server-1_a');
    assert.equal(run({ cmd: 'x', tag: `a${'b'.repeat(63)}` }).tag?.length, 64);
    for (const bad of ['1web', '', 'a b', `a${'b'.repeat(64)}`, '_x', 'web/1'])
      assertInvalid(() => run({ cmd: 'x', tag: bad }), 'tag');
  });

  it('cwd absolute; envs as on create; stdin at most 16 MiB; encoding utf8 or base64', () => {
    const req = run({ cmd: 'x', cwd: '/tmp', envs: { A: 'b' }, stdin: 'in', encoding: 'base64' });
    assert.equal(req.cwd, '/tmp');
    assert.deepEqual(req.envs, { A: 'b' });
    assert.equal(req.stdin, 'in');
    assert.equal(req.encoding, 'base64');
    assertInvalid(() => run({ cmd: 'x', cwd: 'tmp' }), 'cwd');
    assertInvalid(() => run({ cmd: 'x', envs: { '9': 'b' } }), 'envs.9');
    assert.equal(run({ cmd: 'x', stdin: 'a'.repeat(16 * MiB) }).stdin?.length, 16 * MiB);
    assertInvalid(() => run({ cmd: 'x', stdin: 'a'.repeat(16 * MiB + 1) }), 'stdin');
    assertInvalid(() => run({ cmd: 'x', stdin: 'a\0' }), 'stdin');
    assertInvalid(() => run({ cmd: 'x', encoding: 'hex' }), 'encoding');
  });

  it('refuses unknown fields, wrong types and a body that is not an object', () => {
    assertInvalid(() => run({ cmd: 'x', command: 'y' }), 'command');
    assertInvalid(() => run({ cmd: 'x', background: 'yes' }), 'background');
    assertInvalid(() => run({ cmd: 'x', shell: 1 }), 'shell');
    assertInvalid(() => run(undefined), 'body');
    assertInvalid(() => run('ls'), 'body');
  });
});

describe('process selectors', () => {
  it('digits are a pid (1 to 9 digits, not 0), a tag is a tag', () => {
    assert.deepEqual(parseProcessSelector('42'), { pid: 42 });
    assert.deepEqual(parseProcessSelector('999999999'), { pid: 999999999 });
    assert.deepEqual(parseProcessSelector('web'), { tag: 'web' });
    assert.equal(selectorText({ pid: 42 }), '42');
    assert.equal(selectorText({ tag: 'web' }), 'web');
    for (const bad of ['0', '1234567890', '-1', '', '1a', 'a b', '../x'])
      assertInvalid(() => parseProcessSelector(bad), 'pid');
  });
});

describe('signals', () => {
  it('names with or without SIG, in any case', () => {
    assert.equal(parseSignalName('SIGTERM'), 'SIGTERM');
    assert.equal(parseSignalName('term'), 'SIGTERM');
    assert.equal(parseSignalName('sigkill'), 'SIGKILL');
    for (const s of SIGNALS) assert.equal(parseSignalName(s.slice(3)), s);
  });

  it('refuses numbers and unknown names, naming the field given', () => {
    assertInvalid(() => parseSignalName(9), 'signal');
    assertInvalid(() => parseSignalName('9'), 'signal');
    assertInvalid(() => parseSignalName('SIGSEGV'), 'signal');
    assertInvalid(() => parseSignalName('SIG'), 'signal');
    assertInvalid(() => parseSignalName('FOO', 'message.signal'), 'message.signal');
  });

  it('the signal body defaults to SIGTERM', () => {
    assert.deepEqual(parseSignalBody(undefined), { signal: 'SIGTERM' });
    assert.deepEqual(parseSignalBody({}), { signal: 'SIGTERM' });
    assert.deepEqual(parseSignalBody({ signal: 'int' }), { signal: 'SIGINT' });
    assertInvalid(() => parseSignalBody({ signal: 'nope' }), 'signal');
    assertInvalid(() => parseSignalBody({ sig: 'TERM' }), 'sig');
    assertInvalid(() => parseSignalBody([]), 'body');
  });
});

describe('logs and offset queries', () => {
  const logs = (s: string) => parseLogsQuery(new URLSearchParams(s));
  const offset = (s: string) => parseOffsetQuery(new URLSearchParams(s));

  it('logs defaults: from 0, 4 MiB, utf8', () => {
    assert.deepEqual(logs(''), { offset: 0, limit: 4 * MiB, encoding: 'utf8' });
  });

  it('logs: offset any non-negative integer; limit 1 to 4 MiB; encoding utf8 or base64', () => {
    assert.deepEqual(logs('offset=123&limit=1&encoding=base64'), {
      offset: 123,
      limit: 1,
      encoding: 'base64',
    });
    assert.equal(logs(`limit=${4 * MiB}`).limit, 4 * MiB);
    assertInvalid(() => logs(`limit=${4 * MiB + 1}`), 'limit');
    assertInvalid(() => logs('limit=0'), 'limit');
    assertInvalid(() => logs('offset=-1'), 'offset');
    assertInvalid(() => logs('offset=1.5'), 'offset');
    assertInvalid(() => logs('offset='), 'offset');
    assertInvalid(() => logs('encoding=hex'), 'encoding');
    assertInvalid(() => logs('since=1'), 'since');
  });

  it('offset query: absent or a non-negative integer, nothing else', () => {
    assert.deepEqual(offset(''), { offset: undefined });
    assert.deepEqual(offset('offset=0'), { offset: 0 });
    assert.deepEqual(offset('offset=77'), { offset: 77 });
    assertInvalid(() => offset('offset=x'), 'offset');
    assertInvalid(() => offset('after=1'), 'after');
  });
});

describe('terminals', () => {
  it('parsePtyCreate defaults to 80x24 and takes an optional cmd, cwd and tag', () => {
    assert.deepEqual(parsePtyCreate(undefined), { cols: 80, rows: 24, args: [], envs: {} });
    assert.deepEqual(
      parsePtyCreate({
        cols: 1000,
        rows: 1,
        cmd: 'bash',
        args: ['-l'],
        cwd: '/',
        envs: { T: 'x' },
        tag: 'sh',
      }),
      { cols: 1000, rows: 1, cmd: 'bash', args: ['-l'], cwd: '/', envs: { T: 'x' }, tag: 'sh' },
    );
  });

  it('parsePtyCreate refuses out-of-range sizes, an empty cmd and unknown fields', () => {
    for (const [field, bad] of [
      ['cols', 0],
      ['cols', 1001],
      ['rows', 0],
      ['rows', 1001],
    ] as const)
      assertInvalid(() => parsePtyCreate({ [field]: bad }), field);
    assertInvalid(() => parsePtyCreate({ cmd: '' }), 'cmd');
    assertInvalid(() => parsePtyCreate({ cmd: 'x'.repeat(4097) }), 'cmd');
    assertInvalid(() => parsePtyCreate({ cwd: 'home' }), 'cwd');
    assertInvalid(() => parsePtyCreate({ tag: '9' }), 'tag');
    assertInvalid(() => parsePtyCreate({ shell: true }), 'shell');
    assertInvalid(() => parsePtyCreate('bash'), 'body');
  });

  it('parseResize needs both sizes in range', () => {
    assert.deepEqual(parseResize({ cols: 120, rows: 40 }), { cols: 120, rows: 40 });
    assertInvalid(() => parseResize({ rows: 40 }), 'cols');
    assertInvalid(() => parseResize({ cols: 40 }), 'rows');
    assertInvalid(() => parseResize({ cols: 1001, rows: 40 }), 'cols');
    assertInvalid(() => parseResize({ cols: 10, rows: 40, x: 1 }), 'x');
    assertInvalid(() => parseResize(undefined), 'body');
  });
});

describe('parseStreamControl', () => {
  it('close_stdin and signal on any stream, resize only on a terminal', () => {
    assert.deepEqual(parseStreamControl('{"type":"close_stdin"}', false), { type: 'close_stdin' });
    assert.deepEqual(parseStreamControl('{"type":"signal","signal":"int"}', false), {
      type: 'signal',
      signal: 'SIGINT',
    });
    assert.deepEqual(parseStreamControl('{"type":"resize","cols":100,"rows":30}', true), {
      type: 'resize',
      cols: 100,
      rows: 30,
    });
    assertInvalid(() => parseStreamControl('{"type":"resize","cols":100,"rows":30}', false), 'type');
  });

  it('refuses what is not a JSON object, unknown types and unknown fields', () => {
    assertInvalid(() => parseStreamControl('not json', false), 'message');
    assertInvalid(() => parseStreamControl('[1]', false), 'message');
    assertInvalid(() => parseStreamControl('{"type":"kill"}', true), 'type');
    assertInvalid(() => parseStreamControl('{"type":"close_stdin","now":true}', false), 'now');
    assertInvalid(() => parseStreamControl('{"type":"signal","signal":"BOGUS"}', false), 'signal');
    assertInvalid(() => parseStreamControl('{"type":"resize","cols":0,"rows":30}', true), 'cols');
  });
});
