import {
  CodedError,
  MACHINE_STATES,
  type MachineMetrics,
  type MachineMetricsReading,
} from '@nullspace/protocol';
import type { DriverMachineUsage, MachineDriver } from '@nullspace/runtime';
import type { Logger } from '../log.js';
import type { MachineStore } from '../store/machine-store.js';
import type { TeardownStats } from './machines/teardowns.js';

/** Samples kept per machine: with the default interval, the last five minutes. */
const MAX_SAMPLES = 60;
/** Upper bounds (seconds) of the create-latency histogram's buckets. */
const CREATE_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A warm pool's counts, as /metrics shows them. */
export interface WarmPoolStats {
  id: string;
  template: string;
  ready: number;
  hits: number;
  misses: number;
}

/**
 * The latency of creates that started a machine (a histogram). The machine service records into
 * it; the metrics service reads it: neither needs the other.
 */
export class CreateLatency {
  readonly counts = CREATE_BUCKETS.map(() => 0);
  sum = 0;
  count = 0;

  /** Counts one create that started a machine, and how long it took. */
  observe(ms: number): void {
    const s = ms / 1000;
    CREATE_BUCKETS.forEach((le, i) => {
      if (s <= le) this.counts[i] = (this.counts[i] ?? 0) + 1;
    });
    this.sum += s;
    this.count++;
  }
}

/** Machines sampled between two turns of the event loop (see sampleAll). */
const SAMPLE_SLICE = 25;

export interface MetricsServiceOptions {
  store: MachineStore;
  driver: MachineDriver;
  /** How often running and paused machines are sampled. */
  intervalMs: number;
  createLatency: CreateLatency;
  pools: { stats(): WarmPoolStats[] };
  /** Teardowns of killed machines (MachineService.teardownStats). */
  teardowns?: { stats(): TeardownStats };
  log: Logger;
}

/**
 * Machine metrics (read from the runtime on demand, plus a ring of recent samples per machine, taken
 * every `intervalMs` from running and paused machines) and the server's own metrics in Prometheus
 * text format: machines by state and the latency of creates.
 */
export class MetricsService {
  private readonly samples = new Map<string, MachineMetricsReading[]>();
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;

