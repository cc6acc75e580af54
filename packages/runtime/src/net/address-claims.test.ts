/** Host-wide claims on address blocks: one owner per block, stale claims taken over, releases. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { claimBlock, releaseBlock } from './address-claims.js';
import { parsePool } from './addresses.js';

// A pool no host interface uses (the stale rule also asks whether the block's link exists).
const pool = parsePool('10.250.0.0/24');
const root = mkdtempSync('/tmp/nsu-claims-');
after(() => rmSync(root, { recursive: true, force: true }));

/** A claims directory, and two machine directories (of two servers) that exist. */
function fixture(name: string) {
  const dir = join(root, name, 'claims');
  const a = join(root, name, 'server-a', 'mch_a');
  const b = join(root, name, 'server-b', 'mch_b');
  mkdirSync(a, { recursive: true });
  mkdirSync(b, { recursive: true });
  return { dir, a, b };
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, (err, stdout) => (err ? reject(err) : resolve(stdout.trim()))),
  );
}

/** Makes a claim file look `s` seconds old. */
function age(dir: string, s: number): void {
  const t = Date.now() / 1000 - s;
  for (const f of readdirSync(dir)) utimesSync(join(dir, f), t, t);
}

describe('claimBlock', () => {
  it('gives a block to one owner: the other is refused, the owner may claim it again', () => {
    const { dir, a, b } = fixture('one-owner');
    assert.equal(claimBlock(pool, 3, a, dir), true);
    assert.equal(claimBlock(pool, 3, b, dir), false);
    assert.equal(claimBlock(pool, 3, a, dir), true);
    assert.equal(claimBlock(pool, 4, b, dir), true);
    assert.deepEqual(readdirSync(dir).sort(), ['10.250.0.24', '10.250.0.32']);
  });

  it('a release frees the block for another owner; a release by someone else does nothing', () => {
    const { dir, a, b } = fixture('release');
    assert.equal(claimBlock(pool, 0, a, dir), true);
    releaseBlock(pool, 0, b, dir);
    assert.equal(claimBlock(pool, 0, b, dir), false);
    releaseBlock(pool, 0, a, dir);
    assert.equal(claimBlock(pool, 0, b, dir), true);
  });

  it('takes over a claim whose machine directory is gone, once it is no longer fresh', () => {
    const { dir, b } = fixture('stale');
    const gone = join(root, 'stale', 'server-a', 'mch_gone');
    assert.equal(claimBlock(pool, 5, gone, dir), true);
    // Fresh: its machine may not have made its directory yet.
    assert.equal(claimBlock(pool, 5, b, dir), false);
    age(dir, 120);
    assert.equal(claimBlock(pool, 5, b, dir), true);
    assert.equal(claimBlock(pool, 5, gone, dir), false);
  });

  it('keeps an old claim whose machine directory still exists (a hibernated machine)', () => {
    const { dir, a, b } = fixture('kept');
    assert.equal(claimBlock(pool, 6, a, dir), true);
    age(dir, 3600);
    assert.equal(claimBlock(pool, 6, b, dir), false);
  });

  it('processes racing for one free block: exactly one wins', async () => {
    const { dir } = fixture('race');
    const module = new URL('./address-claims.js', import.meta.url).href;
    const racers = Array.from({ length: 8 }, (_, i) => {
      const owner = join(root, 'race', `mch_${i}`);
      mkdirSync(owner, { recursive: true });
      const code = `const { claimBlock } = await import(${JSON.stringify(module)});
        const { parsePool } = await import(${JSON.stringify(new URL('./addresses.js', import.meta.url).href)});
        process.stdout.write(String(claimBlock(parsePool('10.250.0.0/24'), 7, ${JSON.stringify(owner)}, ${JSON.stringify(dir)})));`;
      return run(process.execPath, ['--input-type=module', '-e', code]);
    });
    const answers = await Promise.all(racers);
    assert.equal(answers.filter((a) => a === 'true').length, 1, answers.join(' '));
    assert.equal(answers.filter((a) => a === 'false').length, 7, answers.join(' '));
  });
});
