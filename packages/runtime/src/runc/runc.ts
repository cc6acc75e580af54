import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CodedError } from '@nullspace/protocol';
import { host } from '../exec.js';

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
  run(id: string, bundle: string): Promise<void> {
    const logFile = join(bundle, 'runc.log');
    return new Promise((resolve, reject) => {
      // All stdio is /dev/null: in detached mode the container inherits runc's stdio, and it must
      // hold no pipe to this server (it would outlive us, and CRIU could not checkpoint it). runc's
      // own errors go to a log file in the bundle instead.
      const child = spawn(
        this.binary,
        [
          '--root',
          this.root,
          '--log',
          logFile,
          '--log-format',
          'json',
          'run',
          '--detach',
          '--bundle',
          bundle,
          id,
        ],
        { stdio: 'ignore' },
      );
      child.on('error', reject);
      child.on('exit', (code) => {
        if (code === 0) {
          resolve();
          return;
        }
        readFile(logFile, 'utf8')
          .catch(() => '')
          .then((text) => {
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
            const why = messages.join('; ') || `exit ${code}`;
            reject(new CodedError('internal', `runc run ${id}: ${why}`, { stderr: why }));
          });
      });
    });
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

  /** Kills every process of the container and removes it (and its cgroups). Idempotent. */
  async destroy(id: string): Promise<void> {
    try {
      await host(this.binary, ['--root', this.root, 'delete', '--force', id], { timeoutMs: 30_000 });
    } catch (err) {
      if (err instanceof CodedError && /does not exist|not exist/.test(String(err.details?.stderr))) return;
      throw err;
    }
  }
}
