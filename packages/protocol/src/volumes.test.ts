/** Volumes at the API edge: create bodies, mount paths and subpaths, and the mounts of a machine. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkMountPath,
  isVolumeId,
  mountPathsOverlap,
  newId,
  normaliseSubpath,
  parseCreateVolume,
  parseVolumeMount,
  parseVolumeMounts,
} from './index.js';
import { assertInvalid } from './test-support.js';

describe('parseCreateVolume', () => {
  it('a name; size_mb 300 to 1048576, default 1024', () => {
    assert.deepEqual(parseCreateVolume({ name: 'data' }), { name: 'data', size_mb: 1024 });
    assert.deepEqual(parseCreateVolume({ name: 'a', size_mb: 300 }), { name: 'a', size_mb: 300 });
    assert.equal(parseCreateVolume({ name: 'a', size_mb: 1048576 }).size_mb, 1048576);
    assertInvalid(() => parseCreateVolume({ name: 'a', size_mb: 299 }), 'size_mb');
    assertInvalid(() => parseCreateVolume({ name: 'a', size_mb: 1048577 }), 'size_mb');
    assertInvalid(() => parseCreateVolume({ name: 'a', size_mb: '500' }), 'size_mb');
  });

  it('names: 1-63 of a-z 0-9 . _ -, a letter or digit first, never shaped like an id', () => {
    for (const name of ['a', '0', 'my-vol_1.2', 'x'.repeat(63)])
      assert.equal(parseCreateVolume({ name }).name, name);
    for (const bad of ['', 'Data', '-a', '.a', 'a b', 'a/b', 'x'.repeat(64), 'vol_abc', 5])
      assertInvalid(() => parseCreateVolume({ name: bad }), 'name');
    assertInvalid(() => parseCreateVolume({}), 'name');
    assertInvalid(() => parseCreateVolume(undefined), 'name');
    assertInvalid(() => parseCreateVolume({ name: 'a', size: 1 }), 'size');
  });

  it('ids and names are told apart', () => {
    assert.equal(isVolumeId(newId('volume')), true);
    assert.equal(isVolumeId('data'), false);
    assert.equal(isVolumeId(newId('volumeAttachment')), false);
  });
});

describe('mount paths and subpaths', () => {
  it('checkMountPath: absolute, plain components, not / nor the kernel or agent directories', () => {
    for (const p of ['/data', '/home/user/my.data', '/procs', '/devices', '/a/proc'])
      assert.equal(checkMountPath('f', p), p);
    for (const bad of [
      'data',
      '/',
      '/a//b',
      '/a/',
      '/a/./b',
      '/a/../b',
      '/a b',
      '/a:b',
      '/proc',
      '/proc/x',
      '/sys',
      '/dev/shm',
      '/.nullspace',
      '/.nullspace/run',
      `/${'a'.repeat(256)}`,
      `/${'a/'.repeat(512)}a`,
    ])
      assertInvalid(() => checkMountPath('volumes[2].mount_path', bad), 'volumes[2].mount_path');
  });

  it('normaliseSubpath: leading and trailing slashes go; empty is the whole volume', () => {
    assert.equal(normaliseSubpath('f', '/a/b/'), 'a/b');
    assert.equal(normaliseSubpath('f', 'a'), 'a');
    assert.equal(normaliseSubpath('f', '/'), null);
    assert.equal(normaliseSubpath('f', ''), null);
    assert.equal(normaliseSubpath('f', undefined), null);
    assert.equal(normaliseSubpath('f', null), null);
    for (const bad of ['a//b', 'a/../b', '..', '.', 'a b', 'a:b'])
      assertInvalid(() => normaliseSubpath('subpath', bad), 'subpath');
  });

  it('mountPathsOverlap: the same path or one under the other, not a shared prefix', () => {
    assert.equal(mountPathsOverlap('/a', '/a'), true);
    assert.equal(mountPathsOverlap('/a', '/a/b'), true);
    assert.equal(mountPathsOverlap('/a/b', '/a'), true);
    assert.equal(mountPathsOverlap('/a', '/ab'), false);
    assert.equal(mountPathsOverlap('/a/b', '/a/c'), false);
  });
});

describe('parseVolumeMount', () => {
  it('volume and mount_path required; read_only false and subpath null by default', () => {
    assert.deepEqual(parseVolumeMount({ volume: 'data', mount_path: '/data' }), {
      volume: 'data',
      mount_path: '/data',
      read_only: false,
      subpath: null,
    });
    const id = newId('volume');
    assert.deepEqual(parseVolumeMount({ volume: id, mount_path: '/d', read_only: true, subpath: '/x/y/' }), {
      volume: id,
      mount_path: '/d',
      read_only: true,
      subpath: 'x/y',
    });
  });

  it('errors name the field, under the prefix given', () => {
    assertInvalid(() => parseVolumeMount({ mount_path: '/d' }), 'volume');
    assertInvalid(() => parseVolumeMount({ volume: '', mount_path: '/d' }), 'volume');
    assertInvalid(() => parseVolumeMount({ volume: 'v' }), 'mount_path');
    assertInvalid(() => parseVolumeMount({ volume: 'v', mount_path: '/d', read_only: 'yes' }), 'read_only');
    assertInvalid(() => parseVolumeMount({ volume: 'v', mount_path: '/d', subpath: '../x' }), 'subpath');
    assertInvalid(() => parseVolumeMount({ volume: 'v', mount_path: '/d', mode: 'rw' }), 'mode');
    assertInvalid(() => parseVolumeMount('v'), 'body');
    assertInvalid(
      () => parseVolumeMount({ volume: 'v', mount_path: '/sys' }, 'volumes[1].'),
      'volumes[1].mount_path',
    );
    assertInvalid(
      () => parseVolumeMount({ volume: 'v', mount_path: '/d', x: 1 }, 'volumes[1].'),
      'volumes[1].x',
    );
    assertInvalid(() => parseVolumeMount(7, 'volumes[1].'), 'volumes[1]');
  });
});

describe('parseVolumeMounts', () => {
  const mount = (i: number) => ({ volume: `v${i}`, mount_path: `/m${i}` });

  it('absent is none; at most 32 mounts', () => {
    assert.deepEqual(parseVolumeMounts(undefined), []);
    assert.deepEqual(parseVolumeMounts(null), []);
    assert.equal(parseVolumeMounts(Array.from({ length: 32 }, (_, i) => mount(i))).length, 32);
    assertInvalid(() => parseVolumeMounts(Array.from({ length: 33 }, (_, i) => mount(i))), 'volumes');
    assertInvalid(() => parseVolumeMounts({ volume: 'v', mount_path: '/m' }), 'volumes');
  });

  it('mount paths must be apart (the error names the first of two that overlap)', () => {
    assertInvalid(
      () => parseVolumeMounts([mount(0), { volume: 'x', mount_path: '/m0/sub' }]),
      'volumes[0].mount_path',
    );
    assertInvalid(() => parseVolumeMounts([mount(0), mount(1), mount(1)]), 'volumes[1].mount_path');
    assert.equal(parseVolumeMounts([mount(0), { volume: 'v0', mount_path: '/m01' }]).length, 2);
  });

  it('an error inside one mount names its index', () => {
    assertInvalid(() => parseVolumeMounts([mount(0), { volume: 'v' }]), 'volumes[1].mount_path');
  });
});
