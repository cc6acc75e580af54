import { DateTime, Nullable, type Static, Type, named } from './schema/kit.js';

/**
 * `GET /v1/machines/{id}/metrics`: a machine's counters now, from its cgroups, its disk and its
 * link, and recent samples the server took. Counters are totals since the machine (or, after a
 * hibernate, its current execution) started; rates come from two readings.
 */
const READING = {
  at: DateTime(),
  cpu_seconds: Type.Number({ description: 'CPU time used, seconds (all its processes).' }),
  memory_bytes: Type.Integer({
    description: 'Memory in use (cgroup accounting, page cache included), bytes.',
  }),
  disk_used_bytes: Type.Integer({ description: "Disk space in use on the machine's own disk, bytes." }),
  network_rx_bytes: Type.Integer({ description: 'Bytes the machine received on its link.' }),
  network_tx_bytes: Type.Integer({ description: 'Bytes the machine sent on its link.' }),
  network_rx_packets: Type.Integer(),
  network_tx_packets: Type.Integer(),
};

export const MachineMetricsReadingSchema = named('MachineMetricsReading', Type.Object(READING));
export type MachineMetricsReading = Static<typeof MachineMetricsReadingSchema>;

export const MachineMetricsSchema = named(
  'MachineMetrics',
  Type.Object({
    ...READING,
    machine_id: Type.String(),
    status: Type.String(),
    cpu_percent: Nullable(Type.Number(), {
      description: 'CPU use since the previous sample, in percent of one core; null without one.',
    }),
    vcpus: Type.Integer(),
    memory_limit_bytes: Type.Integer(),
    disk_total_bytes: Type.Integer(),
    samples: Type.Array(MachineMetricsReadingSchema, {
      description: 'Recent samples, oldest first (one every few seconds, the last few minutes).',
    }),
  }),
);
export type MachineMetrics = Static<typeof MachineMetricsSchema>;
