/**
 * Values for the fuzzed edge (fuzz-edge.test.ts), generated from the request schemas of the route
 * table: `valid(schema)` gives values the schema accepts (boundaries included), `invalid(schema)`
 * values it refuses by construction (wrong types, out of range, too long, NUL, unknown or missing
 * fields, keys and strings off their patterns), each labelled with what is wrong. The generator reads
 * the same JSON Schema keywords the server's validator (protocol's `schema/check.ts`) reads, but
 * it is its own reading of them, so a validator that disagrees with its schema shows up.
 */
import fc from 'fast-check';

/** The JSON Schema keywords the contract's request schemas use (a schema is a plain object). */
export interface Node {
  type?: string;
  enum?: readonly string[];
  const?: unknown;
  properties?: Record<string, Node>;
  required?: readonly string[];
  additionalProperties?: boolean | Node;
  patternProperties?: Record<string, Node>;
  maxProperties?: number;
  items?: Node;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  anyOf?: readonly Node[];
}

/** A generated value that the schema refuses, and why (printed with a failing case). */
export interface Invalid {
  value: unknown;
  why: string;
}

/**
 * What a field's value may be beyond its schema. `real`: values of resources the test made (a
 * machine's template, a volume's name), mixed into the valid ones so valid requests reach them.
 * `tame`: the valid values of a field whose whole range would make a request take long or reach
 * outside the test's scratch space (a long poll's wait, a path a DELETE removes); boundary values
 * within the tamed range are still generated.
 */
export interface Hooks {
  real?: (name: string) => readonly unknown[] | undefined;
  tame?: (name: string, node: Node) => fc.Arbitrary<unknown> | undefined;
}

/** Strings longer than this are made by repeating a character, not by the generator. */
const BIG = 4096;
/** Strings past a limit this large are capped at the limit plus a little (a body is ≤ 48 MiB). */
const HUGE = 1024 * 1024;

const patternArbs = new Map<string, fc.Arbitrary<string>>();

/**
 * Strings matching `source` (with the `u` flag, as the validator compiles it). fast-check cannot
 * generate from lookaheads, so they are left out of the generator and checked as a filter.
 */
export function matching(source: string): fc.Arbitrary<string> {
  let arb = patternArbs.get(source);
  if (arb !== undefined) return arb;
  const re = new RegExp(source, 'u');
  const stripped = withoutLookarounds(source);
  arb =
    stripped === source
      ? fc.stringMatching(re)
      : fc.stringMatching(new RegExp(stripped, 'u')).filter((s) => re.test(s));
  patternArbs.set(source, arb);
  return arb;
}

function withoutLookarounds(source: string): string {
  let out = '';
  for (let i = 0; i < source.length; i++) {
    if (source[i] === '\\') {
      out += source.slice(i, i + 2);
      i++;
      continue;
    }
    if (source.startsWith('(?!', i) || source.startsWith('(?=', i)) {
      let depth = 0;
      for (; i < source.length; i++) {
        if (source[i] === '\\') i++;
        else if (source[i] === '(') depth++;
        else if (source[i] === ')' && --depth === 0) break;
      }
      continue;
    }
    out += source[i];
  }
  return out;
}

/** Text of every kind: ASCII, any Unicode (astral planes, combining marks), and lone surrogates. */
export function anyText(maxLength: number): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: 'grapheme', maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.string({
      unit: fc.constantFrom('.', '/', '\\', '%', '~', '$', '\n', '\r', ' ', '"', "'", '`', '*'),
      maxLength,
    }),
  );
}

/** `length` characters, made cheaply (the generator is slow for long strings). */
function repeated(length: number, ch = 'a'): fc.Arbitrary<string> {
  return fc.constantFrom('a', 'é', '/', ch).map((c) => c.repeat(length));
}

function integerOrNumber(s: Node): fc.Arbitrary<number> {
  const min = s.minimum ?? -(2 ** 31);
  const max = s.maximum ?? 2 ** 31;
  if (s.type === 'integer') return fc.integer({ min: Math.ceil(min), max: Math.floor(max) });
  return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
}

function stringOf(s: Node, name: string): fc.Arbitrary<string> {
  const min = s.minLength ?? 0;
  const max = Math.min(s.maxLength ?? BIG, HUGE);
  if (s.format === 'date-time') return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
  if (s.pattern !== undefined) {
    const re = s.pattern;
    return matching(re).filter((v) => v.length >= min && v.length <= max && !v.includes('\0'));
  }
  const text = anyText(Math.min(max, 64)).filter((v) => v.length >= min && !v.includes('\0'));
  // The longest allowed string, once in a while (a field's byte limits may be tighter: then the
  // server answers invalid_argument, which the test accepts for a cross-field or byte rule).
  const longest = max > 64 ? [repeated(max)] : [];
  void name;
  return fc.oneof({ weight: 8, arbitrary: text }, ...longest.map((arbitrary) => ({ weight: 1, arbitrary })));
}

