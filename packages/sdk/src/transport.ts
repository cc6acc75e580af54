import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isPlainObject } from '@nullspace/protocol';
import {
  InvalidArgumentError,
  type NullspaceError,
  TimeoutError,
  UnavailableError,
  errorFromCode,
} from './errors.js';

/** Where the API is when neither the options nor `NULLSPACE_API_URL` say. */
export const DEFAULT_API_URL = 'http://127.0.0.1:7070';
/**
 * How long one HTTP request may take unless `requestTimeoutMs` says otherwise: longer than the
 * server's own deadline for a transition (`NULLSPACE_TRANSITION_TIMEOUT_MS`, 120 s), so that a slow
 * create, kill or resume ends with the server's answer (a coded error, the machine in a defined
 * state) rather than with the client giving up first and learning nothing.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 150_000;

const SDK_USER_AGENT = 'nullspace-sdk-ts/0.1.0';

// One pool of connections per scheme for every Transport of the process: calls reuse connections
// (an idle one does not keep the process alive, and is dropped before the server's keep-alive
// timeout, which the server announces).
const HTTP_AGENT = new http.Agent({ keepAlive: true });
const HTTPS_AGENT = new https.Agent({ keepAlive: true });

/**
 * How to reach the API. Accepted by every static `Machine` call and by the `Machine` constructor.
 *
 * @example
 * ```ts
 * const machine = await Machine.create({
 *   apiUrl: 'http://10.0.0.5:7070',
 *   apiKey: process.env.MY_KEY,
 *   requestTimeoutMs: 120_000,
 * });
 * ```
 */
export interface ConnectionOptions {
  /** Base URL of the server. Default: `NULLSPACE_API_URL`, else `http://127.0.0.1:7070`. */
  apiUrl?: string;
  /** API key, sent as `Authorization: Bearer <key>`. Default: `NULLSPACE_API_KEY`. */
  apiKey?: string;
  /**
   * Milliseconds one HTTP request may take before it fails with `TimeoutError`; `0` means no
   * limit. Default 60 000. Calls that wait on purpose (a command's `timeoutMs`, a warm pool's
   * `warmPoolWaitMs`) get that wait added on top.
   */
  requestTimeoutMs?: number;
}

/**
 * Per-call options for calls on a `Machine` handle, which already knows its connection.
 *
 * @example
 * ```ts
 * await machine.kill({ requestTimeoutMs: 5_000 });
 * ```
 */
export interface RequestOptions {
  /** Overrides the handle's `requestTimeoutMs` for this call. */
  requestTimeoutMs?: number;
}

/** One request's shape for {@link Transport.request}. */
export interface TransportRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path below the API URL, starting with `/v1/`. */
  path: string;
  query?: URLSearchParams;
  body?: unknown;
  /** Overrides the transport's request timeout. */
  timeoutMs?: number;
}

