import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CodedError } from '@nullspace/protocol';

/**
 * Host tools started by one long-lived `sh` instead of by the server itself.
 *
 * Why: Node's `spawn` forks the whole server and then blocks its event loop until the child has
 * exec'd. On this host kind that is 5 ms of the main thread when idle and 20–40 ms under a burst of
 * creates (the child waits for a CPU before it can exec), during which no request is served: with
 * 100 creates in flight the event loop spent about half its time inside `spawn`. `sh` is a small
 * process whose fork costs a fraction of a millisecond and never waits for the exec; the server
 * only writes a line to its pipe.
 *
 * How: a job is a small script file (`<n>.sh`, `exec TOOL ARGS…`), with its stdin in `<n>.in` when
 * it has one; the server writes its number and whether it has stdin on the shell's stdin. The shell
 * starts it in the background with stdout and stderr going to `<n>.out` and `<n>.err`, then reports
 * `<n> p PID` at once and `<n> x STATUS` when it ended (a waiting subshell per job; the lines are
 * shorter than PIPE_BUF, so they never interleave). The files live in a directory of its own on
 * tmpfs, removed when the job is read and when the process exits; a directory left by a process
 * that died is removed by the next one.
 *
 * The jobs are children of the shell, not of the server; a job's pid is its tool's (the script
 * `exec`s it), so timeouts, `onSpawn` and a process group (`setsid`, for `killGroup`) work as with
 * a direct spawn. If the shell is gone, jobs waiting for it fail and the next one starts another.
 */

const HELPER_SCRIPT = [
  'd=$1',
  'while IFS=" " read -r n i; do',
  '  if [ "$i" = i ]; then in="$d/$n.in"; else in=/dev/null; fi',
  '  {',
  '    ( . "$d/$n.sh" ) <"$in" >"$d/$n.out" 2>"$d/$n.err" &',
  '    p=$!',
  '    echo "$n p $p"',
  '    wait "$p"',
  '    echo "$n x $?"',
  '  } &',
  'done',
].join('\n');

const DIR_PREFIX = 'nullspace-host-';

export interface ShellJob {
  /** The script's body, run by `sh` (`exec …` so that the job's pid is the tool's). */
  script: string;
  input?: string;
  onSpawn?: (pid: number) => void;
  /** Called once with the job's exit status (128 + signal when a signal ended it) and output. */
  onExit: (status: number, stdout: Buffer, stderr: Buffer) => void;
  onError: (err: Error) => void;
}

interface Pending {
  job: ShellJob;
  pid?: number;
}

/** The one shell of this process (see the file comment); `undefined` where it cannot run. */
class HostShell {
  private child: ChildProcessWithoutNullStreams | undefined;
  private readonly dir: string;
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private buffered = '';

  constructor() {
    const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    sweepStaleDirs(base);
    this.dir = mkdtempSync(join(base, `${DIR_PREFIX}${process.pid}-`));
    process.once('exit', () => rmSync(this.dir, { recursive: true, force: true }));
  }

  async run(job: ShellJob): Promise<void> {
    const n = this.next++;
    const file = (ext: string) => join(this.dir, `${n}.${ext}`);
    // A tool is looked up in this process's PATH at the time of the call, as a direct spawn does
    // (a caller may have changed it since the shell started, e.g. to put a wrapper in front).
    const path = process.env.PATH;
    const script =
      path === undefined ? job.script : `export PATH='${path.replace(/'/g, "'\\''")}'\n${job.script}`;
    await Promise.all([
      writeFile(file('sh'), script),
      job.input ? writeFile(file('in'), job.input) : undefined,
    ]);
    const child = this.ensure();
    this.pending.set(n, { job });
    this.refWhileBusy();
    child.stdin.write(`${n} ${job.input ? 'i' : 'n'}\n`);
  }

  private ensure(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn('sh', ['-c', HELPER_SCRIPT, 'sh', this.dir], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => this.onData(chunk));
    child.stderr.on('data', () => undefined);
    child.stdin.on('error', () => undefined);
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      const lost = [...this.pending.values()];
      this.pending.clear();
      for (const p of lost) p.job.onError(new Error(`the host tool shell ${why}`));
    };
    child.on('error', (e) => gone(`could not start: ${e.message}`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? code})`));
    this.refWhileBusy();
    return child;
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      const [ns, kind, value] = line.split(' ');
      const n = Number(ns);
      const p = this.pending.get(n);
      if (!p) continue;
      if (kind === 'p') {
        p.pid = Number(value);
        p.job.onSpawn?.(p.pid);
      } else if (kind === 'x') {
        this.pending.delete(n);
        this.refWhileBusy();
        void this.finish(n, p.job, Number(value));
      }
    }
  }

  private async finish(n: number, job: ShellJob, status: number): Promise<void> {
    const file = (ext: string) => join(this.dir, `${n}.${ext}`);
    const [out, err] = await Promise.all([
      readFile(file('out')).catch(() => Buffer.alloc(0)),
      readFile(file('err')).catch(() => Buffer.alloc(0)),
    ]);
    for (const ext of ['sh', 'in', 'out', 'err']) void rm(file(ext), { force: true }).catch(() => undefined);
    job.onExit(status, out, err);
  }

  /** The shell keeps this process alive only while jobs run (a CLI exits once its tools are done). */
  private refWhileBusy(): void {
    const child = this.child;
    if (!child) return;
    const busy = this.pending.size > 0;
    for (const s of [child.stdout, child.stdin, child.stderr] as unknown as { ref(): void; unref(): void }[])
      busy ? s.ref() : s.unref();
    busy ? child.ref() : child.unref();
  }
}

/** Removes the job directories of processes that are gone (a server killed with SIGKILL). */
function sweepStaleDirs(base: string): void {
  let names: string[];
  try {
    names = readdirSync(base).filter((n) => n.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.slice(DIR_PREFIX.length).split('-')[0]);
    if (pid > 0 && pid !== process.pid && !existsSync(`/proc/${pid}`))
      rmSync(join(base, name), { recursive: true, force: true });
  }
}

let shell: HostShell | undefined | null;

/** This process's host shell, made on first use; `null` if it cannot be (then tools are spawned directly). */
export function hostShell(): HostShell | null {
  if (shell === undefined) {
    const how = process.env.NULLSPACE_HOST_SPAWN || 'shell';
    if (how !== 'shell' && how !== 'direct')
      throw new CodedError(
        'invalid_argument',
        `NULLSPACE_HOST_SPAWN must be "shell" or "direct", got ${JSON.stringify(how)}`,
        { field: 'NULLSPACE_HOST_SPAWN' },
      );
    try {
      shell = how === 'direct' ? null : new HostShell();
    } catch {
      // no writable /dev/shm or temp dir: tools are spawned directly
      shell = null;
    }
  }
  return shell;
}
