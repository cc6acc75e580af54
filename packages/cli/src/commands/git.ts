/**
 * `nullspace machine git ID ACTION ...`: the SDK's `machine.git` helpers from the command line.
 * One subcommand of `machine` whose first two words are the machine id and the git action; each
 * action accepts only its own flags.
 */
import {
  type GitBranches,
  type GitCredentials,
  type GitStatus,
  Machine,
  type GitOptions as SdkGitOptions,
} from '@nullspace/sdk';
import {
  type CommandInput,
  type OptionSpec,
  type Subcommand,
  UsageError,
  flag,
  optionalInteger,
  optionalString,
} from '../args.js';
import { formatKeyValue, formatTable, printJson } from '../output.js';

/** Where `--token` falls back to, so a token need not be on the command line. */
const TOKEN_ENV = 'NULLSPACE_GIT_TOKEN';

interface Action {
  /** Positional arguments after the action, for help and errors. */
  args: string;
  summary: string;
  /** Flags this action accepts (names in {@link OPTIONS}); `timeout-ms` and `path` are added. */
  flags: string[];
  /** Takes paths after `--`. */
  paths?: boolean;
  run(ctx: Context): Promise<number>;
}

interface Context {
  input: CommandInput;
  machine: Machine;
  /** The repository (`--path`, default: the machine's working directory). */
  repo: string;
  /** Positionals after the action. */
  args: string[];
  timing: SdkGitOptions;
}

const OPTIONS = {
  path: { type: 'string', short: 'C' },
  branch: { type: 'string', short: 'b' },
  depth: { type: 'string' },
  username: { type: 'string' },
  token: { type: 'string' },
  'timeout-ms': { type: 'string' },
  all: { type: 'boolean', short: 'A' },
  message: { type: 'string', short: 'm' },
  'author-name': { type: 'string' },
  'author-email': { type: 'string' },
  'allow-empty': { type: 'boolean' },
  staged: { type: 'boolean' },
  checkout: { type: 'boolean' },
  remote: { type: 'string' },
  rebase: { type: 'boolean' },
  'no-rebase': { type: 'boolean' },
  'set-upstream': { type: 'boolean', short: 'u' },
  global: { type: 'boolean' },
  local: { type: 'boolean' },
} as const satisfies OptionSpec;

type FlagName = keyof typeof OPTIONS;
const CREDENTIAL_FLAGS: FlagName[] = ['username', 'token'];

function expectArgs(ctx: Context, names: string[], optional = 0): string[] {
  const { args, input } = ctx;
  const required = names.length - optional;
  if (args.length < required) throw new UsageError(`missing ${names[args.length]}`, input.command);
  if (args.length > names.length)
    throw new UsageError(`unexpected argument "${args[names.length]}"`, input.command);
  return args;
}

function credentials(input: CommandInput): GitCredentials {
  const creds: GitCredentials = {};
  const token = optionalString(input.values, 'token') ?? process.env[TOKEN_ENV];
  const username = optionalString(input.values, 'username');
  if (token !== undefined && token !== '') creds.token = token;
  if (username !== undefined) creds.username = username;
  return creds;
}

/** Paths given as arguments and after `--` (for names that start with "-"). */
function pathsOf(ctx: Context): string[] {
  return [...ctx.args, ...(ctx.input.afterDashDash ?? [])];
}

function ok(json: boolean, human: string, wire: Record<string, unknown>): number {
  if (json) printJson(wire);
  else if (human !== '') process.stdout.write(human.endsWith('\n') ? human : `${human}\n`);
  return 0;
}

function statusToWire(s: GitStatus): Record<string, unknown> {
  return {
    branch: s.branch,
    commit: s.commit,
    upstream: s.upstream,
    ahead: s.ahead,
    behind: s.behind,
    detached: s.detached,
    clean: s.clean,
    files: s.files.map((f) => ({
      path: f.path,
      orig_path: f.origPath,
      index: f.index,
      worktree: f.worktree,
    })),
  };
}

