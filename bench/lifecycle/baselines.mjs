/**
 * The raw building blocks the lifecycle bench measures beside the server: the cgroup v1 freezer on
 * a plain process, and criu dump/restore of a plain host process holding the same ballast.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { rssBytes, sh, waitGone } from '../lib.mjs';
import { ballastPython, waitRss } from './ballast.mjs';
import { MARK, S } from './state.mjs';

export const FREEZER_ROOT = '/sys/fs/cgroup/freezer';
export const CRIU = '/usr/local/sbin/criu';

async function dirBytes(dir) {
  return Number((await sh('du', ['-sb', dir])).split(/\s/)[0]);
}

/** A plain `sleep` in our own freezer cgroup (v1). */
export async function makeFreezerBaseline() {
  if (!existsSync(FREEZER_ROOT)) return undefined;
  S.freezerDir = join(FREEZER_ROOT, `nullspace-bench-${process.pid}`);
  await mkdir(S.freezerDir);
  // The mark (for the leak check) as its argv[0]: GNU sleep refuses any other argument that is
  // not a number, and exited at once when the mark was one.
  const child = spawn('/bin/sleep', ['1000000'], { stdio: 'ignore', argv0: `sleep-${MARK}` });
  S.children.add(child);
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  writeFileSync(join(S.freezerDir, 'cgroup.procs'), String(child.pid));
  const state = join(S.freezerDir, 'freezer.state');
  /** Writes `to` and reads freezer.state until it says so (as runc does); ms. */
  const transition = (to) => {
    const t0 = performance.now();
    writeFileSync(state, to);
    for (let i = 0; readFileSync(state, 'utf8').trim() !== to; i++) {
      if (i > 1_000_000) throw new Error(`freezer.state never reached ${to}`);
    }
    return performance.now() - t0;
  };
  return { freeze: () => transition('FROZEN'), thaw: () => transition('THAWED') };
}

/** Mount points a plain process and CRIU need; every other one goes from the baseline's own namespace. */
const KEPT_MOUNTS = ['/', '/proc', '/sys', '/dev', '/dev/pts', '/dev/shm', '/tmp', '/run'];

/**
 * A mount namespace with only KEPT_MOUNTS, held by a `sleep` (returned; a child of ours): CRIU reads
 * the mount table of the namespace it runs in at every dump, about 0.2 ms a mount, and a host
 * shared with other servers' machines holds thousands (2,997 measured here: 0.5 s of a 0.7 s dump
 * of 100 MiB), which a machine's CRIU does not read. Run in this namespace, the baseline's
 * process and CRIU see a table the size of a quiet host's.
 */
async function ownMountNamespace() {
  // One umount for them all (one each took seconds for thousands); deepest first.
  const keep = KEPT_MOUNTS.map((m) => `-e ${m}`).join(' ');
  const script =
    `awk '{print $5}' /proc/self/mountinfo | sort -ru | grep -vxF ${keep} | xargs -r umount -l 2>/dev/null; ` +
    'exec sleep 1000000';
  const holder = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
    stdio: 'ignore',
  });
  S.children.add(holder);
  await new Promise((resolve, reject) => {
    holder.once('spawn', resolve);
    holder.once('error', reject);
  });
  // Ready once the sleep runs (the unmounts are done).
  for (let i = 0; !readFileSync(`/proc/${holder.pid}/cmdline`, 'utf8').startsWith('sleep'); i++) {
    if (i > 6000) throw new Error('the baseline mount namespace did not come up in 60 s');
    await new Promise((r) => setTimeout(r, 10));
  }
  return holder.pid;
}

/**
 * A plain host python holding the same 100 MiB (setsid, stdio /dev/null), dumped and restored with
 * criu as it is: `dump` kills it, `restore -d` brings it back under the same pid. `ownMounts`: the
 * python and every criu run in a mount namespace of their own with a quiet host's few mounts (see
 * ownMountNamespace); else in the host's.
 */
export async function makeCriuBaseline({ ownMounts = false } = {}) {
  const tag = `${MARK}-host${ownMounts ? '-own-mounts' : ''}`;
  const holder = ownMounts ? await ownMountNamespace() : undefined;
  const inNs = (argv) =>
    holder === undefined ? argv : ['nsenter', `--mount=/proc/${holder}/ns/mnt`, ...argv];
  // Its stdio opened in the namespace it runs in (CRIU looks a file up by its mount).
  const [pyFile, ...pyArgs] = inNs([
    'sh',
    '-c',
    'exec "$0" "$@" </dev/null >/dev/null 2>&1',
    '/usr/bin/python3',
    '-c',
    ballastPython(tag),
  ]);
  const child = spawn(pyFile, pyArgs, { stdio: 'ignore', detached: true });
  // Tracked by pid (with its tag checked before a kill): after a restore the same pid is no longer
  // node's child.
  S.restoredPids.add(child.pid);
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid;
  const rss = await waitRss(() => [pid], 'host ballast');
  let n = 0;
  const imagesDir = () => join(S.tmp, 'criu', String(n));
  const criu = async (args, dir, log) => {
    const [file, ...argv] = inNs([CRIU, ...args, '-D', dir, '-o', log]);
    try {
      await sh(file, argv, { timeoutMs: 60_000 });
    } catch (err) {
      const text = await readFile(join(dir, log), 'utf8').catch(() => '');
      const errors = text
        .split('\n')
        .filter((l) => /Error|error/.test(l))
        .slice(0, 3)
        .join(' | ');
      throw new Error(`${err.message}${errors ? `: ${errors}` : ''}`);
    }
  };
  return {
    pid,
    rss,
    /** Mount points in the namespace the process and CRIU run in. */
    mounts: readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n').length,
    /** `criu dump` (the process ends) then `criu restore -d`; ms each, and the image size. */
    async dumpRestore() {
      n++;
      const dir = imagesDir();
      await mkdir(dir, { recursive: true });
      const t0 = performance.now();
      await criu(['dump', '-t', String(pid)], dir, 'dump.log');
      const t1 = performance.now();
      // criu restores the same pid: it must be free (node reaps its child, pid 1 a restored one).
      await waitGone(pid, { free: true });
      const bytes = await dirBytes(dir);
      const t2 = performance.now();
      await criu(['restore', '-d', '--pidfile', join(dir, 'restore.pid')], dir, 'restore.log');
      const t3 = performance.now();
      const restored = Number(readFileSync(join(dir, 'restore.pid'), 'utf8').trim());
      S.restoredPids.add(restored);
      if (restored !== pid) throw new Error(`criu restored pid ${restored}, expected ${pid}`);
      await rm(dir, { recursive: true, force: true });
      return { dump: t1 - t0, restore: t3 - t2, bytes };
    },
    /** `criu dump --leave-running`: the process is frozen for about this long; ms. */
    async dumpLeaveRunning() {
      n++;
      const dir = imagesDir();
      await mkdir(dir, { recursive: true });
      const t0 = performance.now();
      await criu(['dump', '--leave-running', '-t', String(pid)], dir, 'dump.log');
      const ms = performance.now() - t0;
      await rm(dir, { recursive: true, force: true });
      return ms;
    },
    residentNow: () => rssBytes(pid),
  };
}
