/*
 * nullspace-volume-mount: mounts a directory of a host volume into a running machine's mount
 * namespace, or takes it out again. Built by scripts/build-native-helpers.sh; run by the runtime
 * (packages/runtime/src/volumes/) as root. Never runs anything from a machine's filesystem.
 *
 *   attach <pid> <machine-id> <volume-root> <subpath|-> <mount-path> <rw|ro>
 *       Clones <volume-root>/<subpath> (created if missing) as a detached mount (open_tree),
 *       makes it private, nosuid, nodev (and read-only with ro), idmapped with the user namespace
 *       of <pid> when that is not the host's (so a volume's files owned by 0 appear owned by the
 *       machine's root, in every machine, whatever its host id range), enters the mount namespace
 *       of <pid> (the init of machine <machine-id>: checked against its cgroup), creates
 *       <mount-path> there (below the machine's root) and moves the mount onto it.
 *   detach <pid> <machine-id> <mount-path> <major:minor>
 *       Enters the mount namespace of <pid> as attach does and lazily unmounts every mount of
 *       device <major:minor> stacked at <mount-path>. Nothing mounted there is not an error.
 *   stage <volume-root> <subpath|-> <host-dir> <rw|ro> [<id-base> <id-count>]
 *       The clone of attach, moved onto <host-dir> in the host's own namespace: the source CRIU
 *       bind-mounts into a machine it restores (a path no machine can swap for a symlink). With
 *       an id range, idmapped as attach does for a machine of that range (which does not run
 *       yet, so the mapping is given).
 *
 * Paths are resolved one component at a time with openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH):
 * a symlink a machine planted in its root or in a volume never redirects a mount or a mkdir.
 * Inside the machine's namespace only file descriptors are used (taken before setns), never paths
 * looked up through the machine's own /proc.
 *
 * Exit status: 0 done; 2 usage; 3 the mount path is unusable in the machine (a symlink or a
 * non-directory in the way); 4 the subpath is unusable in the volume; 1 anything else. The reason
 * is one line on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "idmap.h"

#define EXIT_TARGET 3
#define EXIT_SUBPATH 4

static int openat2_beneath(int dirfd, const char *name, int flags) {
  struct open_how how = {
      .flags = (unsigned long long)(flags | O_CLOEXEC | O_NOFOLLOW),
      .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
  };
  return (int)syscall(SYS_openat2, dirfd, name, &how, sizeof how);
}

/* A path of plain components: absolute or relative, no empty, "." or ".." component. */
static int valid_components(const char *path) {
  const char *p = path;
  while (*p == '/') p++;
  if (*p == '\0') return 0;
  while (*p) {
    const char *end = strchrnul(p, '/');
    size_t n = (size_t)(end - p);
    if (n == 0 || n > 255 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return 0;
    p = *end ? end + 1 : end;
    if (*end && *p == '\0') return 0; /* trailing slash */
  }
  return 1;
}

/*
 * Walks `path` below `dirfd` one component at a time (creating missing directories when `create`)
 * and returns an O_PATH descriptor of the last one, or -1 with errno set. A symlink, or anything
 * but a directory, on the way fails with ELOOP or ENOTDIR.
 */
static uid_t made_uid = (uid_t)-1; /* owner of the directories walk() makes (-1: as made) */
static gid_t made_gid = (gid_t)-1;

static int walk(int dirfd, const char *path, int create) {
  char *copy = strdup(path);
  if (!copy) return -1;
  int cur = dup(dirfd);
  if (cur < 0) {
    free(copy);
    return -1;
  }
  char *save = NULL;
  for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
    if (create) {
      if (mkdirat(cur, comp, 0755) == 0) {
        if (made_uid != (uid_t)-1 && fchownat(cur, comp, made_uid, made_gid, AT_SYMLINK_NOFOLLOW) < 0) goto fail;
      } else if (errno != EEXIST) {
        goto fail;
      }
    }
    int next = openat2_beneath(cur, comp, O_PATH | O_DIRECTORY);
    if (next < 0) goto fail;
    close(cur);
    cur = next;
  }
  free(copy);
  return cur;
fail: {
  int saved = errno;
  close(cur);
  free(copy);
  errno = saved;
  return -1;
}
}

static const char *walk_error(int err) {
  if (err == ELOOP || err == ENOTDIR) return "a symlink or something other than a directory is in the way";
  return strerror(err);
}

/*
 * A detached, private, nosuid, nodev (and with `ro` read-only) clone of volume-root/subpath,
 * idmapped with user namespace `userns` unless it is -1.
 */
