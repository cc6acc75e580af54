import { rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CodedError } from '@nullspace/protocol';
import { host } from '../exec.js';

/**
 * A machine with a user namespace is checkpointed and restored by a runc (and so a CRIU) that runs
 * inside the machine's network namespace. CRIU 4.2 refuses to dump a user namespace whose tasks'
 * other namespaces it does not own ("One or more namespaces doesn't belong to the target user
 * namespace"), and on restore it makes a new user namespace from which the host-made network
 * namespace cannot be entered (`setns`: EPERM). Run from inside it, the network namespace is
 * CRIU's own: it is neither dumped nor entered, the restored tasks simply inherit it, as `runc
 * run` has them join it before it makes the user namespace. Measured: docs/research/user-namespaces.md.
 */
function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns === undefined ? argv : ['nsenter', `--net=${netns}`, ...argv];
}

export type RuncStatus = 'creating' | 'created' | 'running' | 'pausing' | 'paused' | 'stopped';

export interface RuncState {
  id: string;
  pid: number;
  status: RuncStatus;
  bundle: string;
}

/**
 * Thin wrapper over the `runc` CLI (an OCI runtime: namespaces, cgroups v1 and v2, capabilities,
 * seccomp, devices, and CRIU checkpoint/restore). Its state directory (`--root`) is ours alone, so
 * `list` shows exactly our containers, and it survives a server restart, which is how machines are
 * re-adopted.
 */
export class Runc {
  constructor(
    readonly root: string,
    readonly binary = 'runc',
  ) {}

  /** Starts the container detached and resolves once its init process runs. */
  run(id: string, bundle: string, o: { nice?: number } = {}): Promise<void> {
    return this.detached(id, bundle, ['run', '--detach', '--bundle', bundle, id], 30_000, undefined, o.nice);
  }

  /**
   * Restores a checkpointed container (CRIU) from `imageDir` as container `id` of `bundle`: the
   * bundle's config.json decides its root filesystem, bind-mount sources, network namespace and
   * cgroups, so one image restored into several bundles gives independent copies (fork).
   */
  restore(
    id: string,
    bundle: string,
    imageDir: string,
    workDir: string,
    opts: {
      timeoutMs: number;
      tcpEstablished: boolean;
      onSpawn?: (pid: number) => void;
      nice?: number;
      /** Where runc writes the restored init's host pid (saves a `runc state` afterwards). */
      pidFile?: string;
      /** Runs runc and CRIU in this network namespace (see inNetns). */
      netns?: string;
    },
  ): Promise<void> {
    const args = ['restore', '--detach', '--image-path', imageDir, '--work-path', workDir];
    if (opts.tcpEstablished) args.push('--tcp-established');
    if (opts.pidFile) args.push('--pid-file', opts.pidFile);
    args.push('--bundle', bundle, id);
    return this.detached(id, bundle, args, opts.timeoutMs, opts.onSpawn, opts.nice, opts.netns);
  }

  /**
   * Checkpoints the container with CRIU into `imageDir`. Without `leaveRunning` its processes end
   * after a successful dump and runc removes the container; on failure CRIU lets them run on.
   * A paused container stays paused with `leaveRunning`.
   */
  async checkpoint(
    id: string,
    imageDir: string,
    workDir: string,
    opts: {
      leaveRunning: boolean;
      timeoutMs: number;
      onSpawn?: (pid: number) => void;
      /** Runs runc and CRIU in this network namespace (see inNetns). */
      netns?: string;
    },
  ): Promise<void> {
    // Open TCP connections are dumped in repair mode rather than failing the checkpoint; a restore
    // brings them back closed in a machine with a user namespace, and in a fork (see RuncDriver).
    const args = [
      '--root',
      this.root,
      'checkpoint',
      '--tcp-established',
      '--image-path',
      imageDir,
      '--work-path',
      workDir,
    ];
    if (opts.leaveRunning) args.push('--leave-running');
    args.push(id);
    const [file, ...argv] = inNetns(opts.netns, [this.binary, ...args]);
    await host(file as string, argv, {
      timeoutMs: opts.timeoutMs,
      killGroup: true,
      ...(opts.onSpawn ? { onSpawn: opts.onSpawn } : {}),
    });
  }

  /**
   * Runs a runc command that leaves a container behind (run, restore). All stdio is /dev/null: in
   * detached mode the container inherits runc's stdio, and it must hold no pipe to this server (it
   * would outlive us, and CRIU could not checkpoint it). runc's own errors go to a log file in the
   * bundle instead.
   */
  private detached(
    id: string,
    bundle: string,
    command: string[],
    timeoutMs: number,
    onSpawn?: (pid: number) => void,
    /** runc, and so the container's processes, at this niceness (see cgroups/cpu-weight.ts). */
    nice?: number,
    netns?: string,
  ): Promise<void> {
    const logFile = join(bundle, 'runc.log');
    rmSync(logFile, { force: true }); // its error lines are read back on failure: this run's only
    const argv = inNetns(netns, [
      this.binary,
      '--root',
      this.root,
      '--log',
      logFile,
      '--log-format',
      'json',
      ...command,
    ]);
    const [file, ...args] = nice === undefined ? argv : ['nice', '-n', String(nice), ...argv];
    // Its own process group, so a timeout ends runc and the CRIU it started together.
    return host(file as string, args, {
      timeoutMs,
      killGroup: true,
      noStdio: true,
      ...(onSpawn ? { onSpawn } : {}),
    }).then(
      () => undefined,
      async (err: unknown) => {
        const text = await readFile(logFile, 'utf8').catch(() => '');
        const messages = text
          .split('\n')
          .filter((l) => l.includes('"level":"error"') || l.includes('"level":"fatal"'))
          .map((l) => {
            try {
              return String((JSON.parse(l) as { msg?: unknown }).msg);
            } catch {
              return l;
            }
          });
        const said = /timed out/.test(String((err as Error).message)) ? 'killed by SIGKILL (timed out?)' : '';
        const why = messages.join('; ') || said || String((err as Error).message);
        throw new CodedError('internal', `runc ${command[0]} ${id}: ${why}`, { stderr: why }, { cause: err });
      },
    );
  }

  async state(id: string): Promise<RuncState | undefined> {
    try {
      const { stdout } = await host(this.binary, ['--root', this.root, 'state', id]);
      const s = JSON.parse(stdout) as { id: string; pid: number; status: RuncStatus; bundle: string };
      return { id: s.id, pid: s.pid, status: s.status, bundle: s.bundle };
    } catch (err) {
      if (err instanceof CodedError && /does not exist|not exist/.test(String(err.details?.stderr)))
        return undefined;
      throw err;
    }
  }

  async list(): Promise<RuncState[]> {
    const { stdout } = await host(this.binary, ['--root', this.root, 'list', '--format', 'json']);
    const rows = (JSON.parse(stdout || 'null') as RuncState[] | null) ?? [];
    return rows.map((s) => ({ id: s.id, pid: s.pid, status: s.status, bundle: s.bundle }));
  }
}
