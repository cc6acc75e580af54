import {
  type MachineMetricsReadingSchema,
  MachineMetricsSchema,
  type MachineMetrics as WireMachineMetrics,
} from '@nullspace/protocol';
import { type FromWire, fromWire } from './wire.js';

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
export interface MachineMetricsReading extends FromWire<typeof MachineMetricsReadingSchema> {}

/**
 * A machine's metrics now, with its limits and recent samples.
 *
 * @example
 * ```ts
 * const m = await Machine.getMetricsById('mch_aaaaaaaaaaaaaaaaaaaa');
 * console.log(`${m.cpuPercent ?? '-'} % CPU, ${m.memoryBytes} of ${m.memoryLimitBytes} bytes`);
 * ```
 */
export interface MachineMetrics extends FromWire<typeof MachineMetricsSchema> {}

/**
 * Converts the API's metrics to the SDK's.
 *
 * @example
 * ```ts
 * const metrics = machineMetricsFromWire(await (await fetch(url, { headers })).json());
 * ```
 */
export function machineMetricsFromWire(w: WireMachineMetrics): MachineMetrics {
  return fromWire(MachineMetricsSchema, w);
}
