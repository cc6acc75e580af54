import { ErrorBodySchema } from './errors.js';
import { invalidArgument } from './errors.js';
import { MACHINE_STATES } from './machine-states.js';
import { MACHINE_LIMITS, MachineInfoSchema, TIMEOUT_ACTIONS, type TimeoutAction } from './machine.js';
import { check, queryValues } from './schema/check.js';
import { DateTime, FreeMap, Nullable, type Static, Strict, StringEnum, Type, named } from './schema/kit.js';

// ---- snapshots ------------------------------------------------------------------------------

export const SNAPSHOT_KINDS = ['pause', 'reusable'] as const;
/**
 * `pause`: made by pause/hibernate, belongs to its machine, consumed by its resume.
 * `reusable`: made by create_snapshot; any number of machines can be created from it.
 */
export type SnapshotKind = (typeof SNAPSHOT_KINDS)[number];

/** Snapshot info as returned by the API. */
export const SnapshotInfoSchema = named(
  'SnapshotInfo',
  Type.Object({
    id: Type.String({ description: '`snap_...`' }),
    kind: StringEnum(SNAPSHOT_KINDS),
    machine_id: Type.String({ description: 'The machine it was taken of.' }),
    template: Type.String(),
    vcpus: Type.Integer(),
    memory_mb: Type.Integer(),
    disk_mb: Type.Integer(),
    size_bytes: Type.Integer({
      description:
        "Bytes on the host's disk (memory image + filesystem); 0 while a pause snapshot is in memory only.",
    }),
    paused_ms: Nullable(Type.Integer(), {
      description: 'How long the source machine was frozen to take it.',
    }),
    created_at: DateTime(),
  }),
);
export type SnapshotInfo = Static<typeof SnapshotInfoSchema>;

export const ListSnapshotsResponseSchema = Type.Object({ items: Type.Array(SnapshotInfoSchema) });
export type ListSnapshotsResponse = Static<typeof ListSnapshotsResponseSchema>;

export const ListSnapshotsQuerySchema = Type.Object({
  machine_id: Type.Optional(Type.String({ description: 'Only snapshots taken of this machine.' })),
  kind: Type.Optional(StringEnum(SNAPSHOT_KINDS, { description: 'Only snapshots of this kind.' })),
});

/** `GET /v1/snapshots` query, checked against its schema (each parameter once, no NUL). */
export function parseListSnapshotsQuery(params: URLSearchParams): Static<typeof ListSnapshotsQuerySchema> {
  return check(ListSnapshotsQuerySchema, queryValues(params, ListSnapshotsQuerySchema));
}

// ---- fork -----------------------------------------------------------------------------------

export const FORK_LIMITS = { count: { min: 1, max: 16, default: 1 } } as const;

export const ForkBodySchema = named(
  'ForkRequest',
  Strict({
    count: Type.Optional(
      Type.Integer({
        minimum: FORK_LIMITS.count.min,
        maximum: FORK_LIMITS.count.max,
        default: FORK_LIMITS.count.default,
        description: 'How many children to start.',
      }),
    ),
  }),
);

export interface ForkRequest {
  count: number;
}

/** One entry per requested child: its info, or why that child failed (others are unaffected). */
export const ForkChildResultSchema = Type.Union([
  MachineInfoSchema,
  Type.Object({ error: ErrorBodySchema.properties.error }),
]);
export type ForkChildResult = Static<typeof ForkChildResultSchema>;

export const ForkResponseSchema = named(
  'ForkResponse',
  Type.Object({ children: Type.Array(ForkChildResultSchema) }),
);
export type ForkResponse = Static<typeof ForkResponseSchema>;

export function parseFork(raw: unknown): ForkRequest {
  const body = check(ForkBodySchema, raw === undefined ? {} : raw);
  return { count: body.count ?? FORK_LIMITS.count.default };
}

// ---- timeout --------------------------------------------------------------------------------

export const SetTimeoutBodySchema = named(
  'SetTimeoutRequest',
  Strict({
    timeout: Type.Integer({
      minimum: MACHINE_LIMITS.timeout.min,
      maximum: MACHINE_LIMITS.timeout.max,
      description: 'Seconds from now.',
    }),
    on_timeout: Type.Optional(
      StringEnum(TIMEOUT_ACTIONS, { description: 'What happens then (default: unchanged).' }),
    ),
    auto_resume: Type.Optional(
      Type.Boolean({ description: 'Resume on use while paused (default: unchanged).' }),
    ),
  }),
);
export type SetTimeoutRequest = Static<typeof SetTimeoutBodySchema>;

