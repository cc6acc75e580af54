import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { type AgentRunRequest, COMMAND_LIMITS, CodedError, type RunCommandResult } from '@nullspace/protocol';

/** Collects a stream's bytes up to a cap, remembering whether anything was dropped. */
class CappedBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    const room = this.cap - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part !== chunk) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/**
 * How long to keep reading output after the process exited: a command that leaves a background
 * child holding stdout (`server &`) must not hang the call until that child exits.
 */
const DRAIN_AFTER_EXIT_MS = 100;

/**
 * OOM score given to commands. The host cannot lower the agent's score (no CAP_SYS_RESOURCE), so
 * commands get a higher one instead: an allocation past memory_mb kills the command, not the agent,
 * and the machine stays reachable. Raising a score needs no privilege.
 */
const COMMAND_OOM_SCORE_ADJ = '500';

/**
 * Runs one foreground command to completion. The process gets its own process group so a timeout
 * kills everything it started. Its OOM score is raised right after it starts; children it forks in
 * that first instant keep the agent's score, which only puts them on equal terms with the agent.
 */
export async function runCommand(req: AgentRunRequest, defaultCwd: string): Promise<RunCommandResult> {
  const cwd = req.cwd ?? defaultCwd;
  const dir = await stat(cwd).catch(() => undefined);
  if (!dir?.isDirectory())
    throw new CodedError('invalid_argument', `cwd: ${cwd} is not a directory in the machine`, {
      field: 'cwd',
    });
  const argv = req.shell ? [await shellPath(), '-c', req.cmd] : [req.cmd, ...req.args];
  const started = Date.now();
  const [file, ...args] = argv as [string, ...string[]];
  const child = spawn(file, args, {
    cwd,
    env: { ...process.env, ...req.envs },
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (child.pid !== undefined) {
    try {
      writeFileSync(`/proc/${child.pid}/oom_score_adj`, COMMAND_OOM_SCORE_ADJ);
    } catch {
      // the command already exited
    }
  }
  const stdout = new CappedBuffer(COMMAND_LIMITS.maxOutputBytes);
  const stderr = new CappedBuffer(COMMAND_LIMITS.maxOutputBytes);
  child.stdout.on('data', (c: Buffer) => stdout.push(c));
  child.stderr.on('data', (c: Buffer) => stderr.push(c));
  child.stdin.on('error', () => undefined); // the command may exit without reading its stdin
  child.stdin.end(req.stdin ?? '');

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, req.timeout_ms);

  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      // A program that is missing or not executable is the command's failure, not the agent's:
      // answer as a shell would (127 / 126), with the reason on stderr.
      if (err.code === 'ENOENT' || err.code === 'EACCES') {
        clearTimeout(timer);
        stderr.push(
          Buffer.from(
            `nullspace: ${file}: ${err.code === 'ENOENT' ? 'command not found' : 'permission denied'}\n`,
          ),
        );
        resolve([err.code === 'ENOENT' ? 127 : 126, null]);
        return;
      }
      reject(new CodedError('internal', `could not start command: ${err.message}`));
    });
    child.once('exit', (c, s) => {
      const drain = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        resolve([c, s]);
      }, DRAIN_AFTER_EXIT_MS);
      child.once('close', () => {
        clearTimeout(drain);
        resolve([c, s]);
      });
    });
  }).finally(() => clearTimeout(timer));

  return {
    pid: child.pid ?? -1,
    exit_code: code,
    signal: signal ?? null,
    stdout: stdout.text(),
    stderr: stderr.text(),
    timed_out: timedOut,
    stdout_truncated: stdout.truncated,
    stderr_truncated: stderr.truncated,
    duration_ms: Date.now() - started,
  };
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

let shell: string | undefined;
async function shellPath(): Promise<string> {
  if (shell === undefined) shell = (await stat('/bin/bash').catch(() => undefined)) ? '/bin/bash' : '/bin/sh';
  return shell;
}
