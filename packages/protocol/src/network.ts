import { invalidArgument } from './errors.js';
import { check } from './schema/check.js';
import { Nullable, Pattern, type Static, Strict, StringEnum, Type, named } from './schema/kit.js';
import { expectObject } from './validate.js';

/**
 * The egress policy of a machine (`network` on create, `PUT /v1/machines/{id}/network`): IPv4
 * only. Deny wins over allow; `custom` without `allow_cidrs` allows all but `deny_cidrs`. Private
 * ranges, the host and other machines are reachable only when an allow rule names them.
 */
export const EGRESS_MODES = ['allow_all', 'deny_all', 'custom'] as const;

export const NETWORK_LIMITS = {
  maxCidrs: 256,
  kbitPerSec: { min: 8, max: 100_000_000 },
  pps: { min: 1, max: 100_000_000 },
  burst: { min: 1, max: 1_000_000_000 },
} as const;

// ---- schemas ----------------------------------------------------------------------------------

const CidrList = (description: string) =>
  Type.Array(Type.String({ maxLength: 64 }), { maxItems: NETWORK_LIMITS.maxCidrs, description });

export const EgressRateLimitSchema = named(
  'EgressRateLimit',
  Strict(
    {
      kbit_per_sec: Type.Optional(
        Type.Integer({
          minimum: NETWORK_LIMITS.kbitPerSec.min,
          maximum: NETWORK_LIMITS.kbitPerSec.max,
          description: 'Shape outbound traffic to this many kilobits per second.',
        }),
      ),
      pps: Type.Optional(
        Type.Integer({
          minimum: NETWORK_LIMITS.pps.min,
          maximum: NETWORK_LIMITS.pps.max,
          description: '... or to this many packets per second.',
        }),
      ),
      burst: Type.Optional(
        Type.Integer({
          minimum: NETWORK_LIMITS.burst.min,
          maximum: NETWORK_LIMITS.burst.max,
          description: 'Burst of the rate limit (kilobits with kbit_per_sec, packets with pps).',
        }),
      ),
    },
    { description: 'Best-effort shaping of outbound traffic: one of kbit_per_sec or pps.' },
  ),
);
export type EgressRateLimit = Static<typeof EgressRateLimitSchema>;

/** The `egress` object of a request. */
export const EgressBodySchema = named(
  'EgressRequest',
  Strict(
    {
      mode: StringEnum(EGRESS_MODES, {
        description: 'allow_all (public addresses), deny_all, or custom (allow_cidrs / deny_cidrs).',
      }),
      allow_cidrs: Type.Optional(CidrList('With custom: only these IPv4 ranges (a bare address is a /32).')),
      deny_cidrs: Type.Optional(CidrList('With custom: never these ranges; deny wins over allow.')),
      rate_limit: Type.Optional(EgressRateLimitSchema),
    },
    { description: 'Outbound traffic policy. IPv4 only; deny wins over allow.' },
  ),
);

/** The `network` object of a create request, and the body of `PUT .../network`. */
export const NetworkBodySchema = named(
  'NetworkRequest',
  Strict(
    {
      egress: Type.Optional(EgressBodySchema),
      mask_request_host: Type.Optional(
        Pattern(
          /^[A-Za-z0-9.-]+(:(\d{1,5}|\$\{PORT\}))?$/,
          'must be a host[:port] such as "localhost:${PORT}"',
          {
            maxLength: 255,
            description: 'Host header preview requests reach the service with, e.g. `localhost:${PORT}`.',
          },
        ),
      ),
    },
    { description: 'Egress policy and preview Host rewriting (default: egress allow_all).' },
  ),
);
export type NetworkBody = Static<typeof NetworkBodySchema>;

/** The legacy network fields of a create request (and of `PUT .../network`). */
export const LEGACY_NETWORK_PROPERTIES = {
  internet_access: Type.Optional(
    Type.Boolean({
      description: 'Legacy: false denies all egress, fail closed; no allow rule re-opens it.',
    }),
  ),
  allow_out: Type.Optional(CidrList('Legacy: IPv4 ranges the machine may reach (a custom policy).')),
  deny_out: Type.Optional(CidrList('Legacy: IPv4 ranges the machine may not reach.')),
};
export const LegacyNetworkBodySchema = named(
  'LegacyNetworkRequest',
  Strict(LEGACY_NETWORK_PROPERTIES, { description: 'The legacy form: it cannot set a rate limit.' }),
);