function envValue(name: string): string | undefined {
  // Guarded so the SDK also loads where there is no `process` (it then needs explicit options).
  const value = typeof process === 'undefined' ? undefined : process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The one HTTP client every namespace of the SDK shares: resolves the connection options, sends
 * JSON and bytes over `node:http(s)` with keep-alive, applies request timeouts and turns every
 * failure into a typed {@link NullspaceError}.
 * Internal: use `Machine` instead.
 *
 * @internal
 * @example
 * ```ts
 * const transport = new Transport({ apiUrl: 'http://127.0.0.1:7070' });
 * const info = await transport.request({ method: 'GET', path: '/v1/machines/mch_aaaaaaaaaaaaaaaaaaaa' });
 * ```
 */
export class Transport {
  /** Normalised base URL, without a trailing slash. */
  readonly apiUrl: string;
  readonly requestTimeoutMs: number;
  readonly #apiKey: string | undefined;

  constructor(opts: ConnectionOptions = {}) {
    const apiUrl = opts.apiUrl ?? envValue('NULLSPACE_API_URL') ?? DEFAULT_API_URL;
    let parsed: URL;
    try {
      parsed = new URL(apiUrl);
    } catch {
      throw new InvalidArgumentError('invalid_argument', `apiUrl: "${apiUrl}" is not a URL`, {
        details: { field: 'apiUrl' },
      });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new InvalidArgumentError(
        'invalid_argument',
        `apiUrl: must be an http or https URL, got "${apiUrl}"`,
        {
          details: { field: 'apiUrl' },
        },
      );
    this.apiUrl = apiUrl.replace(/\/+$/, '');
    this.#apiKey = opts.apiKey ?? envValue('NULLSPACE_API_KEY');
    const timeout = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!Number.isFinite(timeout) || timeout < 0)
      throw new InvalidArgumentError('invalid_argument', 'requestTimeoutMs: must be a number >= 0', {
        details: { field: 'requestTimeoutMs' },
      });
    this.requestTimeoutMs = timeout;
  }

  /** Headers that authenticate a request made outside {@link Transport.request} (WebSockets). */
  authHeaders(): Record<string, string> {
    const headers: Record<string, string> = { 'user-agent': SDK_USER_AGENT };
    if (this.#apiKey !== undefined) headers.authorization = `Bearer ${this.#apiKey}`;
    return headers;
  }

  /**
   * Sends one request and returns its parsed JSON body; throws a typed error for any failure.
   * `timeoutMs` bounds the whole exchange, the answer's body included.
   */
  async request<T>(req: TransportRequest): Promise<T> {
    const timeoutMs = req.timeoutMs ?? this.requestTimeoutMs;
    const signal = timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined;
    const res = await this.raw({
      method: req.method,
      path: req.path,
      ...(req.query === undefined ? {} : { query: req.query }),
      ...(req.body === undefined ? {} : { json: req.body }),
      headers: { accept: 'application/json' },
      timeoutMs,
      ...(signal === undefined ? {} : { signal }),
    });
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw this.#networkError(signal?.aborted ? signal.reason : err, req.method, res.url, timeoutMs);
    }
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      const requestId = res.headers.get('x-request-id') ?? undefined;
      throw errorFromCode(
        'internal',
        `${req.method} ${res.url}: the server answered ${res.status} with a body that is not JSON`,
        { status: res.status, ...(requestId === undefined ? {} : { requestId }) },
      );
    }
  }

  /**
   * Sends one request and returns the response once its headers arrived; any error status
   * becomes a typed error. `timeoutMs` bounds the wait for the headers only: a stream may then
   * last as long as it needs (`signal` ends it). The one HTTP client of the SDK: `node:http(s)`
   * with keep-alive agents, so connections are reused and bytes stay Node buffers end to end (no
   * web-stream conversion per chunk, which cost a quarter of the throughput of a streamed command;
   * bench/README.md, "Inside a machine").
   */
  raw(req: {
    method: 'GET' | 'POST' | 'PUT' | 'DELETE';
    path: string;
    query?: URLSearchParams;
    /** Bytes, or any (async) iterable of chunks — a Node stream, a web ReadableStream — sent as read. */
    body?: string | Uint8Array | AsyncIterable<Uint8Array | string>;
    json?: unknown;
    headers?: Record<string, string>;
    timeoutMs?: number;
    signal?: AbortSignal;
  }): Promise<RawResponse> {
    const query = req.query?.toString() ?? '';
    const url = this.apiUrl + req.path + (query === '' ? '' : `?${query}`);
    const headers: Record<string, string | number> = { 'user-agent': SDK_USER_AGENT, ...req.headers };
    if (this.#apiKey !== undefined) headers.authorization = `Bearer ${this.#apiKey}`;
    let payload: Buffer | undefined;
    let stream: AsyncIterable<Uint8Array | string> | undefined;
    if (req.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = Buffer.from(JSON.stringify(req.json));
    } else if (typeof req.body === 'string' || req.body instanceof Uint8Array)
      payload = Buffer.from(req.body);
    else stream = req.body;
    if (payload !== undefined) headers['content-length'] = payload.length;
    else if (stream === undefined) headers['content-length'] = 0;
    const timeoutMs = req.timeoutMs ?? this.requestTimeoutMs;
    const target = new URL(url);
    const secure = target.protocol === 'https:';
    return new Promise<RawResponse>((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      };
      const request = (secure ? https : http).request(target, {
        method: req.method,
        headers,
        agent: secure ? HTTPS_AGENT : HTTP_AGENT,
      });
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              const err = Object.assign(new Error('headers timeout'), { name: 'TimeoutError' });
              fail(this.#networkError(err, req.method, url, timeoutMs));
              request.destroy();
            }, timeoutMs)
          : undefined;
      const onAbort = () => {
        fail(this.#networkError(req.signal?.reason ?? new Error('aborted'), req.method, url, timeoutMs));
        request.destroy();
      };
      if (req.signal?.aborted) return onAbort();
      req.signal?.addEventListener('abort', onAbort, { once: true });
      request.on('error', (err) => fail(this.#networkError(err, req.method, url, timeoutMs)));
      request.on('response', (res) => {
        clearTimeout(timer);
        const status = res.statusCode ?? 500;
        const response = new RawResponse(res, status, url, req.signal, onAbort);
        if (status >= 200 && status < 300) {
          settled = true;
          resolve(response);
          return;
        }
        response.text().then(
          (text) => fail(this.#responseError(response, res.statusMessage ?? '', text, req.method, url)),
          (err: unknown) => fail(this.#networkError(err, req.method, url, timeoutMs)),
        );
      });
      if (stream === undefined) request.end(payload);
      else
        pipeline(Readable.from(stream), request).catch((err: unknown) => {
          request.destroy(err as Error);
        });
    });
  }

  #responseError(response: RawResponse, statusText: string, text: string, method: string, url: string) {
    const requestId = response.headers.get('x-request-id') ?? undefined;
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
    const base = {
      status: response.status,
      ...(retryAfter === undefined ? {} : { retryAfter }),
    };
    const wire = parseErrorBody(text);
    if (wire !== undefined) {
      const id = wire.request_id ?? requestId;
      return errorFromCode(wire.code, wire.message, {
        ...base,
        ...(id === undefined ? {} : { requestId: id }),
        ...(wire.details === undefined ? {} : { details: wire.details }),
      });
    }
    // Not our error shape: a proxy in between, or not a Nullspace server at this URL.
    const reason = statusText === '' ? '' : ` ${statusText}`;
    return errorFromCode(
      undefined,
      `${method} ${url}: HTTP ${response.status}${reason} (not a Nullspace error response)`,
      {
        ...base,
        ...(requestId === undefined ? {} : { requestId }),
      },
    );
  }

  #networkError(err: unknown, method: string, url: string, timeoutMs: number): NullspaceError {
    const name = err instanceof Error ? err.name : '';
    if (name === 'TimeoutError')
      return new TimeoutError(
        'timeout',
        `${method} ${url} timed out after ${timeoutMs} ms (requestTimeoutMs)`,
        {
          details: { url, method, timeout_ms: timeoutMs },
          cause: err,
        },
      );
    const reason = networkReason(err);
    return new UnavailableError(
      'unavailable',
      `cannot reach the Nullspace API at ${this.apiUrl} (${reason})`,
      {
        details: { url, method, reason },
        cause: err,
      },
    );
  }
}

/** The short system reason behind a failed request, e.g. `ECONNREFUSED`. */
function networkReason(err: unknown): string {
  let current: unknown = err;
  // A wrapped socket error is the `cause`; happy-eyeballs wraps several in an AggregateError.
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    if (current instanceof AggregateError && current.errors[0] !== undefined) current = current.errors[0];
    else if (current.cause !== undefined) current = current.cause;
    else return current.message;
  }
  return err instanceof Error ? err.message : String(err);
}

interface WireError {
  code: string;
  message: string;
  details?: Record<string, unknown>;
  request_id?: string;
}

function parseErrorBody(text: string): WireError | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isPlainObject(body) || !isPlainObject(body.error)) return undefined;
  const { code, message, details, request_id } = body.error;
  if (typeof code !== 'string' || typeof message !== 'string') return undefined;
  const wire: WireError = { code, message };
  if (isPlainObject(details)) wire.details = details;
  if (typeof request_id === 'string') wire.request_id = request_id;
  return wire;
}

