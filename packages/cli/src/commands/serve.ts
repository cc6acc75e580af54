import { UsageError, flag, parseFlags } from '../args.js';

export const SERVE_HELP = `usage: nullspace serve

Run the Nullspace server in the foreground until SIGINT or SIGTERM. Its settings come from
the environment (NULLSPACE_* variables); the defaults are enough to start on this host.

Flags:
  -h, --help   show help
`;

/** `nullspace serve`: loads the server only here, so other commands never pay for it. */
export async function runServeCommand(words: string[], rest: string[]): Promise<number> {
  const command = 'nullspace serve';
  const { values, positionals } = parseFlags([...words, ...rest], {}, command, { globals: false });
  if (flag(values, 'help')) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`, command);
  const { runServe } = await import('@nullspace/server');
  await runServe();
  return 0;
}
