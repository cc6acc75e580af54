/**
 * `GET /v1/machines/{id}/metrics`: a machine's counters now, from its cgroups, its disk and its
 * link, and recent samples the server took. Counters are totals since the machine (or, after a
 * hibernate, its current execution) started; rates come from two readings.
 */
export interface MachineMetricsReading {
  /** ISO 8601. */
  at: string;
  /** CPU time used, seconds (all its processes). */
  cpu_seconds: number;
  /** Memory in use (cgroup accounting, page cache included), bytes. */
  memory_bytes: number;
  /** Disk space in use on the machine's own disk, bytes (of `disk_total_bytes`). */
  disk_used_bytes: number;
  /** Bytes and packets the machine received and sent on its link. */
  network_rx_bytes: number;
  network_tx_bytes: number;
  network_rx_packets: number;
  network_tx_packets: number;
}

export interface MachineMetrics extends MachineMetricsReading {
  machine_id: string;
  status: string;
  /** CPU use since the previous sample, in percent of one core (100 = one core busy); null without one. */
  cpu_percent: number | null;
  vcpus: number;
  memory_limit_bytes: number;
  disk_total_bytes: number;
  /** Recent samples, oldest first (one every few seconds, the last few minutes). */
  samples: MachineMetricsReading[];
}
