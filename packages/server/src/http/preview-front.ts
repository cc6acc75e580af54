import http from 'node:http';
import net, { type Socket } from 'node:net';
import {
  ChunkedReader,
  type RequestFraming,
  type RequestHead,
  parseRequestHead,
  requestFraming,
} from './http1-frames.js';
import { RelayedBytes } from './young-gc.js';

/**
 * The preview front door: every connection to the server is read here first, before Node's HTTP
 * parser. A connection whose requests are for preview hosts is served here, request by request,
 * so that a request body is read from the client's socket into a buffer of the connection's own
 * and written to the machine's service as it was read, with no copy by Node's parser (which
 * copies every piece of a request body into a new buffer: the upload path's cost, bench/README.md
 * "Preview proxy throughput"). Anything else, from its first byte or at a request boundary, is
 * handed to Node's HTTP server as it arrived (the bytes read so far put back in front of the
 * socket): API requests, WebSocket upgrades, HTTP/1.0, `Expect`, and any head this strict reading
 * does not take (http1-frames.ts); Node's parser then answers it exactly as it did before.
 *
 * Served here, a connection is kept alive and its pipelined requests are answered in order: the
 * next head is read only once the response is written and the request's body is all read (the
 * body's rest is read and dropped when the service answered before taking all of it). Timeouts
 * are Node's: `headersTimeout` for a head, `keepAliveTimeout` between requests. What else Node's
 * connection listener does for a response that a handler relies on is done here too: the socket's
 * `drain` is passed on to the response being written.
 */
export interface PreviewFrontOptions {
  /** The preview target of a request head's Host, if it is one. */
  isPreview(host: string | undefined): boolean;
  /** Serves one request (its answer goes through `res`), its body read from `body`. */
  serve(req: http.IncomingMessage, res: http.ServerResponse, body: RawRequestBody): void;
}

/** What a read of a client's socket is written into while no body is relayed: copied out at once. */
const SHARED_READ = Buffer.allocUnsafeSlow(64 * 1024);
/** A relayed body's reads: large, so that one system call moves 256 KiB. */
const BODY_READ_BYTES = 256 * 1024;
const EMPTY = Buffer.alloc(0);

/**
 * How much a relayed body may queue in the server before the client's socket is paused: more
 * than Node's 16 KiB default, so that reading is not stopped and restarted for nearly every read.
 */
export const QUEUED_BYTES = 1024 * 1024;

/** Copies of request body pieces (chunked bodies, first reads): freed young (young-gc.ts). */
const relayed = new RelayedBytes();

/**
 * The symbols of `net.Socket` under which Node keeps a socket's own read buffer and its callback
 * (what `net.connect({ onread })` sets): an accepted socket gets them only here, found by their
 * names on a socket made with `onread`. `undefined` when this Node keeps them otherwise: the front
 * door then hands every connection to Node's HTTP server (the proxy works as before, slower).
 */
const userBuffer = (() => {
  // `onread` is taken by the constructor too (its types list it only for `connect`).
  const probe = new net.Socket({
    onread: { buffer: Buffer.alloc(1), callback: () => true },
  } as net.SocketConstructorOpts);
  const symbols = Object.getOwnPropertySymbols(probe);
  const find = (name: string) => symbols.find((s) => s.description === name);
  const buffer = find('kBuffer');
  const callback = find('kBufferCb');
  const generator = find('kBufferGen');
  probe.destroy();
  if (!buffer || !callback || !generator) return undefined;
  return { buffer, callback, generator };
})();

/** Whether this Node lets the front door read sockets into its own buffers (preview-front.test.ts). */
export const FRONT_DOOR_AVAILABLE = userBuffer !== undefined;

interface ReadableHandle {
  useUserBuffer(buf: Uint8Array): void;
}

/**
 * Takes `server`'s connections: its own connection listener (Node's HTTP parser) is kept for the
 * connections, and requests, the front door does not serve. `closeIdleConnections` and
 * `closeAllConnections` cover the connections served here too.
 */
