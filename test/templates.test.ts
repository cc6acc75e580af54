/**
 * Issue 6, templates: built in a real machine from a spec (a Debian package from the package cache,
 * a file, a run step, env, workdir, a start command with a ready check), cached by content, tagged,
 * snapshot-backed, listed and deleted — through the SDK, the CLI and the HTTP API.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { Machine, NullspaceError, Template, type TemplateBuildProgress, WarmPool } from '@nullspace/sdk';
import { api, cli, describeWithServer } from './harness.js';

/** A tiny HTTP service: answers with a greeting from its env and how many requests it served. */
const SERVER_PY = `import http.server, os
count = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        count += 1
        body = f"{os.environ.get('GREETING', '?')} {count}\\n".encode()
        self.send_response(200)
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(('0.0.0.0', 8000), H).serve_forever()
`;

const WEB = {
  name: 'team/web:stable',
  tags: ['v1'],
  packages: ['jq'],
  files: [{ path: '/srv/app/server.py', content: SERVER_PY, mode: 0o755 }],
  run: ['jq --version > jq-version', 'echo "built by $(whoami)" > built-by'],
  env: { GREETING: 'hello' },
  workdir: '/srv/app',
  startCmd: 'python3 /srv/app/server.py',
  readyCheck: { port: 8000, httpPath: '/' },
};

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof NullspaceError) return err.code;
    throw err;
  }
  throw new Error('expected an error');
}

