/**
 * The building blocks of SSH access, with the real OpenSSH tools: the server's CA (`SshCa`, signing
 * with the host's ssh-keygen), the request validation at the edge, the TCP relay (`SshRelay`) between
 * real sockets on 127.0.0.1, and — when the host can — the whole path: the sshd bootstrap script run
 * as root in a chroot of the base template, a real `ssh` client through the relay logging in with a
 * minted certificate, and an expired certificate refused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CodedError, parseSshAccess, sshCommandLine, sshKnownHostsLine } from '@nullspace/protocol';
import type * as LogModule from '../packages/server/dist/log.js';
import type * as RelayModule from '../packages/server/dist/net/ssh-relay.js';
import type * as CaModule from '../packages/server/dist/services/ssh-ca.js';
import type * as BootstrapModule from '../packages/server/dist/services/sshd-bootstrap.js';
import { ROOT, TEMPLATES_DIR } from './harness.js';

// The server package exports only its entry point; these modules are loaded from its build output.
const serverModule = async <T>(path: string): Promise<T> =>
  (await import(pathToFileURL(join(ROOT, 'packages/server/dist', path)).href)) as T;
const { SshCa } = await serverModule<typeof CaModule>('services/ssh-ca.js');
const { SshRelay } = await serverModule<typeof RelayModule>('net/ssh-relay.js');
const { Logger } = await serverModule<typeof LogModule>('log.js');
const bootstrap = await serverModule<typeof BootstrapModule>('services/sshd-bootstrap.js');

const run = promisify(execFile);
const quiet = new Logger('error');
const work = mkdtempSync('/tmp/nst-ssh-');
after(() => rm(work, { recursive: true, force: true }));

/** A fresh key pair made by ssh-keygen: the private key file's path and the public key line. */
async function keyPair(
  name: string,
  type = 'ed25519',
  bits?: number,
): Promise<{ file: string; pub: string }> {
  const file = join(work, name);
  await run('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...(bits ? ['-b', String(bits)] : []),
    '-N',
    '',
    '-C',
    name,
    '-f',
    file,
  ]);
  return { file, pub: readFileSync(`${file}.pub`, 'utf8').trim() };
}

/** `ssh-keygen -L` of a certificate, times in UTC. */
async function describeCert(certificate: string): Promise<string> {
  const file = join(work, `show-${randomBytes(4).toString('hex')}-cert.pub`);
  writeFileSync(file, `${certificate}\n`);
  const { stdout } = await run('ssh-keygen', ['-L', '-f', file], { env: { ...process.env, TZ: 'UTC' } });
  return stdout;
}

/** `ssh-keygen -L` prints `2026-01-02T03:04:05` (local time, here UTC). */
const keygenTime = (d: Date) => d.toISOString().slice(0, 19);

