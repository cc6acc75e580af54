import type { EgressSpec } from '@nullspace/protocol';
import type { CpuPriority } from './cgroups/cpu-weight.js';
import type { MachineLink } from './net/egress-rules.js';
import type { RestoredFrom } from './rootfs/identity.js';

/**
 * The interface every machine isolator implements (runc today; a VM driver on hosts with real KVM
 * later). The server only ever talks to a driver through this, and every driver must pass the shared
 * conformance suite in test/driver-conformance.ts.
 */
export interface DriverMachineSpec {
  id: string;
  /** Absolute path of the template's root filesystem (read-only lower layer). */
  templateRootfs: string;
  vcpus: number;
  /** `background`: lowest CPU weight when CPUs are contended (a warm pool's machine); default normal. */
  cpuPriority?: CpuPriority;
  memoryMb: number;
  diskMb: number;
  /** Default working directory of commands; created if missing. */
  cwd: string;
  network: DriverNetwork;
  /**
   * Volumes mounted into the machine: by `create` once its agent answers, by `restore` and
   * `createFromSnapshot` with the memory image (one the image lacks is mounted after it).
   */
  volumes?: readonly DriverVolumeMount[];
  /**
   * For `createFromSnapshot`: whose memory image it is (a fork parent, a snapshot, a template's
   * ready snapshot), written into the machine's identity file (rootfs/identity.ts).
   */
  restoredFrom?: RestoredFrom;
}

/** One volume mounted into a machine (see docs/volumes.md). */
export interface DriverVolumeMount {
  /** The attachment (`vat_...`). */
  attachmentId: string;
  /** Host directory where the volume's filesystem is mounted. */
  volumeRoot: string;
  /** The directory of the volume to mount (relative, plain components); null: its root. */
  subpath: string | null;
  /** Absolute path in the machine; created there if missing. */
  mountPath: string;
  readOnly: boolean;
}

/** What {@link MachineDriver.volumeHealth} found at a volume's mount path. */
export interface DriverVolumeHealth {
  healthy: boolean;
  /** Why not, in words a machine's owner may read (null when healthy). */
  reason: string | null;
  /** What of the volume is mounted there (null: nothing of it). */
  observed: { readOnly: boolean; subpath: string | null } | null;
}

/** A machine's link to the host and the egress policy in force on it. */
export interface DriverNetwork {
  link: MachineLink;
  egress: EgressSpec;
}

/** A machine's counters now (see MachineMetricsReading in the protocol). */
export interface DriverMachineUsage {
  cpuSeconds: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  diskUsedBytes: number;
  diskTotalBytes: number;
  /** As the machine sees it: rx is what reached it, tx what it sent. */
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

/** What the runtime sees of a machine, independent of what the server's store says. */
export type DriverMachineState = 'running' | 'paused' | 'stopped' | 'missing';

export interface MachineDriver {
  readonly name: string;
  /** Checks the host (tools, kernel features) and prepares state directories. Throws if unusable. */
  init(): Promise<void>;
  /** Starts a machine and resolves once its agent answers. On failure nothing is left behind. */
  create(spec: DriverMachineSpec): Promise<void>;
  /**
   * Makes machine `id`'s network (its namespace, link and rules for `network`) ahead of its
   * create, off the create's path: a later `create` or `createFromSnapshot` of the same id and
   * link uses it (waiting for it if it is still being made, and putting the spec's egress policy
   * in force if it differs), instead of making its own. What it made is the machine's like
   * anything else: `list` and the inventory show it, `destroy(id)` removes it. On failure nothing
   * is left behind.
   */
  prepareNetwork(id: string, network: DriverNetwork): Promise<void>;
  /**
   * Ends every process of the machine now, whatever they do (ignore signals, fork without end,
   * are frozen by a pause or held by a checkpoint in progress, which fails), and resolves once that
   * is irrevocable: none of them runs its code again. Frees nothing else; the processes may take a
   * moment more to be gone. `destroy` afterwards frees everything. Idempotent; a missing machine
   * is a no-op.
   */
  terminate(id: string): Promise<void>;
  /** Destroys a machine and everything it holds on the host. Idempotent; works after a crash. */
  destroy(id: string): Promise<void>;
  inspect(id: string): Promise<DriverMachineState>;
  /** Ids of every machine the runtime holds anything for (processes, mounts, disks, namespaces). */
  list(): Promise<string[]>;
  /** Host path of the Unix socket of the machine's agent. */
  agentSocketPath(id: string): string;
  /**
   * Replaces the egress policy of a running or paused machine, atomically: on failure the old
   * policy is still in force (a caller tightening it must then call {@link blockEgress}).
   */
  setEgress(id: string, network: DriverNetwork): Promise<void>;
  /** Fail-closed: the machine reaches nothing any more (rules, or else its link goes down). */
  blockEgress(id: string, network: DriverNetwork): Promise<void>;
  /**
   * Copies what the machine changed in its root filesystem (the overlay's upper layer, whiteouts and
   * opaque directories included) into the empty directory `target`, the machine frozen meanwhile; a
   * template layer is made this way. Left as it was (running or paused).
   */
  exportChanges(id: string, target: string): Promise<void>;
  /** Changes the CPU weight of a running machine (a warm machine checked out becomes `normal`). */
  setCpuPriority(id: string, priority: CpuPriority): Promise<void>;
  /** Counters of a running or paused machine (cgroups, disk, link). */
  usage(id: string): Promise<DriverMachineUsage>;

