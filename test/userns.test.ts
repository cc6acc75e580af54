/**
 * Every machine runs in a user namespace of its own: root inside is an unprivileged host id range
 * (65,536 ids from a base above 2^30), one range per machine, so a process escaping the machine's
 * other walls is nobody on the host. Template files appear owned by the machine's root through
 * idmapped mounts; what the machine writes is stored on its disk with its host ids; a fork child
 * gets a range of its own and its copy of the disk moves to it; volumes appear owned by the root
 * of whichever machine mounts them. docs/SECURITY.md ("User namespace") says what each part stops.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ID_RANGES_START, ID_RANGE_CLAIMS_DIR, ID_RANGE_FILE, ID_RANGE_SIZE } from '@nullspace/runtime';
import { Machine, Volume } from '@nullspace/sdk';
import { describeWithServer, eventually } from './harness.js';

interface Mapping {
  inside: number;
  host: number;
  count: number;
}

async function uidMap(m: Machine, which: 'uid_map' | 'gid_map' = 'uid_map'): Promise<Mapping[]> {
  const out = (await m.commands.run(`cat /proc/self/${which}`)).stdout;
  return out
    .trim()
    .split('\n')
    .map((line) => {
      const [inside, host, count] = line.trim().split(/\s+/).map(Number);
      return { inside: inside as number, host: host as number, count: count as number };
    });
}

/** The one range a machine's ids map to, checked to be a machine range and not the host's ids. */
async function rangeOf(m: Machine): Promise<number> {
  const uids = await uidMap(m);
  assert.equal(uids.length, 1, JSON.stringify(uids));
  const [map] = uids as [Mapping];
  assert.notDeepEqual(map, { inside: 0, host: 0, count: 4294967295 });
  assert.equal(map.inside, 0);
  assert.equal(map.count, ID_RANGE_SIZE);
  assert.ok(
    map.host >= ID_RANGES_START && (map.host - ID_RANGES_START) % ID_RANGE_SIZE === 0,
    String(map.host),
  );
  assert.deepEqual(await uidMap(m, 'gid_map'), uids);
  return map.host;
}