export function installPreviewFront(server: http.Server, o: PreviewFrontOptions): void {
  if (!FRONT_DOOR_AVAILABLE) return;
  const listeners = server.listeners('connection') as ((socket: Socket) => void)[];
  const [nodeConnection] = listeners;
  if (listeners.length !== 1 || !nodeConnection) return;
  server.removeListener('connection', nodeConnection);
  const open = new Set<FrontConnection>();
  const front: Front = {
    o,
    server,
    open,
    handOver: (socket) => nodeConnection.call(server, socket),
  };
  server.on('connection', (socket: Socket) => new FrontConnection(socket, front).start());
  const closeIdle = server.closeIdleConnections.bind(server);
  const closeAll = server.closeAllConnections.bind(server);
  server.closeIdleConnections = () => {
    closeIdle();
    for (const c of open) if (c.idle) c.socket.destroy();
  };
  server.closeAllConnections = () => {
    closeAll();
    for (const c of open) c.socket.destroy();
  };
}

interface Front {
  o: PreviewFrontOptions;
  server: http.Server;
  open: Set<FrontConnection>;
  handOver(socket: Socket): void;
}

/** One client connection while the front door serves it. */
class FrontConnection {
  /** Bytes read and not yet used: the start of the next request. */
  pending: Buffer = EMPTY;
  /** Reading into our own buffers (from the start, for good; else Node's 'data' events). */
  private own = false;
  /** A request was served here: the wait for the next head is a kept connection's. */
  private served = false;
  /** Waiting for a request head, nothing of it read yet (between requests). */
  idle = true;
  private timer: NodeJS.Timeout | undefined;
  private readonly onData = (c: Buffer) => this.feed(c);
  private readonly onError = () => this.socket.destroy();
  private readonly onClientEnd = () => this.onEnd();
  /** The response being written on the connection, while it is. */
  private response: http.ServerResponse | undefined;
  /**
   * The socket drained: so may the response be. Node's own connection listener forwards a socket's
   * `drain` to the response on it (`res.write` returning false is answered by the response's
   * `drain`, which the preview proxy waits for before reading on from the service); a response
   * made here has no such listener, so without this a relayed chunked or until-close body larger
   * than what the socket took at once stalled for good (the kept-alive request never answered).
   */
  private readonly onDrain = () => {
    const res = this.response;
    if (res && !res.finished && res.writableNeedDrain) res.emit('drain');
  };
  /** Reading a head: set while one is awaited, cleared once it is read. */
  private reading = false;
  /**
   * The handler of reads into our own buffers, valid until it returns; `body`: the read is in the
   * current body's own buffer (else in a buffer shared by every connection: copy what is kept).
   */
  onRead: (view: Buffer, body: boolean) => boolean = () => false;
  /** The current request's body, while it is read. */
  body: RawRequestBody | undefined;
  /** The client ended its side: answer what is in progress, then end. */
  private clientEnded = false;

  constructor(
    readonly socket: Socket,
    private readonly front: Front,
  ) {}

  start(): void {
    this.front.open.add(this);
    this.socket.on('close', () => {
      this.front.open.delete(this);
      clearTimeout(this.timer);
    });
    this.socket.on('error', this.onError);
    this.socket.on('end', this.onClientEnd);
    this.socket.on('drain', this.onDrain);
    // Read into our own buffer from the first byte: a head is copied out of it, and no 64 KiB
    // buffer is allocated for the connection's first read (Node's parser reads into one buffer it
    // keeps, so a socket read in JavaScript would cost more than the parser did).
    const handle = (this.socket as unknown as { _handle?: Partial<ReadableHandle> })._handle;
    if (userBuffer && typeof handle?.useUserBuffer === 'function') this.takeReads();
    else this.socket.on('data', this.onData);
    this.waitForHead();
  }

  /** The buffer the next read goes into: the body's own while one is relayed, else the shared one. */
  nextBuffer = (): Buffer => this.body?.buffer ?? SHARED_READ;

