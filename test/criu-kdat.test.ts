/**
 * CRIU's kernel feature cache (runc/criu-kdat.ts): where /run is not a tmpfs CRIU never writes it
 * and probes the kernel at every run; the driver's init makes it, and a CRIU run then loads it
 * (its log says so) instead of probing. A stamp that no longer matches (another boot, another
 * CRIU) makes a new one.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CRIU_KDAT, ensureCriuKdat, host } from '@nullspace/runtime';

const TMPFS_MAGIC = 0x01021994;
const criu = (await host('sh', ['-c', 'command -v criu']).catch(() => ({ stdout: '' }))).stdout.trim();
const skip =
  process.getuid?.() !== 0
    ? 'needs root (CRIU, a mount namespace)'
    : criu === ''
      ? 'no criu on PATH; run scripts/setup.sh'
      : statfsSync('/run').type === TMPFS_MAGIC
        ? '/run is a tmpfs here: CRIU keeps its cache itself (ensureCriuKdat does nothing, tested below)'
        : undefined;
const scratch = mkdtempSync('/tmp/nst-kdat-');
after(() => rmSync(scratch, { recursive: true, force: true }));

/** What a `criu check` run says about the cache in its log. */
async function criuCheckLog(): Promise<string> {
  const log = join(scratch, `check-${Date.now()}.log`);
  await host(criu, ['check', '-v4', '-o', log]).catch(() => undefined);
  return readFileSync(log, 'utf8');
}

describe('CRIU kernel feature cache', { skip }, () => {
  it('is made where /run is no tmpfs, and CRIU loads it instead of probing the kernel', async () => {
    const made = await ensureCriuKdat({ scratchDir: scratch });
    assert.ok(made === 'written' || made === 'kept', `ensureCriuKdat: ${made}`);
    assert.match(await criuCheckLog(), /Loaded kdat cache from \/run\/criu\.kdat/);
    // Nothing of its scratch files is left.
    assert.deepEqual(
      (await host('ls', ['-A', scratch])).stdout.split('\n').filter((f) => f.startsWith('criu.kdat')),
      [],
    );
  });

  it('is kept while its stamp matches, and made again when it does not (another boot or CRIU)', async () => {
    assert.equal(await ensureCriuKdat({ scratchDir: scratch }), 'kept');
    writeFileSync('/run/nullspace/criu.kdat.stamp', 'another-boot 0 0');
    // A cache of another CRIU build: CRIU would ignore it and probe; it must be replaced.
    writeFileSync(CRIU_KDAT, 'not a kdat cache');
    assert.equal(await ensureCriuKdat({ scratchDir: scratch }), 'written');
    assert.notEqual(readFileSync(CRIU_KDAT, 'utf8'), 'not a kdat cache');
    assert.match(await criuCheckLog(), /Loaded kdat cache from \/run\/criu\.kdat/);
  });
});

describe(
  'CRIU kernel feature cache where /run is a tmpfs',
  {
    skip:
      process.getuid?.() !== 0
        ? 'needs root'
        : statfsSync('/run').type !== TMPFS_MAGIC
          ? '/run is no tmpfs here (the other suite runs)'
          : undefined,
  },
  () => {
    it('is left to CRIU', async () => {
      assert.equal(await ensureCriuKdat({ scratchDir: scratch }), 'criu-managed');
    });
  },
);
