import { execFile } from 'node:child_process';
import { CodedError } from '@nullspace/protocol';

export interface HostCommandResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs a host tool (mount, ip, runc, xfs_quota ...) and returns its output. A non-zero exit becomes
 * a CodedError `internal` whose message names the tool and carries its stderr, so a failure deep in
 * the runtime is diagnosable from the server log without leaking to clients (the HTTP layer hides
 * `internal` messages).
 */
export function host(
  file: string,
  args: readonly string[],
  opts: {
    timeoutMs?: number;
    input?: string;
    cwd?: string;
    /** On timeout kill the tool's whole process group (runc and the CRIU it started), not just it. */
    killGroup?: boolean;
    /** Called with the tool's pid right after it started. */
    onSpawn?: (pid: number) => void;
  } = {},
): Promise<HostCommandResult> {
  return new Promise((resolve, reject) => {
    let groupKilled = false;
    const child = execFile(
      file,
      args as string[],
      {
        timeout: opts.killGroup ? 0 : (opts.timeoutMs ?? 30_000),
        maxBuffer: 16 * 1024 * 1024,
        cwd: opts.cwd,
        killSignal: 'SIGKILL',
        ...(opts.killGroup ? { detached: true } : {}),
      },
      (error, stdout, stderr) => {
        clearTimeout(groupTimer);
        if (error) {
          if (groupKilled) error.killed = true;
          const code = (error as NodeJS.ErrnoException & { code?: unknown }).code;
          const why = error.killed
            ? 'timed out'
            : typeof code === 'number'
              ? `exit ${code}`
              : String(code ?? error.message);
          reject(
            new CodedError(
              'internal',
              `${file} ${args.join(' ')}: ${why}: ${stderr.trim() || stdout.trim() || error.message}`,
              { tool: file, stderr: stderr.trim() },
              { cause: error },
            ),
          );
          return;
        }
        resolve({ stdout, stderr });
      },
    );
    const groupTimer = opts.killGroup
      ? setTimeout(() => {
          groupKilled = true;
          try {
            if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }, opts.timeoutMs ?? 30_000)
      : undefined;
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** One host command as an argv (no shell parsing). */
export type Argv = readonly string[];

function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs several host commands through one `sh` instead of one process spawn each: spawning from the
 * server's large process costs milliseconds a time, which adds up on the create path. Each lane's
 * commands run in order; the lanes run side by side; a failing command stops its lane and the whole
 * plan fails with that command and its stderr named. Commands get /dev/null as stdin.
 */
export async function hostPlan(
  lanes: readonly (readonly Argv[])[],
  opts: { timeoutMs?: number } = {},
): Promise<void> {
  const lines: string[] = ['fail=0'];
  lanes.forEach((lane, i) => {
    const body = lane
      .map((argv) => {
        const cmd = argv.map(shellQuote).join(' ');
        return `${cmd} </dev/null || { echo ${shellQuote(`failed: ${argv.join(' ')}`)} >&2; exit 1; }`;
      })
      .join('\n');
    lines.push(`(\n${body}\n) & p${i}=$!`);
  });
  lanes.forEach((_, i) => {
    lines.push(`wait $p${i} || fail=1`);
  });
  lines.push('exit $fail');
  await host('sh', ['-c', lines.join('\n')], opts);
}
