import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { KEPT_STATES } from '@nullspace/protocol';
import type { MachineDriver } from '@nullspace/runtime';
import type { Logger } from '../../log.js';
import type { MachineRecord } from '../../store/machine-store.js';
import type { MachineVolumes } from '../volume-service.js';
import type { Deadlines } from './deadlines.js';
import type { MachineNetworks } from './machine-networks.js';
import type { MachineRecords } from './machine-records.js';
import type { MachineTransitions } from './machine-transitions.js';
import type { SnapshotImages } from './snapshot-images.js';
import type { Teardowns } from './teardowns.js';

/** Machines re-adopted at once at start (see Readoption.readopt). */
const READOPT_CONCURRENCY = 8;

/**
 * What a (re)started server does with the machines of the last one: those the store says are kept
 * and the runtime still holds are adopted (deadlines re-armed, network policy in force again); a
 * transition a crash interrupted is settled from what the runtime shows (back to running/paused,
 * forward to hibernated when the image is complete, else failed); half-done kills are finished;
 * runtime and snapshot leftovers nobody owns are removed.
 */
export class Readoption {
  constructor(
    private readonly records: MachineRecords,
    private readonly parts: {
      images: SnapshotImages;
      networks: MachineNetworks;
      deadlines: Deadlines;
      transitions: MachineTransitions;
      teardowns: Teardowns;
    },
    private readonly o: { driver: MachineDriver; volumes: MachineVolumes | undefined; log: Logger },
  ) {}

  async readopt(): Promise<void> {
    const { images } = this.parts;
    await mkdir(images.dir, { recursive: true });
    const known = new Set<string>();
    const kept = this.records.store.listInStates(KEPT_STATES);
    // Every address block is claimed again before any machine's rules are re-applied.
    for (const m of kept) {
      known.add(m.id);
      this.parts.networks.reclaim(m);
    }
    // A few machines at once: each waits mostly on host tools (`runc state`, `nft`), which under
    // load take up to a second each, and the server listens only once all are done. One at a
    // time, 500 machines kept the server deaf for minutes; every machine's steps touch only its
    // own record, files and rules, so they do not depend on one another.
    const queue = [...kept];
    await Promise.all(
      Array.from({ length: Math.min(READOPT_CONCURRENCY, queue.length) }, async () => {
        for (let m = queue.shift(); m; m = queue.shift()) {
          try {
            await this.readoptOne(m);
          } catch (err) {
            this.o.log.error('re-adoption failed', { machine_id: m.id, error: err });
          }
        }
      }),
    );
    for (const id of await this.o.driver.list()) {
      const m = this.records.store.get(id);
      if (known.has(id) || (m && KEPT_STATES.includes(m.status))) continue;
      if (m?.status === 'killed') {
        // Answered as killed by a server that stopped (or crashed) before its teardown was done:
        // the same teardown finishes it, store side included (snapshots, volumes, address claim),
        // in the background like any (its address block is held until then).
        this.o.log.warn('finishing the teardown of a killed machine', { machine_id: id });
        void this.parts.teardowns.enqueue(m);
        continue;
      }
      this.o.log.warn('removing runtime leftovers of a machine not alive in the store', { machine_id: id });
      await this.o.driver
        .destroy(id)
        .catch((err: unknown) => this.o.log.error('cleanup failed', { machine_id: id, error: err }));
    }
    // A reusable snapshot (or a fork's, which has no record) the last server was taking when it
    // stopped: never finished, and nothing will finish it. Listed as it was, it would stay forever
    // with no image (seen in the chaos test); its partial files go below, its record goes here.
    for (const snap of images.store.list({ kind: 'reusable' })) {
      if (snap.status !== 'memory') continue;
      this.o.log.warn('removing a snapshot a stopped server did not finish', { snapshot_id: snap.id });
      await images.remove(snap.id);
    }
    // The pause snapshots of a killed machine whose teardown finished on the host but not in the
    // store (a crash between the two): its files are gone from the host, these go too.
    for (const snap of images.store.list({ kind: 'pause' })) {
      const m = this.records.store.get(snap.machine_id);
      if (m?.status === 'killed' && !this.parts.teardowns.has(m.id)) await images.remove(snap.id);
    }
    const keep = images.store.idsWithImages();
    for (const name of await readdir(images.dir)) {
      if (!keep.has(name)) {
        this.o.log.warn('removing a snapshot directory nobody owns', { name });
        await rm(join(images.dir, name), { recursive: true, force: true });
      }
    }
  }