export function parseSetTimeout(raw: unknown): SetTimeoutRequest {
  return check(SetTimeoutBodySchema, raw);
}

/** The optional `{timeout}` body of connect and resume. */
export const ResumeBodySchema = named(
  'ResumeRequest',
  Strict({
    timeout: Type.Optional(
      Type.Integer({
        minimum: MACHINE_LIMITS.timeout.min,
        maximum: MACHINE_LIMITS.timeout.max,
        description: 'New timeout in seconds, from now (default: the machine keeps its own).',
      }),
    ),
  }),
);

/** The body of connect and resume: the new timeout, if any. */
export function parseResumeTimeout(raw: unknown): number | undefined {
  return check(ResumeBodySchema, raw === undefined ? {} : raw).timeout;
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

export const LifecycleEventSchema = named(
  'LifecycleEvent',
  Type.Object({
    id: Type.Integer({ description: 'Strictly increasing across the whole server; never reused.' }),
    machine_id: Type.String(),
    execution_id: Type.String(),
    type: StringEnum(LIFECYCLE_EVENT_TYPES),
    status: StringEnum(MACHINE_STATES, { description: "The machine's status right after the event." }),
    previous_status: Nullable(StringEnum(MACHINE_STATES)),
    reason: Nullable(Type.String()),
    data: FreeMap({
      description: 'What the event is about (see docs/events.md); keys as the server wrote them.',
    }),
    at: DateTime(),
  }),
);
export type LifecycleEvent = Static<typeof LifecycleEventSchema>;

/** Messages on `GET /v1/machines/{id}/lifecycle/ws`, one JSON object per WebSocket text frame. */
export const LifecycleWsMessageSchema = named(
  'LifecycleWsMessage',
  Type.Union([
    Type.Object({ type: Type.Literal('event'), event: LifecycleEventSchema }),
    /** Sent once, when replay from `after_event_id` would skip events that retention removed. */
    Type.Object({
      type: Type.Literal('events_expired'),
      after_event_id: Type.Integer(),
      oldest_event_id: Nullable(Type.Integer()),
      message: Type.String(),
    }),
    /** Sent once when replay is done and live events follow. */
    Type.Object({ type: Type.Literal('live'), last_event_id: Type.Integer() }),
  ]),
);
export type LifecycleWsMessage = Static<typeof LifecycleWsMessageSchema>;

/** `GET /v1/machines/{id}/lifecycle/events` answer. */
export const LifecycleEventsPageSchema = named(
  'LifecycleEventsPage',
  Type.Object({
    events: Type.Array(LifecycleEventSchema),
    last_event_id: Type.Integer({
      description: "Pass as after_event_id next time (the last event's id, or the one given if none came).",
    }),
  }),
);
export type LifecycleEventsPage = Static<typeof LifecycleEventsPageSchema>;

export const EVENTS_LIMITS = {
  limit: { min: 1, max: 1000, default: 100 },
  wait_ms: { min: 0, max: 60_000, default: 0 },
} as const;

const AFTER_EVENT_ID = Type.Optional(
  Type.Integer({ minimum: 0, description: 'Only events after this id (default: every retained event).' }),
);

export const LifecycleEventsQuerySchema = Type.Object({
  after_event_id: AFTER_EVENT_ID,
  limit: Type.Optional(
    Type.Integer({
      minimum: EVENTS_LIMITS.limit.min,
      maximum: EVENTS_LIMITS.limit.max,
      default: EVENTS_LIMITS.limit.default,
    }),
  ),
  wait_ms: Type.Optional(
    Type.Integer({
      minimum: EVENTS_LIMITS.wait_ms.min,
      maximum: EVENTS_LIMITS.wait_ms.max,
      default: EVENTS_LIMITS.wait_ms.default,
      description: 'With nothing after after_event_id, wait this long for the next event (long poll).',
    }),
  ),
});

export const LifecycleWsQuerySchema = Type.Object({
  after_event_id: AFTER_EVENT_ID,
  live_only: Type.Optional(
    Type.Boolean({ default: false, description: 'Skip the replay: only events from now on.' }),
  ),
});
