import { spawn } from 'node:child_process';
import { CodedError } from '@nullspace/protocol';
import { hostShell } from './host-shell.js';

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
    /**
     * All its stdio is /dev/null (its output is not read): for a tool that leaves processes behind
     * which inherit it (`runc run --detach`: the container must hold no pipe or file of ours).
     */
    noStdio?: boolean;
  } = {},
): Promise<HostCommandResult> {
  const shell = hostShell();
  return new Promise((resolve, reject) => {
    const fail = (why: string, stderr: string, stdout: string, cause?: unknown) =>
      reject(
        new CodedError(
          'internal',
          `${file} ${args.join(' ')}: ${why}: ${stderr || stdout || why}`,
          { tool: file, stderr },
          cause === undefined ? undefined : { cause },
        ),
      );
    let timedOut = false;
    let pid: number | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (pid !== undefined) process.kill(opts.killGroup ? -pid : pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, opts.timeoutMs ?? 30_000);
    const started = (p: number) => {
      pid = p;
      opts.onSpawn?.(p);
      // Timed out before the host shell said it started: ended now.
      if (timedOut) process.kill(opts.killGroup ? -p : p, 'SIGKILL');
    };
    const ended = (status: number | null, signal: string | null, out: Buffer, err: Buffer) => {
      clearTimeout(timer);
      const stdout = out.subarray(0, MAX_OUTPUT).toString('utf8');
      const stderr = err.subarray(0, MAX_OUTPUT).toString('utf8').trim();
      if (status === 0) resolve({ stdout, stderr });
      else
        fail(
          timedOut ? 'timed out' : signal ? `killed by ${signal}` : `exit ${status}`,
          stderr,
          stdout.trim(),
        );
    };
    if (shell) {
      // The tool is exec'd by the host shell: a process group of its own (setsid) when asked.
      const argv = [...(opts.killGroup ? ['setsid'] : []), file, ...args].map(shellQuote).join(' ');
      shell
        .run({
          script: `${opts.cwd ? `cd ${shellQuote(opts.cwd)} || exit 126\n` : ''}exec ${argv}${opts.noStdio ? ' </dev/null >/dev/null 2>&1' : ''}\n`,
          ...(opts.input ? { input: opts.input } : {}),
          onSpawn: started,
          // sh reports a tool ended by a signal as 128 + its number, and one it cannot find as 127
          // with "exec: TOOL: not found": the ENOENT a direct spawn fails with, for callers that
          // tell a missing tool apart.
          onExit: (status, out, err) => {
            if (status === 127 && /exec: .*: not found/.test(err.toString('utf8'))) {
              clearTimeout(timer);
              const cause = Object.assign(new Error(`spawn ${file} ENOENT`), { code: 'ENOENT' });
              fail('ENOENT', '', '', cause);
              return;
            }
            ended(status, status > 128 && timedOut ? 'SIGKILL' : null, out, err);
          },
          onError: (e) => {
            clearTimeout(timer);
            fail(e.message, '', '', e);
          },
        })
        .catch((e: unknown) => {
          clearTimeout(timer);
          fail((e as Error).message, '', '', e);
        });
      return;
    }
    // Its own process group when asked, so that a timeout can end the tool and its helpers.
    if (opts.noStdio) {
      const child = spawn(file, args as string[], {
        cwd: opts.cwd,
        detached: opts.killGroup === true,
        stdio: 'ignore',
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        fail((e as NodeJS.ErrnoException).code ?? e.message, '', '', e);
      });
      child.on('exit', (code, signal) => ended(code, signal, Buffer.alloc(0), Buffer.alloc(0)));
      if (child.pid !== undefined) started(child.pid);
      return;
    }
    const child = spawn(file, args as string[], {
      cwd: opts.cwd,
      detached: opts.killGroup === true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_OUTPUT) into.push(chunk);
    };
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    child.on('error', (e) => {
      clearTimeout(timer);
      fail((e as NodeJS.ErrnoException).code ?? e.message, '', '', e);
    });
    child.on('close', (code, signal) => ended(code, signal, Buffer.concat(out), Buffer.concat(err)));
    if (child.pid !== undefined) started(child.pid);
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

const MAX_OUTPUT = 16 * 1024 * 1024;

/** One host command as an argv (no shell parsing). */
export type Argv = readonly string[];

/**
 * One step of a {@link hostPlan}: a command; a command with a fallback run when it fails and the
 * path `unlessExists` does not exist (the fallback's failure is then the step's); `to` (a file,
 * e.g. a sysctl under /proc/sys) given the content `write` by the plan's shell itself, no process;
 * or `shell`, a fragment of shell for what passes a value from one command to the next (its
 * arguments quoted with {@link shellQuote} by whoever builds it), named `name` in a failure.
 */
export type PlanStep =
  | Argv
  | { argv: Argv; fallback: { argv: Argv; unlessExists: string } }
  | { write: string; to: string }
  | { shell: string; name: string };

/** `arg` as one word of `sh`, whatever it holds. */
export function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

function renderStep(step: PlanStep): { cmd: string; name: string } {
  const command = (argv: Argv) => `${argv.map(shellQuote).join(' ')} </dev/null`;
  if ('shell' in step) return { cmd: `{ ${step.shell}\n}`, name: step.name };
  if ('write' in step)
    return { cmd: `printf %s ${shellQuote(step.write)} > ${shellQuote(step.to)}`, name: `write ${step.to}` };
  if ('argv' in step) {
    const { argv, fallback } = step;
    return {
      cmd: `{ ${command(argv)} || { [ ! -e ${shellQuote(fallback.unlessExists)} ] && ${command(fallback.argv)}; }; }`,
      name: argv.join(' '),
    };
  }
  return { cmd: command(step), name: step.join(' ') };
}

/** The `sh` script that runs `lanes` (see hostPlan); a lane without steps is left out. */
export function planScript(allLanes: readonly (readonly PlanStep[])[]): string {
  const lanes = allLanes.filter((lane) => lane.length > 0);
  const lines: string[] = ['fail=0'];
  lanes.forEach((lane, i) => {
    const body = lane
      .map((step) => {
        const { cmd, name } = renderStep(step);
        return `${cmd} || { echo ${shellQuote(`failed: ${name}`)} >&2; exit 1; }`;
      })
      .join('\n');
    lines.push(`(\n${body}\n) & p${i}=$!`);
  });
  lanes.forEach((_, i) => {
    lines.push(`wait $p${i} || fail=1`);
  });
  lines.push('exit $fail');
  return lines.join('\n');
}

/**
 * Runs several host commands through one `sh` instead of one process spawn each: spawning from the
 * server's large process costs milliseconds a time, which adds up on the create path. Each lane's
 * steps run in order; the lanes run side by side; a failing step stops its lane and the whole
 * plan fails with that step and its stderr named. Commands get /dev/null as stdin.
 */
export async function hostPlan(
  lanes: readonly (readonly PlanStep[])[],
  opts: {
    timeoutMs?: number;
    /** Runs the whole plan at this niceness (19: only when the host's CPUs are otherwise idle). */
    nice?: number;
  } = {},
): Promise<void> {
  const script = ['sh', '-c', planScript(lanes)];
  const [file, ...args] = opts.nice === undefined ? script : ['nice', '-n', String(opts.nice), ...script];
  await host(file as string, args, opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
}
