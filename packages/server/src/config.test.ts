/** The server's configuration from NULLSPACE_* variables: the embedded defaults and every refusal. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CodedError } from '@nullspace/protocol';
import { DEFAULT_MACHINE_POOL } from '@nullspace/runtime';
import { DEFAULT_DATA_DIR, configFromEnv, defaultTemplatesDir } from './config.js';

/** Removes a variable (assigning undefined would set the string "undefined"). */
function unset(name: string): void {
  Reflect.deleteProperty(process.env, name);
}

// Each test starts from an environment without any NULLSPACE_* variable, and the caller's
// environment comes back afterwards (node --test runs each file in its own process as well).
const saved = { ...process.env };
beforeEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith('NULLSPACE_')) unset(k);
});
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) unset(k);
  Object.assign(process.env, saved);
});

function withEnv(vars: Record<string, string>): ReturnType<typeof configFromEnv> {
  Object.assign(process.env, vars);
  return configFromEnv();
}

/** Refused with invalid_argument, the message naming the variable. */
function refused(vars: Record<string, string>, variable: string): void {
  Object.assign(process.env, vars);
  assert.throws(
    () => configFromEnv(),
    (err: unknown) =>
      err instanceof CodedError && err.code === 'invalid_argument' && err.message.includes(variable),
    JSON.stringify(vars),
  );
  for (const k of Object.keys(vars)) unset(k);
}

