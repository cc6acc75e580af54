/** Formatting for people (tables, key/value) and for scripts (`--json`). */
import type { WireMachineInfo, WireSnapshotInfo } from '@nullspace/sdk';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Columns padded to their widest cell; the last column is not padded. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** `key   value` lines with the keys padded to the longest. */
export function formatKeyValue(entries: [string, string][]): string {
  const width = Math.max(0, ...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${k.padEnd(width)}   ${v}`.trimEnd()).join('\n') + '\n';
}

/** A coarse distance from now: `now`, `42s ago`, `in 5m`, `3h ago`, `2d ago`. */
export function relativeTime(iso: string, now = Date.now()): string {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const seconds = Math.round((at - now) / 1000);
  // Within a second of now (a process just started, rounding): not "in 0s".
  if (seconds === 0) return 'now';
  const abs = Math.abs(seconds);
  let amount: string;
  if (abs < 60) amount = `${abs}s`;
  else if (abs < 3600) amount = `${Math.floor(abs / 60)}m`;
  else if (abs < 86400) amount = `${Math.floor(abs / 3600)}h`;
  else amount = `${Math.floor(abs / 86400)}d`;
  return seconds >= 0 ? `in ${amount}` : `${amount} ago`;
}

const TIME_FIELDS = new Set(['expires_at', 'created_at', 'started_at']);

/** A byte count with a unit a person reads at a glance: `0 B`, `812 KB`, `1.4 GB` (powers of 1024). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = unit === 0 || value >= 10 ? Math.round(value).toString() : value.toFixed(1);
  return `${shown} ${units[unit]}`;
}

type WireNetwork = Partial<WireMachineInfo['network']>;

/**
 * Machine info's `network` on one line: the egress mode and what qualifies it, the address, and
 * whether the legacy internet_access lock is on, e.g.
 * `custom (allow 1.1.1.0/24; 800 kbit/s), address 10.213.0.2, internet access yes`.
 */
function formatNetworkLine(net: WireNetwork): string {
  const egress = net.egress;
  const details: string[] = [];
  if (egress?.allow_cidrs?.length) details.push(`allow ${egress.allow_cidrs.join(', ')}`);
  if (egress?.deny_cidrs?.length) details.push(`deny ${egress.deny_cidrs.join(', ')}`);
  const rate = egress?.rate_limit;
  if (rate?.kbit_per_sec !== undefined) details.push(`${rate.kbit_per_sec} kbit/s`);
  else if (rate?.pps !== undefined) details.push(`${rate.pps} packets/s`);
  const parts = [`${egress?.mode ?? '?'}${details.length > 0 ? ` (${details.join('; ')})` : ''}`];
  parts.push(`address ${net.address ?? '-'}`);
  if (net.internet_access !== undefined) parts.push(`internet access ${net.internet_access ? 'yes' : 'no'}`);
  if (net.mask_request_host) parts.push(`preview Host ${net.mask_request_host}`);
  return parts.join(', ');
}

/** Machine info's `volumes`: `vat_... data at /data (rw), ...`. */
function formatVolumesLine(attachments: unknown[]): string {
  return attachments
    .map((a) => {
      const v = a as {
        id?: string;
        volume_name?: string;
        mount_path?: string;
        read_only?: boolean;
        subpath?: string;
      };
      return `${v.id} ${v.volume_name}${v.subpath ? `/${v.subpath}` : ''} at ${v.mount_path} (${v.read_only ? 'ro' : 'rw'})`;
    })
    .join(', ');
}

/** One value of machine or snapshot info (wire shape) as a person reads it. */
export function formatValue(key: string, value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (TIME_FIELDS.has(key) && typeof value === 'string') return `${value} (${relativeTime(value)})`;
  if (key === 'memory_mb' || key === 'disk_mb') return `${String(value)} MB`;
  if (key === 'timeout' && typeof value === 'number') return `${value}s`;
  if (key === 'size_bytes' && typeof value === 'number') return formatBytes(value);
  if (key === 'paused_ms' && typeof value === 'number') return `${value} ms`;
  if (key === 'warm_pool_checkout' && typeof value === 'object') {
    const c = value as { pool_id?: unknown; hit?: unknown; waited_ms?: unknown };
    return `${String(c.pool_id)} (${c.hit === true ? 'hit' : 'miss'}, waited ${String(c.waited_ms)} ms)`;
  }
  if (key === 'network' && typeof value === 'object') return formatNetworkLine(value as WireNetwork);
  if (key === 'volumes' && Array.isArray(value) && value.length > 0) return formatVolumesLine(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return '-';
    return value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ');
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) return '-';
    if (entries.every(([, v]) => typeof v === 'string'))
      return entries.map(([k, v]) => `${k}=${v}`).join(', ');
    return JSON.stringify(value);
  }
  return String(value);
}

/** A single machine (wire shape, full or partial) as key/value lines. */
export function formatMachine(info: Record<string, unknown>): string {
  return formatKeyValue(Object.entries(info).map(([k, v]) => [k, formatValue(k, v)]));
}

const LIST_COLUMNS: [string, string][] = [
  ['ID', 'id'],
  ['STATUS', 'status'],
  ['TEMPLATE', 'template'],
  ['VCPUS', 'vcpus'],
  ['MEMORY', 'memory_mb'],
  ['CREATED', 'created_at'],
  ['EXPIRES', 'expires_at'],
];

/** A single snapshot (wire shape) as key/value lines. */
export function formatSnapshot(info: WireSnapshotInfo): string {
  return formatKeyValue(Object.entries(info).map(([k, v]) => [k, formatValue(k, v)]));
}

const SNAPSHOT_COLUMNS: [string, keyof WireSnapshotInfo][] = [
  ['ID', 'id'],
  ['KIND', 'kind'],
  ['MACHINE', 'machine_id'],
  ['TEMPLATE', 'template'],
  ['SIZE', 'size_bytes'],
  ['CREATED', 'created_at'],
];

/** Snapshots (wire shape) as a table. */
export function formatSnapshotTable(rows: WireSnapshotInfo[]): string {
  return formatTable(
    SNAPSHOT_COLUMNS.map(([title]) => title),
    rows.map((row) => SNAPSHOT_COLUMNS.map(([, key]) => cell(key, row[key]))),
  );
}

function cell(key: string, value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (TIME_FIELDS.has(key) && typeof value === 'string') return relativeTime(value);
  return formatValue(key, value);
}

/**
 * Machines (wire shape) as a table: the standard columns, or, for rows from `--fields`, one
 * column per requested field.
 */
export function formatMachineTable(rows: Record<string, unknown>[], fields?: string[]): string {
  const columns: [string, string][] =
    fields === undefined ? LIST_COLUMNS : fields.map((f) => [f.toUpperCase(), f] as [string, string]);
  return formatTable(
    columns.map(([title]) => title),
    rows.map((row) => columns.map(([, key]) => cell(key, row[key]))),
  );
}
