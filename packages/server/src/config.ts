import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { CodedError } from '@nullspace/protocol';
import { DEFAULT_MACHINE_POOL } from '@nullspace/runtime';
import { type Quota, parseTenantQuotas } from './tenancy/quotas.js';

export interface ServerConfig {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  dataDir: string;
  /** Where templates' root filesystems live: `<dir>/<template>/rootfs`. */
  templatesDir: string;
  /**
   * Debian packages template builds fetched (apt's lists and .debs), shared by every server using
   * the same templates directory; set-up can fill it ahead for offline builds.
   */
  packageCacheDir: string;
  /** Template builds use only cached packages, never the network (NULLSPACE_PACKAGES_OFFLINE=1). */
  packagesOffline: boolean;
  /** Explicit API key; when unset one is generated once and kept in `<dataDir>/api-key`. */
  apiKey?: string;
  /** Most machines alive (not killed) at once; more → 429 resource_exhausted. */
  maxMachines: number;
  /**
   * Machines' networks kept made ahead of creates (`NULLSPACE_NETWORK_POOL`, 0–64, default 2; 0:
   * off): a create takes one, and its host side is then the disk alone (docs/network.md).
   */
  networkPoolSize: number;
  /**
   * Tenants' quotas (`NULLSPACE_TENANT_QUOTAS`, JSON: tenant or `*` → limits); empty: none
   * (docs/tenants.md). Over one → 429 quota_exceeded.
   */
  tenantQuotas: Record<string, Quota>;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** A machine paused longer than this (seconds) is hibernated by the server. */
  pauseSpillAfterS: number;
  /** Where snapshot and hibernation images live. */
  snapshotsDir: string;
  /** Deadline of one pause, hibernate, resume, snapshot or fork (milliseconds). */
  transitionTimeoutMs: number;
  /** Lifecycle events older than this (seconds) are removed; replay from before then says so. */
  eventsRetentionS: number;
  /** How often running and paused machines' metrics are sampled (milliseconds). */
  metricsIntervalMs: number;
  /** The IPv4 pool machines' addresses come from (a /29 each). */
  machineNetwork: string;
  /**
   * Host interfaces machines' traffic leaves by: the server turns IPv4 forwarding on for them
   * (replies coming back in must be forwarded to the machine). Default: the interfaces of the
   * host's default routes; empty: none (the host is set up by hand).
   */
  uplinks: string[] | 'default-route';
  /**
   * Resolvers the machines' DNS forwarder asks: `host` (the host's /etc/resolv.conf), a list, or
   * none (machines get no name service).
   */
  dnsServers: string[] | 'host';
  /** Preview hosts are `PORT-MACHINE.<domain>`; default `preview.localhost:<server port>`. */
  previewDomain?: string;
  previewScheme: 'http' | 'https';
  /** How long preview traffic waits for a paused or hibernated machine to resume before a 503. */
  previewWakeTimeoutMs: number;
  /** Where SSH relay listeners bind (default: `host`), the host name `ssh` is told, their ports. */
  sshHost?: string;
  sshPublicHost?: string;
  sshPorts?: { min: number; max: number };
}

export const DEFAULT_DATA_DIR = '/var/lib/nullspace';

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  // Decimal digits only: Number() would also take " " (as 0), "0x10" and "1e3".
  const n = /^\d{1,15}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new CodedError(
      'invalid_argument',
      `${name} must be an integer between ${min} and ${max}, got "${raw}"`,
    );
  return n;
}

/** Whether `dir` holds a built `base` template (what scripts/build-base-template.sh leaves). */
export function hasBaseTemplate(dir: string): boolean {
  return existsSync(join(dir, 'base', 'recipe')) && existsSync(join(dir, 'base', 'rootfs', 'bin', 'bash'));
}

/**
 * Where templates live when NULLSPACE_TEMPLATES_DIR is unset: `<data dir>/templates` if it holds
 * `base`; else the set-up's (`/var/lib/nullspace/templates`, what `scripts/setup.sh` builds) if that
 * does, so a server given a new, empty data directory starts machines at once; else
 * `<data dir>/templates`, where the server builds `base` on its first start (server.ts).
 */
export function defaultTemplatesDir(
  dataDir: string,
  setUp: string = join(DEFAULT_DATA_DIR, 'templates'),
): string {
  const own = join(dataDir, 'templates');
  if (hasBaseTemplate(own) || !hasBaseTemplate(setUp)) return own;
  return setUp;
}