describeWithServer('templates', (ctx) => {
  it('builds a template once with progress, rebuilds it instantly, and its machines answer on their port at once', async () => {
    const progress: TemplateBuildProgress[] = [];
    const lines: string[] = [];
    const first = await Template.build(WEB, {
      ...ctx.server.conn,
      onProgress: (p) => progress.push(p),
      onLog: (l) => lines.push(l),
    });
    assert.equal(first.cached, false);
    assert.equal(first.template.status, 'ready');
    assert.deepEqual(first.template.names.sort(), ['team/web:stable', 'team/web:v1']);
    assert.deepEqual(
      progress.map((p) => p.name),
      [
        'fetch packages',
        'start a build machine',
        'install packages',
        'copy files',
        'run: jq --version > jq-version',
        'run: echo "built by $(whoami)" > built-by',
        'capture the filesystem',
      ],
    );
    assert.ok(progress.every((p, i) => p.step === i + 1 && p.total === progress.length));
    assert.ok(
      lines.some((l) => /Setting up jq/.test(l)),
      'apt output streamed',
    );
    assert.ok(first.template.sizeBytes > 0);

    // The same spec again: nothing is built (same build, no steps).
    const again = await Template.build(WEB, { ...ctx.server.conn, onProgress: (p) => progress.push(p) });
    assert.equal(again.cached, true);
    assert.equal(again.template.id, first.template.id);
    assert.equal(progress.length, 7);
    // The build machine is gone.
    assert.equal((await Machine.list({ ...ctx.server.conn })).items.length, 0);

    // A machine of it answers on its port as soon as create returns.
    await using m = await Machine.create({ ...ctx.server.conn, template: 'team/web:v1' });
    const r = await m.commands.run(
      'curl -s localhost:8000/ && pwd && cat jq-version built-by && stat -c %a server.py',
    );
    assert.equal(r.stdout, `hello 2\n/srv/app\n${'jq-1.6'}\nbuilt by root\n755\n`);
    // The layer stores the ids machines see (the build machine's host ids shifted back to 0..),
    // so what the build's root made is this machine's root's, whatever its host id range.
    const layerFile = join(
      ctx.server.dataDir,
      'template-builds',
      first.template.id,
      'layer',
      'srv/app/built-by',
    );
    assert.equal(statSync(layerFile).uid, 0);
    assert.equal((await m.commands.run('stat -c %u:%g built-by /usr/bin/jq')).stdout, '0:0\n0:0\n');
    // The ready check made one request; the start command runs under the tag `start`.
    const ps = await m.commands.list();
    assert.ok(ps.some((p) => p.tag === 'start' && p.running));
    const info = await m.getInfo();
    assert.equal(info.template, 'team/web:v1');
    assert.equal(info.cwd, '/srv/app');
    assert.deepEqual(info.envs, ['GREETING']);
    // Nothing of the build (package files, lists) is left in the machine.
    const junk = await m.commands.run(
      'ls /tmp/nullspace-debs /var/cache/apt/archives/*.deb 2>&1; ls /var/lib/apt/lists',
    );
    assert.doesNotMatch(junk.stdout, /\.deb$/m);

    // Request envs win over the template's; the request's cwd over its workdir.
    await using m2 = await Machine.create({
      ...ctx.server.conn,
      template: 'team/web:stable',
      envs: { GREETING: 'bonjour' },
      cwd: '/tmp',
    });
    assert.equal((await m2.commands.run('pwd; echo $GREETING')).stdout, '/tmp\nbonjour\n');

    // Listed; in use by machines, so not deletable; a change to the spec is a new build.
    const listed = await Template.list(ctx.server.conn);
    assert.ok(listed.some((t) => t.id === first.template.id));
    assert.equal(await code(Template.delete('team/web:stable', ctx.server.conn)), 'invalid_state');
  });

  it('builds a snapshot-backed template whose machines start with the service already running', async () => {
    const lines: string[] = [];
    const built = await Template.build(
      {
        name: 'team/web-warm',
        base: 'team/web:stable',
        run: ['echo warm > marker'],
        env: { GREETING: 'warm' },
        startCmd: 'python3 /srv/app/server.py',
        readyCheck: { port: 8000 },
        snapshot: true,
        diskMb: 1024,
      },
      { ...ctx.server.conn, onLog: (l) => lines.push(l) },
    );
    assert.equal(built.template.snapshotBacked, true);
    assert.match(built.template.snapshotId ?? '', /^snap_/);
    assert.deepEqual(built.template.names, ['team/web-warm:latest']);
    // Two machines from the same memory state: each has the service's counter as the build left it.
    await using a = await Machine.create({ ...ctx.server.conn, template: 'team/web-warm' });
    await using b = await Machine.create({ ...ctx.server.conn, template: 'team/web-warm:latest' });
    assert.equal((await a.commands.run('curl -s localhost:8000/; cat marker')).stdout, 'warm 1\nwarm\n');
    assert.equal((await b.commands.run('curl -s localhost:8000/')).stdout, 'warm 1\n');
    assert.equal((await a.getInfo()).diskMb, 1024);
    // Its disk size is built in: a larger one is refused.
    assert.equal(
      await code(Machine.create({ ...ctx.server.conn, template: 'team/web-warm', diskMb: 2048 })),
      'invalid_argument',
    );
    // Its snapshot is the template's: it cannot be deleted on its own.
    const del = await api(ctx.server, 'DELETE', `/v1/snapshots/${built.template.snapshotId}`).catch((e) => e);
    assert.equal((del as { code?: string }).code, 'invalid_state');
  });

  it('refuses bad specs and reports failed builds and start commands clearly', async () => {
    const c = ctx.server.conn;
    assert.equal(await code(Template.build({ name: 'Bad Name' }, c)), 'invalid_argument');
    assert.equal(await code(Template.build({ name: 'x', packages: ['no spaces'] }, c)), 'invalid_argument');
    assert.equal(await code(Template.build({ name: 'x', readyCheck: { port: 80 } }, c)), 'invalid_argument');
    assert.equal(await code(Template.build({ name: 'x', snapshot: true }, c)), 'invalid_argument');
    assert.equal(await code(Template.build({ name: 'x', base: 'nope/none' }, c)), 'template_not_found');
    assert.equal(await code(Machine.create({ ...c, template: 'nope/none' })), 'template_not_found');
    assert.equal(await code(Template.get('nope/none', c)), 'template_not_found');

    // A package the (offline) cache does not hold: the build fails at once with why.
    const missing = await Template.build({ name: 'team/no-pkg', packages: ['cowsay'] }, c).catch((e) => e);
    assert.ok(missing instanceof NullspaceError);
    assert.equal(missing.code, 'invalid_argument');
    assert.match(missing.message, /cowsay|package/);

    // A failing run step fails the build; its machine is gone, its output was streamed.
    const lines: string[] = [];
    const failed = await Template.build(
      { name: 'team/broken', run: ['echo about to fail', 'exit 3'] },
      { ...c, onLog: (l) => lines.push(l) },
    ).catch((e) => e);
    assert.ok(failed instanceof NullspaceError);
    assert.match(failed.message, /run step 2 failed \(exit 3\)/);
    assert.ok(lines.includes('about to fail'));
    assert.equal(await code(Template.get('team/broken', c)), 'template_not_found');
    assert.equal((await Machine.list(c)).items.length, 0);

    // A start command that dies before its ready check passes: create fails with its output, and
    // the failed machine holds nothing (kill finishes it).
    await Template.build(
      { name: 'team/dies', startCmd: 'echo cannot start >&2; exit 1', readyCheck: { port: 9999 } },
      c,
    );
    const dead = await Machine.create({ ...c, template: 'team/dies' }).catch((e) => e);
    assert.ok(dead instanceof NullspaceError);
    assert.equal(dead.code, 'invalid_state');
    assert.match(dead.message, /start command ended \(exit 1\).*cannot start/s);
    const failedMachine = (await Machine.list({ ...c, query: { state: ['failed'] } })).items[0];
    assert.ok(failedMachine);
    await Machine.killById(failedMachine.id, c);

    // One that never gets ready: `timeout` after its ready check's timeout.
    await Template.build(
      { name: 'team/slow', startCmd: 'sleep 600', readyCheck: { command: 'false', timeoutMs: 500 } },
      c,
    );
    assert.equal(await code(Machine.create({ ...c, template: 'team/slow' })), 'timeout');
    for (const m of (await Machine.list({ ...c, query: { state: ['failed'] } })).items)
      await Machine.killById(m.id, c);
  });

  it('keeps a template while a warm pool uses it, then deletes it (and its build) once unused', async () => {
    const c = ctx.server.conn;
    const t = await Template.build(
      { name: 'team/tiny', base: 'team/web:stable', workdir: '/opt/tiny', run: ['echo tiny > /etc/tiny'] },
      c,
    );
    // Its own workdir wins over its base's (/srv/app); the base's env comes with it.
    await using m = await Machine.create({ ...c, template: 'team/tiny' });
    assert.equal(
      (await m.commands.run('pwd; echo $GREETING; cat /etc/tiny')).stdout,
      '/opt/tiny\nhello\ntiny\n',
    );
    await m.kill();
    const pool = await WarmPool.create({ ...c, template: 'team/tiny', size: 1 });
    assert.equal(await code(Template.delete('team/tiny', c)), 'invalid_state');
    await WarmPool.delete(pool.id, c);
    const gone = await Template.delete('team/tiny', c);
    assert.equal(gone.status, 'deleted');
    assert.equal(gone.id, t.template.id);
    assert.equal(await code(Machine.create({ ...c, template: 'team/tiny' })), 'template_not_found');
    assert.equal(await code(Template.delete('base', c)), 'invalid_argument');
  });

  it('builds, lists and deletes with the CLI, showing progress', async () => {
    const build = await cli(ctx.server, [
      'template',
      'build',
      'team/cli:one',
      '--run',
      'echo from-cli > /etc/from-cli',
      '--env',
      'A=1',
    ]);
    assert.equal(build.code, 0, build.stderr);
    assert.match(build.stderr, /\[1\/3\] start a build machine/);
    assert.match(build.stdout, /^built team\/cli:one \(tpl_\w+\) in [\d.]+ s\n$/);
    const again = await cli(ctx.server, [
      'template',
      'build',
      'team/cli:one',
      '--run',
      'echo from-cli > /etc/from-cli',
      '--env',
      'A=1',
    ]);
    assert.match(again.stdout, /is up to date/);
    const list = await cli(ctx.server, ['template', 'list']);
    assert.match(list.stdout, /team\/cli:one\s+ready\s+base/);
    const logs = await cli(ctx.server, ['template', 'logs', 'team/cli:one']);
    assert.match(logs.stdout, /\[2\/3\] run: echo from-cli/);
    const del = await cli(ctx.server, ['template', 'delete', 'team/cli:one']);
    assert.equal(del.code, 0, del.stderr);
    const none = await cli(ctx.server, ['template', 'get', 'team/cli:one']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /template_not_found/);
  });
});