function codedError(fn: () => unknown): CodedError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CodedError, `expected a CodedError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected an error');
}

async function rejection(promise: Promise<unknown>): Promise<CodedError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof CodedError, `expected a CodedError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('SshCa', () => {
  const dataDir = join(work, 'data');
  let ca: InstanceType<typeof SshCa>;
  let user: { file: string; pub: string };

  before(async () => {
    ca = new SshCa(dataDir);
    await ca.init();
    user = await keyPair('alice');
  });

  it('makes its key pair once: a second init, even by another instance, keeps it', async () => {
    const first = ca.publicKey();
    assert.match(first, /^ssh-ed25519 [A-Za-z0-9+/]+=* nullspace-ca$/);
    const privateBefore = readFileSync(join(dataDir, 'ssh', 'ca'), 'utf8');
    await ca.init();
    const again = new SshCa(dataDir);
    await again.init();
    assert.equal(ca.publicKey(), first);
    assert.equal(again.publicKey(), first);
    assert.equal(readFileSync(join(dataDir, 'ssh', 'ca'), 'utf8'), privateBefore);
    assert.equal(statSync(join(dataDir, 'ssh')).mode & 0o777, 0o700);
    assert.equal(statSync(join(dataDir, 'ssh', 'ca')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(dataDir, 'ssh', 'ca.pub'), 'utf8'), `${first}\n`);
  });

  it('signs a user certificate for the principal and the validity asked for', async () => {
    const t0 = Date.now();
    const signed = await ca.signUser({
      publicKey: user.pub,
      principal: 'root',
      validMinutes: 15,
      keyId: 'nullspace:m_test:alice',
    });
    assert.match(signed.certificate, /^ssh-ed25519-cert-v01@openssh\.com [A-Za-z0-9+/]+=* alice$/);
    assert.match(signed.serial, /^\d+$/);
    // From a minute back (clock skew), to 15 minutes from now, whole seconds.
    assert.ok(Math.abs(signed.validAfter.getTime() - (t0 - 60_000)) < 2000, signed.validAfter.toISOString());
    assert.equal(signed.validBefore.getTime() - signed.validAfter.getTime(), 16 * 60_000);
    const shown = await describeCert(signed.certificate);
    assert.match(shown, /Type: ssh-ed25519-cert-v01@openssh\.com user certificate/);
    assert.match(shown, /Key ID: "nullspace:m_test:alice"/);
    assert.match(shown, new RegExp(`Serial: ${signed.serial}\\n`));
    assert.match(shown, /Principals: \n\s+root\n\s+Critical/);
    assert.match(
      shown,
      new RegExp(`Valid: from ${keygenTime(signed.validAfter)} to ${keygenTime(signed.validBefore)}`),
    );
    assert.match(shown, /permit-pty/);
    assert.doesNotMatch(shown, /permit-X11-forwarding|permit-user-rc/);
    // Signing leaves nothing behind in the CA's directory.
    assert.deepEqual(readdirSync(join(dataDir, 'ssh')).sort(), ['ca', 'ca.pub']);
  });

  it('signs a host certificate for the given principals', async () => {
    const hostKey = await keyPair('hostkey');
    const signed = await ca.signHost({ hostPublicKey: hostKey.pub, principals: ['m_test'] });
    const shown = await describeCert(signed.certificate);
    assert.match(shown, /host certificate/);
    assert.match(shown, /Principals: \n\s+m_test\n/);
    const bad = await rejection(ca.signHost({ hostPublicKey: 'nonsense', principals: ['m_test'] }));
    assert.equal(bad.code, 'invalid_state');
  });

  it('refuses a public key ssh-keygen cannot read as invalid_argument on public_key', async () => {
    // Right shape and type, but the key is cut short: only ssh-keygen can tell.
    const [type, blob] = user.pub.split(' ') as [string, string];
    const truncated = `${type} ${blob.slice(0, 40)}`;
    for (const publicKey of [
      'hello world',
      truncated,
      `${type} ${Buffer.from('not a key').toString('base64')}`,
    ]) {
      const err = await rejection(ca.signUser({ publicKey, principal: 'root', validMinutes: 5, keyId: 'k' }));
      assert.equal(err.code, 'invalid_argument', publicKey);
      assert.equal(err.details?.field, 'public_key');
      assert.match(err.message, /^public_key: /);
    }
    const weak = await keyPair('weak-rsa', 'rsa', 1024);
    const err = await rejection(
      ca.signUser({ publicKey: weak.pub, principal: 'root', validMinutes: 5, keyId: 'k' }),
    );
    assert.equal(err.code, 'invalid_argument');
    assert.match(err.message, /at least 2048 bits/);
  });

  it('refuses a private key pasted as the public key without echoing it', async () => {
    const pasted = readFileSync(user.file, 'utf8');
    const secretLines = pasted.split('\n').filter((l) => l !== '' && !l.startsWith('-----'));
    for (const attempt of [
      () => parseSshAccess({ public_key: pasted }),
      () => parseSshAccess({ public_key: `${user.pub}\n${pasted}` }),
    ]) {
      const err = codedError(attempt);
      assert.equal(err.code, 'invalid_argument');
      assert.equal(err.details?.field, 'public_key');
      assert.match(err.message, /is a private key: send the public key/);
      const said = JSON.stringify({ message: err.message, details: err.details });
      for (const line of secretLines) assert.ok(!said.includes(line), 'the error repeats the private key');
    }
    const viaCa = await rejection(
      ca.signUser({ publicKey: pasted, principal: 'root', validMinutes: 5, keyId: 'k' }),
    );
    assert.match(viaCa.message, /is a private key/);
  });

  it('validates the ssh_access body at the edge', () => {
    assert.deepEqual(parseSshAccess({ public_key: `  ${user.pub}\n` }), {
      public_key: user.pub,
      expires_in_minutes: 60,
    });
    assert.equal(parseSshAccess({ public_key: user.pub, expires_in_minutes: 1440 }).expires_in_minutes, 1440);
    const cases: [unknown, string, RegExp][] = [
      [{}, 'public_key', /is required/],
      [{ public_key: 42 }, 'public_key', /must be a string/],
      [{ public_key: user.pub, expires_in_minutes: 0 }, 'expires_in_minutes', /between 1 and 1440/],
      [{ public_key: user.pub, expires_in_minutes: 1441 }, 'expires_in_minutes', /between 1 and 1440/],
      [{ public_key: user.pub, expires_in_minutes: 1.5 }, 'expires_in_minutes', /integer/],
      [{ public_key: user.pub, ttl: 5 }, 'ttl', /unknown field/],
      [{ public_key: `${user.pub}\n${user.pub}` }, 'public_key', /single line/],
      [{ public_key: 'ssh-dss AAAAB3NzaC1kc3MAAACBAP' }, 'public_key', /"ssh-dss" is not supported/],
      [{ public_key: 'ssh-ed25519-cert-v01@openssh.com AAAA' }, 'public_key', /certificate cannot be signed/],
      [{ public_key: 'ssh-ed25519 !!!notbase64' }, 'public_key', /not base64/],
      [{ public_key: `ssh-rsa ${user.pub.split(' ')[1]}` }, 'public_key', /does not hold a ssh-rsa key/],
      [{ public_key: `${user.pub} a\u0007b` }, 'public_key', /control characters/],
      [{ public_key: `ssh-ed25519 ${'A'.repeat(17_000)}` }, 'public_key', /at most 16384/],
    ];
    for (const [body, field, message] of cases) {
      const err = codedError(() => parseSshAccess(body));
      assert.equal(err.details?.field, field, JSON.stringify(body).slice(0, 80));
      assert.match(err.message, message);
    }
  });
});

