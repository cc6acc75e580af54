/**
 * Escape probes: what a machine's root tries first to reach the host, run as root inside a real
 * machine. Each probe is an attempt that must fail (the wall that stops it is named); the test
 * prints how many held. docs/SECURITY.md cites the count. A probe that succeeds fails the test with
 * what it got, so a wall that goes (a capability added, a seccomp rule dropped, a mount made
 * writable, the user namespace lost) is noticed at once.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { it } from 'node:test';
import { Machine } from '@nullspace/sdk';
import { describeWithServer } from './harness.js';

/**
 * Runs inside the machine (python3 of the base template, as root). Prints one JSON line per probe:
 * `{name, held, got}`. Each probe is the attempt itself, never a look at a setting.
 */
const PROBES = String.raw`
import ctypes, errno, json, os, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {'init_module': 175, 'finit_module': 313, 'kexec_load': 246, 'open_by_handle_at': 304,
      'bpf': 321, 'perf_event_open': 298, 'iopl': 172, 'ioperm': 173, 'clock_settime': 227,
      'swapon': 167, 'delete_module': 176, 'add_key': 248}
def sys(name, *args):
    r = libc.syscall(NR[name], *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return 'ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def write(path, data):
    try:
        with open(path, 'w') as f: f.write(data)
        return 'ok'
    except OSError as e: return errno.errorcode.get(e.errno, str(e.errno))
def read(path, n=16):
    try:
        with open(path, 'rb') as f: return 'ok: %d bytes' % len(f.read(n))
    except OSError as e: return errno.errorcode.get(e.errno, str(e.errno))
def out(name, got, held):
    print(json.dumps({'name': name, 'held': bool(held), 'got': got}), flush=True)
def failed(got): return not got.startswith('ok')

uid_map = open('/proc/self/uid_map').read().split()
out('root is not the host root (uid_map)', ' '.join(uid_map), uid_map[:3] != ['0', '0', '4294967295'])
for path in ['/proc/sys/kernel/core_pattern', '/proc/sys/kernel/modprobe', '/proc/sysrq-trigger',
             '/sys/kernel/mm/transparent_hugepage/enabled', '/proc/sys/vm/drop_caches']:
    got = write(path, '|/tmp/x' if 'pattern' in path or 'modprobe' in path else '1')
    out('write ' + path, got, failed(got))
rels = []
for root, dirs, files in os.walk('/sys/fs/cgroup'):
    rels += [os.path.join(root, f) for f in files if f == 'release_agent']
    if len(rels) > 3: break
got = write(rels[0], '/tmp/x') if rels else 'no release_agent visible'
out('write a cgroup release_agent', got, failed(got))
got = 'ok' if os.system('mount -t cgroup -o memory none /mnt 2>/dev/null') == 0 else 'mount refused'
out('mount a cgroup hierarchy', got, failed(got))
if got == 'ok': os.system('umount /mnt')
got = 'ok' if os.system('mount -t proc none /mnt 2>/dev/null') == 0 else 'mount refused'
out('mount a new proc', got, failed(got))
if got == 'ok': os.system('umount /mnt')
# A host block device (one the host's files are bound from, by its numbers in mountinfo; else
# sda's), made as a node and read.
dev = (8, 0)
for line in open('/proc/self/mountinfo'):
    f = line.split(' - ')[1].split() if ' - ' in line else []
    numbers = line.split()[2]
    if f and f[1].startswith('/dev/') and not numbers.startswith('0:'):
        dev = tuple(int(x) for x in numbers.split(':')); break
try:
    os.mknod('/tmp/hostdisk', 0o600 | 0o060000, os.makedev(*dev)); got = read('/tmp/hostdisk')
except OSError as e: got = 'mknod ' + errno.errorcode.get(e.errno, str(e.errno))
out('make and read the host disk %s' % (dev,), got, failed(got))
try:
    os.mknod('/tmp/mem', 0o600 | 0o020000, os.makedev(1, 1)); got = read('/tmp/mem')
except OSError as e: got = 'mknod ' + errno.errorcode.get(e.errno, str(e.errno))
out('make and read /dev/mem', got, failed(got))
for path in ['/proc/kcore', '/dev/kmsg']:
    got = read(path); out('read ' + path, got, failed(got))
out('load a kernel module (init_module)', sys('init_module', None, 0, b''), True)
out('load a kernel module (finit_module)', sys('finit_module', -1, b'', 0), True)
out('remove a kernel module', sys('delete_module', b'xfs', 0), True)
out('load a new kernel (kexec_load)', sys('kexec_load', 0, 0, None, 0), True)
handle = ctypes.create_string_buffer(struct.pack('II', 8, 1) + struct.pack('Q', 2), 16)
out('open a host file by handle (open_by_handle_at)', sys('open_by_handle_at', -100, handle, 0), True)
attr = ctypes.create_string_buffer(128)
out('load a BPF program', sys('bpf', 5, attr, 128), True)
pattr = ctypes.create_string_buffer(struct.pack('IIQ', 1, 128, 0) + bytes(112), 128)
out('read host-wide performance counters', sys('perf_event_open', pattr, -1, 0, -1, 0), True)
out('port I/O (iopl)', sys('iopl', 3), True)
out('port I/O (ioperm)', sys('ioperm', 0x60, 1, 1), True)
ts = ctypes.create_string_buffer(struct.pack('qq', 0, 0), 16)
out('set the host clock', sys('clock_settime', 0, ts), True)
out('swap on a file', sys('swapon', b'/tmp', 0), True)
host_pids = [p for p in os.listdir('/proc') if p.isdigit()]
init = open('/proc/1/cmdline', 'rb').read().split(b'\0')[0].decode()
out('see the host processes', '%d pids, pid 1 %s' % (len(host_pids), init), True)
`;

/** Syscall probes whose number table above is x86-64's. */
const X86_64 = process.arch === 'x64';

describeWithServer('escape probes', (ctx) => {
  it(
    "a machine's root fails every escape probe",
    { skip: !X86_64 && 'syscall numbers are x86-64' },
    async () => {
      await using m = await Machine.create(ctx.server.conn);
      await m.files.write('/tmp/probes.py', PROBES);
      const r = await m.commands.run('python3 /tmp/probes.py', { timeoutMs: 60_000 });
      assert.equal(r.exitCode, 0, r.stderr);
      const results = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { name: string; held: boolean; got: string });
      // Every syscall probe must be refused, whatever the errno: it says which wall stopped it. The
      // processes seen must be the machine's: fewer than the host's, and pid 1 not the host's init.
      const hostInit = readFileSync('/proc/1/cmdline', 'utf8').split('\0')[0] ?? '';
      const hostPids = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).length;
      const checked = results.map((p) => {
        if (p.name === 'see the host processes') {
          const [, count, init] = /^(\d+) pids, pid 1 (.*)$/.exec(p.got) ?? [];
          return { ...p, held: Number(count) < hostPids && init !== hostInit };
        }
        return p.got === 'ok' && !p.name.startsWith('root is') ? { ...p, held: false } : p;
      });
      for (const p of checked) console.log(`  ${p.held ? 'held' : 'FAILED'}  ${p.name}: ${p.got}`);
      const failed = checked.filter((p) => !p.held);
      console.log(`escape probes: ${checked.length - failed.length} of ${checked.length} held`);
      assert.ok(checked.length >= 20, `only ${checked.length} probes ran`);
      assert.deepEqual(failed, []);
    },
  );
});
