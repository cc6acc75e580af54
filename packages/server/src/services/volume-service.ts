import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CodedError,
  type CreateVolumeRequest,
  KEPT_STATES,
  VOLUME_LIMITS,
  type VolumeAttachmentInfo,
  type VolumeHealth,
  type VolumeInfo,
  type VolumeMountRequest,
  invalidArgument,
  isVolumeId,
  mountPathsOverlap,
  newId,
} from '@nullspace/protocol';
import { type DriverVolumeMount, type MachineDriver, VolumeImage } from '@nullspace/runtime';
import type { Logger } from '../log.js';
import type { MachineRecord } from '../store/machine-store.js';
import {
  type AttachmentRecord,
  type VolumeRecord,
  type VolumeStore,
  attachmentInfo,
} from '../store/volume-store.js';
// Machines hold on to their volumes in the states the server keeps: alive, or hibernated.

/** A volume mount decided for a machine that is about to be created. */
export interface PlannedMount {
  volume: VolumeRecord;
  mount_path: string;
  read_only: boolean;
  subpath: string | null;
}

/**
 * What the machine service asks of volumes while it creates, snapshots, forks and kills machines
 * (implemented by {@link VolumeService}).
 */
export interface MachineVolumes {
  /**
   * The volume mounts of a machine about to be created: those a reusable snapshot (`snapshotId`)
   * or a fork's parent (`parentId`) had, then the requested ones. Throws `volume_not_found`, or
   * `conflict` when two mount paths overlap. Nothing is stored yet.
   */
  plan(o: {
    requested?: readonly VolumeMountRequest[];
    snapshotId?: string;
    parentId?: string;
  }): PlannedMount[];
  /** Records the planned mounts as the new machine's attachments (before the driver starts it). */
  record(machineId: string, mounts: readonly PlannedMount[]): void;
  /** The attachments of a machine, as the driver mounts them. */
  driverMounts(machineId: string): DriverVolumeMount[];
  /** A reusable snapshot remembers the volume mounts its machine had. */
  rememberSnapshot(snapshotId: string, machineId: string): void;
  /** The machine was killed or never started: its attachments end (the volumes keep their data). */
  release(machineId: string): void;
  /** Machine info's `volumes`. */
  attachmentsOf(machineId: string): VolumeAttachmentInfo[];
  /** Mounts a volume into a running machine (a warm machine checked out with `volumes`). */
  attach(machineId: string, req: VolumeMountRequest): Promise<VolumeAttachmentInfo>;
}

/** What the volume service asks of the machines' records (see MachineRecords). */
export interface VolumeMachines {
  /** The machine's record; `machine_not_found` when there is none. */
  get(id: string): MachineRecord;
  /**
   * Runs `fn` in the machine's operation queue once it is running (`machine_transitioning` /
   * `invalid_state` otherwise; `pausedToo` also accepts a paused machine).
   */
  whileRunning<T>(id: string, fn: () => Promise<T>, o?: { pausedToo?: boolean }): Promise<T>;
  /** Runs `fn` after every earlier operation on the machine (a killed one's teardown included). */
  serialized<T>(id: string, fn: () => Promise<T>): Promise<T>;
}

export interface VolumeServiceOptions {
  store: VolumeStore;
  /** `<dir>/<volume id>/` holds each volume's image and host mount. */
  volumesDir: string;
  driver: MachineDriver;
  /** The machines' records and queues: attach, detach and health run in a machine's queue. */
  machines: VolumeMachines;
  log: Logger;
}

/**
 * Volumes and their attachments: create, list, delete; mount into running machines at create or
 * at run time, detach, health and remount. The host side of each volume is a {@link VolumeImage};
 * mounting into machines is the driver's (runtime/src/volumes). Attachments are stored before
 * they are mounted, so a delete that runs meanwhile sees them and refuses.
 */
export class VolumeService implements MachineVolumes {
  private readonly store: VolumeStore;
  private readonly log: Logger;
  private readonly machines: VolumeMachines;

