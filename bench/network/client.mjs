/**
 * The network bench's HTTP client: one timed request to a target (the preview proxy, the machine's
 * address, a reference proxy), one timed API call, and keep-alive agents.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { CHUNK_BYTES } from './service.mjs';
import { S } from './state.mjs';

/** A latency request without an answer for this long (ms) fails the bench. */
export const REQUEST_TIMEOUT_MS = 10_000;

/**
 * One request with node:http, timed from just before it is created until its response has fully
 * arrived. `agent: false` is a new connection (`Connection: close`); an http.Agent with keep-alive
 * reuses its one. `upload`: that many bytes are sent from one chunk, with backpressure. The body
 * is kept unless `countOnly`. Rejects on an error or a status other than 2xx.
 */
export function send(
  t,
  {
    path = t.path ?? '/small',
    method = 'GET',
    agent = false,
    upload,
    countOnly,
    timeoutMs = REQUEST_TIMEOUT_MS,
  } = {},
) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const headers = { ...t.headers };
    if (upload !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = upload;
    }
    const req = http.request({
      host: t.host,
      port: t.port,
      ...(t.localAddress ? { localAddress: t.localAddress } : {}),
      method,
      path,
      headers,
      agent,
    });
    req.once('error', reject);
    // A request without an answer is an error with its own code, not a bench that hangs.
    req.setTimeout(timeoutMs, () =>
      req.destroy(
        Object.assign(new Error(`${t.name}: ${method} ${path}: no answer within ${timeoutMs} ms`), {
          code: 'NSBENCH_TIMEOUT',
        }),
      ),
    );
    req.once('response', (res) => {
      const chunks = [];
      let bytes = 0;
      const ok = (res.statusCode ?? 500) < 300;
      res.on('data', (c) => {
        bytes += c.length;
        if (!countOnly || !ok) chunks.push(c);
      });
      res.once('error', reject);
      res.once('end', () => {
        const ms = performance.now() - t0;
        const body = Buffer.concat(chunks);
        if (!ok)
          reject(
            new Error(
              `${t.name}: ${method} ${path}: HTTP ${res.statusCode} ${body.toString().slice(0, 300)}`,
            ),
          );
        else resolve({ ms, bytes, body });
      });
    });
    if (upload === undefined) {
      req.end();
      return;
    }
    let left = upload;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!req.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}
const CHUNK = Buffer.alloc(CHUNK_BYTES, 0x79);

/** One JSON API call to the server on a new connection (node:http), timed like `send`. */
export function apiTimed(method, path, body) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body ?? {}));
    const t0 = performance.now();
    const req = http.request({
      host: '127.0.0.1',
      port: S.server.port,
      method,
      path,
      agent: false,
      headers: {
        authorization: `Bearer ${S.server.apiKey}`,
        'content-type': 'application/json',
        'content-length': payload.length,
      },
    });
    req.once('error', reject);
    req.setTimeout(REQUEST_TIMEOUT_MS * 6, () => req.destroy(new Error(`${method} ${path}: no answer`)));
    req.once('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.once('end', () => {
        const ms = performance.now() - t0;
        const text = Buffer.concat(chunks).toString();
        if ((res.statusCode ?? 500) >= 300)
          reject(new Error(`${method} ${path}: HTTP ${res.statusCode} ${text.slice(0, 300)}`));
        else resolve({ ms, json: JSON.parse(text) });
      });
    });
    req.end(payload);
  });
}

/** Keep-alive client agents: one connection each (maxSockets 1), reused request after request. */
export function keepAliveAgent() {
  const a = new http.Agent({ keepAlive: true, maxSockets: 1 });
  S.agents.add(a);
  return a;
}
