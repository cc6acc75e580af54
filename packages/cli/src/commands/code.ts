import { createInterface } from 'node:readline';
import { CODE_LANGUAGES, type CodeLanguage } from '@nullspace/protocol';
import { type CodeResult, type Execution, Machine, type RunCodeOptions } from '@nullspace/sdk';
import { type Subcommand, UsageError, flag, oneOf, optionalInteger, optionalString } from '../args.js';
import { printJson } from '../output.js';

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += (chunk as Buffer).toString('utf8');
  return text;
}

/** A result as a terminal shows it: its text, or what it carries when it has none. */
function describe(r: CodeResult): string {
  if (r.text !== undefined) return r.text;
  const kinds = (
    ['png', 'jpeg', 'svg', 'pdf', 'html', 'markdown', 'json', 'latex', 'javascript'] as const
  ).filter((k) => r[k] !== undefined);
  return `<${kinds.join(', ') || 'result'}>`;
}

const live = (): Pick<RunCodeOptions, 'onStdout' | 'onStderr' | 'onResult'> => ({
  onStdout: (t) => process.stdout.write(t),
  onStderr: (t) => process.stderr.write(t),
  onResult: (r) => {
    const text = describe(r);
    const ids = r.artifactIds?.length ? `  [artifact ${r.artifactIds.join(', ')}]` : '';
    process.stdout.write(`${r.isMainResult ? 'Out: ' : ''}${text}${ids}\n`);
  },
});

const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

function printError(ex: Execution): void {
  if (!ex.error) return;
  const tb = ex.error.traceback.join('\n');
  // ipykernel's tracebacks carry terminal colours; keep them for a terminal only.
  const text = process.stderr.isTTY ? tb : tb.replace(ANSI_COLOUR, '');
  // A traceback that does not end with the error (a timeout's is the interrupted code's) gets it.
  const last = `${ex.error.name}: ${ex.error.value}`;
  process.stderr.write(text.includes(ex.error.name) ? `${text}\n` : `${text ? `${text}\n` : ''}${last}\n`);
}

function toJson(ex: Execution): Record<string, unknown> {
  return {
    execution_id: ex.id,
    context_id: ex.contextId,
    language: ex.language,
    stdout: ex.logs.stdout.join(''),
    stderr: ex.logs.stderr.join(''),
    results: ex.results.map((r) => {
      const { isMainResult, artifactIds, ...rest } = r;
      return { is_main_result: isMainResult, ...rest, ...(artifactIds ? { artifact_ids: artifactIds } : {}) };
    }),
    error: ex.error ?? null,
    execution_count: ex.executionCount,
    ...(ex.exitCode === undefined ? {} : { exit_code: ex.exitCode }),
  };
}

export const code: Subcommand = {
  name: 'code',
  summary: "Run code in a machine's code interpreter (python, javascript, bash); --repl for a loop.",
  usage: "nullspace machine code ID [--language L] [--context C] ['CODE' | --repl]",
  flags: `Runs CODE (standard input when it is not given) in a context of the machine's code
interpreter (machines of the code-interpreter template) and prints output and results as they
come; the code's error goes to stderr and the exit status is 1. State stays in the context between
calls. --repl reads code line by line (a line ending in ':' or '\\' continues until an empty
line) until end of input.

Flags:
  --language L      ${CODE_LANGUAGES.join(', ')} (default python; with --context, the context's)
  --context C       a context id (ctx_... or default-<language>)
  --timeout S       interrupt a run after S seconds (default 300)
  --repl            an interactive loop`,
  options: {
    language: { type: 'string' },
    context: { type: 'string' },
    timeout: { type: 'string' },
    repl: { type: 'boolean' },
  },
  async run(input) {
    const { values, command } = input;
    const [id, text, ...extra] = input.positionals;
    if (id === undefined) throw new UsageError('missing machine id', command);
    if (extra.length > 0) throw new UsageError('give the code as one argument (quote it)', command);
    const language: CodeLanguage | undefined = oneOf(values, 'language', CODE_LANGUAGES, command);
    const context = optionalString(values, 'context');
    const timeout = optionalInteger(values, 'timeout', command);
    const machine = new Machine(id, input.connection);
    const opts: RunCodeOptions = {
      ...(language === undefined ? {} : { language }),
      ...(context === undefined ? {} : { context }),
      ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }),
    };
    if (flag(values, 'repl')) {
      if (text !== undefined)
        throw new UsageError('--repl reads code from the terminal, not an argument', command);
      return repl(machine, opts);
    }
    const source = text ?? (await readStdin());
    const ex = await machine.codeInterpreter.run(source, { ...opts, ...(input.json ? {} : live()) });
    if (input.json) printJson(toJson(ex));
    else printError(ex);
    return ex.error ? 1 : 0;
  },
};

async function repl(machine: Machine, opts: RunCodeOptions): Promise<number> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
  const prompt = (more: boolean) => {
    if (!process.stdin.isTTY) return; // code piped in: no prompts in the output
    rl.setPrompt(more ? '... ' : `${opts.language ?? 'python'}> `);
    rl.prompt();
  };
  let pending: string[] = [];
  let failed = false;
  prompt(false);
  for await (const line of rl) {
    const continues = pending.length > 0 ? line.trim() !== '' : /[:\\]\s*$/.test(line);
    if (continues || (pending.length > 0 && line.trim() !== '')) {
      pending.push(line);
      prompt(true);
      continue;
    }
    const source = [...pending, line].join('\n');
    pending = [];
    if (source.trim() !== '') {
      const ex = await machine.codeInterpreter.run(source, { ...opts, ...live() });
      printError(ex);
      failed = ex.error !== undefined;
    }
    prompt(false);
  }
  if (pending.length > 0) {
    const ex = await machine.codeInterpreter.run(pending.join('\n'), { ...opts, ...live() });
    printError(ex);
    failed = ex.error !== undefined;
  }
  if (process.stdin.isTTY) process.stdout.write('\n');
  return failed ? 1 : 0;
}
