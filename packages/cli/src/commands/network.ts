/**
 * Networking commands: `machine network` (egress policy) and `machine preview` (signed preview
 * URLs, grants, proxy targets); plus the network flags `machine create` shares. `machine ssh` is in
 * ssh.ts.
 */
import {
  CreatePreviewGrantBodySchema,
  EgressBodySchema,
  LegacyNetworkBodySchema,
  ListPreviewGrantsQuerySchema,
  NetworkBodySchema,
  WaitForPreviewBodySchema,
} from '@nullspace/protocol';
import {
  type EgressPolicy,
  Machine,
  type MachineCreateOptions,
  type NetworkInfo,
  type NetworkPolicy,
  type PreviewGrant,
  machineInfoToWire,
  previewGrantToWire,
  previewProxyTargetToWire,
  previewReadinessToWire,
  previewRevocationToWire,
  previewUrlToWire,
} from '@nullspace/sdk';
import {
  type CommandInput,
  type OptionSpec,
  type OptionValues,
  type Subcommand,
  UsageError,
  commaList,
  flag,
  oneOf,
  optionalInteger,
  optionalString,
  singleId,
} from '../args.js';
import { formatKeyValue, formatTable, formatValue, printJson, relativeTime } from '../output.js';
import { choices, schemaFlags } from '../schema-flags.js';

const EGRESS_MODES = choices(EgressBodySchema, 'mode') as readonly EgressPolicy['mode'][];

const EGRESS = schemaFlags(EgressBodySchema, [
  { field: 'mode', name: 'egress', metavar: 'MODE' },
  { field: 'allow_cidrs', name: 'allow-cidr', metavar: 'CIDR' },
  { field: 'deny_cidrs', name: 'deny-cidr', metavar: 'CIDR' },
  { field: 'rate_limit.kbit_per_sec', name: 'rate-kbit' },
  { field: 'rate_limit.pps', name: 'rate-pps' },
  { field: 'rate_limit.burst', name: 'burst' },
]);
const NO_INTERNET = schemaFlags(LegacyNetworkBodySchema, [
  {
    field: 'internet_access',
    name: 'no-internet',
    negate: true,
    help: 'legacy internet_access=false: deny all, and no allow rule re-opens it',
  },
]);
const MASK = schemaFlags(NetworkBodySchema, [{ field: 'mask_request_host', metavar: 'HOST' }]);

/** The egress flags of `machine create` and `machine network`. */
export const NETWORK_OPTIONS: OptionSpec = { ...EGRESS.options, ...NO_INTERNET.options, ...MASK.options };

export const NETWORK_FLAGS_HELP = `${EGRESS.help}
                           (--allow-cidr and --deny-cidr also take comma-separated lists)
${NO_INTERNET.help}
${MASK.help}`;

const EGRESS_FLAGS = ['egress', 'allow-cidr', 'deny-cidr', 'rate-kbit', 'rate-pps', 'burst'] as const;

function given(values: OptionValues, names: readonly string[]): string[] {
  return names.filter((n) => values[n] !== undefined);
}

/**
 * The egress policy the flags describe, or undefined when none of them is given. Without
 * `--egress`, CIDR flags mean `custom`; a rate limit alone means `allowAllWithRate` (create:
 * `allow_all`, the default it shapes) or is refused (`machine network`: the whole policy is
 * replaced, so the mode must be said).
 */
function egressFromFlags(
  values: OptionValues,
  command: string,
  rateOnly: 'allow_all' | 'refuse',
): EgressPolicy | undefined {
  if (given(values, EGRESS_FLAGS).length === 0) return undefined;
  const allow = commaList(values, 'allow-cidr');
  const deny = commaList(values, 'deny-cidr');
  const kbit = optionalInteger(values, 'rate-kbit', command);
  const pps = optionalInteger(values, 'rate-pps', command);
  const burst = optionalInteger(values, 'burst', command);
  if (kbit !== undefined && pps !== undefined)
    throw new UsageError('give --rate-kbit or --rate-pps, not both', command);
  if (burst !== undefined && kbit === undefined && pps === undefined)
    throw new UsageError('--burst needs --rate-kbit or --rate-pps', command);
  let mode = oneOf(values, 'egress', EGRESS_MODES, command);
  const cidrs = allow.length > 0 || deny.length > 0;
  if (mode === undefined) {
    if (cidrs) mode = 'custom';
    else if (rateOnly === 'allow_all') mode = 'allow_all';
    else
      throw new UsageError(
        'the egress policy is replaced as a whole: say which with --egress allow_all|custom',
        command,
      );
  }
  if (cidrs && mode !== 'custom')
    throw new UsageError(`--allow-cidr and --deny-cidr need --egress custom, not ${mode}`, command);
  const egress: EgressPolicy = { mode };
  if (allow.length > 0) egress.allowCidrs = allow;
  if (deny.length > 0) egress.denyCidrs = deny;
  if (kbit !== undefined || pps !== undefined)
    egress.rateLimit = {
      ...(kbit === undefined ? { pps } : { kbitPerSec: kbit }),
      ...(burst === undefined ? {} : { burst }),
    };
  return egress;
}

