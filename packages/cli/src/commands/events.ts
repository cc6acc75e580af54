import { LifecycleWsQuerySchema } from '@nullspace/protocol';
import { type LifecycleEvent, Machine, lifecycleEventToWire } from '@nullspace/sdk';
import { type Subcommand, UsageError, flag, optionalString } from '../args.js';
import { schemaFlags } from '../schema-flags.js';

/** One event per line: JSON (the API's shape) for scripts, else id, time, what changed, reason, data. */
function line(e: LifecycleEvent, json: boolean): string {
  if (json) return `${JSON.stringify(lifecycleEventToWire(e))}\n`;
  const what =
    e.type === 'status_changed' ? `${e.previousStatus ?? '?'} -> ${e.status}` : `${e.type} (${e.status})`;
  const reason = e.reason ? `  reason: ${e.reason}` : '';
  const data = Object.keys(e.data).length > 0 ? `  ${JSON.stringify(e.data)}` : '';
  return `${String(e.id).padStart(6)}  ${e.at.toISOString()}  ${what}${reason}${data}\n`;
}

/** Largest page the polling route gives. */
const PAGE = 1000;

const EVENT_FLAGS = schemaFlags(LifecycleWsQuerySchema, [
  { field: 'after_event_id', name: 'after' },
  { field: 'live_only', help: 'With --follow: skip the replay, only events from now on' },
]);

/** `nullspace machine events ID [--after N] [--follow] [--live-only]`. */
export const events: Subcommand = {
  name: 'events',
  summary: "Print a machine's lifecycle events; --follow keeps streaming new ones.",
  usage: 'nullspace machine events ID [--after N] [--follow] [--live-only]',
  flags: `One line per event: id, time, what changed, reason, data. With --json, one JSON object per
line (the API's shape).

Flags:
${EVENT_FLAGS.help}
  -f, --follow             keep streaming new events until interrupted (reconnects by itself)`,
  options: {
    ...EVENT_FLAGS.options,
    follow: { type: 'boolean', short: 'f' },
  },
  async run(input) {
    const { values, command } = input;
    const [id, ...extra] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', command);
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, command);
    const afterRaw = optionalString(values, 'after');
    if (afterRaw !== undefined && !/^\d+$/.test(afterRaw))
      throw new UsageError(`--after: expected an event id (an integer >= 0), got "${afterRaw}"`, command);
    const after = afterRaw === undefined ? undefined : Number(afterRaw);
    const liveOnly = flag(values, 'live-only');
    const follow = flag(values, 'follow');
    if (liveOnly && !follow) throw new UsageError('--live-only needs --follow', command);
    if (liveOnly && after !== undefined)
      throw new UsageError('--live-only and --after exclude each other', command);
    const machine = new Machine(id, input.connection);
    // `events --follow | head -3`: the reader leaving is the normal end, not a crash.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });

    if (follow) {
      const abort = new AbortController();
      const stop = () => abort.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        for await (const e of machine.streamEvents({
          ...(after === undefined ? {} : { afterEventId: after }),
          liveOnly,
          signal: abort.signal,
        }))
          process.stdout.write(line(e, input.json));
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      return 0;
    }

    // Every retained event (after --after), page by page, then exit.
    let cursor = after;
    for (;;) {
      const page = await machine.listEvents({
        ...(cursor === undefined ? {} : { afterEventId: cursor }),
        limit: PAGE,
      });
      for (const e of page.events) process.stdout.write(line(e, input.json));
      if (page.events.length < PAGE) return 0;
      cursor = page.lastEventId;
    }
  },
};
