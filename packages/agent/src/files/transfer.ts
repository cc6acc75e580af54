import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readlink,
  realpath,
  rename,
  stat,
  unlink,
} from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, dirname, join, resolve } from 'node:path';
import { CodedError, type FileEntry } from '@nullspace/protocol/core';
import { statEntry } from './entries.js';
import { fsError } from './fs-errors.js';

/**
 * Names of the temporary files an atomic write makes beside its target: hidden, and recognised by
 * the watcher, which reports the final rename as the write it is rather than as temp-file noise.
 */
export const TEMP_NAME = /^\.(.+)\.nstmp-[a-z0-9]{12}$/;

function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.nstmp-${randomBytes(6).toString('hex')}`);
}

/**
 * GET: streams a regular file. The length is fixed when the file is opened, so a file that grows
 * meanwhile is sent as it was; one that shrinks ends the response short (the client sees it cut).
 */
export async function readFileTo(path: string, res: ServerResponse): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw fsError(err, path);
  }
  let size: number;
  let mtime: Date;
  try {
    const st = await fh.stat();
    if (st.isDirectory())
      throw new CodedError('invalid_argument', `path: ${path}: is a directory (list it instead)`, {
        field: 'path',
        path,
      });
    if (!st.isFile())
      throw new CodedError('invalid_argument', `path: ${path}: is not a regular file`, {
        field: 'path',
        path,
      });
    size = st.size;
    mtime = st.mtime;
  } catch (err) {
    await fh.close();
    throw fsError(err, path);
  }
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': size,
    'last-modified': mtime.toUTCString(),
  });
  if (size === 0) {
    await fh.close();
    res.end();
    return;
  }
  const stream = createReadStream('', { fd: fh, start: 0, end: size - 1, autoClose: true });
  await new Promise<void>((done) => {
    stream.on('error', (err) => {
      res.destroy(err);
      done();
    });
    res.on('close', () => {
      stream.destroy();
      done();
    });
    stream.pipe(res);
  });
}

/**
 * Where a write to `path` lands: through a symlink at `path` (as `open` would follow it), else
 * `path` itself. Parents are created first.
 */
async function writeTarget(path: string): Promise<string> {
  await mkdir(dirname(path), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
    // A file where a parent directory should be: the path cannot be made, not "already exists".
    throw err.code === 'EEXIST' ? Object.assign(err, { code: 'ENOTDIR' }) : err;
  });
  try {
    return await realpath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // Missing, or a dangling symlink: write where the link points (one level), like open(O_CREAT).
  const link = await lstat(path).catch(() => undefined);
  if (link?.isSymbolicLink()) {
    const to = resolve(dirname(path), await readlink(path));
    await mkdir(dirname(to), { recursive: true });
    return to;
  }
  return path;
}

const WRITE_BATCH_BYTES = 1024 * 1024;

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
    off += bytesWritten;
  }
}

/**
 * Replaces `path` atomically: the bytes go to a temporary file in the same directory, which is
 * fsynced and renamed over the target. Readers see the old file or the new one, never a part; on
 * any failure (the disk full, the client gone) the temporary file is removed and the target is
 * as it was. An existing target's permissions and owner are kept.
 */
export async function atomicWrite(
  path: string,
  fill: (write: (chunk: Buffer) => Promise<void>) => Promise<void>,
): Promise<FileEntry> {
  let target: string;
  try {
    target = await writeTarget(path);
  } catch (err) {
    throw fsError(err, path);
  }
  const existing = await stat(target).catch(() => undefined);
  if (existing?.isDirectory())
    throw new CodedError('invalid_argument', `path: ${path}: is a directory`, { field: 'path', path });
  const mode = existing ? existing.mode & 0o7777 : 0o644;
  const tmp = tempPathFor(target);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx', mode);
    const handle = fh;
    await fill((chunk) => writeAll(handle, chunk));
    // Exactly the old mode (open's mode is narrowed by the umask), and the old owner.
    await fh.chmod(mode);
    if (existing) await fh.chown(existing.uid, existing.gid).catch(() => undefined);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, target);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw fsError(err, path);
  }
  // The rename itself reaches the disk with the directory; a failure here loses nothing written.
  await open(dirname(target), 'r')
    .then(async (dir) => {
      await dir.sync().catch(() => undefined);
      await dir.close();
    })
    .catch(() => undefined);
  return statEntry(target);
}

/** PUT: streams the request body into `path` atomically (see {@link atomicWrite}). */
export async function writeFileFrom(path: string, req: IncomingMessage): Promise<FileEntry> {
  try {
    const entry = await atomicWrite(path, async (write) => {
      // Socket reads come in 64 KiB or smaller pieces: gather up to 1 MiB per write, so a file of a
      // few MiB costs a few system calls instead of dozens of thread-pool round trips.
      let batch: Buffer[] = [];
      let batched = 0;
      for await (const chunk of req) {
        batch.push(chunk as Buffer);
        batched += (chunk as Buffer).length;
        if (batched >= WRITE_BATCH_BYTES) {
          await write(Buffer.concat(batch, batched));
          batch = [];
          batched = 0;
        }
      }
      if (batched > 0) await write(batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch, batched));
    });
    return { ...entry, path, name: path === '/' ? '/' : basename(path) };
  } catch (err) {
    // Read (and drop) the rest of the body before answering: an answer sent while the body is
    // still coming makes Node close the connection, and the sender sees EPIPE, not the error.
    if (!req.complete && !req.destroyed)
      await new Promise<void>((done) => {
        req.once('end', done);
        req.once('close', done);
        req.resume();
      });
    throw err;
  }
}
