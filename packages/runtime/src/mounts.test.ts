import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hasOwnFilesystem, isMountPoint } from './mounts.js';

test('hasOwnFilesystem sees a filesystem mounted at a path, as the mount table does', async () => {
  // procfs is mounted at /proc on every Linux host, another filesystem than /'s.
  assert.equal(await hasOwnFilesystem('/proc'), true);
  assert.equal(await isMountPoint('/proc'), true);
  const dir = mkdtempSync(join(tmpdir(), 'nullspace-mounts-'));
  try {
    // A plain directory is on its parent's filesystem; a missing path is no mount point.
    assert.equal(await hasOwnFilesystem(dir), false);
    assert.equal(await isMountPoint(dir), false);
    assert.equal(await hasOwnFilesystem(join(dir, 'missing')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
