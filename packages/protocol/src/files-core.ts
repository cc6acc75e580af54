// Of the files contract, what the agent shares (through `@nullspace/protocol/core`): limits and
// the agent's paths, without a schema.

export const FILE_LIMITS = {
  maxPathLength: 4096,
  /** `list` depth: 1 = the directory's own entries. */
  depth: { min: 1, max: 32, default: 1 },
  /** Entries one `list` returns at most; more sets `truncated`. */
  maxListEntries: 100_000,
  search: {
    max_results: { min: 1, max: 10_000, default: 1000 },
    maxPatternLength: 4096,
    /** Longest `text` of a match (the line, cut at this many characters). */
    maxLineText: 1000,
  },
  /** Files larger than this are skipped by search and replace. */
  maxScannedFileBytes: 10 * 1024 * 1024,
  /** A file with a NUL byte in its first this many bytes is binary: search and replace skip it. */
  binaryProbeBytes: 8192,
  globs: { maxItems: 64, maxLength: 1024 },
  replace: { maxPaths: 10_000, maxReplacementLength: 1024 * 1024 },
  watch: {
    /** Watches one agent keeps at most; one more is `resource_exhausted`. */
    maxPerMachine: 64,
    /** A watch nobody read for this long (and with no WebSocket attached) is dropped. */
    idleMs: 5 * 60 * 1000,
    /** Events one watch retains; a reader further behind gets `events_expired`. */
    retainedEvents: 10_000,
    /** Directories one watch follows at most (each one costs an inotify watch). */
    maxDirs: 8192,
    wait_ms: { min: 0, max: 30_000, default: 0 },
    limit: { min: 1, max: 1000, default: 1000 },
  },
  signedUrl: { expires_in: { min: 1, max: 7 * 24 * 3600, default: 3600 } },
} as const;

export const AGENT_FILE_ROUTES = {
  /** GET bytes, PUT bytes, DELETE: `?path=`. */
  file: '/v1/files',
  list: '/v1/files/list',
  stat: '/v1/files/stat',
  exists: '/v1/files/exists',
  mkdir: '/v1/files/mkdir',
  move: '/v1/files/move',
  search: '/v1/files/search',
  replace: '/v1/files/replace',
  watches: '/v1/files/watches',
  watch: (id: string) => `/v1/files/watches/${id}`,
  /** POST before a checkpoint: watches let go of their inotify watches (CRIU cannot dump them). */
  suspendWatches: '/v1/files/watches/suspend',
} as const;
