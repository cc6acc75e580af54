/*
 * nullspace-idmap: what a machine's user namespace needs from the host's mounts and files. Built
 * by scripts/build-native-helpers.sh; run by the runtime (packages/runtime/src/userns/) as root.
 *
 *   mount BASE COUNT SOURCE TARGET
 *       Clones the directory SOURCE (not its submounts) as a read-only, nosuid, nodev mount whose
 *       owners are shifted: what is owned by id N in SOURCE appears owned by BASE+N, for N below
 *       COUNT (others appear as the overflow id), and moves it onto the directory TARGET. A
 *       template layer, owned by 0 on the host, so appears owned by the machine's root.
 *   probe BASE COUNT DIR
 *       Makes the same clone of DIR and drops it: exits 0 when the kernel and DIR's filesystem
 *       support idmapped mounts (checked when the runtime starts).
 *   shift DIR FROM TO COUNT
 *       Changes the owner and group of every file in the tree DIR (not crossing into other
 *       filesystems, never following a symlink) from FROM+N to TO+N, for N below COUNT; setuid
 *       and setgid bits, which the kernel clears on chown, are put back. A disk copied from one
 *       machine to another (a fork, a snapshot), or a build machine's changes becoming a template
 *       layer (TO = 0). Only ever run on a tree no machine is running on.
 *
 * Exit status: 0 done; 2 usage; 1 anything else, with the reason in one line on stderr.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "idmap.h"

/* Ids a machine's range may take: above the host's own users, below 2^31 (signed-int safe). */
#define ID_MAX 2147483647LL

static void parse_range(const char *b, const char *c, long long *base, long long *count) {
  *base = parse_id(b, 0, ID_MAX);
  *count = parse_id(c, 1, 65536);
  if (*base < 0 || *count < 0 || *base + *count - 1 > ID_MAX) die(2, "bad id range %s %s", b, c);
}

/* The detached idmapped clone of `source`. */
static int idmapped_clone(const char *source, long long base, long long count) {
  int userns = userns_with_mapping(base, count);
  if (userns < 0) die(1, "user namespace for ids %lld+%lld: %s", base, count, strerror(errno));
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) die(1, "open_tree %s: %s", source, strerror(errno));
  struct mount_attr attr = {
      .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
      .userns_fd = (unsigned long long)userns,
  };
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
    die(1, "idmapped mount of %s: %s", source, strerror(errno));
  close(userns);
  return tree;
}

static long long changed;

/* Shifts the owners of entry `name` of directory `dfd` and, for a directory, of all below it. */
static void shift_at(int dfd, const char *name, dev_t dev, long long from, long long to, long long count) {
  struct stat st;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) die(1, "stat %s: %s", name, strerror(errno));
  if (st.st_dev != dev) return; /* another filesystem mounted here: not ours to change */
  long long uid = st.st_uid, gid = st.st_gid;
  int in_uid = uid >= from && uid < from + count, in_gid = gid >= from && gid < from + count;
  if (in_uid || in_gid) {
    uid_t u = in_uid ? (uid_t)(uid - from + to) : (uid_t)-1;
    gid_t g = in_gid ? (gid_t)(gid - from + to) : (gid_t)-1;
    if (fchownat(dfd, name, u, g, AT_SYMLINK_NOFOLLOW) < 0) die(1, "chown %s: %s", name, strerror(errno));
    if (!S_ISLNK(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) &&
        fchmodat(dfd, name, st.st_mode & 07777, AT_SYMLINK_NOFOLLOW) < 0)
      die(1, "chmod %s: %s", name, strerror(errno));
    changed++;
  }
  if (!S_ISDIR(st.st_mode)) return;
  int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0) die(1, "open %s: %s", name, strerror(errno));
  DIR *dir = fdopendir(sub);
  if (!dir) die(1, "opendir %s: %s", name, strerror(errno));
  struct dirent *e;
  while ((errno = 0, e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    shift_at(sub, e->d_name, dev, from, to, count);
  }
  if (errno) die(1, "readdir %s: %s", name, strerror(errno));
  closedir(dir);
}

int main(int argc, char **argv) {
  long long base, count;
  if (argc == 6 && strcmp(argv[1], "mount") == 0) {
    parse_range(argv[2], argv[3], &base, &count);
    int tree = idmapped_clone(argv[4], base, count);
    int dst = open(argv[5], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dst < 0) die(1, "%s: %s", argv[5], strerror(errno));
    if (syscall(SYS_move_mount, tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
      die(1, "move_mount onto %s: %s", argv[5], strerror(errno));
    return 0;
  }
  if (argc == 5 && strcmp(argv[1], "probe") == 0) {
    parse_range(argv[2], argv[3], &base, &count);
    close(idmapped_clone(argv[4], base, count));
    return 0;
  }
  if (argc == 6 && strcmp(argv[1], "shift") == 0) {
    long long from = parse_id(argv[3], 0, ID_MAX), to = parse_id(argv[4], 0, ID_MAX);
    count = parse_id(argv[5], 1, 65536);
    if (from < 0 || to < 0 || count < 0 || from + count - 1 > ID_MAX || to + count - 1 > ID_MAX)
      die(2, "bad shift %s %s %s", argv[3], argv[4], argv[5]);
    struct stat st;
    if (lstat(argv[2], &st) < 0 || !S_ISDIR(st.st_mode)) die(1, "%s: not a directory", argv[2]);
    if (from != to) shift_at(AT_FDCWD, argv[2], st.st_dev, from, to, count);
    printf("%lld\n", changed);
    return 0;
  }
  die(2,
      "usage: %s mount BASE COUNT SOURCE TARGET\n"
      "       %s probe BASE COUNT DIR\n"
      "       %s shift DIR FROM TO COUNT",
      argv[0], argv[0], argv[0]);
  return 2;
}
