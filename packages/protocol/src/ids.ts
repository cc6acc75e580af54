import { randomBytes } from 'node:crypto';

export const ID_PREFIX = {
  machine: 'mch_',
  execution: 'exe_',
  snapshot: 'snap_',
  template: 'tpl_',
  warmPool: 'twp_',
  volume: 'vol_',
  volumeAttachment: 'vat_',
  previewGrant: 'pvg_',
  apiKey: 'key_',
  request: 'req_',
} as const;

export type IdKind = keyof typeof ID_PREFIX;

// Lower-case base32 (no padding): ids stay valid in host names (preview URLs are
// `PORT-ID.domain`) and in file names, and are case-insensitive safe.
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const ID_BODY_LENGTH = 20; // 100 bits of randomness

// Random bytes are drawn in blocks: one crypto call per id was a measurable part of a proxied
// preview request (every request gets a request id).
const POOL_IDS = 128;
let pool = Buffer.alloc(0);
let offset = 0;

export function newId(kind: IdKind): string {
  if (offset + ID_BODY_LENGTH > pool.length) {
    pool = randomBytes(ID_BODY_LENGTH * POOL_IDS);
    offset = 0;
  }
  let body = '';
  for (let i = offset; i < offset + ID_BODY_LENGTH; i++) body += ALPHABET[(pool[i] as number) & 31];
  offset += ID_BODY_LENGTH;
  return ID_PREFIX[kind] + body;
}

const ID_PATTERN = /^[a-z]+_[a-z2-7]{20}$/;

export function isId(kind: IdKind, value: string): boolean {
  return value.startsWith(ID_PREFIX[kind]) && ID_PATTERN.test(value);
}
