import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Argv } from '../exec.js';

/**
 * A CRIU action script (`action-script` in the checkpoint's criu.conf) that keeps a snapshot's
 * freeze to CRIU's own dump of the machine. Without it the machine was frozen before `runc
 * checkpoint` started, so the freeze also covered runc's start, CRIU's start and its probe of the
 * kernel (CRIU keeps that probe's cache only on a tmpfs /run, which this host kind does not have:
 * 40–80 ms on every run), then the disk copy and runc's exit. Letting CRIU freeze the cgroup itself
 * is no better: on cgroup v1 it polls the freezer every 100 ms. So CRIU calls this script:
 *   - `pre-dump` (CRIU is set up and about to seize the tasks): freeze the machine's cgroup here,
 *     polling the state without sleeping (a freeze takes about a millisecond); CRIU finds it frozen
 *     and leaves the freezer to us.
 *   - `post-dump` (every image written, tasks still frozen): sync and copy the disk image, so the
 *     disk and the memory are from the same instant. A failure here fails the dump.
 *   - `network-unlock` (CRIU is done with the tasks but for detaching; it runs on success and on
 *     failure alike): thaw. The tasks are still stopped under ptrace until CRIU detaches a moment
 *     later, so nothing runs before CRIU lets it.
 * Each step appends a line to the stamp file: `pre-dump <epoch ns>` before the freeze is asked for,
 * `frozen`, `copied`, and `thawed <epoch ns>` after the thaw. The machine was frozen between the two
 * times, which is the snapshot's `paused_ms`, measured around the freeze and nothing else.
 */
export interface DumpHook {
  /** The script (in the machine's directory; CRIU runs it as root). */
  script: string;
  /** Where it records its steps. */
  stamps: string;
  /** What the disk copy's commands wrote to stderr (CRIU's own log does not keep it). */
  errors: string;
}

export interface FreezerFiles {
  /** The file written to freeze/thaw (`freezer.state` on v1, `cgroup.freeze` on v2). */
  control: string;
  frozenValue: string;
  thawedValue: string;
  /** The file whose content says the freeze is complete, and the line that says so. */
  stateFile: string;
  frozenLine: string;
}

/** A POSIX shell word for `s` (single quotes; a quote inside becomes '\''). */
function sh(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function shellLine(argv: Argv): string {
  return argv.map(sh).join(' ');
}

/** Writes the hook for one snapshot: `copySteps` copy the disk while the machine is frozen. */
export async function writeDumpHook(
  machineDir: string,
  freezer: FreezerFiles,
  copySteps: readonly Argv[],
  /** Reads of the freezer's state before the freeze counts as failed (about 10 µs each). */
  maxFreezeReads = 200_000,
): Promise<DumpHook> {
  const script = join(machineDir, 'criu-dump-hook.sh');
  const stamps = join(machineDir, 'criu-dump-hook.stamps');
  const errors = join(machineDir, 'criu-dump-hook.err');
  await rm(stamps, { force: true });
  await rm(errors, { force: true });
  // `read` is the shell's own: waiting for the freeze starts no process. 200 000 reads is about
  // 2 s; then it gives up (thaws again and fails the pre-dump, which fails the checkpoint). Only
  // the first and the last stamp run `date`, outside the freeze; the others are the shell's own
  // writes, so the frozen part starts no process but the disk copy's.
  const text = `#!/bin/sh
# Written by the Nullspace runtime for one checkpoint of this machine (runtime/src/runc/dump-hook.ts).
stamp() { printf '%s %s\\n' "$1" "$(date +%s%N)" >> ${sh(stamps)}; }
mark() { printf '%s 0\\n' "$1" >> ${sh(stamps)}; }
case "$CRTOOLS_SCRIPT_ACTION" in
pre-dump)
  stamp pre-dump
  printf '%s' ${sh(freezer.frozenValue)} > ${sh(freezer.control)} || exit 1
  n=0
  while :; do
    while IFS= read -r line || [ -n "$line" ]; do
      [ "$line" = ${sh(freezer.frozenLine)} ] && { mark frozen; exit 0; }
    done < ${sh(freezer.stateFile)}
    n=$((n + 1))
    if [ "$n" -ge ${maxFreezeReads} ]; then
      printf '%s' ${sh(freezer.thawedValue)} > ${sh(freezer.control)}
      mark freeze-timeout
      exit 1
    fi
  done
  ;;
post-dump)
${copySteps.map((a) => `  ${shellLine(a)} 2>> ${sh(errors)} || exit 1`).join('\n')}
  mark copied
  ;;
network-unlock)
  printf '%s' ${sh(freezer.thawedValue)} > ${sh(freezer.control)} || exit 1
  stamp thawed
  ;;
esac
exit 0
`;
  await writeFile(script, text, { mode: 0o700 });
  return { script, stamps, errors };
}

/** The steps the hook recorded, in order, with their times (epoch ns as bigint). */
export async function readDumpHookStamps(hook: DumpHook): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  const text = await readFile(hook.stamps, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [what, ns] = line.trim().split(' ');
    if (what && ns && /^\d+$/.test(ns)) out.set(what, BigInt(ns));
  }
  return out;
}

/** What the disk copy said on stderr ('' if nothing). */
export async function readDumpHookErrors(hook: DumpHook): Promise<string> {
  return (await readFile(hook.errors, 'utf8').catch(() => '')).trim();
}

export async function removeDumpHook(hook: DumpHook): Promise<void> {
  await rm(hook.script, { force: true });
  await rm(hook.stamps, { force: true });
  await rm(hook.errors, { force: true });
}