function refuseWithNoInternet(values: OptionValues, command: string, others: readonly string[]): void {
  const clash = given(values, others);
  if (flag(values, 'no-internet') && clash.length > 0)
    throw new UsageError(
      `--no-internet (the legacy internet_access) cannot be combined with --${clash[0]}; ` +
        'use --egress deny_all instead',
      command,
    );
}

/** The network fields of `machine create`'s options, from its flags. */
export function createNetworkOptions(
  values: OptionValues,
  command: string,
): Pick<MachineCreateOptions, 'network' | 'internetAccess'> {
  refuseWithNoInternet(values, command, [...EGRESS_FLAGS, 'mask-request-host']);
  if (flag(values, 'no-internet')) return { internetAccess: false };
  const egress = egressFromFlags(values, command, 'allow_all');
  const mask = optionalString(values, 'mask-request-host');
  if (egress === undefined && mask === undefined) return {};
  return {
    network: {
      ...(egress === undefined ? {} : { egress }),
      ...(mask === undefined ? {} : { maskRequestHost: mask }),
    },
  };
}

/** A machine's network as `key  value` lines. */
export function formatNetwork(network: NetworkInfo): string {
  const { egress } = network;
  const rate = egress.rateLimit;
  const rateText =
    rate === null
      ? '-'
      : rate.kbitPerSec !== undefined
        ? `${rate.kbitPerSec} kbit/s${rate.burst === undefined ? '' : ` (burst ${rate.burst} kbit)`}`
        : `${String(rate.pps)} packets/s${rate.burst === undefined ? '' : ` (burst ${rate.burst} packets)`}`;
  return formatKeyValue([
    ['egress', egress.mode],
    ['allow_cidrs', formatValue('allow_cidrs', egress.allowCidrs)],
    ['deny_cidrs', formatValue('deny_cidrs', egress.denyCidrs)],
    ['rate_limit', rateText],
    ['internet_access', network.internetAccess ? 'yes' : 'no (locked: legacy internet_access=false)'],
    ['mask_request_host', network.maskRequestHost ?? '-'],
    ['address', network.address ?? '-'],
  ]);
}

/** The policy now in force, as the input of `setNetwork` (to keep the part the flags leave out). */
function policyOf(network: NetworkInfo): { egress: EgressPolicy; maskRequestHost?: string } {
  const { mode, allowCidrs, denyCidrs, rateLimit } = network.egress;
  const egress: EgressPolicy = { mode };
  if (allowCidrs.length > 0) egress.allowCidrs = allowCidrs;
  if (denyCidrs.length > 0) egress.denyCidrs = denyCidrs;
  if (rateLimit !== null) egress.rateLimit = rateLimit;
  return {
    egress,
    ...(network.maskRequestHost === null ? {} : { maskRequestHost: network.maskRequestHost }),
  };
}

