/**
 * The Nullspace TypeScript SDK: `Machine` and its namespaces, over the HTTP API.
 *
 * Naming: camelCase here, snake_case on the wire; timestamps are `Date` objects; the keys of
 * `envs` and `metadata` are passed through untouched.
 */
export {
  type ForkChild,
  type ForkedMachine,
  type ForkFailure,
  Machine,
  type MachineConnectOptions,
  type MachineCreateOptions,
  type MachineForkOptions,
  type MachineGetInfoOptions,
  type MachineListOptions,
  type MachineQuery,
  type MachineSetTimeoutOptions,
  type RunOnceOptions,
  type VolumeMount,
} from './machine.js';
export {
  Snapshot,
  type SnapshotInfo,
  type SnapshotListOptions,
  snapshotInfoFromWire,
  snapshotInfoToWire,
} from './snapshot.js';
export { MachinePaginator } from './paginator.js';
export {
  type BackgroundRunOptions,
  CommandHandle,
  type CommandResult,
  type CommandRunOptions,
  Commands,
  type ProcessInfo,
  type ProcessLogs,
  type ProcessRef,
  commandResultFromWire,
  commandResultToWire,
} from './commands.js';
export type { OutputCallbacks } from './process-stream.js';
export { Pty, type PtyCreateOptions, PtyHandle } from './pty.js';
export {
  type EgressPolicy,
  type MachineInfo,
  type MachineInfoKey,
  type NetworkPolicy,
  type WarmPoolCheckout,
  MACHINE_INFO_KEYS,
  machineInfoFromWire,
  machineInfoToWire,
  networkFromWire,
  networkToWire,
} from './machine-info.js';
export {
  AuthenticationError,
  ConflictError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  NullspaceError,
  type NullspaceErrorInit,
  PermissionDeniedError,
  RateLimitError,
  TimeoutError,
  UnavailableError,
  errorFromCode,
} from './errors.js';
export {
  type ConnectionOptions,
  DEFAULT_API_URL,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type RequestOptions,
} from './transport.js';
export {
  type ErrorCode,
  MACHINE_STATES,
  type MachineState,
  TIMEOUT_ACTIONS,
  type TimeoutAction,
  type MachineInfo as WireMachineInfo,
  type RunCommandResult as WireCommandResult,
  type SnapshotInfo as WireSnapshotInfo,
  type SnapshotKind,
  type LifecycleEvent as WireLifecycleEvent,
  type LifecycleEventType,
} from '@nullspace/protocol';
export {
  type LifecycleEvent,
  type LifecycleEventsPage,
  type ListEventsOptions,
  type StreamEventsOptions,
  lifecycleEventFromWire,
  lifecycleEventToWire,
} from './events.js';
