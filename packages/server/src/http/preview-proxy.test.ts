/** What the preview proxy forwards to a machine's service: the request target without the grant token. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pathWithoutToken } from './preview-proxy.js';

describe('pathWithoutToken', () => {
  it('removes ns_token wherever it is, and keeps the rest as the client sent it', () => {
    assert.equal(pathWithoutToken('/app?ns_token=nspv_abc'), '/app');
    assert.equal(pathWithoutToken('/app?a=1&ns_token=nspv_abc&b=%20x'), '/app?a=1&b=%20x');
    assert.equal(pathWithoutToken('/app?ns_token=nspv_a&x=1&ns_token=nspv_b'), '/app?x=1');
    assert.equal(pathWithoutToken('/a/../b//c?q=1'), '/a/../b//c?q=1');
    assert.equal(pathWithoutToken('/'), '/');
    assert.equal(pathWithoutToken('/app?ns_token'), '/app');
  });

  it('keeps parameters that only look like it', () => {
    assert.equal(pathWithoutToken('/app?my_ns_token=1&ns_tokens=2'), '/app?my_ns_token=1&ns_tokens=2');
  });

  it('removes the token also when its name is percent-encoded (the grant check decodes names)', () => {
    // URLSearchParams, which finds the grant, reads `ns%5Ftoken` as `ns_token`: the service must
    // not see a token that was accepted.
    assert.equal(new URLSearchParams('ns%5Ftoken=nspv_abc').get('ns_token'), 'nspv_abc');
    assert.equal(pathWithoutToken('/app?ns%5Ftoken=nspv_abc&a=1'), '/app?a=1');
    assert.equal(pathWithoutToken('/app?%6Es_token=nspv_abc'), '/app');
  });
});
