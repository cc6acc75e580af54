import { existsSync, readFileSync, realpathSync } from 'node:fs';
import {
  constants,
  type FileHandle,
  access,
  mkdir,
  open,
  readFile,
  readdir,
  rm,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AGENT_PATHS, CodedError } from '@nullspace/protocol';
import { AgentClient } from './agent-client.js';
import type { DriverMachineSpec, DriverMachineState, MachineDriver } from './driver.js';
import { host, hostPlan } from './exec.js';
import { createNetnsSteps, deleteNetns, netnsName, netnsPath } from './netns/netns.js';
import { buildMachineOciSpec } from './oci/spec.js';
import { mountOverlaySteps, unmountOverlay } from './rootfs/overlay.js';
import { Runc } from './runc/runc.js';
import { DiskImage } from './storage/disk-image.js';

export interface RuncDriverOptions {
  /** Directory for machines' bundles, disks and sockets, e.g. `<data dir>/machines`. */
  machinesDir: string;
  /** runc's own state directory, e.g. `<data dir>/runc`. */
  runcRoot: string;
  /** Host directory with the bundled agent (`agent.mjs`). */
  agentHomeDir: string;
  /** Node.js binary the agent runs on (the server's own by default). */
  nodeBinary?: string;
  /** Statically linked init (tini) that is pid 1 in every machine. */
  initBinary?: string;
  /** cgroup parent for machines, `<parent>/<machine id>` in every hierarchy. */
  cgroupParent?: string;
  pidsLimit?: number;
  /** How long create waits for the agent to answer. */
  agentReadyTimeoutMs?: number;
}

const AGENT_LOG = 'agent.log';

/**
 * Machines as OCI containers run by runc. Per machine, each with one owner here:
 *   - `<machinesDir>/<id>/disk.img` + `disk/`: the writable disk (DiskImage)
 *   - `<machinesDir>/<id>/rootfs`: overlay of the template and the disk's upper dir
 *   - `/run/netns/ns-<id>`: the network namespace (loopback only for now)
 *   - cgroups `<cgroupParent>/<id>` in every hierarchy: created and removed by runc
 *   - `<machinesDir>/<id>/run/agent.sock`: the agent's socket, bind-mounted into the machine
 * `destroy` tears all of it down in reverse order and tolerates any part being already gone.
 */
export class RuncDriver implements MachineDriver {
  readonly name = 'runc';
  private readonly runc: Runc;
  private readonly nodeBinary: string;
  private readonly initBinary: string;
  private readonly cgroupParent: string;
  private readonly pidsLimit: number;
  private readonly readyTimeoutMs: number;
  private nofileLimit = 16_384;

  constructor(private readonly o: RuncDriverOptions) {
    this.runc = new Runc(o.runcRoot);
    this.nodeBinary = o.nodeBinary ?? realpathSync(process.execPath);
    this.initBinary = o.initBinary ?? '/usr/bin/tini-static';
    this.cgroupParent = o.cgroupParent ?? '/nullspace';
    this.pidsLimit = o.pidsLimit ?? 4096;
    this.readyTimeoutMs = o.agentReadyTimeoutMs ?? 20_000;
  }

