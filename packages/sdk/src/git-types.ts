/**
 * The types of `machine.git`: its error, the options of each helper and what they return.
 */
import { NullspaceError } from './errors.js';
import type { RequestOptions } from './transport.js';

/**
 * A git command in the machine failed: it exited with a non-zero status, or ran past its timeout.
 * `message` is git's own explanation (`fatal: ...`); `subcommand` says which git command it was.
 * Credentials given to the helper are replaced by `***` in every field.
 *
 * @example
 * ```ts
 * try {
 *   await machine.git.clone('/srv/missing.git', { path: '/workspace/app' });
 * } catch (err) {
 *   if (err instanceof GitError) console.error(err.subcommand, err.exitCode, err.message);
 *   // clone 128 git clone failed (exit 128): fatal: repository '/srv/missing.git' does not exist
 * }
 * ```
 */
export class GitError extends NullspaceError {
  /**
   * The git subcommand that failed, e.g. `clone`, `push`, `config`.
   *
   * @example
   * ```ts
   * if (err instanceof GitError && err.subcommand === 'push') await machine.git.pull('/workspace/app');
   * ```
   */
  readonly subcommand: string;
  /**
   * git's exit status; `null` when it did not exit by itself (timeout or signal).
   *
   * @example
   * ```ts
   * if (err instanceof GitError && err.exitCode === 128) console.error('git refused:', err.stderr);
   * ```
   */
  readonly exitCode: number | null;
  /**
   * git's whole standard error (standard output when that was empty), credentials redacted.
   *
   * @example
   * ```ts
   * if (err instanceof GitError) console.error(err.stderr);
   * ```
   */
  readonly stderr: string;
  /**
   * The command ran past its `timeoutMs` and was killed.
   *
   * @example
   * ```ts
   * if (err instanceof GitError && err.timedOut) console.error('clone too slow; raise timeoutMs');
   * ```
   */
  readonly timedOut: boolean;

  /**
   * Made by the git helpers; construct one yourself only to fake a failure.
   *
   * @example
   * ```ts
   * const err = new GitError('git push failed (exit 1): rejected', { subcommand: 'push', exitCode: 1, stderr: 'rejected' });
   * ```
   */
  constructor(
    message: string,
    init: { subcommand: string; exitCode: number | null; stderr: string; timedOut?: boolean },
  ) {
    super('git_error', message, {
      details: {
        subcommand: init.subcommand,
        exit_code: init.exitCode,
        stderr: init.stderr,
        ...(init.timedOut === true ? { timed_out: true } : {}),
      },
    });
    this.subcommand = init.subcommand;
    this.exitCode = init.exitCode;
    this.stderr = init.stderr;
    this.timedOut = init.timedOut === true;
  }
}

/**
 * Options every git helper takes.
 *
 * @example
 * ```ts
 * await machine.git.status('/workspace/app', { timeoutMs: 5_000 });
 * ```
 */
export interface GitOptions extends RequestOptions {
  /** Kill git after this many milliseconds: default 60 000, and 300 000 for clone, pull and push. */
  timeoutMs?: number;
}

/**
 * HTTPS credentials for one clone, pull or push. They are sent as an `Authorization: Basic`
 * header through the environment of that one git process and are never stored in the machine.
 *
 * @example
 * ```ts
 * const auth: GitCredentials = { username: 'octocat', token: process.env.GITHUB_TOKEN };
 * ```
 */
export interface GitCredentials {
  /** User name for HTTP basic auth (default `x-access-token`, fine for GitHub and GitLab tokens). */
  username?: string;
  /** Access token. Give this or `password`. */
  token?: string;
  /** Password; the same as `token`, for servers that call it that. */
  password?: string;
}

/**
 * Options of {@link Git.clone}.
 *
 * @example
 * ```ts
 * const opts: GitCloneOptions = { path: '/workspace/app', branch: 'main', depth: 1, token: 'ghp_...' };
 * ```
 */
