import { channel } from 'node:diagnostics_channel';

/**
 * The steps of a hibernate and of a resume from hibernation (RuncDriver.hibernate / restore), in
 * order; `runc checkpoint` and `runc restore` include CRIU's own run (its log has its own times).
 */
export const CHECKPOINT_STEPS = [
  'hibernate: freeze',
  'hibernate: runc checkpoint',
  'hibernate: keep the image',
  'restore: wait for the release',
  'restore: release leftovers',
  'restore: claim id range',
  'restore: prepare host (disk, overlay, netns, link)',
  'restore: identity files',
  'restore: stage volumes, criu.conf',
  'restore: image for the id range',
  'restore: runc restore',
  'restore: settle netns',
  'restore: wait for the agent',
  'restore: mount volumes',
] as const;
export type CheckpointStep = (typeof CHECKPOINT_STEPS)[number];

/** One message on {@link CHECKPOINT_CHANNEL}: a step of one machine's hibernate or restore, done. */
export interface CheckpointStepTiming {
  machineId: string;
  step: CheckpointStep;
  ms: number;
}

/**
 * The `node:diagnostics_channel` on which the runc driver publishes a {@link CheckpointStepTiming}
 * after each step of a hibernate or a resume that succeeds. Timed only while the channel has a
 * subscriber: bench/hibernate.mjs subscribes to show where the time goes.
 */
export const CHECKPOINT_CHANNEL = 'nullspace:runtime:checkpoint-step';

const stepChannel = channel(CHECKPOINT_CHANNEL);

/** Runs `fn` as `step` of machine `machineId`'s hibernate or restore; timed while someone listens. */
export async function checkpointStep<T>(
  machineId: string,
  step: CheckpointStep,
  fn: () => Promise<T>,
): Promise<T> {
  if (!stepChannel.hasSubscribers) return fn();
  const t0 = performance.now();
  const result = await fn();
  const timing: CheckpointStepTiming = { machineId, step, ms: performance.now() - t0 };
  stepChannel.publish(timing);
  return result;
}
