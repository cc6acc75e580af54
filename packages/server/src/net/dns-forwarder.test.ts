/**
 * The DNS forwarder's caps: a client that floods it gets SERVFAIL at once past its share of
 * queries in flight, others still get through, and the upstream sockets stay bounded. Against a
 * real upstream on 127.0.0.1 that holds queries until told to answer.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { Logger } from '../log.js';
import { DnsForwarder, servfail } from './dns-forwarder.js';

/** A query for `name` (type A, class IN, RD set) with id `id`. */
function query(id: number, name: string): Buffer {
  const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header[2] = 0x01; // RD
  header.writeUInt16BE(1, 4);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

describe('servfail', () => {
  it('answers the query id and question with RCODE 2 and nothing else', () => {
    const q = Buffer.concat([
      query(0xbeef, 'example.test'),
      Buffer.from([0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0]),
    ]);
    q.writeUInt16BE(1, 10); // an EDNS record after the question: not echoed
    const a = servfail(q);
    assert.ok(a);
    assert.equal(a.readUInt16BE(0), 0xbeef);
    assert.equal(a[2], 0x81); // QR + RD
    assert.equal((a[3] ?? 0) & 0x0f, 2);
    assert.deepEqual(
      [a.readUInt16BE(4), a.readUInt16BE(6), a.readUInt16BE(8), a.readUInt16BE(10)],
      [1, 0, 0, 0],
    );
    assert.deepEqual(a.subarray(12), query(0xbeef, 'example.test').subarray(12));
  });

  it('drops what it cannot read', () => {
    assert.equal(servfail(Buffer.alloc(11)), undefined);
    const truncated = query(1, 'example.test').subarray(0, 20);
    assert.equal(servfail(truncated), undefined);
    const pointer = query(1, 'a.test');
    pointer[12] = 0xc0;
    assert.equal(servfail(pointer), undefined);
  });
});

describe('DnsForwarder caps', () => {
  let upstream: dgram.Socket;
  let held: { msg: Buffer; port: number; address: string }[] = [];
  let forwarder: DnsForwarder;
  let port = 0;

  before(async () => {
    upstream = dgram.createSocket('udp4');
    upstream.on('message', (msg, r) => held.push({ msg, port: r.port, address: r.address }));
    await new Promise<void>((resolve) => upstream.bind(0, '127.0.0.1', () => resolve()));
    forwarder = new DnsForwarder({
      upstreams: ['127.0.0.1'],
      upstreamPort: (upstream.address() as { port: number }).port,
      log: new Logger('error'),
      maxPerClient: 4,
      maxInFlight: 6,
    });
    port = await forwarder.start(0);
  });

  after(async () => {
    await forwarder.close();
    upstream.close();
  });

  /** Sends `n` queries from one socket bound to `address`; collects the answers by id. */
  async function flood(address: string, firstId: number, n: number) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, address, () => resolve()));
    const answers = new Map<number, Buffer>();
    s.on('message', (m) => answers.set(m.readUInt16BE(0), m));
    for (let i = 0; i < n; i++) s.send(query(firstId + i, 'flood.test'), port, '127.0.0.1');
    return { socket: s, answers };
  }

  const until = async (ok: () => boolean) => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(ok());
  };

  it('past its share a client gets SERVFAIL at once; another client still gets through', async () => {
    held = [];
    const a = await flood('127.0.0.1', 100, 10);
    // Four reach the upstream, six are refused at once.
    await until(() => held.length === 4 && a.answers.size === 6);
    for (const m of a.answers.values()) assert.equal((m[3] ?? 0) & 0x0f, 2);
    assert.deepEqual(forwarder.stats(), { inFlight: 4, shed: 6 });

    // Another address: its own share, within the host-wide cap of 6 (4 + 2).
    const b = await flood('127.0.0.2', 200, 3);
    await until(() => held.length === 6 && b.answers.size === 1);
    assert.equal(forwarder.stats().inFlight, 6);

    // The upstream answers: the answers go back to their clients, the counts drop to 0.
    for (const h of held) upstream.send(Buffer.from(h.msg), h.port, h.address);
    await until(() => a.answers.size === 10 && b.answers.size === 3);
    for (const id of [100, 101, 102, 103]) assert.equal((a.answers.get(id)?.[3] ?? 0) & 0x0f, 0, String(id));
    await until(() => forwarder.stats().inFlight === 0);
    a.socket.close();
    b.socket.close();
  });
});
