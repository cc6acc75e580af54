/** Fork and set-timeout bodies, and the auto-resume rule they share with create. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkAutoResume, parseFork, parseResumeTimeout, parseSetTimeout } from './index.js';
import { assertInvalid } from './test-support.js';

describe('parseFork', () => {
  it('count defaults to 1 (absent body too), 1 to 16', () => {
    assert.deepEqual(parseFork(undefined), { count: 1 });
    assert.deepEqual(parseFork({}), { count: 1 });
    assert.deepEqual(parseFork({ count: 16 }), { count: 16 });
    for (const bad of [0, 17, 2.5, '2']) assertInvalid(() => parseFork({ count: bad }), 'count');
  });

  it('refuses unknown fields and a body that is not an object', () => {
    assertInvalid(() => parseFork({ n: 2 }), 'n');
    assertInvalid(() => parseFork([]), 'body');
    assertInvalid(() => parseFork('2'), 'body');
  });
});

describe('parseSetTimeout', () => {
  it('timeout is required, 1 s to 7 days', () => {
    assert.deepEqual(parseSetTimeout({ timeout: 1 }), { timeout: 1 });
    assert.deepEqual(parseSetTimeout({ timeout: 604800 }), { timeout: 604800 });
    assertInvalid(() => parseSetTimeout({}), 'timeout');
    for (const bad of [0, 604801, 1.5, '60', null])
      assertInvalid(() => parseSetTimeout({ timeout: bad }), 'timeout');
  });

  it('passes on_timeout and auto_resume on only when given', () => {
    assert.deepEqual(parseSetTimeout({ timeout: 60, on_timeout: 'pause', auto_resume: true }), {
      timeout: 60,
      on_timeout: 'pause',
      auto_resume: true,
    });
    assert.deepEqual(parseSetTimeout({ timeout: 60, auto_resume: false }), {
      timeout: 60,
      auto_resume: false,
    });
    assertInvalid(() => parseSetTimeout({ timeout: 60, on_timeout: 'sleep' }), 'on_timeout');
    assertInvalid(() => parseSetTimeout({ timeout: 60, auto_resume: 1 }), 'auto_resume');
  });

  it('refuses unknown fields and an absent body', () => {
    assertInvalid(() => parseSetTimeout({ timeout: 60, expires_at: 'x' }), 'expires_at');
    assertInvalid(() => parseSetTimeout(undefined), 'body');
  });
});

describe('checkAutoResume', () => {
  it('auto_resume needs on_timeout pause or hibernate', () => {
    assertInvalid(() => checkAutoResume('kill', true), 'auto_resume');
    checkAutoResume('kill', false);
    checkAutoResume('pause', true);
    checkAutoResume('hibernate', true);
  });
});

describe('parseResumeTimeout', () => {
  it('absent means the machine keeps its timeout; else 1 s to 7 days', () => {
    assert.equal(parseResumeTimeout(undefined), undefined);
    assert.equal(parseResumeTimeout({}), undefined);
    assert.equal(parseResumeTimeout({ timeout: 1 }), 1);
    assert.equal(parseResumeTimeout({ timeout: 604800 }), 604800);
    for (const bad of [0, 604801, 2.5, '60'])
      assertInvalid(() => parseResumeTimeout({ timeout: bad }), 'timeout');
    assertInvalid(() => parseResumeTimeout({ timeout: 60, on_timeout: 'pause' }), 'on_timeout');
    assertInvalid(() => parseResumeTimeout([]), 'body');
  });
});
