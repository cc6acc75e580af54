// Of the commands contract, what the agent shares (through `@nullspace/protocol/core`): limits and
// the process selector, without a schema.
import { invalidArgument } from './errors-core.js';

export const COMMAND_LIMITS = {
  timeout_ms: { min: 1, max: 24 * 3600 * 1000, default: 60_000 },
  /** Bytes of stdout (and separately stderr) a foreground run keeps; the rest is dropped and flagged. */
  maxOutputBytes: 16 * 1024 * 1024,
  maxStdinBytes: 16 * 1024 * 1024,
  /** Output bytes (stdout and stderr together) the agent keeps per process for logs and re-attach. */
  retainedOutputBytes: 4 * 1024 * 1024,
  /** Finished processes the agent still lists (oldest forgotten first); running ones are all kept. */
  finishedKept: 256,
  /** Output bytes all finished processes together keep; the oldest lose theirs first. */
  finishedOutputBudget: 32 * 1024 * 1024,
  /** Output bytes all running processes together keep (each at most retainedOutputBytes, at least the minimum). */
  runningOutputBudget: 64 * 1024 * 1024,
  minRetainedOutputBytes: 256 * 1024,
  maxLogsBytes: 4 * 1024 * 1024,
} as const;

/** A tag names a background process so another client can find it: letters first, then [A-Za-z0-9_.-]. */
export const TAG = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/** A process named in a path: a pid (digits) or a tag. */
export type ProcessSelector = { pid: number } | { tag: string };

export function parseProcessSelector(raw: string): ProcessSelector {
  if (/^[0-9]{1,9}$/.test(raw)) {
    const pid = Number(raw);
    if (pid >= 1) return { pid };
  }
  if (TAG.test(raw)) return { tag: raw };
  throw invalidArgument('pid', `"${raw.slice(0, 80)}" is neither a pid nor a tag`);
}

export function selectorText(sel: ProcessSelector): string {
  return 'pid' in sel ? String(sel.pid) : sel.tag;
}
