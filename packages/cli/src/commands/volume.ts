/**
 * Volume commands: `nullspace volume create|list|get|delete`, `nullspace machine volume
 * list|attach|detach|health|remount`, and the `--volume` flag of `machine create`.
 */
import { CreateVolumeBodySchema, VolumeMountBodySchema } from '@nullspace/protocol';
import {
  Machine,
  Volume,
  type VolumeAttachment,
  type VolumeInfo,
  type VolumeMount,
  volumeAttachmentToWire,
  volumeHealthToWire,
  volumeInfoToWire,
} from '@nullspace/sdk';
import {
  type OptionValues,
  type Subcommand,
  UsageError,
  flag,
  groupHelp,
  optionalInteger,
  optionalString,
  runSubcommand,
  singleId,
  stringList,
} from '../args.js';
import { formatBytes, formatKeyValue, formatTable, printJson, relativeTime } from '../output.js';
import { schemaFlags } from '../schema-flags.js';

function attachmentLine(a: {
  id: string;
  mountPath: string;
  readOnly: boolean;
  subpath: string | null;
}): string {
  return `${a.id} ${a.mountPath} (${a.readOnly ? 'read-only' : 'read-write'}${a.subpath ? `, ${a.subpath}` : ''})`;
}

function printVolume(v: VolumeInfo, json: boolean): void {
  if (json) {
    printJson(volumeInfoToWire(v));
    return;
  }
  process.stdout.write(
    formatKeyValue([
      ['id', v.id],
      ['name', v.name],
      ['size', `${v.sizeMb} MB`],
      ['used', formatBytes(v.usedBytes)],
      ['created_at', `${v.createdAt.toISOString()} (${relativeTime(v.createdAt.toISOString())})`],
      [
        'attachments',
        v.attachments.length === 0
          ? '-'
          : v.attachments.map((a) => `${a.machineId}: ${attachmentLine(a)}`).join('\n              '),
      ],
    ]),
  );
}

const SIZE_FLAGS = schemaFlags(CreateVolumeBodySchema, [{ field: 'size_mb' }]);

const create: Subcommand = {
  name: 'create',
  summary: 'Create a volume and print its info.',
  usage: 'nullspace volume create NAME [--size-mb N]',
  flags: `NAME is unique among the key's tenant's volumes: 1-63 of a-z, 0-9, ".", "_" and "-".

Flags:
${SIZE_FLAGS.help}
  -q, --quiet              print only the volume id

Writes past the size fail with "No space left on device".`,
  options: { ...SIZE_FLAGS.options, quiet: { type: 'boolean', short: 'q' } },
  async run(input) {
    const name = singleId(input, 'volume name');
    const sizeMb = optionalInteger(input.values, 'size-mb', input.command);
    const v = await Volume.create(name, { ...input.connection, ...(sizeMb === undefined ? {} : { sizeMb }) });
    if (flag(input.values, 'quiet')) process.stdout.write(`${v.id}\n`);
    else printVolume(v, input.json);
    return 0;
  },
};

const list: Subcommand = {
  name: 'list',
  summary: 'List volumes.',
  usage: 'nullspace volume list [-q]',
  flags: `Flags:
  -q, --quiet    print only volume ids`,
  options: { quiet: { type: 'boolean', short: 'q' } },
  async run(input) {
    if (input.positionals.length > 0)
      throw new UsageError(`unexpected argument "${input.positionals[0]}"`, input.command);
    const volumes = await Volume.list(input.connection);
    if (input.json) printJson({ items: volumes.map(volumeInfoToWire) });
    else if (flag(input.values, 'quiet')) for (const v of volumes) process.stdout.write(`${v.id}\n`);
    else
      process.stdout.write(
        formatTable(
          ['ID', 'NAME', 'SIZE', 'USED', 'ATTACHED', 'CREATED'],
          volumes.map((v) => [
            v.id,
            v.name,
            `${v.sizeMb} MB`,
            formatBytes(v.usedBytes),
            String(new Set(v.attachments.map((a) => a.machineId)).size),
            relativeTime(v.createdAt.toISOString()),
          ]),
        ),
      );
    return 0;
  },
};

