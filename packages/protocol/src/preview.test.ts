/** Preview ports, grant bodies, preview host names, and the redaction of preview tokens. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  newId,
  parseCreatePreviewGrant,
  parsePort,
  parsePreviewHost,
  parseWaitForPreview,
  redactPreviewToken,
  redactPreviewUrl,
} from './index.js';
import { assertInvalid } from './test-support.js';

describe('parsePort', () => {
  it('1 to 65535, as a number or a string of digits', () => {
    assert.equal(parsePort(1), 1);
    assert.equal(parsePort(65535), 65535);
    assert.equal(parsePort('8080'), 8080);
    for (const bad of [0, 65536, -1, 80.5, '0', '65536', '80a', '', ' 80', null, undefined, '123456'])
      assertInvalid(() => parsePort(bad), 'port');
    assertInvalid(() => parsePort('x', 'ports[0]'), 'ports[0]');
  });
});

describe('grant and wait bodies', () => {
  it('a grant needs a port; expires_in 1 s to 7 days, default one hour', () => {
    assert.deepEqual(parseCreatePreviewGrant({ port: 3000 }), { port: 3000, expires_in: 3600 });
    assert.deepEqual(parseCreatePreviewGrant({ port: '3000', expires_in: 1 }), { port: 3000, expires_in: 1 });
    assert.equal(parseCreatePreviewGrant({ port: 1, expires_in: 604800 }).expires_in, 604800);
    assertInvalid(() => parseCreatePreviewGrant({}), 'port');
    assertInvalid(() => parseCreatePreviewGrant(undefined), 'port');
    assertInvalid(() => parseCreatePreviewGrant({ port: 70000 }), 'port');
    assertInvalid(() => parseCreatePreviewGrant({ port: 80, expires_in: 0 }), 'expires_in');
    assertInvalid(() => parseCreatePreviewGrant({ port: 80, expires_in: 604801 }), 'expires_in');
    assertInvalid(() => parseCreatePreviewGrant({ port: 80, kind: 'proxy' }), 'kind');
    assertInvalid(() => parseCreatePreviewGrant([80]), 'body');
  });

  it('a wait lasts 100 ms to 5 minutes, default 30 s', () => {
    assert.deepEqual(parseWaitForPreview(undefined), { timeout_ms: 30_000 });
    assert.deepEqual(parseWaitForPreview({ timeout_ms: 100 }), { timeout_ms: 100 });
    assert.deepEqual(parseWaitForPreview({ timeout_ms: 300_000 }), { timeout_ms: 300_000 });
    assertInvalid(() => parseWaitForPreview({ timeout_ms: 99 }), 'timeout_ms');
    assertInvalid(() => parseWaitForPreview({ timeout_ms: 300_001 }), 'timeout_ms');
    assertInvalid(() => parseWaitForPreview({ timeout: 5 }), 'timeout');
  });
});

describe('parsePreviewHost', () => {
  const id = newId('machine');

  it('PORT-ID.domain, case-insensitive, ports of host and domain ignored', () => {
    assert.deepEqual(parsePreviewHost(`3000-${id}.preview.test`, 'preview.test'), {
      machineId: id,
      port: 3000,
    });
    assert.deepEqual(parsePreviewHost(`3000-${id}.Preview.Test:8443`, 'preview.test:7070'), {
      machineId: id,
      port: 3000,
    });
    assert.deepEqual(parsePreviewHost(`1-${id}.p.test`, 'P.TEST'), { machineId: id, port: 1 });
    assert.deepEqual(parsePreviewHost(`65535-${id}.p.test`, 'p.test'), { machineId: id, port: 65535 });
  });

  it('anything else is not a preview host', () => {
    for (const host of [
      undefined,
      '',
      'preview.test',
      `3000-${id}.other.test`,
      `3000-${id}.preview.test.evil`,
      `x.3000-${id}.preview.test`,
      `0-${id}.preview.test`,
      `65536-${id}.preview.test`,
      `3000-${newId('snapshot')}.preview.test`,
      '3000-mch_short.preview.test',
      `3000_${id}.preview.test`,
      `3000-${id}preview.test`,
    ])
      assert.equal(parsePreviewHost(host, 'preview.test'), undefined, String(host));
  });
});

describe('redaction of preview tokens', () => {
  const token = 'nspv_abcdEFGH1234_-xyz';

  it('keeps the prefix and four characters, hides the rest', () => {
    assert.equal(redactPreviewToken(token), 'nspv_abcd***');
    assert.equal(redactPreviewToken('nspv_ab'), 'nspv_ab***');
    assert.equal(redactPreviewToken('no token here'), 'no token here');
  });

  it('redacts every token anywhere in a URL or a text, and nothing else', () => {
    const url = `https://3000-mch_x.preview.test/path?ns_token=${token}&b=1#frag`;
    const red = redactPreviewUrl(url);
    assert.equal(red, 'https://3000-mch_x.preview.test/path?ns_token=nspv_abcd***&b=1#frag');
    assert.ok(!red.includes('EFGH1234'));
    const two = redactPreviewToken(`a=${token} b=nspv_zzzz9999`);
    assert.equal(two, 'a=nspv_abcd*** b=nspv_zzzz***');
  });
});
