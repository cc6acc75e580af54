/** Preview grants as stored: found by their token, which is never kept; revoked once; pruned a day after expiry. */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { newId } from '@nullspace/protocol';
import { MachineStore } from './machine-store.js';
import { type PreviewGrantRecord, PreviewGrantStore, grantInfo, hashToken } from './preview-grant-store.js';

let store: MachineStore;
let grants: PreviewGrantStore;
beforeEach(() => {
  store = new MachineStore(':memory:');
  grants = new PreviewGrantStore(store.database);
});
afterEach(() => store.close());

const T0 = Date.parse('2025-01-01T00:00:00Z');
const DAY = 24 * 3600 * 1000;

function grant(token: string, over: Partial<PreviewGrantRecord> = {}): PreviewGrantRecord {
  const g: PreviewGrantRecord = {
    id: newId('previewGrant'),
    machine_id: 'mch_a',
    port: 3000,
    kind: 'url',
    token_hash: hashToken(token),
    token_hint: `${token.slice(0, 9)}***`,
    created_at: T0,
    expires_at: T0 + 3600_000,
    revoked_at: null,
    ...over,
  };
  grants.insert(g);
  return g;
}

describe('PreviewGrantStore', () => {
  it('finds a grant by its token; the token itself is nowhere in the database', () => {
    const token = 'nspv_abcdSECRETSECRET';
    const g = grant(token);
    assert.deepEqual(grants.byToken(token), g);
    assert.equal(grants.byToken('nspv_abcdSECRETSECRETx'), undefined);
    const dump = JSON.stringify(store.database.prepare('SELECT * FROM preview_grants').all());
    assert.ok(!dump.includes('SECRET'), dump);
    assert.equal(hashToken(token), hashToken(token));
    assert.match(hashToken(token), /^[0-9a-f]{64}$/);
  });

  it('lists a machine’s grants oldest first, optionally of one port', () => {
    const a = grant('nspv_1', { created_at: T0 + 2 });
    const b = grant('nspv_2', { created_at: T0 + 1, port: 8080 });
    grant('nspv_3', { machine_id: 'mch_b' });
    assert.deepEqual(
      grants.list('mch_a').map((g) => g.id),
      [b.id, a.id],
    );
    assert.deepEqual(
      grants.list('mch_a', 8080).map((g) => g.id),
      [b.id],
    );
  });

  it('a revocation keeps its first time', () => {
    const g = grant('nspv_r');
    assert.equal(grants.revoke(g.id, T0 + 10)?.revoked_at, T0 + 10);
    assert.equal(grants.revoke(g.id, T0 + 20)?.revoked_at, T0 + 10);
    assert.equal(grants.revoke(newId('previewGrant'), T0), undefined);
  });

  it('expired grants stay listed for a day, then go', () => {
    const g = grant('nspv_e');
    grants.prune(g.expires_at + DAY);
    assert.ok(grants.get(g.id));
    grants.prune(g.expires_at + DAY + 1);
    assert.equal(grants.get(g.id), undefined);
  });

  it('grantInfo: times as ISO 8601, and no token hash', () => {
    const g = grant('nspv_i');
    const info = grantInfo(g);
    assert.equal(info.created_at, '2025-01-01T00:00:00.000Z');
    assert.equal(info.revoked_at, null);
    assert.equal('token_hash' in info, false);
  });
});
