/** The host a bench runs on: its memory, tool versions, filesystems, and the `Host` table. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { TEMPLATE, sh } from './common.mjs';
import { printTable } from './tables.mjs';

/** MemTotal and MemAvailable (bytes) from /proc/meminfo. */
export function meminfo() {
  const text = readFileSync('/proc/meminfo', 'utf8');
  const get = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN) * 1024;
  return { total: get('MemTotal'), available: get('MemAvailable') };
}

/** The first `lines` lines of a tool's version output, joined; `unavailable (…)` if it fails. */
export async function toolVersion(file, args, lines = 1) {
  return (await sh(file, args).catch((e) => `unavailable (${e.message})`))
    .trim()
    .split('\n')
    .slice(0, lines)
    .join(', ');
}

/** The filesystem `path` is on, as `type on source` (`?` if findmnt fails). */
export async function filesystemOf(path) {
  return (await sh('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', path]).catch(() => '?'))
    .trim()
    .replace(/\s+/, ' on ');
}

/**
 * Prints the `Host` table: kernel, CPU, memory, then a bench's own `rows` (tool versions, cgroups,
 * filesystems), then the load average at the start and the templates directory.
 */
export function printHost(templatesDir, rows) {
  const cpuModel =
    /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ??
    os.cpus()[0]?.model;
  const mem = meminfo();
  const gib = (b) => (b / 1024 ** 3).toFixed(1);
  console.log('Host');
  printTable(
    null,
    [
      ['kernel', os.release()],
      ['cpu', `${cpuModel} × ${os.cpus().length}`],
      ['memory', `${gib(mem.total)} GiB total, ${gib(mem.available)} GiB available`],
      ...rows,
      [
        'load avg',
        os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' '),
      ],
      ['templates', `${templatesDir} (template ${TEMPLATE})`],
    ],
    'll',
  );
}
