import type { ErrorBody } from './errors.js';
import { invalidArgument } from './errors.js';
import type { MachineState } from './machine-states.js';
import { MACHINE_LIMITS, type MachineInfo, TIMEOUT_ACTIONS, type TimeoutAction } from './machine.js';
import {
  expectObject,
  optionalBoolean,
  optionalEnum,
  optionalInteger,
  rejectUnknownKeys,
} from './validate.js';

// ---- snapshots ------------------------------------------------------------------------------

/**
 * `pause`: made by pause/hibernate, belongs to its machine, consumed by its resume.
 * `reusable`: made by create_snapshot; any number of machines can be created from it.
 */
export type SnapshotKind = 'pause' | 'reusable';

/** Snapshot info as returned by the API. */
export interface SnapshotInfo {
  id: string;
  kind: SnapshotKind;
  /** The machine it was taken of. */
  machine_id: string;
  template: string;
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  /** Bytes on the host's disk (memory image + filesystem). 0 while a pause snapshot is in memory only. */
  size_bytes: number;
  /** How long the source machine was frozen to take it (reusable snapshots). */
  paused_ms: number | null;
  created_at: string;
}

export interface ListSnapshotsResponse {
  items: SnapshotInfo[];
}

// ---- fork -----------------------------------------------------------------------------------

export const FORK_LIMITS = { count: { min: 1, max: 16, default: 1 } } as const;

export interface ForkRequest {
  count: number;
}

/** One entry per requested child: its info, or why that child failed (others are unaffected). */
export type ForkChildResult = MachineInfo | { error: ErrorBody['error'] };

export interface ForkResponse {
  children: ForkChildResult[];
}

export function parseFork(raw: unknown): ForkRequest {
  const body = raw === undefined ? {} : expectObject(raw, 'body');
  rejectUnknownKeys(body, ['count']);
  return {
    count:
      optionalInteger(body, 'count', FORK_LIMITS.count.min, FORK_LIMITS.count.max) ??
      FORK_LIMITS.count.default,
  };
}

// ---- timeout --------------------------------------------------------------------------------

export interface SetTimeoutRequest {
  /** Seconds from now. */
  timeout: number;
  on_timeout?: TimeoutAction;
  auto_resume?: boolean;
}

export function parseSetTimeout(raw: unknown): SetTimeoutRequest {
  const body = expectObject(raw, 'body');
  rejectUnknownKeys(body, ['timeout', 'on_timeout', 'auto_resume']);
  const timeout = optionalInteger(body, 'timeout', MACHINE_LIMITS.timeout.min, MACHINE_LIMITS.timeout.max);
  if (timeout === undefined) throw invalidArgument('timeout', 'is required');
  const onTimeout = optionalEnum(body, 'on_timeout', TIMEOUT_ACTIONS);
  const autoResume = optionalBoolean(body, 'auto_resume');
  return {
    timeout,
    ...(onTimeout !== undefined ? { on_timeout: onTimeout } : {}),
    ...(autoResume !== undefined ? { auto_resume: autoResume } : {}),
  };
}

/** `auto_resume` only makes sense when the timeout leaves something to resume. */
export function checkAutoResume(onTimeout: TimeoutAction, autoResume: boolean): void {
  if (autoResume && onTimeout === 'kill')
    throw invalidArgument('auto_resume', 'is only valid with on_timeout "pause" or "hibernate"');
}

// ---- lifecycle events -----------------------------------------------------------------------

/**
 * - `created`: the machine record exists (status `starting`), with `data.template` or
 *   `data.snapshot_id` / `data.parent_id` (fork).
 * - `status_changed`: every state change; `previous_status` → `status`, `reason` on failure or kill.
 * - `timeout`: the deadline passed; `data.on_timeout` says what happens next.
 * - `timeout_set`: `set_timeout`/connect moved the deadline (`data.expires_at`).
 * - `snapshot_created`: `data.snapshot_id`, `data.kind`, `data.paused_ms`.
 * - `forked`: on the parent, `data.child_ids` (the children that started).
 * - `network_set`: a new egress policy is in force (`data.egress`); `reason` says when applying it
 *   failed and the machine was left denying everything instead.
 */
export const LIFECYCLE_EVENT_TYPES = [
  'created',
  'status_changed',
  'timeout',
  'timeout_set',
  'snapshot_created',
  'forked',
  'network_set',
] as const;
export type LifecycleEventType = (typeof LIFECYCLE_EVENT_TYPES)[number];

export interface LifecycleEvent {
  /** Strictly increasing across the whole server; never reused. */
  id: number;
  machine_id: string;
  execution_id: string;
  type: LifecycleEventType;
  /** The machine's status right after the event. */
  status: MachineState;
  previous_status: MachineState | null;
  reason: string | null;
  data: Record<string, unknown>;
  /** ISO 8601. */
  at: string;
}

/** Messages on `GET /v1/machines/{id}/lifecycle/ws`, one JSON object per WebSocket text frame. */
export type LifecycleWsMessage =
  | { type: 'event'; event: LifecycleEvent }
  /** Sent once, when replay from `after_event_id` would skip events that retention removed. */
  | { type: 'events_expired'; after_event_id: number; oldest_event_id: number | null; message: string }
  /** Sent once when replay is done and live events follow. */
  | { type: 'live'; last_event_id: number };

/** `GET /v1/machines/{id}/lifecycle/events` answer. */
export interface LifecycleEventsPage {
  events: LifecycleEvent[];
  /** Pass as `after_event_id` next time (the last event's id, or the one given if none came). */
  last_event_id: number;
}

export const EVENTS_LIMITS = {
  limit: { min: 1, max: 1000, default: 100 },
  wait_ms: { min: 0, max: 60_000, default: 0 },
} as const;