export interface GitCloneOptions extends GitOptions, GitCredentials {
  /** Directory to clone into (default: named after the repository, in the machine's cwd). */
  path?: string;
  /** Branch (or tag) to check out instead of the remote's default branch. */
  branch?: string;
  /** Fetch only the last `depth` commits (a shallow clone). */
  depth?: number;
}

/**
 * What git says about one path in {@link GitFileStatus}: `unmodified` (`.`), `modified` (`M`),
 * `type_changed` (`T`), `added` (`A`), `deleted` (`D`), `renamed` (`R`), `copied` (`C`),
 * `unmerged` (a merge conflict), `untracked` (`?`).
 *
 * @example
 * ```ts
 * const dirty = status.files.some((f) => f.worktree !== 'unmodified');
 * ```
 */
export type GitFileState =
  | 'unmodified'
  | 'modified'
  | 'type_changed'
  | 'added'
  | 'deleted'
  | 'renamed'
  | 'copied'
  | 'unmerged'
  | 'untracked';

/**
 * One changed path of {@link GitStatus}: its state in the index (staged) and in the work tree.
 *
 * @example
 * ```ts
 * const staged = status.files.filter((f) => f.index !== 'unmodified' && f.index !== 'untracked');
 * ```
 */
export interface GitFileStatus {
  /** Path relative to the repository root. */
  path: string;
  /** The path it was renamed or copied from, else `null`. */
  origPath: string | null;
  /** State in the index, compared with `HEAD`: what `commit` would record. */
  index: GitFileState;
  /** State in the work tree, compared with the index: what `add` would stage. */
  worktree: GitFileState;
}

/**
 * The state of a repository, parsed from `git status --porcelain=v2 --branch`.
 *
 * @example
 * ```ts
 * const s = await machine.git.status('/workspace/app');
 * console.log(s.branch, s.ahead, s.behind, s.clean); // "main" 1 0 false
 * ```
 */
export interface GitStatus {
  /** Current branch; `null` when `HEAD` is detached. */
  branch: string | null;
  /** Commit `HEAD` points at; `null` before the first commit. */
  commit: string | null;
  /** Upstream branch, e.g. `origin/main`, or `null` when none is set. */
  upstream: string | null;
  /** Commits on the branch that are not on its upstream (0 without one). */
  ahead: number;
  /** Commits on the upstream that are not on the branch (0 without one). */
  behind: number;
  detached: boolean;
  /** No changed or untracked file. */
  clean: boolean;
  files: GitFileStatus[];
}

/**
 * A local branch as {@link Git.branches} lists it.
 *
 * @example
 * ```ts
 * const { branches } = await machine.git.branches('/workspace/app');
 * for (const b of branches) console.log(b.current ? '*' : ' ', b.name, b.upstream ?? '');
 * ```
 */
export interface GitBranch {
  name: string;
  /** It is checked out. */
  current: boolean;
  /** Upstream, e.g. `origin/main`, or `null`. */
  upstream: string | null;
  /** The commit the branch points at. */
  commit: string;
}

/**
 * The local branches of a repository and the current one.
 *
 * @example
 * ```ts
 * const { current } = await machine.git.branches('/workspace/app'); // "main"
 * ```
 */
export interface GitBranches {
  /** The checked-out branch; `null` when `HEAD` is detached or the branch has no commit yet. */
  current: string | null;
  branches: GitBranch[];
}

/**
 * Options of {@link Git.createBranch}.
 *
 * @example
 * ```ts
 * await machine.git.createBranch('/workspace/app', 'fix/login', { checkout: true, startPoint: 'origin/main' });
 * ```
 */
export interface GitCreateBranchOptions extends GitOptions {
  /** Also check the new branch out. */
  checkout?: boolean;
  /** Commit, branch or tag the branch starts at (default `HEAD`). */
  startPoint?: string;
}

/**
 * What {@link Git.add} stages: the given paths, or `{ all: true }` for every change (new, modified
 * and deleted files, like `git add --all`).
 *
 * @example
 * ```ts
 * await machine.git.add('/workspace/app', ['src/index.ts', 'README.md']);
 * await machine.git.add('/workspace/app', { all: true });
 * ```
 */
