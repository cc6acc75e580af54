import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { CodedError, encodeEventMessage, isErrorCode } from '@nullspace/protocol';
import { WebSocket } from 'ws';
import type { Logger } from '../log.js';
import type { AgentLease, MachineService } from '../services/machines/machine-service.js';
import type { UpgradeRoute } from './api-server.js';
import { PingedWebSocketServer } from './ws-server.js';

/** Unsent bytes to a client past which it counts as slow (see {@link BridgeTarget.slowClient}). */
const CLIENT_HIGH_WATER = 4 * 1024 * 1024;
/** Close code for "the machine is being checkpointed or stopped: re-attach later" (Service Restart). */
export const CLOSE_INTERRUPTED = 1012;
/** Close code for a client dropped for reading too slowly (Try Again Later). */
const CLOSE_TOO_SLOW = 1013;

export interface BridgeTarget {
  machineId: string;
  /** Agent WebSocket path with its query. */
  agentPath: string;
  /**
   * A client that reads too slowly: `pause` the agent's side (flow control reaches the process:
   * output streams), or `close` it with 1013 (it reconnects from its cursor: event streams).
   */
  slowClient: 'pause' | 'close';
  /**
   * Checks a client message before it is passed to the agent: returns what to send on, or throws
   * a CodedError that is reported to the client as an error event (the socket stays open). Without
   * it, client messages are read and dropped.
   */
  filter?(data: Buffer, isBinary: boolean): Buffer;
  /** How to tell the client about a cut connection before closing it with 1012 (optional). */
  interrupted?(reason: string): Buffer | string;
}

/**
 * A WebSocket route served by a machine's agent. The agent's socket is opened first, so every
 * refusal — an unknown machine, one that is not running, an unknown process or watch — is a plain
 * HTTP error before the upgrade, as for any other request. Then the client's socket is joined to
 * the agent's: messages pass both ways unchanged (client ones through `filter`), either side
 * closing closes the other with its code, and a checkpoint, kill or restore of the machine closes
 * the client with 1012.
 */
export class AgentSockets implements UpgradeRoute {
  private readonly wss: PingedWebSocketServer;
  private readonly open = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly machines: MachineService,
    private readonly log: Logger,
    private readonly pattern: RegExp,
    /** Validates the request (a thrown CodedError is the HTTP answer) and names the target. */
    private readonly resolve: (url: URL, match: RegExpExecArray) => BridgeTarget,
    maxPayload = 16 * 1024 * 1024,
  ) {
    this.wss = new PingedWebSocketServer(maxPayload);
  }

  matches(url: URL): boolean {
    return this.pattern.test(url.pathname);
  }

  async upgrade(
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    url: URL,
    requestId: string,
  ): Promise<void> {
    if (this.closed)
      throw new CodedError('unavailable', 'the server is stopping; re-attach in a moment', {
        retry_after: 1,
      });
    const target = this.resolve(url, this.pattern.exec(url.pathname) as RegExpExecArray);
    const lease = await this.machines.openAgent(target.machineId, { long: true });
    let agent: OpenedAgentSocket;
    try {
      agent = await openAgentSocket(lease, target.agentPath);
    } catch (err) {
      lease.release();
      throw await lease.failed(err);
    }
    if (socket.destroyed || this.closed) {
      agent.ws.terminate();
      lease.release();
      if (this.closed) throw new CodedError('unavailable', 'the server is stopping', { retry_after: 1 });
      return;
    }
    let served = false;
    this.wss.upgrade(req, socket, head, requestId, (client) => {
      served = true;
      this.bridge(client, agent, lease, target);
    });
    // ws completes an upgrade synchronously; one it aborted (the socket broke) never calls back.
    if (!served) {
      agent.ws.terminate();
      lease.release();
    }
  }

  close(): void {
    this.closed = true;
    for (const stop of [...this.open]) stop();
    this.wss.close();
  }

  private bridge(
    client: WebSocket,
    opened: OpenedAgentSocket,
    lease: AgentLease,
    target: BridgeTarget,
  ): void {
    const agent = opened.ws;
    let ended = false;
    const end = (code: number, reason: string) => {
      if (ended) return;
      ended = true;
      this.open.delete(stop);
      lease.release();
      if (client.readyState === WebSocket.OPEN || client.readyState === WebSocket.CONNECTING)
        client.close(forwardableCode(code), reason.slice(0, 120));
      agent.terminate();
    };
    const stop = () => end(1001, 'server stopping; re-attach');
    this.open.add(stop);
    lease.onCut((reason) => {
      if (target.interrupted && client.readyState === WebSocket.OPEN) client.send(target.interrupted(reason));
      end(CLOSE_INTERRUPTED, reason);
    });
    client.on('error', (err) =>
      this.log.debug('client socket error', { machine_id: target.machineId, error: err }),
    );
    agent.on('error', (err) =>
      this.log.debug('agent socket error', { machine_id: target.machineId, error: err }),
    );
    client.on('message', (data: Buffer, isBinary: boolean) => {
      if (!target.filter) return; // read and dropped, so pings keep flowing
      let out: Buffer;
      try {
        out = target.filter(data, isBinary);
      } catch (err) {
        const e = err instanceof CodedError ? err : new CodedError('invalid_argument', String(err));
        client.send(encodeEventMessage({ type: 'error', code: e.code, message: e.message }));
        return;
      }
      agent.send(out, { binary: true });
    });
    let paused = false;
    const relieve = () => {
      if (paused && client.bufferedAmount < CLIENT_HIGH_WATER / 2) {
        paused = false;
        agent.resume();
      }
    };
    const forward = (data: Buffer, isBinary: boolean) => {
      if (client.readyState !== WebSocket.OPEN) return;
      if (client.bufferedAmount > CLIENT_HIGH_WATER) {
        if (target.slowClient === 'close')
          return end(CLOSE_TOO_SLOW, 'too slow: over 4 MiB unsent; reconnect');
        if (!paused) {
          paused = true;
          agent.pause();
        }
      }
      client.send(data, { binary: isBinary }, relieve);
    };
    // What the agent sent before the client was there (its first frames) goes first, in order.
    agent.off('message', opened.onEarly);
    for (const [data, isBinary] of opened.early.splice(0)) forward(data, isBinary);
    agent.on('message', forward);
    agent.on('close', (code, reason) =>
      end(code, reason.toString() || 'the machine agent closed the stream'),
    );
    client.on('close', () => end(1000, 'client closed'));
  }
}

