/**
 * Machines end to end: a real server, real machines, the real SDK over HTTP.
 */
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { REFUSED_SYSCALLS_FOR_TESTS } from '@nullspace/runtime';
import { Machine, type NullspaceError } from '@nullspace/sdk';
import {
  TEMPLATES_DIR,
  type TestServer,
  api,
  describeWithServer,
  eventually,
  startTestServer,
} from './harness.js';

describeWithServer('machines', (ctx) => {
  it('creates a machine, runs python3 --version in it, and kills it', async () => {
    const m = await Machine.create({ ...ctx.server.conn, metadata: { suite: 'basic' } });
    assert.match(m.id, /^mch_[a-z2-7]{20}$/);
    const info = await m.getInfo();
    assert.equal(info.status, 'running');
    assert.equal(info.template, 'base');
    assert.equal(info.cwd, '/workspace');
    const r = await m.commands.run('python3 --version');
    assert.equal(r.exitCode, 0);
    assert.match(r.stdout + r.stderr, /^Python 3\.\d+\.\d+/);
    assert.equal(await m.isRunning(), true);
    const killed = await m.kill();
    assert.equal(killed.status, 'killed');
    assert.equal((await Machine.getInfoById(m.id, ctx.server.conn)).status, 'killed');
    // kill is idempotent
    assert.equal((await Machine.killById(m.id, ctx.server.conn)).status, 'killed');
    await assert.rejects(m.commands.run('true'), (e: NullspaceError) => e.code === 'invalid_state');
  });

  it('honours cwd, envs, args, stdin, exit codes and command timeouts', async () => {
    await using m = await Machine.create({
      ...ctx.server.conn,
      cwd: '/srv/app',
      envs: { GREETING: 'hello world' },
    });
    assert.equal((await m.commands.run('pwd')).stdout.trim(), '/srv/app');
    assert.equal((await m.commands.run('echo "$GREETING"')).stdout, 'hello world\n');
    assert.equal(
      (await m.commands.run('echo "$GREETING $X"', { envs: { X: 'again' } })).stdout,
      'hello world again\n',
    );
    const argv = await m.commands.run('printf', { args: ['%s|', 'a b', '$HOME', ';ls'] });
    assert.equal(argv.stdout, 'a b|$HOME|;ls|');
    assert.equal((await m.commands.run('cat', { args: [], stdin: 'from stdin' })).stdout, 'from stdin');
    const failing = await m.commands.run('echo oops >&2; exit 7');
    assert.equal(failing.exitCode, 7);
    assert.equal(failing.stderr, 'oops\n');
    const slow = await m.commands.run('echo started; sleep 30', { timeoutMs: 500 });
    assert.equal(slow.timedOut, true);
    assert.equal(slow.signal, 'SIGKILL');
    assert.equal(slow.stdout, 'started\n');
    const missing = await m.commands.run('no-such-program', { args: ['x'] });
    assert.equal(missing.exitCode, 127);
    assert.match(missing.stderr, /no-such-program: command not found/);
    const info = await m.getInfo();
    assert.deepEqual(info.envs, ['GREETING']); // names only, never values
    await assert.rejects(
      m.commands.run('true', { cwd: '/does/not/exist' }),
      (e: NullspaceError) => e.code === 'invalid_argument',
    );
  });

  it('isolates processes, files and the host', async () => {
    const marker = `/tmp/nullspace-host-marker-${process.pid}`;
    writeFileSync(marker, 'host secret');
    try {
      await using a = await Machine.create(ctx.server.conn);
      await using b = await Machine.create(ctx.server.conn);
      // Only the machine's own processes: init (pid 1), the agent, and what we run.
      const ps = await a.commands.run('ps', { args: ['-eo', 'pid,comm', '--no-headers'] });
      const procs = ps.stdout
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/));
      assert.equal(procs[0]?.[0], '1');
      assert.ok(procs.length <= 4, `unexpected processes:\n${ps.stdout}`);
      // The host's files are not there.
      assert.equal((await a.commands.run(`test -e ${marker}`)).exitCode, 1);
      assert.equal((await a.commands.run('test -e /work || test -e /var/lib/nullspace')).exitCode, 1);
      // A write outside /workspace stays in this machine: not in the template, not in b.
      assert.equal(
        (await a.commands.run('echo changed > /etc/motd-test && echo x >> /etc/os-release')).exitCode,
        0,
      );
      assert.equal((await b.commands.run('test -e /etc/motd-test')).exitCode, 1);
      assert.equal((await b.commands.run('grep -c "^x$" /etc/os-release')).stdout.trim(), '0');
      assert.equal(existsSync(`${TEMPLATES_DIR}/base/rootfs/etc/motd-test`), false);
      // Own hostname and network namespace (loopback and the link to the host).
      const hn = await a.commands.run('hostname');
      assert.equal(hn.stdout.trim(), a.id.replace('_', '-'));
      const links = await a.commands.run('ls /sys/class/net');
      assert.deepEqual(links.stdout.trim().split(/\s+/), ['eth0', 'lo']);
    } finally {
      rmSync(marker, { force: true });
    }
  });

  it('keeps root inside a machine from acting on the host', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const mount = await m.commands.run('mkdir -p /mnt/x && mount -t tmpfs tmpfs /mnt/x');
    assert.notEqual(mount.exitCode, 0, 'mount must fail');
    const py = (code: string, ...args: string[]) =>
      m.commands.run('python3', { args: ['-c', code, ...args] });
    // init_module(2) and finit_module(2): loading a kernel module.
    const mod = await py(
      'import ctypes,os; l=ctypes.CDLL(None,use_errno=True); r=l.syscall(313,os.open("/bin/true",0),b"",0); print(r, ctypes.get_errno())',
    );
    assert.equal(mod.stdout.trim(), '-1 1', `finit_module: ${mod.stdout}${mod.stderr}`);
    const clock = await m.commands.run('date -s "2001-01-01 00:00:00"');
    assert.notEqual(clock.exitCode, 0, 'setting the clock must fail');
    // No host block device, and none can be made.
    const devs = await m.commands.run('ls /dev');
    assert.doesNotMatch(devs.stdout, /\b(vd[a-z]|sd[a-z]|nvme\w*|loop\d+|mem|kmem)\b/);
    const mknod = await m.commands.run('mknod /tmp/blk b 253 0');
    assert.notEqual(mknod.exitCode, 0, 'mknod of a block device must fail');
    const status = await m.commands.run('grep -E "^(NoNewPrivs|Seccomp|CapEff):" /proc/self/status');
    assert.match(status.stdout, /NoNewPrivs:\s+1/);
    assert.match(status.stdout, /Seccomp:\s+2/);
    const capEff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(status.stdout)?.[1] ?? '0'}`);
    const CAP_SYS_ADMIN = 21n;
    const CAP_SYS_MODULE = 16n;
    const CAP_SYS_TIME = 25n;
    const CAP_MKNOD = 27n;
    for (const cap of [CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_TIME, CAP_MKNOD])
      assert.equal((capEff >> cap) & 1n, 0n, `capability ${cap} must be dropped`);
    // unshare(2) is refused by seccomp: no new namespaces from inside.
    assert.notEqual((await m.commands.run('unshare -U true')).exitCode, 0);
    // Each syscall the filter refuses answers EPERM (each would answer something else without it).
    const probe = await py(
      [
        'import ctypes, json, sys',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'out = {}',
        'for name, nr in json.loads(sys.argv[1]).items():',
        '    ctypes.set_errno(0)',
        '    r = libc.syscall(nr, 0, 0, 0, 0, 0, 0)',
        '    out[name] = ctypes.get_errno() if r == -1 else "ok"',
        'print(json.dumps(out))',
      ].join('\n'),
      JSON.stringify(REFUSED_SYSCALLS_FOR_TESTS),
    );
    const errnos = JSON.parse(probe.stdout) as Record<string, number | string>;
    for (const name of Object.keys(REFUSED_SYSCALLS_FOR_TESTS))
      assert.equal(errnos[name], 1, `${name} must get EPERM`);
  });

  it('enforces memory_mb: an allocation past it is killed, the machine stays up', async () => {
    await using m = await Machine.create({ ...ctx.server.conn, memoryMb: 128 });
    const hog = await m.commands.run('python3', {
      args: ['-c', 'b = bytearray(400 * 1024 * 1024); print(len(b))'],
    });
    assert.equal(hog.signal, 'SIGKILL', `expected the OOM killer: ${JSON.stringify(hog)}`);
    assert.equal(hog.stdout, '');
    const after = await m.commands.run('echo still here');
    assert.equal(after.stdout, 'still here\n');
  });

  it('enforces disk_mb: writing past it fails with ENOSPC inside the machine', async () => {
    await using m = await Machine.create({ ...ctx.server.conn, diskMb: 512 });
    const df = await m.commands.run('df --output=size -m / | tail -1');
    assert.ok(Number(df.stdout.trim()) <= 512, `df says ${df.stdout}`);
    const fill = await m.commands.run('dd if=/dev/zero of=/workspace/fill bs=1M count=700');
    assert.notEqual(fill.exitCode, 0);
    assert.match(fill.stderr, /No space left on device/);
    // The machine still works, and freeing space makes writes work again.
    assert.equal(
      (await m.commands.run('rm /workspace/fill && echo ok > /workspace/f && cat /workspace/f')).stdout,
      'ok\n',
    );
  });

  it('kills a machine when its timeout expires', async () => {
    const m = await Machine.create({ ...ctx.server.conn, timeout: 2 });
    const info = await m.getInfo();
    assert.equal(info.timeout, 2);
    assert.equal(info.onTimeout, 'kill');
    const final = await eventually(async () => {
      const i = await Machine.getInfoById(m.id, ctx.server.conn);
      return i.status === 'killed' ? i : undefined;
    }, 'the timeout to kill the machine');
    assert.match(String(final.statusReason), /timeout/);
  });

  it('connect returns a running machine and re-applies the caller timeout', async () => {
    await using m = await Machine.create({ ...ctx.server.conn, timeout: 60 });
    const before = await m.getInfo();
    const again = await Machine.connect(m.id, { ...ctx.server.conn, timeout: 600 });
    const info = await again.getInfo();
    assert.equal(info.timeout, 600);
    assert.ok(info.expiresAt.getTime() > before.expiresAt.getTime() + 500_000);
  });

  it('lists with state, template and metadata filters, fields, and pagination', async () => {
    const tag = `list-${Date.now()}`;
    const made = await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        Machine.create({ ...ctx.server.conn, metadata: { tag, parity: i % 2 ? 'odd' : 'even' } }),
      ),
    );
    try {
      const mine = async (opts: { metadata: Record<string, string>; limit?: number }) => {
        const ids: string[] = [];
        const page = await Machine.list({
          ...ctx.server.conn,
          query: { metadata: opts.metadata },
          limit: opts.limit ?? 100,
        });
        for await (const m of page) ids.push(m.id);
        return ids;
      };
      assert.equal((await mine({ metadata: { tag } })).length, 5);
      assert.equal((await mine({ metadata: { tag, parity: 'odd' } })).length, 2);
      // Pages of 2 cover all 5 exactly once, newest first.
      const first = await Machine.list({ ...ctx.server.conn, query: { metadata: { tag } }, limit: 2 });
      assert.equal(first.items.length, 2);
      assert.equal(first.hasNext, true);
      const paged = await mine({ metadata: { tag }, limit: 2 });
      assert.deepEqual(new Set(paged), new Set(made.map((m) => m.id)));
      assert.equal(paged.length, 5);
      // fields= gives compact rows.
      const rows = await Machine.list({
        ...ctx.server.conn,
        query: { metadata: { tag } },
        fields: ['id', 'status'],
      });
      for (const row of rows.items) assert.deepEqual(Object.keys(row).sort(), ['id', 'status']);
      const one = await Machine.getInfoById(made[0]!.id, { ...ctx.server.conn, fields: ['id', 'status'] });
      assert.deepEqual(one, { id: made[0]!.id, status: 'running' });
      // state and template filters.
      await made[0]!.kill();
      assert.equal(
        (await mine({ metadata: { tag } })).length,
        4,
        'killed machines are not listed by default',
      );
      const killed = await Machine.list({
        ...ctx.server.conn,
        query: { state: ['killed'], metadata: { tag } },
      });
      assert.deepEqual(
        killed.items.map((m) => m.id),
        [made[0]!.id],
      );
      const none = await Machine.list({
        ...ctx.server.conn,
        query: { template: 'no-such-template', metadata: { tag } },
      });
      assert.equal(none.items.length, 0);
    } finally {
      await Promise.all(made.map((m) => m.kill()));
    }
  });

  it('creates 20 machines concurrently, all working', async () => {
    const made = await Promise.all(
      Array.from({ length: 20 }, () => Machine.create({ ...ctx.server.conn, memoryMb: 128 })),
    );
    try {
      assert.equal(new Set(made.map((m) => m.id)).size, 20);
      const outs = await Promise.all(made.map((m) => m.commands.run('hostname')));
      outs.forEach((r, i) => assert.equal(r.stdout.trim(), made[i]!.id.replace('_', '-')));
    } finally {
      await Promise.all(made.map((m) => m.kill()));
    }
  });
});

/**
 * Two servers on one host, each with its own data directory and the same address pool (the
 * default): address blocks are claimed host-wide, so concurrent creates on both all succeed and
 * no two machines share an address, a hibernated machine keeps its block while the other server
 * creates, and resumes on it.
 */
describe('two servers on one host', () => {
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    [a, b] = await Promise.all([startTestServer(), startTestServer()]);
  });
  after(async () => {
    await Promise.all([a?.teardown(), b?.teardown()]);
  });

  const addressOf = async (s: TestServer, id: string) =>
    ((await api(s, 'GET', `/v1/machines/${id}`)) as { network: { address: string } }).network.address;

  it('never hand out the same address, however their creates interleave', async () => {
    const made = await Promise.all(
      Array.from({ length: 16 }, (_, i) => Machine.create({ ...(i % 2 ? a : b).conn, memoryMb: 128 })),
    );
    try {
      const addresses = await Promise.all(made.map((m, i) => addressOf(i % 2 ? a : b, m.id)));
      assert.equal(new Set(addresses).size, 16, addresses.join(' '));
      const hibernated = made[0]!;
      const kept = addresses[0]!;
      await hibernated.hibernate();
      const more = await Promise.all(
        Array.from({ length: 4 }, () => Machine.create({ ...a.conn, memoryMb: 128 })),
      );
      made.push(...more);
      const moreAddresses = await Promise.all(more.map((m) => addressOf(a, m.id)));
      assert.ok(!moreAddresses.includes(kept), `${kept} was handed out again: ${moreAddresses.join(' ')}`);
      const resumed = await Machine.connect(hibernated.id, b.conn);
      assert.equal(await addressOf(b, resumed.id), kept);
      assert.equal((await resumed.commands.run('true')).exitCode, 0);
    } finally {
      await Promise.all(made.map((m) => m.kill()));
    }
  });
});
