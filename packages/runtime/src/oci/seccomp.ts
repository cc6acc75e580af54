// Over 600 lines: the allowlist is one table of system calls, grouped by purpose, each group with why it is allowed or refused.
/**
 * The seccomp filter of a machine: an allowlist that refuses every system call it does not name.
 *
 * Root inside a machine has no CAP_SYS_ADMIN, SYS_PTRACE, SYS_MODULE, SYS_RAWIO, SYS_TIME, SYS_BOOT,
 * NET_ADMIN, NET_RAW or MKNOD (see MACHINE_CAPABILITIES in spec.ts). The filter is the second wall
 * around the kernel: it refuses whole interfaces (mounts, namespaces, keyrings, BPF, io_uring...)
 * before any permission check runs, so a bug behind one of those checks cannot be reached.
 *
 * Reference: the default profile of Docker/moby for a container without those capabilities.
 * Every call allowed here is one that profile allows too, with the same argument checks where it
 * has them; where we refuse more, the group below says why. Names are shared by all the
 * architectures in the filter: libseccomp translates each name per architecture and skips names
 * an architecture does not have (`chown32` only exists for 32-bit x86 and ARM, `set_tls` only for
 * ARM, `arch_prctl` only for x86).
 *
 * How runc 1.1 loads it: a name its libseccomp does not know is skipped, and any call numbered
 * above the highest number that did resolve gets ENOSYS instead of EPERM, which is what libc
 * fallbacks look for. Debian bookworm's libseccomp2 (2.5.4-1+deb12u1) knows the calls up to Linux
 * 6.7, so every name below resolves there; the newest ones are marked with the upstream libseccomp
 * release that added them, and a host with an older one answers them ENOSYS. Calls after Linux 6.7
 * (mseal, listmount, statmount, the *xattrat family...) are not listed and get ENOSYS.
 */

export interface OciSeccompSyscall {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: {
    index: number;
    value: number;
    valueTwo?: number;
    op:
      | 'SCMP_CMP_EQ'
      | 'SCMP_CMP_NE'
      | 'SCMP_CMP_MASKED_EQ'
      | 'SCMP_CMP_LT'
      | 'SCMP_CMP_LE'
      | 'SCMP_CMP_GT'
      | 'SCMP_CMP_GE';
  }[];
}

export interface OciSeccomp {
  defaultAction: 'SCMP_ACT_ERRNO';
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: OciSeccompSyscall[];
}

const EPERM = 1;
const ENOSYS = 38;

/**
 * The ABIs a host's kernel accepts calls through: x86_64 hosts run 64-bit, 32-bit (x86) and x32
 * code; aarch64 hosts run 64-bit and 32-bit ARM. A call made through an architecture that is not
 * listed never reaches the kernel, so this list is also what stops ABI-switching tricks.
 *
 * Only the host's own ABIs are listed: an x86_64 kernel never hands seccomp an ARM call (nor the
 * other way round), so listing the other family refuses nothing more — but runc 1.1 compiles the
 * whole allowlist once per listed architecture in every machine's start. Five architectures made
 * `runc run` about 1.6× as slow as three (bench/README.md, "Machine start").
 */
const HOST_ARCHITECTURES: Record<string, readonly string[]> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
};
/** A host of another kind gets every ABI the allowlist was written for. */
const ALL_ARCHITECTURES = [...(HOST_ARCHITECTURES.x64 ?? []), ...(HOST_ARCHITECTURES.arm64 ?? [])];

// ---------------------------------------------------------------------------------------------
// Allowed, by purpose. Each group is emitted as one unconditional rule.
// ---------------------------------------------------------------------------------------------

/**
 * Starting, waiting for and ending processes. `clone` and `clone3` are not here: they have their
 * own rules below (namespace flags refused, clone3 answered ENOSYS). restart_syscall is how the
 * kernel resumes a sleep interrupted by a signal, also in a process that CRIU has just restored.
 */
const PROCESSES = [
  'execve',
  'execveat',
  'exit',
  'exit_group',
  'fork',
  'vfork',
  'wait4',
  'waitid',
  'waitpid',
  'getpid',
  'getppid',
  'gettid',
  'set_tid_address',
  'getpgid',
  'setpgid',
  'getpgrp',
  'getsid',
  'setsid',
  'pidfd_open',
  'process_mrelease',
  'restart_syscall',
] as const;

