import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Frees, with a young-generation collection, the buffers Node allocated for bytes this process only
 * passes on. Every piece of a request body that Node's HTTP server reads (64 KiB at most) is copied
 * by its parser into a buffer of its own, outside V8's heap. Relayed at once, those buffers die
 * young, but the only collection that frees them cheaply (a scavenge) runs when the JavaScript heap
 * fills its young generation, which a relay that allocates almost nothing of its own rarely does.
 * Meanwhile V8 counts the memory they hold and, past its external-memory limit (every ~30 MB in
 * the network bench), starts a full mark-compact of the whole heap for it, marked concurrently by
 * helper threads: during a 256 MiB upload through the preview proxy, 9 mark-compacts and ~35 % of
 * the server's CPU samples in `ConcurrentMarking`, on a host whose two cores also carry the client
 * and the machine. A scavenge after every {@link RELAY_SCAVENGE_BYTES} relayed keeps the count
 * under that limit (1 mark-compact for the same upload, from other causes) for ~1 ms each.
 */
export class RelayedBytes {
  private since = 0;

  constructor(private readonly every = RELAY_SCAVENGE_BYTES) {}

  /** Counts `n` bytes relayed; past the threshold, collects the young generation. */
  add(n: number): void {
    this.since += n;
    if (this.since < this.every) return;
    this.since = 0;
    scavenge();
  }
}

/** Bytes relayed between two scavenges (summed over every request of the process). */
export const RELAY_SCAVENGE_BYTES = 8 * 1024 * 1024;

type Gc = (options: { type: 'minor' | 'major' }) => void;
let gc: Gc | undefined | null = null;

/**
 * V8's `gc` function, made once: the flag installs it only in contexts created while it is set, so a
 * new context is made for it and the flag is cleared again (nothing else sees a `gc` global). Node
 * warns that flags changed after start may do nothing; this one only decides whether a new
 * context gets the function, and young-gc.test.ts checks that the collection really runs on the
 * Node in use. Not available (a V8 without the extension, flags frozen): undefined, and nothing is
 * collected early.
 */
function gcFunction(): Gc | undefined {
  if (gc !== null) return gc;
  gc = undefined;
  try {
    v8.setFlagsFromString('--expose-gc');
    const f: unknown = vm.runInNewContext('typeof gc === "function" ? gc : undefined');
    if (typeof f === 'function') gc = f as Gc;
  } catch {
    // gc stays undefined: relays work the same, with V8's own schedule of collections.
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
  return gc;
}

/** One young-generation collection (a scavenge), when V8 offers it. */
export function scavenge(): void {
  gcFunction()?.({ type: 'minor' });
}