  constructor(private readonly o: VolumeServiceOptions) {
    this.store = o.store;
    this.machines = o.machines;
    this.log = o.log.child({ component: 'volumes' });
  }

  /**
   * At server start: every volume's image mounted on the host (machines' mounts are left as they
   * are), a create or delete a crash interrupted finished, and directories nobody owns removed.
   */
  async init(): Promise<void> {
    for (const v of this.store.list()) {
      try {
        if (v.status === 'ready') await this.image(v).mount();
        else {
          // creating: never handed out; deleting: refused nothing any more. Both go.
          await this.image(v).destroy();
          this.store.remove(v.id);
          this.log.warn('removed a volume an interrupted create or delete left', { volume_id: v.id });
        }
      } catch (err) {
        this.log.error('volume could not be mounted at start', { volume_id: v.id, error: err });
      }
    }
    const known = new Set(this.store.list().map((v) => v.id));
    for (const name of await readdir(this.o.volumesDir).catch(() => [] as string[])) {
      if (known.has(name) || !isVolumeId(name)) continue;
      this.log.warn('removing a volume directory nobody owns', { name });
      await new VolumeImage(join(this.o.volumesDir, name)).destroy().catch((err: unknown) => {
        this.log.error('could not remove a volume directory', { name, error: err });
      });
    }
  }

  // ---- volumes ------------------------------------------------------------------------------

  async create(req: CreateVolumeRequest): Promise<VolumeInfo> {
    if (this.store.byName(req.name))
      throw new CodedError('conflict', `a volume named ${req.name} exists`, { name: req.name });
    const v: VolumeRecord = {
      id: newId('volume'),
      name: req.name,
      size_mb: req.size_mb,
      status: 'creating',
      created_at: Date.now(),
    };
    // The name is taken from here on (UNIQUE), so two creates of one name cannot both succeed.
    this.store.insert(v);
    try {
      await this.image(v).create(v.size_mb);
    } catch (err) {
      await this.image(v)
        .destroy()
        .catch(() => undefined);
      this.store.remove(v.id);
      throw diskFull(err) ?? err;
    }
    this.store.setStatus(v.id, 'ready');
    this.log.info('volume created', { volume_id: v.id, name: v.name, size_mb: v.size_mb });
    return this.info({ ...v, status: 'ready' });
  }

  async list(): Promise<VolumeInfo[]> {
    return Promise.all(
      this.store
        .list()
        .filter((v) => v.status === 'ready')
        .map((v) => this.info(v)),
    );
  }

  async get(ref: string): Promise<VolumeInfo> {
    return this.info(this.volume(ref));
  }

  /**
   * Deletes a volume and its data. Refused (`conflict`) while a machine that is alive or
   * hibernated has it attached: kill the machine or detach the volume first.
   */
  async delete(ref: string): Promise<VolumeInfo> {
    const v = this.volume(ref);
    // A kill answers before its machine is torn down; the teardown (in the machine's queue) ends
    // the machine's mount of this volume and releases the attachment. Wait for it: the volume's
    // filesystem is not taken away under a machine still being torn down.
    const dying = new Set(
      this.store.attachmentsOf(v.id).flatMap((a) => (this.killed(a.machine_id) ? [a.machine_id] : [])),
    );
    await Promise.all([...dying].map((id) => this.machines.serialized(id, async () => undefined)));
    const before = await this.info(v);
    const users = [
      ...new Set(
        this.store.attachmentsOf(v.id).flatMap((a) => (this.holds(a.machine_id) ? [a.machine_id] : [])),
      ),
    ];
    if (users.length > 0)
      throw new CodedError(
        'conflict',
        `volume ${v.name} is attached to ${users.join(', ')}; detach it or kill the machine first`,
        { volume_id: v.id, machine_ids: users },
      );
    // A reusable snapshot's machines mount it again: deleting it would break every create from it.
    const snapshots = this.store.snapshotsUsing(v.id);
    if (snapshots.length > 0)
      throw new CodedError(
        'conflict',
        `volume ${v.name} is mounted by machines started from snapshot ${snapshots.join(', ')}; delete the snapshot first`,
        { volume_id: v.id, snapshot_ids: snapshots },
      );
    // From here on no create or attach resolves it (status), and none has since the check above.
    this.store.setStatus(v.id, 'deleting');
    try {
      await this.image(v).destroy();
    } catch (err) {
      this.store.setStatus(v.id, 'ready');
      throw err;
    }
    const now = Date.now();
    for (const a of this.store.attachmentsOf(v.id)) this.store.detach(a.id, now);
    this.store.remove(v.id);
    this.log.info('volume deleted', { volume_id: v.id, name: v.name });
    return { ...before, attachments: [] };
  }

