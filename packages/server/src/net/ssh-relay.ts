import net from 'node:net';
import { pipeline } from 'node:stream';
import { CodedError } from '@nullspace/protocol';
import type { Logger } from '../log.js';

/** Where a machine's relay listens: what `ssh` is given as host and port. */
export interface SshRelayAddress {
  host: string;
  port: number;
}

export interface SshRelayOptions {
  /** The address the listeners bind, e.g. `127.0.0.1`, or `0.0.0.0` to serve other hosts. */
  host: string;
  /** The host name clients are told to connect to (`ensure` returns it); default `host`. */
  publicHost?: string;
  /** Ports the listeners may take, inclusive; default: any free port the kernel picks. */
  ports?: { min: number; max: number };
  /**
   * Opens a connection to the machine's sshd (waking the machine first if need be). Called once
   * per accepted client connection; a rejection, or no answer within `connectTimeoutMs`, closes
   * that client connection.
   */
  connect: (machineId: string) => Promise<net.Socket>;
  log: Logger;
  /** Default 60 s: waking a hibernated machine takes a few seconds, a cold restore longer. */
  connectTimeoutMs?: number;
  /** Client connections one machine's listener holds at once; more are refused. Default 32. */
  maxConnectionsPerMachine?: number;
}

interface Listener {
  machineId: string;
  server: net.Server;
  address: SshRelayAddress;
  /** Accepted client sockets and the machine sockets paired with them. */
  sockets: Set<net.Socket>;
  closing: boolean;
}

/** First TCP keep-alive probe after this much silence: finds a vanished peer (a laptop gone to sleep). */
const KEEPALIVE_MS = 30_000;

/**
 * The server side of SSH access: one TCP listener per machine on the server's host, each accepted
 * connection piped byte for byte to a connection to the machine's sshd. The relay sees only the
 * encrypted SSH stream; authentication is between the client and the sshd in the machine (a
 * certificate from the server's CA). It owns its listeners and the connections they accepted:
 * `close` and `closeAll` end both, and nothing else makes or ends them.
 */
export class SshRelay {
  private readonly listeners = new Map<string, Promise<Listener>>();
  private readonly connectTimeoutMs: number;
  private readonly maxConnections: number;

  constructor(private readonly opts: SshRelayOptions) {
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 60_000;
    this.maxConnections = opts.maxConnectionsPerMachine ?? 32;
    const range = opts.ports;
    if (
      range &&
      !(
        Number.isInteger(range.min) &&
        Number.isInteger(range.max) &&
        1 <= range.min &&
        range.min <= range.max &&
        range.max <= 65535
      )
    )
      throw new CodedError('internal', `SSH relay port range ${range.min}-${range.max} is not valid`);
  }

  /**
   * The machine's relay address, opening its listener first if it has none. Concurrent calls for
   * one machine share one listener.
   */
  async ensure(machineId: string, preferredPort?: number): Promise<SshRelayAddress> {
    let pending = this.listeners.get(machineId);
    if (!pending) {
      pending = this.open(machineId, preferredPort);
      this.listeners.set(machineId, pending);
      // A listener that failed to open is forgotten, so the next call tries again.
      pending.catch(() => {
        if (this.listeners.get(machineId) === pending) this.listeners.delete(machineId);
      });
    }
    return (await pending).address;
  }

  /** Closes the machine's listener and ends every connection it relays. Idempotent. */
  async close(machineId: string): Promise<void> {
    const pending = this.listeners.get(machineId);
    if (!pending) return;
    this.listeners.delete(machineId);
    const listener = await pending.catch(() => undefined);
    if (listener) await this.shut(listener);
  }

