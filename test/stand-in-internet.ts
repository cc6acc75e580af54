/**
 * A stand-in "internet" for network tests: a network namespace of the test's own, reached from the
 * host over a veth /30 (the host's end forwards, so machines' masqueraded traffic and its replies
 * pass), with servers on TEST-NET-3 addresses (public-looking, reserved for documentation) and on
 * a private address. Host routes send only those addresses there; nothing goes anywhere else.
 *
 * Test processes of several sessions run on one host at once, and host routes, link names and
 * namespaces are host-wide: each test process takes a slot of its own when this module loads (a
 * directory under SLOT_DIR made with mkdir, which fails when it exists, holding its pid; a slot
 * whose process is gone is taken over), and its addresses, uplink and names follow from the slot.
 * Loading claims it at once, because a test's server may need the resolver's address (its
 * settings) before the stand-in starts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { host } from '@nullspace/runtime';

/** Slots of stand-ins that can run at once on one host. */
const SLOTS = 60;
/** Where test processes claim their slots (host-wide, so one per host). */
const SLOT_DIR = '/run/nullspace-test-stand-in';

/** Whether process `pid` is alive. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Claims a free slot for this process (see above); released when the process exits. */
function claimSlot(): number {
  mkdirSync(SLOT_DIR, { recursive: true });
  const first = randomInt(SLOTS);
  for (let i = 0; i < SLOTS; i++) {
    const s = (first + i) % SLOTS;
    const dir = join(SLOT_DIR, String(s));
    try {
      mkdirSync(dir);
    } catch {
      let owner = Number.NaN;
      try {
        owner = Number(readFileSync(join(dir, 'pid'), 'utf8'));
      } catch {
        // being claimed right now, or its owner died between mkdir and writing: not taken over
      }
      if (!Number.isInteger(owner) || alive(owner)) continue;
      rmSync(dir, { recursive: true, force: true });
      try {
        mkdirSync(dir);
      } catch {
        continue; // another process took it over first
      }
    }
    writeFileSync(join(dir, 'pid'), String(process.pid));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    return s;
  }
  throw new Error(`no free stand-in internet slot: ${SLOTS} test processes hold one (${SLOT_DIR})`);
}

const SLOT = claimSlot();

/**
 * The slot's addresses: three of TEST-NET-3 from .64 up, a private one and a /30 of the
 * benchmarking range 198.18.0.0/15 — none of them what a stand-in of before slots used
 * (203.0.113.10, .20, .53, 10.254.77.10, 198.18.255.0/30), so it does not collide with one either.
 */
export const PUBLIC_A = `203.0.113.${64 + 3 * SLOT}`;
export const PUBLIC_B = `203.0.113.${65 + 3 * SLOT}`;
/** A DNS server in the stand-in internet: `a.test` → PUBLIC_A, `b.test` → PUBLIC_B, else NXDOMAIN. */
export const RESOLVER = `203.0.113.${66 + 3 * SLOT}`;
export const PRIVATE = `10.254.${100 + SLOT}.10`;
/** The host's end of the uplink (a host address a machine must not reach). */
export const UPLINK_HOST = `198.18.${100 + SLOT}.1`;
const UPLINK_NS = `198.18.${100 + SLOT}.2`;
/** Every server listens on this port (HTTP, answers `ok <its address>`), and a sink on SINK_PORT. */
export const HTTP_PORT = 8080;
export const SINK_PORT = 9000;

export interface StandInInternet {
  netns: string;
  /** Host end of the uplink. */
  uplink: string;
  /** Bytes the sink received per finished connection, in order. */
  sinkCounts(): Promise<number[]>;
  teardown(): Promise<void>;
}

