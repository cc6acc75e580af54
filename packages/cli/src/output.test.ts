/** The CLI's output for people: tables, key/value lines, sizes, relative times, machine fields. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatBytes,
  formatKeyValue,
  formatMachine,
  formatMachineTable,
  formatTable,
  formatValue,
  relativeTime,
} from './output.js';

describe('tables and key/value lines', () => {
  it('columns padded to the widest cell, three spaces apart, the last one not padded', () => {
    assert.equal(
      formatTable(
        ['ID', 'STATUS', 'NOTE'],
        [
          ['mch_a', 'running', 'x'],
          ['m', 'killed', ''],
        ],
      ),
      'ID      STATUS    NOTE\nmch_a   running   x\nm       killed\n',
    );
    assert.equal(formatTable(['A', 'B'], []), 'A   B\n');
  });

  it('key/value lines with the keys padded to the longest', () => {
    assert.equal(
      formatKeyValue([
        ['id', 'mch_a'],
        ['status', 'running'],
        ['cwd', ''],
      ]),
      'id       mch_a\nstatus   running\ncwd\n',
    );
  });
});

describe('relativeTime', () => {
  const now = Date.parse('2025-01-01T12:00:00Z');
  const at = (deltaS: number) => new Date(now + deltaS * 1000).toISOString();

  it('now, seconds, minutes, hours, days; past and future', () => {
    assert.equal(relativeTime(at(0), now), 'now');
    assert.equal(relativeTime(at(0.4), now), 'now');
    assert.equal(relativeTime(at(-42), now), '42s ago');
    assert.equal(relativeTime(at(59), now), 'in 59s');
    assert.equal(relativeTime(at(60), now), 'in 1m');
    assert.equal(relativeTime(at(-3599), now), '59m ago');
    assert.equal(relativeTime(at(3600 * 5 + 1), now), 'in 5h');
    assert.equal(relativeTime(at(-86400 * 3), now), '3d ago');
  });

  it('what is not a time is shown as it is', () => {
    assert.equal(relativeTime('soon', now), 'soon');
  });
});

describe('formatBytes', () => {
  it('powers of 1024, one decimal below 10 of a unit', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1.0 KB');
    assert.equal(formatBytes(1536), '1.5 KB');
    assert.equal(formatBytes(812 * 1024), '812 KB');
    assert.equal(formatBytes(1.4 * 1024 ** 3), '1.4 GB');
    assert.equal(formatBytes(3 * 1024 ** 5), '3072 TB');
  });
});

describe('machine fields', () => {
  it('units, absent values, maps and lists as a person reads them', () => {
    assert.equal(formatValue('memory_mb', 512), '512 MB');
    assert.equal(formatValue('timeout', 300), '300s');
    assert.equal(formatValue('size_bytes', 2048), '2.0 KB');
    assert.equal(formatValue('paused_ms', 12), '12 ms');
    assert.equal(formatValue('snapshot_id', null), '-');
    assert.equal(formatValue('metadata', {}), '-');
    assert.equal(formatValue('metadata', { a: '1', b: 'x' }), 'a=1, b=x');
    assert.equal(formatValue('envs', []), '-');
    assert.equal(formatValue('envs', ['A', 'B']), 'A, B');
    assert.equal(formatValue('auto_resume', false), 'false');
    assert.match(formatValue('created_at', new Date().toISOString()), /^\d{4}-.*Z \((now|\d+s ago)\)$/);
  });

  it('network on one line: mode and what qualifies it, address, lock, Host rewrite', () => {
    assert.equal(
      formatValue('network', {
        egress: {
          mode: 'custom',
          allow_cidrs: ['1.1.1.0/24'],
          deny_cidrs: ['1.1.1.1/32'],
          rate_limit: { kbit_per_sec: 800 },
        },
        internet_access: true,
        mask_request_host: 'localhost:${PORT}',
        address: '10.213.0.2',
      }),
      'custom (allow 1.1.1.0/24; deny 1.1.1.1/32; 800 kbit/s), address 10.213.0.2, internet access yes, preview Host localhost:${PORT}',
    );
    assert.equal(
      formatValue('network', {
        egress: { mode: 'deny_all', allow_cidrs: [], deny_cidrs: [], rate_limit: null },
        internet_access: false,
        mask_request_host: null,
        address: null,
      }),
      'deny_all, address -, internet access no',
    );
  });

  it('warm pool checkout and volumes', () => {
    assert.equal(
      formatValue('warm_pool_checkout', { pool_id: 'twp_a', hit: true, waited_ms: 3 }),
      'twp_a (hit, waited 3 ms)',
    );
    assert.equal(
      formatValue('volumes', [
        { id: 'vat_a', volume_name: 'data', mount_path: '/data', read_only: false, subpath: null },
        { id: 'vat_b', volume_name: 'cfg', mount_path: '/etc/app', read_only: true, subpath: 'prod' },
      ]),
      'vat_a data at /data (rw), vat_b cfg/prod at /etc/app (ro)',
    );
  });

  it('one machine as key/value lines; machines as a table, or one column per --fields field', () => {
    assert.equal(
      formatMachine({ id: 'mch_a', vcpus: 2, memory_mb: 512 }),
      'id          mch_a\nvcpus       2\nmemory_mb   512 MB\n',
    );
    const rows = [
      {
        id: 'mch_a',
        status: 'running',
        template: 'base',
        vcpus: 1,
        memory_mb: 512,
        created_at: null,
        expires_at: null,
      },
    ];
    assert.equal(
      formatMachineTable(rows),
      'ID      STATUS    TEMPLATE   VCPUS   MEMORY   CREATED   EXPIRES\nmch_a   running   base       1       512 MB   -         -\n',
    );
    assert.equal(
      formatMachineTable([{ id: 'mch_a', status: 'paused' }], ['status', 'id']),
      'STATUS   ID\npaused   mch_a\n',
    );
  });
});
