import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import {
  FileEntrySchema,
  ListFilesQuerySchema,
  MoveBodySchema,
  SearchBodySchema,
  SearchResponseSchema,
  SignedUrlBodySchema,
  WatchBodySchema,
  WatchEventSchema,
} from '@nullspace/protocol';
import { type FileEntry, Machine, toWire } from '@nullspace/sdk';
import {
  type CommandInput,
  type Subcommand,
  UsageError,
  flag,
  optionalInteger,
  stringList,
} from '../args.js';
import { formatBytes, formatKeyValue, formatTable, printJson } from '../output.js';
import { schemaFlags } from '../schema-flags.js';

/** `mch_...:/path`: a path in a machine. Anything else is local (`-` is stdin or stdout). */
const REMOTE = /^([A-Za-z0-9_]+):(\/.*)$/;

function nameOf(e: FileEntry): string {
  if (e.type === 'dir') return `${e.path}/`;
  if (e.type === 'symlink') return `${e.path} -> ${e.symlinkTarget ?? '?'}`;
  return e.path;
}

async function download(machine: Machine, remote: string, local: string): Promise<void> {
  const web = await machine.files.read(remote, { format: 'stream' });
  const source = Readable.fromWeb(web as unknown as WebReadableStream<Uint8Array>);
  let target: Writable = process.stdout;
  if (local !== '-') {
    let file = local;
    try {
      if (statSync(local).isDirectory()) file = join(local, basename(remote));
    } catch {
      // a new file
    }
    target = createWriteStream(file);
  }
  if (target === process.stdout) {
    // stdout is not ended: other output may follow (and ending it can throw on a pipe).
    for await (const chunk of source) {
      if (!process.stdout.write(chunk as Buffer)) await new Promise((r) => process.stdout.once('drain', r));
    }
    return;
  }
  await pipeline(source, target);
}

/** `nullspace machine cp SRC DST`: one side `ID:/path`, the other a local path or `-`, streamed. */
export const cp: Subcommand = {
  name: 'cp',
  summary: 'Copy a file into or out of a machine (streamed; - is stdin/stdout).',
  usage: 'nullspace machine cp SRC DST',
  flags: `One of SRC and DST is ID:/path in a machine, the other a local path, or - for stdin (as SRC)
or stdout (as DST). Nothing is held in memory: the bytes are streamed. Missing parents of a path in
the machine are created; a write lands atomically. A local directory as DST gets the file's name;
so does a machine path ending in /.

Examples:
  nullspace machine cp ./data.csv mch_abc...:/workspace/data.csv
  nullspace machine cp mch_abc...:/workspace/out.tar.gz .
  tar cz src | nullspace machine cp - mch_abc...:/workspace/src.tar.gz`,
  options: {},
  async run(input) {
    const [src, dst, ...extra] = input.positionals;
    if (src === undefined || dst === undefined) throw new UsageError('expected SRC and DST', input.command);
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, input.command);
    const from = REMOTE.exec(src);
    const to = REMOTE.exec(dst);
    if (from && to)
      throw new UsageError(
        'copy between two machines is not supported: one side must be local',
        input.command,
      );
    if (!from && !to) throw new UsageError('one of SRC and DST must be ID:/path in a machine', input.command);
    if (from) {
      await download(new Machine(from[1] as string, input.connection), from[2] as string, dst);
      return 0;
    }
    const [, id, rawPath] = to as RegExpExecArray;
    let path = rawPath as string;
    if (path.endsWith('/')) {
      if (src === '-') throw new UsageError('with - as SRC, name the file in the machine', input.command);
      path += basename(src);
    }
    const machine = new Machine(id as string, input.connection);
    const entry = await machine.files.write(path, src === '-' ? process.stdin : createReadStream(src));
    if (input.json) printJson(toWire(FileEntrySchema, entry));
    return 0;
  },
};

