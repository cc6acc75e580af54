import { CodedError, parseSshPublicKey } from '@nullspace/protocol';

/**
 * Shell scripts that run as root inside a machine (through its agent, as `bash -c <script>`) to
 * start the machine's sshd for Nullspace and to give it a host certificate.
 *
 * The sshd runs with a config of its own (`SSHD_PATHS.config`), never Debian's default one: it
 * accepts only user certificates signed by the server's CA (no authorized_keys, no passwords),
 * listens on the machine's 127.0.0.1 (the server reaches it through the machine link's preview
 * redirect, which sends connections to the machine's loopback), and logs to a file because a machine
 * has no syslog. What a container lacks and the scripts make up for: no init or systemd (sshd is
 * started directly and daemonizes; a pidfile keeps it single), no PAM session stack (`UsePAM no`),
 * and no `/run/sshd`, the privilege separation directory sshd refuses to start without.
 *
 * Exit statuses of the start script, so the caller can tell the failures apart:
 * - 3: `/usr/sbin/sshd` is not installed in the machine (a template without openssh-server),
 * - 4: `sshd -t` refused the config or host key (its message is on stderr),
 * - 5: sshd did not start (its log's tail is on stderr).
 */

export const SSHD_PATHS = {
  config: '/etc/ssh/nullspace_sshd_config',
  userCa: '/etc/ssh/nullspace_user_ca.pub',
  principals: '/etc/ssh/nullspace_principals',
  hostKey: '/etc/ssh/nullspace_host_ed25519_key',
  hostKeyPub: '/etc/ssh/nullspace_host_ed25519_key.pub',
  hostCertificate: '/etc/ssh/nullspace_host_ed25519_key-cert.pub',
  /** The machine the host key was made for: a fork child or a snapshot's copy makes its own. */
  hostKeyOwner: '/etc/ssh/nullspace_host_ed25519_key.owner',
  pidFile: '/run/nullspace-sshd.pid',
  log: '/var/log/nullspace-sshd.log',
} as const;

export const SSHD_EXIT = { notInstalled: 3, badConfig: 4, notStarted: 5 } as const;

/** The port sshd listens on inside the machine (on its 127.0.0.1). */
export const SSHD_PORT = 22;

