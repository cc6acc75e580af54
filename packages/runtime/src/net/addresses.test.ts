/** The machine address pool: which pools are allowed, and the /29 block (and names) each machine gets. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError, ipv4ToNumber } from '@nullspace/protocol';
import { DEFAULT_MACHINE_POOL, hostIfOf, linkFor, parsePool } from './addresses.js';
import { machineChains } from './egress-rules.js';

function refused(fn: () => unknown, code: 'invalid_argument' | 'internal'): void {
  assert.throws(fn, (err: unknown) => err instanceof CodedError && err.code === code);
}

describe('parsePool', () => {
  it('the default pool holds 8192 machines', () => {
    assert.deepEqual(parsePool(DEFAULT_MACHINE_POOL), {
      cidr: '10.213.0.0/16',
      base: ipv4ToNumber('10.213.0.0'),
      size: 8192,
    });
  });

  it('canonicalises, and sizes the pool in /29 blocks from /8 to /28', () => {
    assert.equal(parsePool('10.213.7.9/16').cidr, '10.213.0.0/16');
    assert.equal(parsePool('10.0.0.0/8').size, 2 ** 21);
    assert.equal(parsePool('192.168.4.0/28').size, 2);
    assert.equal(parsePool('172.20.0.0/24').size, 32);
    assert.equal(parsePool('100.64.0.0/10').size, 2 ** 19);
    refused(() => parsePool('192.168.4.0/29'), 'invalid_argument');
    refused(() => parsePool('10.0.0.0/7'), 'invalid_argument');
  });

  it('must lie inside a private range (the egress rules keep those closed between machines)', () => {
    for (const ok of ['10.1.0.0/16', '172.16.0.0/12', '172.31.255.0/24', '192.168.0.0/16', '100.127.0.0/16'])
      assert.ok(parsePool(ok).size > 0, ok);
    for (const bad of ['8.8.8.0/24', '172.32.0.0/16', '192.169.0.0/16', '100.128.0.0/16', '11.0.0.0/16'])
      refused(() => parsePool(bad), 'invalid_argument');
    // Wider than the private range it starts in: reaches outside it.
    refused(() => parsePool('172.16.0.0/11'), 'invalid_argument');
    refused(() => parsePool('192.168.0.0/15'), 'invalid_argument');
  });

  it('refuses what is not an IPv4 CIDR', () => {
    for (const bad of ['', 'fd00::/64', '10.0.0.0/33', 'ten'])
      refused(() => parsePool(bad), 'invalid_argument');
  });
});

describe('linkFor and hostIfOf', () => {
  const pool = parsePool('10.213.0.0/16');

  it('block n: .1 the host, .2 the machine, .3 the preview source, a /29', () => {
    assert.deepEqual(linkFor(pool, 0, 'mch_a'), {
      owner: 'mch_a',
      hostIf: hostIfOf(pool, 0),
      hostAddr: '10.213.0.1',
      machineAddr: '10.213.0.2',
      previewAddr: '10.213.0.3',
      prefix: 29,
    });
    const l = linkFor(pool, 33, 'mch_b');
    assert.deepEqual(
      [l.hostAddr, l.machineAddr, l.previewAddr],
      ['10.213.1.9', '10.213.1.10', '10.213.1.11'],
    );
    const last = linkFor(pool, pool.size - 1, 'mch_c');
    assert.deepEqual([last.hostAddr, last.machineAddr], ['10.213.255.249', '10.213.255.250']);
  });

  it('blocks do not overlap and interface names are distinct, at most 15 bytes', () => {
    const small = parsePool('192.168.7.0/24');
    const addrs = new Set<string>();
    const names = new Set<string>();
    for (let i = 0; i < small.size; i++) {
      const l = linkFor(small, i, `m${i}`);
      for (const a of [l.hostAddr, l.machineAddr, l.previewAddr]) addrs.add(a);
      names.add(l.hostIf);
      assert.ok(Buffer.byteLength(l.hostIf) <= 15, l.hostIf);
      assert.match(l.hostIf, /^[a-z0-9]+$/);
    }
    assert.equal(addrs.size, small.size * 3);
    assert.equal(names.size, small.size);
  });

  it('the interface name depends on the block, not on the pool it is counted in', () => {
    // Two servers with overlapping pools would clash on `ip link add` rather than share an address.
    const wide = parsePool('10.213.0.0/16');
    const narrow = parsePool('10.213.1.0/24');
    assert.equal(hostIfOf(narrow, 0), hostIfOf(wide, 32));
    assert.notEqual(hostIfOf(narrow, 0), hostIfOf(wide, 0));
  });

  it('an index outside the pool is an internal error', () => {
    for (const bad of [-1, pool.size, 1.5, Number.NaN])
      refused(() => linkFor(pool, bad, 'mch_x'), 'internal');
  });

  it('the link names its machine, whose chains in the host table are named after it', () => {
    assert.equal(linkFor(pool, 3, 'mch_abc').owner, 'mch_abc');
    assert.deepEqual(Object.values(machineChains('mch_abc')), [
      'mch_abc_egress',
      'mch_abc_to_host',
      'mch_abc_resolver',
      'mch_abc_masq',
    ]);
  });
});
