import { cp, lstat, mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  AGENT_FILE_ROUTES,
  CodedError,
  type ExistsResponse,
  FILE_LIMITS,
  type MakeDirRequest,
  type MakeDirResponse,
  type MoveRequest,
  type RemoveFileResponse,
  type ReplaceRequest,
  type SearchRequest,
  type WatchEvent,
  type WatchRequest,
} from '@nullspace/protocol/core';
import type { WebSocket } from 'ws';
import { type AgentRouter, RESPONDED } from '../router.js';
import { listEntries, statEntry, typeOf } from './entries.js';
import { fsError } from './fs-errors.js';
import { replaceInFiles, searchFiles } from './search.js';
import { readFileTo, writeFileFrom } from './transfer.js';
import { WatchTable } from './watch.js';

/** A watch WebSocket with more than this unsent is closed (its reader resumes with `after`). */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** The server validated the request (parseFilePath & co.); the agent reads what it needs. */
function pathParam(url: URL, key = 'path'): string {
  const p = url.searchParams.get(key);
  if (p === null || !p.startsWith('/'))
    throw new CodedError('invalid_argument', `${key}: must be an absolute path`, { field: key });
  return p;
}

function intParam(url: URL, key: string, fallback: number): number {
  const raw = url.searchParams.get(key);
  const n = raw === null ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw new CodedError('invalid_argument', `${key}: must be a non-negative integer`, { field: key });
  return n;
}

async function makeDir(req: MakeDirRequest): Promise<MakeDirResponse> {
  const { path, parents } = req;
  try {
    if (parents) {
      const first = await mkdir(path, { recursive: true });
      // recursive mkdir also "succeeds" on an existing directory; a file in the way is EEXIST
      const st = await lstat(path);
      if (!st.isDirectory()) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
      return { entry: await statEntry(path), created: first !== undefined };
    }
    await mkdir(path);
    return { entry: await statEntry(path), created: true };
  } catch (err) {
    throw fsError(err, path);
  }
}

