/**
 * The conformance suite every machine driver must pass: the runtime's spec (see
 * packages/runtime/src/driver.ts). A driver registers in driver-conformance.test.ts with a fixture;
 * a test it cannot pass is skipped there by name, with the reason.
 *
 * Every member of MachineDriver is covered: the driver the tests use is wrapped in a recording
 * proxy, COVERAGE names each member's test (`satisfies` makes a new member a compile error until
 * it is listed), and the last test fails if a member was never used. After each test, whatever
 * machine it made is destroyed and the fixture's inventory must show nothing of it left.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { newId } from '@nullspace/protocol';
import {
  AgentClient,
  type CpuPriority,
  type DriverMachineSpec,
  type DriverVolumeMount,
  type MachineDriver,
  claimBlock,
  host,
  hostIfOf,
  linkFor,
  parsePool,
  releaseBlock,
} from '@nullspace/runtime';
import {
  HTTP_PORT,
  PUBLIC_A,
  PUBLIC_B,
  type StandInInternet,
  startStandInInternet,
} from './stand-in-internet.js';

export interface DriverFixture {
  /**
   * A new driver instance on the fixture's directories. The suite makes one at the start and
   * another to re-adopt machines, as a server restarted after a crash does.
   */
  newDriver(): MachineDriver;
  templateRootfs: string;
  /** An empty directory for images, exports and volumes; removed by cleanup. */
  workDir: string;
  /** What of the machine is still on the host besides files: processes, mounts, namespaces, cgroups … */
  leftovers(id: string): Promise<string[]>;
  /** Files the driver keeps for the machine (a hibernated machine's disk). */
  files(id: string): Promise<string[]>;
  /** Kills every process of the machine from outside, as the host's OOM killer or a crash would. */
  crash(id: string): Promise<void>;
  /** The CPU priority the host gives the machine now. */
  cpuPriority(id: string): Promise<CpuPriority>;
  /** A host volume (a directory holding its own filesystem) machines can mount. */
  makeVolume(): Promise<{ root: string; remove(): Promise<void> }>;
  cleanup(): Promise<void>;
}

/** The suite's tests, by the name a driver's skip list uses. */
const TESTS = {
  lifecycle: 'creates a machine whose agent runs commands, then destroys it without a trace, twice',
  failedCreate: 'cleans up after a create that fails half-way, leaving alone what is not its own',
  pause:
    'pauses (the agent stops answering) and unpauses, both idempotent; destroys a paused machine; terminates a paused machine, then destroys it',
  usage: 'reports usage and changes CPU priority',
  egress: 'puts egress policies in force against a stand-in internet, and blocks egress',
  preparedNetwork:
    'creates machines on networks made ahead (waiting for one still being made; with the policy it was made with, and with another), and destroys an unused one without a trace',
  volumes: 'attaches, checks, detaches and remounts a volume',
  hibernate:
    'hibernates to an image (nothing left but files, even beside a copy of its mounts elsewhere) and restores with a process and its memory intact',
  snapshot: 'snapshots a running and a paused machine and starts two independent machines from one snapshot',
  exportChanges: "exports a machine's changes (files and whiteouts), leaving it as it was",
  settle: 'settles: leaves a running or hibernated machine as it is when nothing was in progress',
  crash: 'reports a machine whose processes died as stopped, and destroys it, twice',
  readopt: 'after a crash of its owner, a new driver finds the machine running, drives it and destroys it',
} as const;
type TestName = keyof typeof TESTS;

/** Which test covers each member of the driver interface. */
const COVERAGE = {
  name: 'lifecycle',
  init: 'lifecycle',
  create: 'lifecycle',
  prepareNetwork: 'preparedNetwork',
  destroy: 'lifecycle',
  terminate: 'pause',
  inspect: 'lifecycle',
  list: 'lifecycle',
  agentSocketPath: 'lifecycle',
  pause: 'pause',
  unpause: 'pause',
  usage: 'usage',
  setCpuPriority: 'usage',
  setEgress: 'egress',
  blockEgress: 'egress',
  attachVolume: 'volumes',
  detachVolume: 'volumes',
  volumeHealth: 'volumes',
  remountVolume: 'volumes',
  hibernate: 'hibernate',
  restore: 'hibernate',
  isImageComplete: 'hibernate',
  drainReleases: 'hibernate',
  snapshot: 'snapshot',
  createFromSnapshot: 'snapshot',
  exportChanges: 'exportChanges',
  settle: 'settle',
} as const satisfies Record<keyof MachineDriver, TestName>;

