/**
 * The files namespace at the API edge: machine paths (normalised, never climbing with `..`),
 * query parameters, and the bodies of mkdir, move, search, replace, watch and signed URLs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  fileQuery,
  parseFilePath,
  parseMakeDir,
  parseMove,
  parseReplace,
  parseSearch,
  parseSignedUrl,
  parseWatch,
  parseWatchId,
  queryInteger,
} from './index.js';
import { assertInvalid } from './test-support.js';

describe('parseFilePath', () => {
  it('normalises: // and /./ collapse, no trailing slash, the root stays /', () => {
    assert.equal(parseFilePath('/a//b/./c/'), '/a/b/c');
    assert.equal(parseFilePath('/'), '/');
    assert.equal(parseFilePath('//'), '/');
    assert.equal(parseFilePath('/./'), '/');
    assert.equal(parseFilePath('/a b/ü.txt'), '/a b/ü.txt');
  });

  it('refuses .. segments outright, but not names that merely contain dots', () => {
    assertInvalid(() => parseFilePath('/a/../etc/passwd'), 'path', /\.\./);
    assertInvalid(() => parseFilePath('/..'), 'path');
    assert.equal(parseFilePath('/a/..b/c..'), '/a/..b/c..');
    assert.equal(parseFilePath('/.hidden/...'), '/.hidden/...');
  });

  it('refuses relative, empty, absent, non-string, NUL and paths over 4096 characters', () => {
    for (const bad of ['a/b', './a', '', undefined, null, 5, ['/a'], '/a\0b'])
      assertInvalid(() => parseFilePath(bad), 'path');
    assert.equal(parseFilePath(`/${'a'.repeat(4095)}`).length, 4096);
    assertInvalid(() => parseFilePath(`/${'a'.repeat(4096)}`), 'path');
  });

  it('names the field given', () => {
    assertInvalid(() => parseFilePath('rel', 'to'), 'to');
  });
});

describe('query parameters', () => {
  it('fileQuery: known keys once each', () => {
    assert.deepEqual(fileQuery(new URLSearchParams('path=/a&depth=2'), ['path', 'depth']), {
      path: '/a',
      depth: '2',
    });
    assertInvalid(() => fileQuery(new URLSearchParams('path=/a&x=1'), ['path']), 'x');
    assertInvalid(() => fileQuery(new URLSearchParams('path=/a&path=/b'), ['path']), 'path');
  });

  it('queryInteger: default when absent, digits within the limits', () => {
    const limits = { min: 1, max: 32, default: 1 };
    assert.equal(queryInteger({}, 'depth', limits), 1);
    assert.equal(queryInteger({ depth: '32' }, 'depth', limits), 32);
    assert.equal(queryInteger({ depth: '1' }, 'depth', limits), 1);
    for (const bad of ['0', '33', '-1', '1.5', 'x', '', '1e3'])
      assertInvalid(() => queryInteger({ depth: bad }, 'depth', limits), 'depth');
  });
});

describe('parseWatchId', () => {
  it('fwt_ and 20 lower-case base32 characters', () => {
    const id = `fwt_${'a2'.repeat(10)}`;
    assert.equal(parseWatchId(id), id);
    for (const bad of ['fwt_x', `fwt_${'A'.repeat(20)}`, `fwt_${'1'.repeat(20)}`, `mch_${'a'.repeat(20)}`])
      assertInvalid(() => parseWatchId(bad), 'watch_id');
  });
});

describe('parseMakeDir', () => {
  it('parents defaults to true', () => {
    assert.deepEqual(parseMakeDir({ path: '/a/b/' }), { path: '/a/b', parents: true });
    assert.deepEqual(parseMakeDir({ path: '/a', parents: false }), { path: '/a', parents: false });
    assertInvalid(() => parseMakeDir({}), 'path');
    assertInvalid(() => parseMakeDir({ path: '/a', parents: 'no' }), 'parents');
    assertInvalid(() => parseMakeDir({ path: '/a', mode: '755' }), 'mode');
    assertInvalid(() => parseMakeDir(undefined), 'body');
  });
});

describe('parseMove', () => {
  it('from and to normalised; overwrite defaults to false', () => {
    assert.deepEqual(parseMove({ from: '/a/', to: '//b' }), { from: '/a', to: '/b', overwrite: false });
    assert.equal(parseMove({ from: '/a', to: '/b', overwrite: true }).overwrite, true);
    assert.equal(parseMove({ from: '/a/b', to: '/a' }).to, '/a');
    assert.equal(parseMove({ from: '/ab', to: '/abc' }).to, '/abc');
  });

  it('refuses moving the root, onto itself or into itself', () => {
    assertInvalid(() => parseMove({ from: '/', to: '/x' }), 'from');
    assertInvalid(() => parseMove({ from: '/a', to: '/a/' }), 'to');
    assertInvalid(() => parseMove({ from: '/a', to: '/a/b' }), 'to');
  });

  it('names the path field at fault', () => {
    assertInvalid(() => parseMove({ to: '/b' }), 'from');
    assertInvalid(() => parseMove({ from: '/a' }), 'to');
    assertInvalid(() => parseMove({ from: '/a', to: '/../b' }), 'to');
    assertInvalid(() => parseMove({ from: '/a', to: '/b', force: true }), 'force');
  });
});

describe('parseSearch', () => {
  it('defaults: literal, case-sensitive, 1000 results, no globs', () => {
    assert.deepEqual(parseSearch({ path: '/src', pattern: 'TODO' }), {
      path: '/src',
      pattern: 'TODO',
      regex: false,
      case_sensitive: true,
      include: [],
      exclude: [],
      max_results: 1000,
    });
  });

  it('pattern: required, at most 4096, and a valid expression when regex', () => {
    assertInvalid(() => parseSearch({ path: '/' }), 'pattern');
    assertInvalid(() => parseSearch({ path: '/', pattern: '' }), 'pattern');
    assert.equal(parseSearch({ path: '/', pattern: 'x'.repeat(4096) }).pattern.length, 4096);
    assertInvalid(() => parseSearch({ path: '/', pattern: 'x'.repeat(4097) }), 'pattern');
    assertInvalid(() => parseSearch({ path: '/', pattern: '(', regex: true }), 'pattern');
    assert.equal(parseSearch({ path: '/', pattern: '(' }).pattern, '(');
    assert.equal(parseSearch({ path: '/', pattern: 'a+', regex: true, case_sensitive: false }).regex, true);
  });

  it('max_results 1 to 10000; globs at most 64 of at most 1024 characters', () => {
    assert.equal(parseSearch({ path: '/', pattern: 'x', max_results: 1 }).max_results, 1);
    assert.equal(parseSearch({ path: '/', pattern: 'x', max_results: 10_000 }).max_results, 10_000);
    assertInvalid(() => parseSearch({ path: '/', pattern: 'x', max_results: 0 }), 'max_results');
    assertInvalid(() => parseSearch({ path: '/', pattern: 'x', max_results: 10_001 }), 'max_results');
    const sel = parseSearch({ path: '/', pattern: 'x', include: ['*.ts'], exclude: ['node_modules'] });
    assert.deepEqual([sel.include, sel.exclude], [['*.ts'], ['node_modules']]);
    assert.equal(parseSearch({ path: '/', pattern: 'x', include: Array(64).fill('*') }).include.length, 64);
    assertInvalid(() => parseSearch({ path: '/', pattern: 'x', include: Array(65).fill('*') }), 'include');
    assertInvalid(() => parseSearch({ path: '/', pattern: 'x', exclude: ['a'.repeat(1025)] }), 'exclude[0]');
    assertInvalid(() => parseSearch({ path: '/', pattern: 'x', include: '*.ts' }), 'include');
  });

  it('refuses a missing path and unknown fields', () => {
    assertInvalid(() => parseSearch({ pattern: 'x' }), 'path');
    assertInvalid(() => parseSearch({ path: '/', pattern: 'x', glob: '*' }), 'glob');
  });
});

describe('parseReplace', () => {
  it('a selection (path with globs) or exact paths (deduplicated), never both', () => {
    assert.deepEqual(parseReplace({ path: '/src/', pattern: 'a', replacement: 'b', include: ['*.ts'] }), {
      path: '/src',
      include: ['*.ts'],
      exclude: [],
      pattern: 'a',
      replacement: 'b',
      regex: false,
      case_sensitive: true,
    });
    const exact = parseReplace({ paths: ['/a', '/a/', '/b'], pattern: 'a', replacement: '' });
    assert.deepEqual(exact.paths, ['/a', '/b']);
    assert.equal(exact.path, undefined);
    assertInvalid(() => parseReplace({ paths: ['/a'], path: '/', pattern: 'a', replacement: '' }), 'paths');
    assertInvalid(
      () => parseReplace({ paths: ['/a'], include: ['*'], pattern: 'a', replacement: '' }),
      'paths',
    );
    assertInvalid(() => parseReplace({ paths: [], pattern: 'a', replacement: '' }), 'paths');
  });

  it('replacement is required but may be empty; errors in paths name the item', () => {
    assertInvalid(() => parseReplace({ path: '/', pattern: 'a' }), 'replacement');
    assert.equal(parseReplace({ path: '/', pattern: 'a', replacement: '' }).replacement, '');
    assertInvalid(() => parseReplace({ paths: ['/a', 'b'], pattern: 'a', replacement: '' }), 'paths[1]');
    assertInvalid(() => parseReplace({ paths: ['/a/../b'], pattern: 'a', replacement: '' }), 'paths[0]');
    assertInvalid(() => parseReplace({ pattern: 'a', replacement: '' }), 'path');
    assertInvalid(() => parseReplace({ path: '/', pattern: '[', regex: true, replacement: '' }), 'pattern');
    assertInvalid(
      () => parseReplace({ path: '/', pattern: 'a', replacement: 'b', dry_run: true }),
      'dry_run',
    );
  });
});

describe('parseWatch and parseSignedUrl', () => {
  it('watch: a path, recursive defaults to false', () => {
    assert.deepEqual(parseWatch({ path: '/w/' }), { path: '/w', recursive: false });
    assert.deepEqual(parseWatch({ path: '/w', recursive: true }), { path: '/w', recursive: true });
    assertInvalid(() => parseWatch({}), 'path');
    assertInvalid(() => parseWatch({ path: '/w', recursive: 1 }), 'recursive');
    assertInvalid(() => parseWatch({ path: '/w', depth: 1 }), 'depth');
  });

  it('signed URL: op required, expires_in 1 s to 7 days, default one hour', () => {
    assert.deepEqual(parseSignedUrl({ path: '/f', op: 'read' }), {
      path: '/f',
      op: 'read',
      expires_in: 3600,
    });
    assert.equal(parseSignedUrl({ path: '/f', op: 'write', expires_in: 1 }).expires_in, 1);
    assert.equal(parseSignedUrl({ path: '/f', op: 'write', expires_in: 604800 }).expires_in, 604800);
    assertInvalid(() => parseSignedUrl({ path: '/f' }), 'op');
    assertInvalid(() => parseSignedUrl({ path: '/f', op: 'delete' }), 'op');
    assertInvalid(() => parseSignedUrl({ path: '/f', op: 'read', expires_in: 0 }), 'expires_in');
    assertInvalid(() => parseSignedUrl({ path: '/f', op: 'read', expires_in: 604801 }), 'expires_in');
    assertInvalid(() => parseSignedUrl({ op: 'read' }), 'path');
    assertInvalid(() => parseSignedUrl({ path: '/f', op: 'read', method: 'GET' }), 'method');
  });
});
