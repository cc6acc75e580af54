/** Commands and terminals. */
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
} from '../commands.js';
import { Type } from '../schema/kit.js';
import { STREAM_CONTENT_TYPE } from '../stream.js';

import { AGENT, M, MP, type RouteSpec, noBody } from './common.js';

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

export const PROCESS_ROUTES = processRoutes();
