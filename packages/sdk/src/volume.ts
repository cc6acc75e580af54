/**
 * Volumes: durable storage outside every machine. `Volume` creates, lists, reads and deletes
 * them; a machine mounts them at create (`Machine.create({ volumes })`) or at run time
 * (`machine.attachVolume(...)`). This module holds the types, the wire conversions and the
 * requests behind the `Machine` volume methods.
 */
import {
  type CreateVolumeBodySchema,
  type ListVolumeAttachmentsResponse,
  type ListVolumesResponse,
  VolumeAttachmentInfoSchema,
  type VolumeAttachmentRefSchema,
  VolumeHealthSchema,
  VolumeInfoSchema,
  VolumeMountBodySchema,
  type VolumeAttachmentInfo as WireVolumeAttachment,
  type VolumeHealth as WireVolumeHealth,
  type VolumeInfo as WireVolumeInfo,
} from '@nullspace/protocol';
import { type ConnectionOptions, type RequestOptions, Transport } from './transport.js';
import { type FromWire, fromWire, requestBody, toWire } from './wire.js';

/**
 * A volume to mount into a machine: at create (`Machine.create({ volumes: [...] })`) or with
 * `machine.attachVolume(mount)`.
 *
 * @example
 * ```ts
 * const mount: VolumeMount = { volume: 'datasets', mountPath: '/data', readOnly: true, subpath: 'v2' };
 * ```
 */
export interface VolumeMount extends FromWire<typeof VolumeMountBodySchema> {}

/**
 * Where a volume is mounted, as {@link VolumeInfo.attachments} lists it.
 *
 * @example
 * ```ts
 * for (const a of (await Volume.get('datasets')).attachments) console.log(a.machineId, a.mountPath);
 * ```
 */
export interface VolumeAttachmentRef extends FromWire<typeof VolumeAttachmentRefSchema> {}

/**
 * A volume's info, camelCase; `createdAt` is a `Date`.
 *
 * @example
 * ```ts
 * const info = await Volume.get('datasets');
 * console.log(info.id, info.sizeMb, info.usedBytes, info.attachments.length);
 * ```
 */
export interface VolumeInfo extends FromWire<typeof VolumeInfoSchema> {}

/**
 * The last health check of an attachment ({@link Machine.getVolumeHealth}).
 *
 * @example
 * ```ts
 * const h = await machine.getVolumeHealth(attachment.id);
 * if (!h.healthy) console.warn(h.reason); // e.g. "nothing is mounted at /data"
 * ```
 */
export interface VolumeHealth extends FromWire<typeof VolumeHealthSchema> {}

/**
 * One volume mounted into one machine: `machine.listVolumes()`, `getInfo().volumes`.
 *
 * @example
 * ```ts
 * const [attachment] = await machine.listVolumes();
 * console.log(attachment.id, attachment.volumeName, attachment.mountPath, attachment.readOnly);
 * ```
 */
export interface VolumeAttachment extends FromWire<typeof VolumeAttachmentInfoSchema> {}

/**
 * Options of {@link Volume.create}, plus connection options.
 *
 * @example
 * ```ts
 * const opts: VolumeCreateOptions = { sizeMb: 4096 };
 * ```
 */
export interface VolumeCreateOptions
  extends Omit<FromWire<typeof CreateVolumeBodySchema>, 'name'>,
    ConnectionOptions {}

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
  return fromWire(VolumeHealthSchema, w);
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
  return toWire(VolumeHealthSchema, h);
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
  return fromWire(VolumeAttachmentInfoSchema, w);
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
  return toWire(VolumeAttachmentInfoSchema, a);
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
  return fromWire(VolumeInfoSchema, w);
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
  return toWire(VolumeInfoSchema, v);
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
   * Creates a volume: `name` is unique among its tenant's volumes (1-63 of a-z, 0-9, `.`, `_`, `-`; a taken
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
    body: requestBody(VolumeMountBodySchema, mount),
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