describe('SshRelay', () => {
  let echo: net.Server;
  let echoPort = 0;
  const echoSockets = new Set<net.Socket>();

  before(async () => {
    // The stand-in for a machine's sshd: sends back whatever arrives.
    echo = net.createServer((socket) => {
      echoSockets.add(socket);
      socket.on('close', () => echoSockets.delete(socket));
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoPort = (echo.address() as net.AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => echo.close(() => resolve())));

  const toEcho = () =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect(echoPort, '127.0.0.1');
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });

  const dial = (port: number) =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });

  /** Everything a socket receives until it closes. */
  const received = (socket: net.Socket) =>
    new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', () => undefined);
      socket.once('close', () => resolve(Buffer.concat(chunks)));
    });

  it('pipes bytes both ways and reuses one listener per machine', async () => {
    const relay = new SshRelay({ host: '127.0.0.1', connect: toEcho, log: quiet });
    try {
      const [a, b] = await Promise.all([relay.ensure('m_one'), relay.ensure('m_one')]);
      assert.deepEqual(a, b);
      assert.equal(a.host, '127.0.0.1');
      assert.deepEqual(await relay.ensure('m_one'), a);
      const other = await relay.ensure('m_two');
      assert.notEqual(other.port, a.port);

      // 8 MiB, more than the socket buffers hold: only flows if backpressure is handled both ways.
      const payload = randomBytes(8 * 1024 * 1024);
      const client = await dial(a.port);
      const back = received(client);
      client.end(payload);
      assert.ok((await back).equals(payload), 'the bytes came back changed');
    } finally {
      await relay.closeAll();
    }
  });

  it('close() ends open connections and the listener', async () => {
    const relay = new SshRelay({ host: '127.0.0.1', connect: toEcho, log: quiet });
    const { port } = await relay.ensure('m_close');
    const client = await dial(port);
    const closed = received(client);
    client.write('ping');
    await new Promise((resolve) => client.once('data', resolve));
    assert.equal(echoSockets.size, 1);
    await relay.close('m_close');
    await closed;
    assert.equal(client.destroyed, true);
    await assertEventually(() => echoSockets.size === 0, 'the machine side was not closed');
    await assert.rejects(dial(port), { code: 'ECONNREFUSED' });
    await relay.close('m_close'); // idempotent
    await relay.closeAll();
  });

  it('closes the client when the machine cannot be reached', async () => {
    let calls = 0;
    const relay = new SshRelay({
      host: '127.0.0.1',
      connect: async () => {
        calls++;
        throw new CodedError('invalid_state', 'machine is stopped');
      },
      log: quiet,
    });
    try {
      const { port } = await relay.ensure('m_down');
      const client = await dial(port);
      const got = received(client);
      client.write('SSH-2.0-OpenSSH_9.2\r\n');
      assert.equal((await got).length, 0);
      assert.equal(calls, 1);
      // A connect that never answers is given up after connectTimeoutMs.
      const slow = new SshRelay({
        host: '127.0.0.1',
        connect: () => new Promise(() => undefined),
        log: quiet,
        connectTimeoutMs: 100,
      });
      const { port: slowPort } = await slow.ensure('m_slow');
      const started = Date.now();
      await received(await dial(slowPort));
      assert.ok(Date.now() - started < 2000);
      await slow.closeAll();
    } finally {
      await relay.closeAll();
    }
  });

  it('takes ports from its range and says so when the range is full', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as net.AddressInfo).port;
    const relay = new SshRelay({
      host: '127.0.0.1',
      ports: { min: taken, max: taken },
      connect: toEcho,
      log: quiet,
    });
    try {
      const err = await rejection(relay.ensure('m_full'));
      assert.equal(err.code, 'resource_exhausted');
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
      assert.deepEqual(await relay.ensure('m_full'), { host: '127.0.0.1', port: taken });
    } finally {
      await relay.closeAll();
      if (blocker.listening) blocker.close();
    }
  });
});

