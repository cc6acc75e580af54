import http from 'node:http';
import {
  AGENT_ROUTES,
  CodedError,
  type ProcessInfo,
  type ProcessLogs,
  type ReadyCheck,
} from '@nullspace/protocol';
import { type AgentClient, type MachineLink, connectToMachinePort } from '@nullspace/runtime';

/** The tag of a template's start command in every machine made from it (`machine logs start`). */
export const START_TAG = 'start';

/** Starts `script` with bash in the background; resolves with its pid. */
export async function startBackground(
  agent: AgentClient,
  script: string,
  o: { cwd: string; envs: Record<string, string>; tag?: string; timeoutMs?: number },
): Promise<number> {
  const r = await agent.request<{ pid: number }>('POST', AGENT_ROUTES.processes, {
    cmd: 'bash',
    args: ['-c', script],
    shell: false,
    cwd: o.cwd,
    envs: o.envs,
    timeout_ms: o.timeoutMs ?? 0,
    background: true,
    stream: false,
    encoding: 'utf8',
    ...(o.tag !== undefined ? { tag: o.tag } : {}),
  });
  return r.pid;
}

/**
 * Runs `script` in the machine and hands its output to `onLine` line by line while it runs
 * (polling the agent's retained output), then resolves with how it ended.
 */
export async function runFollowed(
  agent: AgentClient,
  script: string,
  o: { cwd: string; envs: Record<string, string>; timeoutMs: number; onLine: (line: string) => void },
): Promise<ProcessInfo> {
  const pid = await startBackground(agent, script, o);
  let offset = 0;
  let partial = '';
  for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
    const logs = await agent.request<ProcessLogs>(
      'GET',
      `${AGENT_ROUTES.process(String(pid))}/logs?offset=${offset}&limit=${1024 * 1024}`,
      undefined,
    );
    const text = partial + logs.stdout + logs.stderr;
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    // A progress line redrawn with carriage returns shows as its last state, as on a terminal.
    for (const line of lines)
      o.onLine(
        line
          .split('\r')
          .filter((l) => l !== '')
          .pop() ?? '',
      );
    offset = logs.next_offset;
    if (!logs.process.running && logs.next_offset >= logs.process.output_bytes) {
      if (partial !== '') o.onLine(partial);
      return logs.process;
    }
    if (lines.length > 0) wait = 50;
    await new Promise((r) => setTimeout(r, wait));
  }
}

/** Writes a file in the machine (the agent resolves the path in the machine's own root). */
export function writeMachineFile(agent: AgentClient, path: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const held = agent.hold();
    const req = http.request(
      {
        socketPath: held.path,
        agent: agent.pool,
        method: 'PUT',
        path: `${AGENT_ROUTES.files}?path=${encodeURIComponent(path)}`,
        headers: { 'content-length': data.length, 'content-type': 'application/octet-stream' },
        timeout: 60_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if ((res.statusCode ?? 500) < 400) resolve();
          else
            reject(
              new CodedError(
                'invalid_argument',
                `writing ${path} in the machine failed: ${Buffer.concat(chunks).toString('utf8').slice(0, 300)}`,
              ),
            );
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new CodedError('timeout', `writing ${path} in the machine timed out`)),
    );
    req.on('close', held.release);
    req.on('error', reject);
    req.end(data);
  });
}

/**
 * Starts a template's start command (tag `start`) and resolves once its ready check passes. Throws
 * `timeout` when it does not pass within the check's `timeout_ms`, or `invalid_state` when the
 * command ends first; both carry the end of its output.
 */
export async function startAndWaitReady(
  agent: AgentClient,
  link: MachineLink,
  t: { start_cmd: string; ready_check: ReadyCheck | null },
  o: { cwd: string; envs: Record<string, string> },
): Promise<number> {
  const started = Date.now();
  const pid = await startBackground(agent, t.start_cmd, { ...o, tag: START_TAG });
  const check = t.ready_check;
  if (!check) return Date.now() - started;
  const deadline = started + check.timeout_ms;
  let lastProcessCheck = 0;
  for (let wait = 20; ; wait = Math.min(wait * 2, 250)) {
    if (await readyOnce(agent, link, check, deadline, o)) return Date.now() - started;
    if (Date.now() - lastProcessCheck > 500) {
      lastProcessCheck = Date.now();
      const info = await agent.request<ProcessInfo>('GET', AGENT_ROUTES.process(String(pid)), undefined);
      if (!info.running)
        throw new CodedError(
          'invalid_state',
          `the template's start command ended (${info.signal ?? `exit ${info.exit_code}`}) before its ready check passed${await outputTail(agent, pid)}`,
        );
    }
    if (Date.now() >= deadline)
      throw new CodedError(
        'timeout',
        `the template's ready check did not pass within ${check.timeout_ms} ms${await outputTail(agent, pid)}`,
      );
    await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, deadline - Date.now()))));
  }
}

async function readyOnce(
  agent: AgentClient,
  link: MachineLink,
  check: ReadyCheck,
  deadline: number,
  o: { cwd: string; envs: Record<string, string> },
): Promise<boolean> {
  const left = Math.max(100, deadline - Date.now());
  if (check.command !== undefined) {
    const r = await agent.run({
      cmd: 'bash',
      args: ['-c', check.command],
      shell: false,
      cwd: o.cwd,
      envs: o.envs,
      timeout_ms: Math.min(left, 10_000),
      background: false,
      stream: false,
      encoding: 'utf8',
    });
    return r.exit_code === 0;
  }
  const port = check.port as number;
  let socket: Awaited<ReturnType<typeof connectToMachinePort>>;
  try {
    socket = await connectToMachinePort(link, port, Math.min(left, 2000));
  } catch {
    return false;
  }
  if (check.http_path === undefined) {
    socket.destroy();
    return true;
  }
  return httpStatusBelow500(socket, port, check.http_path, Math.min(left, 5000));
}

/** Sends one GET over `socket` and says whether the answer's status is below 500. */
function httpStatusBelow500(
  socket: import('node:net').Socket,
  port: number,
  path: string,
  timeoutMs: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    let head = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const m = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head);
      if (m) done(Number(m[1]) < 500);
      else if (head.length > 64 || head.includes('\n')) done(false);
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
    socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`);
  });
}

async function outputTail(agent: AgentClient, pid: number): Promise<string> {
  try {
    const logs = await agent.request<ProcessLogs>(
      'GET',
      `${AGENT_ROUTES.process(String(pid))}/logs?offset=0&limit=${1024 * 1024}`,
      undefined,
    );
    const text = `${logs.stdout}${logs.stderr}`.trim().slice(-800);
    return text ? `; its output ends with: ${text}` : '; it wrote no output';
  } catch {
    return '';
  }
}
