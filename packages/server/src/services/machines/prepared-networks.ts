import { newId } from '@nullspace/protocol';
import type { MachineDriver } from '@nullspace/runtime';
import type { Logger } from '../../log.js';
import { DEFAULT_NETWORK } from '../network-policy.js';
import type { MachineNetworks } from './machine-networks.js';

/** After a preparation failed (or the address pool was full), none is started for this long. */
const RETRY_AFTER_MS = 5_000;
/**
 * How long after the last take the entries taken are made again. Made at once, the next entry's
 * network was made while the create that took the last one made its disk and started, on the
 * same CPUs: that create's host side was no shorter than with no entry at all (bench/README.md,
 * "Machine start"). A burst of creates takes what there is and makes nothing more until it ends.
 */
const REFILL_DELAY_MS = 500;

/** A network made ahead: the id and address block the machine that takes it gets. */
export interface PreparedNetwork {
  id: string;
  netIndex: number;
}

interface Entry extends PreparedNetwork {
  /** Settles once the driver has made it (or failed, and removed what it made). */
  made: Promise<void>;
  ready: boolean;
}

/**
 * A few machines' networks (namespace, veth, addresses, egress rules: the network lane of a
 * create's host side) made ahead, in the background, each for a machine id and an address block
 * of its own, claimed host-wide as any machine's (MachineNetworks.allocateIndex): a create takes
 * one, and its machine gets that id and block, so its host side is the disk alone
 * (RuncDriver.prepareNetwork; bench/README.md, "Machine start"). Made with the default policy; a
 * create asking for another has it put in force by the driver. Each entry is taken once (taken
 * synchronously, while the create's record is made), and another is made in its place.
 *
 * What an entry holds is the host's like any machine's: the inventory lists it under its id. A
 * closing server removes the entries nobody took and gives up their blocks; after a crash, the
 * next server's re-adoption removes them as leftovers of machines the store does not know (and
 * their claims go stale with their directories). `size` 0: none is made.
 */
export class PreparedNetworks {
  private readonly entries: Entry[] = [];
  private started = false;
  private closed = false;
  private retryAt = 0;
  private refill: NodeJS.Timeout | undefined;

  constructor(
    private readonly networks: MachineNetworks,
    private readonly o: {
      size: number;
      driver: Pick<MachineDriver, 'prepareNetwork' | 'destroy'>;
      log: Logger;
    },
  ) {}

  /**
   * Starts making entries: only once re-adoption is done, which removes whatever of the host's is
   * in the machines directory with no machine in the store.
   */
  start(): void {
    this.started = true;
    this.fill();
  }

  /**
   * A made entry for a new machine, or undefined when there is none; another is made in its place.
   * `orBeingMade`: else one still being made (which the driver's create waits for), for a create
   * that found no other address block: the entries' blocks are the last free ones.
   */
  take(o: { orBeingMade?: boolean } = {}): PreparedNetwork | undefined {
    const i = this.entries.findIndex((e) => e.ready || o.orBeingMade === true);
    if (i < 0) return undefined;
    const [entry] = this.entries.splice(i, 1);
    this.refillLater();
    return entry && { id: entry.id, netIndex: entry.netIndex };
  }

  /** How many entries there are, made or being made. */
  get count(): number {
    return this.entries.length;
  }

  /**
   * Gives back an entry taken for a machine whose record could not be stored: removed from the
   * host, its block given up.
   */
  discard(p: PreparedNetwork): Promise<void> {
    return this.remove(p);
  }

  /** Stops making entries; removes those nobody took (waiting for any being made). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.refill) clearTimeout(this.refill);
    const left = this.entries.splice(0);
    await Promise.all(
      left.map(async (e) => {
        await e.made;
        // One that failed is gone from the host already; its block is given up here.
        if (e.ready) await this.remove(e);
        else this.networks.releaseIndex(e.netIndex, e.id);
      }),
    );
  }

  private refillLater(): void {
    if (this.refill) clearTimeout(this.refill);
    this.refill = setTimeout(() => {
      this.refill = undefined;
      this.fill();
    }, REFILL_DELAY_MS);
    this.refill.unref();
  }

  private fill(): void {
    while (this.started && !this.closed && this.entries.length < this.o.size && Date.now() >= this.retryAt) {
      const id = newId('machine');
      let netIndex: number;
      try {
        netIndex = this.networks.allocateIndex(id);
      } catch (err) {
        // The address pool is full: every block is a machine's (or another server's).
        this.o.log.debug('no address block for a prepared network', { error: err });
        this.retryAt = Date.now() + RETRY_AFTER_MS;
        return;
      }
      const entry: Entry = { id, netIndex, ready: false, made: Promise.resolve() };
      entry.made = this.o.driver
        .prepareNetwork(id, this.networks.networkFor(id, netIndex, DEFAULT_NETWORK))
        .then(
          () => {
            entry.ready = true;
          },
          (err: unknown) => {
            this.o.log.warn('preparing a network failed', { machine_id: id, error: err });
            this.retryAt = Date.now() + RETRY_AFTER_MS;
            // Still ours (not taken): its block is given up. A taken one's machine makes its own
            // network (the driver removed what it had made), on the block its record holds.
            const i = this.entries.indexOf(entry);
            if (i >= 0) {
              this.entries.splice(i, 1);
              this.networks.releaseIndex(netIndex, id);
            }
          },
        );
      this.entries.push(entry);
    }
  }

  private async remove(p: PreparedNetwork): Promise<void> {
    try {
      await this.o.driver.destroy(p.id);
      this.networks.releaseIndex(p.netIndex, p.id);
    } catch (err) {
      // Its directory stays, so the next server's re-adoption removes it.
      this.o.log.error('removing a prepared network failed', { machine_id: p.id, error: err });
    }
  }
}
