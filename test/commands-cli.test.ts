/**
 * The CLI's commands inside a machine, run as a real program against a real server: `exec`
 * streaming (bytes exact, exit status), `--stdin`, `--background --tag`, `ps`, `logs`, `logs
 * --follow`, `signal`, and `shell` driven through a pipe.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { it } from 'node:test';
import { Machine } from '@nullspace/sdk';
import { CLI, cli, describeWithServer, eventually } from './harness.js';

describeWithServer('commands (CLI)', (ctx) => {
  it('exec streams output, keeps the exit status, and feeds stdin', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const r = await cli(ctx.server, ['machine', 'exec', m.id, '--', 'echo out; echo err >&2; exit 5']);
    assert.equal(r.code, 5);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    const piped = await cli(ctx.server, ['machine', 'exec', m.id, '--stdin', '--', 'tr a-z A-Z'], 'shout\n');
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, 'SHOUT\n');
    const sig = await cli(ctx.server, ['machine', 'exec', m.id, '--', 'kill -TERM $$']);
    assert.equal(sig.code, 128 + 15);
    const missing = await cli(ctx.server, ['machine', 'exec', m.id, '--', 'no-such-program', 'x']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /no-such-program: command not found/);
    const json = await cli(ctx.server, ['machine', 'exec', m.id, '--json', '--', 'echo hi']);
    assert.equal(JSON.parse(json.stdout).stdout, 'hi\n');
  });

  it('starts a tagged background command, lists it, reads and follows its logs, signals it', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const started = await cli(ctx.server, [
      'machine',
      'exec',
      m.id,
      '--background',
      '--tag',
      'loop',
      '--',
      'for i in $(seq 1 400); do echo line $i; sleep 0.05; done',
    ]);
    assert.equal(started.code, 0, started.stderr);
    const pid = Number(started.stdout.trim());
    assert.ok(pid > 1);
    const ps = await cli(ctx.server, ['machine', 'ps', m.id]);
    assert.match(ps.stdout, new RegExp(`${pid}\\s+loop\\s+command\\s+running`));
    await eventually(
      async () => (await cli(ctx.server, ['machine', 'logs', m.id, 'loop'])).stdout.includes('line 3\n'),
      'logs',
    );
    const follow = cli(ctx.server, ['machine', 'logs', m.id, 'loop', '--follow']);
    await new Promise((r) => setTimeout(r, 500));
    const sent = await cli(ctx.server, ['machine', 'signal', m.id, 'loop', 'TERM']);
    assert.equal(sent.code, 0, sent.stderr);
    const followed = await follow;
    assert.equal(followed.code, 128 + 15);
    assert.ok(followed.stdout.startsWith('line 1\nline 2\n'));
    const psJson = JSON.parse((await cli(ctx.server, ['machine', 'ps', m.id, '--json'])).stdout);
    assert.equal(psJson.processes[0].signal, 'SIGTERM');
    const missing = await cli(ctx.server, ['machine', 'logs', m.id, 'nope']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /not_found/);
  });

  it('shell runs an interactive terminal', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const r = await cli(ctx.server, ['machine', 'shell', m.id], 'stty size; echo "in=$(tty)"; exit 3\n');
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /24 80/);
    assert.match(r.stdout, /in=\/dev\/pts\/\d+/);
  });

  it('shell on a real terminal: raw mode sends Ctrl-C to the machine, not to the CLI', async () => {
    await using m = await Machine.create(ctx.server.conn);
    // `script` gives the CLI a terminal of its own (stdin and stdout are a pty), as a user's would be.
    const p = spawn('script', ['-qfec', `${process.execPath} ${CLI} machine shell ${m.id}`, '/dev/null'], {
      env: { ...process.env, NULLSPACE_API_URL: ctx.server.url, NULLSPACE_API_KEY: ctx.server.apiKey },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code)));
    try {
      await eventually(async () => out.includes('# '), 'the shell prompt');
      p.stdin.write('sleep 100\r');
      await new Promise((r) => setTimeout(r, 500));
      p.stdin.write('\x03'); // Ctrl-C: in raw mode it reaches the machine's shell, which stops sleep
      p.stdin.write('echo "after$((6*7))"\r');
      await eventually(async () => out.includes('after42'), 'the shell to go on after Ctrl-C');
      p.stdin.write('exit 7\r');
      assert.equal(await exited, 7);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  });
});
