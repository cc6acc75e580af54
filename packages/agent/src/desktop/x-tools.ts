import { type ChildProcess, spawn } from 'node:child_process';
import { CodedError, DESKTOP_DISPLAY } from '@nullspace/protocol';

/** The environment of every X tool and desktop program the agent starts. */
export function desktopEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  env.PATH = env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  env.HOME = env.HOME || '/root';
  env.LANG = env.LANG || 'C.UTF-8';
  env.DISPLAY = DESKTOP_DISPLAY;
  return env;
}

export interface ToolResult {
  stdout: Buffer;
  stderr: string;
  code: number | null;
}

/**
 * Runs an X tool with an argument vector — never a shell, so user text (typed text, a window
 * title, a path to open) is only ever one argument. Resolves with its output whatever its exit
 * code; `timeoutMs` kills it.
 */
export function runTool(
  cmd: string,
  args: string[],
  o: { stdin?: string | Buffer; timeoutMs?: number } = {},
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { env: desktopEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      reject(err);
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 15_000);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        e.code === 'ENOENT'
          ? new CodedError('desktop_unavailable', `${cmd} is not installed in this machine`)
          : e,
      );
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8'), code });
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(o.stdin ?? '');
  });
}

/** Runs a tool and fails with `internal` (its stderr) on a non-zero exit. */
export async function tool(
  cmd: string,
  args: string[],
  o: { stdin?: string | Buffer; timeoutMs?: number } = {},
) {
  const r = await runTool(cmd, args, o);
  if (r.code !== 0)
    throw new CodedError('internal', `${cmd} failed (exit ${r.code}): ${r.stderr.trim().slice(0, 500)}`);
  return r;
}