const get: Subcommand = {
  name: 'get',
  summary: "Print a volume's info: size, use and where it is mounted.",
  usage: 'nullspace volume get VOLUME',
  flags: 'VOLUME is an id (vol_...) or a name.',
  options: {},
  async run(input) {
    printVolume(await Volume.get(singleId(input, 'volume'), input.connection), input.json);
    return 0;
  },
};

const remove: Subcommand = {
  name: 'delete',
  summary: 'Delete a volume and its data.',
  usage: 'nullspace volume delete VOLUME',
  flags: `VOLUME is an id (vol_...) or a name. Prints "VOLUME_ID deleted". Refused (conflict) while a
machine that is alive or hibernated has it attached: detach it or kill the machine first.`,
  options: {},
  async run(input) {
    const v = await Volume.delete(singleId(input, 'volume'), input.connection);
    if (input.json) printJson(volumeInfoToWire(v));
    else process.stdout.write(`${v.id} deleted\n`);
    return 0;
  },
};

const SUBCOMMANDS: Subcommand[] = [create, list, get, remove];

export const VOLUME_HELP = groupHelp(
  'volume',
  'Durable storage outside every machine: create, list, inspect and delete volumes. Mount one with\n' +
    '"nullspace machine create --volume NAME:/path" or "nullspace machine volume attach ID NAME /path".',
  SUBCOMMANDS,
);

/** `nullspace volume ...`: `words` are the command words after `volume`. */
export async function runVolumeCommand(
  words: string[],
  rest: string[],
  afterDashDash: string[] | undefined,
): Promise<number> {
  return runSubcommand('volume', SUBCOMMANDS, VOLUME_HELP, { words, rest, afterDashDash });
}

// ---- nullspace machine volume ----

function printAttachment(a: VolumeAttachment, json: boolean): void {
  if (json) printJson(volumeAttachmentToWire(a));
  else process.stdout.write(`${attachmentLine(a)}: volume ${a.volumeName} (${a.volumeId})\n`);
}

const ACTIONS = ['list', 'attach', 'detach', 'health', 'remount'] as const;

const ATTACH_FLAGS = schemaFlags(VolumeMountBodySchema, [
  { field: 'read_only' },
  { field: 'subpath', metavar: 'DIR' },
]);

