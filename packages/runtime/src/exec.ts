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
  opts: { timeoutMs?: number; input?: string; cwd?: string } = {},
): Promise<HostCommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args as string[],
      {
        timeout: opts.timeoutMs ?? 30_000,
        maxBuffer: 16 * 1024 * 1024,
        cwd: opts.cwd,
        killSignal: 'SIGKILL',
      },
      (error, stdout, stderr) => {
        if (error) {
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
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like `host` but resolves `false` instead of throwing when the tool fails (for idempotent teardown). */
export async function hostOk(
  file: string,
  args: readonly string[],
  opts: { timeoutMs?: number } = {},
): Promise<boolean> {
  try {
    await host(file, args, opts);
    return true;
  } catch {
    return false;
  }
}
