import { channel } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';

/** One message on a step channel: a step of one machine's operation, done, and its time. */
export interface StepTiming<S extends string> {
  machineId: string;
  step: S;
  ms: number;
}

/**
 * A runner of the steps `S` of machine operations that publishes each step that succeeds, timed,
 * on the `node:diagnostics_channel` named `name` — timed only while the channel has a subscriber
 * (the benches subscribe to show where the time goes). The teardown and the checkpoint steps use it.
 */
export function stepPublisher<S extends string>(name: string) {
  const ch = channel(name);
  return async <T>(machineId: string, step: S, fn: () => Promise<T>): Promise<T> => {
    if (!ch.hasSubscribers) return fn();
    const t0 = performance.now();
    const result = await fn();
    const timing: StepTiming<S> = { machineId, step, ms: performance.now() - t0 };
    ch.publish(timing);
    return result;
  };
}
