import {
  ListProcessesResponseSchema,
  LogsQuerySchema,
  OffsetQuerySchema,
  ProcessInfoSchema,
  ProcessLogsSchema,
  PtyCreateBodySchema,
  ResizeBodySchema,
  RunCommandBodySchema,
  RunCommandResultSchema,
  SignalBodySchema,
  StdinResultSchema,
} from './commands.js';
/**
 * The route table: every route of the HTTP API, declared once. The server registers its handlers
 * by these ids (and refuses to start while one has none), the OpenAPI document is generated from
 * it (`openapi.ts`), and the SDK and the CLI name paths through it. Handlers live in
 * `packages/server/src/http/*-routes.ts`.
 */
import type { ErrorCode } from './errors.js';
import {
  ExistsResponseSchema,
  FileEntrySchema,
  ListFilesQuerySchema,
  ListFilesResponseSchema,
  MakeDirBodySchema,
  MakeDirResponseSchema,
  MoveBodySchema,
  PathQuerySchema,
  RemoveFileResponseSchema,
  ReplaceBodySchema,
  ReplaceResponseSchema,
  SearchBodySchema,
  SearchResponseSchema,
  SignedFileQuerySchema,
  SignedUrlBodySchema,
  SignedUrlResponseSchema,
  WatchBodySchema,
  WatchEventSchema,
  WatchEventsPageSchema,
  WatchEventsQuerySchema,
  WatchInfoSchema,
  WatchWsQuerySchema,
} from './files.js';
import {
  ForkBodySchema,
  ForkResponseSchema,
  LifecycleEventsPageSchema,
  LifecycleEventsQuerySchema,
  LifecycleWsMessageSchema,
  LifecycleWsQuerySchema,
  ListSnapshotsQuerySchema,
  ListSnapshotsResponseSchema,
  ResumeBodySchema,
  SetTimeoutBodySchema,
  SnapshotInfoSchema,
} from './lifecycle.js';
import {
  CreateMachineBodySchema,
  FieldsQuerySchema,
  ListMachinesQuerySchema,
  ListMachinesResponseSchema,
  MachineInfoSchema,
} from './machine.js';
import { MachineMetricsSchema } from './metrics.js';
import { SetNetworkBodySchema } from './network.js';
import {
  CreatePreviewGrantBodySchema,
  ListPreviewGrantsQuerySchema,
  ListPreviewGrantsResponseSchema,
  PreviewProxyTargetInfoSchema,
  PreviewReadinessSchema,
  PreviewRevocationSchema,
  PreviewUrlInfoSchema,
  WaitForPreviewBodySchema,
} from './preview.js';
import { type TObject, type TSchema, Type } from './schema/kit.js';
import { SshAccessBodySchema, SshAccessInfoSchema } from './ssh.js';
import { STREAM_CONTENT_TYPE } from './stream.js';
import {
  ListTemplatesResponseSchema,
  ListWarmPoolsResponseSchema,
  TemplateBuildEventSchema,
  TemplateBuildStartedSchema,
  TemplateInfoSchema,
  TemplateLogsQuerySchema,
  TemplateSpecBodySchema,
  WarmPoolInfoSchema,
  WarmPoolSpecBodySchema,
} from './templates.js';
import {
  CreateVolumeBodySchema,
  ListVolumeAttachmentsResponseSchema,
  ListVolumesResponseSchema,
  VolumeAttachmentInfoSchema,
  VolumeHealthSchema,
  VolumeInfoSchema,
  VolumeMountBodySchema,
} from './volumes.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/**
 * What a route answers on success: JSON (`response`), bytes, NDJSON lines of `response`, a
 * WebSocket whose messages are `response`, or plain text.
 */
export type RouteKind = 'json' | 'bytes' | 'ndjson' | 'websocket' | 'text';

