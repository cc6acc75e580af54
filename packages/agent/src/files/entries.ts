import type { Stats } from 'node:fs';
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  CodedError,
  FILE_LIMITS,
  type FileEntry,
  type FileType,
  type ListFilesResponse,
} from '@nullspace/protocol/core';
import { fsError } from './fs-errors.js';

export function typeOf(st: Stats): FileType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

/** `/a/b` + `c` → `/a/b/c`; `/` + `c` → `/c`. */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** The entry of `path` from its (l)stat; a symlink's target is read, not followed. */
export async function entryOf(path: string, st: Stats): Promise<FileEntry> {
  const entry: FileEntry = {
    name: path === '/' ? '/' : basename(path),
    path,
    type: typeOf(st),
    size: st.size,
    mode: (st.mode & 0o7777).toString(8),
    mtime: st.mtime.toISOString(),
  };
  if (st.isSymbolicLink()) entry.symlink_target = await readlink(path).catch(() => '');
  return entry;
}

/** `stat`: the path itself (a symlink is described, not followed). */
export async function statEntry(path: string): Promise<FileEntry> {
  try {
    return await entryOf(path, await lstat(path));
  } catch (err) {
    throw fsError(err, path);
  }
}

/**
 * `list`: the entries under a directory, `depth` levels down, sorted by path. The directory given
 * may be a symlink to one (it is followed); symlinks below it are listed, never descended into,
 * so a link loop cannot make the walk endless. Subdirectories that cannot be read are skipped.
 */
export async function listEntries(path: string, depth: number): Promise<ListFilesResponse> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (err) {
    throw fsError(err, path);
  }
  if (!st.isDirectory())
    throw new CodedError('invalid_argument', `path: ${path}: is not a directory`, { field: 'path', path });
  const entries: FileEntry[] = [];
  const walk = async (dir: string, level: number): Promise<boolean> => {
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (err) {
      if (level === 1) throw fsError(err, dir);
      return true;
    }
    for (const name of names) {
      if (entries.length >= FILE_LIMITS.maxListEntries) return false;
      const p = childPath(dir, name);
      let cst: Stats;
      try {
        cst = await lstat(p);
      } catch {
        continue; // removed meanwhile
      }
      entries.push(await entryOf(p, cst));
      if (cst.isDirectory() && level < depth && !(await walk(p, level + 1))) return false;
    }
    return true;
  };
  const complete = await walk(path, 1);
  return { entries, truncated: !complete };
}
