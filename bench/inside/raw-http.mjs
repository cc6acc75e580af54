/**
 * Raw HTTP for the inside bench, without the SDK: requests to the server's API or straight to a
 * machine's agent on its Unix socket, and a counter of the frames of a streamed response.
 */
import { lstatSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { S } from './state.mjs';

/**
 * Where a raw request goes: the server over TCP (with the API key, keep-alive), or a machine's
 * agent over its Unix socket (what the server itself does: the agent trusts whoever reaches it).
 */
const serverAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const agentAgents = new Map();
export const serverTarget = () => ({
  kind: 'server',
  opts: { host: '127.0.0.1', port: S.server.port, agent: serverAgent },
  headers: { authorization: `Bearer ${S.server.apiKey}` },
  prefix: (machineId) => `/v1/machines/${machineId}`,
});
export function agentTarget(machineId) {
  const socketPath = join(S.dataDir, 'machines', machineId, 'run', 'agent.sock');
  // The socket's directory is writable from inside the machine: connect only to a real socket.
  if (!lstatSync(socketPath).isSocket()) throw new Error(`${socketPath} is not a socket`);
  if (!agentAgents.has(socketPath))
    agentAgents.set(socketPath, new http.Agent({ keepAlive: true, maxSockets: 16 }));
  return {
    kind: 'agent',
    socketPath,
    opts: { socketPath, agent: agentAgents.get(socketPath) },
    headers: {},
    prefix: () => '',
  };
}

/**
 * One raw request with node:http; `onChunk` sees the response body as it arrives (else it is
 * collected). Resolves with the status and, without `onChunk`, the body.
 */
export function rawRequest(target, method, path, { body, headers = {}, onChunk } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
    const req = http.request({
      ...target.opts,
      method,
      path,
      headers: { ...target.headers, ...headers, 'content-length': payload?.length ?? 0 },
    });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks = [];
      const ok = (res.statusCode ?? 500) < 300;
      res.on('data', (c) => {
        if (ok && onChunk) onChunk(c);
        else chunks.push(c);
      });
      res.once('error', reject);
      res.once('end', () => {
        const all = Buffer.concat(chunks);
        if (!ok)
          reject(new Error(`${method} ${path}: HTTP ${res.statusCode} ${all.toString().slice(0, 300)}`));
        else resolve({ status: res.statusCode, body: all });
      });
    });
    req.end(payload);
  });
}

/**
 * Counts the output of an HTTP frame stream (`[kind][u32 length][payload]`) without copying it,
 * whatever the chunking; keeps the (small) event frames, parsed.
 */
export function frameCounter() {
  const head = Buffer.alloc(5);
  let headFill = 0;
  let remaining = 0;
  let kind = -1;
  let eventParts = [];
  const c = { outputBytes: 0, events: [] };
  const endFrame = () => {
    if (kind === 0) c.events.push(JSON.parse(Buffer.concat(eventParts).toString('utf8')));
    eventParts = [];
    headFill = 0;
  };
  c.push = (chunk) => {
    let i = 0;
    while (i < chunk.length) {
      if (headFill < 5) {
        const take = Math.min(5 - headFill, chunk.length - i);
        chunk.copy(head, headFill, i, i + take);
        headFill += take;
        i += take;
        if (headFill === 5) {
          kind = head[0];
          remaining = head.readUInt32BE(1);
          if (remaining === 0) endFrame();
        }
        continue;
      }
      const take = Math.min(remaining, chunk.length - i);
      if (kind === 0) eventParts.push(chunk.subarray(i, i + take));
      else c.outputBytes += take;
      remaining -= take;
      i += take;
      if (remaining === 0) endFrame();
    }
  };
  return c;
}
