/** The network-policy helpers: which changes only broaden (and may fail open), and `network` of info. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EgressSpec } from '@nullspace/protocol';
import { parsePool } from '@nullspace/runtime';
import {
  DEFAULT_NETWORK,
  DENY_ALL_EGRESS,
  driverNetwork,
  isBroadening,
  networkInfo,
} from './network-policy.js';

const e = (over: Partial<EgressSpec>): EgressSpec => ({
  mode: 'allow_all',
  allow_cidrs: [],
  deny_cidrs: [],
  locked: false,
  ...over,
});

const ALLOW_ALL = e({});
const DENY_ALL = e({ mode: 'deny_all' });
const CUSTOM_ALLOW = e({ mode: 'custom', allow_cidrs: ['1.1.1.1/32'] });
const CUSTOM_DENY = e({ mode: 'custom', deny_cidrs: ['1.1.1.1/32'] });
const LIMITED = e({ rate_limit: { pps: 10 } });

describe('isBroadening', () => {
  it('from deny-all (or the legacy lock) every change broadens', () => {
    for (const prev of [DENY_ALL, DENY_ALL_EGRESS, e({ locked: true })])
      for (const next of [ALLOW_ALL, DENY_ALL, CUSTOM_ALLOW, CUSTOM_DENY, LIMITED])
        assert.equal(isBroadening(prev, next), true, `${JSON.stringify(prev)} -> ${JSON.stringify(next)}`);
  });

  it('to plain allow_all broadens from anything', () => {
    for (const prev of [ALLOW_ALL, CUSTOM_ALLOW, CUSTOM_DENY, LIMITED])
      assert.equal(isBroadening(prev, ALLOW_ALL), true);
  });

  it('anything else tightens (a failure to apply it must fail closed)', () => {
    for (const prev of [ALLOW_ALL, CUSTOM_ALLOW, CUSTOM_DENY, LIMITED])
      for (const next of [DENY_ALL, CUSTOM_ALLOW, CUSTOM_DENY, LIMITED, e({ locked: true })])
        assert.equal(isBroadening(prev, next), false, `${JSON.stringify(prev)} -> ${JSON.stringify(next)}`);
  });
});

describe('policies and machine info', () => {
  it('the default lets everything public out; the fail-closed state lets nothing out', () => {
    assert.deepEqual(DEFAULT_NETWORK.egress, ALLOW_ALL);
    assert.equal(DENY_ALL_EGRESS.mode, 'deny_all');
    assert.equal(DENY_ALL_EGRESS.locked, true);
  });

  it('networkInfo: the policy as the API shows it, internet_access false only when locked', () => {
    assert.deepEqual(networkInfo({ egress: LIMITED, mask_request_host: 'localhost:${PORT}' }, '10.213.0.2'), {
      egress: { mode: 'allow_all', allow_cidrs: [], deny_cidrs: [], rate_limit: { pps: 10 } },
      internet_access: true,
      mask_request_host: 'localhost:${PORT}',
      address: '10.213.0.2',
    });
    const locked = networkInfo({ egress: DENY_ALL_EGRESS }, null);
    assert.equal(locked.internet_access, false);
    assert.equal(locked.egress.rate_limit, null);
    assert.equal(locked.mask_request_host, null);
    assert.equal(locked.address, null);
    assert.equal('locked' in locked.egress, false);
    assert.equal(networkInfo({ egress: DENY_ALL }, null).internet_access, true);
  });

  it('driverNetwork: the machine’s block of the pool and its egress', () => {
    const pool = parsePool('10.213.0.0/16');
    const net = driverNetwork(pool, { id: 'mch_a', net_index: 2, network: { egress: CUSTOM_DENY } });
    assert.equal(net.link.machineAddr, '10.213.0.18');
    assert.equal(net.link.owner, 'mch_a');
    assert.deepEqual(net.egress, CUSTOM_DENY);
  });
});
