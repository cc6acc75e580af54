/**
 * The direct resume's plan (criu-restore.ts): taken only when runc's kept state is this machine's
 * and matches its config.json as written for the restore, with runc's external mount keys; its
 * cgroups written with config.json's limits and runc's device rules (into plain directories
 * standing in for the hierarchies); runc's state rewritten for the new init.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildMachineOciSpec } from '../oci/spec.js';
import {
  type RuncStateFile,
  makeMachineCgroups,
  planDirectRestore,
  writeRestoredState,
} from './criu-restore.js';

const dir = mkdtempSync('/tmp/nst-criu-restore-');
after(() => rmSync(dir, { recursive: true, force: true }));

const ID = 'mch_aaaaaaaaaaaaaaaaaaaa';
const range = { base: 1_000_000, size: 65536 };
const config = (o: { rootfs?: string; base?: number; id?: string } = {}, id = o.id ?? ID) =>
  JSON.stringify(
    buildMachineOciSpec({
      machineId: id,
      hostname: `host-${id}`,
      rootfs: o.rootfs ?? `/data/machines/${id}/rootfs`,
      netnsPath: `/run/netns/ns-${id}`,
      cgroupsPath: `/nullspace/${id}`,
      vcpus: 2,
      cpuShares: 512,
      memoryMb: 512,
      pidsLimit: 4096,
      agent: {
        nodeBinary: '/usr/bin/node',
        initBinary: '/usr/bin/tini',
        homeDir: '/agent',
        runDir: `/data/machines/${id}/run`,
      },
      paths: {
        nodeBinary: '/.nullspace/bin/node',
        initBinary: '/.nullspace/bin/init',
        homeDir: '/.nullspace/agent',
        runDir: '/.nullspace/run',
      },
      agentArgs: [],
      nofileLimit: 1024,
      criuConfig: '/criu.conf',
      idRange: { base: o.base ?? range.base, size: range.size },
      sysfsSource: `/data/machines/${id}/sys`,
    }),
  );

/** runc's state of that machine, in the shape runc 1.1 writes (the fields read here). */
function keptState(cg: string): RuncStateFile {
  const binds = (
    JSON.parse(config()) as { mounts: { type: string; source: string; destination: string }[] }
  ).mounts
    .filter((m) => m.type === 'bind')
    .map((m) => ({ source: m.source, destination: m.destination, device: 'bind' }));
  return {
    id: ID,
    init_process_pid: 4242,
    init_process_start: 1,
    created: '2026-01-01T00:00:00Z',
    cgroup_paths: Object.fromEntries(
      ['', 'cpu', 'cpuset', 'devices', 'memory', 'pids', 'name=systemd'].map((c) => [
        c,
        join(cg, c || 'unified', 'nullspace', ID),
      ]),
    ),
    namespace_paths: { NEWNET: '/proc/4242/ns/net', NEWPID: '/proc/4242/ns/pid' },
    external_descriptors: ['/dev/null', '/dev/null', '/dev/null'],
    config: {
      rootfs: `/data/machines/${ID}/rootfs`,
      mounts: [{ source: 'proc', destination: '/proc', device: 'proc' }, ...binds],
      devices: [{ path: '/dev/null' }, { path: '/dev/zero' }],
      mask_paths: ['/proc/kcore'],
      namespaces: [
        { type: 'NEWPID', path: '' },
        { type: 'NEWNET', path: `/run/netns/ns-${ID}` },
      ],
      uid_mappings: [{ container_id: 0, host_id: range.base, size: range.size }],
      gid_mappings: [{ container_id: 0, host_id: range.base, size: range.size }],
      cgroups: {
        path: `/nullspace/${ID}`,
        devices: [
          { type: 97, major: -1, minor: -1, permissions: 'rwm', allow: false },
          { type: 99, major: 1, minor: 3, permissions: 'rwm', allow: true },
          { type: 99, major: 136, minor: -1, permissions: 'rwm', allow: true },
        ],
      },
    },
  };
}

