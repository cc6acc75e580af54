/** The desktop's request parsers: key combinations, regions, clicks, window and recording ids. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CodedError,
  parseClick,
  parseKeyCombo,
  parsePress,
  parseRecordingId,
  parseScreenshotQuery,
  parseWindowId,
  parseWrite,
} from './index.js';

function invalid(fn: () => unknown, field: string): CodedError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CodedError);
    assert.equal(err.code, 'invalid_argument');
    assert.equal(err.details?.field, field);
    return err;
  }
  assert.fail('expected invalid_argument');
}

describe('desktop requests', () => {
  it('maps the usual key names to X keysyms and keeps keysyms and characters', () => {
    assert.equal(parseKeyCombo('ctrl+c'), 'ctrl+c');
    assert.equal(parseKeyCombo('Enter'), 'Return');
    assert.equal(parseKeyCombo('cmd+shift+t'), 'super+shift+t');
    assert.equal(parseKeyCombo('pageup'), 'Page_Up');
    assert.equal(parseKeyCombo('esc'), 'Escape');
    assert.equal(parseKeyCombo('F12'), 'F12');
    assert.equal(parseKeyCombo('BackSpace'), 'BackSpace');
    assert.equal(parseKeyCombo('ctrl++'), 'ctrl+plus');
    assert.equal(parseKeyCombo('+'), 'plus');
    assert.equal(parseKeyCombo('é'), 'é');
    assert.equal(parseKeyCombo('XF86AudioMute'), 'XF86AudioMute');
  });

  it('refuses an unknown key, naming it', () => {
    const err = invalid(() => parseKeyCombo('ctrl+nosuchkey'), 'keys');
    assert.equal(err.details?.key, 'nosuchkey');
    assert.match(err.message, /nosuchkey/);
    invalid(() => parsePress({ keys: ['a', 'bogus'] }), 'keys[1]');
    assert.deepEqual(parsePress({ keys: 'enter' }), { keys: ['Return'] });
  });

  it('needs a whole region or none', () => {
    assert.deepEqual(parseScreenshotQuery(new URLSearchParams('')), { format: 'png', quality: 80 });
    assert.deepEqual(
      parseScreenshotQuery(new URLSearchParams('format=jpeg&x=1&y=2&width=3&height=4')).region,
      {
        x: 1,
        y: 2,
        width: 3,
        height: 4,
      },
    );
    invalid(() => parseScreenshotQuery(new URLSearchParams('x=1')), 'x');
    invalid(() => parseScreenshotQuery(new URLSearchParams('format=gif')), 'format');
  });

  it('needs both coordinates of a click or neither, and refuses negative ones', () => {
    assert.deepEqual(parseClick({}), { button: 'left', double: false });
    assert.deepEqual(parseClick({ x: 3, y: 4, button: 'right' }), {
      button: 'right',
      double: false,
      x: 3,
      y: 4,
    });
    invalid(() => parseClick({ x: 3 }), 'y');
    invalid(() => parseClick({ x: -1, y: 0 }), 'x');
  });

  it('reads window ids in decimal or hex and recording ids', () => {
    assert.equal(parseWindowId('0x00600003'), 0x600003);
    assert.equal(parseWindowId('6291459'), 6291459);
    invalid(() => parseWindowId('zz'), 'window_id');
    invalid(() => parseWindowId('0'), 'window_id');
    assert.equal(parseRecordingId('rec_0123456789abcdef'), 'rec_0123456789abcdef');
    invalid(() => parseRecordingId('../x'), 'recording_id');
  });

  it('types any Unicode but not NUL', () => {
    assert.equal(parseWrite({ text: 'héllo → 世界' }).chunk_size, 25);
    invalid(() => parseWrite({ text: 'a\0b' }), 'text');
    assert.match(invalid(() => parseWrite({ text: 'bell\u0007' }), 'text').message, /U\+0007/);
    invalid(() => parseWrite({ text: '\u0085' }), 'text');
    assert.equal(parseWrite({ text: 'a\tb\r\nc' }).text, 'a\tb\r\nc');
  });
});
