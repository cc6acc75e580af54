/**
 * `nullspace machine desktop ID ACTION ...`: the SDK's `machine.desktop` from the command line —
 * screenshots, clicks, typing, keys, windows, the viewer URL and recordings.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Machine, type Recording } from '@nullspace/sdk';
import {
  type CommandInput,
  type OptionSpec,
  type Subcommand,
  UsageError,
  flag,
  optionalInteger,
  optionalString,
} from '../args.js';
import { formatTable, printJson } from '../output.js';

const OPTIONS = {
  output: { type: 'string', short: 'o' },
  format: { type: 'string' },
  button: { type: 'string' },
  double: { type: 'boolean' },
  'view-only': { type: 'boolean' },
  open: { type: 'boolean' },
  fps: { type: 'string' },
  'delay-ms': { type: 'string' },
} as const satisfies OptionSpec;

interface Context {
  input: CommandInput;
  desktop: Machine['desktop'];
  args: string[];
}

interface Action {
  args: string;
  summary: string;
  flags: (keyof typeof OPTIONS)[];
  run(ctx: Context): Promise<number>;
}

function integer(raw: string | undefined, name: string, command: string): number {
  if (raw === undefined || !/^\d+$/.test(raw))
    throw new UsageError(`${name}: expected a number, got "${raw ?? ''}"`, command);
  return Number(raw);
}

function recordingRow(r: Recording): string[] {
  return [r.id, r.status, `${r.width}x${r.height}@${r.fps}`, String(r.sizeBytes), r.startedAt.toISOString()];
}

function recordingWire(r: Recording): Record<string, unknown> {
  return {
    id: r.id,
    status: r.status,
    fps: r.fps,
    width: r.width,
    height: r.height,
    started_at: r.startedAt.toISOString(),
    stopped_at: r.stoppedAt === null ? null : r.stoppedAt.toISOString(),
    size_bytes: r.sizeBytes,
  };
}

/** Opens a URL with the desktop's browser of the user running the CLI (xdg-open, open). */
function openInBrowser(url: string): void {
  const opener =
    process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(opener, [url], { stdio: 'ignore', detached: true });
  child.on('error', (err) => process.stderr.write(`could not open a browser (${opener}): ${err.message}\n`));
  child.unref();
}

