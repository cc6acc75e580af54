/**
 * Signed file URLs: a URL checks out only with the machine's secret and exactly what was signed;
 * everything wrong is the same permission_denied, and only a valid signature that ran out says so.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CodedError, type SignedUrlOp } from '@nullspace/protocol';
import { MachineStore } from '../store/machine-store.js';
import { SecretStore } from '../store/secret-store.js';
import { sign, verifySigned } from './file-routes.js';

let store: MachineStore;
let secrets: SecretStore;
beforeEach(() => {
  store = new MachineStore(':memory:');
  secrets = new SecretStore(store.database);
});
afterEach(() => store.close());

const now = () => Math.floor(Date.now() / 1000);

function query(machineId: string, op: SignedUrlOp, path: string, expires: number): URLSearchParams {
  const sig = sign(secrets.getOrCreate(machineId), machineId, op, path, expires);
  return new URLSearchParams({ path, op, expires: String(expires), sig });
}

function denied(params: URLSearchParams, machineId: string, phrase = /not valid/): void {
  assert.throws(
    () => verifySigned(params, secrets, machineId),
    (err: unknown) =>
      err instanceof CodedError && err.code === 'permission_denied' && phrase.test(err.message),
    params.toString(),
  );
}

describe('signed file URLs', () => {
  it('a URL as signed checks out', () => {
    const q = query('mch_a', 'read', '/workspace/out.txt', now() + 60);
    assert.deepEqual(verifySigned(q, secrets, 'mch_a'), { path: '/workspace/out.txt', op: 'read' });
    const w = query('mch_a', 'write', '/in.bin', now() + 60);
    assert.deepEqual(verifySigned(w, secrets, 'mch_a'), { path: '/in.bin', op: 'write' });
  });

  it('changing the path, the op, the expiry or the machine breaks it', () => {
    const expires = now() + 60;
    const good = query('mch_a', 'read', '/a', expires);
    const altered = (k: string, v: string) => {
      const q = new URLSearchParams(good);
      q.set(k, v);
      return q;
    };
    denied(altered('path', '/b'), 'mch_a');
    denied(altered('path', '/a/'), 'mch_a');
    denied(altered('op', 'write'), 'mch_a');
    denied(altered('expires', String(expires + 3600)), 'mch_a');
    secrets.getOrCreate('mch_b');
    denied(good, 'mch_b');
    const flipped = good.get('sig')?.replace(/^./, (c) => (c === '0' ? '1' : '0')) ?? '';
    denied(altered('sig', flipped), 'mch_a');
  });

  it('a machine without a secret accepts nothing', () => {
    const q = query('mch_a', 'read', '/a', now() + 60);
    denied(q, 'mch_never');
  });

  it('missing, malformed, repeated or unknown parameters are refused alike', () => {
    const good = query('mch_a', 'read', '/a', now() + 60);
    for (const k of ['path', 'op', 'expires', 'sig']) {
      const q = new URLSearchParams(good);
      q.delete(k);
      denied(q, 'mch_a');
    }
    const extra = new URLSearchParams(good);
    extra.set('x', '1');
    denied(extra, 'mch_a');
    const twice = new URLSearchParams(good);
    twice.append('path', '/b');
    denied(twice, 'mch_a');
    const upper = new URLSearchParams(good);
    upper.set('sig', (good.get('sig') ?? '').toUpperCase());
    denied(upper, 'mch_a');
    const short = new URLSearchParams(good);
    short.set('sig', (good.get('sig') ?? '').slice(2));
    denied(short, 'mch_a');
  });

  it('a valid signature that ran out says it expired', () => {
    denied(query('mch_a', 'read', '/a', now() - 1), 'mch_a', /expired/);
    denied(query('mch_a', 'read', '/a', now()), 'mch_a', /expired/);
  });

  it('a new secret revokes every URL signed with the old one', () => {
    const q = query('mch_a', 'read', '/a', now() + 60);
    store.database.prepare('DELETE FROM machine_secrets').run();
    secrets.getOrCreate('mch_a');
    denied(q, 'mch_a');
  });
});