  // ---- attachments of a machine -------------------------------------------------------------

  listAttachments(machineId: string): VolumeAttachmentInfo[] {
    this.machines.get(machineId);
    return this.killed(machineId) ? [] : this.attachmentsOf(machineId);
  }

  /** Mounts a volume into a running machine. */
  async attach(machineId: string, req: VolumeMountRequest): Promise<VolumeAttachmentInfo> {
    this.machines.get(machineId);
    return this.machines.whileRunning(machineId, async () => {
      const current = this.store.attachedTo(machineId);
      if (current.length >= VOLUME_LIMITS.perMachine)
        throw invalidArgument(
          'volume',
          `a machine has at most ${VOLUME_LIMITS.perMachine} volume attachments`,
        );
      checkApart(
        req.mount_path,
        current.map((a) => ({ mount_path: a.mount_path, what: `attachment ${a.id}` })),
        'mount_path',
      );
      const volume = this.volume(req.volume, 'volume');
      const record = this.newAttachment(machineId, { ...req, volume });
      try {
        await this.image(volume).mount();
        await this.o.driver.attachVolume(machineId, this.driverMount(record));
      } catch (err) {
        this.store.detach(record.id, Date.now());
        throw this.failed(machineId, 'attach', err);
      }
      await this.refreshHealth(machineId, record);
      this.log.info('volume attached', {
        machine_id: machineId,
        attachment_id: record.id,
        volume_id: volume.id,
        mount_path: record.mount_path,
      });
      return this.attachmentInfoOf(record.id);
    });
  }

  /** Unmounts an attachment from a running machine and ends it. */
  async detach(machineId: string, attachmentId: string): Promise<VolumeAttachmentInfo> {
    this.attachmentOf(machineId, attachmentId);
    return this.machines.whileRunning(machineId, async () => {
      const a = this.attachmentOf(machineId, attachmentId);
      try {
        await this.image(this.volumeOf(a)).mount();
        await this.o.driver.detachVolume(machineId, this.driverMount(a));
      } catch (err) {
        throw this.failed(machineId, 'detach', err);
      }
      this.store.detach(a.id, Date.now());
      this.log.info('volume detached', { machine_id: machineId, attachment_id: a.id });
      return attachmentInfo({ ...a, status: 'detached' });
    });
  }

  /** Checks the attachment's mount in the machine now, stores and returns the result. */
  async health(machineId: string, attachmentId: string): Promise<VolumeHealth> {
    this.attachmentOf(machineId, attachmentId);
    return this.machines.whileRunning(
      machineId,
      async () => this.refreshHealth(machineId, this.attachmentOf(machineId, attachmentId)),
      { pausedToo: true },
    );
  }

  /** Repairs an attachment in place: whatever of the volume is at its path goes, then it is mounted. */
  async remount(machineId: string, attachmentId: string): Promise<VolumeAttachmentInfo> {
    this.attachmentOf(machineId, attachmentId);
    return this.machines.whileRunning(machineId, async () => {
      const a = this.attachmentOf(machineId, attachmentId);
      try {
        await this.image(this.volumeOf(a)).mount();
        await this.o.driver.remountVolume(machineId, this.driverMount(a));
      } catch (err) {
        throw this.failed(machineId, 'remount', err);
      }
      const health = await this.refreshHealth(machineId, a);
      this.log.info('volume remounted', {
        machine_id: machineId,
        attachment_id: a.id,
        healthy: health.healthy,
      });
      return this.attachmentInfoOf(a.id);
    });
  }