describe('a resume by CRIU directly', () => {
  it('is planned from the kept state, with runc external mount keys and the netns', () => {
    const got = planDirectRestore(ID, JSON.stringify(keptState('/cg')), config());
    assert.ok('plan' in got, JSON.stringify(got));
    const { plan } = got;
    assert.equal(plan.netnsPath, `/run/netns/ns-${ID}`);
    assert.equal(plan.cgroupRoot, `/nullspace/${ID}`);
    assert.deepEqual(plan.externalMounts, [
      ['/sys', `/data/machines/${ID}/sys`],
      ['/.nullspace/bin/node', '/usr/bin/node'],
      ['/.nullspace/bin/init', '/usr/bin/tini'],
      ['/.nullspace/agent', '/agent'],
      ['/.nullspace/run', `/data/machines/${ID}/run`],
      ['/dev/null', '/dev/null'],
      ['/dev/zero', '/dev/zero'],
    ]);
  });

  it('falls back to runc, saying why, whenever the kept state does not fit', () => {
    const state = keptState('/cg');
    const because = (kept: string | undefined, cfg = config(), id = ID) => {
      const got = planDirectRestore(id, kept, cfg);
      assert.ok('runcBecause' in got, 'runc');
      return got.runcBecause;
    };
    assert.match(because(undefined), /no runc state kept/);
    assert.match(because('{'), /does not parse/);
    assert.match(because(JSON.stringify({ config: {} })), /not runc 1.1 state/);
    const noUserns = JSON.parse(config()) as { linux: Record<string, unknown> };
    noUserns.linux.uidMappings = undefined;
    assert.match(because(JSON.stringify(state), JSON.stringify(noUserns)), /no user namespace/);
    // Another machine's image whose paths are not all under its id.
    const other = 'mch_bbbbbbbbbbbbbbbbbbbb';
    assert.match(
      because(JSON.stringify(state), config({ id: other, rootfs: '/elsewhere' }), other),
      /root filesystem/,
    );
    assert.match(because(JSON.stringify(state), config({ rootfs: '/elsewhere' })), /root filesystem/);
    assert.match(because(JSON.stringify(state), config({ base: 2_000_000 })), /id mapping/);
    const v2 = { ...state, cgroup_paths: { '': '/sys/fs/cgroup/nullspace/x' } };
    assert.match(because(JSON.stringify(v2)), /cgroup v1/);
    const moreBinds = structuredClone(state);
    moreBinds.config.mounts?.push({ source: '/x', destination: '/y', device: 'bind' });
    assert.match(because(JSON.stringify(moreBinds)), /bind mounts/);
  });

  it("restores another machine's image (a fork) with that machine's state under its own id, range and host name", () => {
    const child = 'mch_cccccccccccccccccccc';
    const got = planDirectRestore(
      child,
      JSON.stringify(keptState('/cg')),
      config({ id: child, base: 3_000_000 }),
    );
    assert.ok('plan' in got, JSON.stringify(got));
    const { state } = got.plan;
    assert.equal(state.id, child);
    assert.equal(state.config.rootfs, `/data/machines/${child}/rootfs`);
    assert.equal(state.config.cgroups.path, `/nullspace/${child}`);
    assert.equal(state.config.hostname, `host-${child}`);
    assert.deepEqual(state.config.uid_mappings, [{ container_id: 0, host_id: 3_000_000, size: range.size }]);
    assert.equal(got.plan.cgroupPaths.memory, join('/cg', 'memory', 'nullspace', child));
    assert.equal(got.plan.netnsPath, `/run/netns/ns-${child}`);
    assert.ok(!JSON.stringify(state).includes(ID), 'nothing of the image machine is left');
  });

  it('makes the cgroups with the limits of config.json and runc device rules', () => {
    const cg = join(dir, 'cg');
    const state = keptState(cg);
    // The parent's cpuset (a new cpuset starts empty).
    mkdirSync(join(cg, 'cpuset', 'nullspace'), { recursive: true });
    writeFileSync(join(cg, 'cpuset', 'nullspace', 'cpuset.cpus'), '0-1\n');
    writeFileSync(join(cg, 'cpuset', 'nullspace', 'cpuset.mems'), '0\n');
    mkdirSync(state.cgroup_paths.cpuset as string, { recursive: true });
    writeFileSync(join(state.cgroup_paths.cpuset as string, 'cpuset.cpus'), '');
    writeFileSync(join(state.cgroup_paths.cpuset as string, 'cpuset.mems'), '');
    const got = planDirectRestore(ID, JSON.stringify(state), config());
    assert.ok('plan' in got);
    makeMachineCgroups(got.plan);
    const read = (c: string, f: string) => readFileSync(join(state.cgroup_paths[c] as string, f), 'utf8');
    assert.equal(read('memory', 'memory.limit_in_bytes'), String(512 * 1024 * 1024));
    assert.equal(read('memory', 'memory.memsw.limit_in_bytes'), String(512 * 1024 * 1024));
    assert.equal(read('cpu', 'cpu.cfs_quota_us'), '200000');
    assert.equal(read('cpu', 'cpu.cfs_period_us'), '100000');
    assert.equal(read('cpu', 'cpu.shares'), '512');
    assert.equal(read('pids', 'pids.max'), '4096');
    assert.equal(read('cpuset', 'cpuset.cpus'), '0-1');
    assert.equal(read('cpuset', 'cpuset.mems'), '0');
    // Plain files keep only the last write: deny all was written first, then each allowance.
    assert.equal(read('devices', 'devices.deny'), 'a *:* rwm');
    assert.equal(read('devices', 'devices.allow'), 'c 136:* rwm');
  });

  it("writes runc's state for the new init: its pid, start time and namespaces", () => {
    const runcDir = join(dir, 'runc', ID);
    const state = keptState('/cg');
    writeRestoredState(runcDir, state, process.pid);
    const back = JSON.parse(readFileSync(join(runcDir, 'state.json'), 'utf8')) as RuncStateFile;
    assert.equal(back.init_process_pid, process.pid);
    const stat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    assert.equal(back.init_process_start, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]));
    assert.deepEqual(back.namespace_paths, {
      NEWNET: `/proc/${process.pid}/ns/net`,
      NEWPID: `/proc/${process.pid}/ns/pid`,
    });
    assert.deepEqual(back.config, state.config);
    assert.deepEqual(back.external_descriptors, state.external_descriptors);
  });
});
