import { randomBytes } from 'node:crypto';
import {
  chmod,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { CodedError, invalidArgument, parseSshPublicKey } from '@nullspace/protocol';
import { host } from '@nullspace/runtime';

/** What `signUser` and `signHost` return. */
export interface SignedCertificate {
  /** The certificate, one line (the text of a `-cert.pub` file). */
  certificate: string;
  /** Its serial (a random 63-bit number, decimal: beyond what a JavaScript number holds exactly). */
  serial: string;
  /** Valid from (a minute before it was signed, for clients whose clock is a little behind). */
  validAfter: Date;
  /** Valid until (exclusive): sshd refuses it from this second on. */
  validBefore: Date;
}

/** Extensions of a user certificate: a terminal, port forwarding and the agent; no X11, no ~/.ssh/rc. */
const USER_EXTENSIONS = ['permit-pty', 'permit-port-forwarding', 'permit-agent-forwarding'];
/** How far back a certificate's validity starts, for clock skew between the server and sshd. */
const BACKDATE_MS = 60_000;
/** Default validity of a host certificate: re-signed whenever SSH access is set up again. */
const HOST_CERT_MINUTES = 7 * 24 * 60;
/** The smallest RSA key signed: OpenSSH itself refuses below 1024 bits, and 1024 is weak already. */
const MIN_RSA_BITS = 2048;
/** A principal becomes part of a comma-separated list, and a user name is one of them. */
const PRINCIPAL = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,254}$/;

/**
 * The server's SSH certificate authority: one ed25519 key pair in `<dataDir>/ssh/` (0700; the
 * private key 0600), made once by `init` and never replaced, because every machine's sshd trusts
 * it. Signing uses the `ssh-keygen` of the host (openssh-client) in a private directory that is
 * always removed. The CA signs user certificates (what `ssh` logs in with) and machines' host
 * certificates (what a known_hosts `@cert-authority` line lets `ssh` trust); OpenSSH keeps the two
 * apart by the certificate type, so one can never stand in for the other.
 */
