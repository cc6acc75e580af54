import { existsSync, readFileSync, readdirSync } from 'node:fs';

/**
 * The server's native allocator (what Buffers, SQLite, libuv and child process set-up allocate
 * from; V8's own heap is apart). Under the server's pattern — many short 64 KiB socket and pipe
 * reads cut down to what arrived, freed at the next collection, among longer-lived small blocks —
 * glibc's malloc keeps the freed pages between live blocks: in bench/soak.mjs its heap grew by
 * ~0.4 MiB a minute with the JavaScript heap flat, and `malloc_trim(0)` given from a debugger gave
 * 8–9 MiB of it back (it was free, not leaked). jemalloc, which groups blocks by size and returns
 * free pages after a delay, holds the server's resident memory flat under the same load
 * (bench/README.md, "Load and soak"). `scripts/serve.sh` preloads it (Debian's libjemalloc2) when
 * it is installed; this says which one the process runs on.
 */
export function nativeAllocator(maps = '/proc/self/maps'): 'jemalloc' | 'glibc' {
  // A process's allocator is chosen once, when it is loaded: its own is read once.
  if (maps !== '/proc/self/maps') return readAllocator(maps);
  own ??= readAllocator(maps);
  return own;
}

let own: 'jemalloc' | 'glibc' | undefined;

function readAllocator(maps: string): 'jemalloc' | 'glibc' {
  try {
    return /\/libjemalloc\.so[.\d]*$/m.test(readFileSync(maps, 'utf8')) ? 'jemalloc' : 'glibc';
  } catch {
    return 'glibc';
  }
}

/**
 * Drops jemalloc from `LD_PRELOAD` in `env` (the server's own environment, which the host tools
 * it starts inherit: runc, CRIU, ip, nft …): the preload is for the server's process alone, which
 * has loaded it by now; those tools were not measured with it and CRIU restores other processes'
 * memory. Other preloaded libraries stay.
 */
export function keepAllocatorPreloadToSelf(env: NodeJS.ProcessEnv = process.env): void {
  const preload = env.LD_PRELOAD;
  if (preload === undefined) return;
  // ld.so separates the list's entries with colons or spaces.
  const kept = preload.split(/[: ]+/).filter((lib) => lib !== '' && !/\/?libjemalloc\.so[.\d]*$/.test(lib));
  if (kept.length > 0) env.LD_PRELOAD = kept.join(':');
  // Not `= undefined`: process.env would keep the string "undefined".
  else Reflect.deleteProperty(env, 'LD_PRELOAD');
}

/**
 * Debian's jemalloc (package libjemalloc2, which the set-up installs), the library scripts/serve.sh
 * preloads, or undefined when it is not installed. The test harness and the benches start their
 * servers with it too, as `npm run serve` does.
 */
export function jemallocLibrary(): string | undefined {
  for (const dir of readdirSync('/usr/lib').filter((d) => d.endsWith('-linux-gnu'))) {
    const lib = `/usr/lib/${dir}/libjemalloc.so.2`;
    if (existsSync(lib)) return lib;
  }
  return undefined;
}
