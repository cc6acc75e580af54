import { randomBytes } from 'node:crypto';
import { type FSWatcher, type Stats, watch as fsWatch } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import {
  CodedError,
  FILE_LIMITS,
  type WatchEvent,
  type WatchEventType,
  type WatchEventsPage,
  type WatchInfo,
} from '@nullspace/protocol/core';
import { log } from '../log.js';
import { childPath } from './entries.js';
import { fsError } from './fs-errors.js';
import { TEMP_NAME } from './transfer.js';

/** What the watch knows of one path: enough to tell a rename from a remove and a create. */
interface Known {
  ino: number;
  dev: number;
  /** Birth time (statx), 0 where the file system has none: tells a reused inode from a moved one. */
  birth: number;
  isDir: boolean;
  /** For the catch-up after a suspension: a file whose mtime or size moved was written. */
  mtime: number;
  size: number;
}

/** One notification from `fs.watch`, in the order the kernel gave them. */
interface RawEvent {
  dir: string;
  kind: 'rename' | 'change';
  name: string | null;
}

/** A path that disappeared; the next raw event says whether it reappeared elsewhere (a rename). */
interface Vanished {
  path: string;
  known: Known;
}

/** After a suspension for a checkpoint, watches resume by themselves after this long. */
const RESUME_AFTER_MS = 5000;

/** How long a vanished path waits for its other half before it is reported removed. */
const RENAME_PAIR_MS = 50;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
function newWatchId(): string {
  let body = '';
  for (const b of randomBytes(20)) body += ALPHABET[b & 31];
  return `fwt_${body}`;
}

function knownOf(st: Stats): Known {
  return {
    ino: st.ino,
    dev: st.dev,
    birth: st.birthtimeMs,
    isDir: st.isDirectory(),
    mtime: st.mtimeMs,
    size: st.size,
  };
}

function sameObject(a: Known, b: Known): boolean {
  return a.ino === b.ino && a.dev === b.dev && (a.birth === 0 || b.birth === 0 || a.birth === b.birth);
}

function isUnder(path: string, dir: string): boolean {
  return dir === '/' ? path !== '/' : path.startsWith(`${dir}/`);
}

/** Called with each event as it happens. */
export type WatchListener = (e: WatchEvent) => void;

/**
 * One watch of a directory tree. Node's `fs.watch` only says "rename" or "change" for a name, so
 * the watch keeps the inode of every path it knows, follows each directory with its own
 * (non-recursive) `fs.watch`, and works out from `lstat`:
 *   - a name that appears with an unknown inode: `create` (a new directory is watched too, and
 *     what is already in it is reported as `create`, parents first);
 *   - a name that vanishes, and whose inode appears at another name with the very next
 *     notification (the kernel reports both halves of a rename back to back): `rename`; without
 *     that: `remove`;
 *   - a change of a known file: `write`.
 * Raw notifications are handled one at a time in arrival order, so events come out in order too.
 * The temporary files of the agent's own atomic writes are hidden: their final rename is reported
 * as the `write` (or `create`) it is.
 */
export class FileWatch {
  readonly id = newWatchId();
  readonly createdAt = Date.now();
  /** When a reader last asked; with no WebSocket attached, an idle watch is dropped. */
  lastRead = Date.now();
  /** WebSockets and long polls attached right now. */
  readers = 0;
  private readonly events: WatchEvent[] = [];
  private nextId = 1;
  private readonly known = new Map<string, Known>();
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly listeners = new Set<WatchListener>();
  private readonly closers = new Set<() => void>();
  private chain: Promise<void> = Promise.resolve();
  private vanished: Vanished | undefined;
  private pairTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private capWarned = false;
  /** While the first listing runs: too many directories fails the create instead of being capped. */
  private starting = true;
  /** No inotify watch is held (before a checkpoint); what changed meanwhile is found by a rescan. */
  private suspended = false;

  private constructor(
    readonly root: string,
    readonly recursive: boolean,
  ) {}

  /** Starts watching `root` (a directory; a symlink to one is followed). */
  static async start(root: string, recursive: boolean): Promise<FileWatch> {
    let st: Stats;
    try {
      st = await stat(root);
    } catch (err) {
      throw fsError(err, root);
    }
    if (!st.isDirectory())
      throw new CodedError('invalid_argument', `path: ${root}: is not a directory (watch its directory)`, {
        field: 'path',
        path: root,
      });
    const w = new FileWatch(root, recursive);
    try {
      await w.addDir(root, false);
    } catch (err) {
      w.close();
      throw err;
    }
    w.starting = false;
    if (w.watchers.size === 0) {
      w.close();
      throw new CodedError('internal', `${root}: could not be watched`, { path: root });
    }
    return w;
  }

