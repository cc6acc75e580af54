/**
 * Issue 6, volumes, with real machines: data written by one machine is read by another after the
 * first was killed; read-only and size are enforced by the kernel; attachments survive hibernate
 * and resume (with a file held open), appear in a fork and in a machine started from a snapshot;
 * a broken mount is reported unhealthy and remount repairs it in place; a server restart keeps
 * them; bad requests get their codes; the CLI drives all of it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { host, isMountPoint } from '@nullspace/runtime';
import { type CommandResult, Machine, Volume } from '@nullspace/sdk';
import { type TestServer, api, cli, describeWithServer, eventually, run } from './harness.js';

type Coded = { code?: string };
const code = (expected: string) => (e: Coded) => {
  assert.equal(e.code, expected, String(e));
  return true;
};

/** The pid of a machine's init on the host (runc's state). */
async function initPid(server: TestServer, id: string): Promise<number> {
  const { stdout } = await host('runc', ['--root', join(server.dataDir, 'runc'), 'state', id]);
  return (JSON.parse(stdout) as { pid: number }).pid;
}

/** Breaks a volume mount from the host, as an operator or a fault would: a lazy unmount in the machine. */
async function breakMount(server: TestServer, id: string, path: string): Promise<void> {
  const pid = await initPid(server, id);
  const r = await run('nsenter', ['-t', String(pid), '-m', '-p', '-r', 'umount', '-l', path]);
  assert.equal(r.code, 0, r.stderr);
}

/** The server's error lines, to say why something failed (a fork child's start is logged there). */
function serverErrors(server: TestServer): string {
  return server
    .logs()
    .split('\n')
    .filter((l) => l.includes('"level":"error"'))
    .join('\n');
}

function sh(m: Machine, script: string): Promise<CommandResult> {
  return m.commands.run(script);
}

