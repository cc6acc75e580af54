/**
 * The server's validator: walks a request schema (the JSON Schema subset the contract uses) over a
 * value and throws `invalid_argument` at the first thing wrong, naming the field by its path
 * (`network.egress.mode`, `volumes[0].volume`, `envs.1BAD`; `body` for the body itself) and
 * saying what is wrong in words. A small interpreter of our own rather than a generic JSON Schema
 * validator, because that wording and those paths are the API's error contract.
 *
 * `null` for a field that is not required is the same as leaving it out; the value returned is a
 * copy without those fields, so its type is the schema's static type.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { invalidArgument } from '../errors.js';
import { isPlainObject } from '../validate.js';

type Json = Record<string, unknown>;

/** The JSON Schema keywords the validator reads (a schema is a plain object at run time). */
export interface SchemaNode {
  type?: string;
  enum?: readonly string[];
  const?: unknown;
  properties?: Record<string, SchemaNode>;
  required?: readonly string[];
  additionalProperties?: boolean | SchemaNode;
  patternProperties?: Record<string, SchemaNode>;
  maxProperties?: number;
  items?: SchemaNode;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  anyOf?: readonly SchemaNode[];
  'x-error'?: string;
  'x-key-error'?: string;
}

function at(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

const patterns = new Map<string, RegExp>();
function regex(source: string): RegExp {
  let re = patterns.get(source);
  if (re === undefined) {
    re = new RegExp(source, 'u');
    patterns.set(source, re);
  }
  return re;
}

/** Checks `value` against `schema`; returns it (optional nulls removed) or throws `invalid_argument`. */
export function check<T extends TSchema>(schema: T, value: unknown, path = ''): Static<T> {
  return walk(schema as unknown as SchemaNode, value, path) as Static<T>;
}

function walk(s: SchemaNode, value: unknown, path: string): unknown {
  const field = path === '' ? 'body' : path;
  if (s.anyOf) return anyOf(s, value, path);
  if (s.enum) {
    if (typeof value !== 'string' || !s.enum.includes(value))
      throw invalidArgument(field, `must be one of ${s.enum.join(', ')}`);
    return value;
  }
  if (s.const !== undefined) {
    if (value !== s.const) throw invalidArgument(field, `must be ${JSON.stringify(s.const)}`);
    return value;
  }
  switch (s.type) {
    case 'object':
      return s.properties ? object(s, value, path) : map(s, value, path);
    case 'array':
      return array(s, value, path);
    case 'string':
      return string(s, value, field);
    case 'integer':
    case 'number':
      return number(s, value, field);
    case 'boolean':
      if (typeof value !== 'boolean') throw invalidArgument(field, 'must be a boolean');
      return value;
    case 'null':
      if (value !== null) throw invalidArgument(field, 'must be null');
      return value;
    default:
      return value; // no type: anything (free-form data)
  }
}

function object(s: SchemaNode, value: unknown, path: string): Json {
  if (!isPlainObject(value)) throw invalidArgument(path === '' ? 'body' : path, 'must be a JSON object');
  const props = s.properties ?? {};
  if (s.additionalProperties === false)
    for (const key of Object.keys(value))
      if (!Object.hasOwn(props, key)) throw invalidArgument(at(path, key), 'unknown field');
  for (const key of s.required ?? [])
    if (value[key] === undefined || value[key] === null) throw invalidArgument(at(path, key), 'is required');
  const out: Json = {};
  for (const [key, prop] of Object.entries(props)) {
    const v = value[key];
    if (v === undefined || v === null) continue;
    out[key] = walk(prop, v, at(path, key));
  }
  return out;
}

function map(s: SchemaNode, value: unknown, path: string): Json {
  const field = path === '' ? 'body' : path;
  if (!isPlainObject(value)) throw invalidArgument(field, 'must be an object of string values');
  const entries = Object.entries(value);
  if (s.maxProperties !== undefined && entries.length > s.maxProperties)
    throw invalidArgument(field, `must have at most ${s.maxProperties} entries`);
  const [keyPattern, valueSchema] = Object.entries(s.patternProperties ?? {})[0] ?? [];
  const out: Json = {};
  for (const [k, v] of entries) {
    if (keyPattern !== undefined && !regex(keyPattern).test(k))
      throw invalidArgument(`${field}.${k}`, s['x-key-error'] ?? `keys must match ${keyPattern}`);
    out[k] = valueSchema === undefined ? v : walk(valueSchema, v, `${field}.${k}`);
  }
  return out;
}

function array(s: SchemaNode, value: unknown, path: string): unknown[] {
  const field = path === '' ? 'body' : path;
  const ofStrings = s.items?.type === 'string' && s.items.enum === undefined;
  if (!Array.isArray(value))
    throw invalidArgument(field, ofStrings ? 'must be an array of strings' : 'must be an array');
  if (s.maxItems !== undefined && value.length > s.maxItems)
    throw invalidArgument(field, `must have at most ${s.maxItems} items`);
  return value.map((item, i) => (s.items ? walk(s.items, item, `${field}[${i}]`) : item));
}

function string(s: SchemaNode, value: unknown, field: string): string {
  if (typeof value !== 'string') throw invalidArgument(field, 'must be a string');
  if (value.includes('\0')) throw invalidArgument(field, 'must not contain NUL characters');
  if (s.minLength !== undefined && value.length < s.minLength)
    throw invalidArgument(
      field,
      s.minLength === 1 ? 'must not be empty' : `must be at least ${s.minLength} characters`,
    );
  if (s.maxLength !== undefined && value.length > s.maxLength)
    throw invalidArgument(field, `must be at most ${s.maxLength} characters`);
  if (s.pattern !== undefined && !regex(s.pattern).test(value))
    throw invalidArgument(field, s['x-error'] ?? `must match ${s.pattern}`);
  return value;
}

function number(s: SchemaNode, value: unknown, field: string): number {
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    (s.type === 'integer' && !Number.isInteger(value))
  )
    throw invalidArgument(field, s.type === 'integer' ? 'must be an integer' : 'must be a number');
  const { minimum: min, maximum: max } = s;
  if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
    if (min !== undefined && max !== undefined)
      throw invalidArgument(field, `must be between ${min} and ${max}`);
    throw invalidArgument(field, min !== undefined ? `must be at least ${min}` : `must be at most ${max}`);
  }
  return value;
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** The first branch that accepts the value; else the error of the branch of the value's type. */
function anyOf(s: SchemaNode, value: unknown, path: string): unknown {
  const branches = s.anyOf ?? [];
  let first: unknown;
  const type = jsonType(value);
  for (const branch of branches) {
    try {
      return walk(branch, value, path);
    } catch (err) {
      const branchType = branch.enum ? 'string' : branch.type;
      const fits = branchType === type || (branchType === 'number' && type === 'integer');
      if (first === undefined && fits) first = err;
    }
  }
  if (first !== undefined) throw first;
  const kinds = branches.map((b) => (b.enum ? 'string' : (b.type ?? 'value')));
  throw invalidArgument(path === '' ? 'body' : path, `must be ${[...new Set(kinds)].join(' or ')}`);
}