  /** Closes every listener and relayed connection (server shutdown). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.listeners.keys()].map((id) => this.close(id)));
  }

  private async open(machineId: string, preferredPort?: number): Promise<Listener> {
    // Half-open allowed: a client that has sent all it will send still gets the machine's answer.
    // Paused on connect: nothing is read from a client until its machine connection is there.
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    server.maxConnections = this.maxConnections;
    const port = await this.listen(server, preferredPort);
    const listener: Listener = {
      machineId,
      server,
      address: { host: this.opts.publicHost ?? this.opts.host, port },
      sockets: new Set(),
      closing: false,
    };
    server.on('connection', (client) => this.accept(listener, client));
    server.on('error', (err) => {
      this.opts.log.error('ssh relay: listener failed', { machine_id: machineId, port, err });
      void this.close(machineId);
    });
    this.opts.log.info('ssh relay: listening', { machine_id: machineId, host: this.opts.host, port });
    return listener;
  }

  /**
   * Binds `preferred` when it is free (a restarted server keeps the ports it gave out), else port
   * 0, or the first free port of the range starting at a random one (spreads machines out).
   */
  private async listen(server: net.Server, preferred?: number): Promise<number> {
    const range = this.opts.ports;
    if (preferred !== undefined && (!range || (preferred >= range.min && preferred <= range.max))) {
      try {
        return await listenOn(server, this.opts.host, preferred);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
    if (!range) return listenOn(server, this.opts.host, 0);
    const size = range.max - range.min + 1;
    const start = Math.floor(Math.random() * size);
    for (let i = 0; i < size; i++) {
      const port = range.min + ((start + i) % size);
      try {
        return await listenOn(server, this.opts.host, port);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
    throw new CodedError(
      'resource_exhausted',
      `no free port for SSH access (${range.min}-${range.max} all taken)`,
    );
  }

  private accept(l: Listener, client: net.Socket): void {
    const log = this.opts.log.child({
      machine_id: l.machineId,
      port: l.address.port,
      peer: `${client.remoteAddress}:${client.remotePort}`,
    });
    if (l.closing) {
      client.destroy();
      return;
    }
    const started = Date.now();
    track(l, client);
    client.setKeepAlive(true, KEEPALIVE_MS);
    client.setNoDelay(true);
    // Until the pipes exist, an error (a client giving up) only has to close it.
    client.on('error', () => client.destroy());
    log.info('ssh relay: connection accepted');
    this.connectMachine(l.machineId).then(
      (upstream) => {
        if (client.destroyed || l.closing) {
          upstream.destroy();
          return;
        }
        track(l, upstream);
        upstream.setKeepAlive(true, KEEPALIVE_MS);
        upstream.setNoDelay(true);
        let open = 2;
        let firstError: Error | undefined;
        // Each direction with backpressure; an error on either side destroys both sockets.
        const done = (err?: Error | null) => {
          if (err && !firstError) firstError = err;
          if (--open > 0) return;
          client.destroy();
          upstream.destroy();
          log.info('ssh relay: connection closed', {
            duration_ms: Date.now() - started,
            bytes_from_client: client.bytesRead,
            bytes_to_client: client.bytesWritten,
            ...(firstError
              ? { error: (firstError as NodeJS.ErrnoException).code ?? firstError.message }
              : {}),
          });
        };
        pipeline(client, upstream, done);
        pipeline(upstream, client, done);
      },
      (err: unknown) => {
        log.warn('ssh relay: could not reach the machine; closing the client connection', { err });
        client.destroy();
      },
    );
  }

  /** The injected `connect`, bounded in time; a socket that arrives after the deadline is closed. */
  private connectMachine(machineId: string): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(
          new CodedError('timeout', `no connection to the machine's sshd within ${this.connectTimeoutMs} ms`),
        );
      }, this.connectTimeoutMs);
      this.opts.connect(machineId).then(
        (socket) => {
          clearTimeout(timer);
          if (settled) socket.destroy();
          else resolve(socket);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (!settled) reject(err);
        },
      );
    });
  }

  private async shut(l: Listener): Promise<void> {
    l.closing = true;
    const closed = new Promise<void>((resolve) => l.server.close(() => resolve()));
    for (const socket of l.sockets) socket.destroy();
    await closed;
    this.opts.log.info('ssh relay: closed', { machine_id: l.machineId, port: l.address.port });
  }
}

function track(l: Listener, socket: net.Socket): void {
  l.sockets.add(socket);
  socket.once('close', () => l.sockets.delete(socket));
}

function listenOn(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      const address = server.address();
      if (address === null || typeof address === 'string')
        reject(new CodedError('internal', 'the SSH relay listener has no TCP address'));
      else resolve(address.port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host, port, exclusive: true });
  });
}
