import {
  type ExistsResponse,
  type ListFilesResponse,
  type MakeDirResponse,
  type ReplaceResponse,
  ReplaceResponseSchema,
  type SearchResponse,
  SearchResponseSchema,
  type SignedUrlOp,
  type SignedUrlResponse,
  SignedUrlResponseSchema,
  type WatchEventsPage,
  type WatchInfo,
  type FileEntry as WireFileEntry,
  type WatchEvent as WireWatchEvent,
} from '@nullspace/protocol';
import WebSocket from 'ws';
import { type NullspaceError, UnavailableError, errorFromCode } from './errors.js';
import {
  type FileEntry,
  type FileWatchPoller,
  type ReadOptions,
  type ReplaceOptions,
  type ReplaceResult,
  type SearchOptions,
  type SearchResult,
  type SignedFileUrl,
  type SignedUrlOptions,
  type WatchHandle,
  type WatchOptions,
  type WriteData,
  fileEntryFromWire,
  watchEventFromWire,
} from './files-types.js';
import type { RequestOptions, Transport } from './transport.js';
import { fromWire } from './wire.js';

/**
 * A refusal worth waiting out: the machine is busy, asleep (its agent and watches come back when
 * it resumes) or briefly unreachable.
 */
function retryable(err: NullspaceError): boolean {
  if (['unavailable', 'machine_transitioning', 'timeout'].includes(err.code)) return true;
  const status = err.details?.status;
  return (
    err.code === 'invalid_state' && typeof status === 'string' && ['paused', 'hibernated'].includes(status)
  );
}

const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 2000;

/** What the transport sends: bytes, or any async iterable of chunks (read as it is sent). */
function bodyOf(data: WriteData): string | Uint8Array | AsyncIterable<Uint8Array | string> {
  if (typeof data === 'string' || data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (typeof Blob !== 'undefined' && data instanceof Blob)
    return data.stream() as unknown as AsyncIterable<Uint8Array>;
  // Node streams and web ReadableStreams (in Node) are async iterables.
  if (typeof data === 'object' && data !== null && Symbol.asyncIterator in data)
    return data as AsyncIterable<Uint8Array | string>;
  throw errorFromCode('invalid_argument', 'data: must be a string, bytes, a Blob or a stream', {
    details: { field: 'data' },
  });
}

function timeoutOf(opts: RequestOptions): { timeoutMs?: number } {
  return opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs };
}

/**
 * The files of a machine: read and write (streamed), list, stat, search and replace in content,
 * watch for changes, and URLs that read or write one file without an API key. Paths are
 * absolute; `..` is refused.
 *
 * @example
 * ```ts
 * await machine.files.write('/workspace/hello.txt', 'hi\n');
 * console.log(await machine.files.read('/workspace/hello.txt')); // "hi\n"
 * ```
 */
export class Files {
  readonly #machineId: string;
  readonly #transport: Transport;

  /**
   * Made by `Machine`; use `machine.files`.
   *
   * @example
   * ```ts
   * const files = machine.files;
   * ```
   */
  constructor(machineId: string, transport: Transport) {
    this.#machineId = machineId;
    this.#transport = transport;
  }

