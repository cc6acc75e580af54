/**
 * The SDK's mapping between the wire (snake_case, ISO 8601 strings) and its own shapes (camelCase,
 * `Date`s): every answer the API gives survives a round trip unchanged, keys become camelCase, times
 * become dates, and the keys of user maps (metadata, envs, headers, event data) are left alone.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CreateMachineBodySchema, LifecycleEventSchema, SnapshotInfoSchema } from '@nullspace/protocol';
import type {
  LifecycleEvent,
  MachineInfo,
  PreviewGrantInfo,
  PreviewProxyTargetInfo,
  PreviewUrlInfo,
  RunCommandResult,
  SnapshotInfo,
  SshAccessInfo,
  VolumeAttachmentInfo,
  VolumeInfo,
} from '@nullspace/protocol';
import {
  commandResultFromWire,
  commandResultToWire,
  lifecycleEventFromWire,
  lifecycleEventToWire,
  machineInfoFromWire,
  machineInfoToWire,
  previewGrantFromWire,
  previewGrantToWire,
  previewProxyTargetFromWire,
  previewProxyTargetToWire,
  previewUrlFromWire,
  previewUrlToWire,
  snapshotInfoFromWire,
  snapshotInfoToWire,
  sshAccessFromWire,
  sshAccessToWire,
  volumeAttachmentFromWire,
  volumeAttachmentToWire,
  volumeInfoFromWire,
  volumeInfoToWire,
} from './index.js';
import type { MachineCreateOptions } from './machine.js';
import { fromWire, requestBody, toWire } from './wire.js';

const T1 = '2025-01-01T10:00:00.000Z';
const T2 = '2025-01-01T10:05:00.123Z';

/** Top-level keys are camelCase: no underscore, lower-case first letter. */
function assertCamel(value: object): void {
  for (const key of Object.keys(value)) assert.match(key, /^[a-z][A-Za-z0-9]*$/, key);
}

const attachment: VolumeAttachmentInfo = {
  id: 'vat_a',
  volume_id: 'vol_a',
  volume_name: 'data',
  machine_id: 'mch_a',
  mount_path: '/data',
  read_only: true,
  subpath: 'sub/dir',
  created_at: T1,
  health: {
    attachment_id: 'vat_a',
    healthy: false,
    reason: 'not mounted',
    checked_at: T2,
    observed: { read_only: false, subpath: null },
  },
};

const machine: MachineInfo = {
  id: 'mch_a',
  execution_id: 'exe_a',
  status: 'running',
  template: 'team/app:v1',
  snapshot_id: 'snap_a',
  vcpus: 2,
  memory_mb: 1024,
  disk_mb: 4096,
  cwd: '/workspace',
  envs: ['API_TOKEN', 'snake_case_name'],
  metadata: { 'team/app_name': 'x', snake_key: 'y', camelKey: 'z' },
  network: {
    egress: {
      mode: 'custom',
      allow_cidrs: ['1.1.1.0/24'],
      deny_cidrs: ['1.1.1.1/32'],
      rate_limit: { kbit_per_sec: 800, burst: 100 },
    },
    internet_access: true,
    mask_request_host: 'localhost:${PORT}',
    address: '10.213.0.2',
  },
  timeout: 300,
  on_timeout: 'pause',
  auto_resume: true,
  expires_at: T2,
  created_at: T1,
  started_at: T1,
  warm_pool_checkout: { pool_id: 'twp_a', waited_ms: 4, hit: true },
  volumes: [attachment],
  tenant: 'acme',
  status_reason: null,
};