interface OpenedAgentSocket {
  ws: WebSocket;
  /** Messages that came before the bridge listened (ws emits them right after `open`). */
  early: [Buffer, boolean][];
  onEarly: (data: Buffer, isBinary: boolean) => void;
}

/** Opens the agent's side; its refusal (an HTTP error before the upgrade) becomes a CodedError. */
function openAgentSocket(lease: AgentLease, path: string): Promise<OpenedAgentSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws+unix://${lease.socketPath}:${path}`, {
      maxPayload: 16 * 1024 * 1024,
      perMessageDeflate: false,
    });
    const early: [Buffer, boolean][] = [];
    const onEarly = (data: Buffer, isBinary: boolean) => early.push([data, isBinary]);
    ws.on('message', onEarly);
    ws.once('open', () => {
      ws.removeAllListeners('error');
      ws.on('error', () => undefined); // the bridge logs errors once it has the socket
      resolve({ ws, early, onEarly });
    });
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.length < 64 && chunks.push(c));
      res.on('end', () => {
        let e: { code?: unknown; message?: unknown; details?: Record<string, unknown> } | undefined;
        try {
          e = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: typeof e }).error;
        } catch {
          e = undefined;
        }
        // The agent runs inside the machine: pass on only what the API edge would say itself.
        const details: Record<string, unknown> = {};
        for (const k of ['field', 'pid', 'tag', 'watch_id']) {
          const v = e?.details?.[k];
          if (typeof v === 'string' || typeof v === 'number') details[k] = v;
        }
        reject(
          new CodedError(
            isErrorCode(e?.code) ? e.code : 'internal',
            typeof e?.message === 'string' ? e.message.slice(0, 2000) : `agent refused (${res.statusCode})`,
            Object.keys(details).length ? details : undefined,
          ),
        );
      });
    });
    ws.once('error', (err: Error & { code?: string }) =>
      reject(
        new CodedError('unavailable', `machine agent is not reachable: ${err.code ?? err.message}`, {
          retry_after: 1,
        }),
      ),
    );
  });
}

/** A close code a server may send on: codes only the library may use become 1012. */
function forwardableCode(code: number): number {
  if (code === 1000 || code === 1001 || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))
    return code;
  return CLOSE_INTERRUPTED;
}