export interface RouteSpec {
  method: HttpMethod;
  /** With `{param}` segments, as OpenAPI writes them. */
  path: string;
  summary: string;
  description?: string;
  /** Groups routes in the document: machines, commands, files, ... */
  tag: string;
  /** `key` (default): the API key; `none`: public; `signed`: an HMAC in the URL is the permission. */
  auth?: 'key' | 'none' | 'signed';
  params?: Record<string, TSchema>;
  query?: TObject;
  /** A JSON body (`body`), or bytes streamed as they come (`bodyBytes`). */
  body?: TSchema;
  bodyRequired?: boolean;
  bodyBytes?: boolean;
  kind?: RouteKind;
  response?: TSchema;
  /** Success status (default 200). */
  status?: number;
  /** Also answers with a frame stream (a command with `stream: true`). */
  frameStream?: boolean;
  /** The error codes it may answer besides `internal` (and `unauthenticated` with the key). */
  errors: readonly ErrorCode[];
}

// ---- parameters and error sets ----------------------------------------------------------------

const P = {
  id: Type.String({ description: 'Machine id (`mch_...`).' }),
  pid: Type.String({ description: 'A pid, or the tag of a process.' }),
  vol: Type.String({ description: 'Volume id (`vol_...`) or name.' }),
  vat: Type.String({ description: 'Volume attachment id (`vat_...`).' }),
  ref: Type.String({ description: 'Template `name[:tag]` (percent-encoded) or build id (`tpl_...`).' }),
  wid: Type.String({ description: 'Watch id (`fwt_...`).' }),
  grant: Type.String({ description: 'Preview grant id (`pvg_...`).' }),
  port: Type.Integer({ minimum: 1, maximum: 65535, description: 'TCP port in the machine.' }),
  snap: Type.String({ description: 'Snapshot id (`snap_...`).' }),
  pool: Type.String({ description: 'Warm pool id (`twp_...`).' }),
};
const M = { id: P.id };
const MP = { id: P.id, pid: P.pid };

const MACHINE = ['invalid_argument', 'machine_not_found'] as const;
const BUSY = ['machine_transitioning', 'invalid_state'] as const;
/** Everything served by the agent inside a running machine. */
const AGENT = [...MACHINE, ...BUSY, 'unavailable', 'timeout', 'not_found'] as const;
const FILES = [...AGENT, 'conflict', 'disk_full', 'payload_too_large'] as const;

const noBody = Type.Object(
  {},
  { additionalProperties: false, description: 'No fields (an empty body is fine).' },
);

// ---- the table --------------------------------------------------------------------------------

