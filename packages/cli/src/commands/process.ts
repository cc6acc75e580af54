import { constants } from 'node:os';
import { ProcessInfoSchema, PtyCreateBodySchema, RunCommandBodySchema } from '@nullspace/protocol';
import {
  type CommandHandle,
  type CommandResult,
  Machine,
  type ProcessInfo,
  commandResultToWire,
  toWire,
} from '@nullspace/sdk';
import { type Subcommand, UsageError, flag, keyValueMap, optionalInteger, optionalString } from '../args.js';
import { formatTable, printJson, relativeTime } from '../output.js';
import { schemaFlags } from '../schema-flags.js';

/** The exit status a shell would report: the code, 128 + signal number, or 124 on timeout. */
export function exitStatusOf(result: CommandResult): number {
  if (result.timedOut) return 124;
  if (result.signal !== null) {
    const number = (constants.signals as Record<string, number | undefined>)[result.signal];
    return 128 + (number ?? 0);
  }
  return result.exitCode ?? 1;
}

function stateOf(p: ProcessInfo): string {
  if (p.running) return 'running';
  if (p.timedOut) return 'timed out';
  if (p.signal) return p.signal;
  return `exit ${p.exitCode}`;
}

/** Writes output as exact bytes while it comes. */
const toTerminal = {
  onData: (bytes: Buffer, stream: 'stdout' | 'stderr') => {
    (stream === 'stdout' ? process.stdout : process.stderr).write(bytes);
  },
};

/** Sends this program's stdin to the process as it is read, then closes the process's stdin. */
async function pumpStdin(handle: CommandHandle): Promise<void> {
  for await (const chunk of process.stdin) await handle.sendStdin(chunk as Buffer);
  await handle.closeStdin();
}

const EXEC_FLAGS = schemaFlags(RunCommandBodySchema, [
  { field: 'cwd', metavar: 'DIR' },
  { field: 'envs', name: 'env', metavar: 'KEY=VALUE' },
  { field: 'timeout_ms', metavar: 'MS' },
  { field: 'background' },
  { field: 'tag', metavar: 'NAME' },
]);