/** Values the schema accepts. */
export function valid(schema: unknown, hooks: Hooks = {}, name = ''): fc.Arbitrary<unknown> {
  const s = schema as Node;
  const real = hooks.real?.(name);
  const tamed = hooks.tame?.(name, s);
  const base = tamed ?? validOf(s, hooks, name);
  if (real !== undefined && real.length > 0)
    return fc.oneof({ weight: 1, arbitrary: base }, { weight: 2, arbitrary: fc.constantFrom(...real) });
  return base;
}

function validOf(s: Node, hooks: Hooks, name: string): fc.Arbitrary<unknown> {
  if (s.anyOf) return fc.oneof(...s.anyOf.map((b) => valid(b, hooks, name)));
  if (s.enum) return fc.constantFrom(...s.enum);
  if (s.const !== undefined) return fc.constant(s.const);
  switch (s.type) {
    case 'object':
      return s.properties ? objectOf(s, hooks) : mapOf(s, hooks, name);
    case 'array': {
      const item = s.items ? valid(s.items, hooks, name) : fc.jsonValue();
      return fc.array(item, { minLength: s.minItems ?? 0, maxLength: Math.min(s.maxItems ?? 8, 8) });
    }
    case 'string':
      return stringOf(s, name);
    case 'integer':
    case 'number':
      return integerOrNumber(s);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

function objectOf(s: Node, hooks: Hooks): fc.Arbitrary<Record<string, unknown>> {
  const props = s.properties ?? {};
  const required = new Set(s.required ?? []);
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [k, p] of Object.entries(props)) {
    const v = valid(p, hooks, k);
    // `null` for a field that is not required means the same as leaving it out.
    model[k] = required.has(k)
      ? v
      : fc.oneof({ weight: 6, arbitrary: v }, { weight: 1, arbitrary: fc.constant(null) });
  }
  return fc.record(model, { requiredKeys: [...required].filter((k) => k in props) });
}

function mapOf(s: Node, hooks: Hooks, name: string): fc.Arbitrary<Record<string, unknown>> {
  const [keyPattern, valueSchema] = Object.entries(s.patternProperties ?? {})[0] ?? [];
  const key =
    keyPattern === undefined
      ? fc.string({ maxLength: 20 })
      : matching(keyPattern).filter((k) => k.length <= 200);
  const value = valueSchema === undefined ? fc.jsonValue({ maxDepth: 1 }) : valid(valueSchema, hooks, name);
  return fc
    .uniqueArray(fc.tuple(key, value), {
      selector: ([k]) => k,
      maxLength: Math.min(s.maxProperties ?? 8, 8),
    })
    .map((entries) => Object.fromEntries(entries));
}

/** A value of another JSON type than every type `s` allows (none when it allows anything). */
function wrongType(s: Node): fc.Arbitrary<Invalid> | undefined {
  const allowed = new Set<string>();
  const collect = (n: Node) => {
    if (n.anyOf) for (const b of n.anyOf) collect(b);
    else if (n.enum) allowed.add('string');
    else if (n.const !== undefined) allowed.add(typeof n.const === 'number' ? 'number' : typeof n.const);
    else if (n.type === 'integer') allowed.add('integer');
    else allowed.add(n.type ?? 'any');
  };
  collect(s);
  if (allowed.has('any')) return undefined;
  const candidates: [string, fc.Arbitrary<unknown>][] = [
    ['string', anyText(12)],
    ['integer', fc.integer()],
    ['number', fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Number.isInteger(n))],
    ['boolean', fc.boolean()],
    ['array', fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 })],
    ['object', fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 })],
  ];
  // An integer is a number; a number with a fraction is not an integer (so it is a wrong type there).
  const fits = (t: string) => allowed.has(t) || (t === 'integer' && allowed.has('number'));
  const others = candidates.filter(([t]) => !fits(t));
  if (others.length === 0) return undefined;
  return fc.oneof(
    ...others.map(([t, arb]) =>
      arb.map((value) => ({ value, why: `a ${t} where ${[...allowed].join('|')} is expected` })),
    ),
  );
}

/**
 * Values the schema refuses by construction. `undefined` when there are none (a free-form value).
 * Nested: an object with one field made invalid, an array with one bad item, a map with a bad key.
 */
