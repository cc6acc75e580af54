/** CRIU's record of a machine's id mapping: read, and rewritten for the machine a restore makes. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { imageForRange, imageIdRange, lowerLayerSteps } from './idmap.js';

const root = mkdtempSync('/tmp/nsu-idmap-');
after(() => rmSync(root, { recursive: true, force: true }));

/** A userns image as CRIU 4.2 wrote it for a machine of base 200000 (bytes seen on this host). */
const CRIU_USERNS_200000 = Buffer.from(
  '194356540649475518000000' + '0a0a080010c09a0c18808004' + '120a080010c09a0c18808004',
  'hex',
);

function image(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'userns-13.img'), CRIU_USERNS_200000);
  writeFileSync(join(dir, 'pages-1.img'), 'memory');
  return dir;
}

describe('CRIU userns images', () => {
  it("reads the dumped machine's range", async () => {
    assert.deepEqual(await imageIdRange(image('read')), { base: 200000, size: 65536 });
  });

  it('an image without one (a machine from before user namespaces) has no range', async () => {
    const dir = join(root, 'none');
    mkdirSync(dir);
    writeFileSync(join(dir, 'pages-1.img'), 'memory');
    assert.equal(await imageIdRange(dir), null);
  });

  it("makes a restore's image for another range: the mapping rewritten, the rest the same files", async () => {
    const source = image('source');
    const target = join(root, 'target');
    for (const base of [2 ** 30 + 65536 * 5, 2 ** 31 - 65536, 200000]) {
      await imageForRange(source, target, { base, size: 65536 });
      assert.deepEqual(await imageIdRange(target), { base, size: 65536 });
      assert.equal(statSync(join(target, 'pages-1.img')).ino, statSync(join(source, 'pages-1.img')).ino);
      const st = statSync(target);
      assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [base, 0, 0o750]);
    }
    // The original, which other restores may read at the same time, is untouched.
    assert.deepEqual(readFileSync(join(source, 'userns-13.img')), CRIU_USERNS_200000);
    // Written for the range it had, the image is byte for byte what CRIU wrote.
    assert.deepEqual(readFileSync(join(target, 'userns-13.img')), CRIU_USERNS_200000);
  });
});

describe('lowerLayerSteps', () => {
  it('one idmapped mount per template layer, stacked in the same order', () => {
    const { steps, lowerdir } = lowerLayerSteps('/m/mch_x', '/t/a:/t/b', { base: 2 ** 30, size: 65536 });
    assert.equal(lowerdir, '/m/mch_x/lower/0:/m/mch_x/lower/1');
    assert.deepEqual(
      steps.slice(1).map((s) => s.slice(1)),
      [
        ['mount', String(2 ** 30), '65536', '/t/a', '/m/mch_x/lower/0'],
        ['mount', String(2 ** 30), '65536', '/t/b', '/m/mch_x/lower/1'],
      ],
    );
  });
});
