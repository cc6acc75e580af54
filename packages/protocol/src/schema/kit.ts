/**
 * The building blocks of the contract's schemas. Every request and response shape is one TypeBox
 * schema: a plain JSON Schema object (what OpenAPI 3.1 embeds, what the server's validator walks,
 * what the CLI reads its flag help from) whose TypeScript type is `Static<typeof schema>`.
 *
 * The few keywords of our own start with `x-` (OpenAPI allows them in schemas; JSON Schema
 * validators ignore them):
 * - `x-error`: what the server says when a string does not match its `pattern`;
 * - `x-key-error`: what it says when a key of a map does not match the map's key pattern;
 * - `x-null-means`: documents that `null` in a request is the same as leaving the field out.
 */
import {
  type SchemaOptions,
  type Static,
  type TObject,
  type TProperties,
  type TRecord,
  type TSchema,
  type TString,
  type TUnsafe,
  Type,
} from '@sinclair/typebox';

export { Type, type Static, type TSchema, type TObject, type TProperties };
export type { Kind, OptionalKind, TArray, TNull, TOptional, TRecord, TUnion } from '@sinclair/typebox';

/** Marks the schema of a date-time string, so a client can turn it into a date (type and value). */
export const DATE_TIME: unique symbol = Symbol.for('nullspace.schema.dateTime');
/** The name a schema has in the OpenAPI document (`#/components/schemas/NAME`). */
export const SCHEMA_NAME: unique symbol = Symbol.for('nullspace.schema.name');

/** An ISO 8601 date-time string on the wire (a `Date` in the SDK). */
export interface TDateTime extends TSchema {
  [DATE_TIME]: true;
  static: string;
  type: 'string';
  format: 'date-time';
}

export function DateTime(options: SchemaOptions = {}): TDateTime {
  const schema = Type.Unsafe<string>({ ...options, type: 'string', format: 'date-time' });
  return Object.assign(schema, { [DATE_TIME]: true as const }) as unknown as TDateTime;
}

/** One of a fixed set of strings (`enum` in JSON Schema, which reads better than `anyOf` consts). */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: SchemaOptions = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: [...values] });
}

/** `T` or `null`. */
export function Nullable<T extends TSchema>(schema: T, options: SchemaOptions = {}) {
  return Type.Union([schema, Type.Null()], options);
}

/** A string matching `pattern`, with the sentence the server answers when it does not. */
export function Pattern(pattern: RegExp, error: string, options: SchemaOptions = {}): TString {
  return Type.String({ ...options, pattern: pattern.source, 'x-error': error });
}

/**
 * A map whose keys the user chooses (envs, metadata, headers): keys match `key` (else `keyError`),
 * and are never renamed by a client's camelCase conversion.
 */
export function StringMap(opts: {
  key: RegExp;
  keyError: string;
  maxEntries?: number;
  maxValueLength?: number;
  description?: string;
}): TRecord<TString, TString> {
  const value = Type.String(opts.maxValueLength === undefined ? {} : { maxLength: opts.maxValueLength });
  const schema = Type.Record(Type.String({ pattern: opts.key.source }), value, {
    additionalProperties: false,
    'x-key-error': opts.keyError,
    ...(opts.maxEntries === undefined ? {} : { maxProperties: opts.maxEntries }),
    ...(opts.description === undefined ? {} : { description: opts.description }),
  });
  return schema as unknown as TRecord<TString, TString>;
}

/** A map of anything (free-form data such as an event's `data`): keys and values kept as they are. */
export function FreeMap(options: SchemaOptions = {}) {
  return Type.Record(Type.String(), Type.Unknown(), options);
}

/** An object that refuses fields it does not name (a typo is an error, never ignored). */
export function Strict<P extends TProperties>(properties: P, options: SchemaOptions = {}): TObject<P> {
  return Type.Object(properties, { ...options, additionalProperties: false });
}

/** Gives `schema` its name in the OpenAPI document; other schemas that hold it refer to it by name. */
export function named<T extends TSchema>(name: string, schema: T): T {
  return Object.assign(schema, { [SCHEMA_NAME]: name });
}

/** The wire type of a schema. */
export type Wire<T extends TSchema> = Static<T>;