  private waitForHead(): void {
    this.idle = this.pending.length === 0;
    const { headersTimeout, keepAliveTimeout } = this.front.server;
    const ms = this.idle && this.served ? keepAliveTimeout : headersTimeout;
    clearTimeout(this.timer);
    if (ms > 0) this.timer = setTimeout(() => this.socket.destroy(), ms).unref();
    this.reading = true;
    this.onRead = (view) => {
      this.feed(Buffer.from(view));
      return this.reading;
    };
    if (this.pending.length > 0) this.feed(EMPTY);
    if (!this.reading) return;
    // The client ended its side (nothing more will come), or the server is closing (as Node's
    // server does with its own kept connections once a response is written).
    if (this.clientEnded || (this.idle && !this.front.server.listening)) {
      if (this.pending.length === 0) this.socket.end();
      else this.socket.destroy();
      return;
    }
    this.socket.resume();
  }

  /** Bytes of a request head arrived (a copy, or a buffer Node allocated for the read). */
  private feed(c: Buffer): void {
    this.pending = this.pending.length === 0 ? c : Buffer.concat([this.pending, c]);
    if (this.pending.length > 0) this.idle = false;
    const head = parseRequestHead(this.pending);
    if (head === undefined) return;
    this.reading = false;
    clearTimeout(this.timer);
    this.socket.pause();
    const framing = head ? requestFraming(head) : null;
    if (!head || !framing || !this.servable(head)) {
      this.handOver();
      return;
    }
    this.pending = this.pending.subarray(head.length);
    this.serve(head, framing);
  }

  /** Whether the front door serves this request (else Node's HTTP server does). */
  private servable(head: RequestHead): boolean {
    if (head.minor !== 1 || head.method === 'CONNECT') return false;
    const hosts = head.headers.filter(([k]) => k === 'host');
    if (hosts.length !== 1) return false;
    for (const [k] of head.headers) if (k === 'upgrade' || k === 'expect') return false;
    // Served here only when reading into our own buffers (else Node's parser is no worse).
    return this.own && this.front.o.isPreview(hosts[0]?.[1]);
  }

  /** Node's HTTP server takes the connection from here on, the bytes read so far first. */
  private handOver(): void {
    this.front.open.delete(this);
    clearTimeout(this.timer);
    const { socket } = this;
    socket.removeListener('data', this.onData);
    socket.removeListener('error', this.onError);
    socket.removeListener('end', this.onClientEnd);
    socket.removeListener('drain', this.onDrain);
    const rest = socket.read() as Buffer | null;
    const pending = rest ? Buffer.concat([this.pending, rest]) : this.pending;
    this.pending = EMPTY;
    if (this.own && userBuffer) {
      // Node's parser reads the socket itself (it takes the stream's reads in C++); should it
      // give the socket back (a WebSocket upgrade), reads come here again: pass copies on as a
      // socket without our buffer would.
      const s = socket as unknown as Record<symbol, unknown>;
      s[userBuffer.callback] = (n: number, buf: Uint8Array) => socket.push(Buffer.from(buf.subarray(0, n)));
      s[userBuffer.generator] = null;
    }
    if (pending.length > 0) socket.unshift(pending);
    this.front.handOver(socket);
    socket.resume();
  }

  /** Reads go into our buffers, not Node's, for as long as the front door has the connection. */
  private takeReads(): void {
    if (this.own || !userBuffer) return;
    this.own = true;
    const { socket } = this;
    socket.removeListener('data', this.onData);
    const rest = socket.read() as Buffer | null;
    if (rest) this.pending = Buffer.concat([this.pending, rest]);
    const s = socket as unknown as Record<symbol, unknown>;
    s[userBuffer.buffer] = SHARED_READ;
    s[userBuffer.generator] = this.nextBuffer;
    s[userBuffer.callback] = (n: number, buf: Uint8Array) => {
      const view = (buf as Buffer).subarray(0, n);
      return this.onRead(view, buf === this.body?.buffer);
    };
    (socket as unknown as { _handle: ReadableHandle })._handle.useUserBuffer(SHARED_READ);
  }

