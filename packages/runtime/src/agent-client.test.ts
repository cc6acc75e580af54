/**
 * AgentClient's pinned socket fd (no root, no machine: a Unix socket server of the test's own).
 * A path handed out by `hold` stays valid until released, even after the client is closed: its
 * fd number is not closed (and so not reused for another file) while a connect may still come.
 */
import assert from 'node:assert/strict';
import { fstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_ROUTES } from '@nullspace/protocol';
import { AgentClient } from './agent-client.js';

let dir: string;
let socketPath: string;
let server: http.Server;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ns-agent-client-'));
  socketPath = join(dir, 'agent.sock');
  server = http.createServer((req, res) => {
    const body = JSON.stringify(req.url === AGENT_ROUTES.health ? { ok: true } : { path: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});
after(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/** GET `path` through `socketPath` (no pool): the answer's JSON. */
function get(through: string, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: through, path, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      })
      .on('error', reject);
  });
}

const fdOf = (path: string) => Number(path.slice('/proc/self/fd/'.length));

describe('AgentClient', () => {
  it('connects through the pinned inode of its socket', async () => {
    const client = new AgentClient(socketPath);
    try {
      assert.deepEqual(await client.health(), { ok: true });
      const held = client.hold();
      assert.equal(fstatSync(fdOf(held.path)).ino, statSync(socketPath).ino);
      held.release();
    } finally {
      client.close();
    }
  });

  it('keeps a held fd open after close, and closes it at the last release', async () => {
    const client = new AgentClient(socketPath);
    const a = client.hold();
    const b = client.hold();
    assert.equal(a.path, b.path, 'one pin');
    client.close();
    // Closed, but a connect is still to come through `a`: its fd is the socket's, not reused.
    assert.equal(fstatSync(fdOf(a.path)).ino, statSync(socketPath).ino);
    assert.deepEqual(await get(a.path, '/after-close'), { path: '/after-close' });
    a.release();
    a.release(); // a second release does nothing: `b` still holds it
    assert.equal(fstatSync(fdOf(b.path)).ino, statSync(socketPath).ino);
    b.release();
    assert.throws(() => fstatSync(fdOf(b.path)), /EBADF/, 'closed once nobody holds it');
  });

  it('pins again after close, on a new fd while the old one is held', async () => {
    const client = new AgentClient(socketPath);
    const old = client.hold();
    client.close();
    const fresh = client.hold();
    try {
      assert.notEqual(fresh.path, old.path);
      assert.deepEqual(await client.request('GET', '/again', undefined), { path: '/again' });
    } finally {
      old.release();
      fresh.release();
      client.close();
    }
  });
});
