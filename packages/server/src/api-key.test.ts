/** The server's API key: kept across restarts in the data directory, compared in constant time. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { keyMatches, loadOrCreateApiKey } from './api-key.js';

const dir = mkdtempSync(join(tmpdir(), 'nullspace-unit-api-key-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('loadOrCreateApiKey', () => {
  it('made once, readable only by its owner, and the same on the next start', () => {
    const first = loadOrCreateApiKey(dir);
    assert.equal(first.generated, true);
    assert.match(first.key, /^ns_[A-Za-z0-9_-]{32}$/);
    assert.equal(statSync(join(dir, 'api-key')).mode & 0o777, 0o600);
    assert.deepEqual(loadOrCreateApiKey(dir), { key: first.key, generated: false });
  });

  it('an explicit key wins and nothing is written; a key file is read trimmed', () => {
    const other = mkdtempSync(join(dir, 'b-'));
    assert.deepEqual(loadOrCreateApiKey(other, 'ns_explicit'), { key: 'ns_explicit', generated: false });
    assert.throws(() => readFileSync(join(other, 'api-key')));
    writeFileSync(join(other, 'api-key'), '  ns_from_file \n');
    assert.deepEqual(loadOrCreateApiKey(other), { key: 'ns_from_file', generated: false });
  });
});

describe('keyMatches', () => {
  it('only the very key matches', () => {
    assert.equal(keyMatches('ns_abc', 'ns_abc'), true);
    for (const given of [undefined, '', 'ns_ab', 'ns_abcd', 'NS_ABC', 'ns_abd', ' ns_abc'])
      assert.equal(keyMatches(given, 'ns_abc'), false, String(given));
    assert.equal(keyMatches('é', 'e'), false);
  });
});
