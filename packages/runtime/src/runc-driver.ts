// Over 600 lines: one class implementing all 25 members of MachineDriver; each mechanism it uses has its own folder.
import {
  type FSWatcher,
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
  statSync,
  statfsSync,
  watch,
  writeFileSync,
} from 'node:fs';
import {
  constants,
  type FileHandle,
  access,
  chown,
  copyFile,
  mkdir,
  open,
  readFile,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AGENT_PATHS, CodedError } from '@nullspace/protocol';
import { AgentClient } from './agent-client.js';
import { CPU_SHARES, type CpuPriority, setCpuPriority } from './cgroups/cpu-weight.js';
import { Freezer } from './cgroups/freezer.js';
import { cgroupUsageSync, readNumberSync } from './cgroups/usage.js';
import { type CheckpointStep, checkpointStep } from './checkpoint-steps.js';
import type {
  DriverMachineSpec,
  DriverMachineState,
  DriverMachineUsage,
  DriverNetwork,
  DriverVolumeHealth,
  DriverVolumeMount,
  MachineDriver,
} from './driver.js';
import { type PlanStep, host, hostPlan } from './exec.js';
import { type RuntimeDirs, machineIds, machineInitRuns } from './inventory/inventory.js';
import { tearDownMachine, terminateMachine } from './inventory/teardown.js';
import { MACHINE_FILES } from './machine-dir.js';
import { renderEgressProgram } from './net/egress-rules.js';
import {
  applyEgress,
  cutLink,
  denyAll,
  ensureHostTable,
  linkSetUpSteps,
  settleRestoredNetns,
  settleRestoredNetnsSteps,
  writeLinkFiles,
} from './net/link.js';
import { netnsName, netnsPath } from './netns/netns.js';
import { buildMachineOciSpec } from './oci/spec.js';
import { IDENTITY_FILE, writeIdentity } from './rootfs/identity.js';
import { mountOverlaySteps } from './rootfs/overlay.js';
import { type KdatCache, ensureCriuKdat } from './runc/criu-kdat.js';
import {
  criuRestore,
  makeMachineCgroups,
  planDirectRestore,
  writeRestoredState,
} from './runc/criu-restore.js';
import { readDumpHookErrors, readDumpHookStamps, removeDumpHook, writeDumpHook } from './runc/dump-hook.js';
import { Runc } from './runc/runc.js';
import { DiskImage } from './storage/disk-image.js';
import { type IdRange, claimIdRange, readIdRange } from './userns/id-ranges.js';
import {
  checkIdmapSupport,
  idmapHelper,
  imageForRange,
  imageIdRange,
  lowerLayerSteps,
  shiftStep,
} from './userns/idmap.js';
import * as volumes from './volumes/machine-volumes.js';

export interface RuncDriverOptions {
  /** Directory for machines' bundles, disks and sockets, e.g. `<data dir>/machines`. */
  machinesDir: string;
  /** runc's own state directory, e.g. `<data dir>/runc`. */
  runcRoot: string;
  /** Host directory with the bundled agent (`agent.cjs`, AGENT_PATHS.scriptName). */
  agentHomeDir: string;
  /** Node.js binary the agent runs on (the server's own by default). */
  nodeBinary?: string;
  /** Statically linked init (tini) that is pid 1 in every machine. */
  initBinary?: string;
  /** cgroup parent for machines, `<parent>/<machine id>` in every hierarchy. */
  cgroupParent?: string;
  pidsLimit?: number;
  /** How long create waits for the agent to answer. */
  agentReadyTimeoutMs?: number;
}

const AGENT_LOG = 'agent.log';
/** In an image directory: CRIU's files, and (snapshots only) a copy of the disk image. */
const IMAGE_MEMORY = 'memory';
const IMAGE_DISK = 'disk.img';
/** In a machine dir: CRIU options of its next checkpoint or restore (see MachineOciOptions). */
const CRIU_CONFIG = 'criu.conf';
/** In a machine dir, for a moment: the host pid of its restored init (runc restore --pid-file). */
const RESTORED_PID = 'restored.pid';
/**
 * In an image dir (a hibernate's, a snapshot's, a fork's), beside `memory/`: runc's state of the
 * machine as it ran when the image was taken, from which a restore by CRIU directly writes runc's
 * state of the restored machine (runc/criu-restore.ts).
 */
const KEPT_RUNC_STATE = 'runc-state.json';
/** In a machine dir: the image a restore reads, made for the machine's id range (userns/idmap.ts). */
const CRIU_IMAGE = 'criu-image';

function hostnameOf(id: string): string {
  return id.replace('_', '-');
}

/**
 * CRIU found a Unix socket whose peer is not in the dump: in a machine, a connection to its agent
 * that was being closed at the freeze. After a drain (AgentClient.drain, which returns once the
 * agent's end of every connection is closed) there is none; a caller that froze without one, or an
 * agent of before that drain, may leave one. Running on for a moment, the agent finishes closing
 * it, and a second checkpoint goes through; a connection that stays (to something outside) fails
 * that one too.
 */
function isClosingSocket(err: unknown): boolean {
  return err instanceof CodedError && /Unix socket \d+ not found/.test(err.message);
}
const CLOSING_SOCKET_PAUSE_MS = 50;
/** While a create waits for its agent: how often the machine's init is checked, and the socket looked for without an inotify event. */
const LIVENESS_CHECK_MS = 100;
const SOCKET_POLL_MS = 50;

/** Host tools report a full disk in their own words; callers get `disk_full`. */
function diskFullOr(err: unknown): unknown {
  if (err instanceof CodedError && err.code === 'internal' && /No space left on device/.test(err.message))
    return new CodedError(
      'disk_full',
      err.message,
      { public_reason: 'the host is out of disk space' },
      { cause: err },
    );
  return err;
}

/**
 * The steps in a machine's network namespace a machine with a user namespace needs: its root is
 * not root of that namespace (the host made it, so CRIU can leave it out of the image), so without
 * the first, binding a port below 1024 would need CAP_NET_BIND_SERVICE there; its sysfs is mounted
 * from inside it at `sysfs`, so /sys/class/net shows the machine's own interfaces (see oci/spec.ts).
 */
export function machineSysfsSteps(netns: string, sysfs: string): PlanStep[] {
  return [
    ['mkdir', '-p', sysfs],
    [
      'nsenter',
      `--net=${netnsPath(netns)}`,
      'sh',
      '-c',
      `printf 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start && mount -t sysfs -o ro,nosuid,nodev,noexec sysfs '${sysfs}'`,
    ],
  ];
}

/**
 * Machines as OCI containers run by runc. Per machine, each with one owner here:
 *   - `<machinesDir>/<id>/disk.img` + `disk/`: the writable disk (DiskImage)
 *   - `<machinesDir>/<id>/rootfs`: overlay of the template and the disk's upper dir
 *   - `/run/netns/ns-<id>`: the network namespace, with the machine's end of its veth (net/link.ts)
 *   - the host end of the veth, `nsv…`, its alias the machine id
 *   - its chains `<id>_*` in the host's nftables table `nullspace` (shared by every machine, made
 *     by `init`), and the entries of its link in that table's dispatch maps: its egress policy
 *   - cgroups `<cgroupParent>/<id>` in every hierarchy: created by runc (by makeMachineCgroups before a restore), holding its processes
 *   - `<machinesDir>/<id>/run/agent.sock`: the agent's socket, bind-mounted into the machine
 * `destroy` tears down whatever of it the inventory (inventory/) finds, processes first, and
 * checks that nothing is left; `list` is the inventory's machine ids.
 */