  // ---- MachineVolumes -----------------------------------------------------------------------

  plan(o: {
    requested?: readonly VolumeMountRequest[];
    snapshotId?: string;
    parentId?: string;
  }): PlannedMount[] {
    const planned: PlannedMount[] = [];
    const inherited =
      o.parentId !== undefined
        ? this.store.attachedTo(o.parentId)
        : o.snapshotId !== undefined
          ? this.store.snapshotVolumes(o.snapshotId)
          : [];
    for (const m of inherited) {
      const volume = this.store.get(m.volume_id);
      if (!volume || volume.status !== 'ready')
        throw new CodedError(
          'volume_not_found',
          `volume ${m.volume_id}, mounted at ${m.mount_path} in the ${o.parentId ? 'parent machine' : 'snapshot'}, no longer exists`,
          { volume: m.volume_id, mount_path: m.mount_path },
        );
      planned.push({ volume, mount_path: m.mount_path, read_only: m.read_only, subpath: m.subpath });
    }
    (o.requested ?? []).forEach((req, i) => {
      checkApart(
        req.mount_path,
        planned.map((p) => ({ mount_path: p.mount_path, what: `the snapshot's volume at ${p.mount_path}` })),
        `volumes[${i}].mount_path`,
      );
      planned.push({ ...req, volume: this.volume(req.volume, `volumes[${i}].volume`) });
    });
    return planned;
  }

  record(machineId: string, mounts: readonly PlannedMount[]): void {
    this.store.transaction(() => {
      for (const m of mounts) this.newAttachment(machineId, m);
    });
  }

  driverMounts(machineId: string): DriverVolumeMount[] {
    return this.store.attachedTo(machineId).map((a) => this.driverMount(a));
  }

  rememberSnapshot(snapshotId: string, machineId: string): void {
    this.store.rememberSnapshot(snapshotId, this.store.attachedTo(machineId));
  }

  release(machineId: string): void {
    this.store.detachAllOf(machineId, Date.now());
  }

  attachmentsOf(machineId: string): VolumeAttachmentInfo[] {
    return this.store.attachedTo(machineId).map(attachmentInfo);
  }

  // ---- internals ----------------------------------------------------------------------------

  /** A ready volume by id or name; `volume_not_found` otherwise (`field` names the request field). */
  private volume(ref: string, field?: string): VolumeRecord {
    const v = isVolumeId(ref) ? this.store.get(ref) : this.store.byName(ref);
    if (!v || v.status !== 'ready')
      throw new CodedError('volume_not_found', `volume ${ref} not found`, {
        volume: ref,
        ...(field ? { field } : {}),
      });
    return v;
  }

  private volumeOf(a: AttachmentRecord): VolumeRecord {
    return this.volume(a.volume_id);
  }

  private attachmentOf(machineId: string, attachmentId: string): AttachmentRecord {
    this.machines.get(machineId);
    const a = this.store.attachment(attachmentId);
    if (!a || a.machine_id !== machineId || a.status !== 'attached')
      throw new CodedError('not_found', `machine ${machineId} has no volume attachment ${attachmentId}`, {
        machine_id: machineId,
        attachment_id: attachmentId,
      });
    return a;
  }

  private attachmentInfoOf(id: string): VolumeAttachmentInfo {
    const a = this.store.attachment(id);
    if (!a) throw new CodedError('internal', `attachment ${id} vanished`);
    return attachmentInfo(a);
  }

  private newAttachment(machineId: string, m: PlannedMount): AttachmentRecord {
    const record: AttachmentRecord = {
      id: newId('volumeAttachment'),
      volume_id: m.volume.id,
      volume_name: m.volume.name,
      machine_id: machineId,
      mount_path: m.mount_path,
      read_only: m.read_only,
      subpath: m.subpath,
      status: 'attached',
      created_at: Date.now(),
      detached_at: null,
      health: null,
    };
    this.store.insertAttachment(record);
    return record;
  }

