/**
 * The shape of the machine seccomp filter: refuse by default, a fixed set of architectures, and
 * none of the calls that reach the kernel's shared state allowed, with or without argument checks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type OciSeccompSyscall, REFUSED_SYSCALLS_FOR_TESTS, machineSeccompProfile } from './seccomp.js';

const profile = machineSeccompProfile();
const allowRules = profile.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW');
const rulesFor = (name: string): OciSeccompSyscall[] =>
  profile.syscalls.filter((r) => r.names.includes(name));

/** Calls that would let root in a machine reach the host or other machines. */
const NEVER_ALLOWED = [
  'mount',
  'umount2',
  'pivot_root',
  'fsopen',
  'fsmount',
  'move_mount',
  'open_tree',
  'unshare',
  'setns',
  'init_module',
  'finit_module',
  'delete_module',
  'kexec_load',
  'kexec_file_load',
  'bpf',
  'perf_event_open',
  'reboot',
  'swapon',
  'swapoff',
  'keyctl',
  'add_key',
  'request_key',
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'open_by_handle_at',
  'name_to_handle_at',
  'io_uring_setup',
  'io_uring_enter',
  'userfaultfd',
  'settimeofday',
  'clock_settime',
  'iopl',
  'ioperm',
  'socketcall',
];

describe('machine seccomp profile', () => {
  it("refuses by default with EPERM, on the host's own ABIs only", () => {
    assert.equal(profile.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(profile.defaultErrnoRet, 1);
    assert.deepEqual(machineSeccompProfile('x64').architectures, [
      'SCMP_ARCH_X86_64',
      'SCMP_ARCH_X86',
      'SCMP_ARCH_X32',
    ]);
    assert.deepEqual(machineSeccompProfile('arm64').architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    // Another kind of host: every ABI the allowlist was written for.
    assert.deepEqual(
      [...machineSeccompProfile('riscv64').architectures].sort(),
      ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM', 'SCMP_ARCH_X32', 'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64'].sort(),
    );
  });

  it('allows none of the calls that reach the host or other machines', () => {
    for (const name of [...NEVER_ALLOWED, ...Object.keys(REFUSED_SYSCALLS_FOR_TESTS)])
      assert.deepEqual(
        rulesFor(name).filter((r) => r.action === 'SCMP_ACT_ALLOW'),
        [],
        `${name} is allowed`,
      );
  });

  it('the calls the tests probe exist on x86_64 under the numbers given', () => {
    assert.equal(REFUSED_SYSCALLS_FOR_TESTS.unshare, 272);
    assert.equal(REFUSED_SYSCALLS_FOR_TESTS.keyctl, 250);
    for (const n of Object.values(REFUSED_SYSCALLS_FOR_TESTS))
      assert.ok(Number.isInteger(n) && n > 0 && n < 460);
  });

  it('an unconditional allow names each call once', () => {
    const unconditional = allowRules.filter((r) => r.args === undefined).flatMap((r) => r.names);
    assert.equal(new Set(unconditional).size, unconditional.length);
    for (const basic of ['read', 'write', 'openat', 'close', 'mmap', 'execve', 'exit_group', 'futex'])
      assert.ok(unconditional.includes(basic), basic);
  });

  it('socket only for Unix, IPv4, IPv6 and netlink', () => {
    const rules = rulesFor('socket');
    assert.ok(rules.every((r) => r.action === 'SCMP_ACT_ALLOW' && r.args?.length === 1));
    assert.ok(rules.every((r) => r.args?.[0]?.index === 0 && r.args[0].op === 'SCMP_CMP_EQ'));
    assert.deepEqual(
      rules.map((r) => r.args?.[0]?.value).sort((a, b) => (a ?? 0) - (b ?? 0)),
      [1, 2, 10, 16],
    );
  });

  it('clone only without namespace flags; clone3 answered ENOSYS so libc falls back to clone', () => {
    const [clone, ...more] = rulesFor('clone');
    assert.equal(more.length, 0);
    const arg = clone?.args?.[0];
    assert.equal(arg?.op, 'SCMP_CMP_MASKED_EQ');
    assert.equal(arg?.valueTwo, 0);
    const NEW_NAMESPACE = {
      NEWNS: 0x00020000,
      NEWCGROUP: 0x02000000,
      NEWUTS: 0x04000000,
      NEWIPC: 0x08000000,
      NEWUSER: 0x10000000,
      NEWPID: 0x20000000,
      NEWNET: 0x40000000,
    };
    for (const [flag, bit] of Object.entries(NEW_NAMESPACE)) assert.ok(((arg?.value ?? 0) & bit) !== 0, flag);
    // Threads (CLONE_VM | CLONE_THREAD ...) pass.
    assert.equal((arg?.value ?? 0) & (0x100 | 0x10000 | 0x800), 0);
    assert.deepEqual(rulesFor('clone3'), [{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
  });

  it('personality only to the harmless values', () => {
    const values = rulesFor('personality').map((r) => r.args?.[0]?.value);
    assert.deepEqual(values, [0x0, 0x0008, 0x20000, 0x20008, 0xffffffff]);
    assert.ok(!values.includes(0x0040000)); // ADDR_NO_RANDOMIZE
  });
});
