import { invalidArgument } from './errors.js';
import { check } from './schema/check.js';
import { DateTime, type Static, Strict, Type, named } from './schema/kit.js';
import { expectObject } from './validate.js';

/**
 * SSH access to a machine: wire types and the validation done at the API edge. The server signs
 * the caller's public key into a short-lived OpenSSH user certificate with its own CA; the sshd in
 * the machine trusts only that CA, and a plain `ssh` client reaches it through a relay port on the
 * server. Nothing but the public key ever leaves the caller.
 */

export const SSH_LIMITS = {
  /** Longest `public_key` accepted (an RSA-16384 key is about 2.8 KB; this leaves room for comments). */
  maxPublicKeyLength: 16 * 1024,
  expires_in_minutes: { min: 1, max: 24 * 60, default: 60 },
} as const;

/** Key types a user certificate can be made for (DSA is gone from OpenSSH; certificates cannot be re-signed). */
export const SSH_PUBLIC_KEY_TYPES = [
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
] as const;
export type SshPublicKeyType = (typeof SSH_PUBLIC_KEY_TYPES)[number];

/** The body of `POST /v1/machines/{id}/ssh_access`. */
export const SshAccessBodySchema = named(
  'SshAccessRequest',
  Strict({
    public_key: Type.String({
      maxLength: SSH_LIMITS.maxPublicKeyLength,
      description: 'One OpenSSH public key line (`type base64 [comment]`); never the private key.',
    }),
    expires_in_minutes: Type.Optional(
      Type.Integer({
        minimum: SSH_LIMITS.expires_in_minutes.min,
        maximum: SSH_LIMITS.expires_in_minutes.max,
        default: SSH_LIMITS.expires_in_minutes.default,
        description: 'How long the certificate is valid.',
      }),
    ),
  }),
);

/** A validated `POST /v1/machines/{id}/ssh_access` body. */
export interface SshAccessRequest {
  /** One OpenSSH public key line, normalised: `type base64 [comment]`, trimmed. */
  public_key: string;
  /** How long the certificate is valid, 1 to 1440 minutes. Default 60. */
  expires_in_minutes: number;
}

/** What `POST /v1/machines/{id}/ssh_access` answers: everything a plain `ssh` client needs. */
export const SshAccessInfoSchema = named(
  'SshAccess',
  Type.Object({
    machine_id: Type.String(),
    user: Type.String({ description: 'The user the certificate logs in as (its principal).' }),
    host: Type.String({ description: 'Where the relay listens: give this to `ssh` as the host.' }),
    port: Type.Integer(),
    certificate: Type.String({
      description: 'The OpenSSH user certificate (the text of a `-cert.pub` file), one line.',
    }),
    certificate_id: Type.String({
      description: "The certificate's key id: sshd logs it with every login it allows.",
    }),
    valid_after: DateTime({
      description: 'A minute before the request, for clients whose clock is a little behind.',
    }),
    expires_at: DateTime({ description: 'The sshd refuses the certificate from then on.' }),
    known_hosts: Type.String({
      description: "One known_hosts line that trusts the server's CA for this machine's host certificate.",
    }),
    command: Type.String({ description: 'A ready `ssh` command line.' }),
  }),
);
export type SshAccessInfo = Static<typeof SshAccessInfoSchema>;

const PRIVATE_KEY_MARKERS = [/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/, /^PuTTY-User-Key-File-/m];
const KEY_TYPE_TOKEN = /^[a-z0-9][a-z0-9.@-]{0,63}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Printable characters and spaces/tabs: a comment may say anything but must stay on one line. */
const COMMENT = /^[^\p{Cc}]*$/u;

/**
 * Checks one OpenSSH public key line (`type base64 [comment]`) and returns it trimmed. The blob is
 * decoded and its embedded type must match the first word, so a truncated or mangled paste fails
 * here with a message rather than later inside ssh-keygen. The value is never echoed back in an
 * error: a private key pasted by mistake must not travel further (into logs or error responses).
 */