/** The sshd config, one directive a line. Exported so a test can show what the machine runs. */
export function sshdConfig(port = SSHD_PORT): string {
  return [
    '# Written by Nullspace (sshd-bootstrap.ts); rewritten whenever SSH access is set up.',
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${SSHD_PATHS.hostKey}`,
    // Missing until the server has signed the host key: sshd then logs it and serves the plain key.
    `HostCertificate ${SSHD_PATHS.hostCertificate}`,
    `PidFile ${SSHD_PATHS.pidFile}`,
    `TrustedUserCAKeys ${SSHD_PATHS.userCa}`,
    // A certificate must name this machine (its id, written by every start script): one the CA
    // signed for another machine logs in nowhere else. Read at each login, so a fork that gets SSH
    // access of its own stops accepting its parent's certificates.
    `AuthorizedPrincipalsFile ${SSHD_PATHS.principals}`,
    // Only the CA's certificates: a key someone appends to ~/.ssh/authorized_keys opens nothing.
    'AuthorizedKeysFile none',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'HostbasedAuthentication no',
    'PermitRootLogin prohibit-password',
    'PermitEmptyPasswords no',
    // No PAM stack in a machine; without PAM sshd checks the account itself (a locked root, `!` in
    // /etc/shadow, would be refused).
    'UsePAM no',
    'X11Forwarding no',
    'PermitTunnel no',
    'PrintMotd no',
    'PrintLastLog no',
    // Dead clients (a laptop that slept) are dropped rather than kept until TCP gives up.
    'ClientAliveInterval 30',
    'ClientAliveCountMax 4',
    // In-process sftp: scp uses the sftp protocol since OpenSSH 9.0, and it needs no other binary.
    'Subsystem sftp internal-sftp',
    'LogLevel VERBOSE',
    '',
  ].join('\n');
}

/**
 * The script that starts the machine's sshd (idempotent). It writes the CA's public key and the
 * config, makes the machine's own host key if there is none or it was made for another machine
 * (the base template ships without host keys, and a fork child or a snapshot's copy makes its own
 * instead of keeping its source's: no two machines share one), checks
 * everything with `sshd -t`, and starts sshd unless the one it started before is still running (a
 * running one is sent SIGHUP when the CA key or config changed). Its only stdout is the host public
 * key line, for the server to sign (`SshCa.signHost`) and install with {@link sshdHostCertificateScript}.
 */
export function sshdStartScript(opts: { caPublicKey: string; principal: string; port?: number }): string {
  const caPublicKey = parseSshPublicKey(opts.caPublicKey, 'ca_public_key');
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(opts.principal))
    throw new CodedError('internal', `ssh principal ${JSON.stringify(opts.principal)} is not a plain name`);
  const port = opts.port ?? SSHD_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new CodedError('internal', `sshd port ${port} is not a TCP port`);
  const p = SSHD_PATHS;
  return `set -eu
umask 022
${runningFunctions()}
if [ ! -x /usr/sbin/sshd ]; then
  echo "/usr/sbin/sshd is not installed in this machine (its template has no openssh-server)" >&2
  exit ${SSHD_EXIT.notInstalled}
fi
changed=0
# Replaces a file only when its content differs, so a second run changes nothing.
put() {
  if ! cmp -s "$2" "$1" 2>/dev/null; then
    mv -f "$2" "$1"
    changed=1
  else
    rm -f "$2"
  fi
}
mkdir -p /etc/ssh /var/log
printf '%s\\n' ${shellQuote(caPublicKey)} > ${p.userCa}.tmp
put ${p.userCa} ${p.userCa}.tmp
printf '%s\n' ${shellQuote(opts.principal)} > ${p.principals}.tmp
chmod 644 ${p.principals}.tmp
mv -f ${p.principals}.tmp ${p.principals}
cat > ${p.config}.tmp <<'NULLSPACE_SSHD_CONFIG'
${sshdConfig(port)}NULLSPACE_SSHD_CONFIG
put ${p.config} ${p.config}.tmp
if [ ! -s ${p.hostKey} ] || [ ! -s ${p.hostKeyPub} ] || [ "$(cat ${p.hostKeyOwner} 2>/dev/null)" != ${shellQuote(opts.principal)} ]; then
  rm -f ${p.hostKey} ${p.hostKeyPub} ${p.hostCertificate}
  ssh-keygen -q -t ed25519 -N '' -C nullspace-host -f ${p.hostKey} >&2
  printf '%s\\n' ${shellQuote(opts.principal)} > ${p.hostKeyOwner}
  changed=1
fi
chmod 600 ${p.hostKey}
# sshd's privilege separation directory: it refuses to start without it, and it must be root's
# and not writable by others.
mkdir -p /run/sshd
chown root:root /run/sshd
chmod 755 /run/sshd
if ! out=$(/usr/sbin/sshd -t -f ${p.config} 2>&1); then
  echo "sshd refused its config: $out" >&2
  exit ${SSHD_EXIT.badConfig}
fi
if running; then
  if [ "$changed" = 1 ]; then reload; fi
else
  rm -f ${p.pidFile}
  # Daemonizes once its listener is bound; -E: no syslog in a machine, so it logs to a file.
  if ! /usr/sbin/sshd -f ${p.config} -E ${p.log}; then
    echo "sshd did not start: $(tail -n 5 ${p.log} 2>/dev/null)" >&2
    exit ${SSHD_EXIT.notStarted}
  fi
fi
cat ${p.hostKeyPub}
`;
}

/**
 * The script that installs the host certificate the server signed for the machine's host key and
 * has a running sshd load it (SIGHUP: sshd re-executes itself with its config; open sessions stay).
 */
export function sshdHostCertificateScript(certificate: string): string {
  const line = certificate.trim();
  if (!/^ssh-ed25519-cert-v01@openssh\.com [A-Za-z0-9+/]+={0,2}( [^\r\n]*)?$/.test(line))
    throw new CodedError('internal', 'not an ed25519 host certificate line');
  const p = SSHD_PATHS;
  return `set -eu
umask 022
${runningFunctions()}
printf '%s\\n' ${shellQuote(line)} > ${p.hostCertificate}.tmp
if cmp -s ${p.hostCertificate}.tmp ${p.hostCertificate}; then
  rm -f ${p.hostCertificate}.tmp
else
  mv -f ${p.hostCertificate}.tmp ${p.hostCertificate}
  if running; then reload; fi
fi
`;
}

/**
 * Shell functions both scripts use. `running`: our sshd is running when the pidfile names a live
 * process started with our config (a pid left from before a restart may since belong to another
 * process); it sets `$pid`. `reload`: SIGHUP, then wait until sshd listens again. sshd closes its
 * listener and re-executes itself, so for about 10 ms connections are refused; the caller lets
 * clients in once the script is done, so it must be done only when sshd listens again, which its log
 * says.
 */
function runningFunctions(): string {
  const p = SSHD_PATHS;
  return `running() {
  pid=$(cat ${p.pidFile} 2>/dev/null) || return 1
  case "$pid" in ''|*[!0-9]*) return 1 ;; esac
  tr '\\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q ${p.config}
}
listening() { grep -c '^Server listening on' ${p.log} 2>/dev/null || true; }
reload() {
  before=$(listening)
  kill -HUP "$pid"
  tries=0
  while [ "$(listening)" -le "$before" ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ]; then
      echo "sshd did not come back after SIGHUP: $(tail -n 5 ${p.log} 2>/dev/null)" >&2
      exit ${SSHD_EXIT.notStarted}
    fi
    sleep 0.05
  done
}`;
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