const FILE_OPS = ['ls', 'cat', 'rm', 'mkdir', 'mv', 'stat', 'search', 'url', 'watch'] as const;

function args(input: CommandInput, count: number, names: string): string[] {
  const rest = input.positionals.slice(2);
  if (rest.length !== count) throw new UsageError(`expected ${names}`, input.command);
  return rest;
}

/** Each operation's flags, from the fields they set. */
const FILE_FLAGS = [
  schemaFlags(ListFilesQuerySchema, [
    { field: 'depth', help: 'ls: levels to list, 1 = the directory itself' },
  ]),
  schemaFlags(MoveBodySchema, [{ field: 'overwrite', help: 'mv: replace an existing target' }]),
  schemaFlags(SearchBodySchema, [
    { field: 'regex', help: 'search: PATTERN is a regular expression' },
    {
      field: 'case_sensitive',
      name: 'ignore-case',
      short: 'i',
      negate: true,
      help: 'search: case-insensitive',
    },
    { field: 'include', metavar: 'GLOB', help: 'search: only files matching (*.ts matches at any depth)' },
    { field: 'exclude', metavar: 'GLOB', help: 'search: skip files or directories matching' },
    { field: 'max_results', help: 'search: stop after N matches' },
  ]),
  schemaFlags(SignedUrlBodySchema, [
    { field: 'expires_in', metavar: 'S', help: 'url: seconds until the URL expires' },
  ]),
  schemaFlags(WatchBodySchema, [{ field: 'recursive', short: 'r', help: 'watch: subdirectories too' }]),
].reduce((all, f) => ({ options: { ...all.options, ...f.options }, help: `${all.help}\n${f.help}` }));

