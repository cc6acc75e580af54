import {
  type MouseButton,
  RecordingInfoSchema,
  type Region,
  type RouteId,
  StreamUrlSchema,
  type WindowInfo,
  routePath,
} from '@nullspace/protocol';
import type { RequestOptions, Transport } from './transport.js';
import { type FromWire, fromWire } from './wire.js';

/** A screen size: `{ width, height }` in pixels (and the display's `dpi`). */
export interface ScreenSize {
  width: number;
  height: number;
  dpi: number;
}

/** A point on the screen, in pixels from the top-left corner. */
export interface Point {
  x: number;
  y: number;
}

/** A window on the desktop (`id` is the X window id). */
export type DesktopWindow = WindowInfo;

/** A recording of the screen. */
export type Recording = FromWire<typeof RecordingInfoSchema>;

/** A signed viewer URL: an ordinary preview grant of the viewer's port. */
export type StreamUrl = FromWire<typeof StreamUrlSchema>;

/** Options of {@link Desktop.screenshot}. */
export interface ScreenshotOptions extends RequestOptions {
  /** `png` (default) or `jpeg`. */
  format?: 'png' | 'jpeg';
  /** Only this part of the screen. */
  region?: Region;
  /** JPEG quality, 1–100 (default 80). */
  quality?: number;
}

/** Options of {@link Desktop.write}. */
export interface WriteOptions extends RequestOptions {
  /** Characters per call of the typing tool (default 25). */
  chunkSize?: number;
  /** Delay between keystrokes in ms (default 5). */
  delayMs?: number;
}

type Body = Record<string, unknown>;

/**
 * The viewer: a VNC server in the machine (localhost only) and a noVNC page in front of it,
 * reached through the preview proxy with a signed grant. The view-only URL's server ignores input.
 *
 * @example
 * ```ts
 * const { url } = await machine.desktop.stream.start({ viewOnly: true });
 * console.log('watch it at', url);
 * await machine.desktop.stream.stop();
 * ```
 */
export class DesktopStream {
  readonly #id: string;
  readonly #transport: Transport;

  /** @internal */
  constructor(id: string, transport: Transport) {
    this.#id = id;
    this.#transport = transport;
  }

  /**
   * Starts the viewer (idempotent) and returns a signed URL of its page.
   *
   * @example
   * ```ts
   * const { url, grantId } = await machine.desktop.stream.start();
   * ```
   */
  async start(opts: { viewOnly?: boolean; expiresIn?: number } & RequestOptions = {}): Promise<StreamUrl> {
    return this.#url('desktopStreamStart', opts);
  }

  /**
   * A new signed URL of the viewer (starting it if needed); each URL is its own preview grant,
   * revocable with `machine.revokePreviewUrl(grantId)`.
   *
   * @example
   * ```ts
   * const { url } = await machine.desktop.stream.getUrl({ viewOnly: true, expiresIn: 600 });
   * ```
   */
  async getUrl(opts: { viewOnly?: boolean; expiresIn?: number } & RequestOptions = {}): Promise<StreamUrl> {
    return this.#url('desktopStreamUrl', opts);
  }

  /**
   * Whether the viewer runs, and its ports in the machine.
   *
   * @example
   * ```ts
   * const { running } = await machine.desktop.stream.status();
   * ```
   */
  async status(opts: RequestOptions = {}): Promise<{ running: boolean; port: number; viewOnlyPort: number }> {
    const s = await this.#transport.request<{ running: boolean; port: number; view_only_port: number }>({
      method: 'GET',
      path: routePath('desktopStreamStatus', { id: this.#id }),
      ...timeout(opts),
    });
    return { running: s.running, port: s.port, viewOnlyPort: s.view_only_port };
  }

  /**
   * Stops the viewer: its connections close and the grants of its URLs are revoked.
   *
   * @example
   * ```ts
   * await machine.desktop.stream.stop();
   * ```
   */
  async stop(opts: RequestOptions = {}): Promise<void> {
    await this.#transport.request({
      method: 'DELETE',
      path: routePath('desktopStreamStop', { id: this.#id }),
      ...timeout(opts),
    });
  }

  async #url(route: RouteId, opts: { viewOnly?: boolean; expiresIn?: number } & RequestOptions) {
    const body: Body = {};
    if (opts.viewOnly !== undefined) body.view_only = opts.viewOnly;
    if (opts.expiresIn !== undefined) body.expires_in = opts.expiresIn;
    const wire = await this.#transport.request<unknown>({
      method: 'POST',
      path: routePath(route, { id: this.#id }),
      body,
      ...timeout(opts),
    });
    return fromWire(StreamUrlSchema, wire);
  }
}

