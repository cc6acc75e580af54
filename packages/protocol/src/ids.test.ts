/** Ids: a prefix per kind and 100 random bits in lower-case base32, safe in host and file names. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ID_PREFIX, type IdKind, isId, newId } from './index.js';

const KINDS = Object.keys(ID_PREFIX) as IdKind[];

describe('ids', () => {
  it('each kind has its own prefix, and a new id has it and 20 base32 characters', () => {
    assert.equal(new Set(Object.values(ID_PREFIX)).size, KINDS.length);
    for (const kind of KINDS) {
      const id = newId(kind);
      assert.ok(id.startsWith(ID_PREFIX[kind]), id);
      assert.match(id.slice(ID_PREFIX[kind].length), /^[a-z2-7]{20}$/);
      assert.equal(isId(kind, id), true);
    }
  });

  it('isId tells kinds apart and refuses anything not of the shape', () => {
    const machine = newId('machine');
    assert.equal(isId('snapshot', machine), false);
    assert.equal(isId('volume', newId('volumeAttachment')), false);
    for (const bad of [
      'mch_',
      `mch_${'a'.repeat(19)}`,
      `mch_${'a'.repeat(21)}`,
      `mch_${'A'.repeat(20)}`,
      `mch_${'1'.repeat(20)}`,
      `mch_${'a'.repeat(19)}8`,
      ` ${machine}`,
      `${machine}\n`,
      machine.toUpperCase(),
    ])
      assert.equal(isId('machine', bad), false, JSON.stringify(bad));
  });

  it('ids do not repeat, across many blocks of random bytes', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5000; i++) ids.add(newId(KINDS[i % KINDS.length] as IdKind));
    assert.equal(ids.size, 5000);
  });

  it('every base32 character turns up (the body is not biased to part of the alphabet)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) for (const c of newId('request').slice(4)) seen.add(c);
    assert.equal(seen.size, 32);
  });
});
