/**
 * Git in a machine: `machine.git`. Every helper runs the machine's own `git` through
 * `commands.run` with an argv (never a shell line), so no argument is ever parsed by a shell, and
 * values that could pass for options (a URL or branch starting with `-`) are refused or placed
 * after `--`.
 *
 * HTTPS credentials travel in the environment of the one `git` process that needs them, as an
 * `http.extraHeader` given through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/`GIT_CONFIG_VALUE_0`:
 * they are never written to a git config file, never put in a remote URL and never appear in an
 * argv (what `ps` shows).
 */
import type { CommandResult, Commands } from './commands.js';
import { InvalidArgumentError } from './errors.js';
import { parseBranches, parseStatus } from './git-output.js';
import {
  type GitAddTarget,
  type GitBranches,
  type GitCloneOptions,
  type GitCommitOptions,
  type GitCommitResult,
  type GitConfigOptions,
  type GitCreateBranchOptions,
  type GitCredentials,
  type GitDiffOptions,
  GitError,
  type GitOptions,
  type GitOutputResult,
  type GitPullOptions,
  type GitPushOptions,
  type GitStatus,
} from './git-types.js';

/** Local operations get the commands' default; network ones (clone, pull, push) more. */
const LOCAL_TIMEOUT_MS = 60_000;
const NETWORK_TIMEOUT_MS = 300_000;
/** The user name sent with a token when none is given: GitHub's convention, accepted by GitLab. */
const DEFAULT_USERNAME = 'x-access-token';

/** Replaces the credentials of one git run in what it printed. */
type Redactor = (text: string) => string;

interface GitRun extends GitOptions {
  /** The repository (`git -C path`); absent for clone and global config. */
  path?: string;
  envs?: Record<string, string>;
  stdin?: string;
  redact?: Redactor;
  /** Exit codes that are answers, not failures (`config --get` exits 1 when the key is unset). */
  okExitCodes?: number[];
}

/**
 * Git config of a machine: `machine.git.config`.
 *
 * @example
 * ```ts
 * await machine.git.config.set('user.email', 'ada@example.com');
 * console.log(await machine.git.config.get('user.email')); // "ada@example.com"
 * ```
 */
export class GitConfig {
  readonly #commands: Commands;

  /**
   * Made by {@link Git}; use `machine.git.config`.
   *
   * @internal
   * @example
   * ```ts
   * const config = machine.git.config;
   * ```
   */
  constructor(commands: Commands) {
    this.#commands = commands;
  }

  /**
   * The value of a config key, or `null` when it is not set.
   *
   * @example
   * ```ts
   * const name = await machine.git.config.get('user.name', { scope: 'global' }); // "Ada" or null
   * const url = await machine.git.config.get('remote.origin.url', { path: '/workspace/app' });
   * ```
   */
  async get(key: string, opts: GitConfigOptions = {}): Promise<string | null> {
    checkKey(key);
    const scope = scopeArgs(opts.scope, opts.path);
    const r = await runGit(this.#commands, 'config', ['config', ...scope, '--get', '--', key], {
      ...timing(opts),
      ...pathOf(opts),
      okExitCodes: [1],
    });
    if (r.exitCode === 1 && r.stderr.trim() !== '')
      throw new GitError(`git config failed (exit 1): ${r.stderr.trim()}`, {
        subcommand: 'config',
        exitCode: 1,
        stderr: r.stderr,
      });
    return r.exitCode === 1 ? null : r.stdout.replace(/\n$/, '');
  }

  /**
   * Sets a config key (the whole value; a key with several values is refused by git).
   *
   * @example
   * ```ts
   * await machine.git.config.set('user.name', 'Ada'); // ~/.gitconfig in the machine
   * await machine.git.config.set('pull.rebase', 'true', { path: '/workspace/app' }); // .git/config
   * ```
   */
  async set(key: string, value: string, opts: GitConfigOptions = {}): Promise<void> {
    checkKey(key);
    const scope = scopeArgs(opts.scope ?? (opts.path === undefined ? 'global' : 'local'), opts.path);
    await runGit(this.#commands, 'config', ['config', ...scope, '--', key, value], {
      ...timing(opts),
      ...pathOf(opts),
    });
  }
}

