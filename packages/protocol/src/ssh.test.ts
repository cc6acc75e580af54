/**
 * SSH access at the API edge: the public key line (checked down to the type inside the key data,
 * private keys refused without echoing them), the access body, and the client-side command line.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { CodedError, parseSshAccess, parseSshPublicKey, sshCommandLine, sshKnownHostsLine } from './index.js';
import { assertInvalid } from './test-support.js';

/** An SSH wire string: a 32-bit big-endian length, then the bytes. */
function sshString(bytes: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

/** The base64 key data of a public key of `type` (its embedded type, then the key bytes). */
function keyData(type: string, key: Buffer): string {
  return Buffer.concat([sshString(Buffer.from(type)), sshString(key)]).toString('base64');
}

function ed25519Line(comment = ''): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  const line = `ssh-ed25519 ${keyData('ssh-ed25519', raw)}`;
  return comment === '' ? line : `${line} ${comment}`;
}

describe('parseSshPublicKey', () => {
  it('accepts a key line, trimmed, with its comment (spaces kept, tabs between fields as one space)', () => {
    const line = ed25519Line('me@laptop');
    assert.equal(parseSshPublicKey(`  ${line}\n`), line);
    const bare = ed25519Line();
    assert.equal(parseSshPublicKey(bare), bare);
    const [type, data] = bare.split(' ');
    assert.equal(parseSshPublicKey(`${type}\t${data}\tmy key`), `${type} ${data} my key`);
  });

  it('accepts every supported type whose key data holds that type', () => {
    for (const type of ['ssh-rsa', 'ecdsa-sha2-nistp256', 'sk-ssh-ed25519@openssh.com']) {
      const line = `${type} ${keyData(type, Buffer.alloc(33, 7))}`;
      assert.equal(parseSshPublicKey(line), line);
    }
  });

  it('refuses key data that holds another type, or is cut off or not base64', () => {
    const rsaData = keyData('ssh-rsa', Buffer.alloc(64, 1));
    assertInvalid(() => parseSshPublicKey(`ssh-ed25519 ${rsaData}`), 'public_key');
    const [, data = ''] = ed25519Line().split(' ');
    assertInvalid(() => parseSshPublicKey(`ssh-ed25519 ${data.slice(0, 8)}`), 'public_key');
    assertInvalid(() => parseSshPublicKey(`ssh-ed25519 ${data.slice(0, -1)}`), 'public_key');
    assertInvalid(() => parseSshPublicKey('ssh-ed25519 not*base64'), 'public_key');
    assertInvalid(() => parseSshPublicKey('ssh-ed25519'), 'public_key');
  });

  it('refuses unsupported types, certificates and DSA', () => {
    const data = keyData('ssh-dss', Buffer.alloc(64, 1));
    assertInvalid(() => parseSshPublicKey(`ssh-dss ${data}`), 'public_key');
    const cert = 'ssh-ed25519-cert-v01@openssh.com';
    assertInvalid(
      () => parseSshPublicKey(`${cert} ${keyData(cert, Buffer.alloc(32))}`),
      'public_key',
      /certificate/,
    );
  });

  it('refuses a private key without repeating it in the error', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    const secret = pem.split('\n')[1] as string;
    assert.throws(
      () => parseSshPublicKey(pem),
      (err: unknown) =>
        err instanceof CodedError &&
        err.code === 'invalid_argument' &&
        err.details?.field === 'public_key' &&
        /private key/.test(err.message) &&
        !err.message.includes(secret),
    );
    assertInvalid(
      () => parseSshPublicKey('PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none'),
      'public_key',
    );
  });

  it('refuses several lines, NUL, control characters in the comment, and over 16 KiB', () => {
    const line = ed25519Line();
    assertInvalid(() => parseSshPublicKey(`${line}\n${line}`), 'public_key');
    assertInvalid(() => parseSshPublicKey(`${line} a\0b`), 'public_key');
    assertInvalid(() => parseSshPublicKey(`${line} bell\u0007`), 'public_key');
    assertInvalid(() => parseSshPublicKey(`${line} ${'c'.repeat(16 * 1024)}`), 'public_key');
    for (const bad of [undefined, null, '', 42]) assertInvalid(() => parseSshPublicKey(bad), 'public_key');
    assertInvalid(() => parseSshPublicKey('', 'key'), 'key');
  });
});

describe('parseSshAccess', () => {
  it('public_key required; expires_in_minutes 1 to 1440, default 60', () => {
    const key = ed25519Line();
    assert.deepEqual(parseSshAccess({ public_key: key }), { public_key: key, expires_in_minutes: 60 });
    assert.equal(parseSshAccess({ public_key: key, expires_in_minutes: 1 }).expires_in_minutes, 1);
    assert.equal(parseSshAccess({ public_key: key, expires_in_minutes: 1440 }).expires_in_minutes, 1440);
    assertInvalid(() => parseSshAccess({ public_key: key, expires_in_minutes: 0 }), 'expires_in_minutes');
    assertInvalid(() => parseSshAccess({ public_key: key, expires_in_minutes: 1441 }), 'expires_in_minutes');
    assertInvalid(() => parseSshAccess(undefined), 'public_key');
    assertInvalid(() => parseSshAccess({ public_key: key, user: 'root' }), 'user');
  });
});

describe('client side', () => {
  it('known_hosts line trusts the CA for the machine id', () => {
    assert.equal(
      sshKnownHostsLine('mch_abc', ' ssh-ed25519 AAAA ca\n'),
      '@cert-authority mch_abc ssh-ed25519 AAAA ca',
    );
  });

  it('the ssh command line pins the host key alias and quotes only what needs it', () => {
    const base = {
      machineId: 'mch_abc',
      user: 'user',
      host: '127.0.0.1',
      port: 2222,
      certificateFile: '~/.ssh/ns-cert.pub',
      knownHostsFile: '/tmp/known hosts',
    };
    assert.equal(
      sshCommandLine(base),
      'ssh -p 2222 -o CertificateFile=~/.ssh/ns-cert.pub ' +
        "-o 'UserKnownHostsFile=/tmp/known hosts' -o HostKeyAlias=mch_abc " +
        '-o StrictHostKeyChecking=yes user@127.0.0.1',
    );
    const withKey = sshCommandLine({ ...base, identityFile: "~/it's" });
    assert.match(withKey, /^ssh -p 2222 -i '~\/it'\\''s' -o IdentitiesOnly=yes -o /);
  });
});