/** Query parameters as JSON values for {@link check}: integers and booleans from their text. */
export function queryValues(
  params: URLSearchParams,
  schema: TSchema,
  opts: { repeated?: readonly string[] } = {},
): Json {
  const props = (schema as unknown as SchemaNode).properties ?? {};
  const out: Json = {};
  for (const [key, raw] of params) {
    const prop = props[key];
    if (prop === undefined)
      throw invalidArgument(key, `unknown query parameter; known: ${Object.keys(props).join(', ')}`);
    if (key in out && !opts.repeated?.includes(key)) throw invalidArgument(key, 'is given more than once');
    const type = prop.type;
    let value: unknown = raw;
    if (type === 'integer' || type === 'number') {
      if (!/^\d{1,16}$/.test(raw))
        throw invalidArgument(key, `must be a non-negative integer, got "${raw.slice(0, 40)}"`);
      value = Number(raw);
    } else if (type === 'boolean') {
      if (!['true', 'false', '1', '0'].includes(raw))
        throw invalidArgument(key, `must be true, false, 1 or 0, got "${raw.slice(0, 40)}"`);
      value = raw === 'true' || raw === '1';
    } else if (type === 'array') {
      value = [...((out[key] as unknown[] | undefined) ?? []), raw];
    }
    out[key] = value;
  }
  return out;
}
