import type {
  MachineMetrics as WireMachineMetrics,
  MachineMetricsReading as WireReading,
} from '@nullspace/protocol';

/**
 * One reading of a machine's counters. Totals since its current execution started; `at` is when
 * it was taken.
 *
 * @example
 * ```ts
 * const { samples } = await machine.getMetrics();
 * for (const s of samples) console.log(s.at.toISOString(), s.cpuSeconds, s.memoryBytes);
 * ```
 */
export interface MachineMetricsReading {
  at: Date;
  /** CPU time used by all its processes, seconds. */
  cpuSeconds: number;
  /** Memory in use (page cache included), bytes. */
  memoryBytes: number;
  /** Space used on its own disk, bytes. */
  diskUsedBytes: number;
  networkRxBytes: number;
  networkTxBytes: number;
  networkRxPackets: number;
  networkTxPackets: number;
}

/**
 * A machine's metrics now, with its limits and recent samples.
 *
 * @example
 * ```ts
 * const m = await Machine.getMetricsById('mch_aaaaaaaaaaaaaaaaaaaa');
 * console.log(`${m.cpuPercent ?? '-'} % CPU, ${m.memoryBytes} of ${m.memoryLimitBytes} bytes`);
 * ```
 */
export interface MachineMetrics extends MachineMetricsReading {
  machineId: string;
  status: string;
  /** CPU use since the previous sample, in percent of one core; null before the first sample. */
  cpuPercent: number | null;
  vcpus: number;
  memoryLimitBytes: number;
  diskTotalBytes: number;
  /** Oldest first: one every few seconds, the last few minutes. */
  samples: MachineMetricsReading[];
}

function readingFromWire(r: WireReading): MachineMetricsReading {
  return {
    at: new Date(r.at),
    cpuSeconds: r.cpu_seconds,
    memoryBytes: r.memory_bytes,
    diskUsedBytes: r.disk_used_bytes,
    networkRxBytes: r.network_rx_bytes,
    networkTxBytes: r.network_tx_bytes,
    networkRxPackets: r.network_rx_packets,
    networkTxPackets: r.network_tx_packets,
  };
}

/**
 * Converts the API's metrics to the SDK's.
 *
 * @example
 * ```ts
 * const metrics = machineMetricsFromWire(await (await fetch(url, { headers })).json());
 * ```
 */
export function machineMetricsFromWire(w: WireMachineMetrics): MachineMetrics {
  return {
    ...readingFromWire(w),
    machineId: w.machine_id,
    status: w.status,
    cpuPercent: w.cpu_percent,
    vcpus: w.vcpus,
    memoryLimitBytes: w.memory_limit_bytes,
    diskTotalBytes: w.disk_total_bytes,
    samples: w.samples.map(readingFromWire),
  };
}