const SERVER = `
import http.server, socketserver, sys, threading, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('ok ' + self.connection.getsockname()[0]).encode()
        self.send_response(200); self.send_header('content-length', str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
def sink():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', ${SINK_PORT})); s.listen()
    while True:
        c, _ = s.accept(); n = 0
        while True:
            b = c.recv(65536)
            if not b: break
            n += len(b)
        c.close()
        with open(sys.argv[1], 'a') as f: f.write(str(n) + '\\n')
def dns():
    names = {b'a.test': '${PUBLIC_A}', b'b.test': '${PUBLIC_B}'}
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('${RESOLVER}', 53))
    while True:
        q, peer = u.recvfrom(512)
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]]); i += 1 + q[i]
        question = q[12:i + 5]
        ip = names.get(b'.'.join(labels).lower()) if q[i + 1:i + 3] == b'\\x00\\x01' else None
        flags = b'\\x81\\x80' if ip else b'\\x81\\x83'
        answer = b'\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x3c\\x00\\x04' + socket.inet_aton(ip) if ip else b''
        u.sendto(q[:2] + flags + b'\\x00\\x01' + (b'\\x00\\x01' if ip else b'\\x00\\x00') + b'\\x00\\x00\\x00\\x00' + question + answer, peer)
threading.Thread(target=sink, daemon=True).start()
threading.Thread(target=dns, daemon=True).start()
S(('0.0.0.0', ${HTTP_PORT}), H).serve_forever()
`;

export async function startStandInInternet(): Promise<StandInInternet> {
  const netns = `nst-inet-${SLOT}`;
  const uplink = `nsui${SLOT}`;
  const sinkFile = `/tmp/nst-sink-${SLOT}-${process.pid}`;
  const hosts = [PUBLIC_A, PUBLIC_B, PRIVATE, RESOLVER];
  const steps: string[][] = [
    ['ip', 'netns', 'add', netns],
    ['ip', '-n', netns, 'link', 'set', 'lo', 'up'],
    ['ip', 'link', 'add', uplink, 'type', 'veth', 'peer', 'name', `${uplink}p`],
    ['ip', 'link', 'set', `${uplink}p`, 'netns', netns],
    ['ip', 'addr', 'add', `${UPLINK_HOST}/30`, 'dev', uplink],
    ['ip', '-n', netns, 'addr', 'add', `${UPLINK_NS}/30`, 'dev', `${uplink}p`],
    ...hosts.map((ip) => ['ip', '-n', netns, 'addr', 'add', `${ip}/32`, 'dev', 'lo']),
    ['ip', 'link', 'set', uplink, 'up'],
    ['ip', '-n', netns, 'link', 'set', `${uplink}p`, 'up'],
    // Replies to machines come back in here: forward them (the global switch stays as it is).
    ['sysctl', '-qw', `net.ipv4.conf.${uplink}.forwarding=1`],
    ...hosts.map((ip) => ['ip', 'route', 'add', `${ip}/32`, 'via', UPLINK_NS, 'dev', uplink]),
  ];
  let server: ChildProcess | undefined;
  const teardown = async () => {
    if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    // Only this stand-in's routes (by device): another's on the host are left alone.
    for (const ip of hosts)
      await host('ip', ['route', 'del', `${ip}/32`, 'dev', uplink]).catch(() => undefined);
    await host('ip', ['link', 'del', uplink]).catch(() => undefined);
    await host('ip', ['netns', 'delete', netns]).catch(() => undefined);
    await host('rm', ['-f', sinkFile]);
  };
  try {
    for (const [file, ...args] of steps) await host(file as string, args);
    server = spawn('ip', ['netns', 'exec', netns, 'python3', '-c', SERVER, sinkFile], {
      stdio: 'ignore',
    });
    // Up once the server answers from inside its namespace.
    for (let i = 0; i < 100; i++) {
      const r = await host('ip', [
        'netns',
        'exec',
        netns,
        'curl',
        '-s',
        '-m',
        '1',
        `http://${PUBLIC_A}:${HTTP_PORT}/`,
      ]).catch(() => ({ stdout: '' }));
      if (r.stdout.startsWith('ok')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await teardown();
    throw err;
  }
  return {
    netns,
    uplink,
    async sinkCounts() {
      const r = await host('cat', [sinkFile]).catch(() => ({ stdout: '' }));
      return r.stdout.split('\n').filter(Boolean).map(Number);
    },
    teardown,
  };
}