/**
 * Git helpers for one machine: `machine.git`. Each runs the machine's `git` once or twice over
 * {@link Commands.run}; a non-zero exit becomes a {@link GitError} with git's message. Repository
 * paths are absolute, or relative to the machine's `cwd`.
 *
 * @example
 * ```ts
 * await machine.git.clone('https://github.com/octocat/Hello-World.git', { path: '/workspace/hello', depth: 1 });
 * await machine.commands.run('echo hi >> /workspace/hello/README');
 * await machine.git.add('/workspace/hello', { all: true });
 * const { sha } = await machine.git.commit('/workspace/hello', 'Say hi', {
 *   authorName: 'Ada',
 *   authorEmail: 'ada@example.com',
 * });
 * ```
 */
export class Git {
  /**
   * Reads and writes git config (`global` or `local`).
   *
   * @example
   * ```ts
   * await machine.git.config.set('user.name', 'Ada');
   * ```
   */
  readonly config: GitConfig;
  readonly #commands: Commands;

  /**
   * Made by `Machine`; use `machine.git`.
   *
   * @internal
   * @example
   * ```ts
   * const git = machine.git;
   * ```
   */
  constructor(commands: Commands) {
    this.#commands = commands;
    this.config = new GitConfig(commands);
  }

  /**
   * Clones a repository into the machine and returns the directory it went to. With `token` (or
   * `password`), an HTTPS remote is authenticated for this clone only: the machine keeps no
   * credential, and the remote URL stored in `.git/config` is the one given.
   *
   * @example
   * ```ts
   * const { path } = await machine.git.clone('https://github.com/team/app.git', {
   *   path: '/workspace/app',
   *   branch: 'main',
   *   depth: 1,
   *   token: process.env.GITHUB_TOKEN,
   * });
   * ```
   */
  async clone(url: string, opts: GitCloneOptions = {}): Promise<{ path: string }> {
    if (url === '') throw invalid('url', 'must not be empty');
    const auth = authEnv(opts);
    if (auth.envs !== undefined && !/^https?:\/\//i.test(url))
      throw invalid('token', 'credentials can only be sent to an http:// or https:// URL');
    const args = ['clone'];
    if (opts.branch !== undefined) args.push('--branch', ref('branch', opts.branch));
    if (opts.depth !== undefined) {
      if (!Number.isInteger(opts.depth) || opts.depth < 1)
        throw invalid('depth', 'must be a positive integer');
      args.push('--depth', String(opts.depth));
    }
    if (opts.path !== undefined && opts.path === '') throw invalid('path', 'must not be empty');
    // `--` keeps a URL or path that starts with "-" from being read as an option.
    args.push('--', url);
    if (opts.path !== undefined) args.push(opts.path);
    await runGit(this.#commands, 'clone', args, {
      ...timing(opts),
      timeoutMs: opts.timeoutMs ?? NETWORK_TIMEOUT_MS,
      ...auth,
    });
    return { path: opts.path ?? directoryOf(url) };
  }

