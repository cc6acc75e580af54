#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { NullspaceError } from '@nullspace/sdk';
import { GLOBAL_HELP, UsageError, splitCommandLine } from './args.js';
import { runKeyCommand } from './commands/key.js';
import { runMachineCommand } from './commands/machine.js';
import { runServeCommand } from './commands/serve.js';
import { runSnapshotCommand } from './commands/snapshot.js';
import { runPoolCommand, runTemplateCommand } from './commands/template.js';
import { runVolumeCommand } from './commands/volume.js';

const HELP = `usage: nullspace COMMAND [flags]

Nullspace: isolated Linux machines driven over HTTP.

Commands:
  serve      run the server in the foreground
  machine    create, inspect and drive machines (create, get, list, connect, kill, pause,
             hibernate, resume, snapshot, fork, timeout, volume, network, preview, ssh, events,
             exec, ps, logs, signal, shell, cp, files, git, code)
  snapshot   list, inspect and delete snapshots (list, get, delete)
  volume     durable storage machines mount (create, list, get, delete)
  template   build, list, inspect and delete templates (build, list, get, logs, delete)
  pool       warm pools of started machines (create, list, get, delete)
  key        tenants' API keys, with the operator's key (create, list, revoke)
  version    print the CLI version

Run 'nullspace COMMAND --help' for more.

${GLOBAL_HELP}
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version?: string;
  };
  return pkg.version ?? 'unknown';
}

async function run(argv: string[]): Promise<number> {
  const { words, rest, afterDashDash } = splitCommandLine(argv, 2);
  const [group, ...groupWords] = words;
  switch (group) {
    case undefined:
      if (rest.includes('--version')) {
        process.stdout.write(`${version()}\n`);
        return 0;
      }
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(HELP);
        return 0;
      }
      if (rest[0] !== undefined && !rest[0].startsWith('--api-') && rest[0] !== '--json')
        throw new UsageError(`unknown flag "${rest[0]}"`);
      throw new UsageError('missing command');
    case 'help':
      return run([...groupWords, ...rest, '--help']);
    case 'version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case 'serve':
      return runServeCommand(groupWords, rest);
    case 'machine':
      return runMachineCommand(groupWords, rest, afterDashDash);
    case 'snapshot':
      return runSnapshotCommand(groupWords, rest, afterDashDash);
    case 'volume':
      return runVolumeCommand(groupWords, rest, afterDashDash);
    case 'template':
      return runTemplateCommand(groupWords, rest, afterDashDash);
    case 'pool':
      return runPoolCommand(groupWords, rest, afterDashDash);
    case 'key':
      return runKeyCommand(groupWords, rest, afterDashDash);
    default:
      throw new UsageError(`unknown command "${group}"`);
  }
}

function report(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`error: ${err.message}\nRun '${err.command} --help' for usage.\n`);
    return 2;
  }
  if (err instanceof NullspaceError) {
    process.stderr.write(`error: ${err.code}: ${err.message}\n`);
    return 1;
  }
  // A bug or an unexpected failure, not an API error: the stack helps, but only on request.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${message}\n`);
  if (process.env.NULLSPACE_DEBUG && err instanceof Error && err.stack)
    process.stderr.write(`${err.stack}\n`);
  return 1;
}

// Set the exit status rather than calling process.exit(), so buffered output is flushed and a
// running server (`serve`) keeps the process alive.
process.exitCode = await run(process.argv.slice(2)).catch(report);
