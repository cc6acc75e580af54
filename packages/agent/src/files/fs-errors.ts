import { CodedError } from '@nullspace/protocol/core';

/**
 * Turns a failed file system call into the API's error: the errno decides the code, the message
 * names the path as the caller gave it. Unknown errnos stay `internal` (the server hides their text).
 */
export function fsError(err: unknown, path: string): CodedError {
  if (err instanceof CodedError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const at = { path };
  const bad = (why: string) =>
    new CodedError('invalid_argument', `path: ${path}: ${why}`, { field: 'path', path });
  switch (code) {
    case 'ENOENT':
      return new CodedError('not_found', `${path}: no such file or directory`, at);
    case 'ENOTDIR':
      return bad('a component of the path is not a directory');
    case 'EISDIR':
      return bad('is a directory');
    case 'ELOOP':
      return bad('too many levels of symbolic links');
    case 'ENAMETOOLONG':
      return bad('a file name is too long');
    case 'EEXIST':
      return new CodedError('conflict', `${path}: already exists`, at);
    case 'ENOTEMPTY':
      return new CodedError('conflict', `${path}: directory is not empty`, at);
    case 'EBUSY':
      return new CodedError('conflict', `${path}: is busy (a mount point?)`, at);
    case 'ENOSPC':
    case 'EDQUOT':
      return new CodedError('disk_full', `${path}: the machine's disk is full (disk_mb)`, at);
    case 'EFBIG':
      return new CodedError('payload_too_large', `${path}: file too large for this file system`, at);
    case 'EACCES':
    case 'EPERM':
      return new CodedError('permission_denied', `${path}: permission denied`, at);
    case 'EROFS':
      return new CodedError('permission_denied', `${path}: read-only file system`, at);
    default:
      return new CodedError('internal', `${path}: ${code ?? String(err)}`, at, { cause: err });
  }
}

/** Whether an error is "the disk is full": the one failure a write must clean up after with care. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
