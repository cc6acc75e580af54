/** The response heads and body framings the preview proxy reads itself on its upstream connection. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ChunkedReader,
  bodyFraming,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
} from './http1-frames.js';

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

describe('parseRequestHead and requestFraming', () => {
  const parse = (s: string) => parseRequestHead(Buffer.from(s, 'latin1'));

  it('reads a head: method, target, version, headers in order, raw names kept', () => {
    const head = parse('POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two:  a \r\nx-two: b\r\n\r\nbody');
    assert.ok(head);
    assert.equal(head.method, 'POST');
    assert.equal(head.target, '/a?b=1');
    assert.equal(head.minor, 1);
    assert.deepEqual(head.headers, [
      ['host', 'x'],
      ['x-two', 'a'],
      ['x-two', 'b'],
    ]);
    assert.deepEqual(head.rawHeaders, ['Host', 'x', 'X-Two', 'a', 'x-two', 'b']);
    assert.equal(head.length, 'POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two:  a \r\nx-two: b\r\n\r\n'.length);
    assert.equal(parse('GET / HTTP/1.0\r\n\r\n')?.minor, 0);
  });

  it('waits for the rest of a head, up to 16 KiB', () => {
    assert.equal(parse('GET / HTTP/1.1\r\nHost: x\r\n'), undefined);
    assert.equal(parse(`GET / HTTP/1.1\r\nx: ${'a'.repeat(16 * 1024)}`), null);
    assert.equal(parse(`GET / HTTP/1.1\r\nx: ${'a'.repeat(16 * 1024)}\r\n\r\n`), null);
  });

  it('leaves to Node every head it does not read the one way all parsers do', () => {
    for (const bad of [
      'GET  / HTTP/1.1\r\n\r\n',
      'GET / HTTP/2.0\r\n\r\n',
      'G(T / HTTP/1.1\r\n\r\n',
      'GET /\x7f HTTP/1.1\r\n\r\n',
      'GET /\xe9 HTTP/1.1\r\n\r\n',
      '\r\nGET / HTTP/1.1\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n',
      'GET / HTTP/1.1\r\nHost : x\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\ny: z\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\ry: z\r\n\r\n',
      'GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n',
      'GET / HTTP/1.1\r\n: x\r\n\r\n',
    ])
      assert.equal(parse(bad), null, JSON.stringify(bad));
  });

  it('frames a body by one length or chunked alone; anything ambiguous is null', () => {
    const framing = (...lines: string[]) => {
      const head = parse(`POST / HTTP/1.1\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`);
      assert.ok(head);
      return requestFraming(head);
    };
    assert.deepEqual(framing(), { kind: 'none' });
    assert.deepEqual(framing('Content-Length: 0'), { kind: 'none' });
    assert.deepEqual(framing('Content-Length: 12'), { kind: 'length', bytes: 12 });
    assert.deepEqual(framing('Transfer-Encoding: Chunked'), { kind: 'chunked' });
    assert.equal(framing('Content-Length: 5', 'Transfer-Encoding: chunked'), null);
    assert.equal(framing('Transfer-Encoding: chunked', 'Content-Length: 5'), null);
    assert.equal(framing('Content-Length: 5', 'Content-Length: 5'), null);
    assert.equal(framing('Content-Length: 5, 5'), null);
    assert.equal(framing('Content-Length: -1'), null);
    assert.equal(framing('Content-Length: 1e3'), null);
    assert.equal(framing(`Content-Length: ${'9'.repeat(16)}`), null);
    assert.equal(framing('Transfer-Encoding: gzip, chunked'), null);
    assert.equal(framing('Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'), null);
    assert.equal(framing('Transfer-Encoding: identity'), null);
  });
});
