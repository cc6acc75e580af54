import { type ChildProcess, spawn } from 'node:child_process';
import { CodedError, DESKTOP_DISPLAY } from '@nullspace/protocol/core';

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

/**
 * A buffer reused for a tool's output (a screenshot's 3 MiB dump): a fresh one per call would sit
 * in memory until V8's next full collection, which a small agent heap makes rare.
 */
export class Scratch {
  private buf = Buffer.alloc(0);
  private busy = false;

  /** A writer of one call's output, or undefined while another call holds the buffer. */
  take(): { push(chunk: Buffer): void; bytes(): Buffer; release(): void } | undefined {
    if (this.busy) return undefined;
    this.busy = true;
    let used = 0;
    return {
      push: (chunk) => {
        if (used + chunk.length > this.buf.length) {
          const bigger = Buffer.allocUnsafeSlow(Math.max(used + chunk.length, this.buf.length * 2));
          this.buf.copy(bigger, 0, 0, used);
          this.buf = bigger;
        }
        chunk.copy(this.buf, used);
        used += chunk.length;
      },
      bytes: () => this.buf.subarray(0, used),
      release: () => {
        this.busy = false;
      },
    };
  }
}

export interface ToolResult {
  stdout: Buffer;
  stderr: string;
  code: number | null;
  /** Gives a scratch buffer back (stdout must not be used after). */
  release(): void;
}

/**
 * Runs an X tool with an argument vector — never a shell, so user text (typed text, a window
 * title, a path to open) is only ever one argument. Resolves with its output whatever its exit
 * code; `timeoutMs` kills it.
 */
export function runTool(
  cmd: string,
  args: string[],
  o: { stdin?: string | Buffer; timeoutMs?: number; scratch?: Scratch } = {},
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
    // With a scratch buffer, stdout is only valid until `release()` of the result (see tool()).
    const into = o.scratch?.take();
    child.stdout?.on('data', (c: Buffer) => (into ? into.push(c) : out.push(c)));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 15_000);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      into?.release();
      reject(
        e.code === 'ENOENT'
          ? new CodedError('desktop_unavailable', `${cmd} is not installed in this machine`)
          : e,
      );
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = into ? into.bytes() : Buffer.concat(out);
      resolve({ stdout, stderr: Buffer.concat(err).toString('utf8'), code, release: () => into?.release() });
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(o.stdin ?? '');
  });
}

/** Runs a tool and fails with `internal` (its stderr) on a non-zero exit. */
export async function tool(
  cmd: string,
  args: string[],
  o: { stdin?: string | Buffer; timeoutMs?: number; scratch?: Scratch } = {},
) {
  const r = await runTool(cmd, args, o);
  if (r.code !== 0) {
    r.release();
    throw new CodedError('internal', `${cmd} failed (exit ${r.code}): ${r.stderr.trim().slice(0, 500)}`);
  }
  return r;
}
