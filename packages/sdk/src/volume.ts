/**
 * Volumes: durable storage outside every machine. `Volume` creates, lists, reads and deletes
 * them; a machine mounts them at create (`Machine.create({ volumes })`) or at run time
 * (`machine.attachVolume(...)`). This module holds the types, the wire conversions and the
 * requests behind the `Machine` volume methods.
 */
import type {
  ListVolumeAttachmentsResponse,
  ListVolumesResponse,
  VolumeAttachmentInfo as WireVolumeAttachment,
  VolumeHealth as WireVolumeHealth,
  VolumeInfo as WireVolumeInfo,
} from '@nullspace/protocol';
import { type ConnectionOptions, type RequestOptions, Transport } from './transport.js';

/**
 * A volume to mount into a machine: at create (`Machine.create({ volumes: [...] })`) or with
 * `machine.attachVolume(mount)`.
 *
 * @example
 * ```ts
 * const mount: VolumeMount = { volume: 'datasets', mountPath: '/data', readOnly: true, subpath: 'v2' };
 * ```
 */
export interface VolumeMount {
  /** Volume id (`vol_...`) or name. */
  volume: string;
  /** Absolute path in the machine; created if missing. Not `/`, nor under /proc, /sys, /dev. */
  mountPath: string;
  /** Mount read-only: writes fail with EROFS, and the machine cannot remount it read-write. */
  readOnly?: boolean;
  /** Mount only this directory of the volume (created if missing; no `..`). */
  subpath?: string;
}

/**
 * Where a volume is mounted, as {@link VolumeInfo.attachments} lists it.
 *
 * @example
 * ```ts
 * for (const a of (await Volume.get('datasets')).attachments) console.log(a.machineId, a.mountPath);
 * ```
 */
export interface VolumeAttachmentRef {
  /** `vat_...` */
  id: string;
  machineId: string;
  mountPath: string;
  readOnly: boolean;
  subpath: string | null;
}

/**
 * A volume's info, camelCase; `createdAt` is a `Date`.
 *
 * @example
 * ```ts
 * const info = await Volume.get('datasets');
 * console.log(info.id, info.sizeMb, info.usedBytes, info.attachments.length);
 * ```
 */
export interface VolumeInfo {
  /** `vol_...` */
  id: string;
  /** Unique on the server. */
  name: string;
  /** The filesystem's size: writing past it fails with ENOSPC in the machine. */
  sizeMb: number;
  /** Bytes in use on the volume's filesystem (its own metadata included). */
  usedBytes: number;
  createdAt: Date;
  /** The machines it is mounted in now. */
  attachments: VolumeAttachmentRef[];
}

/**
 * The last health check of an attachment ({@link Machine.getVolumeHealth}).
 *
 * @example
 * ```ts
 * const h = await machine.getVolumeHealth(attachment.id);
 * if (!h.healthy) console.warn(h.reason); // e.g. "nothing is mounted at /data"
 * ```
 */
export interface VolumeHealth {
  attachmentId: string;
  healthy: boolean;
  /** Why not (null when healthy). */
  reason: string | null;
  checkedAt: Date;
  /** What of the volume is mounted at the mount path now (null: nothing of it). */
  observed: { readOnly: boolean; subpath: string | null } | null;
}

/**
 * One volume mounted into one machine: `machine.listVolumes()`, `getInfo().volumes`.
 *
 * @example
 * ```ts
 * const [attachment] = await machine.listVolumes();
 * console.log(attachment.id, attachment.volumeName, attachment.mountPath, attachment.readOnly);
 * ```
 */
export interface VolumeAttachment {
  /** `vat_...` */
  id: string;
  volumeId: string;
  volumeName: string;
  machineId: string;
  mountPath: string;
  readOnly: boolean;
  subpath: string | null;
  createdAt: Date;
  /** The last health check, or null before the first. */
  health: VolumeHealth | null;
}

/**
 * Options of {@link Volume.create}, plus connection options.
 *
 * @example
 * ```ts
 * const opts: VolumeCreateOptions = { sizeMb: 4096 };
 * ```
 */
export interface VolumeCreateOptions extends ConnectionOptions {
  /** Size in MB, 300 to 1048576 (default 1024). The image is sparse: it costs what is written. */
  sizeMb?: number;
}

/**
 * Options of `machine.attachVolume(volume, mountPath, opts)`.
 *
 * @example
 * ```ts
 * await machine.attachVolume('datasets', '/data', { readOnly: true, subpath: 'v2' });
 * ```
 */
export interface AttachVolumeOptions extends RequestOptions {
  readOnly?: boolean;
  subpath?: string;
}

/**
 * Converts a volume health check from the wire's snake_case.
 *
 * @example
 * ```ts
 * volumeHealthFromWire(json).healthy;
 * ```
 */
export function volumeHealthFromWire(w: WireVolumeHealth): VolumeHealth {
  return {
    attachmentId: w.attachment_id,
    healthy: w.healthy,
    reason: w.reason,
    checkedAt: new Date(w.checked_at),
    observed: w.observed ? { readOnly: w.observed.read_only, subpath: w.observed.subpath } : null,
  };
}

