import {
  type ListSnapshotsResponse,
  SnapshotInfoSchema,
  type SnapshotKind,
  type SnapshotInfo as WireSnapshotInfo,
} from '@nullspace/protocol';
import { type ConnectionOptions, Transport } from './transport.js';
import { type FromWire, fromWire, toWire } from './wire.js';

/**
 * Everything the server says about a snapshot, camelCase; `createdAt` is a `Date`.
 *
 * - kind `pause`: made by `pause()`/`hibernate()`, belongs to its machine and is used up when the
 *   machine resumes.
 * - kind `reusable`: made by `createSnapshot()`; start any number of machines from it with
 *   `Machine.create({ snapshotId })`.
 *
 * @example
 * ```ts
 * const snapshot = await machine.createSnapshot();
 * console.log(snapshot.id, snapshot.kind, snapshot.sizeBytes, snapshot.pausedMs, snapshot.createdAt.toISOString());
 * ```
 */
export interface SnapshotInfo extends FromWire<typeof SnapshotInfoSchema> {}

/**
 * Converts snapshot info from the wire's snake_case to the SDK's camelCase.
 *
 * @example
 * ```ts
 * const info = snapshotInfoFromWire(json);
 * info.machineId; // "mch_..."
 * ```
 */
export function snapshotInfoFromWire(wire: WireSnapshotInfo): SnapshotInfo {
  return fromWire(SnapshotInfoSchema, wire);
}

/**
 * Converts snapshot info back to the HTTP API's snake_case shape (what the CLI prints with `--json`).
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(snapshotInfoToWire(await Snapshot.get('snap_aaaaaaaaaaaaaaaaaaaa'))));
 * ```
 */
export function snapshotInfoToWire(info: SnapshotInfo): WireSnapshotInfo {
  return toWire(SnapshotInfoSchema, info);
}

/**
 * Filters of {@link Snapshot.list}, plus connection options; all given filters must match.
 *
 * @example
 * ```ts
 * const opts: SnapshotListOptions = { machineId: 'mch_aaaaaaaaaaaaaaaaaaaa', kind: 'reusable' };
 * ```
 */
export interface SnapshotListOptions extends ConnectionOptions {
  /** Only snapshots taken of this machine. */
  machineId?: string;
  /** Only snapshots of this kind. */
  kind?: SnapshotKind;
}

function snapshotPath(id: string): string {
  return `/v1/snapshots/${encodeURIComponent(id)}`;
}

/**
 * Snapshots on the server: list, read and delete them. Snapshots are taken with
 * `machine.createSnapshot()` (reusable) or `machine.pause()`/`machine.hibernate()` (pause);
 * machines start from them with `Machine.create({ snapshotId })` (reusable) or
 * `Machine.resume(snapshotId)` (pause).
 *
 * @example
 * ```ts
 * import { Machine, Snapshot } from '@nullspace/sdk';
 *
 * const snapshot = await machine.createSnapshot();
 * const copy = await Machine.create({ snapshotId: snapshot.id });
 * for (const s of await Snapshot.list({ kind: 'reusable' })) console.log(s.id, s.machineId);
 * await Snapshot.delete(snapshot.id);
 * ```
 */
export const Snapshot = {
  /**
   * Lists snapshots, newest first. Deleted snapshots, and pause snapshots already used by a
   * resume, are not listed.
   *
   * @example
   * ```ts
   * const mine = await Snapshot.list({ machineId: machine.id });
   * const reusable = await Snapshot.list({ kind: 'reusable' });
   * ```
   */
  async list(opts: SnapshotListOptions = {}): Promise<SnapshotInfo[]> {
    const { machineId, kind, ...connection } = opts;
    const query = new URLSearchParams();
    if (machineId !== undefined) query.set('machine_id', machineId);
    if (kind !== undefined) query.set('kind', kind);
    const page = await new Transport(connection).request<ListSnapshotsResponse>({
      method: 'GET',
      path: '/v1/snapshots',
      query,
    });
    return page.items.map(snapshotInfoFromWire);
  },

  /**
   * Reads one snapshot; `NotFoundError` (`snapshot_not_found`) when it does not exist or was
   * deleted.
   *
   * @example
   * ```ts
   * const info = await Snapshot.get('snap_aaaaaaaaaaaaaaaaaaaa');
   * console.log(info.kind, info.sizeBytes);
   * ```
   */
  async get(id: string, opts: ConnectionOptions = {}): Promise<SnapshotInfo> {
    const wire = await new Transport(opts).request<WireSnapshotInfo>({
      method: 'GET',
      path: snapshotPath(id),
    });
    return snapshotInfoFromWire(wire);
  },

  /**
   * Deletes a snapshot and its files, and returns its info (`sizeBytes` is then 0). Deleting it again gives
   * `NotFoundError`. The pause snapshot of a paused or hibernated machine cannot be deleted
   * (`ConflictError`, `invalid_state`): kill the machine instead.
   *
   * @example
   * ```ts
   * const deleted = await Snapshot.delete('snap_aaaaaaaaaaaaaaaaaaaa');
   * console.log(`deleted ${deleted.id}, a snapshot of ${deleted.machineId}`);
   * ```
   */
  async delete(id: string, opts: ConnectionOptions = {}): Promise<SnapshotInfo> {
    const wire = await new Transport(opts).request<WireSnapshotInfo>({
      method: 'DELETE',
      path: snapshotPath(id),
    });
    return snapshotInfoFromWire(wire);
  },
} as const;