/** `Retry-After` is either whole seconds or an HTTP date; returns seconds from now. */
function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * The answer of {@link Transport.raw}: status, headers and the body as a Node stream (`stream`),
 * read whole with `buffer()`/`text()`/`json()`, or as a web stream with `body`.
 *
 * @internal
 */
export class RawResponse {
  readonly headers: Headers;

  constructor(
    readonly stream: http.IncomingMessage,
    readonly status: number,
    /** The URL the request went to. */
    readonly url: string,
    signal?: AbortSignal,
    onAbort?: () => void,
  ) {
    this.headers = new Headers();
    for (const [k, v] of Object.entries(stream.headers)) {
      if (v !== undefined) this.headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    }
    if (signal && onAbort) {
      const abort = () => stream.destroy(new Error('aborted'));
      signal.addEventListener('abort', abort, { once: true });
      stream.once('close', () => {
        signal.removeEventListener('abort', abort);
        signal.removeEventListener('abort', onAbort);
      });
    }
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** The body as a web stream (not buffered). */
  get body(): ReadableStream<Uint8Array> {
    return Readable.toWeb(this.stream) as unknown as ReadableStream<Uint8Array>;
  }

  async buffer(): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.buffer();
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }

  async text(): Promise<string> {
    return (await this.buffer()).toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }
}
