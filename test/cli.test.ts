/**
 * The `nullspace` CLI against a real server: human tables by default, `--json` for scripts, exit
 * codes that carry the command's status, `error: <code>` on failure.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { cli, describeWithServer } from './harness.js';

describeWithServer('cli', (ctx) => {
  it('creates, gets, lists, execs and kills', async () => {
    const created = await cli(ctx.server, [
      'machine',
      'create',
      '--json',
      '--metadata',
      'from=cli',
      '--env',
      'WHO=cli',
      '--memory-mb',
      '256',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const info = JSON.parse(created.stdout) as {
      id: string;
      status: string;
      memory_mb: number;
      envs: string[];
    };
    assert.equal(info.status, 'running');
    assert.equal(info.memory_mb, 256);
    assert.deepEqual(info.envs, ['WHO']);

    const table = await cli(ctx.server, ['machine', 'list', '--metadata', 'from=cli']);
    assert.equal(table.code, 0, table.stderr);
    const [header, row] = table.stdout.trim().split('\n');
    assert.match(header ?? '', /^ID\s+STATUS\s+TEMPLATE/);
    assert.match(row ?? '', new RegExp(`^${info.id}\\s+running\\s+base`));

    const get = await cli(ctx.server, ['machine', 'get', info.id]);
    assert.equal(get.code, 0);
    assert.match(get.stdout, new RegExp(`id\\s+${info.id}`));
    assert.match(get.stdout, /status\s+running/);

    const shell = await cli(ctx.server, ['machine', 'exec', info.id, '--', 'echo "$WHO says hi"; exit 3']);
    assert.equal(shell.code, 3);
    assert.equal(shell.stdout, 'cli says hi\n');
    const argv = await cli(ctx.server, [
      'machine',
      'exec',
      info.id,
      '--',
      'python3',
      '-c',
      'import sys; print(sys.argv[1:])',
      'a b',
    ]);
    assert.equal(argv.code, 0, argv.stderr);
    assert.equal(argv.stdout, "['a b']\n");
    const stderr = await cli(ctx.server, ['machine', 'exec', info.id, '--', 'echo to-stderr >&2']);
    assert.equal(stderr.stderr, 'to-stderr\n');

    const kill = await cli(ctx.server, ['machine', 'kill', info.id, '--json']);
    assert.equal(kill.code, 0, kill.stderr);
    assert.equal((JSON.parse(kill.stdout) as { status: string }).status, 'killed');
  });

  it('fails with the error code and a non-zero exit', async () => {
    const missing = await cli(ctx.server, ['machine', 'get', 'mch_aaaaaaaaaaaaaaaaaaaa']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: machine_not_found: /);
    const bad = await cli(ctx.server, ['machine', 'create', '--vcpus', '0']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error: invalid_argument: vcpus/);
    const usage = await cli(ctx.server, ['machine', 'frobnicate']);
    assert.equal(usage.code, 2);
    const unauth = await cli({ ...ctx.server, apiKey: 'wrong' }, ['machine', 'list']);
    assert.equal(unauth.code, 1);
    assert.match(unauth.stderr, /error: unauthenticated/);
  });
});