function formatStatus(s: GitStatus): string {
  const entries: [string, string][] = [
    ['branch', s.branch ?? '(detached HEAD)'],
    ['upstream', s.upstream === null ? '-' : `${s.upstream} (ahead ${s.ahead}, behind ${s.behind})`],
    ['commit', s.commit ?? '(no commits yet)'],
    ['changes', s.clean ? 'none' : String(s.files.length)],
  ];
  let out = formatKeyValue(entries);
  if (!s.clean)
    out += `\n${formatTable(
      ['INDEX', 'WORKTREE', 'PATH'],
      s.files.map((f) => [f.index, f.worktree, f.origPath === null ? f.path : `${f.path} <- ${f.origPath}`]),
    )}`;
  return out;
}

function formatBranches(b: GitBranches): string {
  if (b.branches.length === 0) return '(no branches yet)\n';
  return formatTable(
    ['', 'BRANCH', 'UPSTREAM', 'COMMIT'],
    b.branches.map((br) => [br.current ? '*' : '', br.name, br.upstream ?? '-', br.commit.slice(0, 12)]),
  );
}

const ACTIONS: Record<string, Action> = {
  clone: {
    args: 'URL',
    summary: 'clone URL (into --path; default: a directory named after it)',
    flags: ['branch', 'depth', ...CREDENTIAL_FLAGS],
    async run(ctx) {
      const [url] = expectArgs(ctx, ['URL']);
      const { values, command } = ctx.input;
      const branch = optionalString(values, 'branch');
      const depth = optionalInteger(values, 'depth', command);
      const path = optionalString(values, 'path');
      const r = await ctx.machine.git.clone(url!, {
        ...ctx.timing,
        ...credentials(ctx.input),
        ...(path === undefined ? {} : { path }),
        ...(branch === undefined ? {} : { branch }),
        ...(depth === undefined ? {} : { depth }),
      });
      return ok(ctx.input.json, `cloned into ${r.path}`, { path: r.path });
    },
  },
  status: {
    args: '',
    summary: 'branch, upstream, ahead/behind and changed files',
    flags: [],
    async run(ctx) {
      expectArgs(ctx, []);
      const s = await ctx.machine.git.status(ctx.repo, ctx.timing);
      if (ctx.input.json) printJson(statusToWire(s));
      else process.stdout.write(formatStatus(s));
      return 0;
    },
  },
  branches: {
    args: '',
    summary: 'local branches; * marks the current one',
    flags: [],
    async run(ctx) {
      expectArgs(ctx, []);
      const b = await ctx.machine.git.branches(ctx.repo, ctx.timing);
      if (ctx.input.json) printJson(b);
      else process.stdout.write(formatBranches(b));
      return 0;
    },
  },
  branch: {
    args: 'NAME [START]',
    summary: 'create branch NAME at HEAD or START; --checkout switches to it',
    flags: ['checkout'],
    async run(ctx) {
      const [name, startPoint] = expectArgs(ctx, ['NAME', 'START'], 1);
      const checkout = flag(ctx.input.values, 'checkout');
      await ctx.machine.git.createBranch(ctx.repo, name!, {
        ...ctx.timing,
        checkout,
        ...(startPoint === undefined ? {} : { startPoint }),
      });
      return ok(ctx.input.json, `created branch ${name}${checkout ? ' and switched to it' : ''}`, {
        branch: name,
        checked_out: checkout,
      });
    },
  },
  checkout: {
    args: 'REF | -b NAME [START]',
    summary: 'switch to a branch, tag or commit; -b NAME creates it first',
    flags: ['branch'],
    async run(ctx) {
      const create = optionalString(ctx.input.values, 'branch');
      if (create !== undefined) {
        const [startPoint] = expectArgs(ctx, ['START'], 1);
        await ctx.machine.git.createBranch(ctx.repo, create, {
          ...ctx.timing,
          checkout: true,
          ...(startPoint === undefined ? {} : { startPoint }),
        });
        return ok(ctx.input.json, `switched to a new branch ${create}`, { ref: create, created: true });
      }
      const [target] = expectArgs(ctx, ['REF']);
      await ctx.machine.git.checkout(ctx.repo, target!, ctx.timing);
      return ok(ctx.input.json, `switched to ${target}`, { ref: target, created: false });
    },
  },
  add: {
    args: 'PATH... | --all',
    summary: 'stage paths, or every change with --all',
    flags: ['all'],
    paths: true,
    async run(ctx) {
      const paths = pathsOf(ctx);
      const all = flag(ctx.input.values, 'all');
      if (all && paths.length > 0) throw new UsageError('give paths or --all, not both', ctx.input.command);
      if (!all && paths.length === 0) throw new UsageError('missing PATH (or --all)', ctx.input.command);
      await ctx.machine.git.add(ctx.repo, all ? { all: true } : paths, ctx.timing);
      return ok(ctx.input.json, '', all ? { all: true } : { paths });
    },
  },
  commit: {
    args: '-m MESSAGE',
    summary: 'commit what is staged; prints the new commit hash',
    flags: ['message', 'author-name', 'author-email', 'allow-empty'],
    async run(ctx) {
      expectArgs(ctx, []);
      const { values, command } = ctx.input;
      const message = optionalString(values, 'message');
      if (message === undefined) throw new UsageError('missing -m MESSAGE', command);
      const authorName = optionalString(values, 'author-name');
      const authorEmail = optionalString(values, 'author-email');
      const { sha } = await ctx.machine.git.commit(ctx.repo, message, {
        ...ctx.timing,
        ...(authorName === undefined ? {} : { authorName }),
        ...(authorEmail === undefined ? {} : { authorEmail }),
        allowEmpty: flag(values, 'allow-empty'),
      });
      return ok(ctx.input.json, sha, { sha });
    },
  },
  diff: {
    args: '[PATH...]',
    summary: 'unstaged changes as a diff; --staged: what commit would record',
    flags: ['staged'],
    paths: true,
    async run(ctx) {
      const files = pathsOf(ctx);
      const diff = await ctx.machine.git.diff(ctx.repo, {
        ...ctx.timing,
        staged: flag(ctx.input.values, 'staged'),
        ...(files.length === 0 ? {} : { files }),
      });
      if (ctx.input.json) printJson({ diff });
      else process.stdout.write(diff);
      return 0;
    },
  },
  pull: {
    args: '',
    summary: 'fetch and merge from the upstream (or --remote/--branch)',
    flags: ['remote', 'branch', 'rebase', 'no-rebase', ...CREDENTIAL_FLAGS],
    async run(ctx) {
      expectArgs(ctx, []);
      const { values, command } = ctx.input;
      if (flag(values, 'rebase') && flag(values, 'no-rebase'))
        throw new UsageError('give --rebase or --no-rebase, not both', command);
      const remote = optionalString(values, 'remote');
      const branch = optionalString(values, 'branch');
      const rebase = flag(values, 'rebase') ? true : flag(values, 'no-rebase') ? false : undefined;
      const { output } = await ctx.machine.git.pull(ctx.repo, {
        ...ctx.timing,
        ...credentials(ctx.input),
        ...(rebase === undefined ? {} : { rebase }),
        ...(remote === undefined ? {} : { remote }),
        ...(branch === undefined ? {} : { branch }),
      });
      return ok(ctx.input.json, output, { output });
    },
  },
  push: {
    args: '',
    summary: 'push the current branch (or --branch); -u sets the upstream',
    flags: ['remote', 'branch', 'set-upstream', ...CREDENTIAL_FLAGS],
    async run(ctx) {
      expectArgs(ctx, []);
      const remote = optionalString(ctx.input.values, 'remote');
      const branch = optionalString(ctx.input.values, 'branch');
      const { output } = await ctx.machine.git.push(ctx.repo, {
        ...ctx.timing,
        ...credentials(ctx.input),
        ...(remote === undefined ? {} : { remote }),
        ...(branch === undefined ? {} : { branch }),
        setUpstream: flag(ctx.input.values, 'set-upstream'),
      });
      return ok(ctx.input.json, output, { output });
    },
  },
  config: {
    args: 'KEY [VALUE]',
    summary: 'print KEY (exit 1 if unset) or set it; --global or --local',
    flags: ['global', 'local'],
    async run(ctx) {
      const [key, value] = expectArgs(ctx, ['KEY', 'VALUE'], 1);
      const { values, command } = ctx.input;
      if (flag(values, 'global') && flag(values, 'local'))
        throw new UsageError('give --global or --local, not both', command);
      const scope: 'global' | 'local' | undefined = flag(values, 'global')
        ? 'global'
        : flag(values, 'local')
          ? 'local'
          : undefined;
      const path = optionalString(values, 'path');
      const opts = {
        ...ctx.timing,
        ...(scope === undefined ? {} : { scope }),
        // Without --path, `--local` (and a set, which defaults to local with a path) means the cwd's repository.
        ...(path !== undefined || scope === 'local' ? { path: ctx.repo } : {}),
      };
      if (value === undefined) {
        const got = await ctx.machine.git.config.get(key!, opts);
        if (ctx.input.json) printJson({ key, value: got });
        else if (got !== null) process.stdout.write(`${got}\n`);
        return got === null ? 1 : 0;
      }
      await ctx.machine.git.config.set(key!, value, opts);
      return ok(ctx.input.json, '', { key, value });
    },
  },
};

