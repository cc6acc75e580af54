/**
 * `machine.git` and `nullspace machine git` inside real machines, against a bare repository in
 * the same machine: clone, add, commit with an author, push, a second clone and a pull that see
 * the commit, status and diff of a modified file, branches, git's own messages in `GitError`, and
 * HTTPS credentials that reach the server as a header but are never stored in the machine nor
 * shown in any process's argv.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { GitError, InvalidArgumentError, Machine } from '@nullspace/sdk';
import { type TestServer, cli, describeWithServer, eventually } from './harness.js';

const AUTHOR = { authorName: 'Ada Lovelace', authorEmail: 'ada@example.com' };

/** Runs a command in the machine and asserts it exited 0; returns its stdout. */
async function sh(m: Machine, cmd: string, args?: string[]): Promise<string> {
  const r = await m.commands.run(cmd, args === undefined ? {} : { args });
  assert.equal(r.exitCode, 0, `${cmd} ${args?.join(' ') ?? ''}: ${r.stderr}`);
  return r.stdout;
}

/** Writes a file in the machine with printf (argv, no shell quoting involved). */
async function write(m: Machine, path: string, text: string, append = false): Promise<void> {
  await sh(m, 'bash', ['-c', `printf '%s' "$1" ${append ? '>>' : '>'} "$2"`, 'write', text, path]);
}

/** A machine with a bare repository at /srv/repo.git and a clone of it, with one pushed commit, at /workspace/a. */
async function machineWithRepo(server: TestServer): Promise<{ m: Machine; first: string }> {
  const m = await Machine.create(server.conn);
  await sh(m, 'git', ['init', '--bare', '--initial-branch=main', '/srv/repo.git']);
  await m.git.clone('/srv/repo.git', { path: '/workspace/a' });
  await write(m, '/workspace/a/hello.txt', 'hello\n');
  await m.git.add('/workspace/a', ['hello.txt']);
  const { sha } = await m.git.commit('/workspace/a', 'first', AUTHOR);
  await m.git.push('/workspace/a');
  return { m, first: sha };
}