/** Signals to processes of the same machine (the pid namespace limits who can be reached). */
const SIGNALS = [
  'kill',
  'tkill',
  'tgkill',
  'pidfd_send_signal',
  'rt_sigaction',
  'rt_sigpending',
  'rt_sigprocmask',
  'rt_sigqueueinfo',
  'rt_tgsigqueueinfo',
  'rt_sigreturn',
  'rt_sigsuspend',
  'rt_sigtimedwait',
  'rt_sigtimedwait_time64',
  'sigaltstack',
  'sigreturn',
  'sigprocmask',
  'signalfd',
  'signalfd4',
  'pause',
] as const;

/**
 * Reading and changing the caller's own ids and capabilities. Machines keep CAP_SETUID/SETGID so
 * that apt can drop to its `_apt` user and su-like tools work; capset never goes beyond the
 * permitted set, which is the reduced one. The `32` variants are the 32-bit ABIs' spellings.
 */
const CREDENTIALS = [
  'getuid',
  'geteuid',
  'getgid',
  'getegid',
  'getresuid',
  'getresgid',
  'getgroups',
  'setuid',
  'setgid',
  'setreuid',
  'setregid',
  'setresuid',
  'setresgid',
  'setgroups',
  'setfsuid',
  'setfsgid',
  'getuid32',
  'geteuid32',
  'getgid32',
  'getegid32',
  'getresuid32',
  'getresgid32',
  'getgroups32',
  'setuid32',
  'setgid32',
  'setreuid32',
  'setregid32',
  'setresuid32',
  'setresgid32',
  'setgroups32',
  'setfsuid32',
  'setfsgid32',
  'capget',
  'capset',
] as const;

/**
 * Threads and their synchronisation: what glibc, Python threads and V8/libuv use. rseq is
 * registered by glibc >= 2.35 for every thread and re-registered by CRIU on restore; membarrier is
 * used by JITs.
 */
const THREADS = [
  'futex',
  'futex_time64',
  'futex_waitv',
  'futex_wake', // kernel 6.7, libseccomp 2.5.5
  'futex_wait', // kernel 6.7, libseccomp 2.5.5
  'futex_requeue', // kernel 6.7, libseccomp 2.5.5
  'set_robust_list',
  'get_robust_list',
  'rseq',
  'membarrier',
  'arch_prctl', // x86 only: sets the thread pointer (FS/GS)
  'set_thread_area', // 32-bit x86 thread-local storage
  'get_thread_area',
  'set_tls', // 32-bit ARM thread-local storage
  'sched_yield',
] as const;

/**
 * Scheduling, limits and self-restriction. Raising priorities or limits still needs capabilities
 * the machine lacks (SYS_NICE, SYS_RESOURCE), and the cgroup caps CPU anyway. seccomp and landlock
 * only let a process restrict itself further (no_new_privs is set).
 */
const SCHEDULING_AND_LIMITS = [
  'sched_getaffinity',
  'sched_setaffinity',
  'sched_getattr',
  'sched_setattr',
  'sched_getparam',
  'sched_setparam',
  'sched_getscheduler',
  'sched_setscheduler',
  'sched_get_priority_max',
  'sched_get_priority_min',
  'sched_rr_get_interval',
  'sched_rr_get_interval_time64',
  'getpriority',
  'setpriority',
  'ioprio_get',
  'ioprio_set',
  'getrlimit',
  'setrlimit',
  'ugetrlimit',
  'prlimit64',
  'getrusage',
  'getcpu',
  'prctl',
  'seccomp',
  'landlock_create_ruleset',
  'landlock_add_rule',
  'landlock_restrict_self',
] as const;

/** The process's own address space. mlock is bounded by RLIMIT_MEMLOCK and the memory cgroup. */
const MEMORY = [
  'brk',
  'mmap',
  'mmap2',
  'munmap',
  'mremap',
  'mprotect',
  'madvise',
  'mincore',
  'msync',
  'mlock',
  'mlock2',
  'mlockall',
  'munlock',
  'munlockall',
  'remap_file_pages',
  'memfd_create',
  'map_shadow_stack', // kernel 6.6, libseccomp 2.5.5
] as const;

