/**
 * The byte stream of a process: HTTP frames `[kind][u32 length][payload]` decoded whatever the
 * chunking, WebSocket messages `[kind][payload]`, JSON events, and output kept up to a cap.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CappedBytes,
  FRAME,
  type Frame,
  FrameDecoder,
  type StreamEvent,
  encodeEventFrame,
  encodeEventMessage,
  encodeFrame,
  encodeMessage,
  parseEvent,
} from './index.js';

function frames(): { wire: Buffer; expected: { kind: number; payload: string }[] } {
  const expected = [
    { kind: FRAME.stdout, payload: 'hello\n' },
    { kind: FRAME.stderr, payload: '' },
    { kind: FRAME.stdout, payload: Buffer.from([0xff, 0xfe, 0x00, 0x80]).toString('latin1') },
    { kind: FRAME.event, payload: JSON.stringify({ type: 'keepalive' }) },
    { kind: FRAME.stderr, payload: 'x'.repeat(70_000) },
  ];
  const wire = Buffer.concat(
    expected.map((f) => encodeFrame(f.kind as 0 | 1 | 2, Buffer.from(f.payload, 'latin1'))),
  );
  return { wire, expected };
}

const seen = (out: Frame[]) => out.map((f) => ({ kind: f.kind, payload: f.payload.toString('latin1') }));

describe('HTTP frames', () => {
  it('a frame is the kind, the length big-endian, then the payload', () => {
    assert.deepEqual([...encodeFrame(FRAME.stderr, Buffer.from('ab'))], [2, 0, 0, 0, 2, 0x61, 0x62]);
    assert.deepEqual([...encodeFrame(FRAME.stdout, Buffer.alloc(0))], [1, 0, 0, 0, 0]);
  });

  it('decodes frames in one chunk, byte by byte, and in every split into two chunks', () => {
    const { wire, expected } = frames();
    assert.deepEqual(seen(new FrameDecoder().push(wire)), expected);

    const bytewise = new FrameDecoder();
    const out: Frame[] = [];
    for (let i = 0; i < wire.length; i++) out.push(...bytewise.push(wire.subarray(i, i + 1)));
    assert.deepEqual(seen(out), expected);
    assert.equal(bytewise.leftover, 0);

    // Every cut point in the small frames at the start, and some within the large one.
    const cuts = [...Array(40).keys(), 10_000, 40_000, wire.length - 1];
    for (const cut of cuts) {
      const d = new FrameDecoder();
      const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      assert.deepEqual(seen(got), expected, `cut at ${cut}`);
      assert.equal(d.leftover, 0);
    }
  });

  it('a cut stream leaves the unfinished bytes over', () => {
    const whole = encodeFrame(FRAME.stdout, Buffer.from('abcdef'));
    const d = new FrameDecoder();
    assert.deepEqual(d.push(whole.subarray(0, 3)), []);
    assert.equal(d.leftover, 3);
    assert.deepEqual(d.push(whole.subarray(3, 8)), []);
    assert.equal(d.leftover, 8);
    assert.deepEqual(seen(d.push(whole.subarray(8))), [{ kind: 1, payload: 'abcdef' }]);
    assert.equal(d.leftover, 0);
  });

  it('events travel as JSON in kind 0', () => {
    const exit: StreamEvent = {
      type: 'exit',
      pid: 7,
      exit_code: 0,
      signal: null,
      timed_out: false,
      duration_ms: 12,
      offset: 99,
    };
    const [frame] = new FrameDecoder().push(encodeEventFrame(exit));
    assert.equal(frame?.kind, FRAME.event);
    assert.deepEqual(parseEvent(frame?.payload ?? Buffer.alloc(0)), exit);
  });
});

describe('WebSocket messages', () => {
  it('one message is the kind and the payload, without a length', () => {
    assert.deepEqual([...encodeMessage(FRAME.stdout, Buffer.from('hi'))], [1, 0x68, 0x69]);
    const msg = encodeEventMessage({ type: 'resize', cols: 80, rows: 24 });
    assert.equal(msg[0], FRAME.event);
    assert.deepEqual(JSON.parse(msg.subarray(1).toString()), { type: 'resize', cols: 80, rows: 24 });
  });
});

describe('CappedBytes', () => {
  it('keeps bytes up to the cap and says when it dropped some', () => {
    const c = new CappedBytes(5);
    c.push(Buffer.from('abc'));
    assert.equal(c.truncated, false);
    c.push(Buffer.from('de'));
    assert.equal(c.truncated, false);
    assert.equal(c.text(), 'abcde');
    c.push(Buffer.from('f'));
    assert.equal(c.truncated, true);
    assert.equal(c.text(), 'abcde');
  });

  it('cuts the chunk that crosses the cap', () => {
    const c = new CappedBytes(4);
    c.push(Buffer.from('ab'));
    c.push(Buffer.from('cdef'));
    assert.equal(c.truncated, true);
    assert.equal(c.bytes().toString(), 'abcd');
  });

  it('returns bytes that are not UTF-8 intact, in base64 on request', () => {
    const c = new CappedBytes(16);
    c.push(Buffer.from([0xff, 0x00, 0xfe]));
    assert.equal(c.text('base64'), Buffer.from([0xff, 0x00, 0xfe]).toString('base64'));
    assert.equal(new CappedBytes(0).text(), '');
  });
});
