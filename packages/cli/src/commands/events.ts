import { type LifecycleEvent, Machine } from '@nullspace/sdk';
import { type Subcommand, UsageError } from '../args.js';

function wire(e: LifecycleEvent): Record<string, unknown> {
  return {
    id: e.id,
    machine_id: e.machineId,
    execution_id: e.executionId,
    type: e.type,
    status: e.status,
    previous_status: e.previousStatus,
    reason: e.reason,
    data: e.data,
    at: e.at.toISOString(),
  };
}

function line(e: LifecycleEvent, json: boolean): string {
  if (json) return `${JSON.stringify(wire(e))}\n`;
  const what =
    e.type === 'status_changed' ? `${e.previousStatus ?? '?'} -> ${e.status}` : `${e.type} (${e.status})`;
  const data = Object.keys(e.data).length > 0 ? ` ${JSON.stringify(e.data)}` : '';
  return `${String(e.id).padStart(6)}  ${e.at.toISOString()}  ${what}${e.reason ? `  reason: ${e.reason}` : ''}${data}\n`;
}

/** `nullspace machine events ID [--after N] [--follow] [--live-only]`. */
export const events: Subcommand = {
  name: 'events',
  summary: "Print a machine's lifecycle events; --follow keeps streaming new ones.",
  usage: 'nullspace machine events ID [flags]',
  flags: `One line per event (id, time, what changed, reason); --json prints one JSON object per line.

Flags:
  --after N      only events after event id N
  --follow, -f   keep streaming new events until interrupted (reconnects by itself)
  --live-only    with --follow: skip the past, show only new events`,
  options: {
    after: { type: 'string' },
    follow: { type: 'boolean', short: 'f' },
    'live-only': { type: 'boolean' },
  },
  async run(input) {
    const { values, command } = input;
    const [id, ...extra] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', command);
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, command);
    const afterRaw = values.after;
    if (afterRaw !== undefined && (typeof afterRaw !== 'string' || !/^\d+$/.test(afterRaw)))
      throw new UsageError(`--after: expected an event id, got "${String(afterRaw)}"`, command);
    const after = afterRaw === undefined ? undefined : Number(afterRaw);
    const liveOnly = values['live-only'] === true;
    const machine = new Machine(id, input.connection);
    if (values.follow === true) {
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      for await (const e of machine.streamEvents({
        ...(after !== undefined ? { afterEventId: after } : {}),
        liveOnly,
        signal: abort.signal,
      }))
        process.stdout.write(line(e, input.json));
      return 0;
    }
    if (liveOnly) throw new UsageError('--live-only needs --follow', command);
    let cursor = after ?? 0;
    for (;;) {
      const page = await machine.listEvents({ afterEventId: cursor, limit: 1000 });
      for (const e of page.events) process.stdout.write(line(e, input.json));
      cursor = page.lastEventId;
      if (page.events.length < 1000) return 0;
    }
  },
};