  info(): WatchInfo {
    return { watch_id: this.id, path: this.root, recursive: this.recursive };
  }

  get lastEventId(): number {
    return this.nextId - 1;
  }

  /** Events after `after` (at most `limit`); `events_expired` when some were already dropped. */
  read(after: number, limit: number): WatchEventsPage {
    this.lastRead = Date.now();
    this.resume();
    if (after > this.lastEventId)
      throw new CodedError(
        'invalid_argument',
        `after: is newer than the last event id (${this.lastEventId})`,
        {
          field: 'after',
        },
      );
    const first = this.events[0]?.id ?? this.nextId;
    if (after < first - 1)
      throw new CodedError(
        'events_expired',
        `events after ${after} are no longer retained (a watch keeps the last ${FILE_LIMITS.watch.retainedEvents}); read from ${first - 1}`,
        { after, oldest_event_id: first },
      );
    const start = after - first + 1;
    const events = this.events.slice(start, start + limit);
    return { events, last_event_id: events[events.length - 1]?.id ?? after };
  }

  subscribe(fn: WatchListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Calls `fn` once when the watch is deleted or dropped (at once if it is already). */
  onClose(fn: () => void): () => void {
    if (this.closed) {
      fn();
      return () => undefined;
    }
    this.closers.add(fn);
    return () => this.closers.delete(fn);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fn of [...this.closers]) fn();
    this.closers.clear();
    clearTimeout(this.pairTimer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    this.known.clear();
    this.listeners.clear();
  }

  /**
   * Lets go of every inotify watch, keeping what the watch knows. CRIU cannot checkpoint an
   * inotify watch on the machine's overlay root, so the agent calls this before a checkpoint.
   */
  suspend(): void {
    if (this.closed || this.suspended) return;
    this.suspended = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /**
   * Watches again after {@link suspend}: every directory is listed and compared with what the
   * watch knew, so changes made meanwhile are reported (a rename then shows as remove + create).
   */
  resume(): void {
    if (this.closed || !this.suspended) return;
    this.suspended = false;
    this.chain = this.chain.then(
      () => this.resync(this.root),
      () => undefined,
    );
    this.chain.catch((err: unknown) => log.write('warn', 'watch resync failed', { error: String(err) }));
  }

  private async resync(dir: string): Promise<void> {
    if (this.closed || this.suspended || !this.watch(dir)) return;
    const names = await this.reportGone(dir);
    for (const name of [...names].sort()) {
      const p = childPath(dir, name);
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      const now = knownOf(st);
      const before = this.known.get(p);
      this.known.set(p, now);
      if (!before || !sameObject(before, now)) {
        if (before?.isDir) {
          this.unwatchTree(p);
          this.forgetTree(p);
        }
        this.emit(before && !before.isDir && !now.isDir ? 'write' : 'create', p, now.isDir);
        if (now.isDir && this.recursive) await this.addDir(p, true);
        continue;
      }
      if (!now.isDir && (before.mtime !== now.mtime || before.size !== now.size))
        this.emit('write', p, false);
      if (now.isDir && this.recursive) await this.resync(p);
    }
  }

  // ---- raw notifications ----------------------------------------------------------------------

  private enqueue(raw: RawEvent): void {
    this.chain = this.chain.then(
      () => (this.closed ? undefined : this.handle(raw)),
      () => undefined,
    );
    this.chain.catch((err: unknown) => log.write('warn', 'watch event failed', { error: String(err) }));
  }

  private async handle(raw: RawEvent): Promise<void> {
    if (this.suspended) return; // the resync after the suspension sees what this would have
    if (raw.name === null) {
      await this.resolveVanished(undefined);
      await this.rescan(raw.dir);
      return;
    }
    const path = childPath(raw.dir, raw.name);
    // The watched directory itself was removed or moved: its watcher reports its own name.
    if (raw.name === basename(raw.dir) && !this.known.has(path)) {
      const here = await lstat(raw.dir).catch(() => undefined);
      if (!here?.isDirectory()) {
        await this.resolveVanished(undefined);
        this.unwatchTree(raw.dir);
        return;
      }
    }
    const st = await lstat(path).catch(() => undefined);
    if (await this.resolveVanished(st ? { path, st } : undefined)) return;
    const before = this.known.get(path);
    if (!st) {
      if (!before) return; // appeared and vanished before we looked: nothing to say
      this.known.delete(path);
      this.vanished = { path, known: before };
      clearTimeout(this.pairTimer);
      this.pairTimer = setTimeout(() => {
        this.chain = this.chain.then(async () => {
          await this.resolveVanished(undefined);
        });
      }, RENAME_PAIR_MS);
      return;
    }
    const now = knownOf(st);
    if (before && sameObject(before, now)) {
      this.known.set(path, now);
      if (raw.kind === 'change' && !now.isDir) this.emit('write', path, false);
      return;
    }
    this.known.set(path, now);
    if (before) {
      // Another file took the name (moved in from outside the watch, or replaced): its content changed.
      if (before.isDir) this.forgetTree(path);
      this.emit(now.isDir === before.isDir && !now.isDir ? 'write' : 'create', path, now.isDir);
    } else {
      this.emit('create', path, now.isDir);
      if (raw.kind === 'change' && !now.isDir) this.emit('write', path, false);
    }
    if (now.isDir && this.recursive) await this.addDir(path, true);
  }

  /**
   * Settles the path that vanished last: a rename when `appeared` is the same file at another
   * name (returns true: that notification is fully handled), else a remove.
   */
  private async resolveVanished(appeared: { path: string; st: Stats } | undefined): Promise<boolean> {
    const v = this.vanished;
    if (!v) return false;
    this.vanished = undefined;
    clearTimeout(this.pairTimer);
    if (appeared && appeared.path !== v.path && sameObject(v.known, knownOf(appeared.st))) {
      const replaced = this.known.get(appeared.path);
      this.known.set(appeared.path, knownOf(appeared.st));
      if (v.known.isDir) {
        this.unwatchTree(v.path);
        this.moveTree(v.path, appeared.path);
        if (this.recursive) await this.addDir(appeared.path, false);
      }
      const fromTemp = TEMP_NAME.exec(basename(v.path));
      if (fromTemp && dirname(v.path) === dirname(appeared.path)) {
        // The agent's own atomic write landing: a write of the target (a create if it is new).
        this.emit(replaced ? 'write' : 'create', appeared.path, false);
        return true;
      }
      this.emit('rename', appeared.path, v.known.isDir, v.path);
      return true;
    }
    if (v.known.isDir) {
      this.unwatchTree(v.path);
      this.forgetTree(v.path);
    }
    this.emit('remove', v.path, v.known.isDir);
    return false;
  }

  /** Reports (and forgets) what is known in `dir` but no longer there; returns the names that are. */
  private async reportGone(dir: string): Promise<Set<string>> {
    const names = new Set(await readdir(dir).catch(() => [] as string[]));
    for (const [p, k] of [...this.known]) {
      if (dirname(p) !== dir || names.has(basename(p))) continue;
      this.known.delete(p);
      if (k.isDir) {
        this.unwatchTree(p);
        this.forgetTree(p);
      }
      this.emit('remove', p, k.isDir);
    }
    return names;
  }

  /** After a notification without a name: report what changed in `dir` since we last looked. */
  private async rescan(dir: string): Promise<void> {
    const names = await this.reportGone(dir);
    for (const name of [...names].sort()) {
      const p = childPath(dir, name);
      if (this.known.has(p)) continue;
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      this.known.set(p, knownOf(st));
      this.emit('create', p, st.isDirectory());
      if (st.isDirectory() && this.recursive) await this.addDir(p, true);
    }
  }

  // ---- directories ------------------------------------------------------------------------------

  /**
   * Watches `dir` and records what is in it (reporting each entry as `create` when `report`),
   * descending when recursive. The watcher is added before the listing, so nothing created in
   * between is missed; what both see is told once, as the known map dedupes it.
   */
  private async addDir(dir: string, report: boolean): Promise<void> {
    if (this.closed || this.suspended || this.watchers.has(dir)) return;
    if (!this.watch(dir)) return;
    const names = (await readdir(dir).catch(() => [] as string[])).sort();
    for (const name of names) {
      if (this.closed) return;
      const p = childPath(dir, name);
      let k = this.known.get(p);
      if (!k) {
        const st = await lstat(p).catch(() => undefined);
        if (!st) continue;
        k = knownOf(st);
        this.known.set(p, k);
        if (report && !TEMP_NAME.test(name)) this.emit('create', p, k.isDir);
      }
      // Known already (a directory moved within the watch): watched again under its new name.
      if (k.isDir && this.recursive) await this.addDir(p, report);
    }
  }

  /** Adds the inotify watch of one directory; false when it cannot be (or must not be) watched. */
  private watch(dir: string): boolean {
    if (this.closed || this.suspended) return false;
    if (this.watchers.has(dir)) return true;
    if (this.watchers.size >= FILE_LIMITS.watch.maxDirs) {
      if (this.starting) throw this.tooMany();
      if (!this.capWarned) log.write('warn', 'watch directory limit reached', { watch_id: this.id, dir });
      this.capWarned = true;
      return false;
    }
    let watcher: FSWatcher;
    try {
      watcher = fsWatch(dir, { persistent: false }, (kind, name) =>
        this.enqueue({ dir, kind: kind as RawEvent['kind'], name: name === null ? null : String(name) }),
      );
    } catch (err) {
      if (dir === this.root) throw fsError(err, dir);
      return false; // gone already, or not readable
    }
    watcher.on('error', () => this.unwatchTree(dir));
    this.watchers.set(dir, watcher);
    return true;
  }

  private tooMany(): CodedError {
    return new CodedError(
      'resource_exhausted',
      `path: ${this.root}: has more than ${FILE_LIMITS.watch.maxDirs} directories; watch a smaller tree`,
      { path: this.root },
    );
  }

  private unwatchTree(dir: string): void {
    for (const [d, w] of [...this.watchers]) {
      if (d === dir || isUnder(d, dir)) {
        w.close();
        this.watchers.delete(d);
      }
    }
  }

  private forgetTree(dir: string): void {
    for (const p of [...this.known.keys()]) if (isUnder(p, dir)) this.known.delete(p);
  }

  private moveTree(from: string, to: string): void {
    for (const [p, k] of [...this.known]) {
      if (!isUnder(p, from)) continue;
      this.known.delete(p);
      this.known.set(to + p.slice(from.length), k);
    }
  }

  // ---- output -------------------------------------------------------------------------------------

  private emit(type: WatchEventType, path: string, isDir: boolean, from?: string): void {
    if (this.closed) return;
    if (type !== 'rename' && TEMP_NAME.test(basename(path))) return;
    const last = this.events[this.events.length - 1];
    // Several writes in a row to one file (one per write() call) are one change to a reader.
    if (
      type === 'write' &&
      last?.type === 'write' &&
      last.path === path &&
      Date.now() - Date.parse(last.at) < 100
    )
      return;
    const e: WatchEvent = { id: this.nextId++, type, path, is_dir: isDir, at: new Date().toISOString() };
    if (type === 'rename') {
      e.from = from;
      e.to = path;
    }
    this.events.push(e);
    if (this.events.length > FILE_LIMITS.watch.retainedEvents)
      this.events.splice(0, this.events.length - FILE_LIMITS.watch.retainedEvents);
    for (const fn of [...this.listeners]) fn(e);
  }
}

/** Every watch of this agent: at most 64, idle ones dropped. */
export class WatchTable {
  private readonly watches = new Map<string, FileWatch>();
  private readonly sweeper: NodeJS.Timeout;

  constructor() {
    this.sweeper = setInterval(() => this.sweep(), 30_000);
    this.sweeper.unref();
  }

  async create(path: string, recursive: boolean): Promise<FileWatch> {
    this.sweep();
    if (this.watches.size >= FILE_LIMITS.watch.maxPerMachine)
      throw new CodedError(
        'resource_exhausted',
        `a machine has at most ${FILE_LIMITS.watch.maxPerMachine} file watches; delete one first`,
        { max_watches: FILE_LIMITS.watch.maxPerMachine },
      );
    const w = await FileWatch.start(path, recursive);
    this.watches.set(w.id, w);
    return w;
  }

  get(id: string): FileWatch {
    const w = this.watches.get(id);
    if (!w)
      throw new CodedError('not_found', `no file watch ${id} (deleted, or dropped after 5 minutes unread)`, {
        watch_id: id,
      });
    return w;
  }

  delete(id: string): void {
    const w = this.get(id);
    this.watches.delete(id);
    w.close();
  }

  /**
   * Before a checkpoint: every watch lets go of its inotify watches (CRIU cannot dump them on an
   * overlay root). Each watch resumes (with a rescan) when it is next read, or after
   * `RESUME_AFTER_MS` of the agent's own time: a frozen or restored process has not counted it.
   */
  suspendAll(): void {
    for (const w of this.watches.values()) w.suspend();
    clearTimeout(this.resumer);
    this.resumer = setTimeout(() => {
      for (const w of this.watches.values()) w.resume();
    }, RESUME_AFTER_MS);
    this.resumer.unref();
  }

  private resumer: NodeJS.Timeout | undefined;

  private sweep(): void {
    const now = Date.now();
    for (const [id, w] of this.watches) {
      if (w.readers === 0 && now - w.lastRead > FILE_LIMITS.watch.idleMs) {
        log.write('info', 'dropping an idle file watch', { watch_id: id, path: w.root });
        this.watches.delete(id);
        w.close();
      }
    }
  }
}
