import { CodedError, type SnapshotInfo, TRANSITIONAL_STATES } from '@nullspace/protocol';
import type { MachineDriver } from '@nullspace/runtime';
import type { Logger } from '../../log.js';
import type { MachineRecord } from '../../store/machine-store.js';
import { snapshotInfo } from '../../store/snapshot-store.js';
import type { TemplateResolver } from '../template-catalog.js';
import type { MachineVolumes } from '../volume-service.js';
import type { AgentConnections } from './agent-connections.js';
import type { Deadlines } from './deadlines.js';
import { errorBody } from './failures.js';
import type { MachineCreator } from './machine-creator.js';
import type { MachineRecords } from './machine-records.js';
import type { MachineTransitions } from './machine-transitions.js';
import type { SnapshotImages } from './snapshot-images.js';

/** One fork child: its record once it runs, or why it did not start. */
export type ForkChild = { record: MachineRecord } | { error: ReturnType<typeof errorBody> };

export interface SnapshotsAndForksOptions {
  driver: MachineDriver;
  templates: TemplateResolver;
  volumes: MachineVolumes | undefined;
  transitionTimeoutMs: number;
  log: Logger;
}

/**
 * Reusable snapshots of running machines (taken with the machine frozen only while its memory and
 * disk are copied, after the agent's connections were drained) and forks: one such snapshot
 * restored `count` times into independent children, each succeeding or failing on its own.
 */
export class SnapshotsAndForks {
  constructor(
    private readonly records: MachineRecords,
    private readonly parts: {
      images: SnapshotImages;
      agents: AgentConnections;
      deadlines: Deadlines;
      creator: MachineCreator;
      transitions: MachineTransitions;
    },
    private readonly o: SnapshotsAndForksOptions,
  ) {}

  /** A reusable snapshot of a running machine; it keeps running (frozen for `paused_ms`). */
  async createSnapshot(id: string): Promise<SnapshotInfo> {
    const { images, agents, transitions } = this.parts;
    this.records.get(id);
    return this.records.serialized(id, async () => {
      const m = this.records.get(id);
      this.records.admit('snapshot', m);
      const snap = images.insert(m, 'reusable');
      this.o.volumes?.rememberSnapshot(snap.id, id);
      try {
        const { pausedMs } = await agents.quiesced(id, () =>
          this.o.driver.snapshot(id, images.dirOf(snap.id), this.o.transitionTimeoutMs),
        );
        await images.markReady(snap.id, { paused_ms: pausedMs });
      } catch (err) {
        await images.remove(snap.id).catch(() => undefined);
        await this.checkAfterFreeze(id);
        throw transitions.failed(id, 'snapshot', err);
      }
      const info = images.record(snap.id);
      this.records.event(this.records.get(id), 'snapshot_created', {
        snapshot_id: snap.id,
        kind: 'reusable',
        paused_ms: info.paused_ms,
      });
      return snapshotInfo(info);
    });
  }

  /** Deletes a reusable snapshot (or the pause snapshot of a running machine) and its files. */
  async deleteSnapshot(snapshotId: string, o: { forTemplate?: boolean } = {}): Promise<SnapshotInfo> {
    const { images } = this.parts;
    const snap = images.record(snapshotId);
    return this.records.serialized(snapshotId, async () => {
      const now = images.record(snapshotId);
      const user = this.o.templates.snapshotUser(snapshotId);
      if (user && !o.forTemplate)
        throw new CodedError('invalid_state', `snapshot ${snapshotId} cannot be deleted: ${user}`, {
          snapshot_id: snapshotId,
        });
      if (now.kind === 'pause') {
        const m = this.records.store.get(now.machine_id);
        if (
          m &&
          (m.status === 'paused' || m.status === 'hibernated' || TRANSITIONAL_STATES.includes(m.status))
        )
          throw new CodedError(
            'invalid_state',
            `snapshot ${snapshotId} holds the state of ${m.status} machine ${m.id}; kill the machine instead`,
            { snapshot_id: snapshotId, machine_id: m.id },
          );
      }
      await images.remove(snapshotId);
      this.o.log.info('snapshot deleted', { snapshot_id: snapshotId });
      return snapshotInfo({ ...snap, status: 'deleted', size_bytes: 0 });
    });
  }

  /**
   * Branches a running machine into `count` children with its memory and filesystem state. The
   * parent keeps running; each child succeeds or fails on its own.
   */
  async fork(id: string, count: number): Promise<ForkChild[]> {
    const { images, agents, transitions } = this.parts;
    this.records.get(id);
    return this.records.serialized(id, async () => {
      const parent = this.records.get(id);
      this.records.admit('fork', parent);
      const templateRootfs = this.o.templates.lowerdirOf(parent.template_id, parent.template);
      return images.withScratch(async (dir) => {
        try {
          await agents.quiesced(id, () => this.o.driver.snapshot(id, dir, this.o.transitionTimeoutMs));
        } catch (err) {
          await this.checkAfterFreeze(id);
          throw transitions.failed(id, 'fork', err);
        }
        const children = await Promise.all(
          Array.from({ length: count }, () => this.startChild(parent, templateRootfs, dir)),
        );
        const childIds = children.flatMap((c) => ('record' in c ? [c.record.id] : []));
        this.records.event(this.records.get(id), 'forked', { child_ids: childIds, requested: count });
        return children;
      });
    });
  }

  private async startChild(parent: MachineRecord, templateRootfs: string, dir: string): Promise<ForkChild> {
    const { creator } = this.parts;
    try {
      const record = await creator.admitRecord(
        { ...parent },
        { template: parent.template, template_id: parent.template_id, parent_id: parent.id },
      );
      return await this.records.serialized(record.id, async () => {
        try {
          await this.o.driver.createFromSnapshot(
            creator.specOf(record, templateRootfs, { kind: 'fork', id: parent.id }),
            dir,
            this.o.transitionTimeoutMs,
          );
        } catch (err) {
          throw creator.failStart(record, err);
        }
        return { record: creator.started(record.id, record.timeout) };
      });
    } catch (err) {
      return { error: errorBody(err) };
    }
  }

  /** After a failed snapshot or fork: the source must be as it was (running, or paused). */
  private async checkAfterFreeze(id: string): Promise<void> {
    if (!(await this.parts.agents.aliveAndAnswering(id, true))) {
      this.parts.deadlines.disarm(id);
      this.records.setStatus(id, 'failed', {
        status_reason: 'the machine stopped answering after a failed snapshot',
      });
    }
  }
}