describeWithServer('user namespaces', (ctx) => {
  const machineDir = (id: string) => join(ctx.server.dataDir, 'machines', id);
  /** A path of the machine's disk as the host stores it (the overlay's upper layer). */
  const onDisk = (id: string, path: string) => join(machineDir(id), 'disk', 'upper', path);

  it('root in a machine is an unprivileged host id range of its own, recorded and claimed host-wide', async () => {
    await using a = await Machine.create(ctx.server.conn);
    await using b = await Machine.create(ctx.server.conn);
    const [ra, rb] = [await rangeOf(a), await rangeOf(b)];
    assert.notEqual(ra, rb);
    assert.equal((await a.commands.run('id -u; id -g')).stdout, '0\n0\n');
    for (const [m, base] of [
      [a, ra],
      [b, rb],
    ] as const) {
      assert.equal(readFileSync(join(machineDir(m.id), ID_RANGE_FILE), 'utf8'), `${base} ${ID_RANGE_SIZE}\n`);
      const claim = join(ID_RANGE_CLAIMS_DIR, String((base - ID_RANGES_START) / ID_RANGE_SIZE));
      assert.equal(readFileSync(claim, 'utf8'), machineDir(m.id));
    }
    // On the host, the machine's processes run as its host ids.
    const state = JSON.parse(
      execFileSync('runc', ['--root', join(ctx.server.dataDir, 'runc'), 'state', a.id], { encoding: 'utf8' }),
    ) as { pid: number };
    const ids = readFileSync(`/proc/${state.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)\s+(\d+)/m);
    assert.deepEqual([Number(ids?.[1]), Number(ids?.[2])], [ra, ra]);
    await a.kill();
    // Once its teardown (after the kill answered) is done, its range is free.
    const claimA = join(ID_RANGE_CLAIMS_DIR, String((ra - ID_RANGES_START) / ID_RANGE_SIZE));
    await eventually(async () => !existsSync(claimA), 'the killed machine to give its range up');
  });

  it("a file root makes is owned by the machine's host id on the host; the template's files are root's inside", async () => {
    await using m = await Machine.create(ctx.server.conn);
    const base = await rangeOf(m);
    await m.commands.run('mkdir -p /root/made && echo hi > /root/made/file && chown 1000:1000 /root/made');
    const file = lstatSync(onDisk(m.id, 'root/made/file'));
    assert.equal(file.uid, base);
    assert.equal(file.gid, base);
    const dir = lstatSync(onDisk(m.id, 'root/made'));
    assert.equal(dir.uid, base + 1000);
    assert.equal(dir.gid, base + 1000);
    // The template (stored with ids 0..65535, shared by every machine) is root's inside, and
    // root can administer it as its own: change an owner, copy it up.
    assert.equal((await m.commands.run('stat -c %u:%g /usr/bin/env /etc/passwd')).stdout, '0:0\n0:0\n');
    await m.commands.run('chown 1000 /etc/hostname');
    assert.equal(lstatSync(onDisk(m.id, 'etc/hostname')).uid, base + 1000);
    // Nothing of its own filesystem shows as the overflow id (owned by an id outside its range,
    // such as the host's root): only the host's read-only binds (the agent, node, init), the
    // roots of /proc and of /sys (the host's kernel's) are.
    const foreign = await m.commands.run(
      'find / -xdev \\( -uid 65534 -o -gid 65534 \\) 2>/dev/null | grep -Ev "^/(proc|sys|\\.nullspace/(bin/node|bin/init|agent))$" | head -5',
    );
    assert.equal(foreign.stdout, '');
  });

  it('root keeps what it needs inside: a port below 1024, only its own interfaces in /sys, its files', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const bound = await m.commands.run(
      `python3 -c "import socket; s=socket.socket(); s.bind(('0.0.0.0', 80)); s.listen(); print('bound')"`,
    );
    assert.equal(bound.stdout, 'bound\n');
    assert.deepEqual((await m.commands.run('ls /sys/class/net')).stdout.trim().split(/\s+/).sort(), [
      'eth0',
      'lo',
    ]);
    assert.match((await m.commands.run('grep " /sys " /proc/self/mounts')).stdout, /\bro\b/);
  });

  it('a fork child gets a range of its own, its disk moves to it, and its processes keep their memory', async () => {
    await using parent = await Machine.create(ctx.server.conn);
    const pBase = await rangeOf(parent);
    await parent.commands.run('echo from-parent > /root/note && chown 7:7 /root/note');
    // A shell holding a value in memory only, counting; it must live on in the child.
    await parent.commands.run(
      "nohup sh -c 'secret=$((4242 * 2)); while true; do echo $secret > /tmp/alive; sleep 0.2; done' >/dev/null 2>&1 &",
    );
    const [result] = await parent.fork({ count: 1 });
    if (result?.error || !result?.machine) throw result?.error ?? new Error('no child');
    await using child = result.machine;
    const cBase = await rangeOf(child);
    assert.notEqual(cBase, pBase);
    const note = lstatSync(onDisk(child.id, 'root/note'));
    assert.deepEqual([note.uid, note.gid], [cBase + 7, cBase + 7]);
    assert.equal(lstatSync(onDisk(parent.id, 'root/note')).uid, pBase + 7, "the parent's disk is unchanged");
    assert.equal(
      (await child.commands.run('stat -c %u:%g /root/note; cat /root/note')).stdout,
      '7:7\nfrom-parent\n',
    );
    await child.commands.run('rm -f /tmp/alive; sleep 1');
    assert.equal((await child.commands.run('cat /tmp/alive')).stdout, '8484\n');
    // The child's root owns what it writes, in its own range.
    await child.commands.run('touch /root/child-made');
    assert.equal(lstatSync(onDisk(child.id, 'root/child-made')).uid, cBase);
  });

  it('hibernate and resume keep the range and the processes', async () => {
    await using m = await Machine.create(ctx.server.conn);
    const base = await rangeOf(m);
    await m.commands.run(
      "nohup sh -c 'n=7; while true; do echo $n > /tmp/beat; sleep 0.2; done' >/dev/null 2>&1 &",
    );
    await m.hibernate();
    const again = await Machine.connect(m.id, ctx.server.conn);
    assert.equal(await rangeOf(again), base);
    await again.commands.run('rm -f /tmp/beat; sleep 1');
    assert.equal((await again.commands.run('cat /tmp/beat')).stdout, '7\n');
  });

  it("a volume's files are root's in every machine that mounts it, whatever its range", async () => {
    const conn = ctx.server.conn;
    const volume = await Volume.create('userns-shared', { ...conn, sizeMb: 300 });
    try {
      await using a = await Machine.create({ ...conn, volumes: [{ volume: volume.id, mountPath: '/data' }] });
      await a.commands.run('echo a > /data/from-a && mkdir -p /data/dir && chown 33:33 /data/dir');
      assert.equal(
        (await a.commands.run('stat -c %u:%g /data /data/from-a /data/dir')).stdout,
        '0:0\n0:0\n33:33\n',
      );
      // Stored on the volume as the machines see it, so every machine sees the same.
      const mnt = join(ctx.server.dataDir, 'volumes', volume.id, 'mnt');
      assert.equal(lstatSync(join(mnt, 'from-a')).uid, 0);
      assert.equal(lstatSync(join(mnt, 'dir')).uid, 33);
      await a.kill();
      await using b = await Machine.create({
        ...conn,
        volumes: [{ volume: volume.id, mountPath: '/mnt/v' }],
      });
      await rangeOf(b);
      assert.equal(
        (await b.commands.run('stat -c %u:%g /mnt/v/from-a /mnt/v/dir; cat /mnt/v/from-a')).stdout,
        '0:0\n33:33\na\n',
      );
      await b.commands.run('echo b >> /mnt/v/from-a');
      // Attached to a running machine: its mount path's parents, made by the host, are its root's.
      await b.attachVolume({ volume: volume.id, mountPath: '/srv/new/place' });
      assert.equal(
        (await b.commands.run('stat -c %u:%g /srv/new /srv/new/place/from-a')).stdout,
        '0:0\n0:0\n',
      );
      await b.commands.run('touch /srv/new/made-by-root');
    } finally {
      await Volume.delete(volume.id, conn).catch(() => undefined);
    }
  });
});
