import { constants, closeSync, fstatSync, openSync } from 'node:fs';
import http from 'node:http';
import { connect } from 'node:net';
import {
  AGENT_ROUTES,
  type AgentHealth,
  type AgentRunRequest,
  CodedError,
  type RunCommandResult,
  isErrorCode,
} from '@nullspace/protocol';

/** Linux O_PATH: a handle on the inode itself, which is all a Unix socket connect needs. */
const O_PATH = 0o10000000;

/**
 * Talks to the agent inside one machine: HTTP/1.1 over the Unix socket the agent listens on (a
 * host path, through a bind mount). Connections are kept alive for speed; a closed or broken one
 * is simply reopened on the next call, so neither side restarting needs any reconnect protocol.
 *
 * The socket's directory is writable from inside the machine, so whoever is root there can put a
 * symlink where the socket should be, pointing at any socket on the host (another machine's agent,
 * a host daemon). So the path is never connected to directly: it is opened once with O_NOFOLLOW,
 * checked to be a socket, and every connection goes through that pinned inode (/proc/self/fd/N).
 *
 * A connection is made through that path by number, possibly later than the path was handed out
 * (a request queued in the pool, a lease's request, a WebSocket): were the fd closed meanwhile,
 * its number could already name another file — another machine's agent socket among them. So
 * whoever connects holds the pin ({@link hold}) until its request is over, and the fd is closed
 * only when the pin is dropped ({@link close}, or a refused connect) and nobody holds it any more.
 */
export class AgentClient {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  /** The pin new connections go through (a dropped one stays open while it is held). */
  private pin: Pin | undefined;

  constructor(readonly socketPath: string) {}

  health(timeoutMs = 2000): Promise<AgentHealth> {
    return this.call<AgentHealth>('GET', AGENT_ROUTES.health, undefined, timeoutMs);
  }

  /**
   * Before a checkpoint: a health check on a connection the agent closes after answering, which it
   * answers once every other connection to it is closed (the caller ended its side of them
   * first). A socket the agent still holds at the freeze has its peer outside the machine, and
   * CRIU cannot dump it ("Unix socket … not found") — this one included: the agent closes it a
   * moment after answering. So this resolves only once the agent's end is really gone, not just
   * ended: the agent's `shutdown` (the end of its answer) still lets this side write; its close
   * does not (the kernel answers EPIPE, or ECONNRESET if a byte was left unread). This side
   * writes a probe byte every millisecond after the answer until one fails.
   */
  async drain(timeoutMs = 5000): Promise<void> {
    const held = this.hold();
    try {
      await drainOver(held.path, timeoutMs);
    } finally {
      held.release();
    }
  }

  /** A foreground command, answered when it ends (for tests and the runtime's own checks). */
  run(req: AgentRunRequest): Promise<RunCommandResult> {
    // The agent enforces the command's own timeout; ours only guards against a wedged agent.
    return this.call<RunCommandResult>('POST', AGENT_ROUTES.processes, req, req.timeout_ms + 10_000);
  }

  /** Any agent route with a JSON answer (process info, logs ...); errors as for {@link run}. */
  request<T>(method: string, path: string, body: unknown, timeoutMs = 10_000): Promise<T> {
    return this.call<T>(method, path, body, timeoutMs);
  }

  /**
   * A path to connect to the agent through (the pinned socket inode), for callers that speak to
   * it directly (streamed requests, WebSockets), valid until `release` (call it once the request
   * or socket is over; a second call does nothing).
   */
  hold(): { path: string; release: () => void } {
    const pin = this.currentPin();
    pin.holders++;
    let released = false;
    return {
      path: `/proc/self/fd/${pin.fd}`,
      release: () => {
        if (released) return;
        released = true;
        pin.holders--;
        closeIfUnused(pin);
      },
    };
  }

  /**
   * The keep-alive connection pool of this machine's agent, for requests made directly with
   * {@link hold}. The agent never closes first a connection that carried a body (AgentRouter.handle),
   * pooled or not: a piped body's last write may come after its answer.
   */
  get pool(): http.Agent {
    return this.httpAgent;
  }

  /** Ends the pooled connections and drops the pin (its fd closes once nobody holds it). */
  close(): void {
    this.httpAgent.destroy();
    this.unpin();
  }

