/** Every state a machine can be in (API.md §1), and the groups of them both sides reason with. */
export const MACHINE_STATES = [
  'starting',
  'running',
  'pausing',
  'paused',
  'hibernating',
  'hibernated',
  'resuming',
  'killing',
  'killed',
  'failed',
] as const;
export type MachineState = (typeof MACHINE_STATES)[number];

/** States in which a machine holds runtime resources and counts against the host's capacity. */
export const LIVE_STATES: readonly MachineState[] = [
  'starting',
  'running',
  'pausing',
  'paused',
  'hibernating',
  'resuming',
  'killing',
];

/**
 * States the server keeps (and re-adopts) across a restart: the live ones and hibernated. A
 * machine in one of them still holds what it was given (address block, volumes, template).
 */
export const KEPT_STATES: readonly MachineState[] = [...LIVE_STATES, 'hibernated'];

/** States a machine passes through; a request that needs it running gets `machine_transitioning`. */
export const TRANSITIONAL_STATES: readonly MachineState[] = [
  'starting',
  'pausing',
  'hibernating',
  'resuming',
  'killing',
];