/**
 * Screen recordings: H.264 in fragmented MP4, kept in the machine (the list survives hibernation).
 *
 * @example
 * ```ts
 * const rec = await machine.desktop.recordings.start({ fps: 10 });
 * await machine.desktop.wait(2000);
 * await machine.desktop.recordings.stop(rec.id);
 * const mp4 = await machine.desktop.recordings.download(rec.id);
 * ```
 */
export class DesktopRecordings {
  readonly #id: string;
  readonly #transport: Transport;

  /** @internal */
  constructor(id: string, transport: Transport) {
    this.#id = id;
    this.#transport = transport;
  }

  /**
   * Starts recording the whole screen.
   *
   * @example
   * ```ts
   * const rec = await machine.desktop.recordings.start({ fps: 15 });
   * ```
   */
  async start(opts: { fps?: number } & RequestOptions = {}): Promise<Recording> {
    const wire = await this.#transport.request<unknown>({
      method: 'POST',
      path: routePath('desktopRecordingStart', { id: this.#id }),
      body: opts.fps === undefined ? {} : { fps: opts.fps },
      ...timeout(opts),
    });
    return fromWire(RecordingInfoSchema, wire);
  }

  /**
   * Stops a recording; its file is complete when this returns.
   *
   * @example
   * ```ts
   * const done = await machine.desktop.recordings.stop(rec.id);
   * console.log(done.sizeBytes);
   * ```
   */
  async stop(recordingId: string, opts: RequestOptions = {}): Promise<Recording> {
    const wire = await this.#transport.request<unknown>({
      method: 'POST',
      path: routePath('desktopRecordingStop', { id: this.#id, recording: recordingId }),
      ...timeout(opts),
    });
    return fromWire(RecordingInfoSchema, wire);
  }

  /**
   * The machine's recordings, oldest first.
   *
   * @example
   * ```ts
   * for (const r of await machine.desktop.recordings.list()) console.log(r.id, r.status);
   * ```
   */
  async list(opts: RequestOptions = {}): Promise<Recording[]> {
    const wire = await this.#transport.request<{ items: unknown[] }>({
      method: 'GET',
      path: routePath('desktopRecordings', { id: this.#id }),
      ...timeout(opts),
    });
    return wire.items.map((r) => fromWire(RecordingInfoSchema, r));
  }

  /**
   * A recording's MP4 bytes (what it holds so far, if it still runs).
   *
   * @example
   * ```ts
   * await writeFile('run.mp4', await machine.desktop.recordings.download(rec.id));
   * ```
   */
  async download(recordingId: string, opts: RequestOptions = {}): Promise<Uint8Array> {
    const res = await this.#transport.raw({
      method: 'GET',
      path: routePath('desktopRecordingDownload', { id: this.#id, recording: recordingId }),
      ...timeout(opts),
    });
    const b = await res.buffer();
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }

  /**
   * Deletes a recording (stopping it first if it runs).
   *
   * @example
   * ```ts
   * await machine.desktop.recordings.delete(rec.id);
   * ```
   */
  async delete(recordingId: string, opts: RequestOptions = {}): Promise<void> {
    await this.#transport.request({
      method: 'DELETE',
      path: routePath('desktopRecordingDelete', { id: this.#id, recording: recordingId }),
      ...timeout(opts),
    });
  }
}

function timeout(opts: RequestOptions): { timeoutMs?: number } {
  return opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs };
}

/**
 * The machine's desktop (machines of the `desktop` template): screenshots, mouse and keyboard,
 * windows, clipboard, applications, a viewer and recordings. Every operation runs real X tools in
 * the machine; coordinates are pixels from the top-left corner.
 *
 * @example
 * ```ts
 * const machine = await Machine.create({ template: 'desktop', desktop: { width: 1280, height: 800 } });
 * await machine.desktop.launch('xterm');
 * await machine.desktop.write('echo hello\n');
 * const png = await machine.desktop.screenshot();
 * ```
 */
export class Desktop {
  readonly #id: string;
  readonly #transport: Transport;
  /**
   * The viewer (noVNC over a signed preview URL).
   *
   * @example
   * ```ts
   * const { url } = await machine.desktop.stream.start();
   * ```
   */
  readonly stream: DesktopStream;
  /**
   * Screen recordings.
   *
   * @example
   * ```ts
   * const rec = await machine.desktop.recordings.start();
   * ```
   */
  readonly recordings: DesktopRecordings;

  /** @internal */
  constructor(id: string, transport: Transport) {
    this.#id = id;
    this.#transport = transport;
    this.stream = new DesktopStream(id, transport);
    this.recordings = new DesktopRecordings(id, transport);
  }

