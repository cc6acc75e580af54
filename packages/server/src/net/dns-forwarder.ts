import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { Logger } from '../log.js';

/** How long one upstream resolver gets before the next is asked. */
const UPSTREAM_TIMEOUT_MS = 2000;
/** Largest DNS message over TCP (a 16-bit length). */
const MAX_TCP_MESSAGE = 65_535;

export interface DnsForwarderOptions {
  upstreams: string[];
  log: Logger;
  /** Queries in flight to the upstreams at once, host-wide: each holds a socket for up to 2 s. */
  maxInFlight?: number;
  /** Queries in flight at once from one client address (one machine). */
  maxPerClient?: number;
  /** Open TCP connections from clients at once. */
  maxTcpClients?: number;
  /** The upstreams' port (53; another only in tests). */
  upstreamPort?: number;
}

/**
 * A SERVFAIL answer to `query`: its header (same id, opcode and RD) and question, nothing else.
 * Undefined when the query's question cannot be read (such a query is dropped).
 */
export function servfail(query: Buffer): Buffer | undefined {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return undefined;
  let at = 12;
  for (;;) {
    const len = query[at];
    if (len === undefined || len > 63) return undefined; // compression has no place in a query
    at += 1 + len;
    if (len === 0) break;
  }
  const end = at + 4; // QTYPE, QCLASS
  if (end > query.length) return undefined;
  const answer = Buffer.from(query.subarray(0, end));
  answer[2] = 0x80 | ((query[2] ?? 0) & 0x79); // QR, the query's opcode and RD
  answer[3] = 0x80 | 2; // RA, RCODE 2 (server failure)
  answer.writeUInt16BE(1, 4);
  answer.writeUInt32BE(0, 6); // no answers, no authority
  answer.writeUInt16BE(0, 10); // no additional records
  return answer;
}

/**
 * The machines' name service: a forwarder on the host's 127.0.0.1 (UDP and TCP, one port) that
 * relays each query, unchanged, to the host's own resolvers and the answer back. Machines reach it
 * at one fixed address (see `MACHINE_RESOLVER` in the runtime) that their tables redirect here, so
 * it works whatever the host's resolver is (a local stub on 127.0.0.53, a private address the
 * machines may not reach). It filters nothing: a policy that denies all egress refuses the queries
 * before they get here.
 */
export class DnsForwarder {
  private udp?: dgram.Socket;
  private tcp?: net.Server;
  private readonly open = new Set<dgram.Socket | net.Socket>();
  /** Queries in flight to the upstreams, all and per client address. */
  private inFlight = 0;
  private readonly inFlightOf = new Map<string, number>();
  private tcpClients = 0;
  /** Queries answered SERVFAIL at once because a cap was reached (logged once a minute). */
  private shed = 0;
  private lastShedLog = 0;
  private readonly maxInFlight: number;
  private readonly maxPerClient: number;
  private readonly maxTcpClients: number;
  private readonly upstreamPort: number;

  /**
   * A machine that floods it with queries (each costs a socket to an upstream for up to 2 s) gets
   * SERVFAIL at once past its share, and every machine together past the host-wide cap: the
   * forwarder's sockets stay bounded, and the other machines' queries still get through.
   */
  constructor(private readonly o: DnsForwarderOptions) {
    this.maxInFlight = o.maxInFlight ?? 512;
    this.maxPerClient = o.maxPerClient ?? 64;
    this.maxTcpClients = o.maxTcpClients ?? 256;
    this.upstreamPort = o.upstreamPort ?? 53;
  }

  /** Queries in flight to the upstreams now, and how many were refused by the caps so far. */
  stats(): { inFlight: number; shed: number } {
    return { inFlight: this.inFlight, shed: this.shed };
  }