/**
 * Paths and metadata in the machine's own file tree. mknod/mknodat stay because mkfifo and Unix
 * sockets need them; device nodes need CAP_MKNOD, which machines do not have (Docker does the
 * same). chroot is allowed as Docker allows it with CAP_SYS_CHROOT (dpkg --root, debootstrap): it
 * cannot leave the machine's mount namespace, whose root runc set with pivot_root.
 */
const FILE_PATHS = [
  'open',
  'openat',
  'openat2',
  'creat',
  'close',
  'close_range',
  'access',
  'faccessat',
  'faccessat2',
  'stat',
  'lstat',
  'fstat',
  'newfstatat',
  'statx',
  'stat64',
  'lstat64',
  'fstat64',
  'fstatat64',
  'statfs',
  'fstatfs',
  'statfs64',
  'fstatfs64',
  'readlink',
  'readlinkat',
  'getcwd',
  'chdir',
  'fchdir',
  'chroot',
  'mkdir',
  'mkdirat',
  'rmdir',
  'rename',
  'renameat',
  'renameat2',
  'link',
  'linkat',
  'symlink',
  'symlinkat',
  'unlink',
  'unlinkat',
  'mknod',
  'mknodat',
  'chmod',
  'fchmod',
  'fchmodat',
  'fchmodat2', // kernel 6.6, libseccomp 2.5.5
  'chown',
  'fchown',
  'lchown',
  'fchownat',
  'chown32',
  'fchown32',
  'lchown32',
  'umask',
  'truncate',
  'ftruncate',
  'truncate64',
  'ftruncate64',
  'utime',
  'utimes',
  'utimensat',
  'utimensat_time64',
  'futimesat',
  'getdents',
  'getdents64',
  'getxattr',
  'lgetxattr',
  'fgetxattr',
  'setxattr',
  'lsetxattr',
  'fsetxattr',
  'listxattr',
  'llistxattr',
  'flistxattr',
  'removexattr',
  'lremovexattr',
  'fremovexattr',
  'flock',
  'fcntl',
  'fcntl64',
  'inotify_init',
  'inotify_init1',
  'inotify_add_watch',
  'inotify_rm_watch',
] as const;

/**
 * Moving data through descriptors. ioctl is not filtered by request, as in Docker: what it can do
 * is bounded by which devices exist in the machine (the default character devices and its own
 * pty). Linux AIO (io_setup...) stays: it only does reads and writes, and CRIU can dump its rings.
 */
const DESCRIPTOR_IO = [
  'read',
  'write',
  'readv',
  'writev',
  'pread64',
  'pwrite64',
  'preadv',
  'pwritev',
  'preadv2',
  'pwritev2',
  'lseek',
  '_llseek',
  'dup',
  'dup2',
  'dup3',
  'pipe',
  'pipe2',
  'splice',
  'tee',
  'vmsplice',
  'sendfile',
  'sendfile64',
  'copy_file_range',
  'fsync',
  'fdatasync',
  'sync',
  'syncfs',
  'sync_file_range',
  'arm_sync_file_range', // 32-bit ARM's sync_file_range2
  'fallocate',
  'fadvise64',
  'fadvise64_64',
  'arm_fadvise64_64',
  'readahead',
  'cachestat', // kernel 6.5, libseccomp 2.5.5
  'ioctl',
  'io_setup',
  'io_destroy',
  'io_submit',
  'io_cancel',
  'io_getevents',
  'io_pgetevents',
  'io_pgetevents_time64',
] as const;

/** Waiting on many descriptors: epoll for libuv (Node), selectors/asyncio for Python, poll for curl. */
const EVENT_LOOPS = [
  'epoll_create',
  'epoll_create1',
  'epoll_ctl',
  'epoll_wait',
  'epoll_pwait',
  'epoll_pwait2',
  'poll',
  'ppoll',
  'ppoll_time64',
  'select',
  '_newselect',
  'pselect6',
  'pselect6_time64',
  'eventfd',
  'eventfd2',
  'timerfd_create',
  'timerfd_settime',
  'timerfd_settime64',
  'timerfd_gettime',
  'timerfd_gettime64',
] as const;

