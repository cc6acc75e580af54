/**
 * The files namespace end to end: a real server, real machines, the real SDK, CLI and curl.
 * Bytes stream through the server (its memory stays flat for 200 MiB), writes are atomic (a full
 * disk leaves nothing behind), paths are the machine's own (a symlink to / cannot reach the host),
 * watches report create/write/rename/remove in order, and signed URLs work without a key.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { hostname as hostHostname } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { ErrorCode } from '@nullspace/protocol';
import { DiskFullError, Machine, type NullspaceError, type WatchEvent } from '@nullspace/sdk';
import { api, cli, describeWithServer, eventually } from './harness.js';

const run = promisify(execFile);
const isCode = (code: ErrorCode) => (e: NullspaceError) => e.code === code;
const MiB = 1024 * 1024;

/** `curl` as a user would run it: no API key. Resolves with the HTTP status and the body. */
async function curl(args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run('curl', ['-sS', '-w', '\n%{http_code}', ...args], { maxBuffer: 64 * MiB });
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

/** Pseudo-random bytes, `size` in 1 MiB chunks, hashed as they are produced (never held whole). */
function generated(size: number, hash: ReturnType<typeof createHash>): Readable {
  let left = size;
  return new Readable({
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const chunk = randomBytes(Math.min(MiB, left));
      left -= chunk.length;
      hash.update(chunk);
      this.push(chunk);
    },
  });
}

/**
 * Reads one HTTP/1.1 response with a Content-Length from `socket` (the agent's answers have one);
 * rejects if the socket ends or fails first.
 */
function readHttpResponse(socket: Socket): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      const head = got.indexOf('\r\n\r\n');
      if (head < 0) return;
      const headers = got.subarray(0, head).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(headers)?.[1] ?? Number.NaN);
      if (got.length < head + 4 + length) return;
      done();
      resolve({
        status: Number(headers.split(' ')[1]),
        body: got.subarray(head + 4, head + 4 + length).toString('utf8'),
      });
    };
    const onEnd = () => {
      done();
      reject(new Error(`the agent closed before a whole answer: ${JSON.stringify(got.toString('latin1'))}`));
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    const done = () => {
      socket.off('data', onData).off('end', onEnd).off('error', onError);
    };
    socket.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

/** Samples the VmRSS of a process every 50 ms; `stop()` returns the largest value seen, in bytes. */
function sampleRss(pid: number): { stop(): number; baseline: number } {
  const read = () => {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m?.[1] ?? 0) * 1024;
  };
  const baseline = read();
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, read());
  }, 50);
  return {
    baseline,
    stop() {
      clearInterval(timer);
      return Math.max(peak, read());
    },
  };
}

/** Waits until `events` holds an event matching `pred`. */
function waitFor(events: WatchEvent[], what: string, pred: (e: WatchEvent) => boolean): Promise<WatchEvent> {
  return eventually(async () => events.find(pred), what, 200, 50);
}

/** The order the four kinds of change must come in, for one file made, written, renamed, removed. */
function assertLifecycleOrder(events: WatchEvent[], dir: string): void {
  const f1 = `${dir}/f1.txt`;
  const f2 = `${dir}/f2.txt`;
  const idx = (pred: (e: WatchEvent) => boolean, what: string) => {
    const i = events.findIndex(pred);
    assert.ok(i >= 0, `no ${what} event in ${JSON.stringify(events)}`);
    return i;
  };
  const create = idx((e) => e.type === 'create' && e.path === f1, 'create');
  const write = idx((e) => e.type === 'write' && e.path === f1, 'write');
  const rename = idx((e) => e.type === 'rename' && e.from === f1 && e.to === f2, 'rename');
  const remove = idx((e) => e.type === 'remove' && e.path === f2, 'remove');
  assert.ok(create < write && write < rename && rename < remove, JSON.stringify(events));
  const ids = events.map((e) => e.id);
  assert.deepEqual(
    ids,
    ids.map((_, i) => (ids[0] ?? 1) + i),
    'ids increase by one',
  );
}

