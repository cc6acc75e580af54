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

/** The operations whose admission depends on the machine's state (see {@link admit}). */
export type MachineOperation =
  | 'pause'
  | 'hibernate'
  | 'resume'
  | 'kill'
  | 'snapshot'
  | 'fork'
  | 'set_timeout'
  | 'set_network'
  /** Anything that needs the machine's agent: commands, files, terminals, volumes, exports. */
  | 'use';

interface AdmissionRule {
  /** States in which the operation runs. */
  run: readonly MachineState[];
  /** States in which it is already done: the machine is returned as it is. */
  asIs?: readonly MachineState[];
  /** Refused with `invalid_state` even while transitional (never worth a retry). */
  final?: readonly MachineState[];
}

/**
 * The machine's state machine as the API sees it: in which states each operation runs, is a
 * no-op, or is refused. Transitions themselves (pause: running → pausing → paused …) are the
 * services'; this table is what every entry point checks first.
 */
export const ADMISSION: Readonly<Record<MachineOperation, AdmissionRule>> = {
  pause: { run: ['running'], asIs: ['paused', 'hibernated'] },
  hibernate: { run: ['running', 'paused'], asIs: ['hibernated'] },
  resume: { run: ['paused', 'hibernated'], asIs: ['running'] },
  kill: {
    run: MACHINE_STATES.filter((s) => s !== 'killed'),
    asIs: ['killed'],
  },
  snapshot: { run: ['running'] },
  fork: { run: ['running'] },
  set_timeout: {
    run: MACHINE_STATES.filter((s) => s !== 'killed' && s !== 'failed' && s !== 'killing'),
    final: ['killed', 'failed', 'killing'],
  },
  set_network: { run: ['running', 'paused', 'hibernated'] },
  use: { run: ['running'] },
};

/** What {@link admit} refuses with: the API's code, and whether a retry may succeed. */
export interface Refusal {
  code: 'machine_transitioning' | 'invalid_state';
  /** Set for `machine_transitioning`: the machine is on its way to another state. */
  retryAfterS?: number;
}

/**
 * Whether `op` may run on a machine in `status`: `run`, `as_is` (already done), or the refusal
 * (transitional states are worth a retry; the others are not).
 */
export function admission(op: MachineOperation, status: MachineState): 'run' | 'as_is' | Refusal {
  const rule = ADMISSION[op];
  if (rule.asIs?.includes(status)) return 'as_is';
  if (rule.run.includes(status)) return 'run';
  if (!rule.final?.includes(status) && TRANSITIONAL_STATES.includes(status))
    return { code: 'machine_transitioning', retryAfterS: 1 };
  return { code: 'invalid_state' };
}