/** Reading clocks, sleeping and per-process timers. Setting a clock is refused (see below). */
const TIME = [
  'clock_gettime',
  'clock_gettime64',
  'clock_getres',
  'clock_getres_time64',
  'clock_nanosleep',
  'clock_nanosleep_time64',
  'nanosleep',
  'gettimeofday',
  'time',
  'times',
  'alarm',
  'getitimer',
  'setitimer',
  'timer_create',
  'timer_delete',
  'timer_gettime',
  'timer_gettime64',
  'timer_settime',
  'timer_settime64',
  'timer_getoverrun',
] as const;

/**
 * Using sockets once they exist. Creating one (`socket`) has its own rule that names the address
 * families; `send`/`recv` are the 32-bit ARM spellings. The network namespace and the host's
 * nftables rules decide where packets may go.
 */
const SOCKETS = [
  'socketpair',
  'bind',
  'connect',
  'listen',
  'accept',
  'accept4',
  'getsockname',
  'getpeername',
  'getsockopt',
  'setsockopt',
  'sendto',
  'recvfrom',
  'sendmsg',
  'recvmsg',
  'sendmmsg',
  'recvmmsg',
  'recvmmsg_time64',
  'send',
  'recv',
  'shutdown',
] as const;

/**
 * System V and POSIX IPC: PostgreSQL, Python multiprocessing and others use them. The machine has
 * its own IPC namespace and /dev/mqueue, so objects are not shared with the host or other machines.
 * `ipc` is the 32-bit x86 multiplexer for the System V calls.
 */
const IPC = [
  'shmget',
  'shmat',
  'shmdt',
  'shmctl',
  'semget',
  'semop',
  'semtimedop',
  'semtimedop_time64',
  'semctl',
  'msgget',
  'msgsnd',
  'msgrcv',
  'msgctl',
  'ipc',
  'mq_open',
  'mq_unlink',
  'mq_timedsend',
  'mq_timedsend_time64',
  'mq_timedreceive',
  'mq_timedreceive_time64',
  'mq_notify',
  'mq_getsetattr',
] as const;

/** Facts about the system (the uts namespace gives the machine its own hostname) and randomness. */
const SYSTEM_INFO = ['uname', 'sysinfo', 'getrandom'] as const;

/** 32-bit ARM private calls a compiler runtime uses (debug traps, instruction cache flushes). */
const ARM_PRIVATE = ['breakpoint', 'cacheflush'] as const;

const ALLOWED_GROUPS: readonly (readonly string[])[] = [
  PROCESSES,
  SIGNALS,
  CREDENTIALS,
  THREADS,
  SCHEDULING_AND_LIMITS,
  MEMORY,
  FILE_PATHS,
  DESCRIPTOR_IO,
  EVENT_LOOPS,
  TIME,
  SOCKETS,
  IPC,
  SYSTEM_INFO,
  ARM_PRIVATE,
];

// ---------------------------------------------------------------------------------------------
// Refused. The default action already refuses these; they are listed so the choice is written
// down and checked: none of them may appear in an allowed group.
// ---------------------------------------------------------------------------------------------