describe('machine info', () => {
  it('round-trips, with every null and nested value', () => {
    assert.deepEqual(machineInfoToWire(machineInfoFromWire(machine)), machine);
    const sparse: MachineInfo = {
      ...machine,
      snapshot_id: null,
      started_at: null,
      warm_pool_checkout: null,
      volumes: [],
      tenant: null,
      network: { ...machine.network, egress: { ...machine.network.egress, rate_limit: null }, address: null },
    };
    assert.deepEqual(machineInfoToWire(machineInfoFromWire(sparse)), sparse);
  });

  it('camelCase keys and dates in the SDK; user maps untouched', () => {
    const info = machineInfoFromWire(machine);
    assertCamel(info);
    assert.equal(info.memoryMb, 1024);
    assert.equal(info.executionId, 'exe_a');
    assert.ok(info.createdAt instanceof Date && info.createdAt.toISOString() === T1);
    assert.ok(info.expiresAt instanceof Date);
    assert.deepEqual(info.metadata, machine.metadata);
    assert.deepEqual(info.envs, machine.envs);
    assert.deepEqual(info.network.egress.rateLimit, { kbitPerSec: 800, burst: 100 });
    assert.deepEqual(info.network.egress.allowCidrs, ['1.1.1.0/24']);
    assert.equal(info.network.internetAccess, true);
    assert.deepEqual(info.warmPoolCheckout, { poolId: 'twp_a', waitedMs: 4, hit: true });
    assert.equal(info.volumes[0]?.mountPath, '/data');
  });

  it('a partial row (fields=) keeps exactly its fields', () => {
    const row = machineInfoFromWire<Record<string, unknown>>({ id: 'mch_a', memory_mb: 512, created_at: T1 });
    assert.deepEqual(Object.keys(row).sort(), ['createdAt', 'id', 'memoryMb']);
    assert.deepEqual(machineInfoToWire(row), { id: 'mch_a', memory_mb: 512, created_at: T1 });
  });
});

describe('the other answers', () => {
  it('volumes and attachments', () => {
    const volume: VolumeInfo = {
      id: 'vol_a',
      name: 'data',
      size_mb: 1024,
      used_bytes: 12345,
      created_at: T1,
      attachments: [
        { id: 'vat_a', machine_id: 'mch_a', mount_path: '/data', read_only: false, subpath: null },
      ],
    };
    assert.deepEqual(volumeInfoToWire(volumeInfoFromWire(volume)), volume);
    assert.deepEqual(volumeAttachmentToWire(volumeAttachmentFromWire(attachment)), attachment);
    const healthless = { ...attachment, health: null, subpath: null };
    assert.deepEqual(volumeAttachmentToWire(volumeAttachmentFromWire(healthless)), healthless);
    const v = volumeInfoFromWire(volume);
    assertCamel(v);
    assert.ok(v.createdAt instanceof Date);
    assertCamel(volumeAttachmentFromWire(attachment));
  });

  it('snapshots, lifecycle events and command results', () => {
    const snapshot: SnapshotInfo = {
      id: 'snap_a',
      kind: 'reusable',
      machine_id: 'mch_a',
      template: 'base',
      vcpus: 1,
      memory_mb: 512,
      disk_mb: 2048,
      size_bytes: 1 << 20,
      paused_ms: 35,
      created_at: T1,
    };
    assert.deepEqual(snapshotInfoToWire(snapshotInfoFromWire(snapshot)), snapshot);
    assert.deepEqual(snapshotInfoToWire(snapshotInfoFromWire({ ...snapshot, paused_ms: null })), {
      ...snapshot,
      paused_ms: null,
    });
    assertCamel(snapshotInfoFromWire(snapshot));

    const event: LifecycleEvent = {
      id: 7,
      machine_id: 'mch_a',
      execution_id: 'exe_a',
      type: 'snapshot_created',
      status: 'running',
      previous_status: 'pausing',
      reason: null,
      data: { snapshot_id: 'snap_a', paused_ms: 35 },
      at: T2,
    };
    assert.deepEqual(lifecycleEventToWire(lifecycleEventFromWire(event)), event);
    const e = lifecycleEventFromWire(event);
    assertCamel(e);
    assert.deepEqual(e.data, event.data);

    const result: RunCommandResult = {
      pid: 12,
      exit_code: null,
      signal: 'SIGKILL',
      stdout: 'out',
      stderr: '',
      timed_out: true,
      stdout_truncated: false,
      stderr_truncated: true,
      duration_ms: 1500,
    };
    assert.deepEqual(commandResultToWire(commandResultFromWire(result)), result);
    assertCamel(commandResultFromWire(result));
  });

  it('preview grants, URLs and proxy targets; SSH access', () => {
    const grant: PreviewGrantInfo = {
      id: 'pvg_a',
      machine_id: 'mch_a',
      port: 3000,
      kind: 'url',
      token_hint: 'nspv_abcd***',
      created_at: T1,
      expires_at: T2,
      revoked_at: null,
    };
    assert.deepEqual(previewGrantToWire(previewGrantFromWire(grant)), grant);
    assert.deepEqual(previewGrantToWire(previewGrantFromWire({ ...grant, revoked_at: T2 })), {
      ...grant,
      revoked_at: T2,
    });
    const url: PreviewUrlInfo = {
      ...grant,
      host: '3000-mch_a.preview.test',
      token: 'nspv_abcdefgh',
      url: 'http://3000-mch_a.preview.test/?ns_token=nspv_abcdefgh',
      websocket_url: 'ws://3000-mch_a.preview.test/?ns_token=nspv_abcdefgh',
    };
    assert.deepEqual(previewUrlToWire(previewUrlFromWire(url)), url);
    const target: PreviewProxyTargetInfo = {
      ...grant,
      kind: 'proxy',
      upstream_url: 'http://3000-mch_a.preview.test/',
      websocket_upstream_url: 'ws://3000-mch_a.preview.test/',
      headers: { 'x-nullspace-preview-proxy-token': 'nspv_abcdefgh' },
    };
    assert.deepEqual(previewProxyTargetToWire(previewProxyTargetFromWire(target)), target);
    assert.deepEqual(previewProxyTargetFromWire(target).headers, target.headers);
    for (const v of [
      previewGrantFromWire(grant),
      previewUrlFromWire(url),
      previewProxyTargetFromWire(target),
    ])
      assertCamel(v);

    const ssh: SshAccessInfo = {
      machine_id: 'mch_a',
      user: 'root',
      host: '127.0.0.1',
      port: 2222,
      certificate: 'ssh-ed25519-cert-v01@openssh.com AAAA',
      certificate_id: 'nullspace:mch_a:1',
      valid_after: T1,
      expires_at: T2,
      known_hosts: '@cert-authority mch_a ssh-ed25519 AAAA',
      command: 'ssh -p 2222 root@127.0.0.1',
    };
    assert.deepEqual(sshAccessToWire(sshAccessFromWire(ssh)), ssh);
    assertCamel(sshAccessFromWire(ssh));
  });
});