describeWithServer('files', (ctx) => {
  let m: Machine;
  let localDir: string;

  before(async () => {
    m = await Machine.create({ ...ctx.server.conn, timeout: 3600 });
    localDir = mkdtempSync('/tmp/nsf-');
  });
  after(async () => {
    await m?.kill().catch(() => undefined);
    rmSync(localDir, { recursive: true, force: true });
  });

  it('reads, writes, lists, stats, makes dirs, moves, removes and checks existence', async () => {
    const entry = await m.files.write('/workspace/t1/a/b/hello.txt', 'hello\n');
    assert.equal(entry.path, '/workspace/t1/a/b/hello.txt');
    assert.equal(entry.type, 'file');
    assert.equal(entry.size, 6);
    assert.equal(entry.mode, '644');
    assert.equal(await m.files.read('/workspace/t1/a/b/hello.txt'), 'hello\n');
    // The parents were created, and the machine sees the file.
    assert.equal((await m.commands.run('cat /workspace/t1/a/b/hello.txt')).stdout, 'hello\n');

    const bytes = new Uint8Array([0, 1, 2, 255, 254, 10]);
    await m.files.write('/workspace/t1/bin.dat', bytes);
    assert.deepEqual(await m.files.read('/workspace/t1/bin.dat', { format: 'bytes' }), bytes);
    await m.files.write('/workspace/t1/blob.txt', new Blob(['from ', 'a blob']));
    assert.equal(await m.files.read('/workspace/t1/blob.txt'), 'from a blob');
    await m.files.write('/workspace/t1/empty', '');
    assert.equal(await m.files.read('/workspace/t1/empty'), '');

    // Overwriting keeps the file's mode.
    await m.commands.run('chmod 750 /workspace/t1/blob.txt');
    assert.equal((await m.files.write('/workspace/t1/blob.txt', 'again')).mode, '750');

    assert.equal(await m.files.makeDir('/workspace/t1/dir/sub'), true);
    assert.equal(await m.files.makeDir('/workspace/t1/dir/sub'), false);
    await assert.rejects(m.files.makeDir('/workspace/t1/bin.dat'), isCode('conflict'));

    const { entries, truncated } = await m.files.list('/workspace/t1');
    assert.equal(truncated, false);
    assert.deepEqual(
      entries.map((e) => [e.name, e.type]),
      [
        ['a', 'dir'],
        ['bin.dat', 'file'],
        ['blob.txt', 'file'],
        ['dir', 'dir'],
        ['empty', 'file'],
      ],
    );
    const deep = await m.files.list('/workspace/t1', { depth: 3 });
    assert.ok(deep.entries.some((e) => e.path === '/workspace/t1/a/b/hello.txt'));
    assert.ok(deep.entries.some((e) => e.path === '/workspace/t1/dir/sub'));

    const st = await m.files.stat('/workspace/t1/a/b/hello.txt');
    assert.equal(st.size, 6);
    assert.ok(st.mtime instanceof Date && Date.now() - st.mtime.getTime() < 600_000);
    await m.commands.run('ln -s a/b/hello.txt /workspace/t1/link');
    const link = await m.files.stat('/workspace/t1/link');
    assert.equal(link.type, 'symlink');
    assert.equal(link.symlinkTarget, 'a/b/hello.txt');

    assert.equal(await m.files.exists('/workspace/t1/a'), true);
    assert.equal(await m.files.exists('/workspace/t1/nope'), false);

    const moved = await m.files.move('/workspace/t1/a/b/hello.txt', '/workspace/t1/moved/hello.txt');
    assert.equal(moved.path, '/workspace/t1/moved/hello.txt');
    assert.equal(await m.files.exists('/workspace/t1/a/b/hello.txt'), false);
    await assert.rejects(m.files.move('/workspace/t1/bin.dat', '/workspace/t1/empty'), isCode('conflict'));
    await m.files.move('/workspace/t1/bin.dat', '/workspace/t1/empty', { overwrite: true });
    assert.deepEqual(await m.files.read('/workspace/t1/empty', { format: 'bytes' }), bytes);

    await m.files.remove('/workspace/t1/moved');
    assert.equal(await m.files.exists('/workspace/t1/moved'), false);
    await assert.rejects(m.files.remove('/workspace/t1/moved'), (e: NullspaceError) => {
      assert.equal(e.code, 'not_found');
      assert.equal(e.status, 404);
      assert.equal(e.details?.path, '/workspace/t1/moved');
      return true;
    });
    await assert.rejects(m.files.read('/workspace/t1/nope.txt'), isCode('not_found'));
    await assert.rejects(m.files.write('/workspace/t1/empty/under-a-file', 'x'), isCode('invalid_argument'));
    await assert.rejects(m.files.read('/workspace/t1'), isCode('invalid_argument'));
    await assert.rejects(m.files.list('/workspace/t1/empty'), isCode('invalid_argument'));
  });

  it('refuses path escapes at the edge, and resolves symlinks inside the machine only', async () => {
    for (const bad of ['../../etc/passwd', '/workspace/../../etc/passwd', 'etc/passwd', '/a/\0b'])
      await assert.rejects(m.files.read(bad), (e: NullspaceError) => {
        assert.equal(e.code, 'invalid_argument', bad);
        assert.equal(e.details?.field, 'path');
        return true;
      });
    await assert.rejects(
      api(ctx.server, 'GET', `/v1/machines/${m.id}/files?path=${encodeURIComponent('../../etc/passwd')}`),
      (e: { status: number; code: string }) => e.status === 400 && e.code === 'invalid_argument',
    );
    await assert.rejects(
      m.files.move('/workspace/x', '/workspace/../etc/x'),
      (e: NullspaceError) => e.code === 'invalid_argument' && e.details?.field === 'to',
    );

    // A symlink to / inside the machine leads to the machine's root, never the host's.
    await m.commands.run('ln -sfn / /workspace/esc && hostname > /etc/hostname');
    const canary = `nullspace-canary-${randomBytes(8).toString('hex')}`;
    await m.files.write(`/workspace/esc/tmp/${canary}`, 'inside');
    assert.equal(existsSync(`/tmp/${canary}`), false, 'the host /tmp must not get the file');
    assert.equal((await m.commands.run(`cat /tmp/${canary}`)).stdout, 'inside');
    assert.equal(await m.files.read(`/tmp/${canary}`), 'inside');
    const machineHostname = (await m.commands.run('hostname')).stdout.trim();
    const read = (await m.files.read('/workspace/esc/etc/hostname')).trim();
    assert.equal(read, machineHostname);
    assert.notEqual(read, hostHostname());
    assert.notEqual(read, readFileSync('/etc/hostname', 'utf8').trim());
  });

  it('round-trips 200 MiB byte for byte while the server stays flat', async () => {
    const pid = ctx.server.process.pid as number;
    const size = 200 * MiB;
    const sentHash = createHash('sha256');
    const rss = sampleRss(pid);
    const t0 = Date.now();
    const entry = await m.files.write('/workspace/big/blob.bin', generated(size, sentHash));
    const uploadMs = Date.now() - t0;
    assert.equal(entry.size, size);
    const sent = sentHash.digest('hex');

    const t1 = Date.now();
    const stream = await m.files.read('/workspace/big/blob.bin', { format: 'stream' });
    const gotHash = createHash('sha256');
    let got = 0;
    for await (const chunk of stream) {
      gotHash.update(chunk);
      got += chunk.length;
    }
    const downloadMs = Date.now() - t1;
    const peak = rss.stop();
    assert.equal(got, size);
    assert.equal(gotHash.digest('hex'), sent);
    const inMachine = await m.commands.run('sha256sum /workspace/big/blob.bin');
    assert.equal(inMachine.stdout.split(' ')[0], sent);
    const growth = peak - rss.baseline;
    console.log(
      `# 200 MiB: upload ${uploadMs} ms, download ${downloadMs} ms; server RSS ${(rss.baseline / MiB).toFixed(1)} MiB → peak ${(peak / MiB).toFixed(1)} MiB (growth ${(growth / MiB).toFixed(1)} MiB)`,
    );
    assert.ok(growth < 64 * MiB, `server RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
    await m.files.remove('/workspace/big');
  });

  it('searches and replaces over 1,000 files', async () => {
    const made = await m.commands.run(
      'mkdir -p /workspace/many && cd /workspace/many && for i in $(seq 1 1000); do d=d$((i % 10)); ' +
        'mkdir -p $d; printf "line one\\nneedle %d here\\nlast NEEDLE\\n" $i > $d/f$i.txt; done && ' +
        'mkdir -p node_modules/x && echo needle > node_modules/x/skip.txt && ' +
        'printf "needle\\0binary" > d0/bin.txt && echo needle > d0/notes.md',
      { timeoutMs: 120_000 },
    );
    assert.equal(made.exitCode, 0, made.stderr);

    const all = await m.files.search('/workspace/many', 'needle', {
      exclude: ['node_modules'],
      maxResults: 5000,
    });
    assert.equal(all.matches.length, 1001); // 1000 .txt files + notes.md; the binary file is skipped
    assert.equal(all.truncated, false);
    assert.equal(all.filesScanned, 1001);
    const first = all.matches.find((x) => x.path === '/workspace/many/d1/f1.txt');
    assert.deepEqual(first, { path: '/workspace/many/d1/f1.txt', line: 2, column: 1, text: 'needle 1 here' });

    const insensitive = await m.files.search('/workspace/many', 'needle', {
      caseSensitive: false,
      include: ['*.txt'],
      exclude: ['node_modules'],
      maxResults: 10_000,
    });
    assert.equal(insensitive.matches.length, 2000);
    const capped = await m.files.search('/workspace/many', 'needle', { maxResults: 10 });
    assert.equal(capped.matches.length, 10);
    assert.equal(capped.truncated, true);
    const re = await m.files.search('/workspace/many', 'needle (\\d+)0 here', {
      regex: true,
      include: ['d0/*.txt'],
    });
    assert.equal(re.matches.length, 100);
    // `^` and `$` are line anchors, in search and in replace alike.
    const anchored = await m.files.search('/workspace/many', '^last NEEDLE$', {
      regex: true,
      include: ['d3/*'],
    });
    assert.equal(anchored.matches.length, 100);
    assert.ok(anchored.matches.every((x) => x.line === 3 && x.column === 1));
    await assert.rejects(
      m.files.search('/workspace/many', '(unclosed', { regex: true }),
      (e: NullspaceError) => e.code === 'invalid_argument' && e.details?.field === 'pattern',
    );

    const t0 = Date.now();
    const replaced = await m.files.replace('needle (\\d+) here', 'pin $1 there', {
      path: '/workspace/many',
      include: ['*.txt'],
      exclude: ['node_modules'],
      regex: true,
    });
    console.log(`# replace over 1,000 files: ${Date.now() - t0} ms`);
    assert.equal(replaced.filesChanged, 1000);
    assert.equal(replaced.totalReplacements, 1000);
    assert.equal(await m.files.read('/workspace/many/d7/f7.txt'), 'line one\npin 7 there\nlast NEEDLE\n');
    assert.equal(await m.files.read('/workspace/many/node_modules/x/skip.txt'), 'needle\n');
    assert.equal(
      (await m.commands.run('od -c /workspace/many/d0/bin.txt | head -1')).stdout.includes('\\0'),
      true,
      'the binary file is untouched',
    );

    const lineAnchored = await m.files.replace('^line (one)$', 'LINE $1', {
      paths: ['/workspace/many/d5/f5.txt'],
      regex: true,
    });
    assert.equal(lineAnchored.totalReplacements, 1);
    assert.equal(await m.files.read('/workspace/many/d5/f5.txt'), 'LINE one\npin 5 there\nlast NEEDLE\n');

    const literal = await m.files.replace('NEEDLE', '$1 literal', {
      paths: ['/workspace/many/d1/f1.txt', '/workspace/many/d2/f2.txt'],
    });
    assert.deepEqual(literal.files, [
      { path: '/workspace/many/d1/f1.txt', replacements: 1 },
      { path: '/workspace/many/d2/f2.txt', replacements: 1 },
    ]);
    assert.equal(await m.files.read('/workspace/many/d1/f1.txt'), 'line one\npin 1 there\nlast $1 literal\n');
    const leftovers = await m.commands.run('find /workspace/many -name "*.nstmp-*" | wc -l');
    assert.equal(leftovers.stdout.trim(), '0');
  });

  it('watches create, write, rename and remove in order over a WebSocket', async () => {
    const dir = '/workspace/watched-ws';
    await m.files.makeDir(dir);
    const events: WatchEvent[] = [];
    const handle = await m.files.watch(dir, { recursive: true, onEvent: (e) => events.push(e) });
    try {
      await m.commands.run(`echo one > ${dir}/f1.txt`);
      await waitFor(events, 'write f1', (e) => e.type === 'write' && e.path === `${dir}/f1.txt`);
      await m.commands.run(`mv ${dir}/f1.txt ${dir}/f2.txt`);
      await waitFor(events, 'rename', (e) => e.type === 'rename');
      await m.commands.run(`rm ${dir}/f2.txt`);
      await waitFor(events, 'remove f2', (e) => e.type === 'remove' && e.path === `${dir}/f2.txt`);
      assertLifecycleOrder(events, dir);

      // A new directory is followed (recursive), and an atomic write through the API is one event.
      await m.commands.run(`mkdir -p ${dir}/sub/deeper`);
      await waitFor(events, 'create deeper', (e) => e.type === 'create' && e.path === `${dir}/sub/deeper`);
      await m.files.write(`${dir}/sub/deeper/api.txt`, 'via the API');
      await waitFor(events, 'create api.txt', (e) => e.path === `${dir}/sub/deeper/api.txt`);
      await sleep(300);
      assert.equal(
        events.filter((e) => e.path.includes('.nstmp-')).length,
        0,
        'temporary files are not reported',
      );
    } finally {
      await handle.stop();
    }
    // Stopped: the watch is deleted in the machine.
    await assert.rejects(
      api(ctx.server, 'GET', `/v1/machines/${m.id}/files/watches/${handle.watchId}/events`),
      (e: { status: number }) => e.status === 404,
    );
  });

  it('keeps a watch through hibernate and snapshot (inotify is let go of before the checkpoint)', async () => {
    await using h = await Machine.create(ctx.server.conn);
    const dir = '/workspace/watched-hib';
    await h.files.makeDir(dir);
    const events: WatchEvent[] = [];
    const handle = await h.files.watch(dir, { recursive: true, onEvent: (e) => events.push(e) });
    try {
      await h.commands.run(`echo one > ${dir}/before.txt`);
      await waitFor(events, 'write before', (e) => e.path === `${dir}/before.txt`);
      await h.hibernate();
      await Machine.connect(h.id, ctx.server.conn);
      await h.commands.run(`echo two > ${dir}/after.txt`);
      await waitFor(events, 'create after', (e) => e.path === `${dir}/after.txt`);
      const snap = await h.createSnapshot();
      await h.commands.run(`echo three > ${dir}/snapped.txt`);
      await waitFor(events, 'create snapped', (e) => e.path === `${dir}/snapped.txt`);
      await api(ctx.server, 'DELETE', `/v1/snapshots/${snap.id}`);
    } finally {
      await handle.stop();
    }
  });

  it('watches create, write, rename and remove in order by polling', async () => {
    const dir = '/workspace/watched-poll';
    await m.files.makeDir(dir);
    const watch = await m.files.createWatch(dir);
    const events: WatchEvent[] = [];
    let last = 0;
    const poll = async (what: string, pred: (e: WatchEvent) => boolean) => {
      for (let i = 0; i < 20 && !events.some(pred); i++) {
        const page = await watch.events({ after: last, waitMs: 2000 });
        events.push(...page.events);
        last = page.lastEventId;
      }
      assert.ok(events.some(pred), `no ${what} in ${JSON.stringify(events)}`);
    };
    try {
      // The long poll returns as soon as something happens, not at wait_ms.
      const t0 = Date.now();
      const pending = watch.events({ after: 0, waitMs: 20_000 });
      await sleep(200);
      await m.commands.run(`echo one > ${dir}/f1.txt`);
      const page = await pending;
      assert.ok(page.events.length > 0 && Date.now() - t0 < 10_000);
      events.push(...page.events);
      last = page.lastEventId;
      await poll('write f1', (e) => e.type === 'write' && e.path === `${dir}/f1.txt`);
      await m.commands.run(`mv ${dir}/f1.txt ${dir}/f2.txt`);
      await poll('rename', (e) => e.type === 'rename');
      await m.commands.run(`rm ${dir}/f2.txt`);
      await poll('remove', (e) => e.type === 'remove');
      assertLifecycleOrder(events, dir);
      // Reading again from 0 gives the same events: the cursor is the client's.
      assert.deepEqual((await watch.events({ after: 0 })).events, events);
    } finally {
      await watch.stop();
    }
  });

  it('answers disk_full (507) past disk_mb, leaving no file and no temp file', async () => {
    // 300, not MACHINE_LIMITS.disk_mb.min (256): mkfs.xfs 6.x refuses file systems under 300 MB.
    await using small = await Machine.create({ ...ctx.server.conn, diskMb: 300 });
    const hash = createHash('sha256');
    await assert.rejects(
      small.files.write('/workspace/full/too-big.bin', generated(400 * MiB, hash)),
      (e: unknown) => {
        assert.ok(e instanceof DiskFullError, String(e));
        assert.equal(e.code, 'disk_full');
        assert.equal(e.status, 507);
        return true;
      },
    );
    assert.equal(await small.files.exists('/workspace/full/too-big.bin'), false);
    const left = await small.commands.run('ls -A /workspace/full');
    assert.equal(left.stdout, '', `left behind: ${left.stdout}`);
    // The space is back: a small write works.
    await small.files.write('/workspace/full/ok.txt', 'fits');
    assert.equal(await small.files.read('/workspace/full/ok.txt'), 'fits');
  });

  it('leaves the close of an upload’s connection to the server: the agent never closes it first', async () => {
    // The server pipes an upload into the agent with `Connection: close` (a long request has no
    // pool), and its last write can come after the agent has read every byte and answered. An
    // agent that closed right after answering made that write fail (EPIPE) before the server read
    // the answer: the soak saw 503 "agent not reachable" for ~1 in 150 writes that had happened.
    // Here, on the agent's own socket: a PUT as the server sends it, its answer read whole, then
    // two health round trips on other connections (the agent handles events in order, so a close
    // it began with the answer is done by then); the upload's connection must still be open.
    const socketPath = join(ctx.server.dataDir, 'machines', m.id, 'run', 'agent.sock');
    const upload = connect(socketPath);
    let agentEnded = false;
    upload.on('end', () => {
      agentEnded = true;
    });
    const body = 'kept open';
    upload.write(
      `PUT /v1/files?path=${encodeURIComponent('/workspace/kept.txt')} HTTP/1.1\r\nHost: agent\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    const answer = await readHttpResponse(upload);
    assert.equal(answer.status, 200, answer.body);
    assert.equal(JSON.parse(answer.body).path, '/workspace/kept.txt');
    for (let i = 0; i < 2; i++) {
      const probe = connect(socketPath);
      probe.write('GET /v1/health HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n');
      assert.equal((await readHttpResponse(probe)).status, 200);
      probe.destroy();
    }
    assert.equal(agentEnded, false, 'the agent closed the upload’s connection after answering');
    // The writer ends it; then the agent does.
    const closed = new Promise((resolve) => upload.once('close', resolve));
    upload.end();
    await closed;
    assert.equal(await m.files.read('/workspace/kept.txt'), body);
  });

  it('ends signed URLs with their machine: none for a killed machine, old ones refused', async () => {
    const doomed = await Machine.create(ctx.server.conn);
    await doomed.files.write('/workspace/x.txt', 'x');
    const url = await doomed.downloadUrl('/workspace/x.txt');
    assert.equal((await fetch(url)).status, 200);
    await doomed.kill();
    await assert.rejects(doomed.downloadUrl('/workspace/x.txt'), isCode('invalid_state'));
    await m.downloadUrl('/workspace/anything'); // signing deletes the secrets of killed machines
    const after = await fetch(url);
    assert.equal(after.status, 403);
    assert.equal(((await after.json()) as { error: { code: string } }).error.code, 'permission_denied');
  });

  it('signs URLs that work with curl and no key, until they expire, for that path only', async () => {
    await m.files.write('/workspace/signed/report.txt', 'report body\n');
    const url = await m.downloadUrl('/workspace/signed/report.txt', { expiresIn: 600 });
    assert.match(url, new RegExp(`^${ctx.server.url}/v1/signed/files/${m.id}\\?`));
    const out = join(localDir, 'report.txt');
    await run('curl', ['-fsS', url, '-o', out]);
    assert.equal(readFileSync(out, 'utf8'), 'report body\n');

    // Another path, another op, a changed signature: 403.
    const tampered = new URL(url);
    tampered.searchParams.set('path', '/etc/shadow');
    const r1 = await curl([tampered.toString()]);
    assert.equal(r1.status, 403);
    assert.equal((JSON.parse(r1.body) as { error: { code: string } }).error.code, 'permission_denied');
    const otherOp = new URL(url);
    otherOp.searchParams.set('op', 'write');
    assert.equal((await curl(['-T', out, otherOp.toString()])).status, 403);
    const badSig = new URL(url);
    badSig.searchParams.set('sig', '0'.repeat(64));
    assert.equal((await curl([badSig.toString()])).status, 403);
    // A read URL does not write.
    assert.equal((await curl(['-T', out, url])).status, 403);

    const short = await m.files.signedUrl('/workspace/signed/report.txt', { op: 'read', expiresIn: 1 });
    await sleep(2100);
    const expired = await curl([short.url]);
    assert.equal(expired.status, 403);
    assert.match(expired.body, /signed URL expired/);

    // Upload with curl -T (PUT) and --data-binary (POST).
    const upload = await m.uploadUrl('/workspace/signed/up/from-curl.bin');
    const local = join(localDir, 'up.bin');
    const payload = randomBytes(3 * MiB + 17);
    writeFileSync(local, payload);
    await run('curl', ['-fsS', '-T', local, upload]);
    assert.deepEqual(
      Buffer.from(await m.files.read('/workspace/signed/up/from-curl.bin', { format: 'bytes' })),
      payload,
    );
    const post = await m.uploadUrl('/workspace/signed/posted.txt');
    await run('curl', ['-fsS', '--data-binary', 'posted', post]);
    assert.equal(await m.files.read('/workspace/signed/posted.txt'), 'posted');
    // An upload URL does not read.
    assert.equal((await curl([upload])).status, 403);
  });

  it('copies both ways with the CLI (files and stdin/stdout)', async () => {
    const local = join(localDir, 'cli-in.bin');
    const payload = randomBytes(2 * MiB);
    writeFileSync(local, payload);
    const up = await cli(ctx.server, ['machine', 'cp', local, `${m.id}:/workspace/cli/in.bin`]);
    assert.equal(up.code, 0, up.stderr);
    const back = join(localDir, 'cli-out.bin');
    const down = await cli(ctx.server, ['machine', 'cp', `${m.id}:/workspace/cli/in.bin`, back]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(readFileSync(back), payload);

    const fromStdin = await cli(
      ctx.server,
      ['machine', 'cp', '-', `${m.id}:/workspace/cli/stdin.txt`],
      'piped in\n',
    );
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    const toStdout = await cli(ctx.server, ['machine', 'cp', `${m.id}:/workspace/cli/stdin.txt`, '-']);
    assert.equal(toStdout.stdout, 'piped in\n');

    const ls = await cli(ctx.server, ['machine', 'files', m.id, 'ls', '/workspace/cli']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /\/workspace\/cli\/in\.bin/);
    const cat = await cli(ctx.server, ['machine', 'files', m.id, 'cat', '/workspace/cli/stdin.txt']);
    assert.equal(cat.stdout, 'piped in\n');
    const missing = await cli(ctx.server, ['machine', 'cp', `${m.id}:/workspace/cli/none`, back]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not_found/);
    const escaped = await cli(ctx.server, ['machine', 'files', m.id, 'cat', '../../etc/passwd']);
    assert.equal(escaped.code, 1);
    assert.match(escaped.stderr, /invalid_argument/);
  });
});