  /** Listens on 127.0.0.1 (a free port when `port` is 0); resolves with the port. */
  async start(port = 0): Promise<number> {
    const tcp = net.createServer((client) => this.serveTcp(client));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, '127.0.0.1', () => resolve());
    });
    const bound = (tcp.address() as net.AddressInfo).port;
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(bound, '127.0.0.1', () => resolve());
    });
    udp.on('message', (msg, from) => this.serveUdp(udp, msg, from));
    udp.on('error', (err) => this.o.log.error('dns forwarder: udp socket failed', { error: err }));
    this.udp = udp;
    this.tcp = tcp;
    this.o.log.info('dns forwarder listening', { port: bound, upstreams: this.o.upstreams });
    return bound;
  }

  async close(): Promise<void> {
    for (const s of this.open) 'destroy' in s ? s.destroy() : s.close();
    this.open.clear();
    this.udp?.close();
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
  }

  private serveUdp(listener: dgram.Socket, query: Buffer, from: dgram.RemoteInfo): void {
    if (query.length < 12) return;
    void this.relay(from.address, query, (upstream) => this.udpQuery(upstream, query)).then((answer) => {
      if (answer) listener.send(answer, from.port, from.address);
    });
  }

  /**
   * Asks the upstreams for `client` within the caps; past them, a SERVFAIL at once (a resolver
   * retries or fails fast, instead of waiting out a dropped query).
   */
  private async relay(
    client: string,
    query: Buffer,
    ask: (upstream: string) => Promise<Buffer | undefined>,
  ): Promise<Buffer | undefined> {
    const mine = this.inFlightOf.get(client) ?? 0;
    if (this.inFlight >= this.maxInFlight || mine >= this.maxPerClient) {
      this.shed++;
      if (Date.now() - this.lastShedLog > 60_000) {
        this.lastShedLog = Date.now();
        this.o.log.warn('dns forwarder: too many queries in flight, answering SERVFAIL', {
          client,
          in_flight: this.inFlight,
          client_in_flight: mine,
          shed_so_far: this.shed,
        });
      }
      return servfail(query);
    }
    this.inFlight++;
    this.inFlightOf.set(client, mine + 1);
    try {
      return await this.askUpstreams(ask);
    } finally {
      this.inFlight--;
      const left = (this.inFlightOf.get(client) ?? 1) - 1;
      if (left > 0) this.inFlightOf.set(client, left);
      else this.inFlightOf.delete(client);
    }
  }

  /** One query over UDP to one upstream; resolves with the answer, or undefined on timeout/error. */
  private udpQuery(upstream: string, query: Buffer): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const s = dgram.createSocket(upstream.includes(':') ? 'udp6' : 'udp4');
      this.open.add(s);
      const done = (answer?: Buffer) => {
        clearTimeout(timer);
        this.open.delete(s);
        s.close();
        resolve(answer);
      };
      const timer = setTimeout(() => done(), UPSTREAM_TIMEOUT_MS);
      // Only an answer to this query (same id) from the upstream counts.
      s.on('message', (msg, rinfo) => {
        if (rinfo.address === upstream && msg.length >= 2 && msg.readUInt16BE(0) === query.readUInt16BE(0))
          done(msg);
      });
      s.on('error', () => done());
      s.send(query, this.upstreamPort, upstream);
    });
  }

  private serveTcp(client: net.Socket): void {
    if (this.tcpClients >= this.maxTcpClients) {
      client.destroy();
      return;
    }
    this.tcpClients++;
    this.open.add(client);
    const address = client.remoteAddress ?? '';
    client.on('close', () => {
      this.tcpClients--;
      this.open.delete(client);
    });
    client.on('error', () => client.destroy());
    client.setTimeout(30_000, () => client.destroy());
    let buffered = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const query = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        void this.relay(address, query, (upstream) => this.tcpQuery(upstream, query)).then((answer) => {
          if (!answer || client.destroyed) return;
          const framed = Buffer.alloc(2 + answer.length);
          framed.writeUInt16BE(answer.length, 0);
          answer.copy(framed, 2);
          client.write(framed);
        });
      }
    });
  }

  /** One query over TCP to one upstream (answers too large for UDP come this way). */
  private tcpQuery(upstream: string, query: Buffer): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const s = net.connect({ host: upstream, port: this.upstreamPort });
      this.open.add(s);
      let got = Buffer.alloc(0);
      const done = (answer?: Buffer) => {
        clearTimeout(timer);
        this.open.delete(s);
        s.destroy();
        resolve(answer);
      };
      const timer = setTimeout(() => done(), UPSTREAM_TIMEOUT_MS);
      s.on('connect', () => {
        const framed = Buffer.alloc(2 + query.length);
        framed.writeUInt16BE(query.length, 0);
        query.copy(framed, 2);
        s.write(framed);
      });
      s.on('data', (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length > 2 + MAX_TCP_MESSAGE) return done();
        if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0))
          done(got.subarray(2, 2 + got.readUInt16BE(0)));
      });
      s.on('error', () => done());
      s.on('close', () => done());
    });
  }

  /** Asks the upstreams in order until one answers. */
  private async askUpstreams(
    ask: (upstream: string) => Promise<Buffer | undefined>,
  ): Promise<Buffer | undefined> {
    for (const upstream of this.o.upstreams) {
      const answer = await ask(upstream);
      if (answer) return answer;
    }
    return undefined;
  }
}

/** The host's resolvers: the `nameserver` lines of /etc/resolv.conf (the first three, as glibc). */
export function hostResolvers(file = '/etc/resolv.conf'): string[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((a): a is string => a !== undefined && net.isIP(a.replace(/%.*$/, '')) !== 0)
    .slice(0, 3);
}
