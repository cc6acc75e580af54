/**
 * Issue 5, preview URLs: HTTP and WebSocket services in real machines reached through the server's
 * preview proxy (127.0.0.1, Host `PORT-MACHINE.preview.localhost:PORT`), grants checked, revoked and
 * expired, auto-resume of paused and hibernated machines, and the 503 when it is off.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type PreviewUrlInfo, redactPreviewToken, redactPreviewUrl } from '@nullspace/protocol';
import { Machine } from '@nullspace/sdk';
import WebSocket from 'ws';
import { api, describeWithServer } from './harness.js';

/** In the machine: an HTTP service that describes the request it got, and a WebSocket echo. */
const SERVICE = String.raw`
import http.server, socketserver, json, sys, base64, hashlib, socket, threading, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def reply(self, body):
        self.send_response(200); self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_HEAD(self):
        self.send_response(200); self.send_header('content-type', 'text/plain')
        self.send_header('content-length', '12345'); self.end_headers()
    def do_GET(self):
        h = self.headers
        if self.path.startswith('/chunked'):
            self.send_response(200); self.send_header('transfer-encoding', 'chunked'); self.send_header('trailer', 'x-sum')
            self.end_headers()
            for part in [b'alpha-', b'b' * 70000, b'-omega']:
                self.wfile.write(b'%x;ext=1\r\n' % len(part) + part + b'\r\n'); self.wfile.flush()
            self.wfile.write(b'0\r\nx-sum: 1\r\n\r\n'); return
        if self.path.startswith('/until-close'):
            self.send_response(200); self.send_header('content-type', 'text/plain'); self.end_headers()
            self.wfile.write(b'no length, '); self.wfile.flush(); self.wfile.write(b'ends with the connection')
            self.close_connection = True; return
        if self.path.startswith('/big'):
            n = int(self.path.split('=')[1]); block = bytes(range(256)) * 4096
            self.send_response(200); self.send_header('content-length', str(n)); self.end_headers()
            while n > 0:
                self.wfile.write(block[:n]); n -= min(n, len(block))
            return
        if self.path.startswith('/endless'):
            self.send_response(200); self.send_header('content-length', str(1 << 40)); self.end_headers()
            try:
                while True:
                    self.wfile.write(b'x' * 65536); self.wfile.flush(); time.sleep(0.05)
            except OSError:
                return
        self.reply(json.dumps({'path': self.path, 'host': h.get('host'), 'cookie': h.get('cookie'),
            'token_header': h.get('x-nullspace-preview-token'), 'forwarded_host': h.get('x-forwarded-host')}).encode())
    def do_POST(self):
        if self.headers.get('transfer-encoding', '').lower() == 'chunked':
            data = b''
            while True:
                size = int(self.rfile.readline().split(b';')[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''): pass
                    break
                data += self.rfile.read(size); self.rfile.readline()
            n = len(data)
        else:
            n = int(self.headers.get('content-length', '0')); data = self.rfile.read(n)
        self.reply(json.dumps({'received': n, 'sha': hashlib.sha256(data).hexdigest()}).encode())
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True; allow_reuse_address = True
def ws(c):
    data = b''
    while b'\r\n\r\n' not in data:
        d = c.recv(4096)
        if not d: return
        data += d
    head, buf = data.split(b'\r\n\r\n', 1)
    key = [l.split(b':', 1)[1].strip() for l in head.split(b'\r\n') if l.lower().startswith(b'sec-websocket-key')][0]
    acc = base64.b64encode(hashlib.sha1(key + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest())
    c.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + acc + b'\r\n\r\n')
    def need(n):
        nonlocal buf
        while len(buf) < n:
            d = c.recv(65536)
            if not d: raise EOFError
            buf += d
        out, buf = buf[:n], buf[n:]
        return out
    try:
        while True:
            b1, b2 = need(2); op = b1 & 15; ln = b2 & 127
            if ln == 126: ln = int.from_bytes(need(2), 'big')
            elif ln == 127: ln = int.from_bytes(need(8), 'big')
            mask = need(4) if b2 & 128 else b'\0\0\0\0'
            p = bytes(x ^ mask[i % 4] for i, x in enumerate(need(ln)))
            if op == 8: c.sendall(b'\x88\x00'); return
            size = bytes([ln]) if ln < 126 else bytes([126]) + ln.to_bytes(2, 'big')
            c.sendall(bytes([0x80 | op]) + size + p)
    except EOFError:
        pass
def ws_server(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port)); s.listen()
    while True:
        c, _ = s.accept(); threading.Thread(target=ws, args=(c,), daemon=True).start()
threading.Thread(target=ws_server, args=(8765,), daemon=True).start()
threading.Thread(target=lambda: S(('127.0.0.1', 8001), H).serve_forever(), daemon=True).start()
S(('0.0.0.0', 8000), H).serve_forever()
`;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describeWithServer('preview URLs (real machines, the server as proxy)', (ctx) => {
  const port = () => Number(new URL(ctx.server.url).port);
  const previewHost = (id: string, p: number) => `${p}-${id}.preview.localhost:${port()}`;

  /** A request to the preview host of `p` on machine `id`, sent to the server on 127.0.0.1. */
  function request(
    id: string,
    p: number,
    o: { path?: string; headers?: Record<string, string>; method?: string; body?: Buffer } = {},
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: port(),
          method: o.method ?? 'GET',
          path: o.path ?? '/',
          headers: { host: previewHost(id, p), ...o.headers },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString(),
            }),
          );
        },
      );
      req.on('error', reject);
      // A guard, not a measure: a hung connection fails the test instead of stalling it.
      req.setTimeout(60_000, () => req.destroy(new Error('no answer in 60 s')));
      req.end(o.body);
    });
  }

  const grant = (id: string, p: number, expiresIn?: number) =>
    api(ctx.server, 'POST', `/v1/machines/${id}/preview_urls`, {
      port: p,
      ...(expiresIn ? { expires_in: expiresIn } : {}),
    }) as Promise<PreviewUrlInfo>;

  async function startService(m: Machine): Promise<void> {
    await m.files.write('/srv/service.py', SERVICE);
    await m.commands.run('python3 /srv/service.py >/tmp/service.log 2>&1 &', { background: true });
    await api(ctx.server, 'POST', `/v1/machines/${m.id}/ports/8000/wait`, { timeout_ms: 20_000 });
  }

  async function connectWs(id: string, p: number, headers: Record<string, string>): Promise<WebSocket> {
    const ws = new WebSocket(`ws://127.0.0.1:${port()}/echo`, {
      headers: { host: previewHost(id, p), ...headers },
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return ws;
  }
  const echo = (ws: WebSocket, text: string) =>
    new Promise<string>((resolve) => {
      ws.once('message', (d) => resolve(String(d)));
      ws.send(text);
    });

  it('reaches HTTP and WebSocket services, loopback-only ones too, with a grant and only with one', async () => {
    await using m = await Machine.create(ctx.server.conn);
    await startService(m);
    const g = await grant(m.id, 8000);
    assert.equal(g.host, previewHost(m.id, 8000));
    assert.match(g.url, new RegExp(`^http://${g.host.replace(/\./g, '\\.')}/\\?ns_token=nspv_`));
    // ns_token once: the service never sees it, the response sets the cookie that carries it on.
    const first = await request(m.id, 8000, { path: `/a/b?x=1&ns_token=${g.token}` });
    assert.equal(first.status, 200, first.body);
    const seen = JSON.parse(first.body) as Record<string, string | null>;
    assert.equal(seen.path, '/a/b?x=1');
    assert.equal(seen.host, previewHost(m.id, 8000));
    const cookie = String(first.headers['set-cookie']?.[0]).split(';')[0] as string;
    assert.equal(cookie, `nullspace_preview_token=${g.token}`);
    const byCookie = await request(m.id, 8000, { headers: { cookie: `${cookie}; theme=dark` } });
    assert.equal(byCookie.status, 200);
    assert.equal((JSON.parse(byCookie.body) as { cookie: string }).cookie, 'theme=dark');
    const byHeader = await request(m.id, 8000, { headers: { 'x-nullspace-preview-token': g.token } });
    assert.equal((JSON.parse(byHeader.body) as { token_header: null }).token_header, null);
    // Bodies stream both ways, bytes intact.
    const payload = Buffer.alloc(3 * 1024 * 1024, 7);
    const posted = await request(m.id, 8000, {
      method: 'POST',
      body: payload,
      headers: { 'x-nullspace-preview-token': g.token, 'content-length': String(payload.length) },
    });
    assert.equal((JSON.parse(posted.body) as { received: number }).received, payload.length);
    // A service listening on 127.0.0.1 only.
    const local = await grant(m.id, 8001);
    const loopback = await request(m.id, 8001, { headers: { 'x-nullspace-preview-token': local.token } });
    assert.equal(loopback.status, 200, loopback.body);
    // WebSocket echo.
    const wsGrant = await grant(m.id, 8765);
    const ws = await connectWs(m.id, 8765, { 'x-nullspace-preview-token': wsGrant.token });
    assert.equal(await echo(ws, 'hello through the proxy'), 'hello through the proxy');
    ws.close();
    // Refused: no grant, a grant for another port, a made-up token, a grant in the wrong header.
    assert.equal((await request(m.id, 8000)).status, 401);
    assert.equal(
      (await request(m.id, 8000, { headers: { 'x-nullspace-preview-token': local.token } })).status,
      403,
    );
    assert.equal((await request(m.id, 8000, { path: '/?ns_token=nspv_madeup' })).status, 403);
    await assert.rejects(connectWs(m.id, 8765, {}), /HTTP 401/);
    // The token is in no server log line.
    await sleep(100);
    assert.ok(!ctx.server.logs().includes(g.token), 'a preview token was logged');
  });

  it('relays every body framing both ways on kept-alive connections, and revocation cuts an open HTTP stream', async () => {
    await using m = await Machine.create(ctx.server.conn);
    await startService(m);
    const g = await grant(m.id, 8000);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const reused: boolean[] = [];
    /** A request on the kept-alive connection; `chunks`: a body sent chunked (no length). */
    const send = (path: string, o: { method?: string; chunks?: Buffer[]; body?: Buffer } = {}) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; complete: boolean }>(
        (resolve, reject) => {
          const req = http.request(
            {
              host: '127.0.0.1',
              port: port(),
              method: o.method ?? 'GET',
              path,
              agent,
              headers: {
                host: previewHost(m.id, 8000),
                'x-nullspace-preview-token': g.token,
                ...(o.body ? { 'content-length': String(o.body.length) } : {}),
              },
            },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () =>
                resolve({
                  status: res.statusCode ?? 0,
                  headers: res.headers,
                  body: Buffer.concat(chunks),
                  complete: res.complete,
                }),
              );
            },
          );
          req.on('socket', () => reused.push(req.reusedSocket));
          req.on('error', reject);
          req.setTimeout(60_000, () => req.destroy(new Error('no answer in 60 s')));
          for (const c of o.chunks ?? []) req.write(c);
          req.end(o.body);
        },
      );
    try {
      // A body of known length, larger than any buffer on the way: every byte in order.
      const n = 5 * 1024 * 1024 + 17;
      const big = await send(`/big?n=${n}`);
      assert.equal(big.status, 200);
      assert.equal(big.headers['content-length'], String(n));
      assert.ok(
        big.body.equals(Buffer.from(Array.from({ length: n }, (_, i) => i % 256))),
        'the body changed on the way',
      );
      // A chunked answer (chunk extensions, a trailer): the same bytes.
      const chunked = await send('/chunked');
      assert.equal(chunked.body.toString(), `alpha-${'b'.repeat(70000)}-omega`);
      // HEAD: the length of the body that is not sent.
      const head = await send('/', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], '12345');
      assert.equal(head.body.length, 0);
      // An answer that ends with the service's connection.
      const untilClose = await send('/until-close');
      assert.equal(untilClose.body.toString(), 'no length, ends with the connection');
      // Request bodies: chunked (no length) and of known length, each larger than the 8 MiB after
      // which the proxy collects the young generation (young-gc.ts) while the body is relayed.
      const patterned = Buffer.from(Array.from({ length: 9 * 1024 * 1024 + 5 }, (_, i) => (i * 7) % 251));
      const parts = [Buffer.alloc(100_000, 1), Buffer.alloc(1, 2), patterned];
      const all = Buffer.concat(parts);
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      const upChunked = JSON.parse((await send('/up', { method: 'POST', chunks: parts })).body.toString());
      assert.deepEqual(upChunked, { received: all.length, sha: sha(all) });
      const upLength = JSON.parse((await send('/up', { method: 'POST', body: all })).body.toString());
      assert.deepEqual(upLength, { received: all.length, sha: sha(all) });
      // All of it on one connection to the server.
      assert.deepEqual(reused, [false, true, true, true, true, true]);
    } finally {
      agent.destroy();
    }
    // Revoking the grant cuts a response that is still streaming.
    const stream = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.get(
        {
          host: '127.0.0.1',
          port: port(),
          path: '/endless',
          agent: false,
          headers: { host: previewHost(m.id, 8000), 'x-nullspace-preview-token': g.token },
        },
        resolve,
      );
      req.on('error', reject);
    });
    let received = 0;
    const ended = new Promise<void>((resolve) => stream.on('close', () => resolve()));
    stream.on('error', () => undefined);
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.on('data', (c: Buffer) => {
      received += c.length;
    });
    const revoked = (await api(ctx.server, 'DELETE', `/v1/machines/${m.id}/preview_urls/${g.id}`)) as {
      closed_connections: number;
    };
    assert.equal(revoked.closed_connections, 1);
    await ended;
    assert.equal(stream.complete, false);
    assert.ok(received < 2 ** 40);
  });

  it('reads preview requests itself: uploads pipelined with other requests and an API request on one connection; a cut upload frees its connection', async () => {
    await using m = await Machine.create(ctx.server.conn);
    await startService(m);
    const g = await grant(m.id, 8000);
    const token = `x-nullspace-preview-token: ${g.token}\r\n`;
    const host = `Host: ${previewHost(m.id, 8000)}\r\n`;
    /** A raw connection to the server and its responses in order (each of known length). */
    const open = () => {
      const socket = net.connect(port(), '127.0.0.1');
      let buf = Buffer.alloc(0);
      let wake = () => {};
      socket.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        wake();
      });
      socket.on('close', () => wake());
      socket.on('error', () => undefined);
      const next = async (): Promise<{ status: number; body: string }> => {
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          const length = /\r\ncontent-length: *(\d+)/i.exec(buf.toString('latin1', 0, Math.max(end, 0)));
          if (end >= 0 && length && buf.length >= end + 4 + Number(length[1])) {
            const status = Number(buf.toString('latin1', 9, 12));
            const body = buf.toString('utf8', end + 4, end + 4 + Number(length[1]));
            buf = buf.subarray(end + 4 + Number(length[1]));
            return { status, body };
          }
          if (socket.destroyed) throw new Error(`closed; unread: ${buf.toString('latin1').slice(0, 300)}`);
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      };
      return { socket, next };
    };
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const upload = Buffer.from(Array.from({ length: 8 * 1024 * 1024 + 3 }, (_, i) => (i * 11) % 253));
    const small = Buffer.from('a chunked body');
    const c = open();
    // One write: an upload of known length, a GET, an API request (Node's parser takes the
    // connection from there), and a chunked upload after it.
    c.socket.write(
      Buffer.concat([
        Buffer.from(`POST /up HTTP/1.1\r\n${host}${token}content-length: ${upload.length}\r\n\r\n`),
        upload,
        Buffer.from(`GET /after HTTP/1.1\r\n${host}${token}\r\n`),
        Buffer.from(
          `GET /v1/machines/${m.id} HTTP/1.1\r\nHost: 127.0.0.1:${port()}\r\nauthorization: Bearer ${ctx.server.apiKey}\r\n\r\n`,
        ),
        Buffer.from(`POST /up HTTP/1.1\r\n${host}${token}transfer-encoding: chunked\r\n\r\n`),
        Buffer.from(`${small.length.toString(16)}\r\n${small}\r\n0\r\n\r\n`),
      ]),
    );
    const up = await c.next();
    assert.equal(up.status, 200, up.body);
    assert.deepEqual(JSON.parse(up.body), { received: upload.length, sha: sha(upload) });
    assert.equal((JSON.parse((await c.next()).body) as { path: string }).path, '/after');
    const info = await c.next();
    assert.equal(info.status, 200, info.body);
    assert.equal((JSON.parse(info.body) as { id: string }).id, m.id);
    assert.deepEqual(JSON.parse((await c.next()).body), { received: small.length, sha: sha(small) });
    c.socket.destroy();
    // The first two were read by the front door, the last (after the API request) by Node's parser.
    await sleep(100);
    const lines = ctx.server
      .logs()
      .split('\n')
      .filter((l) => l.includes(`"preview_machine_id":"${m.id}"`));
    assert.equal(lines.filter((l) => l.includes('"front_door":true')).length, 2, lines.join('\n'));
    assert.equal(lines.length, 3, lines.join('\n'));

    // An upload cut mid-way: the service's connection closes and the grant tracks none.
    const cutGrant = await grant(m.id, 8000);
    const d = open();
    d.socket.write(
      `POST /up HTTP/1.1\r\n${host}x-nullspace-preview-token: ${cutGrant.token}\r\ncontent-length: ${256 * 1024 * 1024}\r\n\r\n`,
    );
    d.socket.write(Buffer.alloc(4 * 1024 * 1024, 1));
    /** Established connections to the service's port, counted in the machine. */
    const established = async () =>
      Number(
        (
          await m.commands.run(
            `python3 -c "print(sum(1 for l in open('/proc/net/tcp').readlines()[1:] if l.split()[1].endswith(':1F40') and l.split()[3] == '01'))"`,
          )
        ).stdout.trim(),
      );
    for (let i = 0; i < 100 && (await established()) === 0; i++) await sleep(50);
    assert.equal(await established(), 1, 'the upload never reached the service');
    d.socket.destroy();
    for (let i = 0; i < 100 && (await established()) > 0; i++) await sleep(50);
    assert.equal(await established(), 0, 'the cut upload left its service connection open');
    const revoked = (await api(ctx.server, 'DELETE', `/v1/machines/${m.id}/preview_urls/${cutGrant.id}`)) as {
      closed_connections: number;
    };
    assert.equal(revoked.closed_connections, 0);
  });

  it('revocation closes open WebSockets at once and refuses the grant from then on; expired grants are refused', async () => {
    await using m = await Machine.create(ctx.server.conn);
    await startService(m);
    const g = await grant(m.id, 8765);
    const ws = await connectWs(m.id, 8765, { 'x-nullspace-preview-token': g.token });
    assert.equal(await echo(ws, 'before'), 'before');
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    const listed = (await api(ctx.server, 'GET', `/v1/machines/${m.id}/preview_urls?port=8765`)) as {
      items: { id: string; token_hint: string }[];
    };
    assert.deepEqual(
      listed.items.map((i) => i.id),
      [g.id],
    );
    assert.equal(listed.items[0]?.token_hint, redactPreviewToken(g.token));
    const revoked = (await api(ctx.server, 'DELETE', `/v1/machines/${m.id}/preview_urls/${g.id}`)) as {
      revoked: boolean;
      closed_connections: number;
    };
    assert.equal(revoked.revoked, true);
    assert.equal(revoked.closed_connections, 1);
    await closed;
    await assert.rejects(connectWs(m.id, 8765, { 'x-nullspace-preview-token': g.token }), /HTTP 403/);
    const http8000 = await grant(m.id, 8000);
    await api(ctx.server, 'DELETE', `/v1/machines/${m.id}/preview_urls/${http8000.id}`);
    assert.equal(
      (await request(m.id, 8000, { headers: { 'x-nullspace-preview-token': http8000.token } })).status,
      403,
    );
    const short = await grant(m.id, 8000, 1);
    assert.equal(
      (await request(m.id, 8000, { headers: { 'x-nullspace-preview-token': short.token } })).status,
      200,
    );
    await sleep(1100);
    const expired = await request(m.id, 8000, { headers: { 'x-nullspace-preview-token': short.token } });
    assert.equal(expired.status, 403);
    assert.match(expired.body, /expired/);
  });

  it('mask_request_host, proxy targets and redaction', async () => {
    await using m = await Machine.create({
      ...ctx.server.conn,
      network: { egress: { mode: 'deny_all' }, maskRequestHost: 'localhost:${PORT}' },
    });
    await startService(m);
    const target = (await api(ctx.server, 'POST', `/v1/machines/${m.id}/preview_proxy_targets`, {
      port: 8000,
    })) as {
      upstream_url: string;
      headers: Record<string, string>;
    };
    assert.equal(target.upstream_url, `http://${previewHost(m.id, 8000)}/`);
    assert.ok(!target.upstream_url.includes('nspv_'), 'the upstream URL carries no secret');
    const viaProxy = await request(m.id, 8000, { headers: target.headers });
    assert.equal(viaProxy.status, 200, viaProxy.body);
    const seen = JSON.parse(viaProxy.body) as { host: string; forwarded_host: string };
    assert.equal(seen.host, 'localhost:8000');
    assert.equal(seen.forwarded_host, previewHost(m.id, 8000));
    // A proxy token works only in its own header.
    const token = target.headers['x-nullspace-preview-proxy-token'] as string;
    assert.equal((await request(m.id, 8000, { path: `/?ns_token=${token}` })).status, 403);
    // Redaction keeps a recognisable start and nothing usable.
    const g = await grant(m.id, 8000);
    assert.equal(redactPreviewToken(g.token), `${g.token.slice(0, 9)}***`);
    assert.equal(redactPreviewUrl(g.url), g.url.replace(g.token, `${g.token.slice(0, 9)}***`));
  });

  it('answers every connection across hibernate and resume, and the machine hibernates and resumes again', async () => {
    // CRIU restores the machine namespace's connection tracking table: a new preview connection
    // that reused a restored entry's source port hung (and then kept the machine from resuming).
    await using m = await Machine.create({ ...ctx.server.conn, onTimeout: 'hibernate', autoResume: true });
    await startService(m);
    const g = await grant(m.id, 8000);
    const h = { 'x-nullspace-preview-token': g.token };
    const burst = async (n: number) => {
      const statuses: number[] = [];
      for (let i = 0; i < n; i++) statuses.push((await request(m.id, 8000, { headers: h })).status);
      return statuses.filter((s) => s !== 200);
    };
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(await burst(300), [], `round ${round}, before hibernate`);
      await m.hibernate();
      assert.deepEqual(await burst(300), [], `round ${round}, after the wake`);
      assert.equal((await m.getInfo()).status, 'running');
    }
  });

  it('wakes a paused and a hibernated machine for the first request; 503 + Retry-After: 5 without auto_resume', async () => {
    await using m = await Machine.create({ ...ctx.server.conn, onTimeout: 'pause', autoResume: true });
    await startService(m);
    const g = await grant(m.id, 8000);
    const h = { 'x-nullspace-preview-token': g.token };
    await m.pause();
    const afterPause = await request(m.id, 8000, { headers: h });
    assert.equal(afterPause.status, 200, afterPause.body);
    assert.equal((await m.getInfo()).status, 'running');
    await m.hibernate();
    const afterHibernate = await request(m.id, 8000, { headers: h });
    assert.equal(afterHibernate.status, 200, afterHibernate.body);
    assert.equal((await m.getInfo()).status, 'running');
    // 50 requests at once to a paused machine: all answered, one resume.
    await m.pause();
    const { last_event_id: lastId } = (await api(
      ctx.server,
      'GET',
      `/v1/machines/${m.id}/lifecycle/events`,
    )) as {
      last_event_id: number;
    };
    const replies = await Promise.all(Array.from({ length: 50 }, () => request(m.id, 8000, { headers: h })));
    assert.deepEqual(
      replies.map((r) => r.status),
      Array(50).fill(200),
    );
    const after = (await api(
      ctx.server,
      'GET',
      `/v1/machines/${m.id}/lifecycle/events?after_event_id=${lastId}`,
    )) as {
      events: { type: string; status: string }[];
    };
    const resumes = after.events.filter((e) => e.type === 'status_changed' && e.status === 'resuming');
    assert.equal(resumes.length, 1, JSON.stringify(after.events));

    await using off = await Machine.create({ ...ctx.server.conn, onTimeout: 'pause' });
    await startService(off);
    const g2 = await grant(off.id, 8000);
    await off.pause();
    const refused = await request(off.id, 8000, { headers: { 'x-nullspace-preview-token': g2.token } });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '5');
    assert.equal((await off.getInfo()).status, 'paused');
  });
});
