/** Host id ranges of machines: one machine per range host-wide, recorded, re-claimed, released. */
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  ID_RANGES_START,
  ID_RANGE_COUNT,
  ID_RANGE_FILE,
  ID_RANGE_SIZE,
  claimIdRange,
  readIdRange,
  releaseIdRange,
} from './id-ranges.js';

const root = mkdtempSync('/tmp/nsu-ranges-');
after(() => rmSync(root, { recursive: true, force: true }));

function fixture(name: string, machines: number) {
  const claims = join(root, name, 'claims');
  const dirs = Array.from({ length: machines }, (_, i) => {
    const d = join(root, name, `mch_${i}`);
    mkdirSync(d, { recursive: true });
    return d;
  });
  return { claims, dirs };
}

describe('claimIdRange', () => {
  it('gives every machine its own range of 65,536 ids above 2^30, recorded in its directory', () => {
    const { claims, dirs } = fixture('distinct', 20);
    const bases = dirs.map((d) => claimIdRange(d, claims).base);
    assert.equal(new Set(bases).size, 20);
    for (const [i, base] of bases.entries()) {
      assert.ok(
        base >= ID_RANGES_START && base + ID_RANGE_SIZE <= ID_RANGES_START + ID_RANGE_COUNT * ID_RANGE_SIZE,
      );
      assert.equal((base - ID_RANGES_START) % ID_RANGE_SIZE, 0);
      assert.equal(
        readFileSync(join(dirs[i] as string, ID_RANGE_FILE), 'utf8'),
        `${base} ${ID_RANGE_SIZE}\n`,
      );
      assert.deepEqual(readIdRange(dirs[i] as string), { base, size: ID_RANGE_SIZE });
    }
    assert.equal(readdirSync(claims).length, 20);
  });

  it('claims the recorded range again (a restart, a resume) instead of a new one', () => {
    const { claims, dirs } = fixture('again', 1);
    const dir = dirs[0] as string;
    const first = claimIdRange(dir, claims);
    assert.deepEqual(claimIdRange(dir, claims), first);
    // The claims directory lives in /run: after a reboot it is empty, and the record rules.
    rmSync(claims, { recursive: true });
    assert.deepEqual(claimIdRange(dir, claims), first);
    assert.equal(readdirSync(claims).length, 1);
  });

  it("refuses a recorded range another live machine holds, and takes over a gone machine's", () => {
    const { claims, dirs } = fixture('contested', 2);
    const [a, b] = dirs as [string, string];
    const range = claimIdRange(a, claims);
    writeFileSync(join(b, ID_RANGE_FILE), `${range.base} ${range.size}\n`);
    assert.throws(() => claimIdRange(b, claims), /claimed by another machine/);
    // a's directory goes (its server destroyed it, or crashed before releasing): once the claim
    // is older than a machine takes to make its directory, it is stale.
    rmSync(a, { recursive: true });
    const t = Date.now() / 1000 - 120;
    for (const f of readdirSync(claims)) utimesSync(join(claims, f), t, t);
    assert.deepEqual(claimIdRange(b, claims), range);
  });

  it('releases only its own claim', () => {
    const { claims, dirs } = fixture('release', 2);
    const [a, b] = dirs as [string, string];
    const ra = claimIdRange(a, claims);
    releaseIdRange(b, ra, claims);
    assert.equal(readdirSync(claims).length, 1, "b cannot release a's range");
    releaseIdRange(a, ra, claims);
    assert.equal(readdirSync(claims).length, 0);
  });

  it('refuses a malformed record rather than guessing a range', () => {
    const { dirs } = fixture('malformed', 1);
    writeFileSync(join(dirs[0] as string, ID_RANGE_FILE), '12 65536\n');
    assert.throws(() => readIdRange(dirs[0] as string), /not an id range/);
  });
});