describeWithServer('volumes', (ctx) => {
  it('is written by one machine and read by another after the first was killed; size and read-only are enforced', async () => {
    const conn = ctx.server.conn;
    const volume = await Volume.create('shared', { ...conn, sizeMb: 300 });
    assert.match(volume.id, /^vol_/);
    assert.equal(volume.sizeMb, 300);
    assert.deepEqual(volume.attachments, []);

    const writer = await Machine.create({ ...conn, volumes: [{ volume: 'shared', mountPath: '/data' }] });
    const info = await writer.getInfo();
    assert.equal(info.volumes.length, 1);
    assert.equal(info.volumes[0]?.volumeId, volume.id);
    assert.equal(info.volumes[0]?.mountPath, '/data');
    assert.equal(info.volumes[0]?.readOnly, false);
    assert.equal((await writer.commands.run('echo "from the writer" > /data/note && sync')).exitCode, 0);

    // The filesystem is the volume's size: df says so, and writing past it fails.
    const size = Number(
      (await sh(writer, 'df -BM --output=size /data | tail -1')).stdout.trim().replace('M', ''),
    );
    assert.ok(size > 200 && size <= 300, `df /data: ${size} MB`);
    const full = await sh(writer, 'dd if=/dev/zero of=/data/big bs=1M count=400 2>&1; echo "rc=$?"');
    assert.match(full.stdout, /No space left on device/);
    assert.match(full.stdout, /rc=1/);
    await sh(writer, 'rm -f /data/big');
    assert.ok((await Volume.get('shared', conn)).attachments.some((a) => a.machineId === writer.id));

    await writer.kill();
    assert.deepEqual((await Volume.get(volume.id, conn)).attachments, []);

    await using reader = await Machine.create({
      ...conn,
      volumes: [{ volume: volume.id, mountPath: '/mnt/in', readOnly: true }],
    });
    assert.equal((await sh(reader, 'cat /mnt/in/note')).stdout, 'from the writer\n');
    const write = await sh(reader, 'echo x > /mnt/in/other');
    assert.notEqual(write.exitCode, 0);
    assert.match(write.stderr, /Read-only file system/);
    // Root in the machine has no CAP_SYS_ADMIN: it can neither make it writable nor take it away.
    assert.notEqual((await sh(reader, 'mount -o remount,rw /mnt/in')).exitCode, 0);
    assert.notEqual((await sh(reader, 'mount -o remount,bind,rw /mnt/in')).exitCode, 0);
    assert.notEqual((await sh(reader, 'umount /mnt/in')).exitCode, 0);
    assert.match((await sh(reader, 'echo x > /mnt/in/other')).stderr, /Read-only file system/);

    await assert.rejects(Volume.delete('shared', conn), code('conflict'));
    await reader.kill();
    const deleted = await Volume.delete('shared', conn);
    assert.equal(deleted.id, volume.id);
    await assert.rejects(Volume.get('shared', conn), code('volume_not_found'));
    assert.equal(existsSync(join(ctx.server.dataDir, 'volumes', volume.id)), false);
  });

  it('survives hibernate and resume with a file held open, and appears in a fork and in a machine from a snapshot', async () => {
    const conn = ctx.server.conn;
    const volume = await Volume.create('life', { ...conn, sizeMb: 300 });
    const m = await Machine.create({
      ...conn,
      volumes: [
        { volume: 'life', mountPath: '/data' },
        { volume: 'life', mountPath: '/ro', readOnly: true, subpath: 'shared/docs' },
      ],
    });
    const before = (await m.getInfo()).volumes;
    assert.deepEqual(
      before.map((a) => [a.mountPath, a.readOnly, a.subpath]),
      [
        ['/data', false, null],
        ['/ro', true, 'shared/docs'],
      ],
    );
    await sh(m, 'echo manual > /data/shared/docs/readme');
    // A process holding /data/ticks open, appending to it ten times a second.
    const started = await sh(
      m,
      `setsid bash -c 'exec 3>>/data/ticks; while true; do echo tick >&3; sleep 0.1; done' >/dev/null 2>&1 </dev/null & echo $!`,
    );
    const pid = started.stdout.trim();
    const ticks = async (machine: Machine) =>
      Number((await sh(machine, 'wc -l < /data/ticks')).stdout.trim());
    await eventually(async () => (await ticks(m)) >= 3, 'ticks');

    await m.hibernate();
    // Hibernated, the machine still holds its volumes.
    await assert.rejects(Volume.delete('life', conn), code('conflict'));
    const resumed = await Machine.connect(m.id, conn);
    const after = (await resumed.getInfo()).volumes;
    assert.deepEqual(
      after.map((a) => a.id),
      before.map((a) => a.id),
    );
    // The same process, the same open file, still appending.
    const n = await ticks(m);
    await eventually(async () => (await ticks(m)) > n, 'ticks after resume');
    assert.equal((await sh(m, `readlink /proc/${pid}/fd/3`)).stdout.trim(), '/data/ticks');
    assert.equal((await sh(m, 'cat /ro/readme')).stdout, 'manual\n');
    assert.match((await sh(m, 'touch /ro/x')).stderr, /Read-only file system/);
    for (const a of after) assert.equal((await m.getVolumeHealth(a.id)).healthy, true, a.mountPath);

    // A fork: new attachments of the same volume at the same paths; writes are shared.
    const [child] = await m.fork({ count: 1 });
    assert.ok(child && !child.error, `${child?.error}\n${serverErrors(ctx.server)}`);
    const childVolumes = child.info.volumes;
    assert.deepEqual(
      childVolumes.map((a) => [a.volumeId, a.mountPath, a.readOnly, a.subpath]),
      before.map((a) => [volume.id, a.mountPath, a.readOnly, a.subpath]),
    );
    assert.ok(
      childVolumes.every((a) => a.machineId === child.machine.id && !before.some((b) => b.id === a.id)),
    );
    await sh(child.machine, 'echo "from the child" > /data/child');
    assert.equal((await sh(m, 'cat /data/child')).stdout, 'from the child\n');
    assert.match((await sh(child.machine, 'touch /ro/x')).stderr, /Read-only file system/);
    for (const a of childVolumes) assert.equal((await child.machine.getVolumeHealth(a.id)).healthy, true);

    // A reusable snapshot remembers the mounts; a machine started from it gets them, and more.
    const snap = await m.createSnapshot();
    const copy = await Machine.create({
      ...conn,
      snapshotId: snap.id,
      volumes: [{ volume: 'life', mountPath: '/extra', readOnly: true }],
    });
    const copyVolumes = (await copy.getInfo()).volumes;
    assert.deepEqual(
      copyVolumes.map((a) => [a.mountPath, a.readOnly]),
      [
        ['/data', false],
        ['/ro', true],
        ['/extra', true],
      ],
    );
    assert.equal(
      (await sh(copy, 'cat /data/child /ro/readme /extra/child')).stdout,
      'from the child\nmanual\nfrom the child\n',
    );
    await assert.rejects(
      Machine.create({ ...conn, snapshotId: snap.id, volumes: [{ volume: 'life', mountPath: '/data/sub' }] }),
      code('conflict'),
    );

    for (const machine of [copy, child.machine, m]) await machine.kill();
    // Machines killed, the volume is still the snapshot's: deleting it would break the snapshot.
    await assert.rejects(Volume.delete(volume.id, conn), code('conflict'));
    await api(ctx.server, 'DELETE', `/v1/snapshots/${snap.id}`);
    await Volume.delete(volume.id, conn);
  });

  it('attaches at run time; a broken mount is unhealthy until remount repairs it; detach', async () => {
    const conn = ctx.server.conn;
    await Volume.create('runtime', { ...conn, sizeMb: 300 });
    await using m = await Machine.create(conn);
    const a = await m.attachVolume('runtime', '/mnt/work', { subpath: 'projects/a' });
    assert.match(a.id, /^vat_/);
    assert.equal(a.health?.healthy, true);
    await sh(m, 'echo data > /mnt/work/file');
    const whole = await m.attachVolume({ volume: 'runtime', mountPath: '/mnt/whole', readOnly: true });
    assert.equal((await sh(m, 'cat /mnt/whole/projects/a/file')).stdout, 'data\n');
    assert.deepEqual(
      (await m.listVolumes()).map((v) => v.id),
      [a.id, whole.id],
    );

    await breakMount(ctx.server, m.id, '/mnt/work');
    const broken = await m.getVolumeHealth(a.id);
    assert.equal(broken.healthy, false);
    assert.match(broken.reason ?? '', /nothing is mounted at \/mnt\/work/);
    assert.notEqual((await sh(m, 'cat /mnt/work/file')).exitCode, 0);
    const repaired = await m.remountVolume(a.id);
    assert.equal(repaired.health?.healthy, true);
    assert.equal((await m.getVolumeHealth(a.id)).healthy, true);
    assert.equal((await sh(m, 'cat /mnt/work/file')).stdout, 'data\n');

    // Broken again, then hibernated: the resume mounts what the machine should have.
    await breakMount(ctx.server, m.id, '/mnt/work');
    await m.hibernate();
    await Machine.connect(m.id, conn);
    assert.equal((await m.getVolumeHealth(a.id)).healthy, true);
    assert.equal((await sh(m, 'cat /mnt/work/file')).stdout, 'data\n');

    const detached = await m.detachVolume(whole.id);
    assert.equal(detached.id, whole.id);
    assert.deepEqual(
      (await m.listVolumes()).map((v) => v.id),
      [a.id],
    );
    assert.equal((await sh(m, 'grep -c " /mnt/whole " /proc/self/mountinfo')).stdout.trim(), '0');
    await assert.rejects(m.detachVolume(whole.id), code('not_found'));
    await m.kill();
    // Killed: the attachment is released and the data stays.
    const v = await Volume.get('runtime', conn);
    assert.deepEqual(v.attachments, []);
    assert.ok(v.usedBytes > 0);
    await v.delete();
  });

  it('refuses bad volumes and mounts with their codes, and a failed mount leaves nothing running', async () => {
    const conn = ctx.server.conn;
    await assert.rejects(Volume.create('Bad Name', conn), code('invalid_argument'));
    await assert.rejects(Volume.create('vol_looks_like_an_id', conn), code('invalid_argument'));
    await assert.rejects(Volume.create('tiny', { ...conn, sizeMb: 10 }), code('invalid_argument'));
    const volume = await Volume.create('checks', { ...conn, sizeMb: 300 });
    await assert.rejects(Volume.create('checks', conn), code('conflict'));
    await assert.rejects(Volume.get('nope', conn), code('volume_not_found'));
    await assert.rejects(Volume.delete('vol_aaaaaaaaaaaaaaaaaaaa', conn), code('volume_not_found'));

    const alive = async () =>
      (await api(ctx.server, 'GET', '/v1/machines?fields=id')) as { items: unknown[] };
    const machinesBefore = (await alive()).items.length;
    await assert.rejects(
      Machine.create({ ...conn, volumes: [{ volume: 'nope', mountPath: '/data' }] }),
      code('volume_not_found'),
    );
    for (const mountPath of [
      'data',
      '/',
      '/proc/x',
      '/dev',
      '/sys/fs',
      '/.nullspace/x',
      '/a/../b',
      '/a b',
      '/a:b',
    ])
      await assert.rejects(
        Machine.create({ ...conn, volumes: [{ volume: 'checks', mountPath }] }),
        code('invalid_argument'),
        mountPath,
      );
    await assert.rejects(
      Machine.create({ ...conn, volumes: [{ volume: 'checks', mountPath: '/x', subpath: '../up' }] }),
      code('invalid_argument'),
    );
    await assert.rejects(
      Machine.create({
        ...conn,
        volumes: [
          { volume: 'checks', mountPath: '/x' },
          { volume: 'checks', mountPath: '/x/y' },
        ],
      }),
      code('invalid_argument'),
    );
    assert.equal((await alive()).items.length, machinesBefore);

    // A mount path that is a file in the machine: the create fails and its machine is torn down.
    const failed = await Machine.create({
      ...conn,
      volumes: [{ volume: 'checks', mountPath: '/etc/hostname' }],
    }).catch((e: Coded & { details?: { machine_id?: string } }) => e);
    assert.ok(!(failed instanceof Machine));
    assert.equal(failed.code, 'invalid_argument');
    const failedId = failed.details?.machine_id;
    assert.ok(failedId);
    assert.equal((await Machine.getInfoById(failedId, conn)).status, 'failed');
    assert.deepEqual((await Volume.get('checks', conn)).attachments, []);
    await Machine.killById(failedId, conn);

    await using m = await Machine.create(conn);
    await assert.rejects(m.attachVolume('nope', '/data'), code('volume_not_found'));
    await assert.rejects(m.attachVolume('checks', 'relative/path'), code('invalid_argument'));
    await assert.rejects(m.attachVolume('checks', '/etc/hostname'), code('invalid_argument'));
    await sh(m, 'ln -s /etc /workspace/link');
    await assert.rejects(m.attachVolume('checks', '/workspace/link/x'), code('invalid_argument'));
    assert.equal((await sh(m, 'test -e /etc/x; echo $?')).stdout.trim(), '1');
    const a = await m.attachVolume('checks', '/mnt/a');
    await assert.rejects(m.attachVolume('checks', '/mnt/a/b'), code('conflict'));
    await assert.rejects(m.attachVolume('checks', '/mnt'), code('conflict'));
    // A symlink planted in a volume never redirects a subpath.
    await sh(m, 'ln -s /etc /mnt/a/escape');
    await assert.rejects(m.attachVolume('checks', '/mnt/b', { subpath: 'escape' }), code('invalid_argument'));
    await assert.rejects(m.getVolumeHealth('vat_aaaaaaaaaaaaaaaaaaaa'), code('not_found'));
    await assert.rejects(
      api(ctx.server, 'GET', '/v1/machines/mch_aaaaaaaaaaaaaaaaaaaa/volumes'),
      code('machine_not_found'),
    );
    await m.pause();
    await assert.rejects(m.attachVolume('checks', '/mnt/c'), code('invalid_state'));
    assert.equal((await m.getVolumeHealth(a.id)).healthy, true);
    await m.kill();
    await volume.delete();
  });

  it('keeps volumes across a server restart, mounting them on the host again', async () => {
    const conn = ctx.server.conn;
    const volume = await Volume.create('restart', { ...conn, sizeMb: 300 });
    const m = await Machine.create({ ...conn, volumes: [{ volume: 'restart', mountPath: '/data' }] });
    await sh(m, 'echo before > /data/f');
    await ctx.server.stop();
    // Whatever unmounted the host's mount meanwhile, the next start mounts it again.
    const hostMount = join(ctx.server.dataDir, 'volumes', volume.id, 'mnt');
    await host('umount', [hostMount]);
    await ctx.server.restart();
    const conn2 = ctx.server.conn;
    assert.equal(await isMountPoint(hostMount), true);
    const again = await Machine.connect(m.id, conn2);
    const [a] = await again.listVolumes();
    assert.ok(a);
    assert.equal((await again.getVolumeHealth(a.id)).healthy, true);
    assert.equal((await sh(again, 'cat /data/f; echo after > /data/g')).stdout, 'before\n');
    await using other = await Machine.create({ ...conn2, volumes: [{ volume: volume.id, mountPath: '/v' }] });
    assert.equal((await sh(other, 'cat /v/g')).stdout, 'after\n');
    await other.kill();
    await again.kill();
    await Volume.delete(volume.id, conn2);
  });

  it('CLI: volume create, list, get, delete; machine create --volume; machine volume list, attach, health, detach', async () => {
    const s = ctx.server;
    const created = await cli(s, ['volume', 'create', 'clivol', '--size-mb', '300']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^id\s+vol_[a-z2-7]{20}$/m);
    assert.match(created.stdout, /^size\s+300 MB$/m);
    const listed = await cli(s, ['volume', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^ID\s+NAME\s+SIZE\s+USED\s+ATTACHED\s+CREATED$/m);
    assert.match(listed.stdout, /^vol_\S+\s+clivol\s+300 MB\s+/m);

    const made = await cli(s, ['machine', 'create', '--volume', 'clivol/sub:/data', '-q']);
    assert.equal(made.code, 0, made.stderr);
    const id = made.stdout.trim();
    const attached = await cli(s, ['machine', 'volume', 'attach', id, 'clivol', '/ro', '--read-only', '-q']);
    assert.equal(attached.code, 0, attached.stderr);
    const vat = attached.stdout.trim();
    assert.match(vat, /^vat_/);
    const table = await cli(s, ['machine', 'volume', 'list', id]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^ID\s+VOLUME\s+MOUNT_PATH\s+MODE\s+SUBPATH\s+HEALTH$/m);
    // Not checked since the create yet: no health shown.
    assert.match(table.stdout, /^vat_\S+\s+clivol\s+\/data\s+rw\s+sub\s+-$/m);
    assert.match(table.stdout, new RegExp(`^${vat}\\s+clivol\\s+/ro\\s+ro\\s+-\\s+healthy$`, 'm'));
    const shown = await cli(s, ['machine', 'get', id]);
    assert.match(
      shown.stdout,
      /^volumes\s+vat_\S+ clivol\/sub at \/data \(rw\), vat_\S+ clivol at \/ro \(ro\)$/m,
    );
    const health = await cli(s, ['machine', 'volume', 'health', id, vat]);
    assert.equal(health.code, 0, health.stderr);
    assert.equal(health.stdout, `${vat} healthy\n`);
    const json = JSON.parse((await cli(s, ['--json', 'volume', 'get', 'clivol'])).stdout) as {
      attachments: { machine_id: string }[];
    };
    assert.equal(json.attachments.length, 2);
    const refused = await cli(s, ['volume', 'delete', 'clivol']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: conflict: /);
    const detached = await cli(s, ['machine', 'volume', 'detach', id, vat]);
    assert.equal(detached.code, 0, detached.stderr);
    assert.equal(detached.stdout, `${vat} detached from /ro\n`);
    const bad = await cli(s, ['machine', 'create', '--volume', 'clivol']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--volume: expected VOL\[\/SUBPATH\]:PATH\[:ro\]/);
    assert.equal((await cli(s, ['machine', 'kill', id])).code, 0);
    const deleted = await cli(s, ['volume', 'delete', 'clivol']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, /^vol_\S+ deleted\n$/);
    const gone = await cli(s, ['volume', 'get', 'clivol']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^error: volume_not_found: /);
  });
});