  // ---- volumes of a running machine (kept by hibernate, restore, snapshot and fork) ----

  /**
   * Mounts a volume into a running machine, creating its mount path there. A mount path or
   * subpath that cannot be used (a symlink or a file in the way) fails with `invalid_argument`.
   */
  attachVolume(id: string, mount: DriverVolumeMount): Promise<void>;
  /** Unmounts a volume from a running machine. Idempotent. */
  detachVolume(id: string, mount: DriverVolumeMount): Promise<void>;
  /** Whether the volume is mounted in the machine as `mount` says. */
  volumeHealth(id: string, mount: DriverVolumeMount): Promise<DriverVolumeHealth>;
  /** Unmounts whatever of the volume is at its mount path and mounts it again as `mount` says. */
  remountVolume(id: string, mount: DriverVolumeMount): Promise<void>;

  // ---- lifecycle (memory state is kept by every one of these) ----

  /** Freezes every process of the machine in place. Idempotent. */
  pause(id: string): Promise<void>;
  /** Thaws a paused machine. Idempotent. */
  unpause(id: string): Promise<void>;
  /**
   * Checkpoints memory into `imageDir` (see {@link isImageComplete}) and releases processes,
   * mounts and the network namespace; the disk image stays. It may answer once the image is
   * complete and the processes are gone, the rest released right after (see
   * {@link drainReleases}); `restore` and `destroy` wait for that. On failure the machine keeps
   * running (or is left for `destroy`), and no partial image is left.
   */
  hibernate(id: string, imageDir: string, timeoutMs: number): Promise<void>;
  /**
   * Resolves once the work a driver does after a hibernate answered (its release of host
   * resources, which a restore or destroy of that machine waits for) has ended. A closing server
   * waits for it.
   */
  drainReleases?(): Promise<void>;
  /** Starts a hibernated machine again from `imageDir`, same id; resolves once its agent answers. */
  restore(spec: DriverMachineSpec, imageDir: string, timeoutMs: number): Promise<void>;
  /**
   * Writes a consistent snapshot (memory + disk) of a running or paused machine into `dir`, freezing
   * it only while the state is taken; it is left as it was. Returns how long it was frozen.
   */
  snapshot(id: string, dir: string, timeoutMs: number): Promise<{ pausedMs: number }>;
  /** Starts a new machine (own disk copy, network namespace, cgroups) from a snapshot `dir`. */
  createFromSnapshot(spec: DriverMachineSpec, dir: string, timeoutMs: number): Promise<void>;
  /**
   * After a server restart: waits for a checkpoint or restore the previous server started on this
   * machine to end, then settles a hibernate into `imageDir` (finished → complete image and
   * resources released; unfinished → partial image removed).
   */
  settle(id: string, imageDir?: string): Promise<void>;
  /** Whether `dir` holds a complete image written by hibernate or snapshot. */
  isImageComplete(dir: string): boolean;
}
