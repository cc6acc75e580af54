import { randomBytes } from 'node:crypto';
import {
  CodedError,
  type SshAccessInfo,
  type SshAccessRequest,
  sshCommandLine,
  sshKnownHostsLine,
} from '@nullspace/protocol';
import type Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import { SshRelay } from '../net/ssh-relay.js';
import { prepared } from '../store/prepared.js';
import type { MachineService } from './machines/machine-service.js';
import type { SshCa } from './ssh-ca.js';
import { SSHD_EXIT, SSHD_PORT, sshdHostCertificateScript, sshdStartScript } from './sshd-bootstrap.js';

/** The user SSH sessions log in as (the certificate's principal). */
const SSH_USER = 'root';

export interface SshAccessOptions {
  machines: MachineService;
  /** The server's database (table `ssh_relays`). */
  db: Database.Database;
  ca: SshCa;
  /** Where relay listeners bind, and the host name clients are told. */
  bindHost: string;
  publicHost?: string;
  ports?: { min: number; max: number };
  wakeTimeoutMs: number;
  log: Logger;
}

/**
 * `createSshAccess`: starts the machine's sshd (trusting only the server's CA, on its 127.0.0.1),
 * gives it a host certificate naming the machine, signs the caller's key into a short-lived user
 * certificate, and opens the machine's relay — a listener on the server whose connections are piped
 * to that sshd (through the preview redirect, waking the machine like preview traffic does).
 */
export class SshAccessService {
  readonly relay: SshRelay;
  /** When each machine's relay may close: its newest certificate's expiry. */
  private readonly closeTimers = new Map<string, { at: number; timer: NodeJS.Timeout }>();

  constructor(private readonly o: SshAccessOptions) {
    this.relay = new SshRelay({
      host: o.bindHost,
      ...(o.publicHost ? { publicHost: o.publicHost } : {}),
      ...(o.ports ? { ports: o.ports } : {}),
      log: o.log,
      connect: async (machineId) => {
        const { lease, socket } = await o.machines.connectPort(machineId, SSHD_PORT, {
          long: true,
          wakeTimeoutMs: o.wakeTimeoutMs,
        });
        socket.once('close', () => lease.release());
        lease.onCut(() => socket.destroy());
        return socket;
      },
    });
  }

  async create(machineId: string, req: SshAccessRequest): Promise<SshAccessInfo> {
    const ca = this.o.ca;
    const started = await this.o.machines.runScript(
      machineId,
      sshdStartScript({ caPublicKey: ca.publicKey(), principal: machineId }),
    );
    if (started.exit_code !== 0) throw sshdFailed(machineId, started.exit_code, started.stderr);
    const hostCert = await ca.signHost({ hostPublicKey: started.stdout.trim(), principals: [machineId] });
    const installed = await this.o.machines.runScript(
      machineId,
      sshdHostCertificateScript(hostCert.certificate),
    );
    if (installed.exit_code !== 0) throw sshdFailed(machineId, installed.exit_code, installed.stderr);
    const keyId = `nullspace:${machineId}:${randomBytes(6).toString('hex')}`;
    // The certificate names the machine, not the user: the machine's sshd accepts only its own id
    // (AuthorizedPrincipalsFile), and logs the user in as root.
    const cert = await ca.signUser({
      publicKey: req.public_key,
      principal: machineId,
      validMinutes: req.expires_in_minutes,
      keyId,
    });
    const address = await this.relay.ensure(machineId);
    this.keepRelayUntil(machineId, cert.validBefore.getTime(), address.port);
    this.o.log.info('ssh access created', {
      machine_id: machineId,
      certificate_id: keyId,
      relay_port: address.port,
      expires_at: cert.validBefore.toISOString(),
    });
    return {
      machine_id: machineId,
      user: SSH_USER,
      host: address.host,
      port: address.port,
      certificate: cert.certificate.trim(),
      certificate_id: keyId,
      valid_after: cert.validAfter.toISOString(),
      expires_at: cert.validBefore.toISOString(),
      known_hosts: sshKnownHostsLine(machineId, ca.publicKey()),
      // The files `nullspace machine ssh` writes (the CLI's config directory).
      command: sshCommandLine({
        machineId,
        user: SSH_USER,
        host: address.host,
        port: address.port,
        certificateFile: `~/.config/nullspace/ssh/${machineId}-cert.pub`,
        knownHostsFile: '~/.config/nullspace/known_hosts',
      }),
    };
  }

  /**
   * After a restart: the relays of machines whose certificates are still valid listen again, on
   * their old ports when free (a machine gone since is refused at connect, like any).
   */
  async reopen(): Promise<void> {
    const now = Date.now();
    prepared(this.o.db, 'DELETE FROM ssh_relays WHERE until <= ?').run(now);
    const rows = prepared(this.o.db, 'SELECT machine_id, port, until FROM ssh_relays').all() as {
      machine_id: string;
      port: number;
      until: number;
    }[];
    for (const r of rows) {
      try {
        const address = await this.relay.ensure(r.machine_id, r.port);
        this.keepRelayUntil(r.machine_id, r.until, address.port);
      } catch (err) {
        this.o.log.error('ssh relay could not be reopened', {
          machine_id: r.machine_id,
          port: r.port,
          error: err,
        });
      }
    }
  }

  async close(): Promise<void> {
    for (const { timer } of this.closeTimers.values()) clearTimeout(timer);
    this.closeTimers.clear();
    await this.relay.closeAll();
  }

  /** The relay stays while a certificate for the machine is valid; then it closes (sessions too). */
  private keepRelayUntil(machineId: string, at: number, port: number): void {
    const current = this.closeTimers.get(machineId);
    if (current && current.at >= at) return;
    if (current) clearTimeout(current.timer);
    prepared(
      this.o.db,
      'INSERT INTO ssh_relays (machine_id, port, until) VALUES (?, ?, ?) ON CONFLICT (machine_id) DO UPDATE SET port = excluded.port, until = excluded.until',
    ).run(machineId, port, at);
    const timer = setTimeout(
      () => {
        this.closeTimers.delete(machineId);
        prepared(this.o.db, 'DELETE FROM ssh_relays WHERE machine_id = ? AND until <= ?').run(
          machineId,
          Date.now(),
        );
        void this.relay.close(machineId);
      },
      Math.min(at - Date.now() + 1000, 2 ** 31 - 1),
    );
    timer.unref();
    this.closeTimers.set(machineId, { at, timer });
  }
}

function sshdFailed(machineId: string, code: number | null, stderr: string): CodedError {
  const why =
    code === SSHD_EXIT.notInstalled
      ? "the machine's template has no SSH server (openssh-server)"
      : `the SSH server in the machine did not start: ${stderr.trim().split('\n').slice(-2).join(' ').slice(0, 300)}`;
  return new CodedError('invalid_state', `machine ${machineId}: ${why}`, { machine_id: machineId });
}
