/**
 * Host processes from /proc (memory, state, command line), waiting for one to end, reading a child's
 * first line, and killing the processes a bench started.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** A file's text, or undefined if it cannot be read (gone, or never there). */
export function readText(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** `/proc/<pid>/<file>`, or undefined once the process is gone. */
export const procText = (pid, file) => readText(`/proc/${pid}/${file}`);

/** Resident memory of a process (bytes); 0 once it is gone, or for a kernel thread. */
export function rssBytes(pid) {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(procText(pid, 'status') ?? '')?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

/** A pid that no longer runs: gone, or a zombie waiting for whoever reaps it. */
export function pidGone(pid) {
  const status = procText(pid, 'status');
  return status === undefined || /^State:\s+Z/m.test(status);
}

/** A process's command line, arguments joined by spaces; empty once it is gone. */
export const cmdline = (pid) => (procText(pid, 'cmdline') ?? '').replaceAll('\0', ' ');

/** Live (non-zombie) processes whose command line contains `needle`. */
export function pidsWith(needle) {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((pid) => pid !== process.pid && cmdline(pid).includes(needle) && !pidGone(pid));
}

/** Waits until `pid` has exited (`free`: until it is reaped too, so the pid can be reused). */
export async function waitGone(pid, { ms = 5000, free = false } = {}) {
  const deadline = performance.now() + ms;
  while (free ? procText(pid, 'status') !== undefined : !pidGone(pid)) {
    if (performance.now() > deadline)
      throw new Error(`process ${pid} still there${free ? ' (or not reaped)' : ''} after ${ms} ms`);
    await sleep(5);
  }
}

/**
 * Resolves with the first line a child process writes to its stdout (then writes the rest to the
 * writable stream `log` if given, else drains it); rejects if it fails to start or exits before
 * (`what` names it).
 */
export function firstLine(child, what, log) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        child.stdout.off('data', onData);
        // Anything later: into `log` if given (with what came after the first line), else drained.
        if (log) {
          log.write(buf.slice(nl + 1));
          child.stdout.pipe(log);
        } else child.stdout.resume();
        resolve(buf.slice(0, nl));
      }
    };
    child.stdout.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`${what} exited (${code ?? signal}) before listening`)),
    );
  });
}

/**
 * Whether a process a bench started (a ChildProcess, or anything with `pid` and `kill`, such as a
 * node-pty terminal) still runs. A ChildProcess that has exited is not asked about by pid: another
 * process may have that pid by now.
 */
function stillRuns(child) {
  if (child.exitCode != null || child.signalCode != null) return false;
  return !pidGone(child.pid);
}

/** Kills (SIGKILL) every process in `children` that still runs and waits until it is gone. */
export async function killChildren(children, note) {
  for (const child of children) {
    if (!stillRuns(child)) continue;
    try {
      child.kill('SIGKILL');
    } catch (err) {
      note(`kill process ${child.pid}`)(err);
    }
    await waitGone(child.pid).catch(note(`process ${child.pid}`));
  }
}

/**
 * Leak lines for processes: the server's (a ChildProcess), any of `children` still running, and
 * any other process whose command line carries `mark`.
 */
export function processLeaks({ server, children = [], mark }) {
  const leaks = [];
  if (server && stillRuns(server)) leaks.push(`server process ${server.pid}`);
  for (const child of children) if (stillRuns(child)) leaks.push(`process ${child.pid}`);
  if (mark) for (const pid of pidsWith(mark)) leaks.push(`process ${pid} (${cmdline(pid).slice(0, 60)}…)`);
  return leaks;
}
