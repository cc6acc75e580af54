import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { CodedError, FRAME, encodeMessage } from '@nullspace/protocol';
import { WebSocket } from 'ws';
import type { Logger } from '../log.js';
import type { MachineService } from '../services/machine-service.js';
import type { UpgradeRoute } from './api-server.js';
import { PingedWebSocketServer } from './ws-server.js';

/** Unsent bytes to a client past which the agent's side is paused (and with it the process). */
const CLIENT_HIGH_WATER = 4 * 1024 * 1024;
/** Close code for "the machine is being checkpointed or stopped: re-attach later" (Service Restart). */
export const CLOSE_INTERRUPTED = 1012;

export interface BridgeTarget {
  machineId: string;
  /** Agent WebSocket path with its query. */
  agentPath: string;
  /**
   * Checks a client message before it is passed to the agent: returns what to send on, or throws
   * a CodedError that is reported to the client (the socket stays open).
   */
  filter?(data: Buffer, isBinary: boolean): Buffer;
}

/**
 * A WebSocket route served by a machine's agent: the client's socket is joined to one the server
 * opens to the agent, messages pass both ways unchanged (after `filter`), and flow control reaches
 * end to end: a client that reads slowly pauses the agent's socket, which pauses the process.
 */
export class AgentSockets implements UpgradeRoute {
  private readonly wss = new PingedWebSocketServer(16 * 1024 * 1024);
  private closed = false;

  constructor(
    private readonly machines: MachineService,
    private readonly log: Logger,
    private readonly pattern: RegExp,
    /** Validates the request (throws CodedError → HTTP error before the upgrade) and names the target. */
    private readonly resolve: (url: URL, match: RegExpExecArray) => BridgeTarget,
  ) {}

  matches(url: URL): boolean {
    return this.pattern.test(url.pathname);
  }

  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL, requestId: string): void {
    if (this.closed)
      throw new CodedError('unavailable', 'the server is stopping; re-attach in a moment', {
        retry_after: 1,
      });
    const target = this.resolve(url, this.pattern.exec(url.pathname) as RegExpExecArray);
    // 404 machine_not_found and 409 invalid_state come back as HTTP errors, before the upgrade.
    const m = this.machines.get(target.machineId);
    if (m.status !== 'running' && !(m.auto_resume && (m.status === 'paused' || m.status === 'hibernated')))
      this.machines.requireRunningById(target.machineId);
    this.wss.upgrade(req, socket, head, requestId, (ws) => {
      this.serve(ws, target).catch((err: unknown) => {
        const e =
          err instanceof CodedError ? err : new CodedError('internal', 'could not reach the machine agent');
        if (!(err instanceof CodedError)) this.log.error('agent socket failed', { error: err });
        ws.send(
          encodeMessage(
            FRAME.event,
            Buffer.from(JSON.stringify({ type: 'error', code: e.code, message: e.message })),
          ),
        );
        ws.close(
          e.code === 'unavailable' || e.code === 'machine_transitioning' ? CLOSE_INTERRUPTED : 4000,
          e.code,
        );
      });
    });
  }

  close(): void {
    this.closed = true;
    this.wss.close(1001, 'server stopping; re-attach');
  }

  private async serve(client: WebSocket, target: BridgeTarget): Promise<void> {
    // Client messages that come while the agent side is being opened wait in order.
    const early: [Buffer, boolean][] = [];
    const onEarly = (data: Buffer, isBinary: boolean) => early.push([data, isBinary]);
    client.on('message', onEarly);
    let clientGone = false;
    client.once('close', () => {
      clientGone = true;
    });
    client.on('error', () => undefined);
    const lease = await this.machines.openAgent(target.machineId, { long: true });
    if (clientGone) {
      lease.release();
      return;
    }
    const agent = new WebSocket(`ws+unix://${lease.socketPath}:${target.agentPath}`, {
      maxPayload: 16 * 1024 * 1024,
      perMessageDeflate: false,
    });
    let ended = false;
    const end = (code: number, reason: string) => {
      if (ended) return;
      ended = true;
      lease.release();
      if (client.readyState === WebSocket.OPEN || client.readyState === WebSocket.CONNECTING)
        client.close(code, reason.slice(0, 120));
      agent.terminate();
    };
    lease.onCut((reason) => {
      if (client.readyState === WebSocket.OPEN)
        client.send(encodeMessage(FRAME.event, Buffer.from(JSON.stringify({ type: 'interrupted', reason }))));
      end(CLOSE_INTERRUPTED, reason);
    });
    const forward = (data: Buffer, isBinary: boolean) => {
      let out = data;
      try {
        if (target.filter) out = target.filter(data, isBinary);
      } catch (err) {
        const e = err instanceof CodedError ? err : new CodedError('invalid_argument', String(err));
        client.send(
          encodeMessage(
            FRAME.event,
            Buffer.from(JSON.stringify({ type: 'error', code: e.code, message: e.message })),
          ),
        );
        return;
      }
      agent.send(out, { binary: isBinary || target.filter !== undefined });
    };
    agent.on('open', () => {
      client.off('message', onEarly);
      for (const [d, b] of early.splice(0)) forward(d, b);
      client.on('message', forward);
    });
    let pausedForClient = false;
    const relieve = () => {
      if (pausedForClient && client.bufferedAmount < CLIENT_HIGH_WATER / 2) {
        pausedForClient = false;
        agent.resume();
      }
    };
    agent.on('message', (data: Buffer, isBinary: boolean) => {
      if (client.readyState !== WebSocket.OPEN) return;
      client.send(data, { binary: isBinary }, relieve);
      if (!pausedForClient && client.bufferedAmount > CLIENT_HIGH_WATER) {
        pausedForClient = true;
        agent.pause();
      }
    });
    agent.on('close', (code, reason) => {
      const valid = code === 1000 || (code >= 3000 && code <= 4999);
      end(valid ? code : 1011, valid ? reason.toString() : 'the machine agent closed the stream');
    });
    agent.on('error', (err) => {
      if (!ended && client.readyState === WebSocket.OPEN)
        client.send(
          encodeMessage(
            FRAME.event,
            Buffer.from(
              JSON.stringify({
                type: 'error',
                code: 'unavailable',
                message: `machine agent: ${err.message}`,
              }),
            ),
          ),
        );
      end(CLOSE_INTERRUPTED, 'machine agent unreachable');
    });
    client.on('close', () => end(1000, 'client closed'));
  }
}
