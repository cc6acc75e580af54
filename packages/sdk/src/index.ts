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
/** The name the product docs use: a sandbox is a machine. */
export { Machine as Sandbox } from './machine.js';
export {
  Snapshot,
  type SnapshotInfo,
  type SnapshotListOptions,
  snapshotInfoFromWire,
  snapshotInfoToWire,
} from './snapshot.js';
export { MachinePaginator } from './paginator.js';
export { Files } from './files.js';
export {
  type AttachCodeOptions,
  type CodeArtifact,
  type CodeContext,
  CodeInterpreter,
  type CodeResult,
  type ContextRef,
  Execution,
  type ExecutionError,
  InstallError,
  type InstallOptions,
  type InstallResult,
  type RunCodeOptions,
} from './code-interpreter.js';
export {
  Desktop,
  DesktopRecordings,
  DesktopStream,
  type DesktopWindow,
  type Point,
  type Recording,
  type ScreenSize,
  type ScreenshotOptions,
  type StreamUrl,
  type WriteOptions,
} from './desktop.js';
export {
  type FileEntry,
  type FileWatchPoller,
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
} from './files-types.js';
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
export { Git, GitConfig } from './git.js';
export {
  type GitAddTarget,
  type GitBranch,
  type GitBranches,
  type GitCloneOptions,
  type GitCommitOptions,
  type GitCommitResult,
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
} from './git-types.js';
export {
  type EgressInfo,
  type EgressPolicy,
  type EgressRateLimit,
  type LegacyNetworkPolicy,
  type MachineInfo,
  type MachineInfoKey,
  type NetworkInfo,
  type NetworkPolicy,
  type WarmPoolCheckout,
  MACHINE_INFO_KEYS,
  machineInfoFromWire,
  machineInfoToWire,
  networkFromWire,
  networkToWire,
} from './machine-info.js';
// networking: egress policy types above; previews and SSH access (`machine.getPreviewUrl()`, ...)
export {
  type ListPreviewUrlsOptions,
  type PreviewGrant,
  type PreviewProxyTarget,
  type PreviewReadiness,
  type PreviewRevocation,
  type PreviewUrl,
  type PreviewUrlOptions,
  type SshAccess,
  type SshAccessOptions,
  type SshFiles,
  type WaitForPreviewOptions,
  previewGrantFromWire,
  previewGrantToWire,
  previewProxyTargetFromWire,
  previewProxyTargetToWire,
  previewReadinessToWire,
  previewRevocationToWire,
  previewUrlFromWire,
  previewUrlToWire,
  redactPreviewToken,
  redactPreviewUrl,
  sshAccessFromWire,
  sshAccessToWire,
  sshArgs,
  sshCommandLine,
} from './network.js';
export {
  AuthenticationError,
  CheckpointFailedError,
  ConflictError,
  DiskFullError,
  InternalError,
  DesktopUnavailableError,
  InvalidArgumentError,
  NotFoundError,
  NullspaceError,
  type NullspaceErrorInit,
  PermissionDeniedError,
  RateLimitError,
  RestoreFailedError,
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
  PREVIEW_PROXY_TOKEN_HEADER,
  PREVIEW_QUERY_PARAM,
  PREVIEW_TOKEN_HEADER,
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
export { type MachineMetrics, type MachineMetricsReading, machineMetricsFromWire } from './metrics.js';
export {
  type AttachVolumeOptions,
  Volume,
  type VolumeAttachment,
  type VolumeAttachmentRef,
  type VolumeCreateOptions,
  type VolumeHealth,
  type VolumeInfo,
  volumeAttachmentFromWire,
  volumeAttachmentToWire,
  volumeHealthFromWire,
  volumeHealthToWire,
  volumeInfoFromWire,
  volumeInfoToWire,
} from './volume.js';
export {
  Template,
  type ReadyCheckOptions,
  type TemplateBuildOptions,
  type TemplateBuildProgress,
  type TemplateBuildResult,
  type TemplateBuildSpec,
  type TemplateFileSpec,
  type TemplateInfo,
  WarmPool,
  type WarmPoolCreateOptions,
  type WarmPoolInfo,
  templateInfoFromWire,
  templateSpecToWire,
  warmPoolInfoFromWire,
} from './templates.js';
// the wire's shape of any SDK value, from its schema in @nullspace/protocol
export { toWire } from './wire.js';