export function invalid(
  schema: unknown,
  hooks: Hooks = {},
  name = '',
  path = 'body',
): fc.Arbitrary<Invalid> | undefined {
  const s = schema as Node;
  const options: fc.Arbitrary<Invalid>[] = [];
  const wrong = wrongType(s);
  if (wrong) options.push(wrong.map((i) => ({ ...i, why: `${path}: ${i.why}` })));
  const add = (arb: fc.Arbitrary<unknown>, why: string) =>
    options.push(arb.map((value) => ({ value, why: `${path}: ${why}` })));
  if (s.anyOf) {
    // Only the wrong types: a bad value of one branch may be a good one of another.
  } else if (s.enum) {
    const values = s.enum;
    add(
      anyText(20).filter((v) => !values.includes(v)),
      'not one of the enum',
    );
  } else if (s.const !== undefined) {
    // the wrong types cover it
  } else if (s.type === 'string') {
    add(
      anyText(16).map((v) => `${v}\0${v}`),
      'a NUL character',
    );
    if (s.maxLength !== undefined) {
      const over = Math.min(s.maxLength + 1, HUGE + 1);
      if (over > s.maxLength) add(repeated(over), `${over} characters (max ${s.maxLength})`);
    }
    if (s.minLength !== undefined && s.minLength > 0) add(fc.constant(''), `empty (min ${s.minLength})`);
    if (s.pattern !== undefined) {
      const re = new RegExp(s.pattern, 'u');
      add(
        anyText(24).filter((v) => !re.test(v) && !v.includes('\0') && v.length <= (s.maxLength ?? BIG)),
        `off the pattern ${s.pattern}`,
      );
    }
  } else if (s.type === 'integer' || s.type === 'number') {
    if (s.minimum !== undefined) {
      const min = s.minimum;
      add(
        fc.oneof(
          fc.constant(min - 1),
          // (a filter that can never pass would spin: only below a bound that has room)
          ...(min > Number.MIN_SAFE_INTEGER + 1 ? [fc.maxSafeInteger().filter((n) => n < min)] : []),
          fc.constant(-1e300),
        ),
        `below ${min}`,
      );
    }
    if (s.maximum !== undefined) {
      const max = s.maximum;
      add(
        fc.oneof(
          fc.constant(max + 1),
          ...(max < Number.MAX_SAFE_INTEGER - 1 ? [fc.maxSafeInteger().filter((n) => n > max)] : []),
          fc.constant(1e300),
        ),
        `above ${max}`,
      );
    }
    if (s.type === 'integer') {
      const lo = s.minimum ?? -1e6;
      const hi = s.maximum ?? 1e6;
      add(
        fc.double({ min: lo, max: hi, noNaN: true }).filter((n) => !Number.isInteger(n)),
        'not an integer',
      );
    }
  } else if (s.type === 'array') {
    if (s.maxItems !== undefined) {
      const item = s.items ? valid(s.items, hooks, name) : fc.constant(1);
      add(
        fc.array(item, { minLength: s.maxItems + 1, maxLength: s.maxItems + 2 }),
        `more than ${s.maxItems} items`,
      );
    }
    if (s.minItems !== undefined && s.minItems > 0) add(fc.constant([]), `fewer than ${s.minItems} items`);
    const bad = s.items ? invalid(s.items, hooks, name, `${path}[0]`) : undefined;
    if (bad) options.push(bad.map((b) => ({ value: [b.value], why: b.why })));
  } else if (s.type === 'object' && s.properties) {
    const props = s.properties;
    const validObject = objectOf(s, hooks);
    if (s.additionalProperties === false)
      add(
        fc
          .tuple(
            validObject,
            fc
              .string({ minLength: 1, maxLength: 12 })
              .filter((k) => !Object.hasOwn(props, k) && k !== '__proto__'),
            fc.jsonValue({ maxDepth: 1 }),
          )
          .map(([o, k, v]) => ({ ...o, [k]: v })),
        'an unknown field',
      );
    for (const k of s.required ?? [])
      add(
        validObject.map((o) => {
          const { [k]: _, ...rest } = o;
          return rest;
        }),
        `without the required ${k}`,
      );
    for (const [k, p] of Object.entries(props)) {
      const bad = invalid(p, hooks, k, path === 'body' ? k : `${path}.${k}`);
      if (bad)
        options.push(
          fc.tuple(validObject, bad).map(([o, b]) => ({ value: { ...o, [k]: b.value }, why: b.why })),
        );
    }
  } else if (s.type === 'object') {
    const [keyPattern, valueSchema] = Object.entries(s.patternProperties ?? {})[0] ?? [];
    const good = mapOf(s, hooks, name);
    if (s.maxProperties !== undefined) {
      const n = s.maxProperties + 1;
      add(
        fc.constant(Object.fromEntries(Array.from({ length: n }, (_, i) => [`K${i}`, 'v']))),
        `more than ${s.maxProperties} entries`,
      );
    }
    if (keyPattern !== undefined) {
      const re = new RegExp(keyPattern, 'u');
      add(
        fc
          .tuple(
            good,
            anyText(16).filter((k) => !re.test(k) && k !== '__proto__'),
          )
          .map(([o, k]) => ({ ...o, [k]: 'v' })),
        'a key off its pattern',
      );
    }
    const bad = valueSchema ? invalid(valueSchema, hooks, name, `${path}.K`) : undefined;
    if (bad) options.push(fc.tuple(good, bad).map(([o, b]) => ({ value: { ...o, K: b.value }, why: b.why })));
  }
  if (options.length === 0) return undefined;
  return fc.oneof(...options);
}
