/**
 * Templates shipped with the server (templates/<name>/template.json, built by the set-up into the
 * templates directory): the builder makes a layer and a ready snapshot once, every server lists and
 * uses them, machines start from the ready snapshot (or cold when it cannot be restored), and they
 * can be neither deleted nor built over. The fixture test/fixtures/templates/hello is built into a
 * templates directory of the test's own, beside the host's `base`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Machine, type NullspaceError, Template } from '@nullspace/sdk';
import {
  ROOT,
  TEMPLATES_DIR,
  type TestServer,
  api,
  cannotRunMachines,
  run,
  startTestServer,
} from './harness.js';

const skip = cannotRunMachines();
if (skip && process.env.CI) throw new Error(`shipped templates: cannot run in CI: ${skip}`);

const BUILD = join(ROOT, 'scripts/build-templates.mjs');
const FIXTURES = join(ROOT, 'test/fixtures/templates');

/** What the fixture's service answers: when its process started, and the env it was given. */
async function hello(m: Machine): Promise<{ started_ms: number; greeting: string }> {
  const r = await m.commands.run('curl -s http://127.0.0.1:8000/');
  return JSON.parse(r.stdout) as { started_ms: number; greeting: string };
}

describe('shipped templates', { skip }, () => {
  let dir = '';
  let server: TestServer;
  let firstBuild = { code: 0, stdout: '', stderr: '' };

  before(async () => {
    dir = mkdtempSync('/tmp/nstpl-');
    symlinkSync(join(TEMPLATES_DIR, 'base'), join(dir, 'base'));
    firstBuild = await run(process.execPath, [BUILD, '--templates-dir', dir, '--source', FIXTURES]);
    server = await startTestServer({ NULLSPACE_TEMPLATES_DIR: dir });
  });
  after(async () => {
    await server?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('builds a layer and a ready snapshot once; the next run has nothing to do', async () => {
    assert.equal(firstBuild.code, 0, firstBuild.stderr + firstBuild.stdout);
    assert.match(firstBuild.stdout, /building template hello/);
    assert.match(firstBuild.stdout, /ready snapshot of \d+ MiB/);
    const again = await run(process.execPath, [BUILD, '--templates-dir', dir, '--source', FIXTURES]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /template hello is up to date/);
    assert.match(again.stdout, /nothing to build/);
  });

  it('lists shipped templates with their purpose, base first', async () => {
    const list = await Template.list(server.conn);
    const [base, helloInfo] = list;
    assert.equal(base?.id, 'base');
    assert.equal(base?.shipped, true);
    assert.equal(base?.base, null);
    assert.equal(helloInfo?.id, 'hello');
    assert.equal(helloInfo?.shipped, true);
    assert.equal(helloInfo?.snapshotBacked, true);
    assert.match(String(helloInfo?.purpose), /says when it started/);
    assert.deepEqual(helloInfo?.env, ['GREETING']);
    assert.equal((await Template.get('hello', server.conn)).startCmd, 'python3 -u /srv/hello/serve.py');
  });

  it('starts machines from the ready snapshot: the service runs before the machine was created', async () => {
    const m = await Machine.create({ ...server.conn, template: 'hello' });
    try {
      const info = await m.getInfo();
      assert.equal(info.template, 'hello');
      assert.equal(info.cwd, '/srv/hello');
      assert.equal(info.diskMb, 1024);
      const h = await hello(m);
      assert.equal(h.greeting, 'hello');
      assert.ok(h.started_ms < info.createdAt.getTime(), 'the service came from the snapshot');
      assert.equal((await m.commands.run('cat data/marker')).stdout, 'built\n');
      // Its own disk: a hibernate and a resume keep it, over the shipped layer.
      await m.commands.run('echo mine > data/mine');
      await m.hibernate();
      const back = await Machine.connect(m.id, server.conn);
      assert.equal((await back.commands.run('cat data/mine data/marker')).stdout, 'mine\nbuilt\n');
      assert.equal((await hello(back)).started_ms, h.started_ms);
    } finally {
      await m.kill();
    }
  });

  it('starts cold when a machine asks for another disk size, with the template env and start command', async () => {
    const before = Date.now();
    const m = await Machine.create({ ...server.conn, template: 'hello', diskMb: 2048 });
    try {
      assert.equal((await m.getInfo()).diskMb, 2048);
      const h = await hello(m);
      assert.ok(h.started_ms >= before, 'started by this create');
      assert.equal(h.greeting, 'hello');
    } finally {
      await m.kill();
    }
  });

  it('refuses to delete a shipped template or build another under its name, and builds on it', async () => {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e: NullspaceError) => e.code,
      );
    assert.equal(await code(Template.delete('hello', server.conn)), 'invalid_argument');
    assert.equal(await code(Template.delete('base', server.conn)), 'invalid_argument');
    assert.equal(
      await code(Template.build({ name: 'hello', run: ['true'] }, server.conn)),
      'invalid_argument',
    );
    const built = await Template.build(
      { name: 'team/on-hello', base: 'hello', run: ['echo over > /srv/hello/data/over'] },
      server.conn,
    );
    assert.equal(built.template.base, 'hello');
    const m = await Machine.create({ ...server.conn, template: 'team/on-hello' });
    try {
      assert.equal(
        (await m.commands.run('cat /srv/hello/data/marker /srv/hello/data/over')).stdout,
        'built\nover\n',
      );
    } finally {
      await m.kill();
    }
    await Template.delete('team/on-hello', server.conn);
  });

  it('starts cold, and says so in the log, when the ready snapshot cannot be restored', async () => {
    // A snapshot the kernel cannot take back (here: its memory pages gone) must not stop creates.
    for (const f of ['pages-1.img', 'pagemap-1.img'])
      writeFileSync(join(dir, 'hello', 'snapshot', 'memory', f), 'not an image');
    const before = Date.now();
    const m = await Machine.create({ ...server.conn, template: 'hello' });
    try {
      const h = await hello(m);
      assert.ok(h.started_ms >= before, 'started cold by this create');
      assert.match(server.logs(), /restoring a ready snapshot failed; starting the machine cold/);
    } finally {
      await m.kill();
    }
    const info = (await api(server, 'GET', '/v1/templates/hello')) as { status: string };
    assert.equal(info.status, 'ready');
  });
});

/**
 * A server given a new, empty data directory and no NULLSPACE_TEMPLATES_DIR (as a user starting
 * `NULLSPACE_DATA_DIR=/new/dir nullspace serve` would) finds `base` in the set-up's templates
 * directory instead of answering `template_not_found`.
 */
describe('a server on a new data directory', { skip }, () => {
  const setUpTemplates = '/var/lib/nullspace/templates';
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ NULLSPACE_TEMPLATES_DIR: '' });
  });
  after(async () => {
    await server?.teardown();
  });

  it("starts base machines from the set-up's templates, and says so in its log", async () => {
    assert.equal(TEMPLATES_DIR, setUpTemplates, 'the set-up builds base in its default directory');
    const list = (await api(server, 'GET', '/v1/templates')) as { items: { names: string[] }[] };
    assert.ok(list.items.some((t) => t.names.includes('base')));
    await using m = await Machine.create({ ...server.conn, template: 'base' });
    assert.equal((await m.commands.run('cat /etc/debian_version')).exitCode, 0);
    assert.match(server.logs(), /templates come from the set-up's directory/);
    assert.match(server.logs(), /\/var\/lib\/nullspace\/templates/);
  });
});
