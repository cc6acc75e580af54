import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CodedError, KEPT_STATES, type NetworkSpec } from '@nullspace/protocol';
import {
  type AddressPool,
  type DriverNetwork,
  type MachineDriver,
  claimBlock,
  hostIfOf,
  releaseBlock,
} from '@nullspace/runtime';
import type { Logger } from '../../log.js';
import type { MachineRecord } from '../../store/machine-store.js';
import { DENY_ALL_EGRESS, driverNetwork, isBroadening, networkInfo } from '../network-policy.js';
import { transitionError } from './failures.js';
import type { MachineRecords } from './machine-records.js';

/** How long a block found taken by something else is passed over before it is looked at again. */
const OTHERS_BLOCK_RECHECK_MS = 30_000;

export interface MachineNetworksOptions {
  /** Only what puts an egress policy in force. */
  driver: Pick<MachineDriver, 'setEgress' | 'blockEgress'>;
  /** Where machines' addresses come from (one block per machine). */
  addressPool: AddressPool;
  /** The machines' directories: a block's host-wide claim names the directory of its machine. */
  machinesDir: string;
  /** Where the host-wide claims on address blocks are kept (default: runtime ADDRESS_CLAIMS_DIR). */
  claimsDir?: string;
  /** Port of the host's DNS forwarder (on its 127.0.0.1); none: machines get no name service. */
  dnsPort?: number | undefined;
  /** Blocks of killed machines whose teardown is not finished (Teardowns): not handed out yet. */
  inTeardown?: () => ReadonlySet<number>;
  log: Logger;
}

/**
 * Each machine's link to the host (an address block of the pool, held while the machine is kept)
 * and its egress policy: set at create, replaced on request (tightening fails closed), put in force
 * again when a restarted server re-adopts the machine.
 */
export class MachineNetworks {
  /**
   * Blocks found taken by something else (another server's machine, a link of a teardown not
   * finished): not looked at again until the time noted. Without it every create walked, from
   * block 0, past every such block on the host with a few file operations each, on the event loop:
   * with the hundreds of other servers' machines of a shared host, ~18 ms per create.
   */
  private readonly othersBlocks = new Map<number, number>();

  constructor(
    private readonly records: MachineRecords,
    private readonly o: MachineNetworksOptions,
  ) {}

  /** The link and policy of `m`; a machine made before machines had networks gets a block now. */
  networkOf(m: MachineRecord): DriverNetwork {
    const netIndex =
      m.net_index ?? this.records.update(m.id, { net_index: this.allocateIndex(m.id) }).net_index;
    return this.networkFor(m.id, netIndex ?? 0, m.network);
  }

  /** The link of machine `id` on block `netIndex` (with this server's DNS port) and `network`'s policy. */
  networkFor(id: string, netIndex: number, network: NetworkSpec): DriverNetwork {
    const out = driverNetwork(this.o.addressPool, { id, net_index: netIndex, network });
    if (this.o.dnsPort !== undefined) out.link.dnsPort = this.o.dnsPort;
    return out;
  }

  /**
   * The lowest block of the address pool no machine of this server holds (alive, hibernated, or
   * killed with its teardown unfinished), whose host interface does not exist, and that machine `id` could claim host-wide (another server
   * on this host may use the same pool: runtime net/address-claims.ts). A block found taken by
   * something else is passed over for OTHERS_BLOCK_RECHECK_MS, so that a create does not grow with
   * the number of other servers' machines on the host.
   */
  allocateIndex(id: string): number {
    const held = this.records.store.netIndexesInStates(KEPT_STATES);
    for (const i of this.o.inTeardown?.() ?? []) held.add(i);
    const now = Date.now();
    for (let i = 0; i < this.o.addressPool.size; i++) {
      if (held.has(i)) continue;
      const skipUntil = this.othersBlocks.get(i);
      if (skipUntil !== undefined) {
        if (skipUntil > now) continue;
        this.othersBlocks.delete(i);
      }
      if (existsSync(`/sys/class/net/${hostIfOf(this.o.addressPool, i)}`) || !this.claim(i, id)) {
        this.othersBlocks.set(i, now + OTHERS_BLOCK_RECHECK_MS);
        continue;
      }
      return i;
    }
    throw new CodedError(
      'resource_exhausted',
      `the machine address pool ${this.o.addressPool.cidr} is full`,
      { pool: this.o.addressPool.cidr },
    );
  }