export class RuncDriver implements MachineDriver {
  readonly name = 'runc';
  private readonly runc: Runc;
  private readonly nodeBinary: string;
  private readonly initBinary: string;
  private readonly cgroupParent: string;
  private readonly pidsLimit: number;
  private readonly readyTimeoutMs: number;
  private nofileLimit = 16_384;
  /** Where its machines are, for the inventory. */
  private readonly dirs: RuntimeDirs;
  /** Releases running after a hibernate answered (see releaseAfterHibernate); each resolves true if clean. */
  private readonly releasing = new Map<string, Promise<boolean>>();
  /** Machines whose last release was clean and which nothing started since. */
  private readonly releasedClean = new Set<string>();
  /** What init found or made of CRIU's kernel feature cache (runc/criu-kdat.ts). */
  kdatCache: KdatCache | undefined;
  /**
   * Networks being made ahead of their machine's create (prepareNetwork), each settled once it is
   * made or, failed, torn down again: a create of the id waits for it before it touches anything.
   */
  private readonly preparing = new Map<string, Promise<void>>();

  constructor(private readonly o: RuncDriverOptions) {
    this.runc = new Runc(o.runcRoot);
    this.nodeBinary = o.nodeBinary ?? realpathSync(process.execPath);
    this.initBinary = o.initBinary ?? '/usr/bin/tini-static';
    this.cgroupParent = o.cgroupParent ?? '/nullspace';
    this.pidsLimit = o.pidsLimit ?? 4096;
    this.readyTimeoutMs = o.agentReadyTimeoutMs ?? 20_000;
    this.dirs = { machinesDir: o.machinesDir, runcRoot: o.runcRoot, cgroupParent: this.cgroupParent };
  }