/** Reads the server's configuration from NULLSPACE_* environment variables, with embedded defaults. */
export function configFromEnv(overrides: Partial<ServerConfig> = {}): ServerConfig {
  const dataDir = overrides.dataDir ?? (process.env.NULLSPACE_DATA_DIR || DEFAULT_DATA_DIR);
  const templatesDir = process.env.NULLSPACE_TEMPLATES_DIR || defaultTemplatesDir(dataDir);
  const level = process.env.NULLSPACE_LOG_LEVEL || 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level))
    throw new CodedError('invalid_argument', 'NULLSPACE_LOG_LEVEL must be debug, info, warn or error');
  const config: ServerConfig = {
    host: process.env.NULLSPACE_HOST || '127.0.0.1',
    port: intFromEnv('NULLSPACE_PORT', 7070, 0, 65535),
    dataDir,
    templatesDir,
    packageCacheDir: process.env.NULLSPACE_PACKAGE_CACHE || join(templatesDir, '.packages'),
    packagesOffline: process.env.NULLSPACE_PACKAGES_OFFLINE === '1',
    maxMachines: intFromEnv('NULLSPACE_MAX_MACHINES', 100, 1, 100_000),
    networkPoolSize: intFromEnv('NULLSPACE_NETWORK_POOL', 2, 0, 64),
    tenantQuotas: parseTenantQuotas(process.env.NULLSPACE_TENANT_QUOTAS),
    logLevel: level as ServerConfig['logLevel'],
    snapshotsDir: process.env.NULLSPACE_SNAPSHOTS_DIR || join(dataDir, 'snapshots'),
    transitionTimeoutMs: intFromEnv('NULLSPACE_TRANSITION_TIMEOUT_MS', 120_000, 1, 3_600_000),
    pauseSpillAfterS: intFromEnv('NULLSPACE_PAUSE_SPILL_AFTER', 600, 1, 365 * 24 * 3600),
    eventsRetentionS: intFromEnv('NULLSPACE_EVENTS_RETENTION', 7 * 24 * 3600, 1, 365 * 24 * 3600),
    machineNetwork: process.env.NULLSPACE_MACHINE_NETWORK || DEFAULT_MACHINE_POOL,
    metricsIntervalMs: intFromEnv('NULLSPACE_METRICS_INTERVAL_MS', 5000, 100, 3_600_000),
    uplinks: uplinksFromEnv(process.env.NULLSPACE_UPLINKS),
    previewScheme: previewSchemeFromEnv(process.env.NULLSPACE_PREVIEW_SCHEME),
    dnsServers: dnsServersFromEnv(process.env.NULLSPACE_DNS_SERVERS),
    previewWakeTimeoutMs: intFromEnv('NULLSPACE_PREVIEW_WAKE_TIMEOUT_MS', 30_000, 100, 600_000),
    ...overrides,
  };
  const domain = overrides.previewDomain ?? process.env.NULLSPACE_PREVIEW_DOMAIN;
  if (domain) {
    if (!/^[a-z0-9.-]+(:\d{1,5})?$/.test(domain))
      throw new CodedError('invalid_argument', `NULLSPACE_PREVIEW_DOMAIN: "${domain}" is not a host[:port]`);
    config.previewDomain = domain;
  }
  if (process.env.NULLSPACE_SSH_HOST) config.sshHost = process.env.NULLSPACE_SSH_HOST;
  if (process.env.NULLSPACE_SSH_PUBLIC_HOST) config.sshPublicHost = process.env.NULLSPACE_SSH_PUBLIC_HOST;
  const ports = process.env.NULLSPACE_SSH_PORTS;
  if (ports) {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(ports);
    const [min, max] = [Number(m?.[1]), Number(m?.[2])];
    if (!m || min < 1 || max > 65535 || min > max)
      throw new CodedError(
        'invalid_argument',
        `NULLSPACE_SSH_PORTS must be a range such as 2200-2299, got "${ports}"`,
      );
    config.sshPorts = { min, max };
  }
  const apiKey = overrides.apiKey ?? process.env.NULLSPACE_API_KEY;
  if (apiKey) config.apiKey = apiKey;
  return config;
}

/** `NULLSPACE_UPLINKS`: unset → the default routes' interfaces; `none` → none; else a list. */
function uplinksFromEnv(raw: string | undefined): ServerConfig['uplinks'] {
  if (raw === undefined || raw === '') return 'default-route';
  if (raw === 'none') return [];
  const names = raw.split(',').map((s) => s.trim());
  for (const n of names)
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(n))
      throw new CodedError('invalid_argument', `NULLSPACE_UPLINKS: "${n}" is not an interface name`);
  return names;
}

function previewSchemeFromEnv(raw: string | undefined): 'http' | 'https' {
  if (raw === undefined || raw === '' || raw === 'http') return 'http';
  if (raw === 'https') return 'https';
  throw new CodedError('invalid_argument', `NULLSPACE_PREVIEW_SCHEME must be http or https, got "${raw}"`);
}

/** `NULLSPACE_DNS_SERVERS`: unset → the host's resolvers; `none` → none; else IP addresses. */
function dnsServersFromEnv(raw: string | undefined): ServerConfig['dnsServers'] {
  if (raw === undefined || raw === '') return 'host';
  if (raw === 'none') return [];
  const list = raw.split(',').map((s) => s.trim());
  for (const a of list)
    if (isIP(a) === 0)
      throw new CodedError('invalid_argument', `NULLSPACE_DNS_SERVERS: "${a}" is not an IP address`);
  return list;
}
