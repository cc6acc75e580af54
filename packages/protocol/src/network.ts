import { invalidArgument } from './errors.js';
import { expectObject, optionalInteger, optionalString, rejectUnknownKeys } from './validate.js';

/**
 * The egress policy of a machine (`network` on create, `PUT /v1/machines/{id}/network`): IPv4
 * only. Deny wins over allow; `custom` without `allow_cidrs` allows all but `deny_cidrs`. Private
 * ranges, the host and other machines are reachable only when an allow rule names them.
 */
export interface EgressRateLimit {
  kbit_per_sec?: number;
  pps?: number;
  burst?: number;
}

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

export const EGRESS_MODES = ['allow_all', 'deny_all', 'custom'] as const;

export const NETWORK_LIMITS = {
  maxCidrs: 256,
  kbitPerSec: { min: 8, max: 100_000_000 },
  pps: { min: 1, max: 100_000_000 },
  burst: { min: 1, max: 1_000_000_000 },
} as const;

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

function cidrList(obj: Record<string, unknown>, key: string, prefix: string): string[] {
  const v = obj[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidArgument(prefix + key, 'must be an array of IPv4 CIDRs');
  if (v.length > NETWORK_LIMITS.maxCidrs)
    throw invalidArgument(prefix + key, `must have at most ${NETWORK_LIMITS.maxCidrs} items`);
  return [...new Set(v.map((c, i) => parseCidr(c, `${prefix}${key}[${i}]`)))];
}

function parseRateLimit(raw: unknown, field: string): EgressRateLimit {
  const obj = expectObject(raw, field);
  const p = `${field}.`;
  rejectUnknownKeys(obj, ['kbit_per_sec', 'pps', 'burst'], p);
  const kbit = optionalInteger(
    obj,
    'kbit_per_sec',
    NETWORK_LIMITS.kbitPerSec.min,
    NETWORK_LIMITS.kbitPerSec.max,
    p,
  );
  const pps = optionalInteger(obj, 'pps', NETWORK_LIMITS.pps.min, NETWORK_LIMITS.pps.max, p);
  const burst = optionalInteger(obj, 'burst', NETWORK_LIMITS.burst.min, NETWORK_LIMITS.burst.max, p);
  if (kbit !== undefined && pps !== undefined)
    throw invalidArgument(field, 'give kbit_per_sec or pps, not both');
  if (kbit === undefined && pps === undefined) throw invalidArgument(field, 'needs kbit_per_sec or pps');
  return {
    ...(kbit !== undefined ? { kbit_per_sec: kbit } : { pps }),
    ...(burst !== undefined ? { burst } : {}),
  };
}

/** The `egress` object. */
export function parseEgress(raw: unknown, field = 'network.egress'): EgressSpec {
  const obj = expectObject(raw, field);
  const p = `${field}.`;
  rejectUnknownKeys(obj, ['mode', 'allow_cidrs', 'deny_cidrs', 'rate_limit'], p);
  const mode = obj.mode;
  if (typeof mode !== 'string' || !(EGRESS_MODES as readonly string[]).includes(mode))
    throw invalidArgument(`${p}mode`, `must be one of ${EGRESS_MODES.join(', ')}`);
  const allow = cidrList(obj, 'allow_cidrs', p);
  const deny = cidrList(obj, 'deny_cidrs', p);
  if (mode !== 'custom' && (allow.length > 0 || deny.length > 0))
    throw invalidArgument(`${p}mode`, 'allow_cidrs and deny_cidrs need mode "custom"');
  const spec: EgressSpec = {
    mode: mode as EgressSpec['mode'],
    allow_cidrs: allow,
    deny_cidrs: deny,
    locked: false,
  };
  if (obj.rate_limit !== undefined && obj.rate_limit !== null) {
    if (mode === 'deny_all') throw invalidArgument(`${p}rate_limit`, 'means nothing with mode "deny_all"');
    spec.rate_limit = parseRateLimit(obj.rate_limit, `${p}rate_limit`);
  }
  return spec;
}

/** The `network` object (`egress`, `mask_request_host`); errors name fields under `field`. */
export function parseNetworkObject(raw: unknown, field: string): NetworkSpec {
  const net = expectObject(raw, field);
  const p = field ? `${field}.` : '';
  rejectUnknownKeys(net, ['egress', 'mask_request_host'], p);
  const spec: NetworkSpec = {
    egress:
      net.egress === undefined || net.egress === null
        ? { mode: 'allow_all', allow_cidrs: [], deny_cidrs: [], locked: false }
        : parseEgress(net.egress, `${p}egress`),
  };
  const mask = optionalString(net, 'mask_request_host', {
    max: 255,
    pattern: /^[A-Za-z0-9.-]+(:(\d{1,5}|\$\{PORT\}))?$/,
    patternHelp: 'must be a host[:port] such as "localhost:${PORT}"',
    prefix: p,
  });
  if (mask !== undefined) spec.mask_request_host = mask;
  return spec;
}

/**
 * The network fields of a create request (or the body of `PUT .../network`): `network` with
 * `egress` and `mask_request_host`, or the legacy `internet_access` / `allow_out` / `deny_out`
 * (not both kinds). Undefined when none is given (the server's default applies).
 */
export function parseNetworkFields(obj: Record<string, unknown>): NetworkSpec | undefined {
  const legacy = ['internet_access', 'allow_out', 'deny_out'].filter(
    (k) => obj[k] !== undefined && obj[k] !== null,
  );
  const hasNetwork = obj.network !== undefined && obj.network !== null;
  if (hasNetwork && legacy.length > 0)
    throw invalidArgument(
      legacy[0] as string,
      'cannot be combined with network; give network.egress instead',
    );
  if (hasNetwork) return parseNetworkObject(obj.network, 'network');
  if (legacy.length === 0) return undefined;
  const access = obj.internet_access;
  if (access !== undefined && access !== null && typeof access !== 'boolean')
    throw invalidArgument('internet_access', 'must be a boolean');
  const allow = cidrList(obj, 'allow_out', '');
  const deny = cidrList(obj, 'deny_out', '');
  if (access === false)
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