  get #base(): string {
    return `/v1/machines/${encodeURIComponent(this.#machineId)}/files`;
  }

  #query(params: Record<string, string | number | undefined>): URLSearchParams {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
    return q;
  }

  /**
   * Reads a file: as text (default), bytes, or a stream that is not held in memory.
   *
   * @example
   * ```ts
   * const text = await machine.files.read('/etc/hostname');
   * const bytes = await machine.files.read('/bin/ls', { format: 'bytes' });
   * const stream = await machine.files.read('/data/big.bin', { format: 'stream' });
   * for await (const chunk of stream) process.stdout.write(chunk);
   * ```
   */
  read(path: string, opts?: ReadOptions<'text'>): Promise<string>;
  read(path: string, opts: ReadOptions<'bytes'>): Promise<Uint8Array>;
  read(path: string, opts: ReadOptions<'stream'>): Promise<ReadableStream<Uint8Array>>;
  async read(
    path: string,
    opts: ReadOptions = {},
  ): Promise<string | Uint8Array | ReadableStream<Uint8Array>> {
    const res = await this.#transport.raw({
      method: 'GET',
      path: this.#base,
      query: this.#query({ path }),
      ...timeoutOf(opts),
    });
    const format = opts.format ?? 'text';
    if (format === 'stream') return res.body;
    if (format === 'bytes') {
      const b = await res.buffer();
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength); // a view, not a copy
    }
    return res.text();
  }

  /**
   * Writes a file, creating missing parents. The bytes are streamed, and land atomically: readers
   * see the old content or the new one, and a full disk (`disk_full`, 507) leaves the old file as
   * it was. Without `requestTimeoutMs`, an upload may take as long as it needs.
   *
   * @example
   * ```ts
   * await machine.files.write('/workspace/a/b/c.txt', 'hello');
   * await machine.files.write('/workspace/data.bin', new Uint8Array([1, 2, 3]));
   * await machine.files.write('/workspace/big.iso', createReadStream('big.iso'));
   * ```
   */
  async write(path: string, data: WriteData, opts: RequestOptions = {}): Promise<FileEntry> {
    const res = await this.#transport.raw({
      method: 'PUT',
      path: this.#base,
      query: this.#query({ path }),
      body: bodyOf(data),
      headers: { 'content-type': 'application/octet-stream' },
      timeoutMs: opts.requestTimeoutMs ?? 0,
    });
    return fileEntryFromWire((await res.json()) as WireFileEntry);
  }

  /**
   * Lists a directory, `depth` levels down (default 1 = its own entries). `truncated` is true
   * past 100 000 entries.
   *
   * @example
   * ```ts
   * const { entries } = await machine.files.list('/workspace', { depth: 2 });
   * for (const e of entries) console.log(e.type, e.path);
   * ```
   */
  async list(
    path: string,
    opts: RequestOptions & { depth?: number } = {},
  ): Promise<{ entries: FileEntry[]; truncated: boolean }> {
    const wire = await this.#transport.request<ListFilesResponse>({
      method: 'GET',
      path: `${this.#base}/list`,
      query: this.#query({ path, depth: opts.depth }),
      ...timeoutOf(opts),
    });
    return { entries: wire.entries.map(fileEntryFromWire), truncated: wire.truncated };
  }

  /**
   * Describes one path (a symlink itself, not what it points to).
   *
   * @example
   * ```ts
   * const { size, mtime } = await machine.files.stat('/workspace/app.py');
   * ```
   */
  async stat(path: string, opts: RequestOptions = {}): Promise<FileEntry> {
    const wire = await this.#transport.request<WireFileEntry>({
      method: 'GET',
      path: `${this.#base}/stat`,
      query: this.#query({ path }),
      ...timeoutOf(opts),
    });
    return fileEntryFromWire(wire);
  }

  /**
   * Whether a path exists (a dangling symlink exists).
   *
   * @example
   * ```ts
   * if (!(await machine.files.exists('/workspace/.venv'))) await machine.commands.run('python3 -m venv .venv');
   * ```
   */
  async exists(path: string, opts: RequestOptions = {}): Promise<boolean> {
    const wire = await this.#transport.request<ExistsResponse>({
      method: 'GET',
      path: `${this.#base}/exists`,
      query: this.#query({ path }),
      ...timeoutOf(opts),
    });
    return wire.exists;
  }

  /**
   * Creates a directory and its missing parents; returns false when it was already there.
   *
   * @example
   * ```ts
   * await machine.files.makeDir('/workspace/out/logs');
   * ```
   */
  async makeDir(path: string, opts: RequestOptions & { parents?: boolean } = {}): Promise<boolean> {
    const wire = await this.#transport.request<MakeDirResponse>({
      method: 'POST',
      path: `${this.#base}/mkdir`,
      body: { path, parents: opts.parents ?? true },
      ...timeoutOf(opts),
    });
    return wire.created;
  }

  /**
   * Moves or renames a file or directory (parents of `to` are created). An existing `to` is a
   * `conflict` unless `overwrite`.
   *
   * @example
   * ```ts
   * await machine.files.move('/workspace/draft.md', '/workspace/docs/final.md');
   * ```
   */
  async move(
    from: string,
    to: string,
    opts: RequestOptions & { overwrite?: boolean } = {},
  ): Promise<FileEntry> {
    const wire = await this.#transport.request<WireFileEntry>({
      method: 'POST',
      path: `${this.#base}/move`,
      body: { from, to, overwrite: opts.overwrite ?? false },
      ...timeoutOf(opts),
    });
    return fileEntryFromWire(wire);
  }

  /**
   * Removes a file, a symlink (not its target) or a directory with everything in it.
   *
   * @example
   * ```ts
   * await machine.files.remove('/workspace/build');
   * ```
   */
  async remove(path: string, opts: RequestOptions = {}): Promise<void> {
    await this.#transport.request({
      method: 'DELETE',
      path: this.#base,
      query: this.#query({ path }),
      ...timeoutOf(opts),
    });
  }

  /**
   * Searches file contents under `path`, line by line. Binary files and files over 10 MiB are
   * skipped.
   *
   * @example
   * ```ts
   * const { matches } = await machine.files.search('/workspace', 'TODO', { include: ['*.py'] });
   * ```
   */
  async search(path: string, pattern: string, opts: SearchOptions = {}): Promise<SearchResult> {
    const wire = await this.#transport.request<SearchResponse>({
      method: 'POST',
      path: `${this.#base}/search`,
      body: {
        path,
        pattern,
        regex: opts.regex ?? false,
        case_sensitive: opts.caseSensitive ?? true,
        include: opts.include ?? [],
        exclude: opts.exclude ?? [],
        max_results: opts.maxResults,
      },
      timeoutMs: opts.requestTimeoutMs ?? 300_000,
    });
    return fromWire(SearchResponseSchema, wire);
  }

  /**
   * Replaces `pattern` with `replacement` in files: `paths`, or every text file under `path`
   * (narrowed by globs). Each file is rewritten atomically.
   *
   * @example
   * ```ts
   * const r = await machine.files.replace('v1.2.3', 'v1.2.4', { path: '/workspace', include: ['*.json'] });
   * console.log(r.filesChanged, r.totalReplacements);
   * ```
   */
  async replace(pattern: string, replacement: string, opts: ReplaceOptions): Promise<ReplaceResult> {
    const body: Record<string, unknown> = {
      pattern,
      replacement,
      regex: opts.regex ?? false,
      case_sensitive: opts.caseSensitive ?? true,
    };
    if (opts.paths !== undefined) body.paths = opts.paths;
    if (opts.path !== undefined) body.path = opts.path;
    if (opts.include !== undefined) body.include = opts.include;
    if (opts.exclude !== undefined) body.exclude = opts.exclude;
    const wire = await this.#transport.request<ReplaceResponse>({
      method: 'POST',
      path: `${this.#base}/replace`,
      body,
      timeoutMs: opts.requestTimeoutMs ?? 300_000,
    });
    return fromWire(ReplaceResponseSchema, wire);
  }

  /**
   * Watches a directory over a WebSocket: every create, write, rename and remove comes to
   * `onEvent`, in order, until `stop()`. A dropped connection (a pause, a server restart) is
   * reopened by itself and resumes after the last event delivered.
   *
   * @example
   * ```ts
   * const handle = await machine.files.watch('/workspace', {
   *   recursive: true,
   *   onEvent: (e) => console.log(e.type, e.type === 'rename' ? `${e.from} -> ${e.to}` : e.path),
   * });
   * await machine.commands.run('touch /workspace/new.txt');
   * await handle.stop();
   * ```
   */
  async watch(path: string, opts: WatchOptions): Promise<WatchHandle> {
    const info = await this.#createWatch(path, opts.recursive ?? false, {});
    const watchId = info.watch_id;
    const wsBase = `${this.#transport.apiUrl.replace(/^http/, 'ws')}${this.#base}/watches/${watchId}/ws`;
    let last = 0;
    let stopped = false;
    let current: WebSocket | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let backoff = FIRST_BACKOFF_MS;
    const fail = (err: NullspaceError) => {
      if (stopped) return;
      stopped = true;
      current?.terminate();
      opts.onError?.(err);
    };
    let connectedOnce = false;
    const schedule = (err: NullspaceError | undefined) => {
      // Refusals that will not change (the machine is gone, the key is wrong) end the watch.
      if (err && !retryable(err)) {
        fail(err);
        return;
      }
      clearTimeout(retry);
      retry = setTimeout(() => {
        if (!stopped) void connect();
      }, backoff);
      backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    };

    /** Opens one connection; resolves once it opened (or with the error that kept it from opening). */
    const connect = (): Promise<NullspaceError | undefined> =>
      new Promise((resolveOpen) => {
        const ws = new WebSocket(`${wsBase}?after=${last}`, {
          headers: this.#transport.authHeaders(),
          maxPayload: 16 * 1024 * 1024,
        });
        current = ws;
        let opened = false;
        let refusal: NullspaceError | undefined;
        ws.on('open', () => {
          opened = true;
          backoff = FIRST_BACKOFF_MS;
          resolveOpen(undefined);
        });
        ws.on('message', (data) => {
          let e: WireWatchEvent;
          try {
            e = JSON.parse(String(data)) as WireWatchEvent;
          } catch {
            return;
          }
          if (e.id <= last) return;
          last = e.id;
          opts.onEvent(watchEventFromWire(e));
        });
        ws.on('unexpected-response', (_req, res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => {
            let wire: { code?: string; message?: string; details?: Record<string, unknown> } | undefined;
            try {
              wire = (JSON.parse(text) as { error?: typeof wire }).error;
            } catch {
              wire = undefined;
            }
            refusal = errorFromCode(wire?.code, wire?.message ?? `HTTP ${res.statusCode}`, {
              status: res.statusCode ?? 500,
              ...(wire?.details ? { details: wire.details } : {}),
            });
            ws.terminate();
          });
        });
        ws.on('error', (err: Error & { code?: string }) => {
          if (!refusal)
            refusal = new UnavailableError(
              'unavailable',
              `file watch WebSocket failed (${err.code ?? err.message})`,
              {
                cause: err,
              },
            );
        });
        ws.on('close', (code) => {
          if (current === ws) current = undefined;
          if (!opened) {
            resolveOpen(refusal ?? new UnavailableError('unavailable', 'file watch WebSocket closed'));
            if (!stopped && connectedOnce) schedule(refusal);
            return;
          }
          if (stopped) return;
          // 1000: the watch was deleted; anything else is a drop (refusals — a watch gone or too far
          // behind — come as HTTP errors before the upgrade).
          if (code === 1000) {
            fail(refusal ?? errorFromCode('not_found', `file watch ${watchId} ended (close code ${code})`));
            return;
          }
          schedule(undefined);
        });
      });

    const first = await connect();
    if (first) {
      stopped = true;
      await this.#deleteWatch(watchId).catch(() => undefined);
      throw first;
    }
    connectedOnce = true;
    return {
      watchId,
      get lastEventId() {
        return last;
      },
      stop: async () => {
        stopped = true;
        clearTimeout(retry);
        current?.close(1000);
        await this.#deleteWatch(watchId).catch((err: NullspaceError) => {
          if (err.code !== 'not_found') throw err;
        });
      },
    };
  }

  /**
   * The polling form of {@link Files.watch}: creates a watch whose events are read with
   * `events({after, waitMs})` (a long poll when `waitMs` is given). A watch nobody reads for
   * 5 minutes is dropped; `stop()` deletes it at once.
   *
   * @example
   * ```ts
   * const watch = await machine.files.createWatch('/workspace', { recursive: true });
   * let after = 0;
   * const page = await watch.events({ after, waitMs: 10_000 });
   * for (const e of page.events) console.log(e.type, e.path);
   * after = page.lastEventId;
   * await watch.stop();
   * ```
   */
  async createWatch(
    path: string,
    opts: RequestOptions & { recursive?: boolean } = {},
  ): Promise<FileWatchPoller> {
    const info = await this.#createWatch(path, opts.recursive ?? false, opts);
    const watchId = info.watch_id;
    return {
      watchId,
      events: async (o = {}) => {
        const wait = o.waitMs ?? 0;
        const wire = await this.#transport.request<WatchEventsPage>({
          method: 'GET',
          path: `${this.#base}/watches/${watchId}/events`,
          query: this.#query({ after: o.after ?? 0, wait_ms: o.waitMs, limit: o.limit }),
          timeoutMs:
            (o.requestTimeoutMs ?? this.#transport.requestTimeoutMs) === 0
              ? 0
              : (o.requestTimeoutMs ?? this.#transport.requestTimeoutMs) + wait,
        });
        return { events: wire.events.map(watchEventFromWire), lastEventId: wire.last_event_id };
      },
      stop: () => this.#deleteWatch(watchId),
    };
  }

  async #createWatch(path: string, recursive: boolean, opts: RequestOptions): Promise<WatchInfo> {
    return this.#transport.request<WatchInfo>({
      method: 'POST',
      path: `${this.#base}/watches`,
      body: { path, recursive },
      ...timeoutOf(opts),
    });
  }

  async #deleteWatch(watchId: string): Promise<void> {
    await this.#transport.request({ method: 'DELETE', path: `${this.#base}/watches/${watchId}` });
  }

  /**
   * A URL that reads (`op: 'read'`, GET) or writes (`op: 'write'`, PUT or POST) one file without
   * an API key, until it expires.
   *
   * @example
   * ```ts
   * const { url } = await machine.files.signedUrl('/workspace/report.pdf', { op: 'read', expiresIn: 600 });
   * // curl -fsS "$url" -o report.pdf
   * ```
   */
  async signedUrl(path: string, opts: SignedUrlOptions & { op: SignedUrlOp }): Promise<SignedFileUrl> {
    const wire = await this.#transport.request<SignedUrlResponse>({
      method: 'POST',
      path: `${this.#base}/signed_url`,
      body: { path, op: opts.op, ...(opts.expiresIn === undefined ? {} : { expires_in: opts.expiresIn }) },
      ...timeoutOf(opts),
    });
    return fromWire(SignedUrlResponseSchema, wire);
  }

  /**
   * A URL to upload one file with no API key: `curl -T file "$url"` (PUT), or POST the bytes.
   *
   * @example
   * ```ts
   * const url = await machine.files.uploadUrl('/workspace/input.csv', { expiresIn: 600 });
   * ```
   */
  async uploadUrl(path: string, opts: SignedUrlOptions = {}): Promise<string> {
    return (await this.signedUrl(path, { ...opts, op: 'write' })).url;
  }

  /**
   * A URL to download one file with no API key: `curl -fsS "$url" -o file`.
   *
   * @example
   * ```ts
   * const url = await machine.files.downloadUrl('/workspace/out.zip', { expiresIn: 3600 });
   * ```
   */
  async downloadUrl(path: string, opts: SignedUrlOptions = {}): Promise<string> {
    return (await this.signedUrl(path, { ...opts, op: 'read' })).url;
  }
}
