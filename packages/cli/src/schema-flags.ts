/**
 * Flags that set fields of a request, derived from the contract's schemas: a flag's help (what
 * the field is, its default, its choices, its limits) and its parse option come from the field's
 * JSON Schema, so the CLI's help says what the server accepts. Only the CLI's own syntax (a
 * `KEY=VALUE` pair, a metavar) is written here.
 */
import type { TObject } from '@nullspace/protocol';
import type { OptionSpec } from './args.js';

/** The JSON Schema keywords the help reads. */
interface FieldSchema {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: readonly string[];
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  properties?: Record<string, FieldSchema>;
  anyOf?: readonly FieldSchema[];
}

/** A flag that sets one field of a request. */
export interface SchemaFlag {
  /** The field, e.g. `memory_mb`, or a path into nested objects: `ready_check.port`. */
  field: string;
  /** The flag's name; default: the field's last part with `-` for `_`. */
  name?: string;
  short?: string;
  /** Shown after the flag; default `N` for numbers, `VALUE` for strings, nothing for booleans. */
  metavar?: string;
  /** Said instead of the field's description (when the CLI's syntax needs its own words). */
  help?: string;
  /** The flag sets the field to false (`--ignore-case` for `case_sensitive`). */
  negate?: boolean;
}

/** Where help text starts, and where it wraps. */
const HELP_COLUMN = 27;
const WIDTH = 100;

/** The schema of a field (a path through nested objects), `null` branches of a union left out. */
export function fieldSchema(schema: TObject, path: string): FieldSchema {
  let node: FieldSchema = schema as unknown as FieldSchema;
  for (const part of path.split('.')) {
    node = unwrap(node);
    const next = node.properties?.[part];
    if (next === undefined) throw new Error(`schema-flags: no field ${path}`);
    node = next;
  }
  return unwrap(node);
}

function unwrap(node: FieldSchema): FieldSchema {
  const branches = node.anyOf?.filter((b) => b.type !== 'null');
  if (branches?.length !== 1 || branches[0] === undefined) return node;
  return { ...branches[0], ...(node.description === undefined ? {} : { description: node.description }) };
}

/** The values a field accepts, when they are a fixed set. */
export function choices(schema: TObject, path: string): readonly string[] {
  const values = fieldSchema(schema, path).enum;
  if (values === undefined) throw new Error(`schema-flags: ${path} is not an enum`);
  return values;
}

function flagName(f: SchemaFlag): string {
  return f.name ?? (f.field.split('.').pop() ?? f.field).replace(/_/g, '-');
}

function details(node: FieldSchema, negate: boolean): string[] {
  const out: string[] = [];
  const item = node.type === 'array' ? (node as { items?: FieldSchema }).items : undefined;
  const enumValues = node.enum ?? item?.enum;
  if (enumValues) out.push(`one of ${enumValues.join(', ')}`);
  if (node.default !== undefined && !negate && node.type !== 'boolean')
    out.push(`default: ${typeof node.default === 'string' ? node.default : JSON.stringify(node.default)}`);
  if (node.minimum !== undefined && node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER)
    out.push(`${node.minimum} to ${node.maximum}`);
  else if (node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER)
    out.push(`at most ${node.maximum}`);
  if (node.type === 'array' || node.type === 'object') out.push('repeatable');
  return out;
}

/** One help line (wrapped): `  --name METAVAR          what it is (default: ...; 1 to 64)`. */
function helpLine(f: SchemaFlag, node: FieldSchema): string {
  const boolean = node.type === 'boolean';
  const metavar =
    f.metavar ?? (boolean ? '' : node.type === 'integer' || node.type === 'number' ? 'N' : 'VALUE');
  const head = `  ${f.short ? `-${f.short}, ` : ''}--${flagName(f)}${metavar ? ` ${metavar}` : ''}`;
  const raw = (f.help ?? node.description ?? '').replace(/`/g, '').replace(/\.$/, '');
  // Help reads as the rest of the CLI's: lower case, unless the first word is an acronym (TCP).
  const acronym = /^\S*[A-Z]\S*[A-Z]/.test(raw);
  const text = acronym ? raw : raw.charAt(0).toLowerCase() + raw.slice(1);
  const extra = details(node, f.negate === true);
  const sentence = extra.length === 0 ? text : `${text} (${extra.join('; ')})`;
  const words = sentence.split(' ');
  const lines: string[] = [];
  let line = head.length + 2 > HELP_COLUMN ? `${head}  ` : head.padEnd(HELP_COLUMN);
  let fresh = true;
  for (const word of words) {
    if (!fresh && line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = ' '.repeat(HELP_COLUMN);
      fresh = true;
    }
    line += fresh ? word : ` ${word}`;
    fresh = false;
  }
  lines.push(line);
  return lines.map((l) => l.trimEnd()).join('\n');
}

/**
 * The parse options and the help lines of flags that set fields of `schema`. Booleans are plain
 * switches; arrays and maps repeat; everything else takes a value (checked by the server, and
 * integers by the command).
 */
export function schemaFlags(
  schema: TObject,
  flags: readonly SchemaFlag[],
): { options: OptionSpec; help: string } {
  const options: OptionSpec = {};
  const help: string[] = [];
  for (const f of flags) {
    const node = fieldSchema(schema, f.field);
    const repeat = node.type === 'array' || node.type === 'object';
    options[flagName(f)] = {
      type: node.type === 'boolean' ? 'boolean' : 'string',
      ...(repeat ? { multiple: true } : {}),
      ...(f.short ? { short: f.short } : {}),
    };
    help.push(helpLine(f, node));
  }
  return { options, help: help.join('\n') };
}