static int clone_source(const char *root, const char *subpath, int ro, int userns) {
  int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) die(1, "volume root %s: %s", root, strerror(errno));
  int srcfd = rootfd;
  if (strcmp(subpath, "-") != 0) {
    if (!valid_components(subpath) || subpath[0] == '/') die(2, "bad subpath %s", subpath);
    srcfd = walk(rootfd, subpath, 1);
    if (srcfd < 0) die(EXIT_SUBPATH, "%s: %s", subpath, walk_error(errno));
  }
  int tree = open_tree(srcfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
  if (tree < 0) die(1, "open_tree: %s", strerror(errno));
  struct mount_attr attr = {
      .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (ro ? MOUNT_ATTR_RDONLY : 0) |
                  (userns >= 0 ? MOUNT_ATTR_IDMAP : 0),
      .propagation = MS_PRIVATE,
      .userns_fd = userns >= 0 ? (unsigned long long)userns : 0,
  };
  if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
    die(1, "mount_setattr: %s", strerror(errno));
  if (srcfd != rootfd) close(srcfd);
  close(rootfd);
  return tree;
}

/*
 * Enters the mount namespace of process `pid`, which must be in machine `machine`'s cgroup (a pid
 * reused by a host process is refused) and in a mount namespace other than ours. Everything is
 * opened through one /proc/<pid> directory: if the process is gone and its pid reused meanwhile,
 * those opens fail rather than reach the new process. `*rootfd` is the machine's root.
 */
static void enter_mount_ns(const char *pid, const char *machine, int *rootfd) {
  if (!*pid || strspn(pid, "0123456789") != strlen(pid) || strlen(pid) > 9) die(2, "bad pid %s", pid);
  if (!*machine || strspn(machine, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(machine) ||
      strlen(machine) > 64)
    die(2, "bad machine id %s", machine);
  char path[64];
  snprintf(path, sizeof path, "/proc/%s", pid);
  int procfd = open(path, O_DIRECTORY | O_CLOEXEC);
  if (procfd < 0) die(1, "%s: %s", path, strerror(errno));
  int cgfd = openat(procfd, "cgroup", O_RDONLY | O_CLOEXEC);
  if (cgfd < 0) die(1, "%s/cgroup: %s", path, strerror(errno));
  char cg[65536];
  ssize_t n = read(cgfd, cg, sizeof cg - 1);
  if (n < 0) die(1, "%s/cgroup: %s", path, strerror(errno));
  cg[n] = '\0';
  close(cgfd);
  char want[80];
  snprintf(want, sizeof want, "/%s\n", machine);
  if (!strstr(cg, want)) die(1, "process %s is not in machine %s", pid, machine);
  int nsfd = openat(procfd, "ns/mnt", O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) die(1, "%s/ns/mnt: %s", path, strerror(errno));
  struct stat theirs, ours;
  if (fstat(nsfd, &theirs) < 0 || stat("/proc/self/ns/mnt", &ours) < 0) die(1, "stat ns: %s", strerror(errno));
  if (theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev)
    die(1, "process %s shares the host's mount namespace", pid);
  *rootfd = openat(procfd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (*rootfd < 0) die(1, "%s/root: %s", path, strerror(errno));
  close(procfd);
  if (setns(nsfd, CLONE_NEWNS) < 0) die(1, "setns: %s", strerror(errno));
  close(nsfd);
}

static int parse_ro(const char *s) {
  if (strcmp(s, "ro") == 0) return 1;
  if (strcmp(s, "rw") == 0) return 0;
  die(2, "expected rw or ro, got %s", s);
  return 0;
}

/*
 * The user namespace of process `pid` (checked like enter_mount_ns checks it, which follows), or
 * -1 when it is the host's own: a machine started before machines had user namespaces.
 */
/* Host id of the root of process `pid`'s user namespace (its uid_map's line for id 0). */
static long long root_host_id(const char *pid, const char *which) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%s/%s", pid, which);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(1, "%s: %s", path, strerror(errno));
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) die(1, "%s: empty", path);
  buf[n] = '\0';
  long long inside, host, count;
  if (sscanf(buf, " %lld %lld %lld", &inside, &host, &count) != 3 || inside != 0) die(1, "%s: no mapping of 0", path);
  return host;
}

