/** Tenants' quotas: each limit, the `*` default, none by default, and what the refusal says. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TenantQuotas } from './quotas.js';

const none = { machines: 0, vcpus: 0, memory_mb: 0, disk_mb: 0 };
const small = { vcpus: 1, memory_mb: 512, disk_mb: 2048 };

describe('TenantQuotas', () => {
  it('no quotas: nothing is refused', () => {
    new TenantQuotas().check('acme', { machines: 1000, vcpus: 1000, memory_mb: 1e9, disk_mb: 1e9 }, small);
  });

  it("a tenant's own entry, else *, applies; a limit left out is none", () => {
    const q = new TenantQuotas({ '*': { machines: 1 }, acme: { vcpus: 2 } });
    assert.deepEqual(q.of('acme'), { vcpus: 2 });
    assert.deepEqual(q.of('bravo'), { machines: 1 });
    q.check('acme', { ...none, machines: 5, vcpus: 1 }, small);
    assert.throws(() => q.check('bravo', { ...none, machines: 1 }, small), { code: 'quota_exceeded' });
  });

  it('the refusal names the limit, its value, the usage and what was asked', () => {
    const q = new TenantQuotas({ acme: { machines: 10, memory_mb: 1024 } });
    q.check('acme', { ...none, machines: 1, memory_mb: 512 }, small); // exactly at the limit: fine
    assert.throws(
      () => q.check('acme', { ...none, machines: 2, memory_mb: 1024 }, small),
      (err: { code: string; status: number; details: unknown; message: string }) => {
        assert.equal(err.code, 'quota_exceeded');
        assert.equal(err.status, 429);
        assert.deepEqual(err.details, {
          tenant: 'acme',
          limit: 'memory_mb',
          max: 1024,
          used: 1024,
          requested: 512,
        });
        assert.match(err.message, /tenant acme's quota of memory_mb is 1024/);
        return true;
      },
    );
    const zero = new TenantQuotas({ acme: { disk_mb: 0 } });
    assert.throws(() => zero.check('acme', none, small), { code: 'quota_exceeded' });
  });
});
