/**
 * `@nullspace/protocol/core`: the part of the contract that is plain code — error codes and
 * `CodedError`, the agent channel's paths, stream framing, limits and constants — and the types
 * of the schemas, without the schemas. The agent imports only this: evaluating the schemas
 * (TypeBox builders for every route) cost about 25 ms of each machine's start, for values the
 * agent never reads (it trusts its caller; the server validates at the API edge). Type-only
 * re-exports are erased when compiled, so they load nothing.
 */
export * from './errors-core.js';
export * from './agent.js';
export * from './stream.js';
export * from './commands-core.js';
export * from './files-core.js';
export * from './desktop-core.js';
export * from './code-core.js';
export type { ProcessInfo, ProcessLogs, RunCommandResult } from './commands.js';
export type {
  ExistsResponse,
  FileEntry,
  FileSelection,
  FileType,
  ListFilesResponse,
  MakeDirRequest,
  MakeDirResponse,
  MoveRequest,
  RemoveFileResponse,
  ReplaceRequest,
  ReplaceResponse,
  SearchMatch,
  SearchRequest,
  SearchResponse,
  WatchEvent,
  WatchEventType,
  WatchEventsPage,
  WatchInfo,
  WatchRequest,
} from './files.js';
export type {
  ClickRequest,
  DragRequest,
  Point,
  RecordingInfo,
  Region,
  ScrollRequest,
  StreamStatus,
  WindowInfo,
  WriteRequest,
} from './desktop.js';