export const ROUTES = {
  // machines
  createMachine: {
    method: 'POST',
    path: '/v1/machines',
    tag: 'machines',
    summary: 'Create a machine',
    description:
      'Starts a machine from a template, a reusable snapshot or a warm pool; answers once it runs.',
    body: CreateMachineBodySchema,
    response: MachineInfoSchema,
    status: 201,
    errors: [
      'invalid_argument',
      'template_not_found',
      'snapshot_not_found',
      'volume_not_found',
      'resource_exhausted',
      'warm_pool_unavailable',
      'conflict',
      'payload_too_large',
    ],
  },
  listMachines: {
    method: 'GET',
    path: '/v1/machines',
    tag: 'machines',
    summary: 'List machines, newest first',
    description: 'Also `metadata.KEY=VALUE` (repeatable; every pair must match the metadata).',
    query: ListMachinesQuerySchema,
    response: ListMachinesResponseSchema,
    errors: ['invalid_argument'],
  },
  getMachine: {
    method: 'GET',
    path: '/v1/machines/{id}',
    tag: 'machines',
    summary: "A machine's info (never wakes a paused machine)",
    params: M,
    query: FieldsQuerySchema,
    response: MachineInfoSchema,
    errors: MACHINE,
  },
  killMachine: {
    method: 'DELETE',
    path: '/v1/machines/{id}',
    tag: 'machines',
    summary: 'Kill a machine (idempotent)',
    params: M,
    response: MachineInfoSchema,
    errors: MACHINE,
  },
  connectMachine: {
    method: 'POST',
    path: '/v1/machines/{id}/connect',
    tag: 'machines',
    summary: 'Resume a paused or hibernated machine; answer its running info',
    params: M,
    body: ResumeBodySchema,
    response: MachineInfoSchema,
    errors: [...MACHINE, ...BUSY, 'resource_exhausted'],
  },
  pauseMachine: {
    method: 'POST',
    path: '/v1/machines/{id}/pause',
    tag: 'machines',
    summary: 'Pause a machine (processes frozen, memory kept)',
    params: M,
    body: noBody,
    response: MachineInfoSchema,
    errors: [...MACHINE, ...BUSY],
  },
  hibernateMachine: {
    method: 'POST',
    path: '/v1/machines/{id}/hibernate',
    tag: 'machines',
    summary: 'Hibernate a machine (memory and files to disk, runtime released)',
    params: M,
    body: noBody,
    response: MachineInfoSchema,
    errors: [...MACHINE, ...BUSY],
  },
  createSnapshot: {
    method: 'POST',
    path: '/v1/machines/{id}/snapshots',
    tag: 'snapshots',
    summary: 'Take a reusable snapshot of a running machine',
    params: M,
    body: noBody,
    response: SnapshotInfoSchema,
    status: 201,
    errors: [...MACHINE, ...BUSY],
  },
  forkMachine: {
    method: 'POST',
    path: '/v1/machines/{id}/fork',
    tag: 'machines',
    summary: 'Branch a running machine into children with its memory and files',
    params: M,
    body: ForkBodySchema,
    response: ForkResponseSchema,
    errors: [...MACHINE, ...BUSY, 'resource_exhausted'],
  },
  setNetwork: {
    method: 'PUT',
    path: '/v1/machines/{id}/network',
    tag: 'network',
    summary: "Replace a machine's egress policy",
    description: 'Tightening fails closed: the stricter rules are in force when the call returns.',
    params: M,
    body: SetNetworkBodySchema,
    bodyRequired: true,
    response: MachineInfoSchema,
    errors: [...MACHINE, ...BUSY],
  },
  setTimeout: {
    method: 'POST',
    path: '/v1/machines/{id}/timeout',
    tag: 'machines',
    summary: "Move a machine's deadline, and say what happens then",
    params: M,
    body: SetTimeoutBodySchema,
    bodyRequired: true,
    response: MachineInfoSchema,
    errors: [...MACHINE, 'invalid_state'],
  },
  getMetrics: {
    method: 'GET',
    path: '/v1/machines/{id}/metrics',
    tag: 'machines',
    summary: "A machine's CPU, memory, disk and network counters, with recent samples",
    params: M,
    response: MachineMetricsSchema,
    errors: [...MACHINE, 'invalid_state'],
  },

  // lifecycle events
  listEvents: {
    method: 'GET',
    path: '/v1/machines/{id}/lifecycle/events',
    tag: 'events',
    summary: "A page of a machine's lifecycle events (long poll with wait_ms)",
    params: M,
    query: LifecycleEventsQuerySchema,
    response: LifecycleEventsPageSchema,
    errors: [...MACHINE, 'events_expired'],
  },
  streamEvents: {
    method: 'GET',
    path: '/v1/machines/{id}/lifecycle/ws',
    tag: 'events',
    summary: "A machine's lifecycle events over a WebSocket: replay, then live",
    description: 'Upgrade to a WebSocket; every text message is one JSON object.',
    params: M,
    query: LifecycleWsQuerySchema,
    kind: 'websocket',
    response: LifecycleWsMessageSchema,
    errors: [...MACHINE, 'unavailable'],
  },

  // snapshots
  listSnapshots: {
    method: 'GET',
    path: '/v1/snapshots',
    tag: 'snapshots',
    summary: 'List snapshots, newest first',
    query: ListSnapshotsQuerySchema,
    response: ListSnapshotsResponseSchema,
    errors: ['invalid_argument'],
  },
  getSnapshot: {
    method: 'GET',
    path: '/v1/snapshots/{id}',
    tag: 'snapshots',
    summary: "A snapshot's info",
    params: { id: P.snap },
    response: SnapshotInfoSchema,
    errors: ['snapshot_not_found'],
  },
  deleteSnapshot: {
    method: 'DELETE',
    path: '/v1/snapshots/{id}',
    tag: 'snapshots',
    summary: 'Delete a snapshot and its files',
    params: { id: P.snap },
    response: SnapshotInfoSchema,
    errors: ['snapshot_not_found', 'invalid_state'],
  },
  resumeSnapshot: {
    method: 'POST',
    path: '/v1/snapshots/{id}/resume',
    tag: 'snapshots',
    summary: 'Resume the machine a pause snapshot belongs to',
    params: { id: P.snap },
    body: ResumeBodySchema,
    response: MachineInfoSchema,
    errors: ['invalid_argument', 'snapshot_not_found', 'machine_not_found', ...BUSY, 'resource_exhausted'],
  },

  // volumes
  createVolume: {
    method: 'POST',
    path: '/v1/volumes',
    tag: 'volumes',
    summary: 'Create a volume',
    body: CreateVolumeBodySchema,
    bodyRequired: true,
    response: VolumeInfoSchema,
    status: 201,
    errors: ['invalid_argument', 'conflict', 'disk_full'],
  },
  listVolumes: {
    method: 'GET',
    path: '/v1/volumes',
    tag: 'volumes',
    summary: 'List volumes',
    response: ListVolumesResponseSchema,
    errors: ['invalid_argument'],
  },
  getVolume: {
    method: 'GET',
    path: '/v1/volumes/{vol}',
    tag: 'volumes',
    summary: "A volume's info",
    params: { vol: P.vol },
    response: VolumeInfoSchema,
    errors: ['invalid_argument', 'volume_not_found'],
  },
  deleteVolume: {
    method: 'DELETE',
    path: '/v1/volumes/{vol}',
    tag: 'volumes',
    summary: 'Delete a volume and its data (refused while attached)',
    params: { vol: P.vol },
    response: VolumeInfoSchema,
    errors: ['volume_not_found', 'conflict'],
  },
  listMachineVolumes: {
    method: 'GET',
    path: '/v1/machines/{id}/volumes',
    tag: 'volumes',
    summary: "A machine's volume attachments",
    params: M,
    response: ListVolumeAttachmentsResponseSchema,
    errors: MACHINE,
  },
  attachVolume: {
    method: 'POST',
    path: '/v1/machines/{id}/volumes',
    tag: 'volumes',
    summary: 'Mount a volume into a running machine',
    params: M,
    body: VolumeMountBodySchema,
    bodyRequired: true,
    response: VolumeAttachmentInfoSchema,
    status: 201,
    errors: [...MACHINE, ...BUSY, 'volume_not_found', 'conflict', 'resource_exhausted'],
  },
  detachVolume: {
    method: 'DELETE',
    path: '/v1/machines/{id}/volumes/{vat}',
    tag: 'volumes',
    summary: 'Unmount a volume attachment (the volume keeps its data)',
    params: { id: P.id, vat: P.vat },
    response: VolumeAttachmentInfoSchema,
    errors: [...MACHINE, ...BUSY, 'not_found'],
  },
  volumeHealth: {
    method: 'GET',
    path: '/v1/machines/{id}/volumes/{vat}/health',
    tag: 'volumes',
    summary: 'Check now whether an attachment is mounted as it should be',
    params: { id: P.id, vat: P.vat },
    response: VolumeHealthSchema,
    errors: [...MACHINE, ...BUSY, 'not_found'],
  },
  remountVolume: {
    method: 'POST',
    path: '/v1/machines/{id}/volumes/{vat}/remount',
    tag: 'volumes',
    summary: 'Mount an attachment again as it should be',
    params: { id: P.id, vat: P.vat },
    body: noBody,
    response: VolumeAttachmentInfoSchema,
    errors: [...MACHINE, ...BUSY, 'not_found'],
  },

  // templates and warm pools
  listTemplates: {
    method: 'GET',
    path: '/v1/templates',
    tag: 'templates',
    summary: 'List templates',
    response: ListTemplatesResponseSchema,
    errors: ['invalid_argument'],
  },
  buildTemplate: {
    method: 'POST',
    path: '/v1/templates',
    tag: 'templates',
    summary: 'Build a template from a spec (202; 200 when the same content was built already)',
    body: TemplateSpecBodySchema,
    bodyRequired: true,
    response: TemplateBuildStartedSchema,
    status: 202,
    errors: ['invalid_argument', 'template_not_found', 'conflict', 'payload_too_large'],
  },
  getTemplate: {
    method: 'GET',
    path: '/v1/templates/{ref}',
    tag: 'templates',
    summary: "A template's info",
    params: { ref: P.ref },
    response: TemplateInfoSchema,
    errors: ['invalid_argument', 'template_not_found'],
  },
  deleteTemplate: {
    method: 'DELETE',
    path: '/v1/templates/{ref}',
    tag: 'templates',
    summary: 'Delete a template tag (the build too once no tag names it)',
    params: { ref: P.ref },
    response: TemplateInfoSchema,
    errors: ['template_not_found', 'invalid_state'],
  },
  templateLogs: {
    method: 'GET',
    path: '/v1/templates/{ref}/logs',
    tag: 'templates',
    summary: "A build's events as NDJSON: steps, log lines, then done or error",
    params: { ref: P.ref },
    query: TemplateLogsQuerySchema,
    kind: 'ndjson',
    response: TemplateBuildEventSchema,
    errors: ['invalid_argument', 'template_not_found'],
  },
  listWarmPools: {
    method: 'GET',
    path: '/v1/warm_pools',
    tag: 'warm pools',
    summary: 'List warm pools',
    response: ListWarmPoolsResponseSchema,
    errors: ['invalid_argument'],
  },
  createWarmPool: {
    method: 'POST',
    path: '/v1/warm_pools',
    tag: 'warm pools',
    summary: 'Create a warm pool of started machines',
    body: WarmPoolSpecBodySchema,
    bodyRequired: true,
    response: WarmPoolInfoSchema,
    status: 201,
    errors: ['invalid_argument', 'template_not_found'],
  },
  getWarmPool: {
    method: 'GET',
    path: '/v1/warm_pools/{id}',
    tag: 'warm pools',
    summary: "A warm pool's status",
    params: { id: P.pool },
    response: WarmPoolInfoSchema,
    errors: ['not_found'],
  },
  deleteWarmPool: {
    method: 'DELETE',
    path: '/v1/warm_pools/{id}',
    tag: 'warm pools',
    summary: 'Delete a warm pool and the machines waiting in it',
    params: { id: P.pool },
    response: WarmPoolInfoSchema,
    errors: ['not_found'],
  },

  ...processRoutes(),
  ...fileRoutes(),
  ...networkingRoutes(),

  // the server itself
  openapi: {
    method: 'GET',
    path: '/v1/openapi.json',
    tag: 'server',
    auth: 'none',
    summary: 'This document (public: no API key)',
    response: Type.Object({}, { description: 'The OpenAPI 3.1 document.' }),
    errors: [],
  },
  health: {
    method: 'GET',
    path: '/healthz',
    tag: 'server',
    auth: 'none',
    summary: 'Liveness: the server answers',
    response: Type.Object({ ok: Type.Literal(true) }),
    errors: [],
  },
  prometheus: {
    method: 'GET',
    path: '/metrics',
    tag: 'server',
    summary: "The server's metrics in the Prometheus text format",
    kind: 'text',
    errors: [],
  },
} as const satisfies Record<string, RouteSpec>;

