/**
 * What every bench and bench module shares: the template and where templates are, the repository's
 * root, units, how long machines live, the usage's last line; and the small helpers: progress lines,
 * running a host tool, timing a step.
 */
import { execFile } from 'node:child_process';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export const TEMPLATE = 'base';
export const DEFAULT_TEMPLATES_DIR = '/var/lib/nullspace/templates';
export const REPO_ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
export const MiB = 1024 * 1024;
/** MB/s here is 10^6 bytes per second. */
export const MB = 1e6;
/** Machines live this long (s) unless killed: well past a bench's end, never expiring mid-run. */
export const MACHINE_TIMEOUT_S = 3600;
/** The last line of every bench's usage. */
export const USAGE_ENVIRONMENT = `environment: NULLSPACE_TEMPLATES_DIR (default ${DEFAULT_TEMPLATES_DIR}) must hold ${TEMPLATE}/rootfs;
  NSBENCH_SERVER_LOG=FILE keeps the log of a server the bench runs in its own process (level warn)`;

/** Progress goes to stderr, results to stdout. */
export const progress = (msg) => process.stderr.write(`  … ${msg}\n`);

/** Runs a host tool; resolves with its stdout, rejects with its stderr. */
export function sh(file, args, opts = {}) {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 30_000, killSignal: 'SIGKILL', cwd: opts.cwd, maxBuffer: 16 * MiB },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${file} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
        else resolve(String(stdout));
      },
    );
  });
}

/** Times `fn` (ms); resolves with [ms, result]. */
export async function timed(fn) {
  const t0 = performance.now();
  const result = await fn();
  return [performance.now() - t0, result];
}