export function parseSshPublicKey(value: unknown, field = 'public_key'): string {
  if (value === undefined || value === null || value === '') throw invalidArgument(field, 'is required');
  if (typeof value !== 'string') throw invalidArgument(field, 'must be a string');
  if (value.length > SSH_LIMITS.maxPublicKeyLength)
    throw invalidArgument(field, `must be at most ${SSH_LIMITS.maxPublicKeyLength} characters`);
  if (PRIVATE_KEY_MARKERS.some((marker) => marker.test(value)))
    throw invalidArgument(
      field,
      'is a private key: send the public key instead (the .pub file, e.g. ~/.ssh/id_ed25519.pub); ' +
        'the private key never needs to leave your computer',
    );
  const line = value.trim();
  if (/[\r\n]/.test(line))
    throw invalidArgument(
      field,
      'must be a single line: one OpenSSH public key ("ssh-ed25519 AAAA... comment")',
    );
  if (line.includes('\0')) throw invalidArgument(field, 'must not contain NUL characters');
  const [type = '', blob = '', ...rest] = line.split(/[ \t]+/);
  if (!(SSH_PUBLIC_KEY_TYPES as readonly string[]).includes(type)) {
    const named = KEY_TYPE_TOKEN.test(type) ? `"${type}" ` : '';
    const hint = type.includes('-cert-v01@')
      ? 'a certificate cannot be signed again; send the public key it was made for'
      : `an OpenSSH public key starts with one of ${SSH_PUBLIC_KEY_TYPES.join(', ')}`;
    throw invalidArgument(field, `key type ${named}is not supported: ${hint}`);
  }
  if (!BASE64.test(blob) || blob.length % 4 !== 0)
    throw invalidArgument(field, 'the key data after the type is not base64 (was the key cut off?)');
  const embedded = embeddedKeyType(Buffer.from(blob, 'base64'));
  if (embedded !== type)
    throw invalidArgument(field, `the key data does not hold a ${type} key (was the key cut off or edited?)`);
  const comment = rest.join(' ');
  if (!COMMENT.test(comment)) throw invalidArgument(field, 'the comment must not contain control characters');
  return comment === '' ? `${type} ${blob}` : `${type} ${blob} ${comment}`;
}

/** The key type a public key blob starts with (an SSH string: a 32-bit length, then the bytes). */
function embeddedKeyType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const length = blob.readUInt32BE(0);
  if (length === 0 || length > 64 || blob.length < 4 + length) return undefined;
  return blob.subarray(4, 4 + length).toString('latin1');
}

export function parseSshAccess(body: unknown): SshAccessRequest {
  const obj = expectObject(body ?? {}, 'body');
  // The key is checked first, and by its own parser: its errors never echo the value.
  const publicKey = parseSshPublicKey(obj.public_key);
  const b = check(SshAccessBodySchema, obj);
  return {
    public_key: publicKey,
    expires_in_minutes: b.expires_in_minutes ?? SSH_LIMITS.expires_in_minutes.default,
  };
}

// ---- client side ----------------------------------------------------------------------------

/**
 * The known_hosts line that makes `ssh` accept a machine's host certificate. It names the machine
 * id rather than `[host]:port`, and {@link sshCommandLine} passes the id as `HostKeyAlias`: ssh then
 * looks the line up by the id and requires the host certificate to list the id as a principal
 * (the server signs it so). A certificate of another machine, whose root can read its own host
 * key, therefore never passes for this one, although every relay shares the server's host name
 * and ports are reused.
 */
export function sshKnownHostsLine(machineId: string, caPublicKey: string): string {
  return `@cert-authority ${machineId} ${caPublicKey.trim()}`;
}

/**
 * A ready `ssh` command line. The certificate and the known_hosts line live in files the caller
 * wrote (ssh reads neither from the command line; it expands `~` in both options itself); each
 * argument is quoted for a POSIX shell where it needs it. With an identity file, `IdentitiesOnly`
 * keeps ssh from offering every key in the user's agent first, which can use up sshd's
 * `MaxAuthTries` before the certificate is tried.
 */
export function sshCommandLine(opts: {
  machineId: string;
  user: string;
  host: string;
  port: number;
  certificateFile: string;
  knownHostsFile: string;
  /** The private key the certificate was made for; default: ssh's own choice. */
  identityFile?: string;
}): string {
  const args = ['ssh', '-p', String(opts.port)];
  if (opts.identityFile !== undefined) args.push('-i', opts.identityFile, '-o', 'IdentitiesOnly=yes');
  args.push(
    '-o',
    `CertificateFile=${opts.certificateFile}`,
    '-o',
    `UserKnownHostsFile=${opts.knownHostsFile}`,
    '-o',
    `HostKeyAlias=${opts.machineId}`,
    '-o',
    'StrictHostKeyChecking=yes',
    `${opts.user}@${opts.host}`,
  );
  return args.map(shellWord).join(' ');
}

/** Quotes a word for a POSIX shell only when it needs it, so the common command stays readable. */
function shellWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./~-]+$/.test(word) && !word.startsWith('~')) return word;
  if (/^~\/[A-Za-z0-9_@%+=:,./-]*$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
