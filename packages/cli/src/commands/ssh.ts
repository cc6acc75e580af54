/** `machine ssh`: a short-lived certificate for the user's key, and ssh through the server's relay. */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { constants, homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { SshAccessBodySchema } from '@nullspace/protocol';
import {
  Machine,
  type SshAccess,
  type SshFiles,
  sshAccessToWire,
  sshArgs,
  sshCommandLine,
} from '@nullspace/sdk';
import {
  type OptionValues,
  type Subcommand,
  flag,
  optionalInteger,
  optionalString,
  singleId,
} from '../args.js';
import { printJson, relativeTime } from '../output.js';
import { schemaFlags } from '../schema-flags.js';

const DEFAULT_PUBLIC_KEYS = ['id_ed25519.pub', 'id_rsa.pub'];

/** `~/.config/nullspace` (or `$XDG_CONFIG_HOME/nullspace`). */
function configDir(): string {
  const xdg = process.env.XDG_CONFIG_HOME;
  return join(xdg?.startsWith('/') ? xdg : join(homedir(), '.config'), 'nullspace');
}

/** The public key file to use: the flag's, else the first default that exists. */
function publicKeyFile(values: OptionValues): string {
  const explicit = optionalString(values, 'public-key');
  if (explicit !== undefined) return explicit;
  const dir = join(homedir(), '.ssh');
  const found = DEFAULT_PUBLIC_KEYS.map((name) => join(dir, name)).find((f) => existsSync(f));
  if (found === undefined)
    throw new Error(
      `no SSH public key found (looked for ${DEFAULT_PUBLIC_KEYS.map((n) => join(dir, n)).join(' and ')}); ` +
        "make one with 'ssh-keygen -t ed25519' or give --public-key FILE",
    );
  return found;
}

/** Reads a public key file, refusing a private key before it can leave this computer. */
function readPublicKey(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read the public key ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  if (/PRIVATE KEY-----|^PuTTY-User-Key-File-/m.test(text))
    throw new Error(
      `${file} is a private key: give the public key (${file.endsWith('.pub') ? file : `${file}.pub`}); ` +
        'the private key never leaves your computer',
    );
  return text.trim();
}

/**
 * Where the certificate goes: a file per machine in the config directory, not next to the key as
 * `<key>-cert.pub` — ssh offers a certificate found there to every host it connects to, which
 * would show each of them the machine's id and the certificate's key id. The server's ready
 * command names the same file.
 */
function certificateFileFor(access: SshAccess): string {
  return join(configDir(), 'ssh', `${access.machineId}-cert.pub`);
}

/** Writes a file whole or not at all (a temporary file renamed over it). */
async function writeFileAtomic(file: string, text: string, mode: number): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, file);
}

/**
 * Puts `line` into a known_hosts file, replacing the line for the same host pattern (with the same
 * marker): one line per machine, however often access is renewed.
 */
async function upsertKnownHosts(file: string, line: string): Promise<void> {
  const keyOf = (l: string) => {
    const parts = l.trim().split(/\s+/);
    return parts[0]?.startsWith('@') ? `${parts[0]} ${parts[1] ?? ''}` : (parts[0] ?? '');
  };
  const key = keyOf(line);
  const old = await readFile(file, 'utf8').catch(() => '');
  const kept = old.split('\n').filter((l) => l.trim() !== '' && keyOf(l) !== key);
  await writeFileAtomic(file, `${[...kept, line.trim()].join('\n')}\n`, 0o644);
}

function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Runs ssh with this terminal and returns its exit status (128 + N for signal N, like a shell). */
function runSsh(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', args, { stdio: 'inherit' });
    // Ctrl-C reaches ssh directly (same terminal); this process must outlive it to report its status.
    const ignore = () => {};
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGINT', ignore);
    process.on('SIGTERM', forward);
    process.on('SIGHUP', forward);
    const done = () => {
      process.off('SIGINT', ignore);
      process.off('SIGTERM', forward);
      process.off('SIGHUP', forward);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      done();
      reject(
        err.code === 'ENOENT'
          ? new Error(
              'ssh is not installed (the OpenSSH client); use --print to see the command it would run',
            )
          : err,
      );
    });
    child.once('exit', (code, signal) => {
      done();
      if (code !== null) resolve(code);
      else
        resolve(
          128 +
            (signal === null ? 0 : ((constants.signals as Record<string, number | undefined>)[signal] ?? 0)),
        );
    });
  });
}

const SSH_FLAGS = schemaFlags(SshAccessBodySchema, [{ field: 'expires_in_minutes' }]);

export const ssh: Subcommand = {
  name: 'ssh',
  summary: 'Log in to a machine with ssh, using a short-lived certificate for your key.',
  usage: 'nullspace machine ssh ID [flags] [-- COMMAND...]',
  flags: `Sends your public key (never the private key) to the server, which signs it into an OpenSSH
certificate for this machine, then runs ssh through the server's relay (exit status: ssh's).
The certificate is saved as ~/.config/nullspace/ssh/ID-cert.pub and the machine's host CA line in
~/.config/nullspace/known_hosts; the host key is checked strictly. After --, the remote command: one argument is a shell command line,
several are run as an argv (as with 'machine exec').

Flags:
  --public-key FILE        public key to sign (default: ~/.ssh/id_ed25519.pub, then ~/.ssh/id_rsa.pub)
${SSH_FLAGS.help}
  --print                  save the files and print the ssh command instead of running it`,
  options: {
    'public-key': { type: 'string' },
    ...SSH_FLAGS.options,
    print: { type: 'boolean' },
  },
  takesDashDash: true,
  async run(input) {
    const { values, command } = input;
    const id = singleId(input, 'machine id');
    const expiresInMinutes = optionalInteger(values, 'expires-in-minutes', command);
    const keyFile = publicKeyFile(values);
    const publicKey = readPublicKey(keyFile);
    const access = await new Machine(id, input.connection).createSshAccess({
      publicKey,
      ...(expiresInMinutes === undefined ? {} : { expiresInMinutes }),
    });
    const certFile = certificateFileFor(access);
    await writeFileAtomic(certFile, `${access.certificate}\n`, 0o644);
    const knownHostsFile = join(configDir(), 'known_hosts');
    await upsertKnownHosts(knownHostsFile, access.knownHosts);
    const identity = keyFile.endsWith('.pub') ? keyFile.slice(0, -4) : undefined;
    const files: SshFiles = {
      certificateFile: certFile,
      knownHostsFile,
      ...(identity !== undefined && existsSync(identity) ? { identityFile: identity } : {}),
    };
    // As in `machine exec`: one argument is a shell command line, several are an argv (quoted
    // here, because ssh joins its arguments with spaces for the remote shell).
    const args = input.afterDashDash ?? [];
    const remote = args.length > 1 ? [args.map(shellWord).join(' ')] : args;
    const line = [sshCommandLine(access, files), ...remote.map(shellWord)].join(' ');
    if (input.json) {
      printJson({
        ...sshAccessToWire(access),
        certificate_file: files.certificateFile,
        known_hosts_file: knownHostsFile,
        identity_file: files.identityFile ?? null,
        ssh_command: line,
      });
      return 0;
    }
    if (flag(values, 'print')) {
      process.stdout.write(`${line}\n`);
      process.stderr.write(
        `certificate ${access.certificateId} valid until ${access.expiresAt.toISOString()} (${relativeTime(access.expiresAt.toISOString())})\n`,
      );
      return 0;
    }
    return runSsh([...sshArgs(access, files), ...remote]);
  },
};