const ACTIONS: Record<string, Action> = {
  screenshot: {
    args: '',
    summary: 'save a screenshot (-o FILE, default screenshot.png; --format jpeg)',
    flags: ['output', 'format'],
    async run({ input, desktop }) {
      const format = optionalString(input.values, 'format') ?? 'png';
      if (format !== 'png' && format !== 'jpeg')
        throw new UsageError(`--format: expected png or jpeg, got "${format}"`, input.command);
      const out = optionalString(input.values, 'output') ?? `screenshot.${format === 'png' ? 'png' : 'jpg'}`;
      const bytes = await desktop.screenshot({ format });
      if (out === '-') process.stdout.write(bytes);
      else {
        writeFileSync(out, bytes);
        if (input.json) printJson({ file: out, bytes: bytes.length, format });
        else process.stdout.write(`${out} (${bytes.length} bytes)\n`);
      }
      return 0;
    },
  },
  click: {
    args: 'X Y',
    summary: 'click at X Y (--button left|middle|right, --double)',
    flags: ['button', 'double'],
    async run({ input, desktop, args }) {
      const [xs, ys, extra] = args;
      if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`, input.command);
      const x = integer(xs, 'X', input.command);
      const y = integer(ys, 'Y', input.command);
      const button = optionalString(input.values, 'button') ?? 'left';
      if (flag(input.values, 'double')) await desktop.doubleClick(x, y);
      else if (button === 'left') await desktop.leftClick(x, y);
      else if (button === 'right') await desktop.rightClick(x, y);
      else if (button === 'middle') await desktop.middleClick(x, y);
      else throw new UsageError(`--button: expected left, middle or right, got "${button}"`, input.command);
      return 0;
    },
  },
  type: {
    args: 'TEXT',
    summary: 'type TEXT into the focused window (any Unicode; --delay-ms between keys)',
    flags: ['delay-ms'],
    async run({ input, desktop, args }) {
      if (args.length !== 1) throw new UsageError('expected one TEXT argument (quote it)', input.command);
      const delayMs = optionalInteger(input.values, 'delay-ms', input.command);
      await desktop.write(args[0] as string, delayMs === undefined ? {} : { delayMs });
      return 0;
    },
  },
  key: {
    args: 'COMBO...',
    summary: 'press keys or combinations in turn (enter, ctrl+c, alt+F4, X keysym names)',
    flags: [],
    async run({ input, desktop, args }) {
      if (args.length === 0)
        throw new UsageError('expected a key or combination, e.g. ctrl+c', input.command);
      await desktop.press(args);
      return 0;
    },
  },
  windows: {
    args: '',
    summary: 'list the windows (id, app, pid, geometry, focus, title)',
    flags: [],
    async run({ input, desktop }) {
      const ws = await desktop.listWindows();
      if (input.json) printJson(ws);
      else
        process.stdout.write(
          formatTable(
            ['ID', 'APP', 'PID', 'GEOMETRY', 'FOCUSED', 'TITLE'],
            ws.map((w) => [
              `0x${w.id.toString(16)}`,
              w.app,
              w.pid === null ? '-' : String(w.pid),
              `${w.width}x${w.height}+${w.x}+${w.y}`,
              w.focused ? 'yes' : '',
              w.title,
            ]),
          ),
        );
      return 0;
    },
  },
  viewer: {
    args: '',
    summary: 'print a signed viewer URL (--view-only; --open opens it in your browser)',
    flags: ['view-only', 'open'],
    async run({ input, desktop }) {
      const s = await desktop.stream.start({ viewOnly: flag(input.values, 'view-only') });
      if (input.json)
        printJson({
          url: s.url,
          view_only: s.viewOnly,
          grant_id: s.grantId,
          expires_at: s.expiresAt.toISOString(),
        });
      else process.stdout.write(`${s.url}\n`);
      if (flag(input.values, 'open')) openInBrowser(s.url);
      return 0;
    },
  },
  record: {
    args: 'start | stop ID | list | download ID | delete ID',
    summary: 'recordings: start (--fps), stop ID, list, download ID (-o FILE), delete ID',
    flags: ['fps', 'output'],
    async run({ input, desktop, args }) {
      const [verb, id] = args;
      const needId = () => {
        if (id === undefined) throw new UsageError(`record ${verb}: missing recording id`, input.command);
        return id;
      };
      const print = (r: Recording) => {
        if (input.json) printJson(recordingWire(r));
        else process.stdout.write(`${r.id} ${r.status}\n`);
      };
      if (verb === 'start') {
        const fps = optionalInteger(input.values, 'fps', input.command);
        print(await desktop.recordings.start(fps === undefined ? {} : { fps }));
      } else if (verb === 'stop') print(await desktop.recordings.stop(needId()));
      else if (verb === 'delete') {
        await desktop.recordings.delete(needId());
        if (!input.json) process.stdout.write(`${id} deleted\n`);
      } else if (verb === 'list') {
        const rs = await desktop.recordings.list();
        if (input.json) printJson(rs.map(recordingWire));
        else
          process.stdout.write(
            formatTable(['ID', 'STATUS', 'SIZE', 'BYTES', 'STARTED'], rs.map(recordingRow)),
          );
      } else if (verb === 'download') {
        const rec = needId();
        const out = optionalString(input.values, 'output') ?? `${rec}.mp4`;
        const bytes = await desktop.recordings.download(rec);
        if (out === '-') process.stdout.write(bytes);
        else {
          writeFileSync(out, bytes);
          if (!input.json) process.stdout.write(`${out} (${bytes.length} bytes)\n`);
          else printJson({ file: out, bytes: bytes.length });
        }
      } else
        throw new UsageError(
          'record: expected start, stop ID, list, download ID or delete ID',
          input.command,
        );
      return 0;
    },
  },
};

/** Flags every action takes (the connection and output ones). */
const GLOBAL_FLAGS = new Set(['api-url', 'api-key', 'json', 'help']);

export const desktop: Subcommand = {
  name: 'desktop',
  summary: 'Drive a desktop machine: screenshot, click, type, key, windows, viewer, record.',
  usage: 'nullspace machine desktop ID ACTION [ARGS] [flags]',
  flags: `Actions:
${Object.entries(ACTIONS)
  .map(([name, a]) => `  ${`${name} ${a.args}`.trimEnd()}\n      ${a.summary}`)
  .join('\n')}

Flags:
  -o, --output FILE   screenshot / record download: where to write (- for stdout)
  --format FMT        screenshot: png (default) or jpeg
  --button BTN        click: left (default), middle or right
  --double            click: a double click
  --delay-ms N        type: delay between keys
  --view-only         viewer: the view-only URL (its VNC server ignores input)
  --open              viewer: open the URL in your browser
  --fps N             record start: frames per second (default 10)

Examples:
  nullspace machine create --template desktop -q
  nullspace machine desktop mch_abc... screenshot -o screen.png
  nullspace machine desktop mch_abc... click 512 384
  nullspace machine desktop mch_abc... type 'hello world'
  nullspace machine desktop mch_abc... key ctrl+s
  nullspace machine desktop mch_abc... viewer --view-only --open
  nullspace machine desktop mch_abc... record start --fps 15`,
  options: OPTIONS,
  async run(input) {
    const [id, name, ...args] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', input.command);
    if (name === undefined)
      throw new UsageError('missing desktop action (screenshot, click, ...)', input.command);
    const action = Object.hasOwn(ACTIONS, name) ? ACTIONS[name] : undefined;
    if (action === undefined)
      throw new UsageError(
        `unknown desktop action "${name}"; expected one of ${Object.keys(ACTIONS).join(', ')}`,
        input.command,
      );
    for (const [key, value] of Object.entries(input.values))
      if (value !== undefined && !GLOBAL_FLAGS.has(key) && !(action.flags as string[]).includes(key))
        throw new UsageError(`--${key} is not used by "desktop ${name}"`, input.command);
    return action.run({ input, desktop: new Machine(id, input.connection).desktop, args });
  },
};
