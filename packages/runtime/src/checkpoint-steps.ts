import { type StepTiming, stepPublisher } from './step-timing.js';

/**
 * The steps of a hibernate and of a resume from hibernation (RuncDriver.hibernate / restore), in
 * order; `runc checkpoint`, `runc restore` and `criu restore` (a resume driven by CRIU directly,
 * runc/criu-restore.ts: one of the two restores runs) include CRIU's own run (its log has its own times).
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
  'restore: criu restore',
  'restore: settle netns',
  'restore: wait for the agent',
  'restore: mount volumes',
] as const;
export type CheckpointStep = (typeof CHECKPOINT_STEPS)[number];

/** One message on {@link CHECKPOINT_CHANNEL}: a step of one machine's hibernate or restore, done. */
export type CheckpointStepTiming = StepTiming<CheckpointStep>;

/**
 * The `node:diagnostics_channel` on which the runc driver publishes a {@link CheckpointStepTiming}
 * after each step of a hibernate or a resume that succeeds. Timed only while the channel has a
 * subscriber: bench/hibernate.mjs subscribes to show where the time goes.
 */
export const CHECKPOINT_CHANNEL = 'nullspace:runtime:checkpoint-step';

/** Runs `fn` as `step` of machine `machineId`'s hibernate or restore; timed while someone listens. */
export const checkpointStep = stepPublisher<CheckpointStep>(CHECKPOINT_CHANNEL);