const REFUSED_GROUPS: Readonly<Record<string, readonly string[]>> = {
  /** Mount tables belong to the host's setup of the machine (overlay root, binds, masked paths). */
  mounts: [
    'mount',
    'umount',
    'umount2',
    'pivot_root',
    'fsopen',
    'fsconfig',
    'fsmount',
    'fspick',
    'move_mount',
    'open_tree',
    'mount_setattr',
  ],
  /**
   * New or other namespaces: a user namespace would give root a fresh set of capabilities to probe
   * the kernel with, and setns could join a namespace reached through a leaked descriptor. clone
   * with namespace flags is refused by its rule below; clone3 (whose flags sit behind a pointer that
   * seccomp cannot read) is answered ENOSYS.
   */
  namespaces: ['unshare', 'setns'],
  /** Running code in the kernel or observing it. */
  kernelCode: [
    'init_module',
    'finit_module',
    'delete_module',
    'kexec_load',
    'kexec_file_load',
    'bpf',
    'perf_event_open',
  ],
  /** State of the whole host, not of the machine. */
  hostState: [
    'reboot',
    'swapon',
    'swapoff',
    'sethostname',
    'setdomainname',
    'acct',
    'quotactl',
    'quotactl_fd',
    'syslog',
    'vhangup',
    'nfsservctl',
    'lookup_dcookie',
    '_sysctl',
    'uselib',
    'ustat',
    'sysfs',
  ],
  /** Clocks are shared with the host (no time namespace). adjtimex is refused even read-only. */
  clocks: [
    'settimeofday',
    'stime',
    'clock_settime',
    'clock_settime64',
    'adjtimex',
    'clock_adjtime',
    'clock_adjtime64',
  ],
  /** Kernel keyrings are not namespaced: keys would be shared with the host and other machines. */
  keyrings: ['keyctl', 'add_key', 'request_key'],
  /**
   * Reaching into other processes' memory or descriptors. Docker allows ptrace and process_vm_* on
   * kernels >= 4.8; we do not: nothing we run needs a debugger, and ptrace has a long record of
   * kernel bugs.
   */
  otherProcesses: [
    'ptrace',
    'process_vm_readv',
    'process_vm_writev',
    'process_madvise',
    'kcmp',
    'pidfd_getfd',
  ],
  /** File handles bypass path permissions (the classic container escape with DAC_READ_SEARCH). */
  fileHandles: ['name_to_handle_at', 'open_by_handle_at'],
  /** Raw hardware and old x86 modes (I/O ports, LDT segments, vm86). */
  legacyX86: ['iopl', 'ioperm', 'modify_ldt', 'vm86', 'vm86old'],
  /**
   * Memory features we keep out:
   * - userfaultfd makes kernel races easy to win (a favourite of exploits);
   * - NUMA policy calls need CAP_SYS_NICE in Docker's profile too;
   * - memfd_secret pages cannot be pinned by the kernel, which is how CRIU copies memory out, so
   *   one such mapping would make the machine impossible to checkpoint;
   * - protection keys (pkey_*): nothing we run needs them (V8 works without), and we have not
   *   checked that CRIU carries a mapping's key through checkpoint/restore.
   */
  memory: [
    'userfaultfd',
    'mbind',
    'set_mempolicy',
    'get_mempolicy',
    'set_mempolicy_home_node',
    'migrate_pages',
    'move_pages',
    'memfd_secret',
    'pkey_alloc',
    'pkey_free',
    'pkey_mprotect',
  ],
  /**
   * io_uring runs file and network operations out of seccomp's sight, and has been the source of
   * many kernel escapes; Docker dropped it in 2023. libuv (Node) falls back to its thread pool.
   */
  ioUring: ['io_uring_setup', 'io_uring_enter', 'io_uring_register'],
  /** fanotify_init needs CAP_SYS_ADMIN, so there is never an fanotify descriptor to mark. */
  fanotify: ['fanotify_init', 'fanotify_mark'],
  /**
   * The 32-bit x86 socket multiplexer hides its arguments behind a pointer, so it would bypass the
   * address-family rule on `socket`. 32-bit programs that use it (glibc's i386 build does) get no
   * sockets; Docker refuses it too.
   */
  socketMultiplexer: ['socketcall'],
};

// ---------------------------------------------------------------------------------------------
// Rules with argument checks.
// ---------------------------------------------------------------------------------------------

/**
 * Address families `socket` may create: Unix, IPv4, IPv6, and netlink (glibc's getaddrinfo and
 * `ip addr` read interfaces through it; changing anything needs CAP_NET_ADMIN). Stricter than
 * Docker, which allows every family but AF_ALG and AF_VSOCK: the rarely used families (AF_ALG,
 * AF_VSOCK, AF_TIPC, AF_RDS, AF_SMC...) are where socket-layer kernel bugs keep turning up, and
 * AF_PACKET is useless without CAP_NET_RAW. One rule per family because runc treats two
 * comparisons of the same argument within a rule as "or", which would make a range rule useless.
 */
const SOCKET_FAMILIES = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16 } as const;