/** `PUT /v1/machines/{id}/network`: the policy form (`egress` required) or the legacy form. */
export const SetNetworkBodySchema = Type.Union([
  Type.Composite([NetworkBodySchema, Strict({ egress: EgressBodySchema })], { additionalProperties: false }),
  LegacyNetworkBodySchema,
]);

/** The egress policy in force, as machine info reports it: every field present. */
export const EgressPolicySchema = named(
  'EgressPolicy',
  Type.Object({
    mode: StringEnum(EGRESS_MODES),
    allow_cidrs: Type.Array(Type.String(), { description: 'Canonical CIDRs (host bits cleared).' }),
    deny_cidrs: Type.Array(Type.String()),
    rate_limit: Nullable(EgressRateLimitSchema),
  }),
);
export type EgressPolicy = Static<typeof EgressPolicySchema>;

/** `network` in machine info: the policy in force, and the machine's address on its link. */
export const NetworkInfoSchema = named(
  'NetworkInfo',
  Type.Object({
    egress: EgressPolicySchema,
    internet_access: Type.Boolean({
      description: 'False when the legacy `internet_access: false` locked the machine to deny-all.',
    }),
    mask_request_host: Nullable(Type.String()),
    address: Nullable(Type.String(), {
      description: "The machine's IPv4 address on its private link to the host (null until it first starts).",
    }),
  }),
);
export type NetworkInfo = Static<typeof NetworkInfoSchema>;

// ---- parsed forms -----------------------------------------------------------------------------

export interface EgressSpec {
  mode: 'allow_all' | 'deny_all' | 'custom';
  allow_cidrs: string[];
  deny_cidrs: string[];
  rate_limit?: EgressRateLimit;
  /**
   * Legacy `internet_access: false`: deny everything; no allow rule given with it (`allow_out`)
   * re-opens it. A later `PUT .../network` replaces the whole policy, this lock included: that is
   * an explicit new policy, not a stray rule.
   */
  locked: boolean;
}

export interface NetworkSpec {
  egress: EgressSpec;
  /** The Host header a preview request is rewritten to (`localhost:${PORT}` style), if any. */
  mask_request_host?: string;
}

