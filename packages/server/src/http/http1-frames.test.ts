/** The response heads and body framings the preview proxy reads itself on its upstream connection. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkedReader, bodyFraming, parseResponseHead } from './http1-frames.js';

const head = (text: string) => {
  const h = parseResponseHead(Buffer.from(text, 'latin1'));
  assert.ok(h);
  return h;
};

describe('parseResponseHead', () => {
  it('waits for the blank line, then reads status, headers (folded, repeated) and length', () => {
    assert.equal(parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\nA: b\r\n')), undefined);
    const text =
      'HTTP/1.1 404 Not Found\r\nSet-Cookie: a=1\r\nX-Long: one\r\n  two\r\nset-cookie: b=2\r\n\r\nbody';
    const h = head(text);
    assert.equal(h.status, 404);
    assert.equal(h.statusMessage, 'Not Found');
    assert.deepEqual(h.headers, [
      ['set-cookie', 'a=1'],
      ['x-long', 'one two'],
      ['set-cookie', 'b=2'],
    ]);
    assert.equal(text.slice(h.length), 'body');
    assert.equal(head('HTTP/1.0 204\r\n\r\n').statusMessage, '');
  });

  it('refuses malformed and oversized heads', () => {
    assert.throws(() => parseResponseHead(Buffer.from('HTTP/2 200 OK\r\n\r\n')), /status line/);
    assert.throws(() => parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\nno colon\r\n\r\n')), /header line/);
    assert.throws(
      () => parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n')),
      /header line/,
    );
    assert.throws(() => parseResponseHead(Buffer.alloc(70 * 1024, 'a')), /too large/);
  });
});

describe('bodyFraming', () => {
  it('follows RFC 9112 §6.3', () => {
    const ok = (extra: string) => head(`HTTP/1.1 200 OK\r\n${extra}\r\n`);
    assert.deepEqual(bodyFraming('GET', ok('Content-Length: 10\r\n')), { kind: 'length', bytes: 10 });
    assert.deepEqual(bodyFraming('GET', ok('Content-Length: 10, 10\r\n')), { kind: 'length', bytes: 10 });
    assert.deepEqual(bodyFraming('HEAD', ok('Content-Length: 10\r\n')), { kind: 'none' });
    assert.deepEqual(bodyFraming('GET', head('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n')), {
      kind: 'none',
    });
    assert.deepEqual(bodyFraming('GET', head('HTTP/1.1 204 No Content\r\n\r\n')), { kind: 'none' });
    assert.deepEqual(bodyFraming('GET', ok('Transfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n')), {
      kind: 'chunked',
    });
    assert.deepEqual(bodyFraming('GET', ok('Transfer-Encoding: gzip\r\n')), { kind: 'close' });
    assert.deepEqual(bodyFraming('GET', ok('')), { kind: 'close' });
    assert.throws(
      () => bodyFraming('GET', ok('Content-Length: 10\r\nContent-Length: 11\r\n')),
      /content-length/,
    );
    assert.throws(() => bodyFraming('GET', ok('Content-Length: -1\r\n')), /content-length/);
  });
});

describe('ChunkedReader', () => {
  const body = '5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-sum: 1\r\n\r\nNEXT';
  it('hands on the chunk data however the bytes are split, and stops after the trailers', () => {
    for (const step of [1, 2, 3, 7, body.length]) {
      const r = new ChunkedReader();
      const out: Buffer[] = [];
      let used = 0;
      for (let i = 0; i < body.length && !r.done; i += step) {
        const piece = Buffer.from(body.slice(i, i + step));
        const n = r.feed(piece, (c) => out.push(Buffer.from(c)));
        used += n;
        if (!r.done) assert.equal(n, piece.length);
      }
      assert.equal(r.done, true, `step ${step}`);
      assert.equal(Buffer.concat(out).toString(), 'helloabcdefghijklmnopqrstuvwxyz', `step ${step}`);
      assert.equal(body.slice(used), 'NEXT', `step ${step}`);
    }
  });

  it('refuses broken framing', () => {
    assert.throws(() => new ChunkedReader().feed(Buffer.from('zz\r\n'), () => {}), /chunk size/);
    assert.throws(
      () => new ChunkedReader().feed(Buffer.from('2\r\nabc\r\n'), () => {}),
      /longer than its size/,
    );
    assert.throws(() => new ChunkedReader().feed(Buffer.from('1234567890abc\r\n'), () => {}), /too large/);
  });
});