  private async readoptOne(m: MachineRecord): Promise<void> {
    const { images, networks, deadlines, transitions } = this.parts;
    if (m.status === 'killing') {
      await transitions.kill(m.id, m.status_reason ?? 'killed by request').catch(() => undefined);
      return;
    }
    const pauseSnap = m.snapshot_id ? images.store.get(m.snapshot_id) : undefined;
    await this.o.driver.settle(
      m.id,
      m.status === 'hibernating' && pauseSnap ? images.dirOf(pauseSnap.id) : undefined,
    );
    if (m.status === 'hibernated' || m.status === 'hibernating') {
      if (pauseSnap && this.o.driver.isImageComplete(images.dirOf(pauseSnap.id))) {
        if (m.status === 'hibernating') {
          await images.markReady(pauseSnap.id);
          this.records.setStatus(m.id, 'hibernated', {
            transition_deadline: null,
            paused_at: m.paused_at ?? Date.now(),
          });
        }
        this.o.log.info('hibernated machine kept', { machine_id: m.id });
        return;
      }
      if (m.status === 'hibernated') {
        await this.lose(m, 'its hibernation image is missing');
        return;
      }
    }
    const state = await this.o.driver.inspect(m.id);
    const was = m.status;
    if (
      was === 'resuming' &&
      state !== 'running' &&
      state !== 'paused' &&
      pauseSnap?.status === 'ready' &&
      this.o.driver.isImageComplete(images.dirOf(pauseSnap.id))
    ) {
      // A resume from hibernation the crash came before it ran: its image and disk are untouched
      // (a resume consumes them only once the machine runs), so it is hibernated again, never lost
      // (the chaos test lost one so). What the interrupted resume made on the host (mounts, its
      // network namespace) goes with the next resume or kill, which both release it first.
      this.records.setStatus(m.id, 'hibernated', {
        transition_deadline: null,
        status_reason: 'resume interrupted by a server restart',
      });
      this.o.log.info('hibernated machine kept after an interrupted resume', { machine_id: m.id });
      return;
    }
    if (
      state === 'running' &&
      (was === 'running' || was === 'hibernating' || was === 'resuming' || was === 'pausing')
    ) {
      if (pauseSnap?.status === 'memory') images.store.update(pauseSnap.id, { status: 'deleted' });
      // Resumed from hibernation before the crash: its image is spent, as after any resume.
      if (was === 'resuming' && pauseSnap?.status === 'ready') await images.remove(pauseSnap.id, 'consumed');
      const running =
        was === 'running'
          ? m
          : this.records.setStatus(m.id, 'running', {
              transition_deadline: null,
              status_reason: `${was} interrupted by a server restart`,
            });
      deadlines.arm(running);
      await networks.reapply(running);
      this.o.log.info('machine re-adopted', {
        machine_id: m.id,
        was,
        expires_at: new Date(running.expires_at).toISOString(),
      });
      return;
    }
    if (state === 'paused' && (was === 'paused' || was === 'pausing' || was === 'hibernating')) {
      let paused = m;
      if (was !== 'paused') {
        const snap =
          m.snapshot_id && images.store.get(m.snapshot_id)?.status === 'memory'
            ? undefined
            : images.insert(m, 'pause');
        paused = this.records.setStatus(m.id, 'paused', {
          transition_deadline: null,
          paused_at: m.paused_at ?? Date.now(),
          ...(snap ? { snapshot_id: snap.id } : {}),
        });
      }
      deadlines.armSpill(paused);
      await networks.reapply(paused);
      this.o.log.info('paused machine re-adopted', { machine_id: m.id, was });
      return;
    }
    if (state === 'paused' && (was === 'running' || was === 'resuming')) {
      // Frozen by a checkpoint a crash interrupted, or half resumed: finish thawing it.
      await this.o.driver.unpause(m.id);
      const running = this.records.setStatus(m.id, 'running', { transition_deadline: null, paused_at: null });
      deadlines.arm(running);
      return;
    }
    await this.lose(m, `runtime state was ${state} at server start while ${was}`);
  }

  private async lose(m: MachineRecord, why: string): Promise<void> {
    this.records.setStatus(m.id, 'failed', { status_reason: `lost: ${why}`, transition_deadline: null });
    await this.o.driver
      .destroy(m.id)
      .catch((err: unknown) => this.o.log.error('cleanup failed', { machine_id: m.id, error: err }));
    await this.parts.images.dropPauseSnapshots(m.id);
    this.o.volumes?.release(m.id);
    this.parts.networks.release(m);
    this.o.log.warn('machine lost across restart', { machine_id: m.id, why });
  }
}
