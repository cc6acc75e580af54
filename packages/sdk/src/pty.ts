import { FRAME, PtyCreateBodySchema, type ProcessInfo as WireProcessInfo } from '@nullspace/protocol';
import { Attachment, type ExitEvent, StreamState } from './process-stream.js';
import type { RequestOptions, Transport } from './transport.js';
import { type FromWire, requestBody } from './wire.js';

/**
 * Options of {@link Pty.create}.
 *
 * @example
 * ```ts
 * const opts: PtyCreateOptions = { cols: 120, rows: 40, onData: (b) => process.stdout.write(b) };
 * ```
 */
export interface PtyCreateOptions extends FromWire<typeof PtyCreateBodySchema>, RequestOptions {
  /** Terminal output, as exact bytes. */
  onData?: (bytes: Buffer) => void;
}

/**
 * An interactive terminal in a machine. Input and output travel over one WebSocket; the terminal
 * (and what runs in it) outlives the connection, and `pty.connect(pid)` attaches again.
 *
 * @example
 * ```ts
 * const term = await machine.pty.create({ cols: 80, rows: 24, onData: (b) => process.stdout.write(b) });
 * await term.sendInput('stty size\r');
 * await term.resize(120, 40);
 * await term.sendInput('exit\r');
 * await term.wait();
 * ```
 */
export class PtyHandle {
  readonly pid: number;
  readonly #pty: Pty;
  readonly #state: StreamState;
  readonly #attachment: Attachment;

  /** @internal */
  constructor(pty: Pty, pid: number, state: StreamState, attachment: Attachment) {
    this.#pty = pty;
    this.pid = pid;
    this.#state = state;
    this.#attachment = attachment;
  }

  /** Sends keystrokes (text as UTF-8). Over the open WebSocket when there is one, else over HTTP. */
  async sendInput(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
    if (!this.#attachment.send(FRAME.stdout, bytes)) await this.#pty.sendInput(this.pid, bytes);
  }

  async resize(cols: number, rows: number): Promise<void> {
    const msg = Buffer.from(JSON.stringify({ type: 'resize', cols, rows }));
    if (!this.#attachment.send(FRAME.event, msg)) await this.#pty.resize(this.pid, { cols, rows });
  }

  async kill(): Promise<void> {
    await this.#pty.kill(this.pid);
  }

  /** Waits for the terminal's program to end; returns its exit code and signal. */
  async wait(): Promise<{ exitCode: number | null; signal: string | null }> {
    await Promise.race([
      this.#state.waitExit(),
      this.#attachment.finished().then(() => this.#state.waitExit()),
    ]);
    const e = this.#state.exit as ExitEvent;
    return { exitCode: e.exit_code, signal: e.signal };
  }

  /** Resolves once the WebSocket is open (input then goes over it). */
  async ready(timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!this.#attachment.isOpen && !this.#state.exit && Date.now() < until)
      await new Promise((r) => setTimeout(r, 5));
  }

  /** Stops following the terminal; it goes on running. */
  disconnect(): void {
    this.#attachment.stop();
  }
}

/**
 * Interactive terminals in one machine: `machine.pty`.
 *
 * @example
 * ```ts
 * const term = await machine.pty.create({ onData: (b) => process.stdout.write(b) });
 * ```
 */
export class Pty {
  readonly #machineId: string;
  readonly #transport: Transport;

  /** @internal */
  constructor(machineId: string, transport: Transport) {
    this.#machineId = machineId;
    this.#transport = transport;
  }

  get #base(): string {
    return `/v1/machines/${encodeURIComponent(this.#machineId)}/pty`;
  }

  /** Opens a terminal and attaches to it; resolves once input can be sent. */
  async create(opts: PtyCreateOptions = {}): Promise<PtyHandle> {
    const info = await this.#transport.request<WireProcessInfo>({
      method: 'POST',
      path: this.#base,
      body: requestBody(PtyCreateBodySchema, opts),
      timeoutMs: opts.requestTimeoutMs,
    });
    const handle = this.#attach(info.pid, opts.onData);
    await handle.ready();
    return handle;
  }

  /** Attaches to a terminal by pid (its kept output is replayed first). */
  async connect(pid: number, opts: { onData?: (bytes: Buffer) => void } = {}): Promise<PtyHandle> {
    const handle = this.#attach(pid, opts.onData);
    await handle.ready();
    return handle;
  }

  #attach(pid: number, onData: ((bytes: Buffer) => void) | undefined): PtyHandle {
    const state = new StreamState(onData ? { onData: (b) => onData(b) } : {});
    const attachment = new Attachment(this.#transport, `${this.#base}/${pid}/ws`, state);
    return new PtyHandle(this, pid, state, attachment);
  }

  async sendInput(pid: number, data: string | Uint8Array, opts: RequestOptions = {}): Promise<void> {
    const res = await this.#transport.raw({
      method: 'POST',
      path: `${this.#base}/${pid}/input`,
      body: typeof data === 'string' ? data : Buffer.from(data),
      headers: { 'content-type': 'application/octet-stream' },
      timeoutMs: opts.requestTimeoutMs,
    });
    await res.arrayBuffer();
  }

  async resize(pid: number, size: { cols: number; rows: number }, opts: RequestOptions = {}): Promise<void> {
    await this.#transport.request({
      method: 'POST',
      path: `${this.#base}/${pid}/resize`,
      body: size,
      timeoutMs: opts.requestTimeoutMs,
    });
  }

  async kill(pid: number, opts: RequestOptions = {}): Promise<void> {
    await this.#transport.request({
      method: 'DELETE',
      path: `${this.#base}/${pid}`,
      timeoutMs: opts.requestTimeoutMs,
    });
  }
}