  private currentPin(): Pin {
    if (this.pin === undefined) {
      let fd: number;
      try {
        fd = openSync(this.socketPath, O_PATH | constants.O_NOFOLLOW);
      } catch (err) {
        throw new CodedError(
          'unavailable',
          `machine agent is not reachable: ${(err as NodeJS.ErrnoException).code}`,
        );
      }
      if (!fstatSync(fd).isSocket()) {
        closeSync(fd);
        throw new CodedError('unavailable', 'machine agent is not reachable: its socket was replaced');
      }
      this.pin = { fd, holders: 0, dropped: false };
    }
    return this.pin;
  }

  /** Drops the pin, so the next call opens the path again (the agent may have restarted). */
  private unpin(): void {
    const pin = this.pin;
    this.pin = undefined;
    if (pin) {
      pin.dropped = true;
      closeIfUnused(pin);
    }
  }

  private call<T>(method: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    let held: { path: string; release: () => void };
    try {
      held = this.hold();
    } catch (err) {
      return Promise.reject(err);
    }
    const pin = this.pin;
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: held.path,
          path,
          method,
          agent: this.httpAgent,
          headers: {
            ...(payload
              ? { 'content-type': 'application/json', 'content-length': payload.length }
              : { 'content-length': 0 }),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text === '' ? undefined : JSON.parse(text);
            } catch {
              reject(new CodedError('internal', `agent sent invalid JSON (status ${res.statusCode})`));
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const err = (
                parsed as
                  | { error?: { code?: unknown; message?: unknown; details?: { field?: unknown } } }
                  | undefined
              )?.error;
              const code = isErrorCode(err?.code) ? err.code : 'internal';
              // The agent runs inside the machine: pass on only what the API edge would say itself.
              const field = err?.details?.field;
              reject(
                new CodedError(
                  code,
                  typeof err?.message === 'string' ? err.message : `agent status ${res.statusCode}`,
                  typeof field === 'string' ? { field } : undefined,
                ),
              );
              return;
            }
            resolve(parsed as T);
          });
        },
      );
      // Over (answered, failed or destroyed): its connection no longer needs the pinned fd.
      req.on('close', held.release);
      req.on('timeout', () =>
        req.destroy(new CodedError('timeout', `machine agent did not answer within ${timeoutMs} ms`)),
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        // Refused: the agent may have restarted on a new socket; a newer pin is left alone.
        if ((err.code === 'ECONNREFUSED' || err.code === 'ENOENT') && this.pin === pin) this.unpin();
        if (err instanceof CodedError) reject(err);
        else
          reject(
            new CodedError(
              'unavailable',
              `machine agent is not reachable: ${err.code ?? err.message}`,
              undefined,
              { cause: err },
            ),
          );
      });
      req.end(payload);
    });
  }
}

/** A pinned socket inode (see {@link AgentClient}): its fd, and who may still connect through it. */
interface Pin {
  fd: number;
  holders: number;
  /** No longer handed out: closed as soon as nobody holds it. */
  dropped: boolean;
}

function closeIfUnused(pin: Pin): void {
  if (pin.dropped && pin.holders === 0 && pin.fd >= 0) {
    closeSync(pin.fd);
    pin.fd = -1;
  }
}

/** See {@link AgentClient.drain}. */
function drainOver(path: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    // allowHalfOpen: after the agent's end this side stays open, to probe with writes.
    const socket = connect({ path, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let answered = false;
    let probe: NodeJS.Timeout | undefined;
    const settle = (err?: Error) => {
      clearTimeout(timer);
      clearTimeout(probe);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(
      () =>
        settle(
          new CodedError(
            'timeout',
            answered
              ? `machine agent did not close its connection within ${timeoutMs} ms`
              : `machine agent did not answer within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // After the answer, the error a probe meets is the proof that the agent's end is closed.
      if (answered && (err.code === 'EPIPE' || err.code === 'ECONNRESET')) settle();
      else
        settle(
          new CodedError(
            'unavailable',
            `machine agent is not reachable: ${err.code ?? err.message}`,
            undefined,
            {
              cause: err,
            },
          ),
        );
    });
    socket.on('end', () => {
      const head = Buffer.concat(chunks).toString('latin1');
      if (!/^HTTP\/1\.1 200 /.test(head)) {
        settle(
          new CodedError(
            'unavailable',
            `machine agent answered the drain with ${JSON.stringify(head.slice(0, 40))}`,
          ),
        );
        return;
      }
      answered = true;
      const write = () => {
        // A byte the agent may read (then it fails to parse it and closes at once) or may not.
        socket.write('\n', (err) => {
          if (!err) probe = setTimeout(write, 1);
        });
      };
      write();
    });
    socket.write(`GET ${AGENT_ROUTES.health} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n`);
  });
}
