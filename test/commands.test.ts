/**
 * Commands and terminals inside real machines, through the real SDK over HTTP and WebSocket:
 * streaming, background processes re-attached from another client by tag, stdin, signals,
 * timeouts, bounded logs, bytes that are not UTF-8, processes that survive hibernate and fork,
 * and an interactive bash on a PTY.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { it } from 'node:test';
import { type ErrorCode, FRAME } from '@nullspace/protocol';
import { Machine, type NullspaceError } from '@nullspace/sdk';
import WebSocket from 'ws';
import { api, describeWithServer, eventually } from './harness.js';

const isCode = (code: ErrorCode) => (e: NullspaceError) => e.code === code;

describeWithServer('commands', (ctx) => {
  it('streams 100,000 lines of a Python script in order, nothing lost', async () => {
    await using m = await Machine.create(ctx.server.conn);
    let text = '';
    let chunks = 0;
    const result = await m.commands.run('python3 -c "for i in range(100000): print(i)"', {
      onStdout: (s) => {
        text += s;
        chunks++;
      },
    });
    assert.equal(result.exitCode, 0);
    const lines = text.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 100_000);
    for (let i = 0; i < lines.length; i++)
      if (lines[i] !== String(i)) assert.fail(`line ${i} is ${lines[i]}`);
    assert.equal(result.stdout, text, 'the result holds the same output');
    assert.ok(chunks > 1, 'output came in several chunks');
  });

  it('re-attaches to a tagged background server from a second client', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const server = await m.commands.run(
      'python3 -u -c "import time\nfor i in range(1000):\n  print(\'tick\', i); time.sleep(0.05)"',
      { background: true, tag: 'web' },
    );
    assert.ok(server.pid > 1);
    assert.equal(server.tag, 'web');
    // A second client, knowing only the machine id and the tag.
    const other = new Machine(m.id, ctx.server.conn);
    const got: string[] = [];
    const attached = await other.commands.connect('web', { onStdout: (s) => got.push(s) });
    const seen = () => got.join('');
    assert.equal(attached.pid, server.pid);
    await eventually(async () => seen().includes('tick 5\n'), 'output through the re-attached stream');
    assert.ok(seen().startsWith('tick 0\n'), 'kept output is replayed first');
    const listed = (await other.commands.list()).find((p) => p.tag === 'web');
    assert.equal(listed?.running, true);
    assert.equal(listed?.pid, server.pid);
    assert.match(listed?.cmd ?? '', /python3/);
    // The tag is taken while the server runs.
    await assert.rejects(m.commands.run('true', { background: true, tag: 'web' }), isCode('conflict'));
    await attached.signal('SIGTERM');
    const end = await attached.wait();
    assert.equal(end.signal, 'SIGTERM');
    assert.equal(end.exitCode, null);
    // The first handle learns the same.
    assert.equal((await server.wait()).signal, 'SIGTERM');
  });

  it('sends stdin to an interactive cat and closing stdin ends it', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const got: string[] = [];
    const cat = await m.commands.run('cat', { background: true, onStdout: (s) => got.push(s) });
    const out = () => got.join('');
    await cat.sendStdin('hello\n');
    await eventually(async () => out() === 'hello\n', 'cat to echo the first line');
    await cat.sendStdin(Buffer.from('world\n'));
    await eventually(async () => out() === 'hello\nworld\n', 'cat to echo the second line');
    assert.equal((await m.commands.get(cat.pid)).stdinOpen, true);
    await cat.closeStdin();
    const r = await cat.wait();
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'hello\nworld\n');
    await assert.rejects(m.commands.sendStdin(cat.pid, 'late'), isCode('invalid_state'));
  });

  it('answers stdin for a process that ends without reading it, instead of holding the request', async () => {
    // Found by the fuzzed edge: 1 MiB for a process that reads one block and exits fills its
    // pipe; the writer then waited for a drain that never came, and the request (and its
    // connection) stayed open forever. Now the exit ends the write with invalid_state.
    await using m = await Machine.create(ctx.server.conn);
    const head = await m.commands.run('head', { args: ['-c', '1'], background: true });
    // Its own connection (not fetch's shared pool): the answer comes before the body is all sent.
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(`${ctx.server.url}/v1/machines/${m.id}/commands/${head.pid}/stdin`);
      const req = http.request(
        url,
        { method: 'POST', agent: false, headers: { authorization: `Bearer ${ctx.server.apiKey}` } },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => {
            text += d.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.end(Buffer.alloc(1024 * 1024));
    });
    assert.equal(status, 409, body);
    assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, 'invalid_state');
    assert.equal((await head.wait()).exitCode, 0);
  });

  it('kills by signal and by timeout, and says which', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const sleeper = await m.commands.run('sleep 600', { background: true });
    await m.commands.signal(sleeper.pid, 'SIGINT');
    const r = await sleeper.wait();
    assert.equal(r.signal, 'SIGINT');
    assert.equal(r.timedOut, false);
    const killed = await m.commands.run('sleep 600', { background: true });
    await killed.kill();
    assert.equal((await killed.wait()).signal, 'SIGKILL');
    const timed = await m.commands.run('echo begun; sleep 600', { background: true, timeoutMs: 300 });
    const t = await timed.wait();
    assert.equal(t.timedOut, true);
    assert.equal(t.signal, 'SIGKILL');
    assert.equal(t.stdout, 'begun\n');
    const info = await m.commands.get(timed.pid);
    assert.equal(info.running, false);
    assert.equal(info.timedOut, true);
    await assert.rejects(m.commands.signal(999_999, 'SIGTERM'), isCode('not_found'));
    await assert.rejects(m.commands.signal(sleeper.pid, 'SIGNOPE'), isCode('invalid_argument'));
    await assert.rejects(
      m.commands.run('true', { background: true, tag: '1bad' }),
      isCode('invalid_argument'),
    );
  });

  it('keeps output that is not UTF-8 byte for byte', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const want = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41, 0xc3, 0x28, 0x0a]);
    const got: Buffer[] = [];
    await m.commands.run("printf '\\377\\376\\000\\200A\\303(\\n'", {
      onData: (b) => got.push(Buffer.from(b)),
    });
    assert.deepEqual(Buffer.concat(got), want);
    const b64 = await m.commands.run("printf '\\377\\376\\000\\200A\\303(\\n'", { encoding: 'base64' });
    assert.deepEqual(Buffer.from(b64.stdout, 'base64'), want);
  });

  it('bounds logs with a clear truncation marker', async () => {
    await using m = await Machine.create(ctx.server.conn);
    // 6 MiB of output, more than the 4 MiB kept per process.
    const big = await m.commands.run('head -c 6291456 /dev/zero | tr "\\0" x; echo; echo tail-marker', {
      background: true,
    });
    await big.wait();
    const logs = await m.commands.logs(big.pid);
    assert.equal(logs.truncated, true);
    assert.equal(logs.droppedBytes, 6291456 + 1 + 12 - 4 * 1024 * 1024);
    assert.ok(logs.stdout.endsWith('tail-marker\n'));
    const tail = await m.commands.logs(big.pid, { offset: logs.nextOffset - 12 });
    assert.equal(tail.stdout, 'tail-marker\n');
    assert.equal(tail.truncated, false);
    const raw = (await api(ctx.server, 'GET', `/v1/machines/${m.id}/commands/${big.pid}/logs?limit=5`)) as {
      stdout: string;
      offset: number;
      next_offset: number;
    };
    assert.equal(raw.stdout.length, 5);
    assert.equal(raw.next_offset - raw.offset, 5);
    // Finished processes together keep at most 32 MiB: the oldest lose their output first.
    const chatty = [];
    for (let i = 0; i < 8; i++) {
      const h = await m.commands.run('head -c 4194304 /dev/zero', { background: true });
      await h.wait();
      chatty.push(h.pid);
    }
    const first = await m.commands.logs(big.pid);
    assert.equal(first.stdout, '', 'the oldest finished process lost its kept output');
    assert.equal(first.droppedBytes, first.process.outputBytes);
    const newest = await m.commands.logs(chatty.at(-1) as number);
    assert.equal(newest.stdout.length, 4194304);
    // With more than 16 running, running processes share 64 MiB: each keeps less than 4 MiB.
    const sleepers = [];
    for (let i = 0; i < 20; i++) sleepers.push(await m.commands.run('sleep 600', { background: true }));
    const loud = await m.commands.run('head -c 4194304 /dev/zero; sleep 600', { background: true });
    await eventually(async () => (await m.commands.get(loud.pid)).outputBytes === 4194304, 'the output');
    const shared = await m.commands.logs(loud.pid);
    assert.equal(shared.stdout.length, Math.floor((64 * 1024 * 1024) / 21));
    assert.equal(shared.truncated, true);
    for (const h of [...sleepers, loud]) await h.kill();
  });

  it('keeps processes through hibernate, fork, pause and snapshot, and the stream carries on', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const ticker = await m.commands.run(
      'python3 -u -c "import time\nn = 0\nwhile True:\n  n += 1; print(n); time.sleep(0.05)"',
      { background: true, tag: 'ticker' },
    );
    const got: string[] = [];
    ticker.stream({ onStdout: (s) => got.push(s) });
    const seen = () => got.join('');
    await eventually(async () => seen().split('\n').length > 5, 'ticks before hibernate');
    // A foreground run in flight across the hibernate: its outcome is not lost.
    const inFlight = m.commands.run('sleep 1; echo done');
    await new Promise((r) => setTimeout(r, 200));
    await m.hibernate();
    await Machine.connect(m.id, ctx.server.conn);
    const finished = await inFlight;
    assert.equal(finished.exitCode, 0);
    assert.equal(finished.stdout, 'done\n');
    const after = (await m.commands.list()).find((p) => p.tag === 'ticker');
    assert.equal(after?.running, true, 'the process is still there after hibernate + resume');
    const before = seen().split('\n').length;
    await eventually(
      async () => seen().split('\n').length > before + 5,
      'the same stream to carry on after resume',
    );
    // Every number once, in order, across the interruption: same process, same memory.
    const nums = seen().trim().split('\n').map(Number);
    nums.forEach((n, i) => assert.equal(n, i + 1));
    const [forked] = await m.fork({ count: 1 });
    if (!forked || forked.error) assert.fail(`fork failed: ${forked?.error?.message}`);
    const child = forked;
    const inChild = (await child.machine.commands.list()).find((p) => p.tag === 'ticker');
    assert.equal(inChild?.running, true, 'the fork has the process too');
    const childLogs = await child.machine.commands.logs('ticker');
    assert.ok(childLogs.stdout.startsWith('1\n2\n3\n'));
    await child.machine.kill();
    // Pause keeps it (frozen, then thawed); a machine made from a reusable snapshot has it too.
    await m.pause();
    await Machine.connect(m.id, ctx.server.conn);
    assert.equal((await m.commands.get('ticker')).running, true, 'still running after pause + resume');
    const snap = await m.createSnapshot();
    await using copy = await Machine.create({ ...ctx.server.conn, snapshotId: snap.id });
    const inCopy = await copy.commands.get('ticker');
    assert.equal(inCopy.running, true, 'a machine made from a snapshot has the process');
    assert.equal(inCopy.pid, ticker.pid);
    await api(ctx.server, 'DELETE', `/v1/snapshots/${snap.id}`);
    ticker.disconnect();
  });

  it('drives bash on a PTY: typing, resize, stty size', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const got: Buffer[] = [];
    const term = await m.pty.create({ cols: 80, rows: 24, onData: (b) => got.push(b) });
    const screen = () => Buffer.concat(got).toString('utf8');
    await term.sendInput('stty size\r');
    await eventually(async () => screen().includes('24 80'), 'stty size to print 24 80');
    await term.resize(120, 40);
    await term.sendInput('stty size; echo "tty=$(tty)"\r');
    await eventually(async () => screen().includes('40 120'), 'stty size to print 40 120 after resize');
    assert.match(screen(), /tty=\/dev\/pts\/\d+/);
    const listed = (await m.commands.list()).find((p) => p.pid === term.pid);
    assert.equal(listed?.kind, 'pty');
    await term.sendInput('exit\r');
    assert.equal((await term.wait()).exitCode, 0);
  });

  it('speaks the stream protocol over a raw WebSocket, with the API key checked', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const bg = await m.commands.run('cat', { background: true });
    const url = `${ctx.server.url.replace('http', 'ws')}/v1/machines/${m.id}/commands/${bg.pid}/ws`;
    const refused = new WebSocket(url);
    const status = await new Promise<number>((resolve) => {
      refused.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
      refused.on('error', () => undefined);
    });
    assert.equal(status, 401);
    // An unknown process is refused before the upgrade, as a plain HTTP error.
    const missing = new WebSocket(url.replace(`/commands/${bg.pid}/`, '/commands/999999/'), {
      headers: { authorization: `Bearer ${ctx.server.apiKey}` },
    });
    const refusal = await new Promise<{ status: number; body: string }>((resolve) => {
      missing.on('unexpected-response', (_q, res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      missing.on('error', () => undefined);
    });
    assert.equal(refusal.status, 404);
    assert.equal(JSON.parse(refusal.body).error.code, 'not_found');
    await assert.rejects(m.commands.connect(999_999), isCode('not_found'));
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${ctx.server.apiKey}` } });
    const frames: { kind: number; payload: Buffer }[] = [];
    ws.on('message', (d: Buffer) => frames.push({ kind: d[0] as number, payload: d.subarray(1) }));
    await new Promise((r) => ws.once('open', r));
    ws.send(Buffer.concat([Buffer.from([FRAME.stdout]), Buffer.from('ping\n')]));
    await eventually(
      async () => frames.some((f) => f.kind === FRAME.stdout && f.payload.toString() === 'ping\n'),
      'echo',
    );
    ws.send(Buffer.concat([Buffer.from([FRAME.event]), Buffer.from('{"type":"resize","cols":1,"rows":1}')]));
    await eventually(
      async () =>
        frames.some((f) => f.kind === FRAME.event && f.payload.toString().includes('invalid_argument')),
      'resize refused on a command',
    );
    ws.send(Buffer.concat([Buffer.from([FRAME.event]), Buffer.from('{"type":"close_stdin"}')]));
    const closed = await new Promise<number>((r) => ws.once('close', (code) => r(code)));
    assert.equal(closed, 1000);
    const events = frames.filter((f) => f.kind === FRAME.event).map((f) => JSON.parse(f.payload.toString()));
    assert.equal(events[0].type, 'start');
    assert.equal(events.at(-1).type, 'exit');
    assert.equal(events.at(-1).exit_code, 0);
  });
});