export const exec: Subcommand = {
  name: 'exec',
  summary: 'Run a command in a machine, streaming its output; exits with its exit status.',
  usage: 'nullspace machine exec ID [flags] -- CMD [ARGS...]',
  flags: `One argument after -- is a shell command line (bash -c); several are run as an argv.
Output is printed as it comes, byte for byte. Exit status: the command's, 128+N when signal N
ended it, 124 when it ran past --timeout-ms. With --background the pid is printed at once and
the command runs on (see 'machine logs' and 'machine ps').

Flags:
${EXEC_FLAGS.help}
  --stdin                  stream this program's standard input to the command`,
  options: {
    ...EXEC_FLAGS.options,
    stdin: { type: 'boolean' },
  },
  takesDashDash: true,
  flagHint: 'put the command after --, as in: nullspace machine exec ID -- ls -la',
  async run(input) {
    const { values, command } = input;
    const [id, ...beforeDash] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', command);
    if (input.afterDashDash !== undefined && beforeDash.length > 0)
      throw new UsageError(`unexpected argument "${beforeDash[0]}" before --`, command);
    const argv = input.afterDashDash ?? beforeDash;
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new UsageError('missing command: put it after --', command);
    const background = flag(values, 'background');
    const tag = optionalString(values, 'tag');
    if (tag !== undefined && !background) throw new UsageError('--tag names a --background command', command);
    if (background && flag(values, 'stdin'))
      throw new UsageError('--stdin cannot be combined with --background', command);

    const timeoutMs = optionalInteger(values, 'timeout-ms', command);
    const cwd = optionalString(values, 'cwd');
    const envs = keyValueMap(values, 'env', command);
    const machine = new Machine(id, input.connection);
    const common = {
      ...(argv.length > 1 ? { args } : {}),
      ...(cwd === undefined ? {} : { cwd }),
      ...(envs === undefined ? {} : { envs }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    };
    if (background) {
      const h = await machine.commands.run(cmd, { ...common, background: true, ...(tag ? { tag } : {}) });
      if (input.json) printJson({ pid: h.pid, tag: h.tag });
      else process.stdout.write(`${h.pid}\n`);
      return 0;
    }
    let result: CommandResult;
    if (flag(values, 'stdin')) {
      // The process must be running to take stdin as it comes: start it, follow it, feed it.
      const h = await machine.commands.run(cmd, {
        ...common,
        background: true,
        timeoutMs: timeoutMs ?? 60_000,
        ...(input.json ? {} : toTerminal),
      });
      await pumpStdin(h);
      result = await h.wait();
    } else result = await machine.commands.run(cmd, { ...common, ...(input.json ? {} : toTerminal) });

    if (input.json) printJson(commandResultToWire(result));
    else if (result.timedOut)
      process.stderr.write(`nullspace: command timed out after ${result.durationMs} ms\n`);
    return exitStatusOf(result);
  },
};

export const ps: Subcommand = {
  name: 'ps',
  summary: 'List the commands and terminals started in a machine through the API.',
  usage: 'nullspace machine ps ID',
  flags: 'Shows pid, tag, kind (command or pty), state (running, exit N, the signal, timed out), start.',
  options: {},
  async run(input) {
    const [id] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', input.command);
    const list = await new Machine(id, input.connection).commands.list();
    if (input.json) printJson({ processes: list.map((p) => toWire(ProcessInfoSchema, p)) });
    else
      process.stdout.write(
        formatTable(
          ['PID', 'TAG', 'KIND', 'STATE', 'STARTED', 'COMMAND'],
          list.map((p) => [
            String(p.pid),
            p.tag ?? '-',
            p.kind,
            stateOf(p),
            relativeTime(p.startedAt.toISOString()),
            [p.cmd, ...p.args].join(' ').slice(0, 60),
          ]),
        ),
      );
    return 0;
  },
};

export const logs: Subcommand = {
  name: 'logs',
  summary: "Print a command's output (kept: the last 4 MiB); --follow streams it until it ends.",
  usage: 'nullspace machine logs ID PID|TAG [--follow]',
  flags: `Flags:
  --follow, -f   keep printing new output until the process ends (exits with its status)`,
  options: { follow: { type: 'boolean', short: 'f' } },
  async run(input) {
    const [id, ref] = input.positionals;
    if (id === undefined || ref === undefined)
      throw new UsageError('give a machine id and a pid or tag', input.command);
    const machine = new Machine(id, input.connection);
    const target = /^\d+$/.test(ref) ? Number(ref) : ref;
    if (flag(input.values, 'follow')) {
      const h = await machine.commands.connect(target, input.json ? {} : toTerminal);
      const result = await h.wait();
      if (input.json) printJson(commandResultToWire(result));
      return exitStatusOf(result);
    }
    const l = await machine.commands.logs(target);
    if (input.json) {
      printJson({
        process: toWire(ProcessInfoSchema, l.process),
        offset: l.offset,
        next_offset: l.nextOffset,
        truncated: l.truncated,
        dropped_bytes: l.droppedBytes,
        stdout: l.stdout,
        stderr: l.stderr,
      });
      return 0;
    }
    if (l.truncated) process.stderr.write(`[... ${l.droppedBytes} earlier bytes dropped ...]\n`);
    process.stdout.write(l.stdout);
    process.stderr.write(l.stderr);
    return 0;
  },
};

export const signal: Subcommand = {
  name: 'signal',
  summary: 'Send a signal (default SIGTERM) to a command and everything it started.',
  usage: 'nullspace machine signal ID PID|TAG [SIGNAL]',
  flags: 'SIGNAL: a name such as SIGTERM, TERM or int (default SIGTERM). Kill: SIGKILL.',
  options: {},
  async run(input) {
    const [id, ref, sig] = input.positionals;
    if (id === undefined || ref === undefined)
      throw new UsageError('give a machine id and a pid or tag', input.command);
    const target = /^\d+$/.test(ref) ? Number(ref) : ref;
    await new Machine(id, input.connection).commands.signal(target, sig ?? 'SIGTERM');
    if (input.json) printJson({ ok: true });
    return 0;
  },
};

const SHELL_FLAGS = schemaFlags(PtyCreateBodySchema, [
  { field: 'cwd', metavar: 'DIR' },
  { field: 'envs', name: 'env', metavar: 'KEY=VALUE' },
]);

export const shell: Subcommand = {
  name: 'shell',
  summary: 'Open an interactive terminal in a machine (raw mode; the size follows the window).',
  usage: 'nullspace machine shell ID [-- CMD [ARGS...]]',
  flags: `Runs the machine's login shell, or CMD. Exits with its exit status.

Flags:
${SHELL_FLAGS.help}`,
  options: SHELL_FLAGS.options,
  takesDashDash: true,
  async run(input) {
    const [id] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', input.command);
    const [cmd, ...args] = input.afterDashDash ?? [];
    const cwd = optionalString(input.values, 'cwd');
    const envs = keyValueMap(input.values, 'env', input.command);
    const out = process.stdout;
    const term = await new Machine(id, input.connection).pty.create({
      // A terminal that does not know its size (0 × 0) gets the classic 80 × 24.
      cols: out.isTTY && out.columns > 0 ? out.columns : 80,
      rows: out.isTTY && out.rows > 0 ? out.rows : 24,
      ...(cmd === undefined ? {} : { cmd, args }),
      ...(cwd === undefined ? {} : { cwd }),
      ...(envs === undefined ? {} : { envs }),
      onData: (b) => out.write(b),
    });
    const stdin = process.stdin;
    const raw = stdin.isTTY === true;
    if (raw) stdin.setRawMode(true);
    const onInput = (chunk: Buffer) => {
      term.sendInput(chunk).catch(() => undefined);
    };
    const onResize = () => {
      if (out.columns > 0 && out.rows > 0) term.resize(out.columns, out.rows).catch(() => undefined);
    };
    stdin.on('data', onInput);
    if (out.isTTY) out.on('resize', onResize);
    try {
      const end = await term.wait();
      return end.signal
        ? 128 + ((constants.signals as Record<string, number | undefined>)[end.signal] ?? 0)
        : (end.exitCode ?? 1);
    } finally {
      stdin.off('data', onInput);
      out.off('resize', onResize);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      term.disconnect();
    }
  },
};