  /**
   * Claims a kept machine's block again (a re-adopting server: a reboot empties the claims, which
   * live under /run); a block another server took meanwhile is logged.
   */
  reclaim(m: MachineRecord): void {
    if (m.net_index !== null && !this.claim(m.net_index, m.id))
      this.o.log.warn("another server claims this machine's address block", {
        machine_id: m.id,
        net_index: m.net_index,
      });
  }

  /** Gives up the host-wide claim on a killed machine's block. */
  release(m: MachineRecord): void {
    if (m.net_index !== null) this.releaseIndex(m.net_index, m.id);
  }

  /** Gives up machine `id`'s host-wide claim on block `netIndex` (also one of a network never used). */
  releaseIndex(netIndex: number, id: string): void {
    releaseBlock(this.o.addressPool, netIndex, join(this.o.machinesDir, id), this.o.claimsDir);
  }

  private claim(index: number, id: string): boolean {
    return claimBlock(this.o.addressPool, index, join(this.o.machinesDir, id), this.o.claimsDir);
  }

  /**
   * Replaces the egress policy. On a running or paused machine it is in force when this returns
   * (new connections follow it; open ones go on). If it cannot be applied: a broadening leaves the
   * old policy in force; anything else leaves the machine denying all egress (stored, so info and
   * a later resume say and do the same), and the caller gets the error. A hibernated machine gets
   * it at resume.
   */
  async set(id: string, network: NetworkSpec): Promise<MachineRecord> {
    this.records.get(id);
    return this.records.serialized(id, async () => {
      const m = this.records.get(id);
      this.records.admit('set_network', m);
      if (m.status !== 'hibernated') {
        try {
          await this.o.driver.setEgress(id, this.networkOf({ ...m, network }));
        } catch (err) {
          if (isBroadening(m.network.egress, network.egress)) {
            this.o.log.error('network failed', { machine_id: id, error: err });
            throw transitionError(id, 'network', err, this.records.get(id).status);
          }
          const denied: NetworkSpec = { ...network, egress: DENY_ALL_EGRESS };
          const reason = 'the new network policy could not be applied: the machine now denies all egress';
          await this.o.driver.blockEgress(id, this.networkOf({ ...m, network: denied }));
          const updated = this.records.update(id, { network: denied, status_reason: reason });
          this.records.event(updated, 'network_set', { egress: DENY_ALL_EGRESS }, reason);
          this.o.log.error('network policy failed; machine left denying', { machine_id: id, error: err });
          throw new CodedError(
            'internal',
            `machine ${id}: ${reason} (status_reason; the server log has the cause)`,
            { machine_id: id, status: m.status, egress: 'deny_all' },
            { cause: err },
          );
        }
      }
      const updated = this.records.update(id, { network });
      this.records.event(updated, 'network_set', { egress: networkInfo(network, null).egress });
      this.o.log.info('network policy set', { machine_id: id, mode: network.egress.mode });
      return updated;
    });
  }

  /**
   * Puts a re-adopted machine's stored policy in force again: its rules outlived the last server,
   * but a crash between applying a policy and storing it would leave the two apart (and the new
   * DNS forwarder's port is in them). A machine an older server made, with a table of its own, is
   * moved into the host table by the same transaction (runtime net/link.ts applyEgress).
   */
  async reapply(m: MachineRecord): Promise<void> {
    if (m.net_index === null) return;
    const network = this.networkOf(m);
    await this.o.driver.setEgress(m.id, network).catch(async (err: unknown) => {
      this.o.log.error('re-applying the network policy failed; blocking egress', {
        machine_id: m.id,
        error: err,
      });
      await this.o.driver.blockEgress(m.id, network);
    });
  }
}