describeWithServer('git', (ctx) => {
  it('clones a bare repository, commits with an author, pushes; a second clone and a pull see it', async () => {
    const m = await Machine.create(ctx.server.conn);
    try {
      await sh(m, 'git', ['init', '--bare', '--initial-branch=main', '/srv/repo.git']);
      assert.deepEqual(await m.git.clone('/srv/repo.git', { path: '/workspace/a' }), {
        path: '/workspace/a',
      });
      const empty = await m.git.status('/workspace/a');
      assert.equal(empty.branch, 'main');
      assert.equal(empty.commit, null, 'no commit yet');
      assert.equal(empty.clean, true);

      await write(m, '/workspace/a/hello.txt', 'hello\n');
      const untracked = await m.git.status('/workspace/a');
      assert.deepEqual(untracked.files, [
        { path: 'hello.txt', origPath: null, index: 'untracked', worktree: 'untracked' },
      ]);
      await m.git.add('/workspace/a', ['hello.txt']);
      assert.deepEqual((await m.git.status('/workspace/a')).files, [
        { path: 'hello.txt', origPath: null, index: 'added', worktree: 'unmodified' },
      ]);
      const { sha } = await m.git.commit('/workspace/a', 'Add hello', AUTHOR);
      assert.match(sha, /^[0-9a-f]{40}$/);
      const log = await sh(m, 'git', [
        '-C',
        '/workspace/a',
        'log',
        '-1',
        '--format=%H|%an <%ae>|%cn <%ce>|%s',
      ]);
      assert.equal(log, `${sha}|Ada Lovelace <ada@example.com>|Ada Lovelace <ada@example.com>|Add hello\n`);
      const pushed = await m.git.push('/workspace/a');
      assert.match(pushed.output, /\[new branch\]\s+main -> main/);

      // A second clone sees the commit and the file.
      await m.git.clone('/srv/repo.git', { path: '/workspace/b' });
      const b = await m.git.status('/workspace/b');
      assert.equal(b.commit, sha);
      assert.equal(b.upstream, 'origin/main');
      assert.equal(await sh(m, 'cat', ['/workspace/b/hello.txt']), 'hello\n');
      assert.deepEqual(await m.git.branches('/workspace/b'), {
        current: 'main',
        branches: [{ name: 'main', current: true, upstream: 'origin/main', commit: sha }],
      });

      // A second commit: ahead 1 before the push, and b is behind until it pulls.
      await write(m, '/workspace/a/hello.txt', 'world\n', true);
      await m.git.add('/workspace/a', { all: true });
      const second = (await m.git.commit('/workspace/a', 'Add world', AUTHOR)).sha;
      const ahead = await m.git.status('/workspace/a');
      assert.equal(ahead.ahead, 1);
      assert.equal(ahead.behind, 0);
      await m.git.push('/workspace/a', { remote: 'origin', branch: 'main' });
      assert.equal((await m.git.status('/workspace/a')).ahead, 0);
      const pulled = await m.git.pull('/workspace/b');
      assert.match(pulled.output, /Fast-forward/);
      assert.equal((await m.git.status('/workspace/b')).commit, second);
      assert.equal(await sh(m, 'cat', ['/workspace/b/hello.txt']), 'hello\nworld\n');

      // Diverged: a plain pull is refused with git's advice; a rebasing pull replays the local commit.
      await write(m, '/workspace/b/b.txt', 'from b\n');
      await m.git.add('/workspace/b', ['b.txt']);
      await m.git.commit('/workspace/b', 'From b', AUTHOR);
      await m.git.push('/workspace/b');
      await write(m, '/workspace/a/a.txt', 'from a\n');
      await m.git.add('/workspace/a', ['a.txt']);
      await m.git.commit('/workspace/a', 'From a', AUTHOR);
      await assert.rejects(m.git.pull('/workspace/a'), { name: 'GitError', message: /divergent branches/ });
      // A rebase records a committer: git takes it from config.
      await m.git.config.set('user.name', 'Ada Lovelace');
      await m.git.config.set('user.email', 'ada@example.com');
      await m.git.pull('/workspace/a', { rebase: true });
      const rebased = await m.git.status('/workspace/a');
      assert.deepEqual([rebased.ahead, rebased.behind, rebased.clean], [1, 0, true]);
      assert.equal(await sh(m, 'ls', ['/workspace/a']), 'a.txt\nb.txt\nhello.txt\n');
    } finally {
      await m.kill();
    }
  });

  it('status shows a modified file and diff shows the change, unstaged then staged', async () => {
    const { m } = await machineWithRepo(ctx.server);
    try {
      await write(m, '/workspace/a/hello.txt', 'hello, world\n');
      const status = await m.git.status('/workspace/a');
      assert.equal(status.clean, false);
      assert.deepEqual(status.files, [
        { path: 'hello.txt', origPath: null, index: 'unmodified', worktree: 'modified' },
      ]);
      const diff = await m.git.diff('/workspace/a');
      assert.match(diff, /^diff --git a\/hello.txt b\/hello.txt$/m);
      assert.match(diff, /^-hello$/m);
      assert.match(diff, /^\+hello, world$/m);
      assert.equal(await m.git.diff('/workspace/a', { staged: true }), '', 'nothing staged yet');

      await m.git.add('/workspace/a', ['hello.txt']);
      assert.equal((await m.git.status('/workspace/a')).files[0]?.index, 'modified');
      assert.equal(await m.git.diff('/workspace/a'), '');
      const staged = await m.git.diff('/workspace/a', { staged: true, files: ['hello.txt'] });
      assert.match(staged, /^\+hello, world$/m);

      // A rename with a space in the new name is parsed from the NUL-separated records.
      await m.git.commit('/workspace/a', 'Say hello, world', AUTHOR);
      await sh(m, 'git', ['-C', '/workspace/a', 'mv', 'hello.txt', 'he llo.txt']);
      const renamed = await m.git.status('/workspace/a');
      assert.deepEqual(renamed.files, [
        { path: 'he llo.txt', origPath: 'hello.txt', index: 'renamed', worktree: 'unmodified' },
      ]);
    } finally {
      await m.kill();
    }
  });

  it('creates, checks out and lists branches, and pushes a new one with setUpstream', async () => {
    const { m, first } = await machineWithRepo(ctx.server);
    try {
      await m.git.createBranch('/workspace/a', 'feature', { checkout: true });
      await m.git.createBranch('/workspace/a', 'later');
      const listed = await m.git.branches('/workspace/a');
      assert.equal(listed.current, 'feature');
      assert.deepEqual(
        listed.branches.map((b) => [b.name, b.current, b.upstream, b.commit]),
        [
          ['feature', true, null, first],
          ['later', false, null, first],
          ['main', false, 'origin/main', first],
        ],
      );
      await write(m, '/workspace/a/feature.txt', 'feature\n');
      await m.git.add('/workspace/a', ['feature.txt']);
      const { sha } = await m.git.commit('/workspace/a', 'Feature', AUTHOR);
      const pushed = await m.git.push('/workspace/a', { setUpstream: true });
      assert.match(pushed.output, /HEAD -> feature/);
      assert.equal((await m.git.status('/workspace/a')).upstream, 'origin/feature');

      await m.git.checkout('/workspace/a', 'main');
      assert.equal((await m.git.branches('/workspace/a')).current, 'main');
      assert.equal(await sh(m, 'ls', ['/workspace/a']), 'hello.txt\n');

      // A fresh clone checks the remote branch out as a tracking branch; a commit detaches HEAD.
      await m.git.clone('/srv/repo.git', { path: '/workspace/b' });
      await m.git.checkout('/workspace/b', 'feature');
      const b = await m.git.status('/workspace/b');
      assert.deepEqual([b.branch, b.upstream, b.commit], ['feature', 'origin/feature', sha]);
      await m.git.checkout('/workspace/b', first);
      const detached = await m.git.status('/workspace/b');
      assert.deepEqual([detached.detached, detached.branch, detached.commit], [true, null, first]);
      assert.equal((await m.git.branches('/workspace/b')).current, null);
    } finally {
      await m.kill();
    }
  });

  it("throws GitError with git's message, exit code and subcommand", async () => {
    const { m } = await machineWithRepo(ctx.server);
    try {
      const missing = await m.git
        .clone('/srv/missing.git', { path: '/workspace/c' })
        .catch((e: unknown) => e);
      assert.ok(missing instanceof GitError, String(missing));
      assert.equal(missing.code, 'git_error');
      assert.equal(missing.subcommand, 'clone');
      assert.equal(missing.exitCode, 128);
      assert.equal(
        missing.message,
        "git clone failed (exit 128): fatal: repository '/srv/missing.git' does not exist",
      );
      assert.match(missing.stderr, /does not exist/);

      await assert.rejects(m.git.status('/workspace/nope'), {
        name: 'GitError',
        message:
          "git status failed (exit 128): fatal: cannot change to '/workspace/nope': No such file or directory",
      });
      await assert.rejects(m.git.branches('/tmp'), {
        name: 'GitError',
        subcommand: 'branch',
        message: /fatal: not a git repository/,
      });
      // Nothing staged: git says so on stdout, and that is the message.
      await assert.rejects(m.git.commit('/workspace/a', 'empty', AUTHOR), {
        name: 'GitError',
        exitCode: 1,
        message: /nothing to commit, working tree clean/,
      });
      await assert.rejects(m.git.checkout('/workspace/a', 'no-such-branch'), {
        name: 'GitError',
        message: /no-such-branch/,
      });
      // Names that git could read as options are refused before git runs.
      await assert.rejects(m.git.createBranch('/workspace/a', '--force'), InvalidArgumentError);
      await assert.rejects(m.git.add('/workspace/a', []), InvalidArgumentError);
      await assert.rejects(m.git.clone('/srv/repo.git', { token: 'abc' }), {
        name: 'InvalidArgumentError',
        message: /http/,
      });
      // Option-looking values after `--` reach git as plain arguments.
      await assert.rejects(m.git.clone('--upload-pack=touch /tmp/pwned', { path: '/workspace/x' }), GitError);
      assert.equal((await m.commands.run('test', { args: ['-e', '/tmp/pwned'] })).exitCode, 1);
      // An unset config key is null, not an error.
      assert.equal(await m.git.config.get('user.nothing'), null);
    } finally {
      await m.kill();
    }
  });

  it('sends a token as a header of that one command, never in argv nor in any git config', async () => {
    const { m } = await machineWithRepo(ctx.server);
    const token = 'tok-Secret-5f3a9c';
    const basic = Buffer.from(`ada:${token}`).toString('base64');
    try {
      // An HTTP server in the machine that records the Authorization header, waits, then says 401.
      const server = `
import http.server, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open('/tmp/auth.log', 'a') as f:
            f.write((self.headers.get('Authorization') or '-') + '\\n')
        time.sleep(3)
        self.send_response(401)
        self.send_header('WWW-Authenticate', 'Basic realm="x"')
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', 8123), H).serve_forever()
`;
      await m.commands.run('python3', { args: ['-c', server], background: true, tag: 'auth-server' });
      await eventually(
        async () =>
          (
            await m.commands.run('python3', {
              args: ['-c', 'import socket; socket.create_connection(("127.0.0.1", 8123), 1)'],
            })
          ).exitCode === 0,
        'the HTTP server in the machine',
      );

      const clone = m.git
        .clone('http://127.0.0.1:8123/x.git', { path: '/workspace/h', username: 'ada', token })
        .catch((e: unknown) => e);
      // While git waits for the server, no process shows the token or the header in its argv.
      const argvs = await eventually(async () => {
        const ps = await sh(m, 'ps', ['-eo', 'args']);
        return ps.includes('127.0.0.1:8123') ? ps : undefined;
      }, 'git to be running');
      assert.match(argvs, /git .*clone/);
      assert.ok(!argvs.includes(token) && !argvs.includes(basic), argvs);
      const refused = await clone;
      assert.ok(refused instanceof GitError, String(refused));
      // The server refused, and git did not wait for a password on a terminal.
      assert.match(refused.message, /terminal prompts disabled|Authentication failed/);
      assert.ok(!refused.message.includes(token));
      assert.equal(await sh(m, 'cat', ['/tmp/auth.log']), `Basic ${basic}\n`);
      // The CLI takes the token from NULLSPACE_GIT_TOKEN, so it need not be on its command line.
      process.env.NULLSPACE_GIT_TOKEN = `${token}-cli`;
      try {
        const r = await cli(ctx.server, [
          'machine',
          'git',
          m.id,
          'clone',
          'http://127.0.0.1:8123/y.git',
          '--username',
          'cli',
        ]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /^error: git_error: git clone failed \(exit 128\): /);
      } finally {
        Reflect.deleteProperty(process.env, 'NULLSPACE_GIT_TOKEN');
      }
      const cliBasic = Buffer.from(`cli:${token}-cli`).toString('base64');
      assert.equal(await sh(m, 'cat', ['/tmp/auth.log']), `Basic ${basic}\nBasic ${cliBasic}\n`);

      // The closed-port HTTPS clone of the brief fails fast with git's message.
      await assert.rejects(m.git.clone('https://127.0.0.1:9/x.git', { path: '/workspace/t', token }), {
        name: 'GitError',
        message: /Failed to connect to 127.0.0.1 port 9/,
      });
      // Pull and push with a token (ignored by a local remote) succeed and store nothing either.
      await m.git.pull('/workspace/a', { token });
      await m.git.push('/workspace/a', { token, username: 'ada' });

      for (const where of ['/workspace/a', '/workspace']) {
        const r = await m.commands.run('git', { args: ['config', '--show-origin', '--list'], cwd: where });
        assert.ok(!r.stdout.includes(token) && !r.stdout.includes(basic), r.stdout);
        assert.ok(!r.stdout.includes('extraheader'), r.stdout);
      }
      assert.doesNotMatch(await sh(m, 'cat', ['/workspace/a/.git/config']), new RegExp(token));
      const home = await m.commands.run('cat', { args: ['/root/.gitconfig'] });
      assert.ok(home.exitCode !== 0 || !home.stdout.includes(token), 'not in ~/.gitconfig');
      // Nor in what the API lists about processes, nor in the server's log
      // (checked before the grep below, whose own argv holds both).
      const listed = JSON.stringify(await m.commands.list());
      assert.ok(!listed.includes(token) && !listed.includes(basic), 'not in commands.list()');
      assert.ok(
        !ctx.server.logs().includes(token) && !ctx.server.logs().includes(basic),
        'not in the server log',
      );
      // Nowhere on the machine's disk outside /tmp/auth.log (which has only the encoded header).
      const grep = await m.commands.run('grep', {
        args: ['-rlF', '-e', token, '-e', basic, '/root', '/workspace', '/srv', '/etc'],
      });
      assert.equal(grep.exitCode, 1, `found in: ${grep.stdout}`);
      await m.commands.kill('auth-server');
    } finally {
      await m.kill();
    }
  });

  it('config get/set, global and local', async () => {
    const { m } = await machineWithRepo(ctx.server);
    try {
      await m.git.config.set('user.name', 'Grace Hopper');
      assert.equal(await m.git.config.get('user.name', { scope: 'global' }), 'Grace Hopper');
      assert.match(await sh(m, 'cat', ['/root/.gitconfig']), /name = Grace Hopper/);
      await m.git.config.set('user.name', 'Repo Local', { path: '/workspace/a' });
      assert.equal(await m.git.config.get('user.name', { path: '/workspace/a' }), 'Repo Local');
      assert.equal(await m.git.config.get('user.name', { scope: 'global' }), 'Grace Hopper');
      assert.equal(
        await m.git.config.get('remote.origin.url', { scope: 'local', path: '/workspace/a' }),
        '/srv/repo.git',
      );
      // Identity from config is used when the commit names no author.
      await m.git.config.set('user.email', 'repo@example.com', { scope: 'local', path: '/workspace/a' });
      await m.git.commit('/workspace/a', 'Empty', { allowEmpty: true });
      assert.equal(
        await sh(m, 'git', ['-C', '/workspace/a', 'log', '-1', '--format=%an <%ae>']),
        'Repo Local <repo@example.com>\n',
      );
      await assert.rejects(m.git.config.get('nodot'), InvalidArgumentError);
    } finally {
      await m.kill();
    }
  });

  it('CLI: status, commit, branches, diff with --json and in human form; failures print git_error', async () => {
    const { m } = await machineWithRepo(ctx.server);
    try {
      const git = (...args: string[]) => cli(ctx.server, ['machine', 'git', m.id, ...args]);
      await write(m, '/workspace/a/hello.txt', 'changed\n');
      await write(m, '/workspace/a/new.txt', 'new\n');

      const status = await git('status', '--path', '/workspace/a', '--json');
      assert.equal(status.code, 0, status.stderr);
      const s = JSON.parse(status.stdout) as { branch: string; clean: boolean; files: unknown[] };
      assert.equal(s.branch, 'main');
      assert.equal(s.clean, false);
      assert.deepEqual(s.files, [
        { path: 'hello.txt', orig_path: null, index: 'unmodified', worktree: 'modified' },
        { path: 'new.txt', orig_path: null, index: 'untracked', worktree: 'untracked' },
      ]);
      const human = await git('status', '-C', '/workspace/a');
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /^branch\s+main$/m);
      assert.match(human.stdout, /^upstream\s+origin\/main \(ahead 0, behind 0\)$/m);
      assert.match(human.stdout, /^unmodified\s+modified\s+hello\.txt$/m);
      assert.match(human.stdout, /^untracked\s+untracked\s+new\.txt$/m);

      const diff = await git('diff', '--path', '/workspace/a');
      assert.equal(diff.code, 0, diff.stderr);
      assert.match(diff.stdout, /^\+changed$/m);

      assert.equal((await git('add', '--all', '--path', '/workspace/a')).code, 0);
      const commit = await git(
        'commit',
        '--path',
        '/workspace/a',
        '-m',
        'From the CLI',
        '--author-name',
        'Cli User',
        '--author-email',
        'cli@example.com',
        '--json',
      );
      assert.equal(commit.code, 0, commit.stderr);
      const { sha } = JSON.parse(commit.stdout) as { sha: string };
      assert.match(sha, /^[0-9a-f]{40}$/);
      assert.equal(
        await sh(m, 'git', ['-C', '/workspace/a', 'log', '-1', '--format=%H %an <%ae> %s']),
        `${sha} Cli User <cli@example.com> From the CLI\n`,
      );
      const after = JSON.parse((await git('status', '--path', '/workspace/a', '--json')).stdout) as {
        ahead: number;
        clean: boolean;
      };
      assert.deepEqual([after.ahead, after.clean], [1, true]);

      const push = await git('push', '--path', '/workspace/a');
      assert.equal(push.code, 0, push.stderr);
      assert.match(push.stdout, /main -> main/);

      const checkout = await git('checkout', '-b', 'topic', '--path', '/workspace/a');
      assert.equal(checkout.code, 0, checkout.stderr);
      assert.equal(checkout.stdout, 'switched to a new branch topic\n');
      const branches = await git('branches', '--path', '/workspace/a');
      assert.match(branches.stdout, /^\*\s+topic\s+-\s+[0-9a-f]{12}$/m);

      // git's failure: exit 1, the error code and git's message.
      const failed = await git('status', '--path', '/workspace/nope');
      assert.equal(failed.code, 1);
      assert.equal(
        failed.stderr,
        "error: git_error: git status failed (exit 128): fatal: cannot change to '/workspace/nope': No such file or directory\n",
      );
      const nothing = await git(
        'commit',
        '-m',
        'again',
        '--path',
        '/workspace/a',
        '--author-name',
        'A',
        '--author-email',
        'a@example.com',
      );
      assert.equal(nothing.code, 1);
      assert.match(nothing.stderr, /^error: git_error: git commit failed \(exit 1\): .*nothing to commit/s);
      // A flag another action uses is a usage error (exit 2).
      const usage = await git('status', '--depth', '1');
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /--depth is not used by "git status"/);

      const cloned = await git(
        'clone',
        '/srv/repo.git',
        '--path',
        '/workspace/c',
        '--branch',
        'main',
        '--json',
      );
      assert.equal(cloned.code, 0, cloned.stderr);
      assert.deepEqual(JSON.parse(cloned.stdout), { path: '/workspace/c' });
      const set = await git('config', 'user.name', 'Cli Config', '--global');
      assert.equal(set.code, 0, set.stderr);
      assert.equal((await git('config', 'user.name', '--global')).stdout, 'Cli Config\n');
      const unset = await git('config', 'user.nothing', '--json');
      assert.deepEqual([unset.code, JSON.parse(unset.stdout)], [1, { key: 'user.nothing', value: null }]);
    } finally {
      await m.kill();
    }
  });
});
