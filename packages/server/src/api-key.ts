import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The server's API key: NULLSPACE_API_KEY if set, else one generated on first start and kept in the
 * data directory (mode 0600), so restarts keep it. Returns whether it was generated just now.
 */
export function loadOrCreateApiKey(dataDir: string, explicit?: string): { key: string; generated: boolean } {
  if (explicit) return { key: explicit, generated: false };
  const file = join(dataDir, 'api-key');
  if (existsSync(file)) return { key: readFileSync(file, 'utf8').trim(), generated: false };
  const key = `ns_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return { key, generated: true };
}

/** Constant-time comparison, so the key cannot be guessed byte by byte from response times. */
export function keyMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