describe('the schema-driven converter', () => {
  it('keeps a field the SDK does not know yet, under its camelCase name, its value untouched', () => {
    assert.deepEqual(machineInfoFromWire({ id: 'mch_a', future_field: { a_b: 1 } }), {
      id: 'mch_a',
      futureField: { a_b: 1 },
    });
  });

  it("leaves an event's data as the server wrote it, nested objects too", () => {
    const data = { child_ids: ['mch_b'], nested_value: { snake_key: 1 } };
    assert.deepEqual(fromWire(LifecycleEventSchema, { data }).data, data);
  });

  it('request bodies: only the fields the schema names, renamed all the way down', () => {
    const opts: MachineCreateOptions = {
      apiUrl: 'http://127.0.0.1:1',
      requestTimeoutMs: 5,
      memoryMb: 1024,
      envs: { MY_VAR: 'a' },
      network: { egress: { mode: 'custom', allowCidrs: ['1.1.1.1'], rateLimit: { kbitPerSec: 8 } } },
      volumes: [{ volume: 'data', mountPath: '/data', readOnly: true }],
      warmPoolMode: 'bypass',
    };
    assert.deepEqual(requestBody(CreateMachineBodySchema, opts), {
      memory_mb: 1024,
      envs: { MY_VAR: 'a' },
      network: { egress: { mode: 'custom', allow_cidrs: ['1.1.1.1'], rate_limit: { kbit_per_sec: 8 } } },
      volumes: [{ volume: 'data', mount_path: '/data', read_only: true }],
      warm_pool_mode: 'bypass',
    });
  });

  it('request bodies: a misspelt nested key is sent on (snake_case), for the server to refuse by name', () => {
    const typo = { network: { egress: { mode: 'deny_all', allowCidr: ['x'] } } };
    assert.deepEqual(requestBody(CreateMachineBodySchema, typo), {
      network: { egress: { mode: 'deny_all', allow_cidr: ['x'] } },
    });
  });

  it('dates out as ISO strings, and an invalid date-time string in stays a string', () => {
    assert.deepEqual(toWire(SnapshotInfoSchema, { createdAt: new Date(T1) }), { created_at: T1 });
    assert.deepEqual(fromWire(SnapshotInfoSchema, { created_at: 'not a date' }), { createdAt: 'not a date' });
  });
});
