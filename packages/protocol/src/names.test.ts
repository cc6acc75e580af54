/** Template references and the names requests share (environment variables, metadata keys). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ENV_NAME, METADATA_KEY, TEMPLATE_NAME, canonicalTemplateRef, parseTemplateRef } from './index.js';

describe('template references', () => {
  it('parseTemplateRef splits name and tag; no tag means latest', () => {
    assert.deepEqual(parseTemplateRef('team/app:stable'), { name: 'team/app', tag: 'stable' });
    assert.deepEqual(parseTemplateRef('team/app'), { name: 'team/app', tag: 'latest' });
    assert.deepEqual(parseTemplateRef('base'), { name: 'base', tag: 'latest' });
    assert.deepEqual(parseTemplateRef('a.b-c_d:1.2.3'), { name: 'a.b-c_d', tag: '1.2.3' });
  });

  it('canonicalTemplateRef: base stays base, every other name gets its tag', () => {
    assert.equal(canonicalTemplateRef('base'), 'base');
    assert.equal(canonicalTemplateRef('app'), 'app:latest');
    assert.equal(canonicalTemplateRef('team/app:v1'), 'team/app:v1');
    assert.equal(canonicalTemplateRef(canonicalTemplateRef('team/app')), 'team/app:latest');
  });

  it('TEMPLATE_NAME: lower-case segments, one optional tag', () => {
    for (const ok of ['base', 'app', 'team/app', 'team/sub/app:v1.2', 'a-b_c.d:x', '0app'])
      assert.ok(TEMPLATE_NAME.test(ok), ok);
    for (const bad of [
      '',
      'App',
      'team//app',
      '/app',
      'app/',
      'app:',
      'app:v1:v2',
      '.app',
      'team/-app',
      'a b',
    ])
      assert.ok(!TEMPLATE_NAME.test(bad), bad);
  });
});

describe('shared names', () => {
  it('ENV_NAME: as in a shell', () => {
    for (const ok of ['A', '_', 'PATH', 'my_var2']) assert.ok(ENV_NAME.test(ok), ok);
    for (const bad of ['', '2A', 'A-B', 'A B', 'A=B', 'Ä']) assert.ok(!ENV_NAME.test(bad), bad);
  });

  it('METADATA_KEY: 1-128 characters, a letter or digit first', () => {
    for (const ok of ['a', '9', 'team/app', 'k8s.io:name_x-y', 'k'.repeat(128)])
      assert.ok(METADATA_KEY.test(ok), ok);
    for (const bad of ['', '-a', '.a', 'a b', 'a=b', 'k'.repeat(129)])
      assert.ok(!METADATA_KEY.test(bad), bad);
  });
});