const COMMON_FLAGS: FlagName[] = ['path', 'timeout-ms'];
const GLOBAL_FLAGS = new Set(['api-url', 'api-key', 'json', 'help']);

function actionList(): string {
  const rows = Object.entries(ACTIONS).map(([name, a]) => [`${name} ${a.args}`.trimEnd(), a.summary]);
  const width = Math.max(...rows.map(([left]) => left!.length));
  return rows.map(([left, right]) => `  ${left!.padEnd(width)}  ${right}`).join('\n');
}

export const git: Subcommand = {
  name: 'git',
  summary: 'Run git in a machine: clone, status, branches, checkout, add, commit, diff, pull, push, config.',
  usage: 'nullspace machine git ID ACTION [ARGS] [flags]',
  flags: `Actions:
${actionList()}

Flags:
  -C, --path DIR          the repository (default: the machine's working directory); for clone,
                          the directory to clone into
  -b, --branch NAME       clone/pull/push: the branch; checkout: create branch NAME and switch
  --depth N               clone: only the last N commits
  --token TOKEN           clone/pull/push: HTTPS token (default: $${TOKEN_ENV}); sent
                          for that one git command only, never stored in the machine
  --username NAME         clone/pull/push: user name sent with the token (default: x-access-token)
  -m, --message MSG       commit: the commit message
  --author-name NAME      commit: author and committer name
  --author-email EMAIL    commit: author and committer email
  --allow-empty           commit: even with nothing staged
  -A, --all               add: every change
  --staged                diff: the index against HEAD
  --checkout              branch: switch to the new branch
  --remote NAME           pull/push: the remote (default: the upstream's, or origin)
  --rebase, --no-rebase   pull: rebase local commits, or merge (default: pull.rebase)
  -u, --set-upstream      push: make the pushed branch the upstream
  --global, --local       config: ~/.gitconfig in the machine, or the repository's .git/config
  --timeout-ms N          kill git after N milliseconds (default: 60000; clone, pull, push: 300000)

A failed git command exits 1 with "error: git_error: <git's message>".`,
  options: OPTIONS,
  takesDashDash: true,
  async run(input) {
    const [id, name, ...args] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', input.command);
    if (name === undefined) throw new UsageError('missing git action (clone, status, ...)', input.command);
    const action = Object.hasOwn(ACTIONS, name) ? ACTIONS[name] : undefined;
    if (action === undefined)
      throw new UsageError(
        `unknown git action "${name}"; expected one of ${Object.keys(ACTIONS).join(', ')}`,
        input.command,
      );
    const allowed = new Set<string>([...COMMON_FLAGS, ...action.flags]);
    for (const [key, value] of Object.entries(input.values)) {
      if (value !== undefined && !GLOBAL_FLAGS.has(key) && !allowed.has(key))
        throw new UsageError(`--${key} is not used by "git ${name}"`, input.command);
    }
    if (input.afterDashDash !== undefined && action.paths !== true)
      throw new UsageError(`"--" is only used by "git add" and "git diff"`, input.command);
    const timeoutMs = optionalInteger(input.values, 'timeout-ms', input.command);
    return action.run({
      input,
      machine: new Machine(id, input.connection),
      repo: optionalString(input.values, 'path') ?? '.',
      args,
      timing: timeoutMs === undefined ? {} : { timeoutMs },
    });
  },
};
