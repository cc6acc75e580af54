/** Tenants' keys: shown once, kept as a hash, the operator's apart, revoked at once. */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { MachineStore } from '../store/machine-store.js';
import { ApiKeys, OPERATOR } from './keys.js';

const OPERATOR_KEY = `ns_${'o'.repeat(32)}`;

/** A socket stand-in: what track() and revoke() use of one (events, destroy). */
function fakeSocket(): Socket & { destroyed: boolean } {
  const s = new EventEmitter() as EventEmitter & { destroyed: boolean; destroy(): void };
  s.destroyed = false;
  s.destroy = () => {
    s.destroyed = true;
    s.emit('close');
  };
  return s as unknown as Socket & { destroyed: boolean };
}

describe('ApiKeys', () => {
  it("authenticates the operator's key and tenants' keys; nothing else", () => {
    const store = new MachineStore(':memory:');
    const keys = new ApiKeys(store.database, OPERATOR_KEY);
    const k = keys.create({ tenant: 'acme', name: 'ci' });
    assert.match(k.key, /^ns_[A-Za-z0-9_-]{32}$/);
    assert.equal(keys.authenticate(OPERATOR_KEY), OPERATOR);
    assert.deepEqual(keys.authenticate(k.key), { tenant: 'acme', keyId: k.id });
    for (const bad of [undefined, '', 'ns_', `${k.key}x`, k.key.slice(0, -1), OPERATOR_KEY.toUpperCase()])
      assert.equal(keys.authenticate(bad), undefined, String(bad));
    store.close();
  });

  it('stores only a hash: the key is in no row, and a new start still knows it', () => {
    const store = new MachineStore(':memory:');
    const k = new ApiKeys(store.database, OPERATOR_KEY).create({ tenant: 'acme', name: null });
    const rows = JSON.stringify(store.database.prepare('SELECT * FROM api_keys').all());
    assert.ok(!rows.includes(k.key) && !rows.includes(k.key.slice(3)));
    const again = new ApiKeys(store.database, OPERATOR_KEY);
    assert.deepEqual(again.authenticate(k.key), { tenant: 'acme', keyId: k.id });
    assert.deepEqual(
      again.list().map((i) => [i.id, i.tenant, i.name, i.hint]),
      [[k.id, 'acme', null, k.key.slice(-4)]],
    );
    store.close();
  });

  it('a revoke refuses the key at once and ends its connections, not those of other keys', () => {
    const store = new MachineStore(':memory:');
    const keys = new ApiKeys(store.database, OPERATOR_KEY);
    const a = keys.create({ tenant: 'acme', name: null });
    const b = keys.create({ tenant: 'acme', name: null });
    const [sa, sb, done] = [fakeSocket(), fakeSocket(), fakeSocket()];
    keys.track({ tenant: 'acme', keyId: a.id }, sa);
    keys.track({ tenant: 'acme', keyId: b.id }, sb);
    let finish: () => void = () => undefined;
    keys.track({ tenant: 'acme', keyId: a.id }, done, (f) => {
      finish = f;
    });
    finish(); // that request has finished: its (kept-alive) connection is not the key's any more
    assert.equal(keys.revoke(a.id).id, a.id);
    assert.equal(keys.authenticate(a.key), undefined);
    assert.deepEqual([sa.destroyed, sb.destroyed, done.destroyed], [true, false, false]);
    assert.ok(keys.authenticate(b.key));
    assert.throws(() => keys.revoke(a.id), { code: 'not_found' });
    assert.equal(
      new ApiKeys(store.database, OPERATOR_KEY).authenticate(a.key),
      undefined,
      'revoked for good',
    );
    store.close();
  });
});