/** The ranges a machine never reaches unless an allow rule names them (besides the host itself). */
export const NON_PUBLIC_CIDRS = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
] as const;

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** `a.b.c.d` → a 32-bit number, or undefined. */
export function ipv4ToNumber(ip: string): number | undefined {
  const m = IPV4.exec(ip);
  if (!m) return undefined;
  let n = 0;
  for (const part of m.slice(1)) {
    if (part.length > 1 && part.startsWith('0')) return undefined; // no octal look-alikes
    const v = Number(part);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * Parses an IPv4 CIDR (`10.0.0.0/8`; a bare address is a /32) to its canonical form, host bits
 * cleared: `10.1.2.3/8` → `10.0.0.0/8`. IPv6 is refused by name.
 */
export function parseCidr(raw: unknown, field: string): string {
  if (typeof raw !== 'string') throw invalidArgument(field, 'must be a string such as "10.0.0.0/8"');
  if (raw.includes(':'))
    throw invalidArgument(field, `"${raw.slice(0, 64)}": IPv6 is not supported (IPv4 only)`);
  const [addr = '', bits, ...rest] = raw.split('/');
  const n = ipv4ToNumber(addr);
  const prefix = bits === undefined ? 32 : /^\d{1,2}$/.test(bits) ? Number(bits) : Number.NaN;
  if (n === undefined || rest.length > 0 || !(prefix >= 0 && prefix <= 32))
    throw invalidArgument(field, `"${raw.slice(0, 64)}" is not an IPv4 address or CIDR such as "10.0.0.0/8"`);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return `${numberToIpv4((n & mask) >>> 0)}/${prefix}`;
}

function cidrs(list: readonly string[] | undefined, field: string): string[] {
  return [...new Set((list ?? []).map((c, i) => parseCidr(c, `${field}[${i}]`)))];
}

/** The rules the schema cannot say: one of kbit_per_sec or pps. */
function rateLimit(r: EgressRateLimit, field: string): EgressRateLimit {
  if (r.kbit_per_sec !== undefined && r.pps !== undefined)
    throw invalidArgument(field, 'give kbit_per_sec or pps, not both');
  if (r.kbit_per_sec === undefined && r.pps === undefined)
    throw invalidArgument(field, 'needs kbit_per_sec or pps');
  return {
    ...(r.kbit_per_sec !== undefined ? { kbit_per_sec: r.kbit_per_sec } : { pps: r.pps }),
    ...(r.burst !== undefined ? { burst: r.burst } : {}),
  };
}

/** A checked `egress` object to its parsed form (CIDRs canonical, cross-field rules applied). */
function egressSpec(e: Static<typeof EgressBodySchema>, field: string): EgressSpec {
  const p = `${field}.`;
  const allow = cidrs(e.allow_cidrs, `${p}allow_cidrs`);
  const deny = cidrs(e.deny_cidrs, `${p}deny_cidrs`);
  if (e.mode !== 'custom' && (allow.length > 0 || deny.length > 0))
    throw invalidArgument(`${p}mode`, 'allow_cidrs and deny_cidrs need mode "custom"');
  const spec: EgressSpec = { mode: e.mode, allow_cidrs: allow, deny_cidrs: deny, locked: false };
  if (e.rate_limit !== undefined) {
    if (e.mode === 'deny_all') throw invalidArgument(`${p}rate_limit`, 'means nothing with mode "deny_all"');
    spec.rate_limit = rateLimit(e.rate_limit, `${p}rate_limit`);
  }
  return spec;
}

/** The `egress` object. */
export function parseEgress(raw: unknown, field = 'network.egress'): EgressSpec {
  return egressSpec(check(EgressBodySchema, raw, field), field);
}

/** The `network` object (`egress`, `mask_request_host`); errors name fields under `field`. */
export function parseNetworkObject(raw: unknown, field: string): NetworkSpec {
  const net = check(NetworkBodySchema, raw, field);
  const p = field ? `${field}.` : '';
  const spec: NetworkSpec = {
    egress:
      net.egress === undefined
        ? { mode: 'allow_all', allow_cidrs: [], deny_cidrs: [], locked: false }
        : egressSpec(net.egress, `${p}egress`),
  };
  if (net.mask_request_host !== undefined) spec.mask_request_host = net.mask_request_host;
  return spec;
}

const LEGACY_FIELDS = Object.keys(LEGACY_NETWORK_PROPERTIES) as (keyof typeof LEGACY_NETWORK_PROPERTIES)[];

/**
 * The network fields of a create request (or of `PUT .../network`): `network` with
 * `egress` and `mask_request_host`, or the legacy `internet_access` / `allow_out` / `deny_out`
 * (not both kinds). Undefined when none is given (the server's default applies).
 */
export function parseNetworkFields(obj: Record<string, unknown>): NetworkSpec | undefined {
  const legacy = LEGACY_FIELDS.filter((k) => obj[k] !== undefined && obj[k] !== null);
  const hasNetwork = obj.network !== undefined && obj.network !== null;
  if (hasNetwork && legacy.length > 0)
    throw invalidArgument(
      legacy[0] as string,
      'cannot be combined with network; give network.egress instead',
    );
  if (hasNetwork) return parseNetworkObject(obj.network, 'network');
  if (legacy.length === 0) return undefined;
  const l = check(LegacyNetworkBodySchema, {
    internet_access: obj.internet_access,
    allow_out: obj.allow_out,
    deny_out: obj.deny_out,
  });
  const allow = cidrs(l.allow_out, 'allow_out');
  const deny = cidrs(l.deny_out, 'deny_out');
  if (l.internet_access === false)
    // Fail closed: nothing is allowed, whatever allow_out says.
    return { egress: { mode: 'deny_all', allow_cidrs: [], deny_cidrs: [], locked: true } };
  return {
    egress: {
      mode: allow.length > 0 || deny.length > 0 ? 'custom' : 'allow_all',
      allow_cidrs: allow,
      deny_cidrs: deny,
      locked: false,
    },
  };
}

/**
 * The body of `PUT /v1/machines/{id}/network`: the `network` object of create (`egress`,
 * `mask_request_host`), or the legacy `internet_access` / `allow_out` / `deny_out`.
 */
export function parseSetNetwork(body: unknown): NetworkSpec {
  const raw = expectObject(body, 'body');
  const legacy = LEGACY_FIELDS.filter((k) => raw[k] !== undefined && raw[k] !== null);
  if (legacy.length === 0) {
    // Replacing the policy with nothing named would open the machine: say what to give instead.
    if (raw.egress === undefined || raw.egress === null)
      throw invalidArgument('egress', 'is required (or the legacy internet_access, allow_out, deny_out)');
    return parseNetworkObject(raw, '');
  }
  // Only legacy fields may be given here; they cannot name a rate limit or a Host rewrite.
  return parseNetworkFields(check(LegacyNetworkBodySchema, raw)) as NetworkSpec;
}
