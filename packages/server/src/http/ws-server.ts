import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';

/** How often every server WebSocket is pinged; one without a pong by the next ping is dropped. */
export const PING_EVERY_MS = 20_000;

/**
 * The WebSocket server every upgrade route uses: no own HTTP server (the API edge hands it
 * authenticated upgrades), the request id on the 101 response, and a ping per interval that drops
 * peers gone without a FIN.
 */
export class PingedWebSocketServer {
  private readonly wss: WebSocketServer;
  private readonly requestIds = new WeakMap<http.IncomingMessage, string>();
  private readonly alive = new WeakMap<WebSocket, boolean>();
  private readonly pinger: NodeJS.Timeout;

  constructor(maxPayload: number) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload });
    this.wss.on('headers', (headers, req) => {
      const requestId = this.requestIds.get(req);
      if (requestId !== undefined) headers.push(`x-request-id: ${requestId}`);
    });
    this.pinger = setInterval(() => {
      for (const ws of this.wss.clients) {
        if (this.alive.get(ws) === false) {
          ws.terminate(); // no pong since the last ping: the peer is gone
          continue;
        }
        this.alive.set(ws, false);
        ws.ping();
      }
    }, PING_EVERY_MS);
    this.pinger.unref();
  }

  /** Completes an upgrade (the 101 carries `requestId`) and hands over the socket. */
  upgrade(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    requestId: string,
    then: (ws: WebSocket) => void,
  ): void {
    this.requestIds.set(req, requestId);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.alive.set(ws, true);
      ws.on('pong', () => this.alive.set(ws, true));
      then(ws);
    });
  }

  get clients(): Set<WebSocket> {
    return this.wss.clients;
  }

  /** Stops the pings; closes every socket with `code` (when given) and the server. */
  close(code?: number, reason?: string): void {
    clearInterval(this.pinger);
    if (code !== undefined) for (const ws of this.wss.clients) ws.close(code, reason);
    this.wss.close();
  }
}