export type GitAddTarget = string[] | { all: true };

/**
 * Options of {@link Git.commit}. `authorName`/`authorEmail` set the author and the committer of
 * this one commit (given through git's `GIT_AUTHOR_*`/`GIT_COMMITTER_*` variables); without them
 * git uses `user.name`/`user.email` from its config.
 *
 * @example
 * ```ts
 * await machine.git.commit('/workspace/app', 'Fix login', { authorName: 'Ada', authorEmail: 'ada@example.com' });
 * ```
 */
export interface GitCommitOptions extends GitOptions {
  authorName?: string;
  authorEmail?: string;
  /** Record a commit even when nothing is staged. */
  allowEmpty?: boolean;
}

/**
 * The commit {@link Git.commit} made.
 *
 * @example
 * ```ts
 * const { sha } = await machine.git.commit('/workspace/app', 'Initial commit');
 * ```
 */
export interface GitCommitResult {
  /** Full hash of the new commit. */
  sha: string;
}

/**
 * Options of {@link Git.diff}.
 *
 * @example
 * ```ts
 * const patch = await machine.git.diff('/workspace/app', { staged: true, files: ['src/index.ts'] });
 * ```
 */
export interface GitDiffOptions extends GitOptions {
  /** Diff the index against `HEAD` (what `commit` would record) instead of the work tree against the index. */
  staged?: boolean;
  /** Only these paths. */
  files?: string[];
}

/**
 * Options of {@link Git.pull}.
 *
 * @example
 * ```ts
 * await machine.git.pull('/workspace/app', { remote: 'origin', branch: 'main', token: 'ghp_...' });
 * ```
 */
export interface GitPullOptions extends GitOptions, GitCredentials {
  /** Remote to pull from (default: the branch's upstream; `origin` when only `branch` is given). */
  remote?: string;
  /** Remote branch to merge (default: the upstream branch). */
  branch?: string;
  /**
   * `true` rebases local commits onto the fetched ones (`--rebase`), `false` merges
   * (`--no-rebase`); default: the repository's `pull.rebase`, and when the branches have
   * diverged without one set, git refuses with a {@link GitError} that says so.
   */
  rebase?: boolean;
}

/**
 * Options of {@link Git.push}.
 *
 * @example
 * ```ts
 * await machine.git.push('/workspace/app', { setUpstream: true, token: 'ghp_...' });
 * ```
 */
export interface GitPushOptions extends GitOptions, GitCredentials {
  /** Remote to push to (default: the branch's upstream remote; `origin` with `branch` or `setUpstream`). */
  remote?: string;
  /** Branch to push (default: the current branch). */
  branch?: string;
  /** Make the pushed branch the upstream of the local one (`git push --set-upstream`). */
  setUpstream?: boolean;
}

/**
 * What git printed for a pull or push (its progress lines and summary), credentials redacted.
 *
 * @example
 * ```ts
 * console.log((await machine.git.pull('/workspace/app')).output); // "Already up to date.\n"
 * ```
 */
export interface GitOutputResult {
  output: string;
}

/**
 * Options of {@link GitConfig.get} and {@link GitConfig.set}.
 *
 * @example
 * ```ts
 * await machine.git.config.set('user.name', 'Ada', { scope: 'global' });
 * await machine.git.config.get('core.bare', { scope: 'local', path: '/workspace/app' });
 * ```
 */
export interface GitConfigOptions extends GitOptions {
  /**
   * `global` (the machine user's `~/.gitconfig`) or `local` (the repository's `.git/config`,
   * needs `path`). `set` defaults to `local` when `path` is given, else `global`; `get` without a
   * scope reads the value in effect (every scope, and the repository at `path` if given).
   */
  scope?: 'global' | 'local';
  /** The repository, for `local` (and for `get` without a scope). */
  path?: string;
}
