/** The OCI config of a machine: what makes it a sandbox, and the limits it is given. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { machineSeccompProfile } from './seccomp.js';
import { MACHINE_CAPABILITIES, type MachineOciOptions, buildMachineOciSpec } from './spec.js';

const options: MachineOciOptions = {
  machineId: 'mch_test',
  hostname: 'mch-test',
  rootfs: '/var/lib/nullspace/machines/mch_test/rootfs',
  netnsPath: '/run/netns/ns-mch_test',
  cgroupsPath: '/nullspace/mch_test',
  vcpus: 2,
  memoryMb: 512,
  pidsLimit: 4096,
  agent: {
    nodeBinary: '/host/node',
    initBinary: '/host/init',
    homeDir: '/host/agent',
    runDir: '/host/run/mch_test',
  },
  paths: {
    nodeBinary: '/.nullspace/bin/node',
    initBinary: '/.nullspace/bin/init',
    homeDir: '/.nullspace/agent',
    runDir: '/.nullspace/run',
  },
  agentArgs: ['/.nullspace/agent/agent.cjs'],
  nofileLimit: 65536,
  criuConfig: '/host/criu.conf',
  idRange: { base: 2 ** 30 + 3 * 65536, size: 65536 },
  sysfsSource: '/var/lib/nullspace/machines/mch_test/sys',
};

interface Mount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}
interface Spec {
  hostname: string;
  annotations: Record<string, string>;
  root: { path: string };
  process: {
    args: string[];
    env: string[];
    user: { uid: number };
    capabilities: Record<string, string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  mounts: Mount[];
  linux: {
    namespaces: { type: string; path?: string }[];
    uidMappings?: { containerID: number; hostID: number; size: number }[];
    gidMappings?: { containerID: number; hostID: number; size: number }[];
    cgroupsPath: string;
    resources: {
      devices: { allow: boolean; access: string }[];
      memory: { limit: number; swap: number };
      cpu: { quota: number; period: number; shares?: number };
      pids: { limit: number };
    };
    seccomp: unknown;
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

const build = (o: Partial<MachineOciOptions> = {}) =>
  buildMachineOciSpec({ ...options, ...o }) as unknown as Spec;

describe('buildMachineOciSpec', () => {
  const spec = build();

  it('own pid, ipc, uts, mount and user namespaces; the network namespace made for the machine; no host ones', () => {
    const ns = spec.linux.namespaces;
    assert.deepEqual(ns.map((n) => n.type).sort(), ['ipc', 'mount', 'network', 'pid', 'user', 'uts']);
    assert.equal(ns.find((n) => n.type === 'network')?.path, options.netnsPath);
    assert.ok(ns.filter((n) => n.type !== 'network').every((n) => n.path === undefined));
  });

  it("maps the machine's ids 0..65535, users and groups, onto its own host range, and nothing else", () => {
    const want = [{ containerID: 0, hostID: 2 ** 30 + 3 * 65536, size: 65536 }];
    assert.deepEqual(spec.linux.uidMappings, want);
    assert.deepEqual(spec.linux.gidMappings, want);
  });

  it("binds the sysfs the host mounted in the machine's network namespace read-only at /sys", () => {
    const sys = spec.mounts.find((m) => m.destination === '/sys');
    assert.equal(sys?.type, 'bind');
    assert.equal(sys?.source, options.sysfsSource);
    for (const o of ['ro', 'nosuid', 'noexec', 'nodev']) assert.ok(sys?.options.includes(o), o);
  });

  it('without an id range (a machine hibernated before machines had user namespaces): as it was made', () => {
    const old = build({ idRange: null });
    assert.ok(!old.linux.namespaces.some((n) => n.type === 'user'));
    assert.equal(old.linux.uidMappings, undefined);
    assert.equal(old.mounts.find((m) => m.destination === '/sys')?.type, 'sysfs');
  });

  it('root keeps a reduced capability set, the same in every set, and no new privileges', () => {
    const caps = spec.process.capabilities;
    for (const set of ['bounding', 'effective', 'permitted'])
      assert.deepEqual(caps[set], [...MACHINE_CAPABILITIES]);
    assert.equal(caps.inheritable, undefined);
    assert.equal(caps.ambient, undefined);
    for (const dangerous of [
      'CAP_SYS_ADMIN',
      'CAP_SYS_MODULE',
      'CAP_SYS_RAWIO',
      'CAP_SYS_PTRACE',
      'CAP_SYS_TIME',
      'CAP_SYS_BOOT',
      'CAP_NET_ADMIN',
      'CAP_NET_RAW',
      'CAP_MKNOD',
      'CAP_DAC_READ_SEARCH',
      'CAP_BPF',
      'CAP_PERFMON',
    ])
      assert.ok(!(MACHINE_CAPABILITIES as readonly string[]).includes(dangerous), dangerous);
    assert.equal(spec.process.noNewPrivileges, true);
    assert.equal(spec.process.user.uid, 0);
  });

  it('limits: memory with no swap beyond it, vcpus as a CPU quota, pids, open files', () => {
    const r = spec.linux.resources;
    assert.equal(r.memory.limit, 512 * 1024 * 1024);
    assert.equal(r.memory.swap, r.memory.limit);
    assert.equal(r.cpu.quota / r.cpu.period, 2);
    assert.equal(r.cpu.shares, undefined);
    assert.equal(build({ cpuShares: 2 }).linux.resources.cpu.shares, 2);
    assert.equal(build({ vcpus: 1 }).linux.resources.cpu.quota / r.cpu.period, 1);
    assert.equal(r.pids.limit, 4096);
    assert.deepEqual(spec.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 65536, soft: 65536 }]);
    assert.equal(spec.linux.cgroupsPath, options.cgroupsPath);
  });

  it('devices are denied by default', () => {
    assert.deepEqual(spec.linux.resources.devices, [{ allow: false, access: 'rwm' }]);
  });

  it('runs under the machine seccomp profile, with the kernel’s sensitive files masked or read-only', () => {
    assert.deepEqual(spec.linux.seccomp, machineSeccompProfile());
    for (const p of ['/proc/kcore', '/proc/keys', '/sys/firmware'])
      assert.ok(spec.linux.maskedPaths.includes(p), p);
    for (const p of ['/proc/sys', '/proc/sysrq-trigger']) assert.ok(spec.linux.readonlyPaths.includes(p), p);
  });

  it('the agent comes in read-only; only its socket directory is writable, and not executable', () => {
    const at = (d: string) => spec.mounts.find((m) => m.destination === d);
    for (const key of ['nodeBinary', 'initBinary', 'homeDir'] as const) {
      const m = at(options.paths[key]);
      assert.equal(m?.source, options.agent[key]);
      for (const opt of ['ro', 'nosuid', 'nodev']) assert.ok(m?.options.includes(opt), `${key} ${opt}`);
    }
    const run = at(options.paths.runDir);
    assert.equal(run?.source, options.agent.runDir);
    for (const opt of ['rw', 'nosuid', 'nodev', 'noexec']) assert.ok(run?.options.includes(opt), opt);
    assert.ok(at('/sys')?.options.includes('ro'));
    for (const m of spec.mounts) assert.ok(m.options.includes('nosuid'), m.destination);
  });

  it('starts init, which starts the agent with node; the machine id is in its environment', () => {
    assert.deepEqual(spec.process.args, [
      options.paths.initBinary,
      '--',
      options.paths.nodeBinary,
      ...options.agentArgs,
    ]);
    assert.ok(spec.process.env.includes('NULLSPACE_MACHINE_ID=mch_test'));
    assert.ok(spec.process.env.some((e) => e.startsWith('PATH=/')));
    assert.equal(spec.hostname, 'mch-test');
    assert.equal(spec.root.path, options.rootfs);
    assert.equal(spec.annotations['org.criu.config'], options.criuConfig);
  });
});
