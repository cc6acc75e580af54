import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import {
  type AgentDesktopSession,
  CodedError,
  DESKTOP_LIMITS,
  DESKTOP_MARKER,
  desktopUnavailable,
} from '@nullspace/protocol/core';
import { log } from '../log.js';
import { desktopEnv, runTool } from './x-tools.js';
import { xvfbArgs } from './xvfb-args.js';

/** Where the desktop's programs write their logs, inside the machine. */
export const DESKTOP_STATE_DIR = '/var/lib/nullspace-desktop';
/** Display :0's socket, in the abstract namespace only (a path socket in /tmp/.X11-unix breaks CRIU restores). */
const X_SOCKET = '@/tmp/.X11-unix/X0';
const X_LOCK = '/tmp/.X0-lock';

/** The geometry a template's marker file declares (defaults where it says nothing). */
export function markerGeometry(): AgentDesktopSession | undefined {
  if (!existsSync(DESKTOP_MARKER)) return undefined;
  let raw: Record<string, unknown> = {};
  try {
    raw = JSON.parse(readFileSync(DESKTOP_MARKER, 'utf8')) as Record<string, unknown>;
  } catch {
    log.write('warn', 'desktop marker is not JSON; using the defaults', { file: DESKTOP_MARKER });
  }
  const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isInteger(v) ? v : d);
  return {
    width: num(raw.width, DESKTOP_LIMITS.width.default),
    height: num(raw.height, DESKTOP_LIMITS.height.default),
    dpi: num(raw.dpi, DESKTOP_LIMITS.dpi.default),
  };
}

function logFd(name: string): number | 'ignore' {
  try {
    mkdirSync(DESKTOP_STATE_DIR, { recursive: true });
    return openSync(`${DESKTOP_STATE_DIR}/${name}.log`, 'a');
  } catch {
    return 'ignore';
  }
}

/** Starts a desktop program in its own process group, output to its log in the machine. */
export function startProgram(name: string, cmd: string, args: string[]): ChildProcess {
  const fd = logFd(name);
  const child = spawn(cmd, args, { env: desktopEnv(), stdio: ['ignore', fd, fd], detached: true });
  child.on('error', (err) => log.write('error', `${name} failed to start`, { error: String(err) }));
  return child;
}

function stopProgram(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Whether display :0 listens: its abstract socket is in /proc/net/unix. (libuv cannot connect to
 * an abstract name X made: it counts a trailing NUL into the address.) A client that connects
 * before the server dispatches waits in the backlog.
 */
async function xListens(): Promise<boolean> {
  const table = await readFile('/proc/net/unix', 'utf8').catch(() => '');
  return table.split('\n').some((line) => line.endsWith(` ${X_SOCKET}`));
}

/**
 * The machine's X session: Xvfb on display :0 (abstract socket only, no TCP) and openbox. Started
 * at the agent's start when the template has a desktop, restarted at another size when a create
 * asks for one. Its processes are the agent's children, so a checkpoint takes them along.
 */
export class DesktopSession {
  private xvfb: ChildProcess | undefined;
  private wm: ChildProcess | undefined;
  private current: AgentDesktopSession | undefined;
  private starting: Promise<AgentDesktopSession> | undefined;
  /** Counts the display's starts: what was set up on an X server (its keyboard map) is gone after. */
  generation = 0;

  get geometry(): AgentDesktopSession | undefined {
    return this.running() ? this.current : undefined;
  }

  private running(): boolean {
    return this.xvfb !== undefined && this.xvfb.exitCode === null && this.xvfb.signalCode === null;
  }

  /** The size a create asked for (kept to start the display again at it if it ended). */
  private wanted: AgentDesktopSession | undefined;

  /** The running session, started (at the size asked for, else the template's) if it is not running. */
  async ready(): Promise<AgentDesktopSession> {
    if (this.starting) return this.starting;
    if (this.running() && this.current) return this.current;
    const marker = markerGeometry();
    if (!marker) throw desktopUnavailable('this machine');
    return this.start(this.wanted ?? marker);
  }

  /** The session at this size: kept when it already is, else (re)started. */
  async configure(g: AgentDesktopSession): Promise<AgentDesktopSession> {
    if (!markerGeometry()) throw desktopUnavailable('this machine');
    this.wanted = g;
    if (this.starting) await this.starting.catch(() => undefined);
    const c = this.current;
    if (this.running() && c && c.width === g.width && c.height === g.height && c.dpi === g.dpi) return c;
    return this.start(g);
  }

  private start(g: AgentDesktopSession): Promise<AgentDesktopSession> {
    this.starting = this.restart(g).finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async restart(g: AgentDesktopSession): Promise<AgentDesktopSession> {
    await stopProgram(this.wm);
    await stopProgram(this.xvfb);
    this.current = undefined;
    // Display :0 is ours alone: a lock file left by another boot (a template built on `desktop`
    // keeps the /tmp of its build machine) would name a pid that may well be alive here.
    rmSync(X_LOCK, { force: true });
    this.generation++;
    const xvfb = startProgram('xvfb', 'Xvfb', [':0', ...xvfbArgs(g)]);
    this.xvfb = xvfb;
    const deadline = Date.now() + 10_000;
    while (!(await xListens())) {
      if (xvfb.exitCode !== null || xvfb.signalCode !== null || Date.now() > deadline)
        throw new CodedError(
          'internal',
          `the X server did not start (see ${DESKTOP_STATE_DIR}/xvfb.log in the machine)`,
        );
      await new Promise((r) => setTimeout(r, 5));
    }
    const wm = startProgram('openbox', 'openbox', ['--sm-disable']);
    this.wm = wm;
    // Ready once the window manager announces itself: a window mapped before it manages the
    // screen would stay unmanaged (no frame, not in the window list).
    while ((await runTool('wmctrl', ['-m'])).code !== 0) {
      if (wm.exitCode !== null || wm.signalCode !== null || Date.now() > deadline)
        throw new CodedError(
          'internal',
          `the window manager did not start (see ${DESKTOP_STATE_DIR}/openbox.log in the machine)`,
        );
      await new Promise((r) => setTimeout(r, 10));
    }
    this.current = g;
    log.write('info', 'desktop started', { ...g, xvfb: xvfb.pid, openbox: this.wm.pid });
    return g;
  }
}