export const machineVolume: Subcommand = {
  name: 'volume',
  summary: "List, attach, detach, check and remount a running machine's volumes.",
  usage: 'nullspace machine volume ACTION ID [ARGS] [flags]',
  flags: `Actions:
  list ID                            the machine's volume attachments
  attach ID VOLUME MOUNT_PATH        mount a volume (id or name) at MOUNT_PATH (created if missing)
  detach ID ATTACHMENT_ID            unmount an attachment (vat_...); the volume keeps its data
  health ID ATTACHMENT_ID            check the mount now; exits 1 when it is unhealthy
  remount ID ATTACHMENT_ID           unmount whatever of the volume is there and mount it again

Flags (attach):
${ATTACH_FLAGS.help}

  -q, --quiet              list, attach: print only attachment ids`,
  options: {
    ...ATTACH_FLAGS.options,
    quiet: { type: 'boolean', short: 'q' },
  },
  async run(input) {
    const { command, values } = input;
    const [action, id, ...args] = input.positionals;
    if (action === undefined) throw new UsageError(`missing action (${ACTIONS.join(', ')})`, command);
    if (!(ACTIONS as readonly string[]).includes(action))
      throw new UsageError(`unknown action "${action}"; expected one of ${ACTIONS.join(', ')}`, command);
    if (id === undefined) throw new UsageError('missing machine id', command);
    const want = action === 'list' ? 0 : action === 'attach' ? 2 : 1;
    if (args.length < want)
      throw new UsageError(
        `missing ${action === 'attach' ? (args.length === 0 ? 'VOLUME and MOUNT_PATH' : 'MOUNT_PATH') : 'ATTACHMENT_ID'}`,
        command,
      );
    if (args.length > want) throw new UsageError(`unexpected argument "${args[want]}"`, command);
    if (action !== 'attach' && (flag(values, 'read-only') || values.subpath !== undefined))
      throw new UsageError('--read-only and --subpath go with attach', command);
    const machine = new Machine(id, input.connection);
    const quiet = flag(values, 'quiet');
    switch (action) {
      case 'list': {
        const attachments = await machine.listVolumes();
        if (input.json) printJson({ items: attachments.map(volumeAttachmentToWire) });
        else if (quiet) for (const a of attachments) process.stdout.write(`${a.id}\n`);
        else
          process.stdout.write(
            formatTable(
              ['ID', 'VOLUME', 'MOUNT_PATH', 'MODE', 'SUBPATH', 'HEALTH'],
              attachments.map((a) => [
                a.id,
                a.volumeName,
                a.mountPath,
                a.readOnly ? 'ro' : 'rw',
                a.subpath ?? '-',
                a.health === null ? '-' : a.health.healthy ? 'healthy' : `unhealthy: ${a.health.reason}`,
              ]),
            ),
          );
        return 0;
      }
      case 'attach': {
        const subpath = optionalString(values, 'subpath');
        const a = await machine.attachVolume(args[0] as string, args[1] as string, {
          readOnly: flag(values, 'read-only'),
          ...(subpath === undefined ? {} : { subpath }),
        });
        if (quiet) process.stdout.write(`${a.id}\n`);
        else printAttachment(a, input.json);
        return 0;
      }
      case 'detach': {
        const a = await machine.detachVolume(args[0] as string);
        if (input.json) printJson(volumeAttachmentToWire(a));
        else process.stdout.write(`${a.id} detached from ${a.mountPath}\n`);
        return 0;
      }
      case 'health': {
        const h = await machine.getVolumeHealth(args[0] as string);
        if (input.json) printJson(volumeHealthToWire(h));
        else
          process.stdout.write(
            h.healthy ? `${h.attachmentId} healthy\n` : `${h.attachmentId} unhealthy: ${h.reason}\n`,
          );
        return h.healthy ? 0 : 1;
      }
      default: {
        const a = await machine.remountVolume(args[0] as string);
        if (input.json) printJson(volumeAttachmentToWire(a));
        else
          process.stdout.write(
            `${a.id} remounted at ${a.mountPath}${a.health && !a.health.healthy ? ` but unhealthy: ${a.health.reason}` : ''}\n`,
          );
        return a.health?.healthy === false ? 1 : 0;
      }
    }
  },
};

/** `machine create`'s volume flag. */
export const VOLUME_FLAG_HELP = `  --volume SPEC            mount a volume: VOL:PATH, or VOL/SUBPATH:PATH for one directory of
                           it, :ro at the end for read-only (VOL: id or name; repeatable)`;

/** `--volume VOL[/SUBPATH]:PATH[:ro|rw]` flags as volume mounts (undefined when none is given). */
export function volumeMountsFrom(values: OptionValues, command: string): VolumeMount[] | undefined {
  const specs = stringList(values, 'volume');
  if (specs.length === 0) return undefined;
  return specs.map((spec) => {
    const [source, mountPath, mode, ...extra] = spec.split(':');
    if (!source || !mountPath || extra.length > 0 || (mode !== undefined && mode !== 'ro' && mode !== 'rw'))
      throw new UsageError(`--volume: expected VOL[/SUBPATH]:PATH[:ro], got "${spec}"`, command);
    const slash = source.indexOf('/');
    const mount: VolumeMount = { volume: slash === -1 ? source : source.slice(0, slash), mountPath };
    if (slash !== -1) mount.subpath = source.slice(slash + 1);
    if (mode === 'ro') mount.readOnly = true;
    return mount;
  });
}