async function assertEventually(check: () => boolean, message: string): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await sleep(20);
  assert.ok(check(), message);
}

/** Why the sshd test cannot run here, or undefined when it can. */
function cannotRunSshd(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (a chroot and mounts for the sshd)';
  const rootfs = join(TEMPLATES_DIR, 'base', 'rootfs');
  if (!existsSync(join(rootfs, 'usr/sbin/sshd')))
    return `the base template in ${TEMPLATES_DIR} has no sshd; rebuild it with scripts/build-base-template.sh`;
  for (const tool of ['/usr/bin/ssh', '/usr/bin/unshare', '/usr/bin/nsenter'])
    if (!existsSync(tool)) return `${tool} is not installed on this host`;
  return undefined;
}

describe('sshd in the base template, reached through the relay', { skip: cannotRunSshd() }, () => {
  // The machine stand-in: an overlay over the template in a private mount namespace, entered with
  // chroot. It shares the host's network, so its sshd listens on a free port of the host's loopback.
  const dir = join(work, 'machine');
  const merged = join(dir, 'merged');
  const machineId = `m_sshtest${randomBytes(3).toString('hex')}`;
  let ca: InstanceType<typeof SshCa>;
  let relay: InstanceType<typeof SshRelay>;
  let sshdPort = 0;
  let user: { file: string; pub: string };

  const sshdPid = () => Number(readFileSync(join(dir, 'upper/run/nullspace-sshd.pid'), 'utf8').trim());
  /** Runs a script as root in the stand-in machine (the first call mounts it). */
  const inMachine = async (script: string): Promise<string> => {
    const file = join(dir, 'script.sh');
    writeFileSync(file, script);
    if (existsSync(join(dir, 'upper/run/nullspace-sshd.pid'))) {
      const { stdout } = await run('nsenter', [
        `--mount=/proc/${sshdPid()}/ns/mnt`,
        'chroot',
        merged,
        'bash',
        file.replace(dir, '/mnt'),
      ]);
      return stdout;
    }
    const mount = [
      `mount -t overlay overlay -o lowerdir=${join(TEMPLATES_DIR, 'base', 'rootfs')},upperdir=upper,workdir=ovl merged`,
      'mount --rbind /dev merged/dev',
      'mount -t proc proc merged/proc',
      `mount --bind ${dir} merged/mnt`,
      'exec chroot merged bash /mnt/script.sh',
    ].join(' && ');
    const { stdout } = await run(
      'unshare',
      ['--mount', '--propagation', 'private', '--', 'bash', '-c', mount],
      { cwd: dir },
    );
    return stdout;
  };

  before(async () => {
    for (const sub of ['upper', 'ovl', 'merged']) await run('mkdir', ['-p', join(dir, sub)]);
    ca = new SshCa(join(work, 'data-e2e'));
    await ca.init();
    user = await keyPair('bob');
    sshdPort = await freePort();
    relay = new SshRelay({
      host: '127.0.0.1',
      connect: () =>
        new Promise((resolve, reject) => {
          const socket = net.connect(sshdPort, '127.0.0.1');
          socket.once('connect', () => resolve(socket));
          socket.once('error', reject);
        }),
      log: quiet,
    });
  });

  after(async () => {
    await relay?.closeAll();
    if (!existsSync(join(dir, 'upper/run/nullspace-sshd.pid'))) return;
    const pid = sshdPid();
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    if (alive()) process.kill(pid, 'SIGTERM');
    // The mount namespace (and the overlay in it) goes with its last process, the sshd.
    await assertEventually(() => !alive(), 'the sshd of the stand-in machine did not stop');
  });

  /** The result's `command`, run by a shell, with a command for the machine appended. */
  const ssh = async (certificate: string, remote: string) => {
    const { port } = await relay.ensure(machineId);
    const certFile = join(work, 'bob-cert.pub');
    const knownHosts = join(work, 'bob-known_hosts');
    writeFileSync(certFile, `${certificate}\n`);
    writeFileSync(knownHosts, `${sshKnownHostsLine(machineId, ca.publicKey())}\n`);
    const command = sshCommandLine({
      machineId,
      user: 'root',
      host: '127.0.0.1',
      port,
      certificateFile: certFile,
      knownHostsFile: knownHosts,
      identityFile: user.file,
    });
    assert.match(command, /^ssh -p \d+ -i \S+ -o IdentitiesOnly=yes -o CertificateFile=\S+ /);
    // No user config, and never a prompt: a test must fail rather than wait.
    const batch = command.replace(/^ssh /, 'ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=10 ');
    return run('bash', ['-c', `${batch} ${remote}`], { timeout: 30_000 });
  };

  it('starts sshd idempotently and prints the host key to sign', async () => {
    const script = bootstrap.sshdStartScript({
      caPublicKey: ca.publicKey(),
      principal: machineId,
      port: sshdPort,
    });
    const hostKey = (await inMachine(script)).trim();
    assert.match(hostKey, /^ssh-ed25519 \S+ nullspace-host$/);
    const pid = sshdPid();
    assert.equal((await inMachine(script)).trim(), hostKey);
    assert.equal(sshdPid(), pid, 'a second run started another sshd');
    const signed = await ca.signHost({ hostPublicKey: hostKey, principals: [machineId] });
    await inMachine(bootstrap.sshdHostCertificateScript(signed.certificate));
    const config = readFileSync(join(dir, 'upper', bootstrap.SSHD_PATHS.config), 'utf8');
    assert.match(config, /^AuthorizedKeysFile none$/m);
    assert.match(config, /^ListenAddress 127\.0\.0\.1$/m);
  });

  it('lets a plain ssh client in with a minted certificate, checking the host certificate', async () => {
    const signed = await ca.signUser({
      publicKey: user.pub,
      principal: machineId,
      validMinutes: 5,
      keyId: 'test:bob',
    });
    const { stdout } = await ssh(signed.certificate, `'echo "in $(cat /etc/debian_version) as $(id -un)"'`);
    assert.match(stdout, /^in \d+\.\d+ as root\n$/);
    const log = readFileSync(join(dir, 'upper', bootstrap.SSHD_PATHS.log), 'utf8');
    assert.match(log, /Accepted certificate ID "test:bob"/);
  });

  it('refuses an expired certificate', async () => {
    // Made directly with the CA key: signUser cannot make a certificate that is already over.
    const pub = join(work, 'expired.pub');
    writeFileSync(pub, `${user.pub}\n`);
    await run('ssh-keygen', [
      '-q',
      '-s',
      join(ca.dir, 'ca'),
      '-I',
      'test:expired',
      '-n',
      machineId,
      '-V',
      '20200101:20200102',
      pub,
    ]);
    const expired = readFileSync(join(work, 'expired-cert.pub'), 'utf8').trim();
    await assert.rejects(ssh(expired, 'true'), (err: { code?: number; stderr?: string }) => {
      assert.equal(err.code, 255);
      assert.match(err.stderr ?? '', /Permission denied \(publickey\)/);
      return true;
    });
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