  private serve(head: RequestHead, framing: RequestFraming): void {
    this.served = true;
    const { socket } = this;
    // Until the body is sent on (or dropped), what arrives waits in `pending`, reading stopped.
    this.onRead = (view) => {
      this.pending = Buffer.concat([this.pending, view]);
      socket.pause();
      return false;
    };
    const req = new http.IncomingMessage(socket);
    req.method = head.method;
    req.url = head.target;
    req.httpVersion = '1.1';
    req.httpVersionMajor = 1;
    req.httpVersionMinor = 1;
    req.headers = nodeHeaders(head.headers);
    req.rawHeaders = head.rawHeaders;
    const keepAlive = !/(?:^|,)\s*close\s*(?:,|$)/i.test(String(req.headers.connection ?? ''));
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = keepAlive;
    res.assignSocket(socket);
    this.response = res;
    const body = new RawRequestBody(this, framing);
    this.body = body;
    req.complete = body.done;
    body.onMalformed = () => {
      // Answered as Node's parser has it answered (the server's `clientError`: a 400 with the
      // API's JSON error), unless the service's answer has begun.
      const err = Object.assign(new Error('malformed chunked request body'), {
        code: 'HPE_INVALID_CHUNK_SIZE',
      });
      if (res.headersSent || !socket.writable || !this.front.server.emit('clientError', err, socket))
        socket.destroy();
    };
    body.onDone = () => {
      req.complete = true;
      this.body = undefined;
      if (responded) this.next();
    };
    let responded = false;
    res.on('finish', () => {
      responded = true;
      this.response = undefined;
      res.detachSocket(socket);
      // What Node's server does once a response is written: its `close` tells the handler the
      // exchange is over (the proxy closes the service's connection on it).
      process.nextTick(() => {
        res.destroyed = true;
        res.emit('close');
      });
      const closing = !keepAlive || /close/i.test(String(res.getHeader('connection') ?? ''));
      if (closing) {
        // Said `connection: close` (an error before the body was read, or the client asked).
        socket.destroySoon();
        return;
      }
      if (body.done) this.next();
      else body.discard();
    });
    this.front.o.serve(req, res, body);
  }

  /** The exchange is over: the next request's head (maybe already read). */
  private next(): void {
    if (this.socket.destroyed) return;
    this.waitForHead();
  }

  private onEnd(): void {
    this.clientEnded = true;
    if (this.body && !this.body.done) {
      // An upload cut by the client: the service's connection closes with it.
      this.socket.destroy();
      return;
    }
    if (this.idle) this.socket.end();
  }
}

/** The headers object of `IncomingMessage`, from a head's lines, joined as Node joins them. */
function nodeHeaders(lines: [string, string][]): http.IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of lines) {
    const had = out[k];
    if (k === 'set-cookie') out[k] = [...((had as string[] | undefined) ?? []), v];
    else if (had === undefined) out[k] = v;
    else if (k === 'cookie') out[k] = `${had}; ${v}`;
    else if (!FIRST_WINS.has(k)) out[k] = `${had}, ${v}`;
  }
  return out;
}

/**
 * Headers of which Node keeps the first when repeated (`IncomingMessage`'s list), in requests and
 * responses alike.
 */
export const FIRST_WINS = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/**
 * A request body read by the front door from the client's socket. Held (not read) until `pipe`
 * names where it goes; a body of known length then goes onto that socket as it was read, from the
 * body's own read buffer, the next read waiting until that write is flushed (no allocation per
 * read); a chunked body goes as chunks of our own (the client's chunks read by `ChunkedReader`,
 * copied). `discard` reads the rest and drops it.
 */
export class RawRequestBody {
  /** The read buffer of this body (reads of the length, while it is relayed). */
  buffer: Buffer | undefined;
  done: boolean;
  /** Called once, when the body has been read to its end. */
  onDone: () => void = () => undefined;
  /** Called when the body's chunked framing is broken: the connection cannot be read on. */
  onMalformed: () => void = () => this.conn.socket.destroy();
  readonly chunked: boolean;
  private left: number;
  private readonly reader: ChunkedReader | undefined;
  private sink: Socket | 'discard' | undefined;

