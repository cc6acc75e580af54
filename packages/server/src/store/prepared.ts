import type Database from 'better-sqlite3';

/** At most this many statements are kept per database (list queries embed metadata keys). */
const MAX_CACHED = 256;
const caches = new WeakMap<Database.Database, Map<string, Database.Statement>>();

/**
 * The statement for `sql` on `db`, prepared once: preparing costs more than running a small query
 * (measured: a machine row read 34–40 µs prepared each time, 9 µs cached), and a preview request
 * reads several rows.
 */
export function prepared(db: Database.Database, sql: string): Database.Statement {
  let cache = caches.get(db);
  if (!cache) {
    cache = new Map();
    caches.set(db, cache);
  }
  let stmt = cache.get(sql);
  if (!stmt) {
    if (cache.size >= MAX_CACHED) cache.clear();
    stmt = db.prepare(sql);
    cache.set(sql, stmt);
  }
  return stmt;
}