const CHECKPOINT_TIMEOUT_MS = 120_000;
/** Rounds of use → drain → pause → snapshot (a flake of 1 in a few dozen is caught in most runs). */
const PAUSED_SNAPSHOT_ROUNDS = 12;

/**
 * Wraps a driver so that every member used through it is noted in `used`. Calls go to the driver
 * itself (`this` is the driver, not the proxy).
 */
function recording(driver: MachineDriver, used: Set<string>): MachineDriver {
  return new Proxy(driver, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof prop !== 'string' || !(prop in COVERAGE)) return value;
      used.add(prop);
      return typeof value === 'function'
        ? (...args: unknown[]) => (value as (...a: unknown[]) => unknown).apply(target, args)
        : value;
    },
  });
}

/**
 * Registers the suite for one driver. `skip`: the whole suite, with the reason (throws in CI);
 * `skips`: single tests the driver cannot pass, each with its reason.
 */
export function driverConformance(
  name: string,
  make: () => Promise<DriverFixture>,
  o: { skip?: string | undefined; skips?: Partial<Record<TestName, string>> } = {},
): void {
  const skips = o.skips ?? {};
  describe(`driver conformance: ${name}`, { skip: o.skip }, () => {
    let f: DriverFixture;
    let driver: MachineDriver;
    const used = new Set<string>();
    /** Machines the current test made; destroyed and checked after it. */
    let made: string[] = [];
    // A pool of its own (a server's default pool may be in use on this host at the same time),
    // and in it only blocks this run claims host-wide whose interface does not exist: another
    // session's run of this suite, or its servers, may hold blocks of the same pool.
    const pool = parsePool('10.214.0.0/16');
    let nextBlock = 0;
    const claimed: { index: number; owner: string }[] = [];
    const freeBlock = (id: string): number => {
      const owner = join(f.workDir, 'address-blocks', id);
      for (; nextBlock < pool.size; nextBlock++) {
        if (existsSync(`/sys/class/net/${hostIfOf(pool, nextBlock)}`)) continue;
        if (!claimBlock(pool, nextBlock, owner)) continue;
        claimed.push({ index: nextBlock, owner });
        return nextBlock++;
      }
      throw new Error(`no free block in ${pool.cidr}`);
    };
    const spec = (overrides: Partial<DriverMachineSpec> = {}): DriverMachineSpec => {
      const id = overrides.id ?? newId('machine');
      made.push(id);
      return {
        id,
        templateRootfs: f.templateRootfs,
        vcpus: 1,
        memoryMb: 256,
        diskMb: 512,
        cwd: '/workspace',
        network: {
          link: linkFor(pool, freeBlock(id), id),
          egress: { mode: 'deny_all', allow_cidrs: [], deny_cidrs: [], locked: false },
        },
        ...overrides,
      };
    };
    const test = (key: TestName, fn: () => Promise<void>) =>
      it(TESTS[key], skips[key] ? { skip: skips[key] } : {}, fn);

    /** Runs a shell command in the machine through its agent; resolves with its result. */
    async function sh(id: string, cmd: string, timeoutMs = 30_000) {
      const agent = new AgentClient(driver.agentSocketPath(id));
      try {
        return await agent.run({
          cmd,
          args: [],
          shell: true,
          cwd: '/workspace',
          envs: {},
          timeout_ms: timeoutMs,
          background: false,
          stream: false,
          encoding: 'utf8',
        });
      } finally {
        agent.close();
      }
    }
    /** stdout of a command that must succeed. */
    async function out(id: string, cmd: string): Promise<string> {
      const r = await sh(id, cmd);
      assert.equal(r.exit_code, 0, `${cmd}: ${r.stderr}`);
      return r.stdout;
    }
    /** Before a checkpoint: no connection to the agent may be open (see AgentClient.drain). */
    async function quiesce(id: string): Promise<void> {
      const agent = new AgentClient(driver.agentSocketPath(id));
      try {
        await agent.drain();
      } finally {
        agent.close();
      }
    }
    /**
     * Starts a process that keeps `secret` only in its memory and writes it to /workspace/secret
     * on SIGUSR1; returns its pid in the machine.
     */
    async function startMemoryHolder(id: string, secret: string): Promise<number> {
      const pid = await out(
        id,
        `setsid bash -c 'trap "echo \\$0 > /workspace/secret" USR1; while :; do sleep 0.1; done' ${secret} </dev/null >/dev/null 2>&1 & echo $!`,
      );
      return Number(pid.trim());
    }
    /** Asks the memory holder for its secret; resolves with what it wrote. */
    async function askMemoryHolder(id: string, pid: number): Promise<string> {
      await out(id, `rm -f /workspace/secret; kill -USR1 ${pid}`);
      for (let i = 0; i < 100; i++) {
        const r = await sh(id, 'cat /workspace/secret 2>/dev/null');
        if (r.exit_code === 0 && r.stdout) return r.stdout.trim();
        await sleep(50);
      }
      throw new Error(`process ${pid} in ${id} did not answer SIGUSR1`);
    }
    async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
      for (let i = 0; i < 200; i++) {
        if (await check()) return;
        await sleep(25);
      }
      throw new Error(`gave up waiting for ${what}`);
    }
    const image = (label: string) => join(mkdtempSync(join(f.workDir, `${label}-`)), 'image');

    before(async () => {
      f = await make();
      driver = recording(f.newDriver(), used);
      await driver.init();
    });
    afterEach(async () => {
      const ids = made;
      made = [];
      for (const id of ids) await driver.destroy(id).catch(() => undefined);
      for (const id of ids) {
        assert.deepEqual(await f.leftovers(id), [], `${id}: left on the host`);
        assert.deepEqual(await f.files(id), [], `${id}: files left`);
      }
    });
    after(async () => {
      for (const c of claimed) releaseBlock(pool, c.index, c.owner);
      await f?.cleanup();
    });

    test('lifecycle', async () => {
      assert.ok(driver.name.length > 0);
      const s = spec();
      await driver.create(s);
      assert.equal(await driver.inspect(s.id), 'running');
      assert.ok((await driver.list()).includes(s.id));
      const agent = new AgentClient(driver.agentSocketPath(s.id));
      try {
        assert.equal((await agent.health()).ok, true);
        const r = await agent.run({
          cmd: 'echo $CONFORMANCE; pwd; hostname',
          args: [],
          shell: true,
          cwd: '/workspace',
          envs: { CONFORMANCE: 'yes' },
          timeout_ms: 10_000,
          background: false,
          stream: false,
          encoding: 'utf8',
        });
        assert.equal(r.stdout, `yes\n/workspace\n${s.id.replace('_', '-')}\n`);
      } finally {
        agent.close();
      }
      assert.match(await out(s.id, 'cat /proc/1/cmdline'), /init/, 'pid 1 is the machine init');
      await driver.destroy(s.id);
      assert.equal(await driver.inspect(s.id), 'missing');
      assert.deepEqual(await f.leftovers(s.id), []);
      assert.deepEqual(await f.files(s.id), []);
      assert.ok(!(await driver.list()).includes(s.id));
      await driver.destroy(s.id); // idempotent
      assert.deepEqual(await f.leftovers(s.id), []);
    });

    test('failedCreate', async () => {
      const s = spec({ templateRootfs: '/nonexistent/rootfs' });
      await assert.rejects(driver.create(s));
      assert.equal(await driver.inspect(s.id), 'missing');
      assert.deepEqual(await f.leftovers(s.id), []);
      assert.deepEqual(await f.files(s.id), []);
      assert.ok(!(await driver.list()).includes(s.id));
      // Its host interface's name taken (by another server's machine on the same pool): the create
      // fails, and its cleanup leaves that interface alone.
      const taken = spec();
      await host('ip', [
        'link',
        'add',
        taken.network.link.hostIf,
        'type',
        'veth',
        'peer',
        'name',
        `${taken.network.link.hostIf}x`,
      ]);
      try {
        await assert.rejects(driver.create(taken));
        assert.ok(
          existsSync(`/sys/class/net/${taken.network.link.hostIf}`),
          'the other interface is still there',
        );
        assert.deepEqual(await f.leftovers(taken.id), []);
        assert.deepEqual(await f.files(taken.id), []);
      } finally {
        await host('ip', ['link', 'del', taken.network.link.hostIf]).catch(() => undefined);
      }
    });

    test('pause', async () => {
      const s = spec();
      await driver.create(s);
      await driver.pause(s.id);
      await driver.pause(s.id);
      assert.equal(await driver.inspect(s.id), 'paused');
      const agent = new AgentClient(driver.agentSocketPath(s.id));
      try {
        await assert.rejects(agent.health(500), 'a paused machine runs nothing, its agent included');
      } finally {
        agent.close();
      }
      await driver.unpause(s.id);
      await driver.unpause(s.id);
      assert.equal(await driver.inspect(s.id), 'running');
      assert.equal(await out(s.id, 'echo awake'), 'awake\n');
      // A paused machine is destroyed as it is: its processes die once thawed.
      await driver.pause(s.id);
      await driver.destroy(s.id);
      assert.equal(await driver.inspect(s.id), 'missing');
      assert.deepEqual(await f.leftovers(s.id), []);
      // Terminated while paused: its processes end (thawed to die) though nothing else is freed yet.
      const t = spec();
      await driver.create(t);
      await driver.pause(t.id);
      await driver.terminate(t.id);
      await waitFor('the terminated machine to stop', async () => (await driver.inspect(t.id)) === 'stopped');
      await driver.terminate(t.id); // idempotent
      assert.ok((await driver.list()).includes(t.id), 'a terminated machine still holds its resources');
      await driver.destroy(t.id);
      assert.equal(await driver.inspect(t.id), 'missing');
      assert.deepEqual(await f.leftovers(t.id), []);
    });

    test('usage', async () => {
      const s = spec({ cpuPriority: 'background' });
      await driver.create(s);
      assert.equal(await f.cpuPriority(s.id), 'background');
      await driver.setCpuPriority(s.id, 'normal');
      assert.equal(await f.cpuPriority(s.id), 'normal');
      const before = await driver.usage(s.id);
      // Work and traffic for the counters: CPU, 64 MiB written to disk, and packets on the link
      // (to the host's end of it, which drops them: the machine's policy is deny-all).
      await out(
        s.id,
        `dd if=/dev/zero of=/workspace/blob bs=1M count=64 status=none && sync; curl -s --connect-timeout 1 http://${s.network.link.hostAddr}:9/ || true`,
      );
      const u = await driver.usage(s.id);
      assert.equal(u.memoryLimitBytes, 256 * 1024 * 1024);
      assert.ok(u.memoryBytes > 0 && u.memoryBytes <= u.memoryLimitBytes, `memory ${u.memoryBytes}`);
      assert.ok(u.cpuSeconds > before.cpuSeconds, `cpu ${before.cpuSeconds} → ${u.cpuSeconds}`);
      assert.ok(
        u.diskTotalBytes > 400e6 && u.diskTotalBytes <= 512 * 1024 * 1024,
        `disk ${u.diskTotalBytes}`,
      );
      assert.ok(u.diskUsedBytes >= before.diskUsedBytes + 60 * 1024 * 1024, `disk used ${u.diskUsedBytes}`);
      assert.ok(u.txPackets > before.txPackets, `tx packets ${before.txPackets} → ${u.txPackets}`);
      assert.ok(u.txBytes > before.txBytes);
    });

    describe('with a stand-in internet', () => {
      let inet: StandInInternet | undefined;
      before(async () => {
        if (!skips.egress) inet = await startStandInInternet();
      });
      after(async () => {
        await inet?.teardown();
      });
      /** An HTTP GET from the machine: the status, or `blocked` (no answer) or `refused`. */
      async function reach(id: string, ip: string): Promise<string> {
        const r = await sh(
          id,
          `curl -s -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 3 http://${ip}:${HTTP_PORT}/`,
        );
        if (r.exit_code === 28) return 'blocked';
        if (r.exit_code === 7) return 'refused';
        return r.stdout.trim();
      }

      test('egress', async () => {
        const s = spec();
        await driver.create(s);
        assert.equal(await reach(s.id, PUBLIC_A), 'blocked', 'deny_all');
        const network = (egress: Partial<DriverMachineSpec['network']['egress']>) => ({
          link: s.network.link,
          egress: { ...s.network.egress, ...egress },
        });
        await driver.setEgress(s.id, network({ mode: 'allow_all' }));
        assert.equal(await reach(s.id, PUBLIC_A), '200', 'allow_all');
        await driver.setEgress(s.id, network({ mode: 'custom', allow_cidrs: [`${PUBLIC_B}/32`] }));
        assert.equal(await reach(s.id, PUBLIC_A), 'blocked', 'custom: not allowed');
        assert.equal(await reach(s.id, PUBLIC_B), '200', 'custom: allowed');
        await driver.blockEgress(s.id, network({ mode: 'custom', allow_cidrs: [`${PUBLIC_B}/32`] }));
        assert.equal(await reach(s.id, PUBLIC_B), 'blocked', 'blocked');
      });

      test('preparedNetwork', async () => {
        const allowAll: DriverMachineSpec['network']['egress'] = {
          mode: 'allow_all',
          allow_cidrs: [],
          deny_cidrs: [],
          locked: false,
        };
        // Made ahead with the policy it is created with (deny_all), the create not waited for.
        const same = spec();
        await driver.prepareNetwork(same.id, same.network);
        assert.ok((await driver.list()).includes(same.id), 'a prepared network is listed');
        assert.notDeepEqual(await f.leftovers(same.id), [], 'and seen by the inventory');
        await driver.create(same);
        assert.equal(await reach(same.id, PUBLIC_A), 'blocked', 'deny_all as made');
        const addr = await out(same.id, 'ip -o -4 addr show eth0');
        assert.match(addr, new RegExp(`inet ${same.network.link.machineAddr.replace(/\./g, '\\.')}/`));
        // Made with deny_all, created with allow_all while it is still being made.
        const other = spec();
        const preparing = driver.prepareNetwork(other.id, other.network);
        await driver.create({ ...other, network: { ...other.network, egress: allowAll } });
        await preparing;
        assert.equal(await reach(other.id, PUBLIC_A), '200', "the create's policy, not the one made with");
        // Made and never used: destroyed, nothing is left (checked after the test too).
        const unused = spec();
        await driver.prepareNetwork(unused.id, unused.network);
        await driver.destroy(unused.id);
        assert.deepEqual(await f.leftovers(unused.id), []);
        assert.ok(!(await driver.list()).includes(unused.id));
      });
    });

    test('volumes', async () => {
      const volume = await f.makeVolume();
      try {
        const s = spec();
        await driver.create(s);
        const mount: DriverVolumeMount = {
          attachmentId: newId('volumeAttachment'),
          volumeRoot: volume.root,
          subpath: null,
          mountPath: '/data',
          readOnly: false,
        };
        await driver.attachVolume(s.id, mount);
        assert.equal(await out(s.id, 'echo hello > /data/greeting && cat /data/greeting'), 'hello\n');
        assert.equal(readFileSync(join(volume.root, 'greeting'), 'utf8'), 'hello\n', 'the host sees it');
        assert.deepEqual(await driver.volumeHealth(s.id, mount), {
          healthy: true,
          reason: null,
          observed: { readOnly: false, subpath: null },
        });
        await driver.detachVolume(s.id, mount);
        await driver.detachVolume(s.id, mount); // idempotent
        const gone = await driver.volumeHealth(s.id, mount);
        assert.equal(gone.healthy, false);
        assert.equal(gone.observed, null);
        assert.equal((await sh(s.id, 'test -e /data/greeting')).exit_code, 1);
        const readOnly = { ...mount, readOnly: true };
        await driver.remountVolume(s.id, readOnly);
        assert.equal((await driver.volumeHealth(s.id, readOnly)).healthy, true);
        assert.equal((await driver.volumeHealth(s.id, mount)).healthy, false, 'mounted read-only');
        assert.equal(await out(s.id, 'cat /data/greeting'), 'hello\n');
        assert.notEqual((await sh(s.id, 'touch /data/new')).exit_code, 0, 'read-only');
        await driver.destroy(s.id);
      } finally {
        await volume.remove();
      }
    });

    test('hibernate', async () => {
      const s = spec();
      await driver.create(s);
      const secret = randomBytes(8).toString('hex');
      const pid = await startMemoryHolder(s.id, secret);
      await out(s.id, 'echo on-disk > /workspace/file');
      const dir = image('hibernate');
      // A process elsewhere on the host with a private copy of every mount of this moment (what
      // `ip netns exec`, a container start or a CRIU restore make): it must not keep anything of
      // the machine once hibernated.
      const holder = spawn('unshare', ['--mount', '--propagation', 'private', 'sleep', '600'], {
        stdio: 'ignore',
      });
      try {
        await quiesce(s.id);
        await driver.hibernate(s.id, dir, CHECKPOINT_TIMEOUT_MS);
        assert.equal(driver.isImageComplete(dir), true);
        // Its processes are gone when hibernate answers; the rest once its release has ended.
        assert.equal(await driver.inspect(s.id), 'missing');
        await driver.drainReleases?.();
        assert.deepEqual(await f.leftovers(s.id), [], 'a hibernated machine holds only files');
      } finally {
        holder.kill('SIGKILL');
      }
      assert.notDeepEqual(await f.files(s.id), [], 'its disk is kept');
      assert.ok((await driver.list()).includes(s.id));
      await driver.restore(s, dir, CHECKPOINT_TIMEOUT_MS);
      assert.equal(await driver.inspect(s.id), 'running');
      assert.equal(await askMemoryHolder(s.id, pid), secret, 'the same process, with its memory');
      assert.equal(await out(s.id, 'cat /workspace/file'), 'on-disk\n');
      assert.equal(driver.isImageComplete(join(f.workDir, 'no-such-image')), false);
    });

    test('snapshot', async () => {
      const a = spec();
      await driver.create(a);
      const secret = randomBytes(8).toString('hex');
      const pid = await startMemoryHolder(a.id, secret);
      const dir = image('snapshot');
      await quiesce(a.id);
      const { pausedMs } = await driver.snapshot(a.id, dir, CHECKPOINT_TIMEOUT_MS);
      assert.ok(pausedMs >= 0);
      console.log(`# ${name}: snapshot froze the machine for ${pausedMs} ms`);
      assert.equal(driver.isImageComplete(dir), true);
      assert.equal(await driver.inspect(a.id), 'running', 'left running');
      // Two machines from one snapshot: each its own copy of memory, disk and identity.
      const b = spec();
      const c = spec();
      await driver.createFromSnapshot(b, dir, CHECKPOINT_TIMEOUT_MS);
      await driver.createFromSnapshot(c, dir, CHECKPOINT_TIMEOUT_MS);
      for (const child of [b, c]) {
        assert.equal(await driver.inspect(child.id), 'running');
        assert.equal(await out(child.id, 'hostname'), `${child.id.replace('_', '-')}\n`);
        assert.equal(await askMemoryHolder(child.id, pid), secret, `${child.id}: the process and its memory`);
      }
      await out(b.id, 'echo only-b > /workspace/mine');
      assert.equal((await sh(c.id, 'test -e /workspace/mine')).exit_code, 1, 'c does not see b’s files');
      assert.equal((await sh(a.id, 'test -e /workspace/mine')).exit_code, 1, 'nor does a');
      assert.equal(await askMemoryHolder(a.id, pid), secret, 'a runs on');
      // A paused machine stays paused. Frozen right after the drain, as a server pauses a
      // machine a caller has just used: the drain resolves only once the agent's end of every
      // connection is closed (a freeze while it held one made CRIU fail: "Unix socket … not
      // found"; there is no second try for a paused machine), so every round goes through.
      for (let round = 0; round < PAUSED_SNAPSHOT_ROUNDS; round++) {
        assert.equal(await out(a.id, `echo ${round}`), `${round}\n`);
        await quiesce(a.id);
        await driver.pause(a.id);
        const pausedImage = image(`snapshot-paused-${round}`);
        await driver.snapshot(a.id, pausedImage, CHECKPOINT_TIMEOUT_MS);
        assert.equal(await driver.inspect(a.id), 'paused', 'left paused');
        await driver.unpause(a.id);
        rmSync(dirname(pausedImage), { recursive: true, force: true });
      }
    });

    test('exportChanges', async () => {
      const s = spec();
      await driver.create(s);
      await out(
        s.id,
        'mkdir -p /workspace/made && echo content > /workspace/made/file && rm /etc/debian_version',
      );
      const target = mkdtempSync(join(f.workDir, 'export-'));
      await driver.exportChanges(s.id, target);
      assert.equal(readFileSync(join(target, 'workspace/made/file'), 'utf8'), 'content\n');
      const whiteout = statSync(join(target, 'etc/debian_version'));
      assert.ok(whiteout.isCharacterDevice() && whiteout.rdev === 0, 'a deleted file is a whiteout');
      assert.equal(await driver.inspect(s.id), 'running', 'left running');
      await driver.pause(s.id);
      const again = mkdtempSync(join(f.workDir, 'export-'));
      await driver.exportChanges(s.id, again);
      assert.ok(readdirSync(again).includes('workspace'));
      assert.equal(await driver.inspect(s.id), 'paused', 'left paused');
    });

    test('settle', async () => {
      const running = spec();
      await driver.create(running);
      const dir = image('settle');
      await driver.settle(running.id);
      await driver.settle(running.id, dir);
      assert.equal(await driver.inspect(running.id), 'running');
      assert.equal(driver.isImageComplete(dir), false);
      assert.equal(await out(running.id, 'echo still'), 'still\n');
      const hibernated = spec();
      await driver.create(hibernated);
      const hdir = image('settle-hibernated');
      await quiesce(hibernated.id);
      await driver.hibernate(hibernated.id, hdir, CHECKPOINT_TIMEOUT_MS);
      await driver.settle(hibernated.id, hdir);
      assert.equal(driver.isImageComplete(hdir), true);
      assert.deepEqual(await f.leftovers(hibernated.id), []);
      await driver.restore(hibernated, hdir, CHECKPOINT_TIMEOUT_MS);
      assert.equal(await out(hibernated.id, 'echo back'), 'back\n');
    });

    test('crash', async () => {
      const s = spec();
      await driver.create(s);
      await f.crash(s.id);
      await waitFor('the machine to stop', async () => (await driver.inspect(s.id)) !== 'running');
      assert.equal(await driver.inspect(s.id), 'stopped');
      assert.ok((await driver.list()).includes(s.id));
      await driver.destroy(s.id);
      await driver.destroy(s.id);
      assert.equal(await driver.inspect(s.id), 'missing');
      assert.deepEqual(await f.leftovers(s.id), []);
    });

    test('readopt', async () => {
      const s = spec();
      await driver.create(s);
      await out(s.id, 'echo before > /workspace/mark');
      // Its owner is gone without a word (a server killed with SIGKILL): a new instance takes over.
      const second = recording(f.newDriver(), used);
      await second.init();
      assert.ok((await second.list()).includes(s.id));
      assert.equal(await second.inspect(s.id), 'running');
      const previous = driver;
      driver = second;
      try {
        assert.equal(await out(s.id, 'cat /workspace/mark'), 'before\n');
        await second.pause(s.id);
        assert.equal(await second.inspect(s.id), 'paused');
        await second.unpause(s.id);
        assert.ok((await second.usage(s.id)).memoryBytes > 0);
        await second.setEgress(s.id, s.network);
        await second.destroy(s.id);
      } finally {
        driver = previous;
      }
      assert.equal(await second.inspect(s.id), 'missing');
      assert.deepEqual(await f.leftovers(s.id), []);
      assert.ok(!(await second.list()).includes(s.id));
    });

    it('used every member of the driver interface', () => {
      const skipped = new Set(Object.keys(skips));
      const missing = Object.entries(COVERAGE)
        .filter(([member, test]) => !used.has(member) && !skipped.has(test))
        .map(([member]) => member);
      assert.deepEqual(missing, [], 'members no test used');
      for (const [member, test] of Object.entries(COVERAGE))
        if (skipped.has(test))
          console.log(`# ${name}: ${member} not covered: ${test} skipped (${skips[test as TestName]})`);
    });
  });
}