  private driverMount(a: AttachmentRecord): DriverVolumeMount {
    return {
      attachmentId: a.id,
      volumeRoot: new VolumeImage(join(this.o.volumesDir, a.volume_id)).mountPoint,
      subpath: a.subpath,
      mountPath: a.mount_path,
      readOnly: a.read_only,
    };
  }

  private async refreshHealth(machineId: string, a: AttachmentRecord): Promise<VolumeHealth> {
    const h = await this.o.driver.volumeHealth(machineId, this.driverMount(a));
    const health: VolumeHealth = {
      attachment_id: a.id,
      healthy: h.healthy,
      reason: h.reason,
      checked_at: new Date().toISOString(),
      observed: h.observed ? { read_only: h.observed.readOnly, subpath: h.observed.subpath } : null,
    };
    this.store.setHealth(a.id, health);
    return health;
  }

  /** Whether the machine is being killed or killed (its attachments end with its teardown). */
  private killed(machineId: string): boolean {
    try {
      const status = this.machines.get(machineId).status;
      return status === 'killed' || status === 'killing';
    } catch {
      return false; // a killed machine's row purged long after its teardown
    }
  }

  /** Whether a machine holds its volumes (alive or hibernated; not killed, failed or unknown). */
  private holds(machineId: string): boolean {
    try {
      return KEPT_STATES.includes(this.machines.get(machineId).status);
    } catch {
      return false;
    }
  }

  private image(v: Pick<VolumeRecord, 'id'>): VolumeImage {
    return new VolumeImage(join(this.o.volumesDir, v.id));
  }

  private async info(v: VolumeRecord): Promise<VolumeInfo> {
    const usage = await this.image(v)
      .usage()
      .catch(() => ({ usedBytes: 0 }));
    return {
      id: v.id,
      name: v.name,
      size_mb: v.size_mb,
      used_bytes: usage.usedBytes,
      created_at: new Date(v.created_at).toISOString(),
      // A killed machine's attachment lasts until its teardown (after the kill answered) releases
      // it; the machine mounts nothing from the moment it is killed.
      attachments: this.store
        .attachmentsOf(v.id)
        .filter((a) => !this.killed(a.machine_id))
        .map((a) => ({
          id: a.id,
          machine_id: a.machine_id,
          mount_path: a.mount_path,
          read_only: a.read_only,
          subpath: a.subpath,
        })),
    };
  }

  /** The error a caller gets for a failed attach, detach or remount (the machine's state is unchanged). */
  private failed(machineId: string, what: string, err: unknown): CodedError {
    if (err instanceof CodedError && err.code !== 'internal') return err;
    this.log.error(`volume ${what} failed`, { machine_id: machineId, error: err });
    const reason = err instanceof CodedError ? err.details?.public_reason : undefined;
    return new CodedError(
      'internal',
      `volume ${what} in machine ${machineId} failed${typeof reason === 'string' ? `: ${reason}` : ''}`,
      { machine_id: machineId },
      { cause: err },
    );
  }
}

/** `conflict` when `path` overlaps one of `others` (two mounts would stack or nest). */
function checkApart(path: string, others: { mount_path: string; what: string }[], field: string): void {
  const clash = others.find((o) => mountPathsOverlap(o.mount_path, path));
  if (clash)
    throw new CodedError('conflict', `${field}: ${path} overlaps ${clash.what} at ${clash.mount_path}`, {
      field,
      mount_path: path,
    });
}

/** Host tools report a full disk in their own words; callers get `disk_full`. */
function diskFull(err: unknown): CodedError | undefined {
  if (/No space left on device/.test(String(err instanceof Error ? err.message : err)))
    return new CodedError('disk_full', 'the host is out of disk space for this volume', {}, { cause: err });
  return undefined;
}
