/**
 * Issue 5, SSH access: a real `ssh` client reaches a shell in a real machine through the server's
 * relay with a short-lived certificate from the server's CA; an expired certificate, and one from
 * another CA, are refused by the machine's sshd.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import type { SshAccessInfo } from '@nullspace/protocol';
import { host } from '@nullspace/runtime';
import { Machine } from '@nullspace/sdk';
import { api, describeWithServer, run } from './harness.js';

const dir = mkdtempSync('/tmp/nst-ssh-');

/** Runs `ssh` non-interactively; resolves with its exit code and output. */
function ssh(
  access: SshAccessInfo,
  files: { key: string; cert: string; knownHosts: string },
  command: string,
) {
  return run('ssh', [
    '-p',
    String(access.port),
    '-i',
    files.key,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `CertificateFile=${files.cert}`,
    '-o',
    `UserKnownHostsFile=${files.knownHosts}`,
    '-o',
    `HostKeyAlias=${access.machine_id}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=20',
    `${access.user}@${access.host}`,
    command,
  ]);
}

describeWithServer('SSH access (real machine, real ssh client, the server relay)', (ctx) => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('ssh with the minted certificate runs hostname in the machine; expired or foreign certificates are refused', async () => {
    // Killed by the teardown (the server restarts midway, on a new port).
    const m = await Machine.create(ctx.server.conn);
    const key = join(dir, 'id_ed25519');
    await host('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test@nullspace', '-f', key]);
    const access = (await api(ctx.server, 'POST', `/v1/machines/${m.id}/ssh_access`, {
      public_key: readFileSync(`${key}.pub`, 'utf8'),
      expires_in_minutes: 5,
    })) as SshAccessInfo;
    assert.equal(access.machine_id, m.id);
    assert.equal(access.user, 'root');
    assert.match(
      access.command,
      new RegExp(`^ssh -p ${access.port} .*HostKeyAlias=${m.id}.* root@${access.host}$`),
    );
    const cert = join(dir, 'id_ed25519-cert.pub');
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(cert, `${access.certificate}\n`);
    writeFileSync(knownHosts, `${access.known_hosts}\n`);
    const files = { key, cert, knownHosts };
    const r = await ssh(access, files, 'hostname');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), m.id.replace('_', '-'));

    // A restarted server opens the relay again on the same port: the command it gave still works.
    await ctx.server.stop();
    await ctx.server.restart();
    const again = await ssh(access, files, 'cat /proc/1/cmdline | tr "\\0" " "');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /init/);

    // A certificate of the same CA whose validity has ended (signed here with the server's CA key).
    const expired = join(dir, 'expired');
    await host('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', expired]);
    await host('ssh-keygen', [
      '-q',
      '-s',
      join(ctx.server.dataDir, 'ssh', 'ca'),
      '-I',
      'expired-test',
      '-n',
      m.id,
      '-V',
      '20200101:20200102',
      `${expired}.pub`,
    ]);
    const refused = await ssh(access, { key: expired, cert: `${expired}-cert.pub`, knownHosts }, 'hostname');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Permission denied/);

    // A certificate from another CA.
    const otherCa = join(dir, 'other-ca');
    await host('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherCa]);
    const foreign = join(dir, 'foreign');
    await host('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', foreign]);
    await host('ssh-keygen', [
      '-q',
      '-s',
      otherCa,
      '-I',
      'foreign',
      '-n',
      'root',
      '-V',
      '+5m',
      `${foreign}.pub`,
    ]);
    const alien = await ssh(access, { key: foreign, cert: `${foreign}-cert.pub`, knownHosts }, 'hostname');
    assert.notEqual(alien.code, 0);
    assert.match(alien.stderr, /Permission denied/);

    // A certificate minted for this machine logs in nowhere else, even through the other's relay.
    const other = await Machine.create(ctx.server.conn);
    const otherAccess = (await api(ctx.server, 'POST', `/v1/machines/${other.id}/ssh_access`, {
      public_key: readFileSync(`${key}.pub`, 'utf8'),
    })) as SshAccessInfo;
    writeFileSync(knownHosts, `${access.known_hosts}\n${otherAccess.known_hosts}\n`);
    const crossed = await ssh({ ...otherAccess }, files, 'hostname');
    assert.notEqual(crossed.code, 0, 'a certificate for one machine opened another');
    assert.match(crossed.stderr, /Permission denied/);
    writeFileSync(join(dir, 'other-cert.pub'), `${otherAccess.certificate}\n`);
    const own = await ssh(otherAccess, { ...files, cert: join(dir, 'other-cert.pub') }, 'hostname');
    assert.equal(own.stdout.trim(), other.id.replace('_', '-'), own.stderr);

    // A fork child's sshd (the parent's, restored) gets a host key of its own; ssh still works.
    const parent = await Machine.connect(m.id, ctx.server.conn); // the server moved to a new port
    const [forked] = await parent.fork({ count: 1 });
    const child = forked?.machine;
    assert.ok(child, String(forked?.error));
    try {
      const childAccess = (await api(ctx.server, 'POST', `/v1/machines/${child.id}/ssh_access`, {
        public_key: readFileSync(`${key}.pub`, 'utf8'),
      })) as SshAccessInfo;
      const hostKeyOf = async (x: Machine) =>
        (await x.commands.run('cat /etc/ssh/nullspace_host_ed25519_key.pub')).stdout.split(' ')[1];
      const [parentKey, childKey] = [await hostKeyOf(parent), await hostKeyOf(child)];
      assert.ok(parentKey && childKey);
      assert.notEqual(childKey, parentKey, "a fork child kept its parent's SSH host key");
      writeFileSync(knownHosts, `${childAccess.known_hosts}\n`);
      writeFileSync(join(dir, 'child-cert.pub'), `${childAccess.certificate}\n`);
      const inChild = await ssh(childAccess, { ...files, cert: join(dir, 'child-cert.pub') }, 'hostname');
      assert.equal(inChild.stdout.trim(), child.id.replace('_', '-'), inChild.stderr);
    } finally {
      await child.kill();
    }

    // Bad keys are refused at the edge, naming the field.
    await assert.rejects(
      api(ctx.server, 'POST', `/v1/machines/${m.id}/ssh_access`, { public_key: 'ssh-ed25519 nope' }),
      (e: { status?: number; code?: string }) => e.status === 400 && e.code === 'invalid_argument',
    );
  });
});