export type RouteId = keyof typeof ROUTES;

/** Commands and terminals: `/v1/machines/{id}/commands...` and `.../pty...`. */
function processRoutes() {
  const kinds = { command: 'commands', pty: 'pty' } as const;
  const each = <K extends 'command' | 'pty'>(kind: K) => {
    const base = `/v1/machines/{id}/${kinds[kind]}/{pid}`;
    const what = kind === 'pty' ? 'terminal' : 'process';
    return {
      get: {
        method: 'GET',
        path: base,
        tag: 'commands',
        summary: `A ${what}'s info`,
        params: MP,
        response: ProcessInfoSchema,
        errors: AGENT,
      },
      logs: {
        method: 'GET',
        path: `${base}/logs`,
        tag: 'commands',
        summary: `A ${what}'s retained output (the last 4 MiB) from an offset`,
        params: MP,
        query: LogsQuerySchema,
        response: ProcessLogsSchema,
        errors: AGENT,
      },
      input: {
        method: 'POST',
        path: `${base}/${kind === 'pty' ? 'input' : 'stdin'}`,
        tag: 'commands',
        summary: kind === 'pty' ? "Bytes for a terminal's input" : "Bytes for a process's stdin, streamed",
        params: MP,
        bodyBytes: true,
        response: StdinResultSchema,
        errors: [...AGENT, 'conflict'],
      },
      signal: {
        method: 'POST',
        path: `${base}/signal`,
        tag: 'commands',
        summary: `Signal a ${what} and everything it started (default SIGTERM)`,
        params: MP,
        body: SignalBodySchema,
        response: ProcessInfoSchema,
        errors: AGENT,
      },
      kill: {
        method: 'DELETE',
        path: base,
        tag: 'commands',
        summary: `SIGKILL to a ${what} and everything it started`,
        params: MP,
        response: ProcessInfoSchema,
        errors: AGENT,
      },
      ws: {
        method: 'GET',
        path: `${base}/ws`,
        tag: 'commands',
        summary: `Attach to a ${what}: output, exit, and input over a WebSocket`,
        description:
          'Upgrade to a WebSocket. Binary messages are frames `[kind][payload]`: from the server 0 a JSON ' +
          'event, 1 stdout, 2 stderr; from the client 1 stdin, 0 a JSON control message ' +
          `(close_stdin, signal${kind === 'pty' ? ', resize' : ''}). Re-attach with the offset reached.`,
        params: MP,
        query: OffsetQuerySchema,
        kind: 'websocket',
        errors: AGENT,
      },
    } as const satisfies Record<string, RouteSpec>;
  };
  const c = each('command');
  const t = each('pty');
  return {
    runCommand: {
      method: 'POST',
      path: '/v1/machines/{id}/commands',
      tag: 'commands',
      summary: 'Run a command: its result, its pid (background), or a frame stream (stream)',
      description:
        'Foreground: the result. `background: true`: the process info at once. `stream: true`: ' +
        `${STREAM_CONTENT_TYPE}, frames \`[kind u8][length u32 BE][payload]\` (0 a JSON event, 1 stdout, 2 stderr).`,
      params: M,
      body: RunCommandBodySchema,
      bodyRequired: true,
      response: Type.Union([RunCommandResultSchema, ProcessInfoSchema]),
      frameStream: true,
      errors: [...AGENT, 'conflict', 'resource_exhausted', 'payload_too_large'],
    },
    listCommands: {
      method: 'GET',
      path: '/v1/machines/{id}/commands',
      tag: 'commands',
      summary: 'Processes started through the API (commands and terminals)',
      params: M,
      response: ListProcessesResponseSchema,
      errors: AGENT,
    },
    getCommand: c.get,
    commandLogs: c.logs,
    commandStdin: c.input,
    signalCommand: c.signal,
    killCommand: c.kill,
    attachCommand: c.ws,
    closeStdin: {
      method: 'POST',
      path: '/v1/machines/{id}/commands/{pid}/close_stdin',
      tag: 'commands',
      summary: "Close a process's stdin",
      params: MP,
      body: noBody,
      response: ProcessInfoSchema,
      errors: AGENT,
    },
    createPty: {
      method: 'POST',
      path: '/v1/machines/{id}/pty',
      tag: 'commands',
      summary: 'Open an interactive terminal',
      params: M,
      body: PtyCreateBodySchema,
      response: ProcessInfoSchema,
      errors: [...AGENT, 'conflict', 'resource_exhausted'],
    },
    getPty: t.get,
    ptyLogs: t.logs,
    ptyInput: t.input,
    signalPty: t.signal,
    killPty: t.kill,
    attachPty: t.ws,
    resizePty: {
      method: 'POST',
      path: '/v1/machines/{id}/pty/{pid}/resize',
      tag: 'commands',
      summary: 'Resize a terminal',
      params: MP,
      body: ResizeBodySchema,
      bodyRequired: true,
      response: ProcessInfoSchema,
      errors: AGENT,
    },
  } as const satisfies Record<string, RouteSpec>;
}

