import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { keepAllocatorPreloadToSelf, nativeAllocator } from './allocator.js';

describe('allocator', () => {
  it('drops only jemalloc from LD_PRELOAD, whichever separator the list uses', () => {
    const only: NodeJS.ProcessEnv = {
      LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
      PATH: '/bin',
    };
    keepAllocatorPreloadToSelf(only);
    assert.deepEqual(only, { PATH: '/bin' });

    const mixed: NodeJS.ProcessEnv = { LD_PRELOAD: '/lib/libfoo.so libjemalloc.so.2:/lib/libbar.so' };
    keepAllocatorPreloadToSelf(mixed);
    assert.equal(mixed.LD_PRELOAD, '/lib/libfoo.so:/lib/libbar.so');

    const other: NodeJS.ProcessEnv = { LD_PRELOAD: '/lib/libjemalloc-not.so' };
    keepAllocatorPreloadToSelf(other);
    assert.equal(other.LD_PRELOAD, '/lib/libjemalloc-not.so');

    const none: NodeJS.ProcessEnv = {};
    keepAllocatorPreloadToSelf(none);
    assert.deepEqual(none, {});
  });

  it('names the allocator from the mapped libraries', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ns-maps-'));
    try {
      const maps = join(dir, 'maps');
      writeFileSync(
        maps,
        '7f3ff1000000-7f3ff1009000 r--p 00000000 fe:00 5595722    /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n',
      );
      assert.equal(nativeAllocator(maps), 'jemalloc');
      writeFileSync(
        maps,
        '7f8caec44000-7f8caed9a000 r-xp 00000000 fe:00 1    /usr/lib/x86_64-linux-gnu/libc.so.6\n',
      );
      assert.equal(nativeAllocator(maps), 'glibc');
      assert.equal(nativeAllocator(join(dir, 'absent')), 'glibc');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
