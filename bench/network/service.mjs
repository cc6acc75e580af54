/**
 * What runs in the network bench's machine: an HTTP service, as the text of a Node script that
 * the bench writes into the machine and starts there.
 */

import { MiB } from '../lib.mjs';

/** The service's port in the machine. */
export const SERVICE_PORT = 8000;
/** What the bench uploads and the service sends: one preallocated chunk, written again and again. */
export const CHUNK_BYTES = MiB;

/**
 * The service in the machine (Node, CommonJS; run by the agent's own binary): `/small` answers
 * `ok <pid> <tag>` (so every answer proves it is the same process, across pauses and
 * hibernations), `/big?bytes=N` streams N bytes from one preallocated 1 MiB chunk with
 * backpressure, `POST /upload` counts what it receives and discards it. Keep-alive stays open
 * far longer than the bench runs. One chunk, not a 256 MiB buffer: the machine's memory stays
 * small, so the hibernation image (and the wake from it) is not a 256 MiB buffer's.
 */
export const serviceScript = (tag) => `'use strict';
const http = require('node:http');
const SMALL = Buffer.from('ok ' + process.pid + ' ${tag}\\n');
const CHUNK = Buffer.alloc(${CHUNK_BYTES}, 0x78);
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://service');
  if (req.method === 'GET' && u.pathname === '/small') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': SMALL.length });
    res.end(SMALL);
  } else if (req.method === 'GET' && u.pathname === '/big') {
    let left = Number(u.searchParams.get('bytes'));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left });
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return res.once('drain', pump);
      }
      res.end();
    };
    pump();
  } else if (req.method === 'POST' && u.pathname === '/upload') {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => {
      const body = Buffer.from(JSON.stringify({ received: n }));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  } else {
    res.writeHead(404, { 'content-length': 0 });
    res.end();
  }
});
server.keepAliveTimeout = 600000;
server.headersTimeout = 610000;
server.requestTimeout = 0;
server.listen(${SERVICE_PORT}, '0.0.0.0');
`;