/**
 * Converts a volume health check back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(volumeHealthToWire(await machine.getVolumeHealth(id))));
 * ```
 */
export function volumeHealthToWire(h: VolumeHealth): WireVolumeHealth {
  return {
    attachment_id: h.attachmentId,
    healthy: h.healthy,
    reason: h.reason,
    checked_at: h.checkedAt.toISOString(),
    observed: h.observed ? { read_only: h.observed.readOnly, subpath: h.observed.subpath } : null,
  };
}

/**
 * Converts an attachment from the wire's snake_case.
 *
 * @example
 * ```ts
 * volumeAttachmentFromWire(json).mountPath; // "/data"
 * ```
 */
export function volumeAttachmentFromWire(w: WireVolumeAttachment): VolumeAttachment {
  return {
    id: w.id,
    volumeId: w.volume_id,
    volumeName: w.volume_name,
    machineId: w.machine_id,
    mountPath: w.mount_path,
    readOnly: w.read_only,
    subpath: w.subpath,
    createdAt: new Date(w.created_at),
    health: w.health ? volumeHealthFromWire(w.health) : null,
  };
}

/**
 * Converts an attachment back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify((await machine.listVolumes()).map(volumeAttachmentToWire)));
 * ```
 */
export function volumeAttachmentToWire(a: VolumeAttachment): WireVolumeAttachment {
  return {
    id: a.id,
    volume_id: a.volumeId,
    volume_name: a.volumeName,
    machine_id: a.machineId,
    mount_path: a.mountPath,
    read_only: a.readOnly,
    subpath: a.subpath,
    created_at: a.createdAt.toISOString(),
    health: a.health ? volumeHealthToWire(a.health) : null,
  };
}

/**
 * Converts volume info from the wire's snake_case.
 *
 * @example
 * ```ts
 * volumeInfoFromWire(json).sizeMb; // 1024
 * ```
 */
export function volumeInfoFromWire(w: WireVolumeInfo): VolumeInfo {
  return {
    id: w.id,
    name: w.name,
    sizeMb: w.size_mb,
    usedBytes: w.used_bytes,
    createdAt: new Date(w.created_at),
    attachments: w.attachments.map((a) => ({
      id: a.id,
      machineId: a.machine_id,
      mountPath: a.mount_path,
      readOnly: a.read_only,
      subpath: a.subpath,
    })),
  };
}

/**
 * Converts volume info back to the HTTP API's shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(volumeInfoToWire(await Volume.get('datasets'))));
 * ```
 */
export function volumeInfoToWire(v: VolumeInfo): WireVolumeInfo {
  return {
    id: v.id,
    name: v.name,
    size_mb: v.sizeMb,
    used_bytes: v.usedBytes,
    created_at: v.createdAt.toISOString(),
    attachments: v.attachments.map((a) => ({
      id: a.id,
      machine_id: a.machineId,
      mount_path: a.mountPath,
      read_only: a.readOnly,
      subpath: a.subpath,
    })),
  };
}

function volumePath(ref: string): string {
  return `/v1/volumes/${encodeURIComponent(ref)}`;
}

/**
 * A volume on the server: durable storage outside every machine, of a fixed size, that survives
 * `kill` and can be mounted into several machines at once (read-write or read-only). The static
 * methods take a volume id (`vol_...`) or its name.
 *
 * @example
 * ```ts
 * import { Machine, Volume } from '@nullspace/sdk';
 *
 * const volume = await Volume.create('datasets', { sizeMb: 2048 });
 * {
 *   await using writer = await Machine.create({ volumes: [{ volume: 'datasets', mountPath: '/data' }] });
 *   await writer.commands.run('echo hello > /data/greeting');
 * }
 * await using reader = await Machine.create();
 * await reader.attachVolume(volume.id, '/data', { readOnly: true });
 * console.log((await reader.commands.run('cat /data/greeting')).stdout); // "hello"
 * ```
 */
export class Volume implements VolumeInfo {
  readonly id: string;
  readonly name: string;
  readonly sizeMb: number;
  /** As it was when this handle was made; {@link Volume.getInfo} reads it again. */
  readonly usedBytes: number;
  readonly createdAt: Date;
  /** As they were when this handle was made; {@link Volume.getInfo} reads them again. */
  readonly attachments: VolumeAttachmentRef[];
  readonly #connection: ConnectionOptions;

  private constructor(info: VolumeInfo, connection: ConnectionOptions) {
    this.id = info.id;
    this.name = info.name;
    this.sizeMb = info.sizeMb;
    this.usedBytes = info.usedBytes;
    this.createdAt = info.createdAt;
    this.attachments = info.attachments;
    this.#connection = connection;
  }

  /**
   * Creates a volume: `name` is unique on the server (1-63 of a-z, 0-9, `.`, `_`, `-`; a taken
   * name is a `ConflictError`). Its size is enforced by its filesystem.
   *
   * @example
   * ```ts
   * const volume = await Volume.create('cache', { sizeMb: 1024 });
   * ```
   */
  static async create(name: string, opts: VolumeCreateOptions = {}): Promise<Volume> {
    const { sizeMb, ...connection } = opts;
    const wire = await new Transport(connection).request<WireVolumeInfo>({
      method: 'POST',
      path: '/v1/volumes',
      body: { name, size_mb: sizeMb },
    });
    return new Volume(volumeInfoFromWire(wire), connection);
  }

