import type { ChildProcess } from 'node:child_process';
import { createReadStream, existsSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CodedError, DESKTOP_PORTS, DESKTOP_VIEWER_PAGE, type StreamStatus } from '@nullspace/protocol/core';
import { WebSocketServer } from 'ws';
import { log } from '../log.js';
import { type DesktopSession, startProgram } from './session.js';

/** noVNC's files, copied beside the agent's bundle by scripts/bundle-agent.mjs. */
const NOVNC_DIR = join(dirname(fileURLToPath(import.meta.url)), 'novnc');
const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

/** The viewer page: noVNC's RFB client on the whole window, connected to this port's VNC server. */
function page(viewOnly: boolean): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Nullspace desktop${viewOnly ? ' (view only)' : ''}</title>
<style>html,body{margin:0;height:100%;background:#1e1e1e;overflow:hidden}#screen{width:100%;height:100%}
#status{position:fixed;top:0;right:0;font:12px sans-serif;color:#ccc;background:#0008;padding:2px 6px}</style>
</head><body><div id="screen"></div><div id="status">connecting</div>
<script type="module">
import RFB from './novnc/core/rfb.js';
const status = document.getElementById('status');
const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
const rfb = new RFB(document.getElementById('screen'), scheme + '://' + location.host + '/websockify');
rfb.viewOnly = ${viewOnly};
rfb.scaleViewport = true;
rfb.addEventListener('connect', () => { status.textContent = ${JSON.stringify(viewOnly ? 'view only' : 'connected')}; document.body.dataset.state = 'connected'; });
rfb.addEventListener('disconnect', (e) => { status.textContent = 'disconnected'; document.body.dataset.state = e.detail.clean ? 'closed' : 'failed'; });
window.rfb = rfb;
</script></body></html>`;
}

function waitForPort(port: number, proc: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        if (proc.exitCode !== null || Date.now() > deadline)
          reject(new CodedError('internal', `the VNC server on port ${port} did not start`));
        else setTimeout(attempt, 20);
      });
    };
    attempt();
  });
}

/** One viewer: its VNC server (x11vnc) and the page + WebSocket bridge in front of it. */
class ViewerPort {
  private vnc: ChildProcess | undefined;
  private server: http.Server | undefined;

  constructor(
    private readonly port: number,
    private readonly vncPort: number,
    private readonly viewOnly: boolean,
  ) {}

  get running(): boolean {
    return this.server !== undefined && this.vnc !== undefined && this.vnc.exitCode === null;
  }

  async start(): Promise<void> {
    if (this.running) return;
    await this.stop();
    const args = ['-display', ':0', '-localhost', '-rfbport', String(this.vncPort), '-shared', '-forever'];
    // Not -threads: x11vnc's threaded mode is documented as stable only for some encodings with
    // several clients, and a viewer's WebSocket once went quiet mid-suite; one client here or two
    // gain nothing from it.
    args.push('-nopw', '-quiet', '-noipv6', '-nossl', '-noxdamage');
    if (this.viewOnly) args.push('-viewonly');
    this.vnc = startProgram(`x11vnc-${this.vncPort}`, 'x11vnc', args);
    await waitForPort(this.vncPort, this.vnc, 10_000);
    const server = http.createServer((req, res) => this.serve(req, res));
    const wss = new WebSocketServer({
      noServer: true,
      handleProtocols: (protocols) => (protocols.has('binary') ? 'binary' : false),
    });
    server.on('upgrade', (req, socket, head) => {
      if (new URL(req.url ?? '/', 'http://viewer').pathname !== '/websockify') {
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        // Bytes both ways between the browser's WebSocket and the VNC server.
        const tcp = net.connect({ host: '127.0.0.1', port: this.vncPort });
        tcp.on('data', (d) => ws.send(d));
        tcp.on('close', () => ws.close());
        tcp.on('error', () => ws.close());
        ws.on('message', (d: Buffer) => tcp.write(d));
        ws.on('close', () => tcp.destroy());
        ws.on('error', () => tcp.destroy());
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    log.write('info', 'desktop viewer started', {
      port: this.port,
      vnc_port: this.vncPort,
      view_only: this.viewOnly,
    });
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://viewer').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/' || path === DESKTOP_VIEWER_PAGE) {
      const body = page(this.viewOnly);
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path.startsWith('/novnc/')) {
      const rel = normalize(decodeURIComponent(path.slice('/novnc/'.length)));
      const file = join(NOVNC_DIR, rel);
      if (
        !rel.startsWith('..') &&
        file.startsWith(`${NOVNC_DIR}/`) &&
        existsSync(file) &&
        statSync(file).isFile()
      ) {
        res.writeHead(200, {
          'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
          'content-length': statSync(file).size,
        });
        if (req.method === 'HEAD') res.end();
        else createReadStream(file).pipe(res);
        return;
      }
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    const vnc = this.vnc;
    this.vnc = undefined;
    if (vnc && vnc.exitCode === null && vnc.signalCode === null) {
      await new Promise<void>((resolve) => {
        vnc.once('exit', () => resolve());
        vnc.kill('SIGTERM');
        setTimeout(() => vnc.kill('SIGKILL'), 3000).unref();
      });
    }
  }
}

/** The desktop's viewers: read-write and view-only, each its own VNC server and page on the loopback. */
export class Viewer {
  private readonly rw = new ViewerPort(DESKTOP_PORTS.viewer, DESKTOP_PORTS.vnc, false);
  private readonly ro = new ViewerPort(DESKTOP_PORTS.viewerViewOnly, DESKTOP_PORTS.vncViewOnly, true);

  constructor(private readonly session: DesktopSession) {}

  status(): StreamStatus {
    return {
      running: this.rw.running && this.ro.running,
      port: DESKTOP_PORTS.viewer,
      view_only_port: DESKTOP_PORTS.viewerViewOnly,
    };
  }

  async start(): Promise<StreamStatus> {
    await this.session.ready();
    await Promise.all([this.rw.start(), this.ro.start()]);
    return this.status();
  }

  async stop(): Promise<StreamStatus> {
    await Promise.all([this.rw.stop(), this.ro.stop()]);
    return this.status();
  }
}
