/**
 * The SDK's side of the contract: its camelCase types are derived from the protocol's schemas
 * (`FromWire`), and one converter, driven by the same schemas, turns wire values into SDK values
 * and back. What it knows from a schema: object properties are renamed (`memory_mb` ↔ `memoryMb`),
 * maps whose keys the user chose (envs, metadata, headers, an event's data) keep their keys, and
 * date-time strings become `Date`s. Fields a schema does not name yet keep their values under the
 * camelCased name, so a newer server's additions reach callers.
 */
import type { Kind, OptionalKind, Static, TDateTime, TProperties, TSchema } from '@nullspace/protocol';

/** `memory_mb` → `memoryMb`, at the type level. */
export type CamelKey<K extends string> = K extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<CamelKey<Tail>>}`
  : K;

type OptionalKeys<P extends TProperties> = {
  [K in keyof P]: P[K] extends { [OptionalKind]: 'Optional' } ? K : never;
}[keyof P];
type RequiredKeys<P extends TProperties> = Exclude<keyof P, OptionalKeys<P>>;
type Flatten<T> = { [K in keyof T]: T[K] };

type ObjectFromWire<P extends TProperties> = Flatten<
  { -readonly [K in RequiredKeys<P> as CamelKey<K & string>]: FromWire<P[K]> } & {
    -readonly [K in OptionalKeys<P> as CamelKey<K & string>]?: FromWire<P[K]>;
  }
>;

/**
 * The SDK's type of a wire schema: keys camelCased, date-times as `Date`, user-keyed maps as
 * they are. Schemas are told apart by their TypeBox kind.
 */
export type FromWire<S> = S extends TDateTime
  ? Date
  : S extends { [Kind]: 'Object'; properties: infer P extends TProperties }
    ? ObjectFromWire<P>
    : S extends { [Kind]: 'Array'; items: infer I }
      ? FromWire<I>[]
      : S extends { [Kind]: 'Union'; anyOf: infer U extends readonly unknown[] }
        ? FromWire<U[number]>
        : S extends { [Kind]: 'Null' }
          ? null
          : S extends TSchema
            ? Static<S>
            : never;

/** The JSON Schema keywords the converter reads. */
interface Node {
  type?: string;
  format?: string;
  properties?: Record<string, Node>;
  required?: string[];
  patternProperties?: Record<string, Node>;
  items?: Node;
  anyOf?: Node[];
}

type Json = Record<string, unknown>;

export function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Date) return 'string';
  if (typeof value === 'number') return 'number';
  return typeof value;
}

/** The branch of a union a value belongs to: its JSON type, and for objects their required keys. */
function branchOf(node: Node, value: unknown, dir: 'in' | 'out'): Node | undefined {
  const type = jsonType(value);
  return node.anyOf?.find((b) => {
    const bt = b.type === 'integer' ? 'number' : b.type;
    if (bt !== undefined && bt !== type) return false;
    if (!isObject(value) || b.properties === undefined) return true;
    return (b.required ?? []).every((k) => (dir === 'in' ? k : camelCase(k)) in value);
  });
}

function convert(node: Node | undefined, value: unknown, dir: 'in' | 'out'): unknown {
  if (node === undefined || value === null || value === undefined) return value;
  if (node.anyOf) return convert(branchOf(node, value, dir), value, dir);
  if (node.format === 'date-time') {
    if (dir === 'out') return value instanceof Date ? value.toISOString() : value;
    if (typeof value !== 'string') return value;
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? value : date;
  }
  if (Array.isArray(value)) return value.map((v) => convert(node.items, v, dir));
  if (!isObject(value)) return value;
  if (node.properties === undefined) {
    // A map: the keys are the user's.
    const valueNode = Object.values(node.patternProperties ?? {})[0];
    const out: Json = {};
    for (const [k, v] of Object.entries(value)) out[k] = convert(valueNode, v, dir);
    return out;
  }
  const out: Json = {};
  if (dir === 'in') {
    for (const [k, v] of Object.entries(value)) {
      const prop = node.properties[k];
      out[camelCase(k)] = convert(prop, v, dir);
    }
    return out;
  }
  const wireName = new Map(Object.keys(node.properties).map((k) => [camelCase(k), k]));
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    const wire = wireName.get(k);
    if (wire !== undefined) out[wire] = convert(node.properties[wire], v, dir);
    else out[snakeCase(k)] = v;
  }
  return out;
}

/** A wire value (snake_case JSON) as the SDK's value of `schema`. */
export function fromWire<S extends TSchema>(schema: S, value: unknown): FromWire<S> {
  return convert(schema as unknown as Node, value, 'in') as FromWire<S>;
}

/**
 * An SDK value back in the wire's shape, given the schema protocol describes it with (what the
 * HTTP API answers; what the CLI's `--json` prints): keys snake_case again, `Date`s as ISO
 * strings, user-keyed maps untouched.
 *
 * @example
 * ```ts
 * import { ProcessInfoSchema } from '@nullspace/protocol';
 * const [p] = await machine.commands.list();
 * console.log(JSON.stringify(toWire(ProcessInfoSchema, p))); // {"pid":17,"exit_code":0,...}
 * ```
 */
export function toWire<S extends TSchema>(schema: S, value: unknown): Static<S> {
  return convert(schema as unknown as Node, value, 'out') as Static<S>;
}

/**
 * A request body from SDK options: the fields `schema` names, renamed, dates as ISO strings;
 * options it does not name (connection options, callbacks) stay behind, and fields left undefined
 * are left out. Inside those fields nothing is dropped: a misspelt nested key reaches the server,
 * which refuses it by name.
 */
export function requestBody<S extends TSchema>(schema: S, options: object): Static<S> {
  const node = schema as unknown as Node;
  const out: Json = {};
  for (const [wire, prop] of Object.entries(node.properties ?? {})) {
    const value = (options as Json)[camelCase(wire)];
    if (value !== undefined) out[wire] = convert(prop, value, 'out');
  }
  return out as Static<S>;
}
