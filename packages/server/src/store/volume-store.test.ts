/** The volume tables' migration to tenants: old rows kept (the operator's), names unique per tenant. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { VolumeStore } from './volume-store.js';

/** A database as the volume store left it before tenants (its first migration only). */
function beforeTenants(): Database.Database {
  const db = new Database(':memory:');
  db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('schema.volumes', '1');
    CREATE TABLE volumes (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, size_mb INTEGER NOT NULL,
      status TEXT NOT NULL, created_at INTEGER NOT NULL);
    CREATE TABLE volume_attachments (id TEXT PRIMARY KEY, volume_id TEXT NOT NULL, volume_name TEXT NOT NULL,
      machine_id TEXT NOT NULL, mount_path TEXT NOT NULL, read_only INTEGER NOT NULL, subpath TEXT,
      status TEXT NOT NULL, created_at INTEGER NOT NULL, detached_at INTEGER, health TEXT);
    CREATE TABLE snapshot_volumes (snapshot_id TEXT NOT NULL, volume_id TEXT NOT NULL, mount_path TEXT NOT NULL,
      read_only INTEGER NOT NULL, subpath TEXT, PRIMARY KEY (snapshot_id, mount_path));
    INSERT INTO volumes VALUES ('vol_aaaaaaaaaaaaaaaaaaaa', 'data', 300, 'ready', 1);
    INSERT INTO volumes VALUES ('vol_bbbbbbbbbbbbbbbbbbbb', 'cache', 400, 'ready', 2);`);
  return db;
}

describe('VolumeStore tenants', () => {
  it('keeps the volumes made before tenants, as the operator’s, in their order', () => {
    const db = beforeTenants();
    const store = new VolumeStore(db);
    assert.deepEqual(
      store.list().map((v) => [v.id, v.name, v.size_mb, v.tenant]),
      [
        ['vol_aaaaaaaaaaaaaaaaaaaa', 'data', 300, null],
        ['vol_bbbbbbbbbbbbbbbbbbbb', 'cache', 400, null],
      ],
    );
    assert.equal(store.byName('data', null)?.id, 'vol_aaaaaaaaaaaaaaaaaaaa');
    assert.equal(store.byName('data', 'acme'), undefined);
    // Opening it again runs no migration twice.
    new VolumeStore(db);
    assert.equal(store.list().length, 2);
    db.close();
  });

  it('a name is unique within a tenant (the operator is one), not across tenants', () => {
    const db = beforeTenants();
    const store = new VolumeStore(db);
    const v = (id: string, tenant: string | null) => ({
      id,
      name: 'data',
      size_mb: 300,
      status: 'ready' as const,
      created_at: 3,
      tenant,
    });
    store.insert(v('vol_cccccccccccccccccccc', 'acme'));
    store.insert(v('vol_dddddddddddddddddddd', 'bravo'));
    assert.throws(() => store.insert(v('vol_eeeeeeeeeeeeeeeeeeee', 'acme')), /UNIQUE/);
    assert.throws(() => store.insert(v('vol_ffffffffffffffffffff', null)), /UNIQUE/);
    assert.equal(store.byName('data', 'acme')?.id, 'vol_cccccccccccccccccccc');
    assert.equal(store.byName('data', 'bravo')?.id, 'vol_dddddddddddddddddddd');
    db.close();
  });
});