  /**
   * The repository's branch, upstream, ahead/behind counts and changed files
   * (`git status --porcelain=v2 --branch`).
   *
   * @example
   * ```ts
   * const s = await machine.git.status('/workspace/app');
   * for (const f of s.files) console.log(f.index, f.worktree, f.path); // "unmodified modified README.md"
   * ```
   */
  async status(path: string, opts: GitOptions = {}): Promise<GitStatus> {
    const r = await runGit(this.#commands, 'status', ['status', '--porcelain=v2', '--branch', '-z'], {
      ...opts,
      path: repo(path),
    });
    return parseStatus(r.stdout);
  }

  /**
   * The local branches and the current one.
   *
   * @example
   * ```ts
   * const { current, branches } = await machine.git.branches('/workspace/app');
   * console.log(current, branches.map((b) => b.name)); // "main" ["feature", "main"]
   * ```
   */
  async branches(path: string, opts: GitOptions = {}): Promise<GitBranches> {
    const r = await runGit(
      this.#commands,
      'branch',
      ['branch', '--list', '--format=%(HEAD)%00%(refname)%00%(upstream:short)%00%(objectname)%00'],
      { ...timing(opts), path: repo(path) },
    );
    return parseBranches(r.stdout);
  }

  /**
   * Creates a branch at `HEAD` (or `startPoint`), and checks it out with `checkout: true`.
   *
   * @example
   * ```ts
   * await machine.git.createBranch('/workspace/app', 'feature', { checkout: true });
   * ```
   */
  async createBranch(path: string, name: string, opts: GitCreateBranchOptions = {}): Promise<void> {
    const args =
      opts.checkout === true ? ['switch', '--create', ref('name', name)] : ['branch', ref('name', name)];
    if (opts.startPoint !== undefined) args.push(ref('startPoint', opts.startPoint));
    await runGit(this.#commands, opts.checkout === true ? 'switch' : 'branch', args, {
      ...timing(opts),
      path: repo(path),
    });
  }

  /**
   * Checks out a branch, tag or commit (a commit or tag leaves `HEAD` detached). A branch that
   * exists only on the remote gets a local tracking branch, as with `git checkout`.
   *
   * @example
   * ```ts
   * await machine.git.checkout('/workspace/app', 'main');
   * ```
   */
  async checkout(path: string, target: string, opts: GitOptions = {}): Promise<void> {
    // The trailing `--` makes git take `target` as a revision even if a file has the same name.
    await runGit(this.#commands, 'checkout', ['checkout', ref('ref', target), '--'], {
      ...timing(opts),
      path: repo(path),
    });
  }

  /**
   * Stages paths, or every change with `{ all: true }`.
   *
   * @example
   * ```ts
   * await machine.git.add('/workspace/app', ['README.md']);
   * await machine.git.add('/workspace/app', { all: true });
   * ```
   */
  async add(path: string, target: GitAddTarget, opts: GitOptions = {}): Promise<void> {
    let args: string[];
    if (Array.isArray(target)) {
      if (target.length === 0) throw invalid('files', 'name at least one path, or pass { all: true }');
      args = ['add', '--', ...target];
    } else if (target.all === true) {
      args = ['add', '--all'];
    } else {
      throw invalid('files', 'expected a list of paths or { all: true }');
    }
    await runGit(this.#commands, 'add', args, { ...timing(opts), path: repo(path) });
  }

  /**
   * Commits what is staged and returns the new commit's hash. Nothing staged (and no
   * `allowEmpty`) is a {@link GitError} saying so.
   *
   * @example
   * ```ts
   * const { sha } = await machine.git.commit('/workspace/app', 'Add README', {
   *   authorName: 'Ada Lovelace',
   *   authorEmail: 'ada@example.com',
   * });
   * ```
   */
  async commit(path: string, message: string, opts: GitCommitOptions = {}): Promise<GitCommitResult> {
    const dir = repo(path);
    if (message.trim() === '') throw invalid('message', 'must not be empty');
    const envs: Record<string, string> = {};
    if (opts.authorName !== undefined) {
      envs.GIT_AUTHOR_NAME = opts.authorName;
      envs.GIT_COMMITTER_NAME = opts.authorName;
    }
    if (opts.authorEmail !== undefined) {
      envs.GIT_AUTHOR_EMAIL = opts.authorEmail;
      envs.GIT_COMMITTER_EMAIL = opts.authorEmail;
    }
    // The message goes through stdin (`-F -`): any length, and never read as an option.
    const args = ['commit', '--file=-'];
    if (opts.allowEmpty === true) args.push('--allow-empty');
    await runGit(this.#commands, 'commit', args, { ...timing(opts), path: dir, envs, stdin: message });
    const head = await runGit(this.#commands, 'rev-parse', ['rev-parse', '--verify', 'HEAD'], {
      ...timing(opts),
      path: dir,
    });
    return { sha: head.stdout.trim() };
  }

  /**
   * The diff of the work tree against the index, or with `staged` of the index against `HEAD`,
   * as unified diff text (empty when nothing differs). Untracked files are not in it.
   *
   * @example
   * ```ts
   * const patch = await machine.git.diff('/workspace/app');
   * const staged = await machine.git.diff('/workspace/app', { staged: true, files: ['README.md'] });
   * ```
   */
  async diff(path: string, opts: GitDiffOptions = {}): Promise<string> {
    const args = ['diff', '--no-color', '--no-ext-diff'];
    if (opts.staged === true) args.push('--cached');
    args.push('--', ...(opts.files ?? []));
    const r = await runGit(this.#commands, 'diff', args, { ...timing(opts), path: repo(path) });
    return r.stdout;
  }

  /**
   * Fetches and merges from the remote (`git pull`), with credentials for this pull only.
   *
   * @example
   * ```ts
   * const { output } = await machine.git.pull('/workspace/app', { token: process.env.GITHUB_TOKEN });
   * ```
   */
  async pull(path: string, opts: GitPullOptions = {}): Promise<GitOutputResult> {
    const args = ['pull'];
    if (opts.rebase !== undefined) args.push(opts.rebase ? '--rebase' : '--no-rebase');
    const remote = opts.remote ?? (opts.branch === undefined ? undefined : 'origin');
    if (remote !== undefined) args.push(ref('remote', remote));
    if (opts.branch !== undefined) args.push(ref('branch', opts.branch));
    const auth = authEnv(opts);
    const r = await runGit(this.#commands, 'pull', args, {
      ...timing(opts),
      path: repo(path),
      timeoutMs: opts.timeoutMs ?? NETWORK_TIMEOUT_MS,
      ...auth,
    });
    return { output: outputOf(r, auth.redact) };
  }

  /**
   * Pushes the current branch (or `branch`) to the remote, with credentials for this push only.
   * `setUpstream` makes the pushed branch the local branch's upstream.
   *
   * @example
   * ```ts
   * await machine.git.push('/workspace/app', { setUpstream: true }); // first push of a new branch
   * await machine.git.push('/workspace/app', { remote: 'origin', branch: 'main', token: 'ghp_...' });
   * ```
   */
  async push(path: string, opts: GitPushOptions = {}): Promise<GitOutputResult> {
    const args = ['push'];
    if (opts.setUpstream === true) args.push('--set-upstream');
    const named = opts.branch !== undefined || opts.setUpstream === true;
    const remote = opts.remote ?? (named ? 'origin' : undefined);
    if (remote !== undefined) args.push(ref('remote', remote));
    // With a remote but no branch, `HEAD` pushes the current branch to the branch of the same name.
    if (opts.branch !== undefined) args.push(ref('branch', opts.branch));
    else if (named) args.push('HEAD');
    const auth = authEnv(opts);
    const r = await runGit(this.#commands, 'push', args, {
      ...timing(opts),
      path: repo(path),
      timeoutMs: opts.timeoutMs ?? NETWORK_TIMEOUT_MS,
      ...auth,
    });
    return { output: outputOf(r, auth.redact) };
  }
}