/** The files of a machine: `/v1/machines/{id}/files...`, and signed URLs. */
function fileRoutes() {
  const base = '/v1/machines/{id}/files';
  const W = { id: P.id, wid: P.wid };
  const signed = (method: HttpMethod) =>
    ({
      method,
      path: '/v1/signed/files/{id}',
      tag: 'files',
      auth: 'signed',
      summary:
        method === 'GET'
          ? 'Read the file a signed URL names'
          : 'Write the file a signed URL names (the bytes)',
      description:
        'No API key: the HMAC in the query is the permission (`permission_denied` when it is not).',
      params: M,
      query: SignedFileQuerySchema,
      ...(method === 'GET' ? { kind: 'bytes' } : { bodyBytes: true, response: FileEntrySchema }),
      errors: ['permission_denied', ...FILES],
    }) as const satisfies RouteSpec;
  return {
    readFile: {
      method: 'GET',
      path: base,
      tag: 'files',
      summary: 'Read a file (bytes, streamed)',
      params: M,
      query: PathQuerySchema,
      kind: 'bytes',
      errors: FILES,
    },
    writeFile: {
      method: 'PUT',
      path: base,
      tag: 'files',
      summary: 'Write a file (bytes, streamed; parents created; lands atomically)',
      params: M,
      query: PathQuerySchema,
      bodyBytes: true,
      response: FileEntrySchema,
      errors: FILES,
    },
    removeFile: {
      method: 'DELETE',
      path: base,
      tag: 'files',
      summary: 'Remove a file, a symlink, or a directory with its content',
      params: M,
      query: PathQuerySchema,
      response: RemoveFileResponseSchema,
      errors: FILES,
    },
    listFiles: {
      method: 'GET',
      path: `${base}/list`,
      tag: 'files',
      summary: 'List a directory, depth levels down',
      params: M,
      query: ListFilesQuerySchema,
      response: ListFilesResponseSchema,
      errors: FILES,
    },
    statFile: {
      method: 'GET',
      path: `${base}/stat`,
      tag: 'files',
      summary: 'Describe one path (a symlink itself)',
      params: M,
      query: PathQuerySchema,
      response: FileEntrySchema,
      errors: FILES,
    },
    fileExists: {
      method: 'GET',
      path: `${base}/exists`,
      tag: 'files',
      summary: 'Whether a path exists',
      params: M,
      query: PathQuerySchema,
      response: ExistsResponseSchema,
      errors: FILES,
    },
    makeDir: {
      method: 'POST',
      path: `${base}/mkdir`,
      tag: 'files',
      summary: 'Create a directory (and its parents)',
      params: M,
      body: MakeDirBodySchema,
      bodyRequired: true,
      response: MakeDirResponseSchema,
      errors: FILES,
    },
    moveFile: {
      method: 'POST',
      path: `${base}/move`,
      tag: 'files',
      summary: 'Move or rename',
      params: M,
      body: MoveBodySchema,
      bodyRequired: true,
      response: FileEntrySchema,
      errors: FILES,
    },
    searchFiles: {
      method: 'POST',
      path: `${base}/search`,
      tag: 'files',
      summary: 'Search file contents, line by line',
      params: M,
      body: SearchBodySchema,
      bodyRequired: true,
      response: SearchResponseSchema,
      errors: FILES,
    },
    replaceInFiles: {
      method: 'POST',
      path: `${base}/replace`,
      tag: 'files',
      summary: 'Replace a pattern in files',
      params: M,
      body: ReplaceBodySchema,
      bodyRequired: true,
      response: ReplaceResponseSchema,
      errors: FILES,
    },
    createWatch: {
      method: 'POST',
      path: `${base}/watches`,
      tag: 'files',
      summary: 'Watch a directory for changes',
      params: M,
      body: WatchBodySchema,
      bodyRequired: true,
      response: WatchInfoSchema,
      errors: [...FILES, 'resource_exhausted'],
    },
    watchEvents: {
      method: 'GET',
      path: `${base}/watches/{wid}/events`,
      tag: 'files',
      summary: "A watch's events after an id (long poll with wait_ms)",
      params: W,
      query: WatchEventsQuerySchema,
      response: WatchEventsPageSchema,
      errors: [...FILES, 'events_expired'],
    },
    deleteWatch: {
      method: 'DELETE',
      path: `${base}/watches/{wid}`,
      tag: 'files',
      summary: 'Stop a watch',
      params: W,
      response: WatchInfoSchema,
      errors: FILES,
    },
    streamWatch: {
      method: 'GET',
      path: `${base}/watches/{wid}/ws`,
      tag: 'files',
      summary: "A watch's events over a WebSocket (one JSON event per message)",
      description: 'Upgrade to a WebSocket; reconnect with `after` = the last event id seen.',
      params: W,
      query: WatchWsQuerySchema,
      kind: 'websocket',
      response: WatchEventSchema,
      errors: [...FILES, 'events_expired'],
    },
    signedUrl: {
      method: 'POST',
      path: `${base}/signed_url`,
      tag: 'files',
      summary: 'A URL that reads or writes one file without an API key',
      params: M,
      body: SignedUrlBodySchema,
      bodyRequired: true,
      response: SignedUrlResponseSchema,
      status: 201,
      errors: [...MACHINE, 'invalid_state'],
    },
    signedRead: signed('GET'),
    signedWrite: signed('PUT'),
    signedPost: signed('POST'),
  } as const satisfies Record<string, RouteSpec>;
}