describe('configFromEnv', () => {
  it('defaults: loopback on 7070, data in /var/lib/nullspace, the default pool', () => {
    const c = configFromEnv();
    assert.deepEqual(c, {
      host: '127.0.0.1',
      port: 7070,
      dataDir: DEFAULT_DATA_DIR,
      templatesDir: join(DEFAULT_DATA_DIR, 'templates'),
      packageCacheDir: join(DEFAULT_DATA_DIR, 'templates', '.packages'),
      packagesOffline: false,
      maxMachines: 100,
      networkPoolSize: 2,
      tenantQuotas: {},
      logLevel: 'info',
      snapshotsDir: join(DEFAULT_DATA_DIR, 'snapshots'),
      transitionTimeoutMs: 120_000,
      pauseSpillAfterS: 600,
      eventsRetentionS: 7 * 24 * 3600,
      machineNetwork: DEFAULT_MACHINE_POOL,
      metricsIntervalMs: 5000,
      uplinks: 'default-route',
      previewScheme: 'http',
      dnsServers: 'host',
      previewWakeTimeoutMs: 30_000,
    });
  });

  it('directories follow the data directory unless named', () => {
    const c = withEnv({ NULLSPACE_DATA_DIR: '/srv/ns' });
    // Templates: the data directory's, unless only the set-up's has base (defaultTemplatesDir).
    assert.deepEqual(
      [c.templatesDir, c.packageCacheDir, c.snapshotsDir],
      [defaultTemplatesDir('/srv/ns'), join(c.templatesDir, '.packages'), '/srv/ns/snapshots'],
    );
    const d = withEnv({
      NULLSPACE_TEMPLATES_DIR: '/t',
      NULLSPACE_SNAPSHOTS_DIR: '/s',
      NULLSPACE_PACKAGE_CACHE: '/p',
    });
    assert.deepEqual(
      [d.dataDir, d.templatesDir, d.packageCacheDir, d.snapshotsDir],
      ['/srv/ns', '/t', '/p', '/s'],
    );
    assert.equal(configFromEnv({ dataDir: '/other' }).snapshotsDir, '/s');
    unset('NULLSPACE_SNAPSHOTS_DIR');
    assert.equal(configFromEnv({ dataDir: '/other' }).snapshotsDir, '/other/snapshots');
  });

  it("templates: the data directory's if it has base, else the set-up's if that has, else the data directory's", () => {
    const root = mkdtempSync(join(tmpdir(), 'nsu-templates-'));
    try {
      const withBase = (dir: string) => {
        mkdirSync(join(dir, 'templates', 'base', 'rootfs', 'bin'), { recursive: true });
        writeFileSync(join(dir, 'templates', 'base', 'recipe'), 'r');
        writeFileSync(join(dir, 'templates', 'base', 'rootfs', 'bin', 'bash'), '');
      };
      const [own, setUp, empty] = ['own', 'setup', 'empty'].map((n) => join(root, n)) as [
        string,
        string,
        string,
      ];
      assert.equal(defaultTemplatesDir(own, join(setUp, 'templates')), join(own, 'templates'));
      withBase(setUp);
      assert.equal(defaultTemplatesDir(own, join(setUp, 'templates')), join(setUp, 'templates'));
      withBase(own);
      assert.equal(defaultTemplatesDir(own, join(setUp, 'templates')), join(own, 'templates'));
      assert.equal(defaultTemplatesDir(empty, join(empty, 'nothing')), join(empty, 'templates'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  const INTEGERS = [
    ['NULLSPACE_PORT', 'port', 0, 65535],
    ['NULLSPACE_MAX_MACHINES', 'maxMachines', 1, 100_000],
    ['NULLSPACE_NETWORK_POOL', 'networkPoolSize', 0, 64],
    ['NULLSPACE_TRANSITION_TIMEOUT_MS', 'transitionTimeoutMs', 1, 3_600_000],
    ['NULLSPACE_PAUSE_SPILL_AFTER', 'pauseSpillAfterS', 1, 365 * 24 * 3600],
    ['NULLSPACE_EVENTS_RETENTION', 'eventsRetentionS', 1, 365 * 24 * 3600],
    ['NULLSPACE_METRICS_INTERVAL_MS', 'metricsIntervalMs', 100, 3_600_000],
    ['NULLSPACE_PREVIEW_WAKE_TIMEOUT_MS', 'previewWakeTimeoutMs', 100, 600_000],
  ] as const;
  for (const [variable, key, min, max] of INTEGERS) {
    it(`${variable}: an integer from ${min} to ${max}; empty means the default`, () => {
      assert.equal(withEnv({ [variable]: String(min) })[key], min);
      assert.equal(withEnv({ [variable]: String(max) })[key], max);
      unset(variable);
      const fallback = configFromEnv()[key];
      assert.equal(withEnv({ [variable]: '' })[key], fallback);
      for (const bad of [String(min - 1), String(max + 1), '1.5', 'abc', '12abc', ' ', '0x10', '1e3', '-0'])
        refused({ [variable]: bad }, variable);
    });
  }

  it('NULLSPACE_LOG_LEVEL: debug, info, warn or error', () => {
    for (const level of ['debug', 'info', 'warn', 'error'] as const)
      assert.equal(withEnv({ NULLSPACE_LOG_LEVEL: level }).logLevel, level);
    refused({ NULLSPACE_LOG_LEVEL: 'verbose' }, 'NULLSPACE_LOG_LEVEL');
    refused({ NULLSPACE_LOG_LEVEL: 'INFO' }, 'NULLSPACE_LOG_LEVEL');
  });

  it('NULLSPACE_PACKAGES_OFFLINE: only 1 turns it on', () => {
    assert.equal(withEnv({ NULLSPACE_PACKAGES_OFFLINE: '1' }).packagesOffline, true);
    assert.equal(withEnv({ NULLSPACE_PACKAGES_OFFLINE: 'true' }).packagesOffline, false);
  });

  it('NULLSPACE_UPLINKS: none, or a list of interface names', () => {
    assert.deepEqual(withEnv({ NULLSPACE_UPLINKS: 'none' }).uplinks, []);
    assert.deepEqual(withEnv({ NULLSPACE_UPLINKS: 'eth0, wlan0' }).uplinks, ['eth0', 'wlan0']);
    assert.deepEqual(withEnv({ NULLSPACE_UPLINKS: 'a'.repeat(15) }).uplinks, ['a'.repeat(15)]);
    for (const bad of ['a'.repeat(16), 'eth0;reboot', 'eth0,,eth1', 'br 0'])
      refused({ NULLSPACE_UPLINKS: bad }, 'NULLSPACE_UPLINKS');
  });

  it('NULLSPACE_DNS_SERVERS: none, or IP addresses', () => {
    assert.deepEqual(withEnv({ NULLSPACE_DNS_SERVERS: 'none' }).dnsServers, []);
    assert.deepEqual(withEnv({ NULLSPACE_DNS_SERVERS: '1.1.1.1, 2606:4700::1111' }).dnsServers, [
      '1.1.1.1',
      '2606:4700::1111',
    ]);
    for (const bad of ['dns.google', '1.1.1', '1.1.1.1,', '1.1.1.1:53'])
      refused({ NULLSPACE_DNS_SERVERS: bad }, 'NULLSPACE_DNS_SERVERS');
  });

  it('NULLSPACE_PREVIEW_SCHEME: http or https', () => {
    assert.equal(withEnv({ NULLSPACE_PREVIEW_SCHEME: 'https' }).previewScheme, 'https');
    assert.equal(withEnv({ NULLSPACE_PREVIEW_SCHEME: 'http' }).previewScheme, 'http');
    refused({ NULLSPACE_PREVIEW_SCHEME: 'HTTPS' }, 'NULLSPACE_PREVIEW_SCHEME');
    refused({ NULLSPACE_PREVIEW_SCHEME: 'ftp' }, 'NULLSPACE_PREVIEW_SCHEME');
  });

  it('NULLSPACE_PREVIEW_DOMAIN: a lower-case host with an optional port (also as an override)', () => {
    assert.equal(
      withEnv({ NULLSPACE_PREVIEW_DOMAIN: 'preview.example.test:8443' }).previewDomain,
      'preview.example.test:8443',
    );
    assert.equal(configFromEnv({ previewDomain: 'p.test' }).previewDomain, 'p.test');
    for (const bad of ['Preview.Test', 'https://p.test', 'p.test/x', 'p.test:', 'p test'])
      refused({ NULLSPACE_PREVIEW_DOMAIN: bad }, 'NULLSPACE_PREVIEW_DOMAIN');
    assert.throws(() => configFromEnv({ previewDomain: 'BAD' }), CodedError);
  });

  it('NULLSPACE_SSH_PORTS: a range low-high within 1 to 65535', () => {
    assert.deepEqual(withEnv({ NULLSPACE_SSH_PORTS: '2200-2299' }).sshPorts, { min: 2200, max: 2299 });
    assert.deepEqual(withEnv({ NULLSPACE_SSH_PORTS: '1-65535' }).sshPorts, { min: 1, max: 65535 });
    assert.deepEqual(withEnv({ NULLSPACE_SSH_PORTS: '2222-2222' }).sshPorts, { min: 2222, max: 2222 });
    for (const bad of ['2200', '0-10', '10-5', '1-65536', '22-x', ' 22-23'])
      refused({ NULLSPACE_SSH_PORTS: bad }, 'NULLSPACE_SSH_PORTS');
  });

  it('NULLSPACE_TENANT_QUOTAS: tenant or * → limits, each a non-negative integer', () => {
    assert.deepEqual(
      withEnv({ NULLSPACE_TENANT_QUOTAS: '{"*": {"machines": 2}, "acme": {"vcpus": 8, "memory_mb": 0}}' })
        .tenantQuotas,
      { '*': { machines: 2 }, acme: { vcpus: 8, memory_mb: 0 } },
    );
    unset('NULLSPACE_TENANT_QUOTAS');
    for (const bad of [
      'x',
      '[]',
      '{"Acme": {}}',
      '{"acme": 3}',
      '{"acme": {"gpus": 1}}',
      '{"acme": {"machines": -1}}',
      '{"acme": {"machines": 1.5}}',
      '{"acme": {"machines": "2"}}',
    ])
      refused({ NULLSPACE_TENANT_QUOTAS: bad }, 'NULLSPACE_TENANT_QUOTAS');
  });

  it('SSH hosts, the API key and overrides', () => {
    const c = withEnv({
      NULLSPACE_SSH_HOST: '0.0.0.0',
      NULLSPACE_SSH_PUBLIC_HOST: 'ssh.example.test',
      NULLSPACE_API_KEY: 'ns_key',
      NULLSPACE_HOST: '::1',
    });
    assert.deepEqual(
      [c.sshHost, c.sshPublicHost, c.apiKey, c.host],
      ['0.0.0.0', 'ssh.example.test', 'ns_key', '::1'],
    );
    assert.equal(configFromEnv({ apiKey: 'override' }).apiKey, 'override');
    assert.equal(configFromEnv({ port: 0 }).port, 0);
    unset('NULLSPACE_API_KEY');
    assert.equal('apiKey' in configFromEnv(), false);
  });
});