export const network: Subcommand = {
  name: 'network',
  summary: "Show or change a machine's network policy (egress, preview Host rewriting).",
  usage: 'nullspace machine network ID [flags]',
  flags: `Without flags, prints the machine's network. With flags, sets it and prints the result.
The egress flags replace the egress policy as a whole; left out, the egress policy in force is
kept, and so is the preview Host rewriting unless --mask-request-host or --no-mask-request-host
is given. Tightening is in force when the command returns (fails closed: if the new rules cannot
be applied, the machine is left denying all egress). Works on running, paused and hibernated
machines.

Flags:
${NETWORK_FLAGS_HELP}
  --no-mask-request-host     stop rewriting the Host header of preview requests`,
  options: { ...NETWORK_OPTIONS, 'no-mask-request-host': { type: 'boolean' } },
  async run(input) {
    const { values, command } = input;
    const id = singleId(input, 'machine id');
    refuseWithNoInternet(values, command, [...EGRESS_FLAGS, 'mask-request-host', 'no-mask-request-host']);
    const mask = optionalString(values, 'mask-request-host');
    const noMask = flag(values, 'no-mask-request-host');
    if (mask !== undefined && noMask)
      throw new UsageError('give --mask-request-host or --no-mask-request-host, not both', command);
    const egress = egressFromFlags(values, command, 'refuse');
    const machine = new Machine(id, input.connection);
    if (!flag(values, 'no-internet') && egress === undefined && mask === undefined && !noMask) {
      const info = await machine.getInfo({ fields: ['id', 'network'] });
      if (input.json) printJson(machineInfoToWire(info));
      else process.stdout.write(formatNetwork(info.network));
      return 0;
    }
    let policy: NetworkPolicy | { internetAccess: false };
    if (flag(values, 'no-internet')) policy = { internetAccess: false };
    else {
      // PUT replaces the whole policy: what the flags leave out is sent again as it is now.
      const current =
        egress !== undefined && (mask !== undefined || noMask)
          ? undefined
          : policyOf((await machine.getInfo({ fields: ['network'] })).network);
      const kept = current?.egress;
      policy = { egress: egress ?? (kept as EgressPolicy) };
      const keptMask = noMask ? undefined : (mask ?? current?.maskRequestHost);
      if (keptMask !== undefined) policy.maskRequestHost = keptMask;
    }
    const info = await machine.setNetwork(policy);
    if (input.json) printJson(machineInfoToWire(info));
    else process.stdout.write(formatNetwork(info.network));
    return 0;
  },
};

// ---- preview ------------------------------------------------------------------------------------

function parsePort(raw: string, what: string, command: string): number {
  const port = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(port >= 1 && port <= 65535))
    throw new UsageError(`${what}: expected a TCP port (1 to 65535), got "${raw}"`, command);
  return port;
}

function grantState(g: PreviewGrant, now = Date.now()): string {
  if (g.revokedAt !== null) return 'revoked';
  if (g.expiresAt.getTime() <= now) return 'expired';
  return 'active';
}

function timeCell(at: Date): string {
  return relativeTime(at.toISOString());
}

function timeLine(at: Date): string {
  return formatValue('expires_at', at.toISOString());
}

const PREVIEW_FLAGS = schemaFlags(CreatePreviewGrantBodySchema, [
  { field: 'expires_in', metavar: 'SECONDS' },
]);
const WAIT_FLAGS = schemaFlags(WaitForPreviewBodySchema, [
  { field: 'timeout_ms', help: 'With --wait: how long to wait for the port to answer' },
]);
const GRANTS_FLAGS = schemaFlags(ListPreviewGrantsQuerySchema, [
  { field: 'port', metavar: 'P', help: 'With --list: only grants of this port' },
]);