/**
 * personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, and
 * 0xffffffff, which only queries. Others (e.g. ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC) would weaken
 * the protection of the calling process's memory.
 */
const PERSONALITY_VALUES = [0x0, 0x0008, 0x20000, 0x20008, 0xffffffff] as const;

/** clone(2) flags that create namespaces; CLONE_NEWTIME only exists for clone3 and unshare. */
const CLONE_NAMESPACE_FLAGS =
  0x00020000 /* CLONE_NEWNS */ +
  0x02000000 /* CLONE_NEWCGROUP */ +
  0x04000000 /* CLONE_NEWUTS */ +
  0x08000000 /* CLONE_NEWIPC */ +
  0x10000000 /* CLONE_NEWUSER */ +
  0x20000000 /* CLONE_NEWPID */ +
  0x40000000; /* CLONE_NEWNET */

function argumentRules(): OciSeccompSyscall[] {
  const rules: OciSeccompSyscall[] = [];
  for (const family of Object.values(SOCKET_FAMILIES)) {
    rules.push({
      names: ['socket'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: family, op: 'SCMP_CMP_EQ' }],
    });
  }
  for (const persona of PERSONALITY_VALUES) {
    rules.push({
      names: ['personality'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: persona, op: 'SCMP_CMP_EQ' }],
    });
  }
  // Allowed only when (flags & CLONE_NAMESPACE_FLAGS) == 0. The flags are argument 0 on x86 and
  // ARM (only s390 orders them differently). This is how fork, threads and posix_spawn arrive.
  rules.push({
    names: ['clone'],
    action: 'SCMP_ACT_ALLOW',
    args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
  });
  // ENOSYS, not EPERM: glibc (threads, posix_spawn) tries clone3 first and falls back to clone
  // only when the kernel seems not to have it.
  rules.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  return rules;
}

/**
 * Refused calls a test can make from inside a machine to prove the filter is on: name -> x86_64
 * number. Each is harmless when called with all six arguments 0, and without the filter (same
 * capabilities) returns success or an error other than EPERM (EINVAL, EFAULT, EBADF, ESRCH, ENOSYS;
 * measured under runc on Linux 6.18), so getting EPERM can only come from the filter. All are
 * numbered below the newest call the filter resolves, so runc's ENOSYS stub does not apply to them.
 */
export const REFUSED_SYSCALLS_FOR_TESTS: Record<string, number> = Object.freeze({
  unshare: 272,
  setns: 308,
  keyctl: 250,
  add_key: 248,
  request_key: 249,
  io_uring_setup: 425,
  process_vm_readv: 310,
  kcmp: 312,
  pidfd_getfd: 438,
  name_to_handle_at: 303,
  open_tree: 428,
  clock_settime: 227,
  adjtimex: 159,
  iopl: 172,
  mbind: 237,
  modify_ldt: 154,
});

/** Fails loudly if the lists above contradict each other (a name allowed twice, or both ways). */
function checkLists(allowed: readonly string[]): void {
  const seen = new Set<string>();
  for (const name of allowed) {
    if (seen.has(name)) throw new Error(`seccomp: ${name} is listed twice`);
    seen.add(name);
  }
  const refused = new Set(Object.values(REFUSED_GROUPS).flat());
  for (const name of [...seen, 'socket', 'personality', 'clone', 'clone3']) {
    if (refused.has(name)) throw new Error(`seccomp: ${name} is both allowed and refused`);
  }
  for (const name of Object.keys(REFUSED_SYSCALLS_FOR_TESTS)) {
    if (!refused.has(name)) throw new Error(`seccomp: test syscall ${name} is not in a refused group`);
  }
}

/** The seccomp filter every machine runs under, on a host of `hostArch` (Node's `process.arch`). */
export function machineSeccompProfile(hostArch: string = process.arch): OciSeccomp {
  checkLists(ALLOWED_GROUPS.flat());
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: [...(HOST_ARCHITECTURES[hostArch] ?? ALL_ARCHITECTURES)],
    syscalls: [
      ...ALLOWED_GROUPS.map((names): OciSeccompSyscall => ({ names: [...names], action: 'SCMP_ACT_ALLOW' })),
      ...argumentRules(),
    ],
  };
}