async function move(req: MoveRequest) {
  const { from, to, overwrite } = req;
  try {
    await lstat(from);
  } catch (err) {
    throw fsError(err, from);
  }
  const existing = await lstat(to).catch(() => undefined);
  if (existing && !overwrite)
    throw new CodedError('conflict', `${to}: already exists (pass overwrite: true to replace it)`, {
      path: to,
    });
  try {
    await mkdir(dirname(to), { recursive: true });
  } catch (err) {
    throw fsError(err, to);
  }
  try {
    await rename(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV') throw fsError(err, code === 'ENOENT' ? from : to);
    // Across file systems (into a volume): copy, then remove the source.
    try {
      if (existing && overwrite) await rm(to, { recursive: true, force: true });
      await cp(from, to, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
      await rm(from, { recursive: true, force: true });
    } catch (e) {
      throw fsError(e, to);
    }
  }
  return statEntry(to);
}

async function removePath(path: string): Promise<RemoveFileResponse> {
  if (path === '/')
    throw new CodedError('invalid_argument', 'path: the root directory cannot be removed', { field: 'path' });
  try {
    await lstat(path);
    // A directory goes with everything in it; a symlink is removed itself, never what it points to.
    await rm(path, { recursive: true, force: false });
  } catch (err) {
    throw fsError(err, path);
  }
  return { path, removed: true };
}

/** What the agent's main module may do with the file service besides routing to it. */
export interface FileService {
  /**
   * Releases every watch's inotify watches, which CRIU cannot checkpoint on the overlay root;
   * call it when the server announces a checkpoint (its drain). Watches resume on their own.
   */
  suspendWatches(): void;
}

/**
 * `/v1/files...` on the agent. Every path is the machine's own (the agent runs in its mount
 * namespace and root): a symlink to `/` leads to the machine's root, never the host's.
 */
export function addFileRoutes(router: AgentRouter): FileService {
  const watches = new WatchTable();
  const R = AGENT_FILE_ROUTES;

  router.add('GET', R.file, async ({ url, res }) => {
    await readFileTo(pathParam(url), res);
    return RESPONDED;
  });
  // The connection stays open after the answer (AgentRouter.handle): the proxy closes it.
  router.add('PUT', R.file, async ({ url, req }) => writeFileFrom(pathParam(url), req));
  router.add('DELETE', R.file, async ({ url }) => removePath(pathParam(url)));

  router.add('GET', R.list, async ({ url }) =>
    listEntries(pathParam(url), intParam(url, 'depth', FILE_LIMITS.depth.default)),
  );
  router.add('GET', R.stat, async ({ url }) => statEntry(pathParam(url)));
  router.add('GET', R.exists, async ({ url }): Promise<ExistsResponse> => {
    const path = pathParam(url);
    try {
      return { exists: true, type: typeOf(await lstat(path)) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return { exists: false, type: null };
      throw fsError(err, path);
    }
  });
  router.add('POST', R.mkdir, async ({ json }) => makeDir((await json()) as MakeDirRequest));
  router.add('POST', R.move, async ({ json }) => move((await json()) as MoveRequest));
  router.add('POST', R.search, async ({ json }) => searchFiles((await json()) as SearchRequest));
  router.add('POST', R.replace, async ({ json }) => replaceInFiles((await json()) as ReplaceRequest));

  router.add('POST', R.watches, async ({ json }) => {
    const { path, recursive } = (await json()) as WatchRequest;
    return (await watches.create(path, recursive)).info();
  });
  // Before a checkpoint (see FileService.suspendWatches).
  router.add('POST', R.suspendWatches, async () => {
    watches.suspendAll();
    return { suspended: true };
  });
  router.add('DELETE', '/v1/files/watches/{id}', async ({ params }) => {
    const w = watches.get(params.id ?? '');
    watches.delete(w.id);
    return { ...w.info(), deleted: true };
  });

  // The polling form: what there is after `after`, else the next event within `wait_ms`.
  router.add('GET', '/v1/files/watches/{id}/events', async ({ params, url, res }) => {
    const w = watches.get(params.id ?? '');
    const after = intParam(url, 'after', 0);
    const limit = Math.min(
      intParam(url, 'limit', FILE_LIMITS.watch.limit.default),
      FILE_LIMITS.watch.limit.max,
    );
    const waitMs = Math.min(intParam(url, 'wait_ms', 0), FILE_LIMITS.watch.wait_ms.max);
    const first = w.read(after, limit);
    if (first.events.length > 0 || waitMs === 0) return first;
    w.readers++;
    try {
      await new Promise<void>((resolve) => {
        const done = () => {
          unsubscribe();
          unClose();
          clearTimeout(timer);
          res.off('close', done);
          resolve();
        };
        const unsubscribe = w.subscribe(() => setImmediate(done)); // let events of one change arrive together
        const unClose = w.onClose(done);
        const timer = setTimeout(done, waitMs);
        res.once('close', done);
      });
    } finally {
      w.readers--;
    }
    return w.read(after, limit);
  });

  router.ws(
    '/v1/files/watches/{id}/ws',
    (ws: WebSocket, url, params) => {
      // Checked just before the upgrade (the watch exists, `after` is valid and not expired).
      const w = watches.get(params.id ?? '');
      const after = intParam(url, 'after', 0);
      w.readers++;
      ws.on('message', () => undefined);
      const send = (e: WatchEvent) => {
        if (ws.readyState !== ws.OPEN) return;
        if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
          ws.close(1013, 'too slow: reconnect with after');
          return;
        }
        ws.send(JSON.stringify(e));
      };
      // Backlog then live, in one synchronous step: nothing falls in between.
      let last = after;
      for (;;) {
        const page = w.read(last, FILE_LIMITS.watch.limit.max);
        for (const e of page.events) send(e);
        last = page.last_event_id;
        if (page.events.length < FILE_LIMITS.watch.limit.max) break;
      }
      const unsubscribe = w.subscribe(send);
      const unClose = w.onClose(() => ws.close(1000, 'watch deleted'));
      ws.on('close', () => {
        unClose();
        unsubscribe();
        w.readers--;
        w.lastRead = Date.now();
      });
    },
    (url, params) => {
      // The same checks before the upgrade, so a refusal is an HTTP error the server passes on.
      watches.get(params.id ?? '').read(intParam(url, 'after', 0), 0);
    },
  );
  return { suspendWatches: () => watches.suspendAll() };
}