  /**
   * Every volume on the server, in the order they were made.
   *
   * @example
   * ```ts
   * for (const v of await Volume.list()) console.log(v.name, v.usedBytes, v.attachments.length);
   * ```
   */
  static async list(opts: ConnectionOptions = {}): Promise<Volume[]> {
    const page = await new Transport(opts).request<ListVolumesResponse>({
      method: 'GET',
      path: '/v1/volumes',
    });
    return page.items.map((w) => new Volume(volumeInfoFromWire(w), opts));
  }

  /**
   * Reads one volume by id or name; `NotFoundError` (`volume_not_found`) when there is none.
   *
   * @example
   * ```ts
   * const volume = await Volume.get('cache');
   * ```
   */
  static async get(volume: string, opts: ConnectionOptions = {}): Promise<Volume> {
    const wire = await new Transport(opts).request<WireVolumeInfo>({
      method: 'GET',
      path: volumePath(volume),
    });
    return new Volume(volumeInfoFromWire(wire), opts);
  }

  /**
   * Deletes a volume and its data, by id or name, and returns its last info. Refused with a
   * `ConflictError` (`conflict`) while a machine that is alive or hibernated has it attached.
   *
   * @example
   * ```ts
   * await Volume.delete('cache');
   * ```
   */
  static async delete(volume: string, opts: ConnectionOptions = {}): Promise<VolumeInfo> {
    const wire = await new Transport(opts).request<WireVolumeInfo>({
      method: 'DELETE',
      path: volumePath(volume),
    });
    return volumeInfoFromWire(wire);
  }

  /**
   * Reads this volume's info again (use, attachments).
   *
   * @example
   * ```ts
   * const { usedBytes } = await volume.getInfo();
   * ```
   */
  async getInfo(): Promise<VolumeInfo> {
    return volumeInfoFromWire(
      await new Transport(this.#connection).request<WireVolumeInfo>({
        method: 'GET',
        path: volumePath(this.id),
      }),
    );
  }

  /**
   * Deletes this volume and its data (see {@link Volume.delete}).
   *
   * @example
   * ```ts
   * await volume.delete();
   * ```
   */
  delete(): Promise<VolumeInfo> {
    return Volume.delete(this.id, this.#connection);
  }
}

// ---- requests behind the Machine volume methods ----

function attachmentsPath(machineId: string, attachmentId?: string): string {
  const base = `/v1/machines/${encodeURIComponent(machineId)}/volumes`;
  return attachmentId === undefined ? base : `${base}/${encodeURIComponent(attachmentId)}`;
}

function perCall(opts: RequestOptions): { timeoutMs?: number } {
  return opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs };
}

export async function listVolumes(
  transport: Transport,
  machineId: string,
  opts: RequestOptions,
): Promise<VolumeAttachment[]> {
  const page = await transport.request<ListVolumeAttachmentsResponse>({
    method: 'GET',
    path: attachmentsPath(machineId),
    ...perCall(opts),
  });
  return page.items.map(volumeAttachmentFromWire);
}

export async function attachVolume(
  transport: Transport,
  machineId: string,
  mount: VolumeMount,
  opts: RequestOptions,
): Promise<VolumeAttachment> {
  const wire = await transport.request<WireVolumeAttachment>({
    method: 'POST',
    path: attachmentsPath(machineId),
    body: {
      volume: mount.volume,
      mount_path: mount.mountPath,
      read_only: mount.readOnly,
      subpath: mount.subpath,
    },
    ...perCall(opts),
  });
  return volumeAttachmentFromWire(wire);
}

export async function detachVolume(
  transport: Transport,
  machineId: string,
  attachmentId: string,
  opts: RequestOptions,
): Promise<VolumeAttachment> {
  const wire = await transport.request<WireVolumeAttachment>({
    method: 'DELETE',
    path: attachmentsPath(machineId, attachmentId),
    ...perCall(opts),
  });
  return volumeAttachmentFromWire(wire);
}

export async function getVolumeHealth(
  transport: Transport,
  machineId: string,
  attachmentId: string,
  opts: RequestOptions,
): Promise<VolumeHealth> {
  const wire = await transport.request<WireVolumeHealth>({
    method: 'GET',
    path: `${attachmentsPath(machineId, attachmentId)}/health`,
    ...perCall(opts),
  });
  return volumeHealthFromWire(wire);
}

export async function remountVolume(
  transport: Transport,
  machineId: string,
  attachmentId: string,
  opts: RequestOptions,
): Promise<VolumeAttachment> {
  const wire = await transport.request<WireVolumeAttachment>({
    method: 'POST',
    path: `${attachmentsPath(machineId, attachmentId)}/remount`,
    ...perCall(opts),
  });
  return volumeAttachmentFromWire(wire);
}
