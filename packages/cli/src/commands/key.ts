/**
 * Key commands: `nullspace key create|list|revoke` — tenants' API keys, managed with the
 * operator's key (docs/tenants.md). The SDK's `ApiKey` does the work.
 */
import { CreateKeyBodySchema } from '@nullspace/protocol';
import { ApiKey, apiKeyInfoToWire, createdApiKeyToWire } from '@nullspace/sdk';
import {
  type Subcommand,
  UsageError,
  flag,
  groupHelp,
  optionalString,
  runSubcommand,
  singleId,
} from '../args.js';
import { formatKeyValue, formatTable, printJson, relativeTime } from '../output.js';
import { schemaFlags } from '../schema-flags.js';

const CREATE_FLAGS = schemaFlags(CreateKeyBodySchema, [
  { field: 'tenant', metavar: 'TENANT' },
  { field: 'name', metavar: 'TEXT' },
]);

const create: Subcommand = {
  name: 'create',
  summary: "Create a tenant's API key and print it (shown this once).",
  usage: 'nullspace key create --tenant TENANT [--name TEXT] [-q]',
  flags: `Flags:
${CREATE_FLAGS.help}
  -q, --quiet              print only the key

The server keeps only the key's SHA-256: store the key now. A tenant's key sees and touches only
that tenant's machines, snapshots, volumes, templates and warm pools.`,
  options: { ...CREATE_FLAGS.options, quiet: { type: 'boolean', short: 'q' } },
  async run(input) {
    if (input.positionals.length > 0)
      throw new UsageError(`unexpected argument "${input.positionals[0]}"`, input.command);
    const tenant = optionalString(input.values, 'tenant');
    if (tenant === undefined) throw new UsageError('missing --tenant', input.command);
    const name = optionalString(input.values, 'name');
    const k = await ApiKey.create(tenant, { ...input.connection, ...(name === undefined ? {} : { name }) });
    if (input.json) printJson(createdApiKeyToWire(k));
    else if (flag(input.values, 'quiet')) process.stdout.write(`${k.key}\n`);
    else
      process.stdout.write(
        formatKeyValue([
          ['id', k.id],
          ['tenant', k.tenant],
          ['name', k.name ?? '-'],
          ['key', k.key],
          ['created_at', k.createdAt.toISOString()],
        ]),
      );
    return 0;
  },
};

const list: Subcommand = {
  name: 'list',
  summary: "List tenants' API keys (never the keys themselves).",
  usage: 'nullspace key list [-q]',
  flags: `Flags:
  -q, --quiet    print only key ids`,
  options: { quiet: { type: 'boolean', short: 'q' } },
  async run(input) {
    if (input.positionals.length > 0)
      throw new UsageError(`unexpected argument "${input.positionals[0]}"`, input.command);
    const keys = await ApiKey.list(input.connection);
    if (input.json) printJson({ items: keys.map(apiKeyInfoToWire) });
    else if (flag(input.values, 'quiet')) for (const k of keys) process.stdout.write(`${k.id}\n`);
    else
      process.stdout.write(
        formatTable(
          ['ID', 'TENANT', 'NAME', 'KEY', 'CREATED'],
          keys.map((k) => [
            k.id,
            k.tenant,
            k.name ?? '-',
            `…${k.hint}`,
            relativeTime(k.createdAt.toISOString()),
          ]),
        ),
      );
    return 0;
  },
};

const revoke: Subcommand = {
  name: 'revoke',
  summary: 'Revoke a key: refused at once, its open streams and WebSockets closed.',
  usage: 'nullspace key revoke ID',
  flags: 'ID is the key id (key_...), as "nullspace key list" shows it. Prints "ID revoked".',
  options: {},
  async run(input) {
    const k = await ApiKey.revoke(singleId(input, 'key id'), input.connection);
    if (input.json) printJson(apiKeyInfoToWire(k));
    else process.stdout.write(`${k.id} revoked\n`);
    return 0;
  },
};

const SUBCOMMANDS: Subcommand[] = [create, list, revoke];

export const KEY_HELP = groupHelp(
  'key',
  "Tenants' API keys, managed with the operator's key (NULLSPACE_API_KEY): create, list, revoke.",
  SUBCOMMANDS,
);

/** `nullspace key ...`: `words` are the command words after `key`. */
export async function runKeyCommand(
  words: string[],
  rest: string[],
  afterDashDash: string[] | undefined,
): Promise<number> {
  return runSubcommand('key', SUBCOMMANDS, KEY_HELP, { words, rest, afterDashDash });
}
