/**
 * The channel between the server and the agent inside a machine: HTTP/1.1 over a Unix socket that
 * the agent listens on inside the machine. The socket's directory is bind-mounted from the host, so
 * the server reaches it by a host path. Each call is its own connection: a server restart, or a
 * closed connection, needs no reconnect protocol.
 */
export const AGENT_PATHS = {
  /** Directory inside the machine holding the agent's socket (a bind mount from the host). */
  runDir: '/.nullspace/run',
  socketName: 'agent.sock',
  /** Read-only directory inside the machine with the agent's code and its Node.js runtime. */
  homeDir: '/.nullspace/agent',
  /** The agent's bundle in `homeDir` (scripts/bundle-agent.mjs builds it; CommonJS starts sooner). */
  scriptName: 'agent.cjs',
  nodeBinary: '/.nullspace/bin/node',
  initBinary: '/.nullspace/bin/init',
} as const;

export const AGENT_ROUTES = {
  health: '/v1/health',
  /** Start a process: foreground (JSON result), background (`{pid}`) or streaming (frames). */
  processes: '/v1/processes',
  /** `/v1/processes/{pid|tag}` + `/ws`, `/logs`, `/stdin`, `/close_stdin`, `/signal`, `/resize`. */
  process: (sel: string) => `/v1/processes/${encodeURIComponent(sel)}`,
  pty: '/v1/pty',
  files: '/v1/files',
  /** The desktop: `/v1/desktop/...`, the API's paths without `/machines/{id}`. */
  desktop: '/v1/desktop',
} as const;

export interface AgentHealth {
  ok: true;
  version: string;
  /** Seconds since the agent started. */
  uptime_s: number;
  pid: number;
}

/** What the server sends the agent to run a foreground command (already validated). */
export interface AgentRunRequest {
  cmd: string;
  args: string[];
  shell: boolean;
  cwd: string;
  envs: Record<string, string>;
  timeout_ms: number;
  stdin?: string;
  background: boolean;
  stream: boolean;
  tag?: string;
  encoding: 'utf8' | 'base64';
}

/** What the server sends the agent to open a terminal (already validated). */
export interface AgentPtyRequest {
  cols: number;
  rows: number;
  cmd?: string;
  args: string[];
  cwd: string;
  envs: Record<string, string>;
  tag?: string;
}

/** What the server sends the agent to (re)start a machine's desktop at a size. */
export interface AgentDesktopSession {
  width: number;
  height: number;
  dpi: number;
}
