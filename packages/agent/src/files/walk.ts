import type { Dirent, Stats } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { basename, relative } from 'node:path';
import { FILE_LIMITS, type FileSelection } from '@nullspace/protocol/core';
import { childPath } from './entries.js';
import { fsError } from './fs-errors.js';
import { TEMP_NAME } from './transfer.js';

/**
 * Kernel and agent file systems a walk from `/` does not enter: their files are not content (and
 * some block when read). Naming one of them as the walk's own root still works.
 */
const SKIPPED_TREES = new Set(['/proc', '/sys', '/dev', '/.nullspace']);

/** One regular file a walk found. */
export interface WalkedFile {
  path: string;
  size: number;
}

/**
 * Globs as the API documents them: relative to the walk's root, dot files included, and a glob
 * without `/` matches the file name at any depth (`*.ts`, `node_modules`).
 */
async function matcher(globs: readonly string[]): Promise<((rel: string) => boolean) | undefined> {
  if (globs.length === 0) return undefined;
  // Loaded on the first glob, not at the agent's start (which every machine's create waits for).
  const { default: picomatch } = await import('picomatch');
  // picomatch's own `basename` option applies to every glob, also those with a `/`: split them.
  const nested = globs.filter((g) => g.includes('/'));
  const names = globs.filter((g) => !g.includes('/'));
  const full = nested.length > 0 ? picomatch(nested, { dot: true }) : () => false;
  const base = names.length > 0 ? picomatch(names, { dot: true }) : () => false;
  return (rel) => full(rel) || base(basename(rel));
}

/**
 * The regular files of a selection, depth first in name order. Symlinks are not followed (no
 * loops, and nothing is read twice); an excluded directory is not entered at all. A root that is
 * a file yields just that file.
 */
export async function* walkSelection(sel: FileSelection): AsyncGenerator<WalkedFile> {
  let root: Stats;
  try {
    root = await stat(sel.path);
  } catch (err) {
    throw fsError(err, sel.path);
  }
  if (root.isFile()) {
    yield { path: sel.path, size: root.size };
    return;
  }
  if (!root.isDirectory()) return;
  const include = await matcher(sel.include);
  const exclude = await matcher(sel.exclude);
  const stack: string[] = [sel.path];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (dir === sel.path) throw fsError(err, dir);
      continue; // unreadable or gone: skipped
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const subdirs: string[] = [];
    for (const e of entries) {
      const p = childPath(dir, e.name);
      const rel = relative(sel.path, p);
      if (exclude?.(rel)) continue;
      if (e.isDirectory()) {
        if (!SKIPPED_TREES.has(p)) subdirs.push(p);
      } else if (e.isFile() && !TEMP_NAME.test(e.name) && (!include || include(rel))) {
        const st = await stat(p).catch(() => undefined);
        if (st?.isFile()) yield { path: p, size: st.size };
      }
    }
    // Reversed onto the stack, so the first subdirectory is walked next.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as string);
  }
}

/**
 * The text of a file for search and replace, or undefined when it is skipped: over 10 MiB, empty,
 * or binary (a NUL byte in its first 8 KiB).
 */
export async function readText(file: WalkedFile): Promise<{ text: string; bytes: Buffer } | undefined> {
  if (file.size === 0 || file.size > FILE_LIMITS.maxScannedFileBytes) return undefined;
  let bytes: Buffer;
  try {
    const fh = await open(file.path, 'r');
    try {
      bytes = await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch {
    return undefined; // gone or unreadable meanwhile
  }
  if (bytes.length > FILE_LIMITS.maxScannedFileBytes) return undefined;
  if (bytes.subarray(0, FILE_LIMITS.binaryProbeBytes).includes(0)) return undefined;
  return { text: bytes.toString('utf8'), bytes };
}

/**
 * The search expression: a regex, or the literal pattern escaped into one. Global, and multi-line
 * so that `^` and `$` mean the start and end of a line in a replace as they do in a search.
 */
export function expression(pattern: string, regex: boolean, caseSensitive: boolean): RegExp {
  const source = regex ? pattern : pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(source, caseSensitive ? 'gm' : 'gim');
}
