import { ListSnapshotsQuerySchema } from '@nullspace/protocol';
import { Snapshot, type SnapshotKind, type SnapshotListOptions, snapshotInfoToWire } from '@nullspace/sdk';
import {
  type CommandInput,
  type Subcommand,
  UsageError,
  flag,
  groupHelp,
  oneOf,
  optionalString,
  runSubcommand,
  singleId,
} from '../args.js';
import { formatSnapshot, formatSnapshotTable, printJson } from '../output.js';
import { choices, schemaFlags } from '../schema-flags.js';

const SNAPSHOT_KINDS = choices(ListSnapshotsQuerySchema, 'kind') as readonly SnapshotKind[];
const LIST_FLAGS = schemaFlags(ListSnapshotsQuerySchema, [
  { field: 'machine_id', name: 'machine', metavar: 'ID' },
  { field: 'kind', metavar: 'KIND' },
]);

function snapshotId(input: CommandInput): string {
  return singleId(input, 'snapshot id');
}

const list: Subcommand = {
  name: 'list',
  summary: 'List snapshots, newest first.',
  usage: 'nullspace snapshot list [flags]',
  flags: `Flags:
${LIST_FLAGS.help}
  -q, --quiet              print only snapshot ids

Kinds: pause (made by pause and hibernate), reusable (made by machine snapshot).`,
  options: {
    ...LIST_FLAGS.options,
    quiet: { type: 'boolean', short: 'q' },
  },
  async run(input) {
    const { values, command } = input;
    if (input.positionals.length > 0)
      throw new UsageError(`unexpected argument "${input.positionals[0]}"`, command);
    const opts: SnapshotListOptions = { ...input.connection };
    const machineId = optionalString(values, 'machine');
    if (machineId !== undefined) opts.machineId = machineId;
    const kind = oneOf(values, 'kind', SNAPSHOT_KINDS, command);
    if (kind !== undefined) opts.kind = kind;
    const rows = (await Snapshot.list(opts)).map(snapshotInfoToWire);
    if (input.json) printJson({ items: rows });
    else if (flag(values, 'quiet')) for (const row of rows) process.stdout.write(`${row.id}\n`);
    else process.stdout.write(formatSnapshotTable(rows));
    return 0;
  },
};

const get: Subcommand = {
  name: 'get',
  summary: "Print a snapshot's info.",
  usage: 'nullspace snapshot get SNAPSHOT_ID',
  flags: '',
  options: {},
  async run(input) {
    const wire = snapshotInfoToWire(await Snapshot.get(snapshotId(input), input.connection));
    if (input.json) printJson(wire);
    else process.stdout.write(formatSnapshot(wire));
    return 0;
  },
};

const remove: Subcommand = {
  name: 'delete',
  summary: 'Delete a snapshot and its files.',
  usage: 'nullspace snapshot delete SNAPSHOT_ID',
  flags: `Prints "SNAPSHOT_ID deleted". The pause snapshot of a paused or hibernated machine cannot be
deleted (invalid_state): kill the machine instead.`,
  options: {},
  async run(input) {
    const info = await Snapshot.delete(snapshotId(input), input.connection);
    if (input.json) printJson(snapshotInfoToWire(info));
    else process.stdout.write(`${info.id} deleted\n`);
    return 0;
  },
};

const SUBCOMMANDS: Subcommand[] = [list, get, remove];

export const SNAPSHOT_HELP = groupHelp(
  'snapshot',
  'Inspect and delete snapshots. Take one with "nullspace machine snapshot ID"; start machines from\n' +
    'it with "nullspace machine create --snapshot SNAPSHOT_ID".',
  SUBCOMMANDS,
);

/** `nullspace snapshot ...`: `words` are the command words after `snapshot`. */
export async function runSnapshotCommand(
  words: string[],
  rest: string[],
  afterDashDash: string[] | undefined,
): Promise<number> {
  return runSubcommand('snapshot', SUBCOMMANDS, SNAPSHOT_HELP, { words, rest, afterDashDash });
}
