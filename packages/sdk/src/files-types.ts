/**
 * The types of `machine.files`: entries, read/write/search/replace/watch options and results,
 * signed URLs, and their conversions from the wire.
 */
import {
  FileEntrySchema,
  type ReplaceBodySchema,
  type ReplaceResponseSchema,
  type SearchBodySchema,
  type SearchMatchSchema,
  type SearchResponseSchema,
  type SignedUrlResponseSchema,
  WatchEventSchema,
  type FileEntry as WireFileEntry,
  type WatchEvent as WireWatchEvent,
} from '@nullspace/protocol';
import type { NullspaceError } from './errors.js';
import type { RequestOptions } from './transport.js';
import { type FromWire, fromWire } from './wire.js';

/**
 * One file, directory or symlink in a machine.
 *
 * @example
 * ```ts
 * const entry = await machine.files.stat('/workspace/app.py');
 * console.log(entry.type, entry.size, entry.mode, entry.mtime.toISOString());
 * ```
 */
export interface FileEntry extends FromWire<typeof FileEntrySchema> {}

/**
 * Converts a wire entry (snake_case, ISO time) to the SDK's.
 *
 * @example
 * ```ts
 * const entry = fileEntryFromWire({ name: 'a', path: '/a', type: 'file', size: 1, mode: '644', mtime: new Date().toISOString() });
 * ```
 */
export function fileEntryFromWire(w: WireFileEntry): FileEntry {
  return fromWire(FileEntrySchema, w);
}

/**
 * What {@link Files.write} accepts: text (written as UTF-8), bytes, a Blob, a Node.js readable
 * stream or a web `ReadableStream`. Streams are sent as they are read, never held whole.
 *
 * @example
 * ```ts
 * import { createReadStream } from 'node:fs';
 * await machine.files.write('/data/big.bin', createReadStream('big.bin'));
 * ```
 */
export type WriteData =
  | string
  | Uint8Array
  | ArrayBuffer
  | Blob
  | ReadableStream<Uint8Array>
  | NodeJS.ReadableStream
  | AsyncIterable<Uint8Array | string>;

/**
 * Options of {@link Files.read}.
 *
 * @example
 * ```ts
 * const bytes = await machine.files.read('/bin/true', { format: 'bytes' });
 * ```
 */
export interface ReadOptions<F extends 'text' | 'bytes' | 'stream' = 'text' | 'bytes' | 'stream'>
  extends RequestOptions {
  /** `text` (UTF-8, the default), `bytes` (Uint8Array) or `stream` (a web ReadableStream, not buffered). */
  format?: F;
}

/**
 * One content match of {@link Files.search}.
 *
 * @example
 * ```ts
 * for (const m of (await machine.files.search('/workspace', 'TODO')).matches) console.log(`${m.path}:${m.line}:${m.column}: ${m.text}`);
 * ```
 */
export interface SearchMatch extends FromWire<typeof SearchMatchSchema> {}

/**
 * What {@link Files.search} found.
 *
 * @example
 * ```ts
 * const { matches, truncated, filesScanned } = await machine.files.search('/workspace', 'TODO');
 * ```
 */
export interface SearchResult extends FromWire<typeof SearchResponseSchema> {}

/**
 * Options of {@link Files.search}.
 *
 * @example
 * ```ts
 * await machine.files.search('/workspace', 'fetch\\(', { regex: true, include: ['*.ts'], exclude: ['node_modules'] });
 * ```
 */
export interface SearchOptions
  extends Omit<FromWire<typeof SearchBodySchema>, 'path' | 'pattern'>,
    RequestOptions {}

/**
 * Options of {@link Files.replace}: which files (`paths`, or `path` with globs) and how to match.
 *
 * @example
 * ```ts
 * await machine.files.replace('http://', 'https://', { path: '/workspace', include: ['*.md'] });
 * ```
 */
export interface ReplaceOptions
  extends Omit<FromWire<typeof ReplaceBodySchema>, 'pattern' | 'replacement'>,
    RequestOptions {}

/**
 * What {@link Files.replace} changed.
 *
 * @example
 * ```ts
 * const { filesChanged, totalReplacements } = await machine.files.replace('foo', 'bar', { path: '/workspace' });
 * ```
 */
export interface ReplaceResult extends FromWire<typeof ReplaceResponseSchema> {}

/**
 * One change seen by a watch. `rename` has `from` and `to` (`path` is `to`).
 *
 * @example
 * ```ts
 * await machine.files.watch('/workspace', { onEvent: (e) => console.log(e.id, e.type, e.path) });
 * ```
 */
export interface WatchEvent extends FromWire<typeof WatchEventSchema> {}

/**
 * Converts a wire watch event to the SDK's.
 *
 * @example
 * ```ts
 * const e = watchEventFromWire({ id: 1, type: 'create', path: '/a', is_dir: false, at: new Date().toISOString() });
 * ```
 */
export function watchEventFromWire(w: WireWatchEvent): WatchEvent {
  return fromWire(WatchEventSchema, w);
}

/**
 * Options of {@link Files.watch}.
 *
 * @example
 * ```ts
 * const opts: WatchOptions = { recursive: true, onEvent: (e) => console.log(e.type, e.path), onError: console.error };
 * ```
 */
export interface WatchOptions {
  /** Follow subdirectories too (new ones as they appear). Default false. */
  recursive?: boolean;
  onEvent: (event: WatchEvent) => void;
  /** A failure that ended the watch (the machine was killed, the watch was dropped). */
  onError?: (err: NullspaceError) => void;
}

/**
 * A running {@link Files.watch}: events keep coming to `onEvent` until `stop()`.
 *
 * @example
 * ```ts
 * const handle = await machine.files.watch('/workspace', { onEvent: console.log });
 * await handle.stop();
 * ```
 */
export interface WatchHandle {
  readonly watchId: string;
  /** Id of the last event delivered. */
  readonly lastEventId: number;
  /** Closes the WebSocket and deletes the watch in the machine. */
  stop(): Promise<void>;
}

/**
 * A signed URL to one file, usable without an API key (`curl "$url"`, `curl -T file "$url"`).
 *
 * @example
 * ```ts
 * const { url, expiresAt } = await machine.files.signedUrl('/workspace/report.pdf', { op: 'read', expiresIn: 600 });
 * ```
 */
export interface SignedFileUrl extends FromWire<typeof SignedUrlResponseSchema> {}

/**
 * Options of {@link Files.uploadUrl} and {@link Files.downloadUrl}.
 *
 * @example
 * ```ts
 * const url = await machine.downloadUrl('/workspace/out.csv', { expiresIn: 300 });
 * ```
 */
export interface SignedUrlOptions extends RequestOptions {
  /** Seconds until the URL stops working: 1 to 604 800 (7 days). Default 3600. */
  expiresIn?: number;
}

/**
 * A watch read by polling, from {@link Files.createWatch}.
 *
 * @example
 * ```ts
 * const page = await watch.events({ after: 0, waitMs: 5_000 });
 * ```
 */
export interface FileWatchPoller {
  readonly watchId: string;
  /** Events after `after` (default 0); waits up to `waitMs` (≤ 30 000) for one when there is none. */
  events(
    opts?: RequestOptions & { after?: number; waitMs?: number; limit?: number },
  ): Promise<{ events: WatchEvent[]; lastEventId: number }>;
  /** Deletes the watch. */
  stop(): Promise<void>;
}
