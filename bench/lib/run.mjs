/**
 * The run's frame: options and usage, root and preflight checks, signals, cleanup on every exit
 * path, the leak report and the exit status.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_TEMPLATES_DIR, TEMPLATE, progress } from './common.mjs';

let interruptedBy;

/** Throws once a signal asked the bench to stop: called between steps. */
export function checkInterrupted() {
  if (interruptedBy) throw new Error(`interrupted by ${interruptedBy}`);
}

/**
 * Parses the integer options in `spec` (`key: [flag, default, min]`) and -h/--help, strictly:
 * throws on an unknown option or a bad value. Returns `{ help, ...key: value }`.
 */
export function parseIntOptions(argv, spec) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ...Object.fromEntries(Object.values(spec).map(([flag]) => [flag, { type: 'string' }])),
      help: { type: 'boolean', short: 'h' },
    },
  });
  const opts = { help: values.help === true };
  for (const [key, [flag, fallback, min]] of Object.entries(spec)) {
    const raw = values[flag];
    if (raw === undefined) {
      opts[key] = fallback;
      continue;
    }
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${flag} must be an integer ≥ ${min}, got "${raw}"`);
    opts[key] = n;
  }
  return opts;
}

/** A preflight check: the template's rootfs holds `path` (`rootfs` itself without one). */
export const templateHas =
  (...path) =>
  (templatesDir) =>
    existsSync(join(templatesDir, TEMPLATE, 'rootfs', ...path))
      ? undefined
      : `no ${TEMPLATE} template at ${join(templatesDir, TEMPLATE, 'rootfs')}; set NULLSPACE_TEMPLATES_DIR`;

/** Preflight: the template's rootfs has python3 (the benches' memory-holding process). */
export const templateWithPython = (templatesDir) =>
  existsSync(join(templatesDir, TEMPLATE, 'rootfs', 'usr', 'bin', 'python3'))
    ? undefined
    : `no ${TEMPLATE} template with python3 at ${join(templatesDir, TEMPLATE, 'rootfs')}`;

/** Preflight: the executables `files` a baseline runs are there. */
export const executables = (files, what) => {
  for (const f of files)
    if (!existsSync(f) || !(statSync(f).mode & 0o111)) return `${f} is needed for ${what}`;
  return undefined;
};

/** Preflight: `NSBENCH_BASELINE_REPO`, if set, is a checkout with a built server. */
export function baselineRepoBuilt() {
  const repo = process.env.NSBENCH_BASELINE_REPO;
  if (repo && !existsSync(join(repo, 'packages/server/dist/index.js')))
    return `NSBENCH_BASELINE_REPO=${repo} has no built server (npx tsc -b there)`;
  return undefined;
}

/**
 * Runs a bench as a command and exits. `b`: `script` (its path, for messages), `usage`, `options`
 * (see parseIntOptions), `rootFor` (why it needs root; by default runc, mounts and network
 * namespaces), `preflight(templatesDir)` (what is missing, or undefined; see templateHas), `title`,
 * `describeHost(templatesDir)`, `bench(opts, templatesDir)` (resolves with the results),
 * `report(results)`, `cleanup(note)` (resolves with `{ leaks, checked }`; `note(what)` makes an
 * error handler that records a cleanup problem) and `cleanedUp(checked)` (the summary).
 *
 * Cleanup runs once, on every exit path: the normal end, a failure, SIGINT/SIGTERM/SIGHUP (the
 * bench stops after the current step; a second signal cleans up at once), an exception in a
 * callback. Then each leak is printed as LEAKED. Exit status: 0 ran and cleaned up (a MISS is
 * informational), 1 failed, leaked or had a cleanup problem, 2 bad usage, 130 interrupted.
 */
export function runBench(b) {
  let finishing;
  const finish = (code) => {
    finishing ??= cleanUpAndReport(code);
    return finishing;
  };
  const cleanUpAndReport = async (code) => {
    progress('cleanup');
    const problems = [];
    const note = (what) => (err) => problems.push(`${what}: ${err?.message ?? err}`);
    const { leaks, checked } = await b.cleanup(note);
    for (const p of problems) console.error(`cleanup problem: ${p}`);
    if (leaks.length > 0) {
      console.error(`\nLEAKED (${leaks.length}):`);
      for (const l of leaks) console.error(`  ${l}`);
      return 1;
    }
    console.log(
      `\nCleanup: ${b.cleanedUp(checked)}${problems.length ? ` (${problems.length} cleanup problems, see stderr)` : ''}.`,
    );
    if (code === 0) console.log('Targets are informational: a MISS does not fail the bench.');
    return problems.length > 0 ? 1 : code;
  };

  // A throw in a callback (a socket's, a terminal's) must not end the process before cleanup.
  for (const event of ['uncaughtException', 'unhandledRejection']) {
    process.on(event, (err) => {
      console.error(`\nbench crashed (${event}): ${err?.stack ?? err}`);
      finish(1).then(
        (code) => process.exit(code),
        () => process.exit(1),
      );
    });
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      if (!interruptedBy) {
        interruptedBy = sig;
        process.stderr.write(
          `\n${sig}: stopping after the current step, then cleaning up (again to force)\n`,
        );
        return;
      }
      process.stderr.write(`${sig} again: cleaning up now\n`);
      finish(130).then((code) => process.exit(code));
    });
  }

  const main = async () => {
    let opts;
    try {
      opts = parseIntOptions(process.argv.slice(2), b.options);
    } catch (err) {
      console.error(`${err.message}\n${b.usage}`);
      return 2;
    }
    if (opts.help) {
      console.log(b.usage);
      return 0;
    }
    if (process.getuid?.() !== 0) {
      console.error(`${b.script} needs root (${b.rootFor ?? 'runc, mounts, network namespaces'})`);
      return 2;
    }
    const templatesDir = process.env.NULLSPACE_TEMPLATES_DIR || DEFAULT_TEMPLATES_DIR;
    const missing = b.preflight(templatesDir);
    if (missing) {
      console.error(missing);
      return 2;
    }

    console.log(`${b.title}\n`);
    await b.describeHost(templatesDir);
    let code = 0;
    try {
      b.report(await b.bench(opts, templatesDir));
    } catch (err) {
      if (interruptedBy) {
        console.error(`\nbench interrupted by ${interruptedBy}`);
        code = 130;
      } else {
        console.error(`\nbench failed: ${err?.stack ?? err}`);
        code = 1;
      }
    }
    return finish(code);
  };
  main().then(
    (code) => process.exit(code),
    async (err) => {
      console.error(`bench crashed: ${err?.stack ?? err}`);
      process.exit(await finish(1).catch(() => 1));
    },
  );
}