  constructor(private readonly o: MetricsServiceOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.sampleAll(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** A machine's counters now, its CPU use since the last sample, and its recent samples. */
  async machine(id: string): Promise<MachineMetrics> {
    const m = this.o.store.get(id);
    if (!m) throw new CodedError('machine_not_found', `machine ${id} not found`, { machine_id: id });
    if (m.status !== 'running' && m.status !== 'paused')
      throw new CodedError(
        'invalid_state',
        `machine ${id} is ${m.status}: metrics come from a running or paused machine`,
        {
          machine_id: id,
          status: m.status,
        },
      );
    const usage = await this.o.driver.usage(id);
    const now = reading(usage);
    const history = this.samples.get(id) ?? [];
    const last = history[history.length - 1];
    const seconds = last ? (Date.parse(now.at) - Date.parse(last.at)) / 1000 : 0;
    return {
      machine_id: id,
      status: m.status,
      ...now,
      cpu_percent: last && seconds > 0 ? round((100 * (now.cpu_seconds - last.cpu_seconds)) / seconds) : null,
      vcpus: m.vcpus,
      memory_limit_bytes: usage.memoryLimitBytes,
      disk_total_bytes: usage.diskTotalBytes,
      samples: [...history],
    };
  }

  /** The server's metrics, Prometheus text exposition format 0.0.4. */
  prometheus(): string {
    const lines = [
      '# HELP nullspace_machines Machines in each state (killed ones included).',
      '# TYPE nullspace_machines gauge',
      ...MACHINE_STATES.map((s) => `nullspace_machines{state="${s}"} ${this.o.store.countInStates([s])}`),
      '# HELP nullspace_machine_create_seconds Time from a create request to the machine answering.',
      '# TYPE nullspace_machine_create_seconds histogram',
      ...CREATE_BUCKETS.map(
        (le, i) => `nullspace_machine_create_seconds_bucket{le="${le}"} ${this.o.createLatency.counts[i]}`,
      ),
      `nullspace_machine_create_seconds_bucket{le="+Inf"} ${this.o.createLatency.count}`,
      `nullspace_machine_create_seconds_sum ${round(this.o.createLatency.sum)}`,
      `nullspace_machine_create_seconds_count ${this.o.createLatency.count}`,
      ...this.poolLines(),
      ...this.teardownLines(),
      ...processLines(),
      '',
    ];
    return lines.join('\n');
  }

  /**
   * A kill answers before its machine's host resources are freed: these say how many teardowns
   * are behind, and which failed (retried, then given up until the next start; the log has why).
   */
  private teardownLines(): string[] {
    if (!this.o.teardowns) return [];
    const t = this.o.teardowns.stats();
    return [
      '# HELP nullspace_teardowns Teardowns of killed machines: queued or waiting to retry, running, given up.',
      '# TYPE nullspace_teardowns gauge',
      `nullspace_teardowns{state="pending"} ${t.pending}`,
      `nullspace_teardowns{state="running"} ${t.running}`,
      `nullspace_teardowns{state="failed"} ${t.failed}`,
      '# HELP nullspace_teardowns_done_total Teardowns of killed machines finished since the server started.',
      '# TYPE nullspace_teardowns_done_total counter',
      `nullspace_teardowns_done_total ${t.doneTotal}`,
      '# HELP nullspace_teardown_failures_total Teardown attempts that failed since the server started.',
      '# TYPE nullspace_teardown_failures_total counter',
      `nullspace_teardown_failures_total ${t.failedAttemptsTotal}`,
    ];
  }

  private poolLines(): string[] {
    const pools = this.o.pools.stats();
    const label = (p: { id: string; template: string }) =>
      `pool="${p.id}",template="${p.template.replace(/["\\\n]/g, '_')}"`;
    return [
      '# HELP nullspace_warm_pool_ready Machines started and waiting in each warm pool.',
      '# TYPE nullspace_warm_pool_ready gauge',
      ...pools.map((p) => `nullspace_warm_pool_ready{${label(p)}} ${p.ready}`),
      '# HELP nullspace_warm_pool_checkouts_total Creates that named a warm pool, by outcome.',
      '# TYPE nullspace_warm_pool_checkouts_total counter',
      ...pools.flatMap((p) => [
        `nullspace_warm_pool_checkouts_total{${label(p)},result="hit"} ${p.hits}`,
        `nullspace_warm_pool_checkouts_total{${label(p)},result="miss"} ${p.misses}`,
      ]),
      '# HELP nullspace_warm_pool_hit_ratio Hits over all checkouts of each warm pool (NaN before the first).',
      '# TYPE nullspace_warm_pool_hit_ratio gauge',
      ...pools.map(
        (p) =>
          `nullspace_warm_pool_hit_ratio{${label(p)}} ${p.hits + p.misses ? round(p.hits / (p.hits + p.misses)) : 'NaN'}`,
      ),
    ];
  }

  /** One sample of every running and paused machine; machines gone since lose their samples. */
  private async sampleAll(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const live = this.o.store.listInStates(['running', 'paused']);
      const ids = new Set(live.map((m) => m.id));
      for (const id of this.samples.keys()) if (!ids.has(id)) this.samples.delete(id);
      for (const [i, m] of live.entries()) {
        // The driver reads a machine's counters synchronously (a few kernel files, ~0.1 ms): a
        // round over hundreds of machines yields to requests between slices of them, so that a
        // create or a command never waits behind a whole round.
        if (i > 0 && i % SAMPLE_SLICE === 0) await new Promise<void>((resolve) => setImmediate(resolve));
        try {
          const r = reading(await this.o.driver.usage(m.id));
          const list = this.samples.get(m.id) ?? [];
          list.push(r);
          if (list.length > MAX_SAMPLES) list.shift();
          this.samples.set(m.id, list);
        } catch (err) {
          // A machine between states (hibernating, being killed) has no cgroup for a moment.
          this.o.log.debug('metrics sample skipped', { machine_id: m.id, error: err });
        }
      }
    } finally {
      this.sampling = false;
    }
  }
}

function reading(u: DriverMachineUsage): MachineMetricsReading {
  return {
    at: new Date().toISOString(),
    cpu_seconds: round(u.cpuSeconds),
    memory_bytes: u.memoryBytes,
    disk_used_bytes: u.diskUsedBytes,
    network_rx_bytes: u.rxBytes,
    network_tx_bytes: u.txBytes,
    network_rx_packets: u.rxPackets,
    network_tx_packets: u.txPackets,
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * The server process's own memory, under the names Prometheus' Node.js clients use, so that an
 * operator (and bench/soak.mjs) can tell the resident set's drift apart from the JavaScript heap's.
 */
function processLines(): string[] {
  const m = process.memoryUsage();
  const gauge = (name: string, help: string, value: number) => [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} gauge`,
    `${name} ${value}`,
  ];
  return [
    ...gauge('process_resident_memory_bytes', 'Resident memory of the server process.', m.rss),
    ...gauge('nodejs_heap_size_total_bytes', 'Size of the JavaScript heap V8 has committed.', m.heapTotal),
    ...gauge(
      'nodejs_heap_size_used_bytes',
      'JavaScript heap in use (live objects and garbage not yet collected).',
      m.heapUsed,
    ),
    ...gauge(
      'nodejs_external_memory_bytes',
      'Memory of C++ objects bound to JavaScript objects (Buffers among them).',
      m.external,
    ),
    ...gauge('nodejs_array_buffers_bytes', 'Memory of ArrayBuffers and Buffers.', m.arrayBuffers),
  ];
}