  constructor(
    private readonly conn: FrontConnection,
    framing: RequestFraming,
  ) {
    this.chunked = framing.kind === 'chunked';
    this.left = framing.kind === 'length' ? framing.bytes : 0;
    this.reader = this.chunked ? new ChunkedReader() : undefined;
    this.done = framing.kind === 'none';
    // A body of known length larger than a read gets a read buffer of its own (garbage once the
    // body is read: one buffer per body, not per connection, so idle connections hold none).
    if (framing.kind === 'length' && framing.bytes > SHARED_READ.length)
      this.buffer = Buffer.allocUnsafeSlow(BODY_READ_BYTES);
  }

  /** Sends the body onto `socket` (the service's connection), with backpressure. */
  pipe(socket: Socket): void {
    if (this.sink !== undefined) return;
    this.sink = socket;
    this.start();
  }

  /** Reads the rest of the body and drops it (the response was written first). */
  discard(): void {
    const started = this.sink !== undefined;
    this.sink = 'discard';
    if (!started) this.start();
    else if (!this.done) this.conn.socket.resume();
  }

  private start(): void {
    if (this.done) {
      this.finish();
      return;
    }
    this.conn.onRead = (view, body) => this.onRead(view, body);
    const pending = this.conn.pending;
    this.conn.pending = EMPTY;
    if (pending.length > 0 && !this.onRead(pending, false)) return;
    if (!this.done) this.conn.socket.resume();
  }

  /**
   * A read: its body bytes go to the sink, what follows the body is kept for the next request.
   * `view`: in the body's own read buffer, which must not be read into again before the write is
   * flushed; else a buffer that may be reused at once (written as a copy) or one of our own
   * (`pending`). Returns whether reading goes on now.
   */
  private onRead(buf: Buffer, view: boolean): boolean {
    const sink = this.sink;
    let used: number;
    let more = true;
    if (this.reader) {
      const pieces: Buffer[] = [];
      try {
        used = this.reader.feed(buf, (piece) => pieces.push(piece));
      } catch {
        // A malformed chunked body: the connection cannot be read on.
        this.onMalformed();
        return false;
      }
      if (sink !== 'discard' && sink !== undefined) {
        sink.cork();
        for (const p of pieces) {
          relayed.add(p.length);
          sink.write(`${p.length.toString(16)}\r\n`, 'latin1');
          sink.write(Buffer.from(p));
          sink.write('\r\n', 'latin1');
        }
        if (this.reader.done) sink.write('0\r\n\r\n', 'latin1');
        sink.uncork();
        if (sink.writableLength >= QUEUED_BYTES) more = this.waitForDrain(sink);
      }
      if (this.reader.done) this.done = true;
    } else {
      used = Math.min(this.left, buf.length);
      this.left -= used;
      if (this.left === 0) this.done = true;
      if (sink !== 'discard' && sink !== undefined && used > 0) {
        const piece = buf.subarray(0, used);
        if (view) {
          sink.write(piece, this.flushed);
          more = sink.writableLength === 0;
          if (!more) this.conn.socket.pause();
        } else {
          relayed.add(used);
          sink.write(Buffer.from(piece));
          if (sink.writableLength >= QUEUED_BYTES) more = this.waitForDrain(sink);
        }
      }
    }
    if (used < buf.length) this.conn.pending = Buffer.from(buf.subarray(used));
    if (this.done) {
      this.conn.socket.pause();
      this.finish();
      return false;
    }
    return more;
  }

  private waitForDrain(sink: Socket): boolean {
    this.conn.socket.pause();
    sink.once('drain', () => {
      if (!this.done && this.sink === sink) this.conn.socket.resume();
    });
    return false;
  }

  /** A view of the body's buffer went out: read again. */
  private readonly flushed = () => {
    if (!this.done && typeof this.sink === 'object') this.conn.socket.resume();
  };

  private finish(): void {
    this.conn.onRead = () => false;
    this.onDone();
  }
}