export const preview: Subcommand = {
  name: 'preview',
  summary: 'Make a signed preview URL of a machine port; list or revoke preview grants.',
  usage: 'nullspace machine preview ID PORT [flags] | ID --list [--port P] | ID --revoke GRANT_ID',
  flags: `With PORT: creates a grant and prints its URL, WebSocket URL, grant id and expiry. The URL
carries the grant's token: whoever has it reaches the port until it expires or is revoked. Open it
once (the token becomes a cookie) or send the token in the x-nullspace-preview-token header.
Preview hosts are PORT-ID.<preview domain>; on the default domain (*.localhost) curl resolves
them to 127.0.0.1, other clients may need the Host header or curl's --resolve.

Flags:
${PREVIEW_FLAGS.help}
  --wait                   first wait until something answers on the port (wakes a paused machine
                           with auto-resume)
${WAIT_FLAGS.help}
  --proxy-target           make a target for a proxy you run instead: an upstream URL without a
                           secret and the header (with the token) the proxy adds
  -q, --quiet              print only the URL (with --proxy-target: the header's value)
  --list                   list the machine's grants (tokens are not shown)
${GRANTS_FLAGS.help}
  --revoke GRANT_ID        revoke a grant (pvg_...): its open connections are closed at once`,
  options: {
    ...PREVIEW_FLAGS.options,
    wait: { type: 'boolean' },
    ...WAIT_FLAGS.options,
    'proxy-target': { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    list: { type: 'boolean' },
    ...GRANTS_FLAGS.options,
    revoke: { type: 'string' },
  },
  async run(input) {
    const { values, command } = input;
    const [id, portArg, ...extra] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', command);
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, command);
    const machine = new Machine(id, input.connection);
    const list = flag(values, 'list');
    const revoke = optionalString(values, 'revoke');
    const creating = ['expires-in', 'wait', 'timeout-ms', 'proxy-target', 'quiet'];
    if (list || revoke !== undefined) {
      const clash = given(values, creating);
      if (list && revoke !== undefined) throw new UsageError('give --list or --revoke, not both', command);
      if (clash.length > 0)
        throw new UsageError(
          `--${clash[0]} makes a preview URL; it does not go with --${list ? 'list' : 'revoke'}`,
          command,
        );
    }
    if (list) return listGrants(input, machine, portArg);
    if (revoke !== undefined) {
      if (portArg !== undefined) throw new UsageError(`unexpected argument "${portArg}"`, command);
      const r = await machine.revokePreviewUrl(revoke);
      if (input.json) printJson(previewRevocationToWire(r));
      else
        process.stdout.write(
          `${r.id} revoked (${r.closedConnections} open connection${r.closedConnections === 1 ? '' : 's'} closed)\n`,
        );
      return 0;
    }
    if (portArg === undefined) throw new UsageError('missing PORT (or --list, --revoke)', command);
    if (values.port !== undefined)
      throw new UsageError('--port goes with --list; give PORT as an argument', command);
    const port = parsePort(portArg, 'PORT', command);
    const expiresIn = optionalInteger(values, 'expires-in', command);
    const timeoutMs = optionalInteger(values, 'timeout-ms', command);
    if (timeoutMs !== undefined && !flag(values, 'wait'))
      throw new UsageError('--timeout-ms goes with --wait', command);
    const grantOpts = expiresIn === undefined ? {} : { expiresIn };
    let ready: ReturnType<typeof previewReadinessToWire> | undefined;
    if (flag(values, 'wait')) {
      const r = await machine.waitForPreview(port, timeoutMs === undefined ? {} : { timeoutMs });
      ready = previewReadinessToWire(r);
      if (!input.json && !flag(values, 'quiet'))
        process.stderr.write(`port ${port} answers (waited ${r.waitedMs} ms)\n`);
    }
    if (flag(values, 'proxy-target')) {
      const t = await machine.createPreviewProxyTarget(port, grantOpts);
      const [header, token] = Object.entries(t.headers)[0] ?? ['', ''];
      if (input.json) printJson({ ...previewProxyTargetToWire(t), ...(ready ? { readiness: ready } : {}) });
      else if (flag(values, 'quiet')) process.stdout.write(`${token}\n`);
      else
        process.stdout.write(
          formatKeyValue([
            ['upstream_url', t.upstreamUrl],
            ['websocket_upstream_url', t.websocketUpstreamUrl],
            ['header', `${header}: ${token}`],
            ['grant', t.id],
            ['expires_at', timeLine(t.expiresAt)],
          ]),
        );
      return 0;
    }
    const p = await machine.createSignedPreviewUrl(port, grantOpts);
    if (input.json) printJson({ ...previewUrlToWire(p), ...(ready ? { readiness: ready } : {}) });
    else if (flag(values, 'quiet')) process.stdout.write(`${p.url}\n`);
    else
      process.stdout.write(
        formatKeyValue([
          ['url', p.url],
          ['websocket_url', p.websocketUrl],
          ['host', p.host],
          ['grant', p.id],
          ['expires_at', timeLine(p.expiresAt)],
        ]),
      );
    return 0;
  },
};

async function listGrants(
  input: CommandInput,
  machine: Machine,
  portArg: string | undefined,
): Promise<number> {
  const { values, command } = input;
  const portFlag = optionalString(values, 'port');
  if (portArg !== undefined && portFlag !== undefined)
    throw new UsageError('give the port once: PORT or --port', command);
  const raw = portFlag ?? portArg;
  const grants = await machine.listPreviewUrls(
    raw === undefined ? {} : { port: parsePort(raw, '--port', command) },
  );
  if (input.json) {
    printJson({ items: grants.map(previewGrantToWire) });
    return 0;
  }
  const now = Date.now();
  process.stdout.write(
    formatTable(
      ['ID', 'PORT', 'KIND', 'TOKEN', 'STATE', 'CREATED', 'EXPIRES'],
      grants.map((g) => [
        g.id,
        String(g.port),
        g.kind,
        g.tokenHint,
        grantState(g, now),
        timeCell(g.createdAt),
        timeCell(g.expiresAt),
      ]),
    ),
  );
  return 0;
}
