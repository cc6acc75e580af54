/** Template specs (what `POST /v1/templates` builds) and warm pool specs at the API edge. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTemplateSpec, parseWarmPoolSpec } from './index.js';
import { assertInvalid } from './test-support.js';

const spec = parseTemplateSpec;

describe('parseTemplateSpec', () => {
  it('defaults: tag latest, base base, nothing else, machine sizes as for create', () => {
    assert.deepEqual(spec({ name: 'team/app' }), {
      name: 'team/app',
      tags: ['latest'],
      base: 'base',
      packages: [],
      files: [],
      run: [],
      env: {},
      workdir: null,
      start_cmd: null,
      ready_check: null,
      disk_mb: 2048,
      vcpus: 1,
      memory_mb: 512,
      snapshot: false,
    });
  });

  it('name is required, a template name, and never base', () => {
    assertInvalid(() => spec({}), 'name');
    assertInvalid(() => spec({ name: 'Team/App' }), 'name');
    assertInvalid(() => spec({ name: 'base' }), 'name');
    assertInvalid(() => spec({ name: 'base:v2' }), 'name');
    assertInvalid(() => spec(undefined), 'body');
  });

  it('tags: the one in the name first, then the extra ones, without repeats', () => {
    assert.deepEqual(spec({ name: 'app:v1', tags: ['stable', 'v1', 'stable'] }).tags, ['v1', 'stable']);
    assertInvalid(() => spec({ name: 'app', tags: ['Stable'] }), 'tags[0]');
    assertInvalid(() => spec({ name: 'app', tags: ['ok', '-x'] }), 'tags[1]');
    assertInvalid(() => spec({ name: 'app', tags: Array(17).fill('t') }), 'tags');
  });

  it('base canonicalised; packages sorted without repeats and named as in Debian', () => {
    const s = spec({ name: 'app', base: 'team/py', packages: ['jq', 'curl', 'jq', 'libc6-dev', 'g++'] });
    assert.equal(s.base, 'team/py:latest');
    assert.deepEqual(s.packages, ['curl', 'g++', 'jq', 'libc6-dev']);
    assertInvalid(() => spec({ name: 'app', base: 'Bad Base' }), 'base');
    assertInvalid(() => spec({ name: 'app', packages: ['jq', 'Curl'] }), 'packages[1]');
    assertInvalid(() => spec({ name: 'app', packages: ['j'] }), 'packages[0]');
    assertInvalid(() => spec({ name: 'app', packages: ['jq; rm -rf /'] }), 'packages[0]');
    assert.equal(
      spec({ name: 'app', packages: Array.from({ length: 200 }, (_, i) => `p${i}`) }).packages.length,
      200,
    );
    assertInvalid(
      () => spec({ name: 'app', packages: Array.from({ length: 201 }, (_, i) => `p${i}`) }),
      'packages',
    );
  });

  it('run: at most 100 non-empty steps of at most 16 KiB', () => {
    assert.deepEqual(spec({ name: 'app', run: ['echo a', 'echo b'] }).run, ['echo a', 'echo b']);
    assertInvalid(() => spec({ name: 'app', run: ['echo', '  '] }), 'run[1]');
    assertInvalid(() => spec({ name: 'app', run: ['x'.repeat(16 * 1024 + 1)] }), 'run[0]');
    assertInvalid(() => spec({ name: 'app', run: Array(101).fill('true') }), 'run');
    assertInvalid(() => spec({ name: 'app', run: 'echo' }), 'run');
  });

  it('env, workdir and start_cmd', () => {
    const s = spec({ name: 'app', env: { PORT: '80' }, workdir: '/srv', start_cmd: 'node server.js' });
    assert.deepEqual([s.env, s.workdir, s.start_cmd], [{ PORT: '80' }, '/srv', 'node server.js']);
    assertInvalid(() => spec({ name: 'app', env: { 'BAD-NAME': 'x' } }), 'env.BAD-NAME');
    assertInvalid(() => spec({ name: 'app', workdir: 'srv' }), 'workdir');
    assertInvalid(() => spec({ name: 'app', start_cmd: ' ' }), 'start_cmd');
  });

  it('ready_check: exactly one of port or command, http_path only with a port, a start_cmd to check', () => {
    const withStart = (ready_check: unknown) => spec({ name: 'app', start_cmd: 'serve', ready_check });
    assert.deepEqual(withStart({ port: 8080, http_path: '/healthz' }).ready_check, {
      port: 8080,
      http_path: '/healthz',
      timeout_ms: 60_000,
    });
    assert.deepEqual(withStart({ command: 'test -e /ready', timeout_ms: 100 }).ready_check, {
      command: 'test -e /ready',
      timeout_ms: 100,
    });
    assert.equal(withStart({ port: 1, timeout_ms: 600_000 }).ready_check?.timeout_ms, 600_000);
    assertInvalid(() => withStart({}), 'ready_check');
    assertInvalid(() => withStart({ port: 80, command: 'true' }), 'ready_check');
    assertInvalid(() => withStart({ command: 'true', http_path: '/' }), 'ready_check.http_path');
    assertInvalid(() => withStart({ port: 80, http_path: 'healthz' }), 'ready_check.http_path');
    assertInvalid(() => withStart({ port: 0 }), 'ready_check.port');
    assertInvalid(() => withStart({ port: 65536 }), 'ready_check.port');
    assertInvalid(() => withStart({ port: 80, timeout_ms: 99 }), 'ready_check.timeout_ms');
    assertInvalid(() => withStart({ port: 80, timeout_ms: 600_001 }), 'ready_check.timeout_ms');
    assertInvalid(() => withStart({ port: 80, path: '/' }), 'ready_check.path');
    assertInvalid(() => withStart('port 80'), 'ready_check');
    assertInvalid(() => spec({ name: 'app', ready_check: { port: 80 } }), 'ready_check');
  });

  it('snapshot needs a start_cmd', () => {
    assert.equal(spec({ name: 'app', start_cmd: 'serve', snapshot: true }).snapshot, true);
    assertInvalid(() => spec({ name: 'app', snapshot: true }), 'snapshot');
    assertInvalid(() => spec({ name: 'app', start_cmd: 'serve', snapshot: 'yes' }), 'snapshot');
  });

  it('files: text or base64 content, stored as base64, mode 0644 by default', () => {
    const s = spec({
      name: 'app',
      files: [
        { path: '/etc/app.conf', content: 'héllo' },
        {
          path: '/usr/local/bin/run',
          content_base64: Buffer.from([0, 1, 2]).toString('base64'),
          mode: 0o755,
        },
      ],
    });
    assert.deepEqual(s.files, [
      { path: '/etc/app.conf', content_base64: Buffer.from('héllo').toString('base64'), mode: 0o644 },
      { path: '/usr/local/bin/run', content_base64: 'AAEC', mode: 0o755 },
    ]);
  });

  it('files: errors name the file and field', () => {
    const f = (file: unknown) => spec({ name: 'app', files: [{ path: '/ok', content: '' }, file] });
    assertInvalid(() => f({ content: 'x' }), 'files[1].path');
    for (const bad of ['rel', '/dir/', '/a/../b', '/a/./b', '/a/..', '/a\0'])
      assertInvalid(() => f({ path: bad, content: 'x' }), 'files[1].path');
    assertInvalid(() => f({ path: '/ok', content: 'again' }), 'files[1].path');
    assertInvalid(() => f({ path: '/b' }), 'files[1]');
    assertInvalid(() => f({ path: '/b', content: 'x', content_base64: 'eA==' }), 'files[1]');
    assertInvalid(() => f({ path: '/b', content_base64: 'not base64!' }), 'files[1].content_base64');
    assertInvalid(() => f({ path: '/b', content: 'x', mode: 0o10000 }), 'files[1].mode');
    assertInvalid(() => f({ path: '/b', content: 'x', owner: 'root' }), 'files[1].owner');
    assertInvalid(() => f('x'), 'files[1]');
    assertInvalid(() => spec({ name: 'app', files: {} }), 'files');
  });

  it('files: a . or .. segment is refused first in the path too', () => {
    const f = (path: string) => spec({ name: 'app', files: [{ path, content: 'x' }] });
    assert.equal(f('/.profile').files[0]?.path, '/.profile');
    assert.equal(f('/..data/x').files[0]?.path, '/..data/x');
    assertInvalid(() => f('/..'), 'files[0].path');
    assertInvalid(() => f('/.'), 'files[0].path');
    assertInvalid(() => f('/../etc/passwd'), 'files[0].path');
    assertInvalid(() => f('/./etc/passwd'), 'files[0].path');
  });

  it('files: at most 200, and at most 8 MiB of contents together', () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ path: `/f${i}`, content: '' }));
    assert.equal(spec({ name: 'app', files: many(200) }).files.length, 200);
    assertInvalid(() => spec({ name: 'app', files: many(201) }), 'files');
    const half = 'x'.repeat(4 * 1024 * 1024);
    assert.equal(
      spec({
        name: 'app',
        files: [
          { path: '/a', content: half },
          { path: '/b', content: half },
        ],
      }).files.length,
      2,
    );
    assertInvalid(
      () =>
        spec({
          name: 'app',
          files: [
            { path: '/a', content: half },
            { path: '/b', content: `${half}x` },
          ],
        }),
      'files',
    );
  });

  it('sizes as for create; unknown fields refused', () => {
    const s = spec({ name: 'app', vcpus: 64, memory_mb: 128, disk_mb: 300 });
    assert.deepEqual([s.vcpus, s.memory_mb, s.disk_mb], [64, 128, 300]);
    assertInvalid(() => spec({ name: 'app', vcpus: 65 }), 'vcpus');
    assertInvalid(() => spec({ name: 'app', memory_mb: 127 }), 'memory_mb');
    assertInvalid(() => spec({ name: 'app', disk_mb: 299 }), 'disk_mb');
    assertInvalid(() => spec({ name: 'app', from: 'base' }), 'from');
  });
});

describe('parseWarmPoolSpec', () => {
  it('size required 1 to 64; template defaults to base; disk null unless given', () => {
    assert.deepEqual(parseWarmPoolSpec({ size: 1 }), {
      template: 'base',
      vcpus: 1,
      memory_mb: 512,
      disk_mb: null,
      size: 1,
    });
    assert.deepEqual(
      parseWarmPoolSpec({ size: 64, template: 'team/app', vcpus: 2, memory_mb: 1024, disk_mb: 4096 }),
      {
        template: 'team/app:latest',
        vcpus: 2,
        memory_mb: 1024,
        disk_mb: 4096,
        size: 64,
      },
    );
    assertInvalid(() => parseWarmPoolSpec({}), 'size');
    assertInvalid(() => parseWarmPoolSpec({ size: 0 }), 'size');
    assertInvalid(() => parseWarmPoolSpec({ size: 65 }), 'size');
    assertInvalid(() => parseWarmPoolSpec({ size: 1, template: 'Bad' }), 'template');
    assertInvalid(() => parseWarmPoolSpec({ size: 1, vcpus: 0 }), 'vcpus');
    assertInvalid(() => parseWarmPoolSpec({ size: 1, disk_mb: 299 }), 'disk_mb');
    assertInvalid(() => parseWarmPoolSpec({ size: 1, min: 1 }), 'min');
    assertInvalid(() => parseWarmPoolSpec(undefined), 'body');
  });
});
