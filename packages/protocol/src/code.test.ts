/** Code interpreter requests at the API edge: runs, contexts, installs, ids and the attach query. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CODE_LIMITS,
  parseAttachCodeQuery,
  parseCodeArtifactId,
  parseCodeContextId,
  parseCodeExecutionId,
  parseCreateCodeContext,
  parseInstallCode,
  parseRunCode,
} from './index.js';
import { assertInvalid } from './test-support.js';

describe('parseRunCode', () => {
  it('defaults: no language (the context decides, else python), a 300 s timeout', () => {
    assert.deepEqual(parseRunCode({ code: '1+1' }), { code: '1+1', timeout: 300 });
    assert.deepEqual(
      parseRunCode({ code: 'x', language: 'bash', context: 'ctx_0123456789abcdef', timeout: 0.5 }),
      {
        code: 'x',
        language: 'bash',
        context: 'ctx_0123456789abcdef',
        timeout: 0.5,
      },
    );
    assert.equal(parseRunCode({ code: '', context: 'default-javascript' }).context, 'default-javascript');
  });

  it('refuses an unknown language, a malformed context, code over the limit, unknown fields', () => {
    assertInvalid(() => parseRunCode({ code: '1', language: 'cobol' }), 'language');
    assertInvalid(() => parseRunCode({ code: '1', context: 'nope' }), 'context');
    assertInvalid(() => parseRunCode({ code: '1', context: 'default-ruby' }), 'context');
    assertInvalid(() => parseRunCode({ code: 'x'.repeat(CODE_LIMITS.codeLength + 1) }), 'code');
    assertInvalid(() => parseRunCode({ code: '1', timeout: -1 }), 'timeout');
    assertInvalid(() => parseRunCode({ code: '1', timeout: CODE_LIMITS.timeout.max + 1 }), 'timeout');
    assertInvalid(() => parseRunCode({ code: '1', envs: {} }), 'envs');
    assertInvalid(() => parseRunCode({}), 'code');
  });
});

describe('parseCreateCodeContext', () => {
  it('defaults to python with no envs; an empty body is fine', () => {
    assert.deepEqual(parseCreateCodeContext(undefined), { language: 'python', envs: {} });
    assert.deepEqual(parseCreateCodeContext({ language: 'bash', cwd: '/tmp', envs: { A: '1' } }), {
      language: 'bash',
      cwd: '/tmp',
      envs: { A: '1' },
    });
  });

  it('refuses a relative cwd and an unknown language', () => {
    assertInvalid(() => parseCreateCodeContext({ cwd: 'tmp' }), 'cwd');
    assertInvalid(() => parseCreateCodeContext({ language: 'ruby' }), 'language');
  });
});

describe('parseInstallCode', () => {
  it('packages, requirements, no_index, language', () => {
    assert.deepEqual(parseInstallCode({ packages: ['numpy==1.26'] }), {
      packages: ['numpy==1.26'],
      language: 'python',
      no_index: false,
    });
    assert.deepEqual(parseInstallCode({ requirements: 'a\nb\n', no_index: true }), {
      packages: [],
      requirements: 'a\nb\n',
      language: 'python',
      no_index: true,
    });
    assert.equal(parseInstallCode({ packages: ['left-pad'], language: 'javascript' }).language, 'javascript');
  });

  it('refuses nothing to install, options smuggled as packages, requirements for npm', () => {
    assertInvalid(() => parseInstallCode({ packages: [] }), 'packages');
    assertInvalid(() => parseInstallCode({ packages: ['--index-url=http://x'] }), 'packages[0]');
    assertInvalid(() => parseInstallCode({ language: 'javascript', requirements: 'x' }), 'requirements');
    assertInvalid(() => parseInstallCode({ packages: ['x'], language: 'bash' }), 'language');
  });
});

describe('ids and the attach query', () => {
  it('accepts well-formed ids and refuses others', () => {
    assert.equal(parseCodeContextId('default-bash'), 'default-bash');
    assert.equal(parseCodeExecutionId('cex_0123456789abcdef'), 'cex_0123456789abcdef');
    assert.equal(parseCodeArtifactId('art_0123456789abcdef0123'), 'art_0123456789abcdef0123');
    assertInvalid(() => parseCodeContextId('ctx_../x'), 'context');
    assertInvalid(() => parseCodeExecutionId('cex_1'), 'execution');
    assertInvalid(() => parseCodeArtifactId('art_x'), 'artifact');
  });

  it('after: a non-negative integer, default 0; nothing else', () => {
    assert.deepEqual(parseAttachCodeQuery(new URLSearchParams()), { after: 0 });
    assert.deepEqual(parseAttachCodeQuery(new URLSearchParams('after=7')), { after: 7 });
    assertInvalid(() => parseAttachCodeQuery(new URLSearchParams('after=-1')), 'after');
    assertInvalid(() => parseAttachCodeQuery(new URLSearchParams('offset=1')), 'offset');
  });
});
