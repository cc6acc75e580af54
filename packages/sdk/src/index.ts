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
  type FileEntry,
  type FileWatchPoller,
  Files,
  type ReadOptions,
  type ReplaceOptions,
  type ReplaceResult,
  type SearchMatch,
  type SearchOptions,
  type SearchResult,
  type SignedFileUrl,
  type SignedUrlOptions,
  type WatchEvent,
  type WatchHandle,
  type WatchOptions,
  type WriteData,
  fileEntryFromWire,
  watchEventFromWire,
} from './files.js';
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
// git helpers (`machine.git`)
export {
  Git,
  type GitAddTarget,
  type GitBranch,
  type GitBranches,
  type GitCloneOptions,
  type GitCommitOptions,
  type GitCommitResult,
  GitConfig,
  type GitConfigOptions,
  type GitCreateBranchOptions,
  type GitCredentials,
  type GitDiffOptions,
  GitError,
  type GitFileState,
  type GitFileStatus,
  type GitOptions,
  type GitOutputResult,
  type GitPullOptions,
  type GitPushOptions,
  type GitStatus,
} from './git.js';
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
  DiskFullError,
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
