/**
 * The data directory filling up during a template build (issue 20, item 4): the build fails with
 * `disk_full` — a filesystem build when its layer does not fit, a snapshot-backed one when its
 * snapshot does not — and leaves nothing half-made: no template, no layer, no snapshot files, no
 * build machine. Where builds and snapshots are written is a 4 MiB tmpfs the test mounts (and
 * unmounts) itself: `<data dir>/template-builds` bound to a directory on it, and the snapshots
 * directory on it too.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { Machine, NullspaceError, Template } from '@nullspace/sdk';
import { describeWithServer, eventually, leftovers } from './harness.js';

const root = process.getuid?.() === 0;
const fullDir = root ? mkdtempSync('/tmp/nst-full-') : '/nonexistent';
if (root) {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', fullDir]);
  mkdirSync(join(fullDir, 'builds'));
  mkdirSync(join(fullDir, 'snapshots'));
}
after(() => {
  if (!root) return;
  execFileSync('umount', [fullDir]);
  rmSync(fullDir, { recursive: true, force: true });
});

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

describeWithServer(
  'template builds on a full disk',
  (ctx) => {
    it('answer disk_full and leave no template, layer, snapshot or machine behind', async () => {
      const s = ctx.server;
      const builds = join(s.dataDir, 'template-builds');
      mkdirSync(builds, { recursive: true });
      execFileSync('mount', ['--bind', join(fullDir, 'builds'), builds]);
      try {
        // A filesystem build whose layer (8 MiB of changes) cannot be copied into 4 MiB.
        const layer = await Template.build(
          { name: 'team/too-big', run: ['head -c 8M /dev/urandom > /big.bin'] },
          s.conn,
        ).catch((e: unknown) => e);
        assert.ok(layer instanceof NullspaceError, String(layer));
        assert.equal(layer.code, 'disk_full', layer.message);
        // A snapshot-backed build whose snapshot (the machine's memory and disk) cannot be written.
        const snap = await Template.build(
          { name: 'team/too-big-snap', startCmd: 'sleep 100000', snapshot: true },
          s.conn,
        ).catch((e: unknown) => e);
        assert.ok(snap instanceof NullspaceError, String(snap));
        assert.equal(snap.code, 'disk_full', snap.message);

        for (const name of ['team/too-big', 'team/too-big-snap'])
          await assert.rejects(Template.get(name, s.conn), { code: 'template_not_found' });
        // Half-made: a layer directory, snapshot files. Each build keeps only its log.
        const left = filesUnder(fullDir).filter((f) => !/^builds\/tpl_[a-z2-7]+\/build\.log$/.test(f));
        assert.deepEqual(left, []);
        // The build machines were killed, and nothing of them stays on the host.
        const alive = await Machine.list({ ...s.conn, query: { state: ['running', 'failed', 'paused'] } });
        assert.deepEqual(alive.items, []);
        const killed = (await Machine.list({ ...s.conn, query: { state: ['killed'] } })).items.map(
          (m) => m.id,
        );
        assert.equal(killed.length, 2);
        let still: string[] = [];
        await eventually(async () => {
          still = await leftovers(s.dataDir, killed, { onlyThese: true });
          return still.filter((l) => !l.includes('template-builds')).length === 0;
        }, 'the build machines to be torn down').catch(() => undefined);
        assert.deepEqual(
          still.filter((l) => !l.includes('template-builds')),
          [],
        );
      } finally {
        execFileSync('umount', [builds]);
      }
      // With room again, the same build works.
      const ok = await Template.build({ name: 'team/fits', run: ['echo fits > /fits.txt'] }, s.conn);
      assert.equal(ok.template.status, 'ready');
    });
  },
  { NULLSPACE_SNAPSHOTS_DIR: join(fullDir, 'snapshots') },
);
