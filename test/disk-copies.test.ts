/**
 * Snapshots and forks on a data dir whose filesystem shares blocks (XFS made with reflink=1, on a
 * loop file this test makes and removes): their disk images are clones, not copies — on the host
 * the snapshot's and each child's image share the source's blocks (FIEMAP flags them `shared`) —
 * and still independent: what a child writes is in neither its sibling nor the parent, and the
 * parent's later writes are in no child. On ext4 (the default data dir) the same steps copy; that
 * is what lifecycle.test.ts runs.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import type { MachineInfo } from '@nullspace/protocol';
import { Machine } from '@nullspace/sdk';
import { api, describeWithServer } from './harness.js';

const poolDir = mkdtempSync('/tmp/nst-xfs-');
// Machines run as unprivileged host ids (user namespaces) and must pass through it to their own
// directories: searchable, not readable (mkdtemp makes it 0700).
chmodSync(poolDir, 0o711);
const mnt = join(poolDir, 'mnt');
const dataDir = join(mnt, 'd');
const canMount = process.getuid?.() === 0;
if (canMount) {
  const img = join(poolDir, 'pool.img');
  execFileSync('truncate', ['-s', '16G', img]);
  execFileSync('mkfs.xfs', ['-q', '-K', '-m', 'reflink=1', img]);
  mkdirSync(mnt);
  // The loop device goes with the unmount (util-linux sets autoclear).
  execFileSync('mount', ['-o', 'loop,noatime', img, mnt]);
  mkdirSync(dataDir);
}
// After the server's teardown (a suite's own `after`), which removes the data dir.
after(() => {
  if (canMount) execFileSync('umount', [mnt]);
  rmSync(poolDir, { recursive: true, force: true });
});

/** Bytes of `file` whose blocks FIEMAP reports as shared with another file. */
function sharedBytes(file: string): number {
  const out = execFileSync('filefrag', ['-v', file], { encoding: 'utf8' });
  const blockSize = Number(/blocks? of (\d+) bytes/.exec(out)?.[1]);
  assert.ok(blockSize > 0, `filefrag's block size: ${out.slice(0, 200)}`);
  let blocks = 0;
  for (const line of out.split('\n')) {
    // "   0:        0..      15:      24..        39:     16:             shared"
    const m = /^\s*\d+:\s+\d+\.\.\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+):.*\bshared\b/.exec(line);
    if (m) blocks += Number(m[1]);
  }
  return blocks * blockSize;
}

const MiB = 1024 * 1024;

describeWithServer(
  'disk copies on a reflink data dir: clones that share blocks, machines that diverge',
  (ctx) => {
    it('a snapshot and two fork children share the parent disk blocks; writes stay their own', async () => {
      const s = ctx.server;
      const parent = await Machine.create({ ...s.conn, timeout: 600 });
      try {
        // Random bytes: nothing a sparse copy could turn into holes.
        const wrote = await parent.commands.run(
          'head -c 64M /dev/urandom > /root/big && sync && sha256sum /root/big | cut -d" " -f1',
        );
        const sum = wrote.stdout.trim();
        assert.match(sum, /^[0-9a-f]{64}$/);

        const snap = (await api(s, 'POST', `/v1/machines/${parent.id}/snapshots`)) as { id: string };
        const snapImage = join(dataDir, 'snapshots', snap.id, 'disk.img');
        assert.ok(sharedBytes(snapImage) >= 64 * MiB, `the snapshot's image shares blocks: ${snapImage}`);

        const res = (await api(s, 'POST', `/v1/machines/${parent.id}/fork`, { count: 2 })) as {
          children: (MachineInfo | { error: { code: string } })[];
        };
        const children: Machine[] = [];
        for (const c of res.children) {
          assert.ok('id' in c, `child failed: ${JSON.stringify(c)}`);
          children.push(await Machine.connect(c.id, s.conn));
        }
        assert.equal(children.length, 2);
        for (const c of children) {
          const image = join(dataDir, 'machines', c.id, 'disk.img');
          assert.ok(sharedBytes(image) >= 64 * MiB, `${c.id}'s image shares blocks`);
          const r = await c.commands.run('sha256sum /root/big | cut -d" " -f1');
          assert.equal(r.stdout.trim(), sum, `${c.id} reads the parent's bytes`);
        }

        // Copy-on-write: each side's writes are its own.
        const [a, b] = children as [Machine, Machine];
        await a.commands.run('echo mine > /root/big && sync');
        await parent.commands.run('echo after > /root/later && sync');
        assert.equal((await a.commands.run('cat /root/big')).stdout, 'mine\n');
        assert.equal((await b.commands.run('sha256sum /root/big | cut -d" " -f1')).stdout.trim(), sum);
        assert.equal((await parent.commands.run('sha256sum /root/big | cut -d" " -f1')).stdout.trim(), sum);
        for (const c of children)
          assert.equal((await c.commands.run('test -e /root/later; echo $?')).stdout.trim(), '1');

        // A machine from the snapshot: the parent's bytes as they were at the snapshot.
        const fromSnap = await Machine.create({ ...s.conn, snapshotId: snap.id } as Parameters<
          typeof Machine.create
        >[0]);
        assert.equal((await fromSnap.commands.run('sha256sum /root/big | cut -d" " -f1')).stdout.trim(), sum);
        assert.equal((await fromSnap.commands.run('test -e /root/later; echo $?')).stdout.trim(), '1');
      } finally {
        await parent.kill();
      }
    });
  },
  canMount ? { NULLSPACE_DATA_DIR: dataDir } : {},
);
