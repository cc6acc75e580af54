/**
 * The egress policy at the API edge: CIDRs (IPv4 only, canonical form), the `egress` object
 * (modes, lists, rate limits), the `network` object and the legacy fields.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  NON_PUBLIC_CIDRS,
  ipv4ToNumber,
  numberToIpv4,
  parseCidr,
  parseEgress,
  parseNetworkFields,
  parseNetworkObject,
} from './index.js';
import { assertInvalid } from './test-support.js';

describe('IPv4 addresses and CIDRs', () => {
  it('converts addresses to numbers and back', () => {
    assert.equal(ipv4ToNumber('0.0.0.0'), 0);
    assert.equal(ipv4ToNumber('255.255.255.255'), 0xffffffff);
    assert.equal(ipv4ToNumber('10.1.2.3'), (10 << 24) + (1 << 16) + (2 << 8) + 3);
    assert.equal(numberToIpv4(0xffffffff), '255.255.255.255');
    assert.equal(numberToIpv4(ipv4ToNumber('172.16.254.1') as number), '172.16.254.1');
  });

  it('refuses what is not a dotted quad, octets over 255 and octal look-alikes', () => {
    for (const bad of ['1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.04', 'a.b.c.d', '', ' 1.2.3.4'])
      assert.equal(ipv4ToNumber(bad), undefined, bad);
    assert.equal(ipv4ToNumber('0.0.0.0'), 0);
  });

  it('parseCidr: canonical form with host bits cleared; a bare address is a /32', () => {
    assert.equal(parseCidr('10.1.2.3/8', 'f'), '10.0.0.0/8');
    assert.equal(parseCidr('192.168.1.77/24', 'f'), '192.168.1.0/24');
    assert.equal(parseCidr('1.2.3.4', 'f'), '1.2.3.4/32');
    assert.equal(parseCidr('1.2.3.4/0', 'f'), '0.0.0.0/0');
    assert.equal(parseCidr('255.255.255.255/32', 'f'), '255.255.255.255/32');
    assert.equal(parseCidr('255.255.255.255/1', 'f'), '128.0.0.0/1');
  });

  it('parseCidr: refuses IPv6 by name, and anything else, naming the field given', () => {
    assertInvalid(() => parseCidr('::1/128', 'allow_out[3]'), 'allow_out[3]', /IPv6/);
    assertInvalid(() => parseCidr('2001:db8::/32', 'x'), 'x', /IPv6/);
    for (const bad of [
      '1.2.3.4/33',
      '1.2.3.4/-1',
      '1.2.3.4/',
      '1.2.3.4/8/8',
      '1.2.3.4/a',
      '300.1.1.1',
      'host',
    ])
      assertInvalid(() => parseCidr(bad, 'f'), 'f');
    assertInvalid(() => parseCidr(167772160, 'f'), 'f');
    assertInvalid(() => parseCidr(null, 'f'), 'f');
  });

  it('the non-public ranges are canonical CIDRs and cover the private, loopback and link-local ones', () => {
    for (const c of NON_PUBLIC_CIDRS) assert.equal(parseCidr(c, 'f'), c);
    for (const c of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '169.254.0.0/16'])
      assert.ok((NON_PUBLIC_CIDRS as readonly string[]).includes(c), c);
  });
});

describe('parseEgress', () => {
  it('modes without lists', () => {
    for (const mode of ['allow_all', 'deny_all', 'custom'] as const)
      assert.deepEqual(parseEgress({ mode }), { mode, allow_cidrs: [], deny_cidrs: [], locked: false });
  });

  it('custom lists are canonicalised and deduplicated', () => {
    assert.deepEqual(
      parseEgress({
        mode: 'custom',
        allow_cidrs: ['8.8.8.8', '8.8.8.8/32', '1.1.1.0/24'],
        deny_cidrs: ['10.9.9.9/8'],
      }),
      {
        mode: 'custom',
        allow_cidrs: ['8.8.8.8/32', '1.1.1.0/24'],
        deny_cidrs: ['10.0.0.0/8'],
        locked: false,
      },
    );
  });

  it('lists need mode custom', () => {
    assertInvalid(() => parseEgress({ mode: 'allow_all', deny_cidrs: ['1.1.1.1'] }), 'network.egress.mode');
    assertInvalid(() => parseEgress({ mode: 'deny_all', allow_cidrs: ['1.1.1.1'] }), 'network.egress.mode');
  });

  it('mode is required and must be known', () => {
    assertInvalid(() => parseEgress({}), 'network.egress.mode');
    assertInvalid(() => parseEgress({ mode: 'ALLOW_ALL' }), 'network.egress.mode');
  });

  it('lists: arrays of at most 256 CIDRs, errors name the item', () => {
    const cidrs = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    assert.equal(parseEgress({ mode: 'custom', allow_cidrs: cidrs(256) }).allow_cidrs.length, 256);
    assertInvalid(
      () => parseEgress({ mode: 'custom', allow_cidrs: cidrs(257) }),
      'network.egress.allow_cidrs',
    );
    assertInvalid(() => parseEgress({ mode: 'custom', deny_cidrs: '1.1.1.1' }), 'network.egress.deny_cidrs');
    assertInvalid(
      () => parseEgress({ mode: 'custom', deny_cidrs: ['1.1.1.1', 'fe80::1'] }),
      'network.egress.deny_cidrs[1]',
    );
  });

  it('rate limit: kbit_per_sec or pps (one of them), with an optional burst', () => {
    const rl = (rate_limit: unknown) => parseEgress({ mode: 'allow_all', rate_limit }).rate_limit;
    assert.deepEqual(rl({ kbit_per_sec: 8 }), { kbit_per_sec: 8 });
    assert.deepEqual(rl({ kbit_per_sec: 100_000_000, burst: 1 }), { kbit_per_sec: 100_000_000, burst: 1 });
    assert.deepEqual(rl({ pps: 1, burst: 1_000_000_000 }), { pps: 1, burst: 1_000_000_000 });
    assert.equal(parseEgress({ mode: 'custom', rate_limit: { pps: 5 } }).rate_limit?.pps, 5);
    const p = 'network.egress.rate_limit';
    assertInvalid(() => rl({ kbit_per_sec: 7 }), `${p}.kbit_per_sec`);
    assertInvalid(() => rl({ kbit_per_sec: 100_000_001 }), `${p}.kbit_per_sec`);
    assertInvalid(() => rl({ pps: 0 }), `${p}.pps`);
    assertInvalid(() => rl({ pps: 100_000_001 }), `${p}.pps`);
    assertInvalid(() => rl({ pps: 1, burst: 0 }), `${p}.burst`);
    assertInvalid(() => rl({ pps: 1, burst: 1_000_000_001 }), `${p}.burst`);
    assertInvalid(() => rl({ kbit_per_sec: 8, pps: 1 }), p);
    assertInvalid(() => rl({}), p);
    assertInvalid(() => rl({ burst: 10 }), p);
    assertInvalid(() => rl({ pps: 1, bps: 1 }), `${p}.bps`);
    assertInvalid(() => rl(5), p);
  });

  it('a rate limit means nothing with deny_all', () => {
    assertInvalid(
      () => parseEgress({ mode: 'deny_all', rate_limit: { pps: 1 } }),
      'network.egress.rate_limit',
    );
  });

  it('refuses unknown fields and non-objects, under the field given', () => {
    assertInvalid(() => parseEgress({ mode: 'allow_all', allow: [] }), 'network.egress.allow');
    assertInvalid(() => parseEgress('allow_all'), 'network.egress');
    assertInvalid(() => parseEgress({ mode: 'x' }, 'egress'), 'egress.mode');
  });
});

describe('parseNetworkObject', () => {
  it('egress defaults to allow_all', () => {
    assert.deepEqual(parseNetworkObject({}, 'network'), {
      egress: { mode: 'allow_all', allow_cidrs: [], deny_cidrs: [], locked: false },
    });
  });

  it('mask_request_host: host[:port or ${PORT}], at most 255 characters', () => {
    for (const host of [
      'localhost',
      'localhost:3000',
      'localhost:${PORT}',
      'my-app.internal',
      '127.0.0.1:80',
    ])
      assert.equal(parseNetworkObject({ mask_request_host: host }, 'network').mask_request_host, host);
    for (const bad of ['local host', 'localhost:', 'localhost:123456', 'http://x', 'x:${HOST}', 'a\0'])
      assertInvalid(
        () => parseNetworkObject({ mask_request_host: bad }, 'network'),
        'network.mask_request_host',
      );
    assert.equal(
      parseNetworkObject({ mask_request_host: 'a'.repeat(255) }, 'network').mask_request_host?.length,
      255,
    );
    assertInvalid(
      () => parseNetworkObject({ mask_request_host: 'a'.repeat(256) }, 'network'),
      'network.mask_request_host',
    );
  });

  it('names fields under the prefix given, or at the top level without one', () => {
    assertInvalid(() => parseNetworkObject({ rate: 1 }, 'network'), 'network.rate');
    assertInvalid(() => parseNetworkObject({ rate: 1 }, ''), 'rate');
    assertInvalid(() => parseNetworkObject({ egress: { mode: 'x' } }, ''), 'egress.mode');
    assertInvalid(() => parseNetworkObject(null, 'network'), 'network');
  });
});

describe('parseNetworkFields (legacy)', () => {
  it('nothing given: undefined (the server default applies)', () => {
    assert.equal(parseNetworkFields({}), undefined);
    assert.equal(parseNetworkFields({ internet_access: null, network: null }), undefined);
  });

  it('internet_access: false fails closed: deny all, locked, whatever allow_out says', () => {
    assert.deepEqual(parseNetworkFields({ internet_access: false, allow_out: ['8.8.8.8'] }), {
      egress: { mode: 'deny_all', allow_cidrs: [], deny_cidrs: [], locked: true },
    });
  });

  it('internet_access: true alone is allow_all; with lists it is custom', () => {
    assert.deepEqual(parseNetworkFields({ internet_access: true })?.egress, {
      mode: 'allow_all',
      allow_cidrs: [],
      deny_cidrs: [],
      locked: false,
    });
    assert.deepEqual(parseNetworkFields({ deny_out: ['10.0.0.1/8'] })?.egress, {
      mode: 'custom',
      allow_cidrs: [],
      deny_cidrs: ['10.0.0.0/8'],
      locked: false,
    });
  });

  it('refuses a non-boolean internet_access and bad CIDRs by field', () => {
    assertInvalid(() => parseNetworkFields({ internet_access: 'no' }), 'internet_access');
    assertInvalid(() => parseNetworkFields({ allow_out: ['x'] }), 'allow_out[0]');
    assertInvalid(() => parseNetworkFields({ deny_out: {} }), 'deny_out');
  });

  it('refuses legacy fields mixed with network, naming the legacy field', () => {
    assertInvalid(() => parseNetworkFields({ network: {}, deny_out: [] }), 'deny_out');
  });
});
