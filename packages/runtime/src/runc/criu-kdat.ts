import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, statfsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { host } from '../exec.js';

/**
 * CRIU's cache of what it found out about the kernel (its "kerndat"): the path is compiled into
 * CRIU (`KDAT_RUNDIR`, /run by default).
 */
export const CRIU_KDAT = '/run/criu.kdat';
/** What the cache here was made for: `<boot id> <criu binary's size and mtime>`. */
const KDAT_STAMP = '/run/nullspace/criu.kdat.stamp';
/** statfs(2) f_type of a tmpfs. */
const TMPFS_MAGIC = 0x01021994;

export type KdatCache = 'criu-managed' | 'kept' | 'written' | 'unavailable';

/**
 * Makes sure every CRIU run of this host finds its kernel feature cache.
 *
 * Each CRIU run (dump, restore, and the `criu swrk` runc starts before each to ask its version)
 * first probes the kernel: a network namespace with a veth pair, pagemap, vDSO, ptrace, memfd …
 * (CRIU's kerndat_init): 60–110 ms of a 100 MiB machine's dump or restore measured here (the gap
 * before "Dumping processes" / the first restore step in CRIU's log). CRIU keeps what it found in
 * /run/criu.kdat and loads it next time — but writes it only where /run is a tmpfs (so that a
 * reboot, maybe into another kernel, drops it: criu/kerndat.c, kerndat_save_cache). On a host
 * whose /run is a plain directory of the root filesystem (this kind of VM) it never writes it, and
 * every run probes again.
 *
 * There, this runs one `criu check` in a mount namespace of its own whose /run is a fresh tmpfs,
 * so CRIU writes its cache there, and moves that file to /run/criu.kdat, which CRIU reads wherever
 * it lies (the load checks CRIU's own build stamp and the file's size, not the filesystem). What a
 * reboot would have dropped is guarded by a stamp beside it (the kernel's boot id and the criu
 * binary's size and mtime): a stamp that differs, or none, makes a new cache. Written to a
 * temporary name and renamed, so a CRIU starting meanwhile (another server's) reads an old whole
 * file or the new whole one. Where /run is a tmpfs, CRIU keeps the cache itself and this does
 * nothing. Any failure leaves CRIU probing as before (`unavailable`): slower, never wrong.
 */
export async function ensureCriuKdat(o: { criu?: string; scratchDir: string }): Promise<KdatCache> {
  const criu = o.criu ?? 'criu';
  try {
    if (statfsSync('/run').type === TMPFS_MAGIC) return 'criu-managed';
    const binary = (await host('sh', ['-c', `command -v ${criu}`])).stdout.trim();
    const st = statSync(binary);
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stamp = `${bootId} ${st.size} ${st.mtimeMs}`;
    const current = await readFile(KDAT_STAMP, 'utf8').catch(() => '');
    if (current === stamp && statSync(CRIU_KDAT, { throwIfNoEntry: false })?.isFile()) return 'kept';
    await mkdir(o.scratchDir, { recursive: true });
    const made = join(o.scratchDir, `criu.kdat.${randomBytes(4).toString('hex')}`);
    try {
      // `criu check` probes the kernel and saves the cache before its own checks, whose verdict
      // does not matter here (hence `; cp`). The new /run is this namespace's only: the host's is
      // untouched until the rename below.
      await host(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          'mount -t tmpfs -o size=1m,mode=0755 nullspace-kdat /run && "$1" check >/dev/null 2>&1; cp /run/criu.kdat "$2"',
          'sh',
          binary,
          made,
        ],
        { timeoutMs: 30_000 },
      );
      const partial = `${CRIU_KDAT}.nullspace-${process.pid}`;
      await writeFile(partial, await readFile(made), { mode: 0o600 });
      await rename(partial, CRIU_KDAT);
      await mkdir('/run/nullspace', { recursive: true });
      await writeFile(KDAT_STAMP, stamp);
      return 'written';
    } finally {
      await rm(made, { force: true });
    }
  } catch {
    return 'unavailable';
  }
}
