/**
 * Reading git's machine-readable output (`status --porcelain=v2 --branch`, `branch` with a format)
 * into the SDK's types.
 */
import type { GitBranches, GitFileState, GitStatus } from './git-types.js';

const STATE_OF_LETTER: Record<string, GitFileState> = {
  '.': 'unmodified',
  M: 'modified',
  T: 'type_changed',
  A: 'added',
  D: 'deleted',
  R: 'renamed',
  C: 'copied',
  U: 'unmerged',
};

function stateOf(letter: string | undefined): GitFileState {
  return STATE_OF_LETTER[letter ?? '.'] ?? 'unmodified';
}

/**
 * Parses `git status --porcelain=v2 --branch -z`: `# branch.*` headers, then one record per
 * path (`1` changed, `2` renamed or copied with the old path as the next record, `u` unmerged,
 * `?` untracked). With `-z` paths are neither quoted nor escaped.
 *
 * @example
 * ```ts
 * parseStatus('# branch.oid (initial)\0# branch.head main\0? notes.txt\0').files[0]?.worktree; // "untracked"
 * ```
 */
export function parseStatus(out: string): GitStatus {
  const status: GitStatus = {
    branch: null,
    commit: null,
    upstream: null,
    ahead: 0,
    behind: 0,
    detached: false,
    clean: true,
    files: [],
  };
  const records = out.split('\0');
  for (let i = 0; i < records.length; i++) {
    const rec = records[i]!;
    if (rec === '') continue;
    if (rec.startsWith('# ')) {
      const [, name, ...rest] = rec.split(' ');
      const value = rest.join(' ');
      if (name === 'branch.oid') status.commit = value === '(initial)' ? null : value;
      else if (name === 'branch.head') {
        status.detached = value === '(detached)';
        status.branch = status.detached ? null : value;
      } else if (name === 'branch.upstream') status.upstream = value;
      else if (name === 'branch.ab') {
        const m = /^\+(\d+) -(\d+)$/.exec(value);
        if (m) {
          status.ahead = Number(m[1]);
          status.behind = Number(m[2]);
        }
      }
      continue;
    }
    const kind = rec[0];
    if (kind === '?') {
      status.files.push({ path: rec.slice(2), origPath: null, index: 'untracked', worktree: 'untracked' });
    } else if (kind === '1' || kind === '2' || kind === 'u') {
      // Fields before the path: 1 → 8, 2 → 9 (plus the score), u → 10; the path may hold spaces.
      const before = kind === '1' ? 8 : kind === '2' ? 9 : 10;
      const fields = rec.split(' ');
      const xy = fields[1] ?? '..';
      const path = fields.slice(before).join(' ');
      let origPath: string | null = null;
      if (kind === '2') {
        origPath = records[i + 1] ?? null;
        i++;
      }
      const conflict = kind === 'u';
      status.files.push({
        path,
        origPath,
        index: conflict ? 'unmerged' : stateOf(xy[0]),
        worktree: conflict ? 'unmerged' : stateOf(xy[1]),
      });
    }
    // `!` (ignored) records are not asked for.
  }
  status.clean = status.files.length === 0;
  return status;
}

/**
 * Parses `git branch --format=%(HEAD)%00%(refname)%00%(upstream:short)%00%(objectname)%00`.
 * A detached `HEAD` is listed by git as a pseudo-branch whose refname is not under
 * `refs/heads/`; it is left out.
 *
 * @example
 * ```ts
 * parseBranches('*\0refs/heads/main\0origin/main\0abc123\0\n').current; // "main"
 * ```
 */
export function parseBranches(out: string): GitBranches {
  const result: GitBranches = { current: null, branches: [] };
  for (const line of out.split('\n')) {
    if (line === '') continue;
    const [head, refname, upstream, commit] = line.split('\0');
    if (refname === undefined || !refname.startsWith('refs/heads/')) continue;
    const name = refname.slice('refs/heads/'.length);
    const current = head === '*';
    if (current) result.current = name;
    result.branches.push({ name, current, upstream: upstream || null, commit: commit ?? '' });
  }
  return result;
}