static int machine_userns(const char *pid) {
  if (!*pid || strspn(pid, "0123456789") != strlen(pid) || strlen(pid) > 9) die(2, "bad pid %s", pid);
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/ns/user", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(1, "%s: %s", path, strerror(errno));
  struct stat theirs, ours;
  if (fstat(fd, &theirs) < 0 || stat("/proc/self/ns/user", &ours) < 0) die(1, "stat ns: %s", strerror(errno));
  if (theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev) {
    close(fd);
    return -1;
  }
  return fd;
}

static int cmd_attach(char **argv) {
  const char *target = argv[4];
  if (target[0] != '/' || !valid_components(target)) die(2, "bad mount path %s", target);
  int userns = machine_userns(argv[0]);
  int tree = clone_source(argv[2], argv[3], parse_ro(argv[5]), userns);
  if (userns >= 0) {
    close(userns);
    /* The mount path's missing directories are made as the machine's root would make them. */
    made_uid = (uid_t)root_host_id(argv[0], "uid_map");
    made_gid = (gid_t)root_host_id(argv[0], "gid_map");
  }
  int rootfd;
  enter_mount_ns(argv[0], argv[1], &rootfd);
  int dst = walk(rootfd, target + 1, 1);
  if (dst < 0) die(EXIT_TARGET, "%s: %s", target, walk_error(errno));
  if (move_mount(tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    die(1, "move_mount: %s", strerror(errno));
  return 0;
}

static int cmd_detach(char **argv) {
  const char *target = argv[2];
  if (target[0] != '/' || !valid_components(target)) die(2, "bad mount path %s", target);
  unsigned maj, min;
  if (sscanf(argv[3], "%u:%u", &maj, &min) != 2) die(2, "bad device %s", argv[3]);
  /* umount2 takes a path: /proc/self/fd/N of the host's procfs, opened before entering. */
  int fddir = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fddir < 0) die(1, "/proc/self/fd: %s", strerror(errno));
  int rootfd;
  enter_mount_ns(argv[0], argv[1], &rootfd);
  if (fchdir(fddir) < 0) die(1, "fchdir: %s", strerror(errno));
  for (int round = 0; round < 64; round++) {
    int dst = walk(rootfd, target + 1, 0);
    if (dst < 0) {
      if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return 0; /* nothing of ours there */
      die(1, "mount path %s: %s", target, strerror(errno));
    }
    struct statx st;
    if (statx(dst, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &st) < 0) die(1, "statx: %s", strerror(errno));
    int ours = (st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
               (st.stx_attributes & STATX_ATTR_MOUNT_ROOT) && st.stx_dev_major == maj &&
               st.stx_dev_minor == min;
    if (!ours) return 0;
    char name[16];
    snprintf(name, sizeof name, "%d", dst);
    if (umount2(name, MNT_DETACH) < 0) die(1, "umount: %s", strerror(errno));
    close(dst);
  }
  die(1, "mount path %s: too many mounts stacked", target);
  return 1;
}

static int cmd_stage(char **argv, int with_ids) {
  int userns = -1;
  if (with_ids) {
    long long base = parse_id(argv[4], 0, 2147483647LL), count = parse_id(argv[5], 1, 65536);
    if (base < 0 || count < 0 || base + count - 1 > 2147483647LL) die(2, "bad id range %s %s", argv[4], argv[5]);
    userns = userns_with_mapping(base, count);
    if (userns < 0) die(1, "user namespace for ids %lld+%lld: %s", base, count, strerror(errno));
  }
  int tree = clone_source(argv[0], argv[1], parse_ro(argv[3]), userns);
  if (userns >= 0) close(userns);
  int dst = open(argv[2], O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dst < 0) die(1, "%s: %s", argv[2], strerror(errno));
  if (move_mount(tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    die(1, "move_mount: %s", strerror(errno));
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 8 && strcmp(argv[1], "attach") == 0) return cmd_attach(argv + 2);
  if (argc == 6 && strcmp(argv[1], "detach") == 0) return cmd_detach(argv + 2);
  if (argc == 6 && strcmp(argv[1], "stage") == 0) return cmd_stage(argv + 2, 0);
  if (argc == 8 && strcmp(argv[1], "stage") == 0) return cmd_stage(argv + 2, 1);
  die(2,
      "usage: %s attach PID MACHINE_ID VOLUME_ROOT SUBPATH|- MOUNT_PATH rw|ro\n"
      "       %s detach PID MACHINE_ID MOUNT_PATH MAJOR:MINOR\n"
      "       %s stage VOLUME_ROOT SUBPATH|- HOST_DIR rw|ro [ID_BASE ID_COUNT]",
      argv[0], argv[0], argv[0]);
  return 2;
}