export class SshCa {
  readonly dir: string;
  private readonly keyPath: string;
  private caPublicKey: string | undefined;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'ssh');
    this.keyPath = join(this.dir, 'ca');
  }

  /**
   * Makes the CA key pair if there is none, and loads its public key. Idempotent; also removes
   * signing directories a crash left behind. The public key is always derived from the private
   * key (`ca.pub` is written for people to read), so the two cannot disagree.
   */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    for (const name of await readdir(this.dir)) {
      if (name.startsWith('sign-') || name.startsWith('.ca-new-'))
        await rm(join(this.dir, name), { recursive: true, force: true });
    }
    if (!(await exists(this.keyPath))) await this.generate();
    // ssh-keygen refuses a private key others may read; a copied data directory can lose the mode.
    await chmod(this.keyPath, 0o600);
    // `-y` prints the key's comment too (if any): keep type and key, and name it ourselves.
    const [type, key] = (await keygen(['-y', '-f', this.keyPath])).stdout.trim().split(/\s+/);
    this.caPublicKey = `${type} ${key} nullspace-ca`;
    await writeFile(`${this.keyPath}.pub`, `${this.caPublicKey}\n`, { mode: 0o644 });
  }

  /** The CA's public key line (`ssh-ed25519 AAAA... nullspace-ca`). */
  publicKey(): string {
    if (this.caPublicKey === undefined) throw new CodedError('internal', 'SshCa.init() has not run');
    return this.caPublicKey;
  }

  /**
   * Signs a user's public key into a certificate for logging in as `principal`, valid from a
   * minute ago for `validMinutes` from now. A key that is not a usable OpenSSH public key is
   * `invalid_argument` on the field `public_key`.
   *
   * @example
   * const cert = await ca.signUser({ publicKey, principal: 'root', validMinutes: 60, keyId: 'nullspace:m_x:alice' });
   */
  async signUser(opts: {
    publicKey: string;
    principal: string;
    validMinutes: number;
    keyId: string;
  }): Promise<SignedCertificate> {
    const publicKey = parseSshPublicKey(opts.publicKey, 'public_key');
    return this.sign({
      publicKey,
      field: 'public_key',
      principals: [opts.principal],
      validMinutes: opts.validMinutes,
      keyId: opts.keyId,
      hostCert: false,
    });
  }

  /**
   * Signs a machine's host public key (what the sshd bootstrap prints) into a host certificate for
   * the given principals: the names `ssh` checks it against, i.e. the host name the client connects
   * to, or its `HostKeyAlias`. A key that is not a usable public key is `invalid_state` (it comes
   * from inside the machine, whose root may have changed it).
   */
  async signHost(opts: {
    hostPublicKey: string;
    principals: readonly string[];
    validMinutes?: number;
    keyId?: string;
  }): Promise<SignedCertificate> {
    let publicKey: string;
    try {
      publicKey = parseSshPublicKey(opts.hostPublicKey, 'host_public_key');
    } catch (err) {
      throw new CodedError(
        'invalid_state',
        `the machine's SSH host key is not usable: ${(err as Error).message}`,
        { field: 'host_public_key' },
        { cause: err },
      );
    }
    return this.sign({
      publicKey,
      field: 'host_public_key',
      principals: opts.principals,
      validMinutes: opts.validMinutes ?? HOST_CERT_MINUTES,
      keyId: opts.keyId ?? `nullspace-host:${opts.principals.join(',')}`,
      hostCert: true,
    });
  }

  private async sign(o: {
    publicKey: string;
    field: string;
    principals: readonly string[];
    validMinutes: number;
    keyId: string;
    hostCert: boolean;
  }): Promise<SignedCertificate> {
    if (this.caPublicKey === undefined) throw new CodedError('internal', 'SshCa.init() has not run');
    if (o.principals.length === 0 || o.principals.some((p) => !PRINCIPAL.test(p)))
      throw new CodedError(
        'internal',
        `certificate principals ${JSON.stringify(o.principals)} are not valid`,
      );
    if (!Number.isInteger(o.validMinutes) || o.validMinutes < 1)
      throw new CodedError(
        'internal',
        `certificate validity ${o.validMinutes} is not a whole number of minutes`,
      );
    if (!/^[\x20-\x7e]{1,200}$/.test(o.keyId))
      throw new CodedError('internal', 'certificate key id must be 1 to 200 printable ASCII characters');
    const now = Math.floor(Date.now() / 1000) * 1000;
    const validAfter = new Date(now - BACKDATE_MS);
    const validBefore = new Date(now + o.validMinutes * 60_000);
    // Random rather than counted: nothing to persist, and two servers never hand out the same one.
    const serial = (randomBytes(8).readBigUInt64BE() >> 1n).toString();
    const work = await mkdtemp(join(this.dir, 'sign-'));
    try {
      const keyFile = join(work, 'key.pub');
      await writeFile(keyFile, `${o.publicKey}\n`, { mode: 0o600 });
      const bits = await keyBits(keyFile, o.field);
      if (o.publicKey.startsWith('ssh-rsa ') && bits < MIN_RSA_BITS)
        throw invalidArgument(
          o.field,
          `RSA keys must have at least ${MIN_RSA_BITS} bits (this one has ${bits})`,
        );
      const args = ['-q', '-s', this.keyPath, '-I', o.keyId, '-n', o.principals.join(','), '-z', serial];
      args.push('-V', `${utcStamp(validAfter)}:${utcStamp(validBefore)}`);
      if (o.hostCert) args.push('-h');
      else args.push('-O', 'clear', ...USER_EXTENSIONS.flatMap((e) => ['-O', e]));
      await keygen([...args, keyFile]);
      const certificate = (await readFile(join(work, 'key-cert.pub'), 'utf8')).trim();
      return { certificate, serial, validAfter, validBefore };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Makes the key pair under a temporary name and links it into place: a crash leaves no half key. */
  private async generate(): Promise<void> {
    const tmp = join(this.dir, `.ca-new-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await keygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'nullspace-ca', '-f', tmp]);
      // link() fails if `ca` appeared meanwhile (another process sharing the data directory): that
      // one wins and ours is dropped, so the CA is never replaced.
      await link(tmp, this.keyPath).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    } finally {
      await unlink(tmp).catch(() => undefined);
      await unlink(`${tmp}.pub`).catch(() => undefined);
    }
  }
}

/** `ssh-keygen -l`: the key's size in bits; a file ssh-keygen cannot read is `invalid_argument`. */
async function keyBits(file: string, field: string): Promise<number> {
  let stdout: string;
  try {
    ({ stdout } = await keygen(['-l', '-f', file]));
  } catch (err) {
    if (err instanceof CodedError && err.code === 'unavailable') throw err;
    throw invalidArgument(field, 'is not a valid OpenSSH public key (ssh-keygen cannot read it)');
  }
  const bits = Number(stdout.trim().split(' ')[0]);
  if (!Number.isInteger(bits) || bits <= 0)
    throw invalidArgument(field, 'is not a valid OpenSSH public key (ssh-keygen cannot read it)');
  return bits;
}

/** Runs ssh-keygen; its absence is `unavailable` with what to install, rather than a bare ENOENT. */
async function keygen(args: string[]): Promise<{ stdout: string }> {
  try {
    return await host('ssh-keygen', args, { timeoutMs: 20_000 });
  } catch (err) {
    if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT')
      throw new CodedError(
        'unavailable',
        'ssh-keygen is not installed on the server (Debian: openssh-client)',
        {
          tool: 'ssh-keygen',
        },
      );
    throw err;
  }
}

/** `YYYYMMDDHHMMSSZ`: an absolute UTC time for `ssh-keygen -V` (without `Z` it reads local time). */
function utcStamp(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace(/[-T:]/g, '')}Z`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
