/**
 * The reference proxy: a minimal Node reverse proxy that the network bench runs on the host beside
 * the preview proxy, as the text of the script and the function that starts it.
 */
import { spawn } from 'node:child_process';
import { firstLine } from '../lib.mjs';
import { SERVICE_PORT } from './service.mjs';
import { MARK, S } from './state.mjs';

/**
 * A minimal reverse proxy on the host, in its own process (own event loop, like the server): what
 * one Node hop costs without anything of ours. Three listeners on 127.0.0.1: `fresh` connects to
 * the machine for every request the way the preview proxy does (from the preview source address,
 * awaited, then `http.request` on that socket; hop-by-hop headers dropped), `pooled` the same
 * with a keep-alive upstream connection (an `http.Agent`), `relay` copies bytes between the
 * client's connection and one upstream connection opened for it, no HTTP parsing at all (what the
 * preview proxy does for a WebSocket after the handshake): the floor for a proxy in Node.
 * argv: mark, machine address, preview source address, port.
 */
const REFERENCE_PROXY = `'use strict';
const http = require('node:http');
const net = require('node:net');
const [, , machineAddr, sourceAddr, portText] = process.argv;
const port = Number(portText);
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const pool = new http.Agent({ keepAlive: true, maxSockets: 8, localAddress: sourceAddr });
function forward(req, res, upstreamOpts) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
  const up = http.request({ ...upstreamOpts, method: req.method, path: req.url, headers });
  up.on('response', (r) => {
    const h = {};
    for (const [k, v] of Object.entries(r.headers)) if (!HOP.has(k)) h[k] = v;
    res.writeHead(r.statusCode, h);
    r.pipe(res);
  });
  up.on('error', (err) => { if (!res.headersSent) res.writeHead(502); res.end(String(err)); });
  req.pipe(up);
}
const fresh = http.createServer((req, res) => {
  const s = net.connect({ host: machineAddr, port, localAddress: sourceAddr, noDelay: true });
  s.once('error', (err) => { res.writeHead(502); res.end(String(err)); });
  s.once('connect', () => {
    forward(req, res, { createConnection: () => s });
    res.on('close', () => s.destroy());
  });
});
const pooled = http.createServer((req, res) =>
  forward(req, res, { host: machineAddr, port, localAddress: sourceAddr, agent: pool }));
for (const s of [fresh, pooled]) { s.keepAliveTimeout = 600000; s.headersTimeout = 610000; s.requestTimeout = 0; }
const relay = net.createServer((c) => {
  c.setNoDelay(true);
  const s = net.connect({ host: machineAddr, port, localAddress: sourceAddr, noDelay: true });
  const cut = () => { c.destroy(); s.destroy(); };
  c.on('error', cut);
  s.on('error', cut);
  c.on('close', () => s.destroy());
  c.pipe(s);
  s.pipe(c);
});
let up = 0;
const ready = () => {
  if (++up < 3) return;
  const ports = { fresh: fresh.address().port, pooled: pooled.address().port, relay: relay.address().port };
  process.stdout.write(JSON.stringify(ports) + '\\n');
};
fresh.listen(0, '127.0.0.1', ready);
pooled.listen(0, '127.0.0.1', ready);
relay.listen(0, '127.0.0.1', ready);
`;

/** Starts the reference proxy (its own node process, the bench's mark in its command line). */
export async function startReferenceProxy(machineAddr, previewAddr) {
  const child = spawn(
    process.execPath,
    ['-e', REFERENCE_PROXY, MARK, machineAddr, previewAddr, String(SERVICE_PORT)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  S.children.add(child);
  S.reference = { child, ...JSON.parse(await firstLine(child, 'reference proxy')) };
}