  #path(route: RouteId, params: Record<string, string | number> = {}): string {
    return routePath(route, { id: this.#id, ...params });
  }

  async #call<T>(
    route: RouteId,
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    body?: Body,
    opts: RequestOptions = {},
  ) {
    return this.#transport.request<T>({
      method,
      path: this.#path(route),
      ...(body === undefined ? {} : { body }),
      ...timeout(opts),
    });
  }

  /**
   * A screenshot: PNG (default) or JPEG bytes of the screen or a region.
   *
   * @example
   * ```ts
   * await writeFile('screen.png', await machine.desktop.screenshot());
   * const corner = await machine.desktop.screenshot({ region: { x: 0, y: 0, width: 200, height: 100 } });
   * ```
   */
  async screenshot(opts: ScreenshotOptions = {}): Promise<Uint8Array> {
    const query = new URLSearchParams();
    if (opts.format) query.set('format', opts.format);
    if (opts.quality !== undefined) query.set('quality', String(opts.quality));
    if (opts.region) for (const [k, v] of Object.entries(opts.region)) query.set(k, String(v));
    const res = await this.#transport.raw({
      method: 'GET',
      path: this.#path('desktopScreenshot'),
      query,
      ...timeout(opts),
    });
    const b = await res.buffer();
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }

  /**
   * The screen's size.
   *
   * @example
   * ```ts
   * const { width, height } = await machine.desktop.getScreenSize();
   * ```
   */
  async getScreenSize(opts: RequestOptions = {}): Promise<ScreenSize> {
    return this.#call<ScreenSize>('desktopScreen', 'GET', undefined, opts);
  }

  /**
   * Where the pointer is.
   *
   * @example
   * ```ts
   * const { x, y } = await machine.desktop.getCursorPosition();
   * ```
   */
  async getCursorPosition(opts: RequestOptions = {}): Promise<Point> {
    return this.#call<Point>('desktopCursor', 'GET', undefined, opts);
  }

  /**
   * Moves the pointer.
   *
   * @example
   * ```ts
   * await machine.desktop.moveMouse(100, 200);
   * ```
   */
  async moveMouse(x: number, y: number, opts: RequestOptions = {}): Promise<void> {
    await this.#call('desktopMove', 'POST', { x, y }, opts);
  }

  async #click(
    button: MouseButton,
    x: number | undefined,
    y: number | undefined,
    double: boolean,
    opts: RequestOptions,
  ) {
    const body: Body = { button };
    if (x !== undefined) body.x = x;
    if (y !== undefined) body.y = y;
    if (double) body.double = true;
    await this.#call('desktopClick', 'POST', body, opts);
  }

  /**
   * A left click, at (x, y) or where the pointer is.
   *
   * @example
   * ```ts
   * await machine.desktop.leftClick(512, 384);
   * ```
   */
  async leftClick(x?: number, y?: number, opts: RequestOptions = {}): Promise<void> {
    await this.#click('left', x, y, false, opts);
  }

  /**
   * A right click.
   *
   * @example
   * ```ts
   * await machine.desktop.rightClick(512, 384);
   * ```
   */
  async rightClick(x?: number, y?: number, opts: RequestOptions = {}): Promise<void> {
    await this.#click('right', x, y, false, opts);
  }

  /**
   * A middle click (pastes the X primary selection in most applications).
   *
   * @example
   * ```ts
   * await machine.desktop.middleClick();
   * ```
   */
  async middleClick(x?: number, y?: number, opts: RequestOptions = {}): Promise<void> {
    await this.#click('middle', x, y, false, opts);
  }

  /**
   * A double left click (selects a word in most applications).
   *
   * @example
   * ```ts
   * await machine.desktop.doubleClick(120, 40);
   * ```
   */
  async doubleClick(x?: number, y?: number, opts: RequestOptions = {}): Promise<void> {
    await this.#click('left', x, y, true, opts);
  }

  /**
   * Presses a mouse button and holds it (until {@link Desktop.mouseRelease}).
   *
   * @example
   * ```ts
   * await machine.desktop.mousePress('left');
   * ```
   */
  async mousePress(button: MouseButton = 'left', opts: RequestOptions = {}): Promise<void> {
    await this.#call('desktopMouseDown', 'POST', { button }, opts);
  }

  /**
   * Releases a mouse button.
   *
   * @example
   * ```ts
   * await machine.desktop.mouseRelease('left');
   * ```
   */
  async mouseRelease(button: MouseButton = 'left', opts: RequestOptions = {}): Promise<void> {
    await this.#call('desktopMouseUp', 'POST', { button }, opts);
  }

  /**
   * Drags with the left button from one point to another.
   *
   * @example
   * ```ts
   * await machine.desktop.drag({ x: 10, y: 10 }, { x: 200, y: 150 });
   * ```
   */
  async drag(from: Point, to: Point, opts: RequestOptions = {}): Promise<void> {
    await this.#call('desktopDrag', 'POST', { from, to }, opts);
  }

  /**
   * Turns the wheel: `up`, `down`, `left` or `right`, `amount` steps.
   *
   * @example
   * ```ts
   * await machine.desktop.scroll('down', 3);
   * ```
   */
  async scroll(direction: 'up' | 'down' | 'left' | 'right' = 'down', amount = 1, opts: RequestOptions = {}) {
    await this.#call('desktopScroll', 'POST', { direction, amount }, opts);
  }

  /**
   * Types text into the focused window (any Unicode).
   *
   * @example
   * ```ts
   * await machine.desktop.write('héllo wörld\n', { delayMs: 5 });
   * ```
   */
  async write(text: string, opts: WriteOptions = {}): Promise<void> {
    const body: Body = { text };
    if (opts.chunkSize !== undefined) body.chunk_size = opts.chunkSize;
    if (opts.delayMs !== undefined) body.delay_ms = opts.delayMs;
    await this.#call('desktopWrite', 'POST', body, opts);
  }

  /**
   * Presses a key or a combination (`enter`, `ctrl+c`, X keysym names), or several in turn.
   * An unknown key is an `InvalidArgumentError` naming it.
   *
   * @example
   * ```ts
   * await machine.desktop.press('ctrl+a');
   * await machine.desktop.press(['ctrl+c', 'esc']);
   * ```
   */
  async press(keys: string | string[], opts: RequestOptions = {}): Promise<void> {
    await this.#call('desktopPress', 'POST', { keys }, opts);
  }

  /**
   * The windows on the screen.
   *
   * @example
   * ```ts
   * for (const w of await machine.desktop.listWindows()) console.log(w.id, w.app, w.title);
   * ```
   */
  async listWindows(opts: RequestOptions = {}): Promise<DesktopWindow[]> {
    return (await this.#call<{ items: DesktopWindow[] }>('desktopWindows', 'GET', undefined, opts)).items;
  }

  /**
   * The focused window's id, or null.
   *
   * @example
   * ```ts
   * const id = await machine.desktop.getCurrentWindowId();
   * ```
   */
  async getCurrentWindowId(opts: RequestOptions = {}): Promise<number | null> {
    return (await this.#call<{ id: number | null }>('desktopCurrentWindow', 'GET', undefined, opts)).id;
  }

  /**
   * Raises and focuses a window.
   *
   * @example
   * ```ts
   * await machine.desktop.focusWindow(windows[0].id);
   * ```
   */
  async focusWindow(windowId: number, opts: RequestOptions = {}): Promise<void> {
    await this.#transport.request({
      method: 'POST',
      path: this.#path('desktopFocusWindow', { window: windowId }),
      ...timeout(opts),
    });
  }

  /**
   * Asks a window to close, as its close button does.
   *
   * @example
   * ```ts
   * await machine.desktop.closeWindow(id);
   * ```
   */
  async closeWindow(windowId: number, opts: RequestOptions = {}): Promise<void> {
    await this.#transport.request({
      method: 'DELETE',
      path: this.#path('desktopCloseWindow', { window: windowId }),
      ...timeout(opts),
    });
  }

  /**
   * The clipboard's text ("" when empty).
   *
   * @example
   * ```ts
   * const text = await machine.desktop.getClipboard();
   * ```
   */
  async getClipboard(opts: RequestOptions = {}): Promise<string> {
    return (await this.#call<{ text: string }>('desktopGetClipboard', 'GET', undefined, opts)).text;
  }

  /**
   * Sets the clipboard's text.
   *
   * @example
   * ```ts
   * await machine.desktop.setClipboard('copied');
   * ```
   */
  async setClipboard(text: string, opts: RequestOptions = {}): Promise<void> {
    await this.#call('desktopSetClipboard', 'PUT', { text }, opts);
  }

  /**
   * Starts a graphical application (a program on PATH, run without a shell); returns its pid.
   *
   * @example
   * ```ts
   * const pid = await machine.desktop.launch('xterm', ['-geometry', '80x24+0+0']);
   * ```
   */
  async launch(app: string, args: string[] = [], opts: RequestOptions = {}): Promise<number> {
    return (await this.#call<{ pid: number }>('desktopLaunch', 'POST', { app, args }, opts)).pid;
  }

  /**
   * Opens a file or URL with its default application (xdg-open).
   *
   * @example
   * ```ts
   * await machine.desktop.open('/workspace/report.pdf');
   * ```
   */
  async open(pathOrUrl: string, opts: RequestOptions = {}): Promise<void> {
    await this.#call('desktopOpen', 'POST', { target: pathOrUrl }, opts);
  }

  /**
   * Waits (here, in the client) before the next action.
   *
   * @example
   * ```ts
   * await machine.desktop.wait(500);
   * ```
   */
  async wait(ms: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
  }
}
