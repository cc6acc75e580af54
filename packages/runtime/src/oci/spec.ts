import type { IdRange } from '../userns/id-ranges.js';
import { machineSeccompProfile } from './seccomp.js';

/**
 * Builds the OCI runtime config (config.json) of a machine. Everything that makes a machine a
 * sandbox is declared here: namespaces, cgroup limits, capabilities, seccomp, devices, masked
 * /proc paths, no_new_privs. See docs/SECURITY.md for the threat model.
 */
export interface MachineOciOptions {
  machineId: string;
  hostname: string;
  rootfs: string;
  netnsPath: string;
  cgroupsPath: string;
  vcpus: number;
  /** `cpu.shares` (see cgroups/cpu-weight.ts); runc's default when left out. */
  cpuShares?: number;
  memoryMb: number;
  pidsLimit: number;
  /** Host files and directories the agent needs, bind-mounted read-only. */
  agent: { nodeBinary: string; initBinary: string; homeDir: string; runDir: string };
  /** Container paths they appear at. */
  paths: { nodeBinary: string; initBinary: string; homeDir: string; runDir: string };
  agentArgs: string[];
  nofileLimit: number;
  /**
   * A CRIU configuration file runc hands to every checkpoint and restore of this machine
   * (annotation `org.criu.config`): how the runtime sets per-operation options runc 1.1 has no
   * flag for (`tcp-close` when a fork is restored).
   */
  criuConfig: string;
  /**
   * The machine's host id range: its user namespace maps ids 0..size-1 to base.. (null: no user
   * namespace, a machine hibernated before machines had one, restored as it was made).
   */
  idRange: IdRange | null;
  /**
   * With a user namespace: a sysfs the host mounted from inside the machine's network namespace
   * (so /sys/class/net shows the machine's interfaces), bound read-only at /sys. The machine's
   * user namespace cannot mount one itself: sysfs needs the network namespace to belong to the
   * mounting user namespace, and the host made it (see docs/SECURITY.md, "User namespace").
   */
  sysfsSource: string;
}

/**
 * Capabilities root inside a machine keeps: enough to administer its own files and processes
 * (chown, setuid for su/sudo-like tools, kill, binding low ports). Everything that reaches the
 * kernel or host is gone: SYS_ADMIN (mount, namespaces), SYS_MODULE, SYS_RAWIO, SYS_TIME, SYS_BOOT,
 * MKNOD, NET_ADMIN, NET_RAW, SYS_PTRACE, DAC_READ_SEARCH (open_by_handle_at escapes), BPF, PERFMON...
 */
export const MACHINE_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
  'CAP_SYS_CHROOT',
] as const;

const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function buildMachineOciSpec(o: MachineOciOptions): Record<string, unknown> {
  const caps = [...MACHINE_CAPABILITIES];
  const env = {
    PATH: DEFAULT_PATH,
    HOME: '/root',
    LANG: 'C.UTF-8',
    TERM: 'xterm-256color',
    NULLSPACE_MACHINE_ID: o.machineId,
  };
  const ro = (source: string, destination: string) => ({
    destination,
    type: 'bind',
    source,
    options: ['rbind', 'ro', 'nosuid', 'nodev'],
  });
  return {
    ociVersion: '1.0.2',
    hostname: o.hostname,
    annotations: { 'org.criu.config': o.criuConfig },
    root: { path: o.rootfs, readonly: false },
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [o.paths.initBinary, '--', o.paths.nodeBinary, ...o.agentArgs],
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: o.nofileLimit, soft: o.nofileLimit }],
      noNewPrivileges: true,
    },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      {
        destination: '/dev/mqueue',
        type: 'mqueue',
        source: 'mqueue',
        options: ['nosuid', 'noexec', 'nodev'],
      },
      o.idRange === null
        ? {
            destination: '/sys',
            type: 'sysfs',
            source: 'sysfs',
            options: ['nosuid', 'noexec', 'nodev', 'ro'],
          }
        : {
            destination: '/sys',
            type: 'bind',
            source: o.sysfsSource,
            options: ['rbind', 'ro', 'nosuid', 'noexec', 'nodev'],
          },
      ro(o.agent.nodeBinary, o.paths.nodeBinary),
      ro(o.agent.initBinary, o.paths.initBinary),
      ro(o.agent.homeDir, o.paths.homeDir),
      {
        destination: o.paths.runDir,
        type: 'bind',
        source: o.agent.runDir,
        options: ['rbind', 'rw', 'nosuid', 'nodev', 'noexec'],
      },
    ],
    linux: {
      namespaces: [
        { type: 'pid' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'network', path: o.netnsPath },
        ...(o.idRange !== null ? [{ type: 'user' }] : []),
      ],
      ...(o.idRange !== null ? idMappings(o.idRange) : {}),
      cgroupsPath: o.cgroupsPath,
      resources: {
        // Deny by default; runc then adds its standard allowances: read/write on null, zero, full,
        // random, urandom, tty, ptmx, pts and /dev/net/tun, and `mknod` of any node (harmless:
        // the machine lacks CAP_MKNOD). No host block device is reachable or created.
        devices: [{ allow: false, access: 'rwm' }],
        memory: { limit: o.memoryMb * 1024 * 1024, swap: o.memoryMb * 1024 * 1024 },
        cpu: {
          quota: o.vcpus * 100_000,
          period: 100_000,
          ...(o.cpuShares !== undefined ? { shares: o.cpuShares } : {}),
        },
        pids: { limit: o.pidsLimit },
      },
      seccomp: machineSeccompProfile(),
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}

/** Ids 0..size-1 of the machine (users and groups) are host ids base..base+size-1. */
function idMappings(range: IdRange) {
  const mapping = [{ containerID: 0, hostID: range.base, size: range.size }];
  return { uidMappings: mapping, gidMappings: mapping };
}
