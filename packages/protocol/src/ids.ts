import { randomBytes } from 'node:crypto';

export const ID_PREFIX = {
  machine: 'mch_',
  execution: 'exe_',
  snapshot: 'snap_',
  warmPool: 'twp_',
  volume: 'vol_',
  volumeAttachment: 'vat_',
  previewGrant: 'pvg_',
  request: 'req_',
} as const;

export type IdKind = keyof typeof ID_PREFIX;

// Lower-case base32 (no padding): ids stay valid in host names (preview URLs are
// `PORT-ID.domain`) and in file names, and are case-insensitive safe.
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const ID_BODY_LENGTH = 20; // 100 bits of randomness

export function newId(kind: IdKind): string {
  const bytes = randomBytes(ID_BODY_LENGTH);
  let body = '';
  for (const b of bytes) body += ALPHABET[b & 31];
  return ID_PREFIX[kind] + body;
}

const ID_PATTERN = /^[a-z]+_[a-z2-7]{20}$/;

export function isId(kind: IdKind, value: string): boolean {
  return value.startsWith(ID_PREFIX[kind]) && ID_PATTERN.test(value);
}
