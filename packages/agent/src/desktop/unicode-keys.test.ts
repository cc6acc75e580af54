/** Which characters are typed as text and which as keys of their own, and their keysym names. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keysymName, onKeyboardMap } from './unicode-keys.js';

describe('unicode keys', () => {
  it('names a character by its code point, as XStringToKeysym reads it', () => {
    assert.equal(keysymName('é'), 'U00E9');
    assert.equal(keysymName('世'), 'U4E16');
    assert.equal(keysymName('✓'), 'U2713');
    assert.equal(keysymName('😀'), 'U1F600');
  });

  it('types printable ASCII, newline and tab from the map, everything else from keys of their own', () => {
    for (const ch of ['a', 'Z', '~', ' ', '-', '\n', '\t']) assert.equal(onKeyboardMap(ch), true, ch);
    for (const ch of ['é', '世', '\u00a0', '\r', '\u007f']) assert.equal(onKeyboardMap(ch), false, ch);
  });
});