  async init(): Promise<void> {
    if (process.getuid?.() !== 0) throw new CodedError('internal', 'the runc driver needs root');
    const filesystems = await readFile('/proc/filesystems', 'utf8');
    for (const fs of ['overlay', 'xfs']) {
      if (!new RegExp(`\\s${fs}\\n`).test(filesystems))
        throw new CodedError('internal', `kernel lacks the ${fs} filesystem, which machines need`);
    }
    for (const tool of ['runc', 'mkfs.xfs', 'ip', 'mount', 'umount', 'truncate']) {
      await host('sh', ['-c', `command -v ${tool}`]).catch(() => {
        throw new CodedError('internal', `${tool} is not installed; run scripts/setup.sh`);
      });
    }
    for (const f of [this.initBinary, this.nodeBinary, join(this.o.agentHomeDir, 'agent.mjs')]) {
      await access(f, constants.R_OK).catch(() => {
        throw new CodedError('internal', `${f} is missing; run scripts/setup.sh (and npm run build)`);
      });
    }
    await mkdir(this.o.machinesDir, { recursive: true });
    await mkdir(this.o.runcRoot, { recursive: true });
    const limits = readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+\d+\s+(\d+)/);
    if (limits?.[1]) this.nofileLimit = Math.min(Number(limits[1]), 65_536);
  }

  agentSocketPath(id: string): string {
    return join(this.dir(id), 'run', AGENT_PATHS.socketName);
  }

  async create(spec: DriverMachineSpec): Promise<void> {
    const dir = this.dir(spec.id);
    try {
      await mkdir(join(dir, 'run'), { recursive: true });
      const disk = new DiskImage(dir);
      const nsName = netnsName(spec.id);
      const netns = netnsPath(nsName);
      const rootfs = join(dir, 'rootfs');
      // One batch of host commands: the network namespace is made while the disk is formatted,
      // then the overlay goes on top of the disk.
      await hostPlan(
        [
          [
            ...disk.createSteps(spec.diskMb),
            ...mountOverlaySteps({
              lower: spec.templateRootfs,
              upper: disk.upper,
              work: disk.work,
              target: rootfs,
            }),
          ],
          createNetnsSteps(nsName),
        ],
        { timeoutMs: 120_000 },
      );
      const config = buildMachineOciSpec({
        machineId: spec.id,
        hostname: spec.id.replace('_', '-'),
        rootfs,
        netnsPath: netns,
        cgroupsPath: `${this.cgroupParent}/${spec.id}`,
        vcpus: spec.vcpus,
        memoryMb: spec.memoryMb,
        pidsLimit: this.pidsLimit,
        agent: {
          nodeBinary: this.nodeBinary,
          initBinary: this.initBinary,
          homeDir: this.o.agentHomeDir,
          runDir: join(dir, 'run'),
        },
        paths: AGENT_PATHS,
        agentArgs: [
          // A small young generation keeps the idle agent's memory down; it handles little data.
          '--max-semi-space-size=1',
          `${AGENT_PATHS.homeDir}/agent.mjs`,
          '--socket',
          `${AGENT_PATHS.runDir}/${AGENT_PATHS.socketName}`,
          '--log',
          `${AGENT_PATHS.runDir}/${AGENT_LOG}`,
          '--cwd',
          spec.cwd,
        ],
        nofileLimit: this.nofileLimit,
      });
      await writeFile(join(dir, 'config.json'), JSON.stringify(config));
      await this.runc.run(spec.id, dir);
      await this.waitForAgent(spec.id);
    } catch (err) {
      await this.destroy(spec.id).catch(() => undefined);
      throw err;
    }
  }

  async destroy(id: string): Promise<void> {
    const dir = this.dir(id);
    await this.runc.destroy(id);
    await unmountOverlay(join(dir, 'rootfs'));
    await new DiskImage(dir).destroy();
    await deleteNetns(netnsName(id));
    await rm(dir, { recursive: true, force: true });
  }

  async inspect(id: string): Promise<DriverMachineState> {
    const state = await this.runc.state(id);
    if (!state) return 'missing';
    if (state.status === 'running') return 'running';
    if (state.status === 'paused' || state.status === 'pausing') return 'paused';
    return 'stopped';
  }

  async list(): Promise<string[]> {
    const ids = new Set<string>((await this.runc.list()).map((s) => s.id));
    if (existsSync(this.o.machinesDir)) for (const id of await readdir(this.o.machinesDir)) ids.add(id);
    return [...ids];
  }

  private dir(id: string): string {
    return join(this.o.machinesDir, id);
  }

  private async waitForAgent(id: string): Promise<void> {
    const socket = this.agentSocketPath(id);
    const client = new AgentClient(socket);
    const deadline = Date.now() + this.readyTimeoutMs;
    // Node needs ~100 ms to start here, so poll the socket's appearance cheaply and often; asking
    // runc whether the machine died costs a process spawn, so do that rarely.
    let nextLivenessCheck = Date.now() + 250;
    try {
      while (Date.now() < deadline) {
        if (existsSync(socket)) {
          try {
            await client.health(1000);
            return;
          } catch {
            // bound but not accepting yet
          }
        }
        if (Date.now() > nextLivenessCheck) {
          if ((await this.inspect(id)) !== 'running') break;
          nextLivenessCheck = Date.now() + 250;
        }
        await sleep(2);
      }
    } finally {
      client.close();
    }
    const tail = await readMachineFileTail(join(this.dir(id), 'run', AGENT_LOG), 2048);
    const lastLines = tail.trim().split('\n').slice(-3).join(' | ').slice(-500) || 'no log';
    throw new CodedError('internal', `machine ${id}: agent did not start: ${lastLines}`, {
      // What the machine itself wrote; safe to show to its owner (unlike host tool output).
      public_reason: `agent did not start: ${lastLines}`,
    });
  }
}

/**
 * Reads the end of a file the machine can write to, without following a symlink it may have put
 * there (which could point at any host file) and without blocking on a FIFO.
 */
async function readMachineFileTail(path: string, maxBytes: number): Promise<string> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = await handle.stat();
    if (!st.isFile()) return '';
    const length = Math.min(st.size, maxBytes);
    const buf = Buffer.alloc(length);
    await handle.read(buf, 0, length, st.size - length);
    return buf.toString('utf8');
  } catch {
    return '';
  } finally {
    await handle?.close();
  }
}
