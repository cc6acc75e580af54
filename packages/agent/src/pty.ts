import { createRequire } from 'node:module';
import type * as NodePty from 'node-pty';

/** The part of a node-pty terminal the agent uses. */
export interface Terminal {
  pid: number;
  write(data: Buffer): void;
  resize(cols: number, rows: number): void;
  pause(): void;
  resume(): void;
  onData(cb: (data: Buffer) => void): void;
  onExit(cb: (e: { exitCode: number; signal?: number }) => void): void;
}

let ptyModule: typeof NodePty | undefined;

/**
 * node-pty is a native module, so it is not in the agent's bundle: it sits beside it in the
 * agent's (read-only) directory and is loaded on the first terminal, so a machine whose terminals
 * are never used does not pay for it at start.
 */
function nodePty(): typeof NodePty {
  if (!ptyModule) ptyModule = createRequire(import.meta.url)('node-pty') as typeof NodePty;
  return ptyModule;
}

export function openTerminal(
  file: string,
  args: string[],
  o: { cols: number; rows: number; cwd: string; env: Record<string, string> },
): Terminal {
  // encoding: null → output as Buffers, so bytes that are not UTF-8 pass unchanged.
  const p = nodePty().spawn(file, args, {
    name: o.env.TERM ?? 'xterm-256color',
    cols: o.cols,
    rows: o.rows,
    cwd: o.cwd,
    env: o.env,
    encoding: null,
  });
  return {
    pid: p.pid,
    write: (data) => p.write(data as unknown as string),
    resize: (cols, rows) => p.resize(cols, rows),
    pause: () => p.pause(),
    resume: () => p.resume(),
    onData: (cb) => {
      p.onData((d: string | Buffer) => cb(typeof d === 'string' ? Buffer.from(d) : d));
    },
    onExit: (cb) => {
      p.onExit(cb);
    },
  };
}