  async init(): Promise<void> {
    if (process.getuid?.() !== 0) throw new CodedError('internal', 'the runc driver needs root');
    const filesystems = await readFile('/proc/filesystems', 'utf8');
    for (const fs of ['overlay', 'xfs']) {
      if (!new RegExp(`\\s${fs}\\n`).test(filesystems))
        throw new CodedError('internal', `kernel lacks the ${fs} filesystem, which machines need`);
    }
    for (const tool of [
      'runc',
      'mkfs.xfs',
      'ip',
      'nft',
      'nsenter',
      'sysctl',
      'mount',
      'umount',
      'truncate',
    ]) {
      await host('sh', ['-c', `command -v ${tool}`]).catch(() => {
        throw new CodedError('internal', `${tool} is not installed; run scripts/setup.sh`);
      });
    }
    for (const f of [this.initBinary, this.nodeBinary, join(this.o.agentHomeDir, AGENT_PATHS.scriptName)]) {
      await access(f, constants.R_OK).catch(() => {
        throw new CodedError('internal', `${f} is missing; run scripts/setup.sh (and npm run build)`);
      });
    }
    for (const helper of [volumes.volumeHelper(), idmapHelper()])
      await access(helper, constants.X_OK).catch(() => {
        throw new CodedError('internal', `${helper} is missing; run scripts/setup.sh`);
      });
    await mkdir(this.o.machinesDir, { recursive: true });
    // Every machine's template layers are idmapped mounts: a host that cannot make them (a kernel
    // before 5.19, a data directory on a filesystem without them) fails here, not at each create.
    await checkIdmapSupport(this.o.machinesDir);
    await searchableByMachines(this.o.machinesDir);
    await mkdir(this.o.runcRoot, { recursive: true });
    await ensureHostTable();
    // CRIU's kernel probe, paid by every checkpoint and restore unless cached (runc/criu-kdat.ts).
    this.kdatCache = await ensureCriuKdat({ scratchDir: dirname(this.o.runcRoot) });
    const limits = readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+\d+\s+(\d+)/);
    if (limits?.[1]) this.nofileLimit = Math.min(Number(limits[1]), 65_536);
  }

  agentSocketPath(id: string): string {
    return join(this.dir(id), 'run', AGENT_PATHS.socketName);
  }

  async create(spec: DriverMachineSpec): Promise<void> {
    const disk = new DiskImage(this.dir(spec.id));
    await this.startMachine(
      spec,
      () => ({ diskSteps: [...disk.createSteps(spec.diskMb)], range: this.claimRange(spec.id) }),
      { restore: false },
      async () => {
        await this.runc.run(spec.id, this.dir(spec.id), niceOf(spec));
      },
    );
  }

  /**
   * The network lane of a create (namespace, veth, addresses, egress rules, the namespace's own
   * settings and sysfs), made now for a create to come: a create's host side then is its disk
   * lane alone, which with both lanes side by side on a loaded host had to share the CPUs with this
   * one (bench/prepare-host.mjs; bench/README.md, "Machine start"). Made with the user namespace's
   * settings (ip_unprivileged_port_start, the sysfs mount), which every new machine has.
   */
  async prepareNetwork(id: string, network: DriverNetwork): Promise<void> {
    const made = this.prepareNetworkNow(id, network);
    const settled = made.then(
      () => undefined,
      () => undefined,
    );
    this.preparing.set(id, settled);
    try {
      await made;
    } finally {
      if (this.preparing.get(id) === settled) this.preparing.delete(id);
    }
  }

  private async prepareNetworkNow(id: string, network: DriverNetwork): Promise<void> {
    const dir = this.dir(id);
    try {
      await mkdir(dir, { recursive: true });
      const steps = await this.networkSteps(id, network, { newAddress: false, userns: true });
      // At niceness 19: made while other creates run, it yields the CPUs to them.
      await hostPlan([steps], { timeoutMs: 120_000, nice: 19 });
      const marker: PreparedNetworkFile = {
        link: network.link,
        egress: renderEgressProgram(network.link, network.egress),
      };
      await writeFile(join(dir, MACHINE_FILES.preparedNetwork), JSON.stringify(marker));
    } catch (err) {
      await ensureHostTable().catch(() => undefined);
      // Not this.destroy, which waits for this preparation to settle.
      await tearDownMachine(this.dirs, id, { keepFiles: false }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * The network made for machine `spec.id` by prepareNetwork, if it is there and for this link:
   * its record is removed (it is used once). One made for another link (never, unless a caller
   * reuses an id) is taken down, and the create makes its own.
   */
  private async takePreparedNetwork(spec: DriverMachineSpec): Promise<PreparedNetworkFile | undefined> {
    const file = join(this.dir(spec.id), MACHINE_FILES.preparedNetwork);
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    await rm(file, { force: true });
    const marker = JSON.parse(text) as PreparedNetworkFile;
    if (sameLink(marker.link, spec.network.link) && existsSync(netnsPath(netnsName(spec.id)))) return marker;
    await this.release(spec.id);
    return undefined;
  }

  /**
   * Claims (or re-claims, when recorded) the machine's host id range (userns/id-ranges.ts). Its
   * directory is then its root's group's to enter (0710 root:<its root>), and no other's: runc
   * and CRIU mount its root filesystem and bind sources as the machine's root, through it.
   */
  private claimRange(id: string): IdRange {
    const dir = this.dir(id);
    mkdirSync(dir, { recursive: true });
    const range = claimIdRange(dir);
    chownSync(dir, 0, range.base);
    chmodSync(dir, 0o710);
    return range;
  }

  async setEgress(id: string, network: DriverNetwork): Promise<void> {
    await applyEgress(network.link, network.egress);
  }

  async blockEgress(id: string, network: DriverNetwork): Promise<void> {
    try {
      await denyAll(network.link);
    } catch (err) {
      // Not even the deny rules load: nothing leaves a machine whose link is down.
      await cutLink(network.link).catch((cutErr: unknown) => {
        throw new CodedError('internal', `machine ${id}: could not block its egress`, undefined, {
          cause: new AggregateError([err, cutErr]),
        });
      });
    }
  }

  /**
   * Read synchronously, every file a kernel pseudo-file (cgroupfs, sysfs) or the machine's own
   * small `link` file, and `statfs` of its disk (XFS answers from in-memory counters): the metrics
   * sampler calls this for every running machine every few seconds, and each read through libuv's
   * thread pool cost a queue hand-off and a wake-up of the event loop — about 1 ms of the server's
   * CPU per machine sampled, 12 % of a core with 500 machines alive, against ~0.1 ms this way
   * (bench/README.md, "A lone create with many machines alive").
   */
  async usage(id: string): Promise<DriverMachineUsage> {
    const dir = this.dir(id);
    let hostIf = '';
    try {
      hostIf = readFileSync(join(dir, MACHINE_FILES.link), 'utf8').trim();
    } catch {
      // no link file (a machine being made or torn down): no link counters
    }
    // The host end of the veth counts the other way round: what it received, the machine sent.
    const stat = (name: string) => {
      if (!hostIf) return 0;
      try {
        return readNumberSync(`/sys/class/net/${hostIf}/statistics/${name}`);
      } catch {
        return 0;
      }
    };
    const cg = cgroupUsageSync(`${this.cgroupParent}/${id}`);
    const fs = statfsSync(new DiskImage(dir).mountPoint);
    return {
      ...cg,
      diskUsedBytes: (fs.blocks - fs.bfree) * fs.bsize,
      diskTotalBytes: fs.blocks * fs.bsize,
      rxBytes: stat('tx_bytes'),
      txBytes: stat('rx_bytes'),
      rxPackets: stat('tx_packets'),
      txPackets: stat('rx_packets'),
    };
  }

  async attachVolume(id: string, mount: DriverVolumeMount): Promise<void> {
    await volumes.attachVolume(await this.machineProcess(id), mount);
    await this.recordVolumes(id, (mounted) => [...mounted, mount]);
  }

  async detachVolume(id: string, mount: DriverVolumeMount): Promise<void> {
    await volumes.detachVolume(await this.machineProcess(id), mount);
    await this.recordVolumes(id, (mounted) => mounted.filter((m) => m.attachmentId !== mount.attachmentId));
  }

  async volumeHealth(id: string, mount: DriverVolumeMount): Promise<DriverVolumeHealth> {
    return volumes.volumeHealth((await this.machineProcess(id)).pid, mount);
  }

  async remountVolume(id: string, mount: DriverVolumeMount): Promise<void> {
    await volumes.remountVolume(await this.machineProcess(id), mount);
    await this.recordVolumes(id, (mounted) => [...mounted, mount]);
  }

  /** Mounts the volumes of `spec` the machine lacks (all after a create; new ones after a restore). */
  private async mountVolumes(spec: DriverMachineSpec): Promise<void> {
    const mounts = spec.volumes ?? [];
    await volumes.writeVolumeRecord(this.dir(spec.id), mounts);
    if (mounts.length > 0) await volumes.ensureVolumes(await this.machineProcess(spec.id), mounts);
  }

  /** Updates the record of the machine's volumes (one entry per attachment) that checkpoints read. */
  private async recordVolumes(
    id: string,
    change: (mounted: DriverVolumeMount[]) => DriverVolumeMount[],
  ): Promise<void> {
    const byAttachment = new Map<string, DriverVolumeMount>();
    for (const m of change(await volumes.readVolumeRecord(this.dir(id)))) byAttachment.set(m.attachmentId, m);
    await volumes.writeVolumeRecord(this.dir(id), [...byAttachment.values()]);
  }

  private async machineProcess(id: string): Promise<volumes.MachineProcess> {
    const state = await this.runc.state(id);
    if (!state || (state.status !== 'running' && state.status !== 'paused'))
      throw new CodedError('internal', `machine ${id} is not running (runc: ${state?.status ?? 'missing'})`);
    return { pid: state.pid, machineId: id };
  }

  async pause(id: string): Promise<void> {
    await this.freezer(id).freeze();
  }

  async unpause(id: string): Promise<void> {
    await this.freezer(id).thaw();
  }

  async exportChanges(id: string, target: string): Promise<void> {
    const disk = new DiskImage(this.dir(id));
    const freezer = this.freezer(id);
    const wasFrozen = (await this.inspect(id)) === 'paused';
    await freezer.freeze();
    try {
      // Frozen, nothing changes the upper directory; its page cache is the overlay's, so a plain
      // copy sees every write. cp -a keeps owners, modes, links, devices (whiteouts are 0/0 character
      // devices) and extended attributes (trusted.overlay.opaque marks an opaque directory).
      await host('sync', ['-f', disk.mountPoint]);
      // A target on a full disk (a template build's layer): `disk_full`, which the caller keeps.
      await host('cp', ['-a', `${disk.upper}/.`, target], { timeoutMs: 600_000 }).catch((err: unknown) => {
        throw diskFullOr(err);
      });
      // A layer stores the ids a machine sees (0: its root), as the template's base does.
      const range = readIdRange(this.dir(id));
      if (range !== null) {
        const [helper, ...args] = shiftStep(target, range.base, 0, range.size);
        await host(helper as string, args, { timeoutMs: 600_000 });
      }
      // The build machine's own identity is not the template's: each machine gets its own.
      await rm(join(target, 'etc', 'machine-id'), { force: true });
      await rm(join(target, IDENTITY_FILE.slice(1)), { force: true });
    } finally {
      if (!wasFrozen) await freezer.thaw();
    }
  }

  async setCpuPriority(id: string, priority: CpuPriority): Promise<void> {
    setCpuPriority(`${this.cgroupParent}/${id}`, priority);
  }

  private freezer(id: string): Freezer {
    return new Freezer(`${this.cgroupParent}/${id}`);
  }

  async hibernate(id: string, imageDir: string, timeoutMs: number): Promise<void> {
    const partial = `${imageDir}.partial`;
    const freezer = this.freezer(id);
    for (let attempt = 1; ; attempt++) {
      await rm(partial, { recursive: true, force: true });
      await mkdir(partial, { recursive: true });
      try {
        // Frozen here first: CRIU (runc passes it the freezer cgroup) freezes a running cgroup v1
        // itself, but reads the state right after writing FROZEN, sees FREEZING and sleeps 100 ms
        // before it looks again (criu/seize.c, `step_ms`), in every hibernate: that sleep was 100
        // of a 100 MiB machine's dump. Found frozen, it seizes the tasks at once. Freezer.freeze
        // polls the state with a backoff of at most 10 ms (0.5–2 ms for a machine here).
        await checkpointStep(id, 'hibernate: freeze', () => freezer.freeze());
        // Without --leave-running the processes end once the dump is complete and runc removes the
        // container and its cgroups; if CRIU fails, it lets them run on (thawed below).
        await checkpointStep(id, 'hibernate: runc checkpoint', () =>
          this.checkpointInto(id, partial, false, timeoutMs),
        );
        break;
      } catch (err) {
        // Killed at the deadline right after CRIU finished, the hibernate did happen. Anything
        // else: the machine was left running (thawed: CRIU restores the state it found, frozen).
        if (await this.isFinishedHibernate(id, partial)) break;
        await freezer.thaw().catch(() => undefined);
        await rm(partial, { recursive: true, force: true });
        if (attempt > 1 || !isClosingSocket(err)) throw err;
        await sleep(CLOSING_SOCKET_PAUSE_MS);
      }
    }
    await checkpointStep(id, 'hibernate: keep the image', () => rename(partial, imageDir));
    this.releaseAfterHibernate(id);
  }

  /**
   * The teardown of a hibernated machine (its runc state, overlay, template layers, disk mount and
   * loop device, link, network namespace and rules; 250–600 ms here, more than CRIU's dump of 100
   * MiB) runs after hibernate has answered: by then its memory is in the image and its processes
   * are gone, which is what a hibernate is for. What it still holds is the host's bookkeeping, and
   * everything that could use it waits for it: a restore (which then skips its own release when
   * this one left nothing), a destroy. A failed one is done again by either (both tear down
   * whatever the inventory still finds), and one cut by a server exit is the next server's, as a
   * crash mid-hibernate is (see settle, and the re-adoption of a hibernated machine).
   */
  private releaseAfterHibernate(id: string): void {
    const released = this.release(id).then(
      () => true,
      () => false,
    );
    this.releasing.set(id, released);
    void released.then((clean) => {
      if (this.releasing.get(id) !== released) return;
      this.releasing.delete(id);
      if (clean) this.releasedClean.add(id);
    });
  }

  /**
   * Waits for a release still running after a hibernate; true if the machine is known to hold
   * nothing on the host any more (that release, or the last one, finished cleanly, and nothing
   * started it since).
   */
  private async releaseSettled(id: string): Promise<boolean> {
    const pending = this.releasing.get(id);
    if (pending !== undefined) await pending;
    return this.releasedClean.has(id);
  }

  /** Resolves once every release running after a hibernate has ended (a server closing waits for them). */
  async drainReleases(): Promise<void> {
    await Promise.all([...this.releasing.values()]);
  }

  async restore(spec: DriverMachineSpec, imageDir: string, timeoutMs: number): Promise<void> {
    const dir = this.dir(spec.id);
    // Whatever an interrupted hibernate or restore left (mounts, namespace) goes first, unless
    // this driver's own release after the hibernate left nothing (two inventory reads saved).
    const step = <T>(name: CheckpointStep, fn: () => Promise<T>) => checkpointStep(spec.id, name, fn);
    const clean = await step('restore: wait for the release', () => this.releaseSettled(spec.id));
    if (!clean) await step('restore: release leftovers', () => this.release(spec.id));
    this.releasedClean.delete(spec.id);
    const disk = new DiskImage(dir);
    try {
      // Its own range again (none for a machine hibernated before machines had user namespaces).
      const range = await step('restore: claim id range', async () =>
        readIdRange(dir) === null ? null : this.claimRange(spec.id),
      );
      // The same address as before: sockets bound to it and open connections come back alive.
      await step('restore: prepare host (disk, overlay, netns, link)', () =>
        this.prepareHost(spec, [disk.mountSteps()], { range }),
      );
      await step('restore: identity files', () =>
        writeIdentity(join(dir, MACHINE_FILES.rootfs), spec.id, 'resume', null, range),
      );
      await this.restoreFrom(spec.id, imageDir, {
        range,
        timeoutMs,
        newAddress: false,
        volumes: spec.volumes,
        ...niceOf(spec),
      });
      await step('restore: settle netns', () =>
        settleRestoredNetns(netnsName(spec.id), { nonlocalBind: false }),
      );
      await step('restore: wait for the agent', () =>
        Promise.all([
          this.waitForAgent(spec.id),
          range === null ? undefined : this.unmountHostSysfs(spec.id),
        ]),
      );
      await step('restore: mount volumes', () => this.mountVolumes(spec));
    } catch (err) {
      // Back to hibernated: the image and the disk file are untouched, so a later resume can retry.
      await this.release(spec.id).catch(() => undefined);
      throw err;
    }
  }

  async snapshot(id: string, snapDir: string, timeoutMs: number): Promise<{ pausedMs: number }> {
    const dir = this.dir(id);
    const state = await this.runc.state(id);
    if (!state || (state.status !== 'running' && state.status !== 'paused'))
      throw new CodedError('internal', `machine ${id} is not running (runc: ${state?.status ?? 'missing'})`);
    const wasPaused = state.status === 'paused';
    const partial = `${snapDir}.partial`;
    const disk = new DiskImage(dir);
    let pausedMs = 0;
    for (let attempt = 1; ; attempt++) {
      await rm(partial, { recursive: true, force: true });
      await mkdir(partial, { recursive: true });
      try {
        if (wasPaused) {
          // Frozen already, and it stays so: memory and disk as they are.
          const frozenAt = Date.now();
          await this.checkpointInto(id, partial, true, timeoutMs);
          await hostPlan([disk.copyToSteps(join(partial, IMAGE_DISK))], { timeoutMs });
          pausedMs = Date.now() - frozenAt;
        } else {
          pausedMs = await this.checkpointRunning(id, partial, timeoutMs);
        }
        break;
      } catch (err) {
        await rm(partial, { recursive: true, force: true });
        // A paused machine's agent cannot finish closing anything: no second try.
        if (attempt > 1 || wasPaused || !isClosingSocket(err)) throw diskFullOr(err);
        await sleep(CLOSING_SOCKET_PAUSE_MS);
      }
    }
    await rename(partial, snapDir);
    return { pausedMs };
  }

  /**
   * Checkpoints a running machine into `partial` (memory, and its disk copied while it is frozen)
   * and leaves it running; returns how long it was frozen. The freeze, the disk copy and the thaw
   * are done by CRIU's action script at the points of the dump where they belong (see
   * runc/dump-hook.ts), so the machine is frozen only while CRIU dumps it.
   */
  private async checkpointRunning(id: string, partial: string, timeoutMs: number): Promise<number> {
    const freezer = this.freezer(id);
    const disk = new DiskImage(this.dir(id));
    const hook = await writeDumpHook(
      this.dir(id),
      freezer.files(),
      disk.copyToSteps(join(partial, IMAGE_DISK)),
    );
    let stamps: Map<string, bigint>;
    try {
      await this.checkpointInto(id, partial, true, timeoutMs, [`action-script ${hook.script}`]);
    } catch (err) {
      // The disk copy failed (CRIU says only that its script did): what the copy said, e.g. a full
      // disk, which diskFullOr makes `disk_full`.
      const copy = await readDumpHookErrors(hook);
      if (copy)
        throw new CodedError(
          'internal',
          `machine ${id}: the snapshot's disk copy failed: ${copy.slice(0, 500)}`,
          undefined,
          {
            cause: err,
          },
        );
      throw err;
    } finally {
      // The script thaws it whatever CRIU's outcome; a CRIU killed at the deadline never ran it.
      await freezer.thaw();
      stamps = await readDumpHookStamps(hook);
      await removeDumpHook(hook);
    }
    const from = stamps.get('pre-dump');
    if (from === undefined || !stamps.has('copied'))
      throw new CodedError('internal', `machine ${id}: CRIU finished without running the snapshot's hook`);
    const to = stamps.get('thawed') ?? BigInt(Date.now()) * 1_000_000n;
    return Number((to - from) / 1_000_000n);
  }

  async createFromSnapshot(spec: DriverMachineSpec, snapDir: string, timeoutMs: number): Promise<void> {
    const disk = new DiskImage(this.dir(spec.id));
    let range: IdRange | null = null;
    await this.startMachine(
      spec,
      async () => {
        // The image's machine had a range (none: an image from before machines had user
        // namespaces, restored as it was made); this machine has its own, and the files of the
        // disk copy move to it before anything mounts them.
        const from = await imageIdRange(join(snapDir, IMAGE_MEMORY));
        range = from === null ? null : this.claimRange(spec.id);
        const shift = from !== null && range !== null && from.base !== range.base;
        return {
          diskSteps: [
            ...disk.copyFromSteps(join(snapDir, IMAGE_DISK)),
            ...(shift && range ? [shiftStep(disk.upper, from.base, range.base, range.size)] : []),
          ],
          range,
        };
      },
      { restore: true },
      async () => {
        const pidFile = join(this.dir(spec.id), RESTORED_PID);
        await this.restoreFrom(spec.id, snapDir, {
          range,
          timeoutMs,
          newAddress: true,
          volumes: spec.volumes,
          pidFile,
          ...niceOf(spec),
        });
        const pid = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
        await rm(pidFile, { force: true });
        if (!(pid > 0)) throw new CodedError('internal', `machine ${spec.id}: runc restore wrote no pid`);
        // One process in its namespaces: its network settles (settleRestoredNetns), and its UTS
        // namespace, restored with the source's host name, gets this machine's own.
        const steps = [
          ...settleRestoredNetnsSteps({ nonlocalBind: true }),
          `hostname ${hostnameOf(spec.id)}`,
        ];
        await host('nsenter', ['--target', String(pid), '--net', '--uts', 'sh', '-c', steps.join(' && ')]);
      },
    );
  }

  async settle(id: string, imageDir?: string): Promise<void> {
    // This driver's own release after a hibernate, if one runs.
    await this.releaseSettled(id);
    const pidFile = join(this.dir(id), MACHINE_FILES.operationPid);
    const pid = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
    if (pid > 0) {
      const deadline = Date.now() + 300_000;
      while (Date.now() < deadline) {
        const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        // runc's, or a resume's own `criu restore` (its work dir is the machine's).
        const ours =
          cmdline.includes(this.runc.root) || cmdline.includes(join(this.dir(id), MACHINE_FILES.criuRestore));
        if (!ours) break;
        await sleep(50);
      }
    }
    await rm(pidFile, { force: true });
    // Volumes a restore the crash interrupted had staged (the restored machine has its own mounts).
    await volumes.unstage(this.dir(id)).catch(() => undefined);
    if (imageDir === undefined) return;
    const partial = `${imageDir}.partial`;
    if (await this.isFinishedHibernate(id, partial)) {
      await rename(partial, imageDir);
      await this.release(id);
    } else {
      await rm(partial, { recursive: true, force: true });
    }
  }

  /**
   * A checkpoint without --leave-running ends the processes only once the dump is complete, and
   * runc then removes the container: a whole image with no container left is a finished hibernate.
   */
  private async isFinishedHibernate(id: string, partial: string): Promise<boolean> {
    return this.isImageComplete(partial) && !(await this.runc.state(id).catch(() => undefined));
  }

  /** CRIU dump of the machine into `<imageDir>/memory`; failures name CRIU's own errors. */
  private async checkpointInto(
    id: string,
    imageDir: string,
    leaveRunning: boolean,
    timeoutMs: number,
    /** More criu.conf lines for this checkpoint (an action script). */
    extraConfig: readonly string[] = [],
  ): Promise<void> {
    const workDir = join(this.dir(id), MACHINE_FILES.criuDump);
    // Volumes are mounts runc does not know of: declared external (see volumes/machine-volumes.ts).
    const config = join(this.dir(id), CRIU_CONFIG);
    const mounted = await volumes.readVolumeRecord(this.dir(id));
    await writeFile(config, [...volumes.dumpConfigLines(mounted), ...extraConfig].join('\n'));
    // runc's state of the machine beside the image (a hibernate ends the container, and runc its
    // state): what a restore by CRIU directly writes back for the restored machine.
    await copyFile(join(this.o.runcRoot, id, 'state.json'), join(imageDir, KEPT_RUNC_STATE)).catch(
      () => undefined,
    );
    try {
      await this.runc.checkpoint(id, join(imageDir, IMAGE_MEMORY), workDir, {
        leaveRunning,
        timeoutMs,
        onSpawn: (pid) => this.recordOperation(id, pid),
        ...(readIdRange(this.dir(id)) !== null ? { netns: netnsPath(netnsName(id)) } : {}),
      });
    } catch (err) {
      throw await this.criuError(id, 'checkpoint', join(workDir, 'dump.log'), err);
    } finally {
      await writeFile(config, '').catch(() => undefined);
    }
  }

  /**
   * CRIU restore of `<imageDir>/memory` as machine `id` (its bundle decides mounts, netns, cgroups).
   * Into a new address (fork, a machine from a snapshot) open TCP connections come back closed:
   * two live copies of one connection cannot exist, and the program sees a reset it can recover
   * from. Into the machine's own address (resume) they come back alive only for a machine without
   * a user namespace (one hibernated before machines had them); see below.
   */
  private async restoreFrom(
    id: string,
    imageDir: string,
    o: {
      range: IdRange | null;
      timeoutMs: number;
      newAddress: boolean;
      volumes: readonly DriverVolumeMount[] | undefined;
      nice?: number;
      pidFile?: string;
    },
  ): Promise<void> {
    const dir = this.dir(id);
    const workDir = join(dir, MACHINE_FILES.criuRestore);
    const config = join(dir, CRIU_CONFIG);
    const ownImage = join(dir, CRIU_IMAGE);
    try {
      // Each volume in the image is bound to a staged clone of its directory (unstaged below).
      // Open TCP connections come back alive only into the same address and only without a user
      // namespace: CRIU restores one in repair mode from inside the restored process, and
      // TCP_REPAIR needs CAP_NET_ADMIN over the network namespace, which is the host's, not the
      // machine's (measured: "Can't turn TCP repair mode ON: Operation not permitted").
      const closeTcp = o.newAddress || o.range !== null;
      await checkpointStep(id, 'restore: stage volumes, criu.conf', async () => {
        const volumeLines = await volumes.stageForRestore(dir, o.volumes ?? [], o.range);
        await writeFile(config, [...(closeTcp ? ['tcp-close'] : []), ...volumeLines].join('\n'));
      });
      // CRIU makes the machine's user namespace from the image: one naming this machine's range.
      const range = o.range;
      const image =
        range === null
          ? join(imageDir, IMAGE_MEMORY)
          : await checkpointStep(id, 'restore: image for the id range', () =>
              imageForRange(join(imageDir, IMAGE_MEMORY), ownImage, range),
            );
      // CRIU directly where runc's state was kept beside the image and matches this machine's
      // config.json (a resume; a fork or a machine from a snapshot under its own id, id range and
      // host name); runc otherwise (an image of an older build, a machine without a user
      // namespace): planDirectRestore names the reason.
      const kept = await readFile(join(imageDir, KEPT_RUNC_STATE), 'utf8').catch(() => undefined);
      const choice = planDirectRestore(id, kept, await readFile(join(dir, 'config.json'), 'utf8'));
      try {
        if ('plan' in choice) {
          const { plan } = choice;
          const pidFile = join(workDir, 'init.pid');
          await checkpointStep(id, 'restore: criu restore', async () => {
            await rm(pidFile, { force: true });
            makeMachineCgroups(plan);
            await criuRestore(plan, {
              rootfs: plan.state.config.rootfs,
              imageDir: image,
              workDir,
              pidFile,
              criuConfig: config,
              tcpEstablished: !closeTcp,
              timeoutMs: o.timeoutMs,
              onSpawn: (pid) => this.recordOperation(id, pid),
              ...(o.nice !== undefined ? { nice: o.nice } : {}),
            });
            const pid = Number((await readFile(pidFile, 'utf8')).trim());
            if (!(pid > 0)) throw new CodedError('internal', `machine ${id}: criu restore wrote no pid`);
            writeRestoredState(join(this.o.runcRoot, id), plan.state, pid);
            if (o.pidFile) await writeFile(o.pidFile, String(pid));
          });
        } else {
          await checkpointStep(id, 'restore: runc restore', () =>
            this.runc.restore(id, dir, image, workDir, {
              timeoutMs: o.timeoutMs,
              tcpEstablished: !closeTcp,
              onSpawn: (pid) => this.recordOperation(id, pid),
              ...(o.nice !== undefined ? { nice: o.nice } : {}),
              ...(o.pidFile ? { pidFile: o.pidFile } : {}),
              ...(range !== null ? { netns: netnsPath(netnsName(id)) } : {}),
            }),
          );
        }
      } catch (err) {
        throw await this.criuError(id, 'restore', join(workDir, 'restore.log'), err);
      }
    } finally {
      // Its later checkpoints keep their connections.
      await writeFile(config, '').catch(() => undefined);
      // Left mounted, they are unmounted by release (and destroy refuses to delete through them).
      await volumes.unstage(dir).catch(() => undefined);
      await rm(ownImage, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Notes the pid of a runc checkpoint/restore, so a restarted server can wait for it (settle). */
  private recordOperation(id: string, pid: number): void {
    try {
      writeFileSync(join(this.dir(id), MACHINE_FILES.operationPid), String(pid));
    } catch {
      // the machine dir is gone: nothing to settle later
    }
  }

  isImageComplete(dir: string): boolean {
    return existsSync(join(dir, IMAGE_MEMORY, 'inventory.img'));
  }

  /** SIGKILLs its init, its runc operation and its cgroups, then thaws them (inventory/teardown.ts). */
  async terminate(id: string): Promise<void> {
    await terminateMachine(this.dirs, id);
  }

  /**
   * Tears down everything the inventory finds for the machine, its processes first (see
   * inventory/teardown.ts), and fails naming whatever is still there afterwards.
   */
  async destroy(id: string): Promise<void> {
    // Never two teardowns of one machine at once, nor one while its network is being made.
    await this.preparing.get(id);
    await this.releaseSettled(id);
    this.releasedClean.delete(id);
    await tearDownMachine(this.dirs, id, { keepFiles: false });
  }

  /**
   * Ends the machine's processes and takes down its overlay, disk mount and network namespace,
   * keeping the files (disk image, config) for a restore. Idempotent.
   */
  private async release(id: string): Promise<void> {
    await tearDownMachine(this.dirs, id, { keepFiles: true });
  }

  /**
   * Makes the machine's host side (disk via `diskSteps`, overlay, network namespace and link,
   * config.json), then `start`s its processes (`restore`: from an image taken at another address)
   * and waits for the agent. On failure nothing is left behind.
   */
  private async startMachine(
    spec: DriverMachineSpec,
    plan: () =>
      | Promise<{ diskSteps: PlanStep[]; range: IdRange | null }>
      | { diskSteps: PlanStep[]; range: IdRange | null },
    o: { restore: boolean },
    start: () => Promise<void>,
  ): Promise<void> {
    // A network still being made for it goes first: made, it is used; failed, it is gone.
    await this.preparing.get(spec.id);
    try {
      const { diskSteps, range } = await plan();
      await this.prepareHost(spec, [diskSteps], { newAddress: o.restore, range });
      const from = spec.restoredFrom;
      await writeIdentity(
        join(this.dir(spec.id), MACHINE_FILES.rootfs),
        spec.id,
        o.restore ? (from?.kind ?? 'snapshot') : 'create',
        o.restore ? (from?.id ?? null) : null,
        range,
      );
      await writeFile(join(this.dir(spec.id), CRIU_CONFIG), '');
      await writeFile(join(this.dir(spec.id), 'config.json'), JSON.stringify(this.ociSpec(spec, range)));
      await start();
      await Promise.all([
        this.waitForAgent(spec.id),
        range === null ? undefined : this.unmountHostSysfs(spec.id),
      ]);
      await this.mountVolumes(spec);
    } catch (err) {
      await this.destroy(spec.id).catch(() => undefined);
      throw diskFullOr(err);
    }
  }

  /**
   * Once the machine runs (made or restored), its sysfs leaves the host's mount table, as its
   * template layers did (prepareHost): the machine's /sys is its own bind mount of that sysfs, in
   * its own mount namespace, which the host's unmount leaves alone. A restore mounts it again
   * first (prepareHost), for CRIU to bind it in. Run while the agent starts, off the create's
   * path; a failure leaves the mount to the teardown, which unmounts it anyway.
   */
  private async unmountHostSysfs(id: string): Promise<void> {
    await host('umount', [join(this.dir(id), MACHINE_FILES.sysfs)]).catch(() => undefined);
  }

  /**
   * One batch of host commands: the disk (`diskSteps`, then the overlay on top of it) in one lane,
   * the network namespace and its link in another. `newAddress`: the machine may have sockets
   * bound to an address it no longer has (a restore into a fork).
   */
  private async prepareHost(
    spec: DriverMachineSpec,
    diskSteps: PlanStep[][],
    o: { newAddress?: boolean; range: IdRange | null },
  ): Promise<void> {
    const dir = this.dir(spec.id);
    await mkdir(join(dir, 'run'), { recursive: true });
    // The agent, root of the machine's user namespace, makes its socket and log there.
    if (o.range !== null) await chown(join(dir, 'run'), o.range.base, o.range.base);
    const disk = new DiskImage(dir);
    const prepared = await this.takePreparedNetwork(spec);
    const netLane = prepared
      ? await this.preparedNetworkSteps(spec, prepared, o)
      : await this.networkSteps(spec.id, spec.network, {
          newAddress: o.newAddress === true,
          userns: o.range !== null,
        });
    const lower =
      o.range === null
        ? { steps: [], lowerdir: spec.templateRootfs }
        : lowerLayerSteps(dir, spec.templateRootfs, o.range);
    await hostPlan(
      [
        [
          ...diskSteps.flat(),
          // The root directory of the machine's filesystem is its upper directory's: its root's.
          ...(o.range === null ? [] : [['chown', '-h', `${o.range.base}:${o.range.base}`, disk.upper]]),
          ...lower.steps,
          ...mountOverlaySteps({
            lower: lower.lowerdir,
            upper: disk.upper,
            work: disk.work,
            target: join(dir, MACHINE_FILES.rootfs),
          }),
          // The overlay holds private clones of its layers' mounts, so the idmapped layers leave
          // the host's mount table once it is made: every mount there is copied into each new
          // mount namespace (`runc run`, CRIU) and listed by each read of mountinfo (runc, umount
          // of an overlay, the inventory), which all cost in proportion to the mounts of every
          // machine alive (bench/README.md, "A lone create with many machines alive").
          ...(o.range === null ? [] : lower.lowerdir.split(':').map((layer) => ['umount', layer])),
        ],
        netLane,
      ],
      { timeoutMs: 120_000, ...niceOf(spec) },
    ).catch(async (err: unknown) => {
      // If the host table was what is missing (the host's own `nft flush ruleset`, a firewall
      // reload), the next machine finds it made again; this one fails (its rules did not load).
      await ensureHostTable().catch(() => undefined);
      throw err;
    });
  }

  /**
   * The network lane of a machine's host side: its link files written, then the steps that make
   * its namespace, link and rules (net/link.ts) and, for a machine with a user namespace
   * (`userns`), the namespace's unprivileged port start and its sysfs.
   */
  private async networkSteps(
    id: string,
    network: DriverNetwork,
    o: { newAddress: boolean; userns: boolean },
  ): Promise<PlanStep[]> {
    const dir = this.dir(id);
    const netns = netnsName(id);
    const [files] = await Promise.all([
      writeLinkFiles(dir, netns, network.link, network.egress),
      writeFile(join(dir, MACHINE_FILES.link), network.link.hostIf),
    ]);
    const sysfs = join(dir, MACHINE_FILES.sysfs);
    return [
      ...linkSetUpSteps(netns, network.link, files, { nonlocalBind: o.newAddress }),
      ...(o.userns ? machineSysfsSteps(netns, sysfs) : []),
    ];
  }

  /**
   * What is left of the network lane when the network was made ahead (prepareNetwork): the
   * spec's egress policy when it is not the one loaded then (the same transaction a policy change
   * runs), `ip_nonlocal_bind` for a restore into a new address, and for a machine without a user
   * namespace (an image from before them) its sysfs out of the host's mount table. Mostly nothing.
   */
  private async preparedNetworkSteps(
    spec: DriverMachineSpec,
    prepared: PreparedNetworkFile,
    o: { newAddress?: boolean; range: IdRange | null },
  ): Promise<PlanStep[]> {
    const dir = this.dir(spec.id);
    const files = await writeLinkFiles(dir, netnsName(spec.id), spec.network.link, spec.network.egress);
    const policyChanged = renderEgressProgram(spec.network.link, spec.network.egress) !== prepared.egress;
    return [
      ...(policyChanged ? [['nft', '-f', files.egress]] : []),
      ...(o.newAddress
        ? [
            [
              'nsenter',
              `--net=${netnsPath(netnsName(spec.id))}`,
              'sh',
              '-c',
              'printf 1 > /proc/sys/net/ipv4/ip_nonlocal_bind',
            ],
          ]
        : []),
      ...(o.range === null ? [['umount', join(dir, MACHINE_FILES.sysfs)]] : []),
    ];
  }

  private ociSpec(spec: DriverMachineSpec, range: IdRange | null): object {
    const dir = this.dir(spec.id);
    return buildMachineOciSpec({
      idRange: range,
      sysfsSource: join(dir, MACHINE_FILES.sysfs),
      machineId: spec.id,
      hostname: hostnameOf(spec.id),
      rootfs: join(dir, MACHINE_FILES.rootfs),
      netnsPath: netnsPath(netnsName(spec.id)),
      cgroupsPath: `${this.cgroupParent}/${spec.id}`,
      vcpus: spec.vcpus,
      ...(spec.cpuPriority === 'background' ? { cpuShares: CPU_SHARES.background } : {}),
      memoryMb: spec.memoryMb,
      pidsLimit: this.pidsLimit,
      agent: {
        nodeBinary: this.nodeBinary,
        initBinary: this.initBinary,
        homeDir: this.o.agentHomeDir,
        runDir: join(dir, 'run'),
      },
      paths: AGENT_PATHS,
      agentArgs: [
        // A small young generation keeps the idle agent's memory down; it handles little data.
        '--max-semi-space-size=1',
        `${AGENT_PATHS.homeDir}/${AGENT_PATHS.scriptName}`,
        '--socket',
        `${AGENT_PATHS.runDir}/${AGENT_PATHS.socketName}`,
        '--log',
        `${AGENT_PATHS.runDir}/${AGENT_LOG}`,
        '--cwd',
        spec.cwd,
      ],
      nofileLimit: this.nofileLimit,
      criuConfig: join(dir, CRIU_CONFIG),
    });
  }

  /**
   * Turns a failed checkpoint/restore into its own code (`checkpoint_failed`, `restore_failed`;
   * `disk_full` when the host's disk filled up) whose `reason` is CRIU's own first errors from its
   * log, else what runc said (CRIU killed, a deadline): something the caller can act on. Host
   * paths in it are the machine's directory's names.
   */
  private async criuError(
    id: string,
    what: 'checkpoint' | 'restore',
    logFile: string,
    err: unknown,
  ): Promise<CodedError> {
    const log = await readFile(logFile, 'utf8').catch(() => '');
    const errors = log
      .split('\n')
      .filter((l) => /Error|No space left/.test(l) && !/RLIMIT_NOFILE/.test(l))
      .slice(0, 5)
      .map((l) => l.trim())
      .join(' | ');
    const full = /No space left on device|ENOSPC/.test(log) || /No space left/.test(String(err));
    const tool = err instanceof CodedError ? String(err.details?.stderr ?? '') || err.message : String(err);
    // runc's stderr is logrus lines (`time=… level=error msg="…"`): their messages, in order.
    const messages = [...tool.matchAll(/msg="((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]?.replace(/\\"/g, '"'));
    const said = /timed out|killed by SIGKILL/.test(tool)
      ? 'CRIU did not finish before the deadline, or was killed'
      : messages.join('; ') || tool.split('\n')[0]?.trim() || 'CRIU failed without a message';
    const reason = (errors || said).split(this.o.machinesDir).join('<machines>').slice(0, 1000);
    if (full)
      return new CodedError(
        'disk_full',
        `machine ${id}: ${what} failed: ${reason}`,
        { public_reason: `${what} failed: the host is out of disk space` },
        { cause: err },
      );
    return new CodedError(
      what === 'checkpoint' ? 'checkpoint_failed' : 'restore_failed',
      `machine ${id}: ${what} failed: ${reason}`,
      { public_reason: `${what} failed: ${reason}`, reason },
      { cause: err },
    );
  }

  /**
   * What `runc state` answers: from runc's own files while its init runs (inspectRunning), else
   * from runc. Every hibernate, snapshot and fork asks before it drains the agent's connections,
   * and re-adoption asks of every machine: a runc costs 10 ms on a quiet host and 80–120 ms under
   * load.
   */
  async inspect(id: string): Promise<DriverMachineState> {
    const known = this.inspectRunning(id);
    if (known !== undefined) return known;
    const state = await this.runc.state(id);
    if (!state) return 'missing';
    if (state.status === 'running') return 'running';
    if (state.status === 'paused' || state.status === 'pausing') return 'paused';
    return 'stopped';
  }

  /**
   * What `runc state` answers for a machine whose init runs, read from the files runc itself reads
   * (its state file and /proc for the init and its start time, its exec fifo, the freezer's state),
   * without starting runc: `runc state` costs a process and, on cgroup v1, reads of the host's
   * whole mount table, whose cost grows with every machine alive; re-adoption asks it of every
   * machine before the server listens. Undefined — ask runc — for anything else: no state yet, an
   * init gone, a freeze in progress, a file that cannot be read.
   */
  private inspectRunning(id: string): DriverMachineState | undefined {
    if (machineInitRuns(this.o.runcRoot, id) !== true) return undefined;
    // runc's "created": started, its process not yet exec'd (runc run has not returned).
    if (existsSync(join(this.o.runcRoot, id, 'exec.fifo'))) return 'stopped';
    const f = this.freezer(id).files();
    try {
      const state = readFileSync(f.stateFile, 'utf8');
      if (f.control === f.stateFile) {
        // cgroup v1: freezer.state is FROZEN, THAWED, or FREEZING while a freeze goes on.
        if (state.trim() === f.frozenValue) return 'paused';
        if (state.trim() === f.thawedValue) return 'running';
        return undefined;
      }
      // cgroup v2: cgroup.freeze asks, cgroup.events' `frozen` says whether it is done.
      const asked = readFileSync(f.control, 'utf8').trim();
      const frozen = state.split('\n').includes(f.frozenLine);
      if (asked === f.frozenValue && frozen) return 'paused';
      if (asked === f.thawedValue && !frozen) return 'running';
      return undefined;
    } catch {
      return undefined;
    }
  }

  /** The ids the inventory finds in this driver's directories. */
  async list(): Promise<string[]> {
    return machineIds(this.dirs);
  }

  private dir(id: string): string {
    return join(this.o.machinesDir, id);
  }

  /**
   * Resolves once the machine's agent answers on its socket. The socket's appearance is waited for
   * with an inotify watch on the run directory (a poll every 2 ms by each of 100 creates in flight
   * was most of the server's own CPU in a burst), with a slow poll as the fallback for a missed
   * event; whether the machine died meanwhile is read from runc's state file and /proc
   * (machineInitRuns), not asked of `runc state`, a process spawn each time.
   */
  private async waitForAgent(id: string): Promise<void> {
    const socket = this.agentSocketPath(id);
    const client = new AgentClient(socket);
    const deadline = Date.now() + this.readyTimeoutMs;
    let wake: (() => void) | undefined;
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(join(this.dir(id), 'run'), () => wake?.());
      watcher.on('error', () => undefined);
    } catch {
      // no inotify watch (the limit reached): the poll below still finds the socket
    }
    let nextLivenessCheck = Date.now() + LIVENESS_CHECK_MS;
    try {
      while (Date.now() < deadline) {
        if (existsSync(socket)) {
          try {
            await client.health(1000);
            return;
          } catch {
            // bound but not accepting yet: the agent listens right after it bound
            await sleep(2);
            continue;
          }
        }
        if (Date.now() > nextLivenessCheck) {
          const runs = machineInitRuns(this.o.runcRoot, id);
          if (runs === false || (runs === undefined && (await this.inspect(id)) !== 'running')) break;
          nextLivenessCheck = Date.now() + LIVENESS_CHECK_MS;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, SOCKET_POLL_MS);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    } finally {
      watcher?.close();
      client.close();
    }
    const tail = await readMachineFileTail(join(this.dir(id), 'run', AGENT_LOG), 2048);
    const lastLines = tail.trim().split('\n').slice(-3).join(' | ').slice(-500) || 'no log';
    throw new CodedError('internal', `machine ${id}: agent did not start: ${lastLines}`, {
      // What the machine itself wrote; safe to show to its owner (unlike host tool output).
      public_reason: `agent did not start: ${lastLines}`,
    });
  }
}

/** What MACHINE_FILES.preparedNetwork holds: the link and egress program a network was made with. */
interface PreparedNetworkFile {
  link: DriverNetwork['link'];
  egress: string;
}

function sameLink(a: DriverNetwork['link'], b: DriverNetwork['link']): boolean {
  return (
    a.owner === b.owner &&
    a.hostIf === b.hostIf &&
    a.hostAddr === b.hostAddr &&
    a.machineAddr === b.machineAddr &&
    a.previewAddr === b.previewAddr &&
    a.prefix === b.prefix &&
    a.dnsPort === b.dnsPort
  );
}

/**
 * Reads the end of a file the machine can write to, without following a symlink it may have put
 * there (which could point at any host file) and without blocking on a FIFO.
 */
async function readMachineFileTail(path: string, maxBytes: number): Promise<string> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = await handle.stat();
    if (!st.isFile()) return '';
    const length = Math.min(st.size, maxBytes);
    const buf = Buffer.alloc(length);
    await handle.read(buf, 0, length, st.size - length);
    return buf.toString('utf8');
  } catch {
    return '';
  } finally {
    await handle?.close();
  }
}

/**
 * A warm pool's machine is made by host tools (and runc, whose niceness its processes inherit) at
 * niceness 19: its start-up runs on CPUs nobody else wants, not against the server's event loop
 * and the machines in use. A checkout resets its processes (`setCpuPriority`).
 */
function niceOf(spec: DriverMachineSpec): { nice?: number } {
  return spec.cpuPriority === 'background' ? { nice: 19 } : {};
}

/**
 * A machine's root (an unprivileged host id) has to pass through the machines directory and the
 * data directory holding it to reach its own directory (runc and CRIU mount its root filesystem
 * and bind sources as that id): both get search permission for others — x, not r: nobody lists
 * them — as Docker's data root does with user namespaces. Everything else in the data directory
 * loses every permission for others, so search alone reaches nothing but machine directories
 * (each 0710, its own machine's; see claimRange). A directory further up without search
 * permission for others is named, not changed.
 */
async function searchableByMachines(machinesDir: string): Promise<void> {
  const dataDir = dirname(machinesDir);
  for (const dir of [machinesDir, dataDir]) chmodSync(dir, (statSync(dir).mode & 0o7770) | 0o001);
  for (const name of readdirSync(dataDir)) {
    const path = join(dataDir, name);
    if (path === machinesDir) continue;
    const st = lstatSync(path);
    if (!st.isSymbolicLink() && (st.mode & 0o007) !== 0) chmodSync(path, st.mode & 0o7770);
  }
  for (let dir = dirname(dataDir); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0)
      throw new CodedError(
        'internal',
        `machines run as unprivileged host ids and must pass through ${dir} to reach ${machinesDir}: give it o+x`,
      );
    if (dir === '/') break;
  }
}