/** Preview URLs, proxy targets and SSH access. */
function networkingRoutes() {
  const MPORT = { id: P.id, port: P.port };
  return {
    createPreviewUrl: {
      method: 'POST',
      path: '/v1/machines/{id}/preview_urls',
      tag: 'network',
      summary: 'A signed preview URL of a port (a new grant)',
      params: M,
      body: CreatePreviewGrantBodySchema,
      bodyRequired: true,
      response: PreviewUrlInfoSchema,
      status: 201,
      errors: MACHINE,
    },
    listPreviewUrls: {
      method: 'GET',
      path: '/v1/machines/{id}/preview_urls',
      tag: 'network',
      summary: "A machine's preview grants (tokens not shown)",
      params: M,
      query: ListPreviewGrantsQuerySchema,
      response: ListPreviewGrantsResponseSchema,
      errors: MACHINE,
    },
    revokePreviewUrl: {
      method: 'DELETE',
      path: '/v1/machines/{id}/preview_urls/{grant}',
      tag: 'network',
      summary: 'Revoke a preview grant (its open connections close at once)',
      params: { id: P.id, grant: P.grant },
      response: PreviewRevocationSchema,
      errors: [...MACHINE, 'not_found'],
    },
    getHostInfo: {
      method: 'GET',
      path: '/v1/machines/{id}/ports/{port}/host',
      tag: 'network',
      summary: 'Host information of a port, with a fresh grant and its signed URLs',
      params: MPORT,
      response: PreviewUrlInfoSchema,
      errors: MACHINE,
    },
    waitForPreview: {
      method: 'POST',
      path: '/v1/machines/{id}/ports/{port}/wait',
      tag: 'network',
      summary: 'Wait until a port answers (wakes a paused machine with auto_resume)',
      params: MPORT,
      body: WaitForPreviewBodySchema,
      response: PreviewReadinessSchema,
      errors: [...MACHINE, ...BUSY, 'timeout', 'unavailable'],
    },
    createPreviewProxyTarget: {
      method: 'POST',
      path: '/v1/machines/{id}/preview_proxy_targets',
      tag: 'network',
      summary: 'A target for a preview proxy you run (URL without a secret, header with it)',
      params: M,
      body: CreatePreviewGrantBodySchema,
      bodyRequired: true,
      response: PreviewProxyTargetInfoSchema,
      status: 201,
      errors: MACHINE,
    },
    createSshAccess: {
      method: 'POST',
      path: '/v1/machines/{id}/ssh_access',
      tag: 'network',
      summary: 'A short-lived OpenSSH certificate for your public key, and where to connect',
      params: M,
      body: SshAccessBodySchema,
      bodyRequired: true,
      response: SshAccessInfoSchema,
      status: 201,
      errors: [...MACHINE, ...BUSY, 'unavailable'],
    },
  } as const satisfies Record<string, RouteSpec>;
}

/** The path of a route with its parameters filled in (percent-encoded). */
export function routePath(id: RouteId, params: Record<string, string | number> = {}): string {
  return ROUTES[id].path.replace(/\{(\w+)\}/g, (_, key: string) => {
    const value = params[key];
    if (value === undefined) throw new Error(`routePath(${id}): no value for {${key}}`);
    return encodeURIComponent(String(value));
  });
}