/** Runs one git command in the machine and turns a failure into a {@link GitError}. */
async function runGit(
  commands: Commands,
  subcommand: string,
  args: string[],
  opts: GitRun,
): Promise<CommandResult> {
  const redact = opts.redact ?? ((t: string) => t);
  const result = await commands.run('git', {
    args: opts.path === undefined ? args : ['-C', opts.path, ...args],
    // Never wait for a password on a terminal nobody reads.
    envs: { ...opts.envs, GIT_TERMINAL_PROMPT: '0' },
    timeoutMs: opts.timeoutMs ?? LOCAL_TIMEOUT_MS,
    ...(opts.stdin === undefined ? {} : { stdin: opts.stdin }),
    ...(opts.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: opts.requestTimeoutMs }),
  });
  if (result.exitCode === 0 || (result.exitCode !== null && opts.okExitCodes?.includes(result.exitCode)))
    return result;
  const said = redact(result.stderr.trim() === '' ? result.stdout : result.stderr);
  const explanation = said
    .split('\n')
    .map((line) => line.trimEnd())
    // The "Cloning into ..." line is progress, not part of why it failed.
    .filter((line) => line !== '' && !/^Cloning into /.test(line))
    .join('\n');
  const how = result.timedOut
    ? `timed out after ${result.durationMs} ms`
    : result.exitCode === null
      ? `ended by ${result.signal ?? 'a signal'}`
      : `failed (exit ${result.exitCode})`;
  throw new GitError(`git ${subcommand} ${how}${explanation === '' ? '' : `: ${explanation}`}`, {
    subcommand,
    exitCode: result.exitCode,
    stderr: said,
    timedOut: result.timedOut,
  });
}

