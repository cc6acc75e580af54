import { invalidArgument } from './errors.js';

/** Small, explicit validators used at the API edge. Each throws `invalid_argument` naming the field. */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function expectObject(value: unknown, field: string): Record<string, unknown> {
  if (!isPlainObject(value)) throw invalidArgument(field, 'must be a JSON object');
  return value;
}

/** Rejects keys that are not in `allowed`, so a typo is an error rather than silently ignored. */
export function rejectUnknownKeys(
  obj: Record<string, unknown>,
  allowed: readonly string[],
  prefix = '',
): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw invalidArgument(prefix + key, 'unknown field');
  }
}

export function optionalString(
  obj: Record<string, unknown>,
  key: string,
  opts: { max?: number; pattern?: RegExp; patternHelp?: string; prefix?: string } = {},
): string | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  const field = (opts.prefix ?? '') + key;
  if (typeof value !== 'string') throw invalidArgument(field, 'must be a string');
  if (value.includes('\0')) throw invalidArgument(field, 'must not contain NUL characters');
  if (opts.max !== undefined && value.length > opts.max)
    throw invalidArgument(field, `must be at most ${opts.max} characters`);
  if (opts.pattern && !opts.pattern.test(value))
    throw invalidArgument(field, opts.patternHelp ?? `must match ${opts.pattern}`);
  return value;
}

export function optionalInteger(
  obj: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
  prefix = '',
): number | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  const field = prefix + key;
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw invalidArgument(field, 'must be an integer');
  if (value < min || value > max) throw invalidArgument(field, `must be between ${min} and ${max}`);
  return value;
}

export function optionalBoolean(obj: Record<string, unknown>, key: string, prefix = ''): boolean | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw invalidArgument(prefix + key, 'must be a boolean');
  return value;
}

export function optionalEnum<T extends string>(
  obj: Record<string, unknown>,
  key: string,
  values: readonly T[],
  prefix = '',
): T | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !(values as readonly string[]).includes(value))
    throw invalidArgument(prefix + key, `must be one of ${values.join(', ')}`);
  return value as T;
}

export function optionalStringArray(
  obj: Record<string, unknown>,
  key: string,
  opts: { maxItems: number; maxLength: number },
): string[] | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw invalidArgument(key, 'must be an array of strings');
  if (value.length > opts.maxItems) throw invalidArgument(key, `must have at most ${opts.maxItems} items`);
  return value.map((item, i) => {
    if (typeof item !== 'string') throw invalidArgument(`${key}[${i}]`, 'must be a string');
    if (item.includes('\0')) throw invalidArgument(`${key}[${i}]`, 'must not contain NUL characters');
    if (item.length > opts.maxLength)
      throw invalidArgument(`${key}[${i}]`, `must be at most ${opts.maxLength} characters`);
    return item;
  });
}

/** A map of string to string with limits on count and sizes and a pattern for keys. */
export function optionalStringMap(
  obj: Record<string, unknown>,
  key: string,
  opts: { maxEntries: number; keyPattern: RegExp; keyHelp: string; maxValueLength: number },
): Record<string, string> | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (!isPlainObject(value)) throw invalidArgument(key, 'must be an object of string values');
  const entries = Object.entries(value);
  if (entries.length > opts.maxEntries)
    throw invalidArgument(key, `must have at most ${opts.maxEntries} entries`);
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (!opts.keyPattern.test(k)) throw invalidArgument(`${key}.${k}`, opts.keyHelp);
    if (typeof v !== 'string') throw invalidArgument(`${key}.${k}`, 'must be a string');
    if (v.includes('\0')) throw invalidArgument(`${key}.${k}`, 'must not contain NUL characters');
    if (v.length > opts.maxValueLength)
      throw invalidArgument(`${key}.${k}`, `must be at most ${opts.maxValueLength} characters`);
    out[k] = v;
  }
  return out;
}

export const ABSOLUTE_PATH = /^\/[^\0]*$/;