/** `nullspace machine files ID OP PATH...`. */
export const files: Subcommand = {
  name: 'files',
  summary: 'Files in a machine: ls, cat, rm, mkdir, mv, stat, search, url, watch.',
  usage: `nullspace machine files ID ${FILE_OPS.join('|')} PATH...`,
  flags: `Operations:
  ls PATH [--depth N]           list a directory (N levels down, default 1)
  cat PATH                      print a file (streamed)
  rm PATH                       remove a file, a symlink, or a directory with its content
  mkdir PATH                    create a directory and its parents
  mv FROM TO [--overwrite]      move or rename
  stat PATH                     describe one path
  search PATH PATTERN           search file contents (flags below)
  url PATH [--write]            a signed URL usable without an API key (read by default)
  watch PATH [--recursive]      print changes until interrupted

Flags:
${FILE_FLAGS.help}
  --write                  url: a URL to upload to (curl -T FILE URL) instead of download from`,
  options: {
    ...FILE_FLAGS.options,
    write: { type: 'boolean' },
  },
  async run(input) {
    const { command, values } = input;
    const [id, op] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', command);
    if (op === undefined) throw new UsageError(`missing operation: one of ${FILE_OPS.join(', ')}`, command);
    const machine = new Machine(id, input.connection);
    const f = machine.files;
    switch (op) {
      case 'ls': {
        const [path] = args(input, 1, 'PATH');
        const depth = optionalInteger(values, 'depth', command);
        const { entries, truncated } = await f.list(path as string, depth === undefined ? {} : { depth });
        if (input.json) {
          printJson({ entries: entries.map((e) => toWire(FileEntrySchema, e)), truncated });
          return 0;
        }
        process.stdout.write(
          formatTable(
            ['MODE', 'SIZE', 'MODIFIED', 'PATH'],
            entries.map((e) => [
              e.mode,
              e.type === 'dir' ? '-' : formatBytes(e.size),
              e.mtime.toISOString(),
              nameOf(e),
            ]),
          ),
        );
        if (truncated) process.stderr.write('nullspace: the listing was cut at 100000 entries\n');
        return 0;
      }
      case 'cat': {
        const [path] = args(input, 1, 'PATH');
        await download(machine, path as string, '-');
        return 0;
      }
      case 'rm': {
        const [path] = args(input, 1, 'PATH');
        await f.remove(path as string);
        return 0;
      }
      case 'mkdir': {
        const [path] = args(input, 1, 'PATH');
        const created = await f.makeDir(path as string);
        if (input.json) printJson({ path, created });
        return 0;
      }
      case 'mv': {
        const [from, to] = args(input, 2, 'FROM TO');
        const entry = await f.move(from as string, to as string, { overwrite: flag(values, 'overwrite') });
        if (input.json) printJson(toWire(FileEntrySchema, entry));
        return 0;
      }
      case 'stat': {
        const [path] = args(input, 1, 'PATH');
        const e = await f.stat(path as string);
        if (input.json) printJson(toWire(FileEntrySchema, e));
        else
          process.stdout.write(
            formatKeyValue([
              ['path', e.path],
              ['type', e.type],
              ['size', `${e.size} (${formatBytes(e.size)})`],
              ['mode', e.mode],
              ['mtime', e.mtime.toISOString()],
              ...(e.symlinkTarget === undefined ? [] : [['target', e.symlinkTarget] as [string, string]]),
            ]),
          );
        return 0;
      }
      case 'search': {
        const [path, pattern] = args(input, 2, 'PATH PATTERN');
        const maxResults = optionalInteger(values, 'max-results', command);
        const r = await f.search(path as string, pattern as string, {
          regex: flag(values, 'regex'),
          caseSensitive: !flag(values, 'ignore-case'),
          include: stringList(values, 'include'),
          exclude: stringList(values, 'exclude'),
          ...(maxResults === undefined ? {} : { maxResults }),
        });
        if (input.json) {
          printJson(toWire(SearchResponseSchema, r));
          return 0;
        }
        for (const m of r.matches) process.stdout.write(`${m.path}:${m.line}:${m.column}: ${m.text}\n`);
        if (r.truncated) process.stderr.write('nullspace: stopped at --max-results; there may be more\n');
        return r.matches.length > 0 ? 0 : 1;
      }
      case 'url': {
        const [path] = args(input, 1, 'PATH');
        const expiresIn = optionalInteger(values, 'expires-in', command);
        const signed = await f.signedUrl(path as string, {
          op: flag(values, 'write') ? 'write' : 'read',
          ...(expiresIn === undefined ? {} : { expiresIn }),
        });
        if (input.json)
          printJson({
            url: signed.url,
            op: signed.op,
            path: signed.path,
            expires_at: signed.expiresAt.toISOString(),
            method: signed.method,
          });
        else process.stdout.write(`${signed.url}\n`);
        return 0;
      }
      case 'watch': {
        const [path] = args(input, 1, 'PATH');
        let finish: (code: number) => void = () => undefined;
        const ended = new Promise<number>((resolve) => {
          finish = resolve;
        });
        const handle = await f.watch(path as string, {
          recursive: flag(values, 'recursive'),
          onEvent: (e) => {
            if (input.json) process.stdout.write(`${JSON.stringify(toWire(WatchEventSchema, e))}\n`);
            else
              process.stdout.write(
                `${String(e.id).padStart(6)}  ${e.at.toISOString()}  ${e.type.padEnd(6)}  ${
                  e.type === 'rename' ? `${e.from} -> ${e.to}` : e.path
                }${e.isDir ? '/' : ''}\n`,
              );
          },
          onError: (err) => {
            process.stderr.write(`error: ${err.code}: ${err.message}\n`);
            finish(1);
          },
        });
        const stopWith = (code: number) => () => {
          handle.stop().then(
            () => finish(code),
            () => finish(code),
          );
        };
        process.once('SIGINT', stopWith(130));
        process.once('SIGTERM', stopWith(143));
        return await ended;
      }
      default:
        throw new UsageError(`unknown operation "${op}": one of ${FILE_OPS.join(', ')}`, command);
    }
  },
};