/** Only the timing options of a helper's options reach `runGit` (never its `path`, `branch`, ...). */
function timing(opts: GitOptions): GitOptions {
  const t: GitOptions = {};
  if (opts.timeoutMs !== undefined) t.timeoutMs = opts.timeoutMs;
  if (opts.requestTimeoutMs !== undefined) t.requestTimeoutMs = opts.requestTimeoutMs;
  return t;
}

function invalid(field: string, message: string): InvalidArgumentError {
  return new InvalidArgumentError('invalid_argument', `${field}: ${message}`, { details: { field } });
}

function repo(path: string): string {
  if (typeof path !== 'string' || path === '') throw invalid('path', 'name the repository directory');
  return path;
}

/** A branch, remote or revision name: git refuses such names starting with "-", and so do we, before git could read one as an option. */
function ref(field: string, name: string): string {
  if (name === '' || name.startsWith('-')) throw invalid(field, `"${name}" is not a valid name`);
  return name;
}

function checkKey(key: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9-]*(\..+)?\.[A-Za-z][A-Za-z0-9-]*$/.test(key))
    throw invalid('key', `"${key}" is not a git config key (section.name)`);
}

function scopeArgs(scope: 'global' | 'local' | undefined, path: string | undefined): string[] {
  if (scope === undefined) return [];
  if (scope === 'global') return ['--global'];
  if (scope === 'local') {
    if (path === undefined) throw invalid('path', 'the local scope needs the repository path');
    return ['--local'];
  }
  throw invalid('scope', `expected global or local, got "${String(scope)}"`);
}

function pathOf(opts: GitConfigOptions): { path?: string } {
  return opts.path === undefined || opts.scope === 'global' ? {} : { path: repo(opts.path) };
}

/**
 * The environment that authenticates one git process: an `http.extraHeader` given through
 * `GIT_CONFIG_COUNT` (git ≥ 2.31), so the credential is in no file and no argv. Also returns a
 * redactor for anything git prints.
 */
function authEnv(creds: GitCredentials): { envs?: Record<string, string>; redact: Redactor } {
  if (creds.token !== undefined && creds.password !== undefined)
    throw invalid('token', 'give token or password, not both');
  const secret = creds.token ?? creds.password;
  if (secret === undefined || secret === '') {
    if (creds.username !== undefined) throw invalid('username', 'a username needs a token or password');
    return { redact: (t) => t };
  }
  const username = creds.username ?? DEFAULT_USERNAME;
  if (username.includes(':')) throw invalid('username', 'must not contain ":"');
  if (/[\r\n]/.test(secret)) throw invalid('token', 'must not contain line breaks');
  const basic = Buffer.from(`${username}:${secret}`, 'utf8').toString('base64');
  const redact = (t: string) => t.split(basic).join('***').split(secret).join('***');
  return {
    envs: {
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.extraHeader',
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
    },
    redact,
  };
}

function outputOf(r: CommandResult, redact: Redactor): string {
  // git writes its progress and ref summary to stderr and the merge summary to stdout, in that order.
  return redact(r.stderr + r.stdout);
}

/** The directory `git clone URL` picks without a path: the last part of the URL without `.git`. */
function directoryOf(url: string): string {
  const trimmed = url.replace(/[/\\]+$/, '').replace(/\/\.git$/, '');
  const last = trimmed.split(/[/:]/).pop() ?? trimmed;
  return last.replace(/\.git$/, '') || trimmed;
}
