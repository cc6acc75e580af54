/*
 * Shared by the native helpers: a user namespace with a given id mapping, as a file descriptor,
 * for idmapped mounts (mount_setattr MOUNT_ATTR_IDMAP). The kernel takes the mapping of an idmapped
 * mount from a user namespace; a throwaway one is made here (a child unshares it, we write its
 * maps, keep a descriptor of it and let the child exit), so no machine needs to exist yet.
 */
#ifndef NULLSPACE_IDMAP_H
#define NULLSPACE_IDMAP_H
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Prints the message (printf-style, a line) on stderr and exits with `status`. */
static void die(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(status);
}

/* Parses a decimal id or count in [min, max]; -1 when it is not one. */
static long long parse_id(const char *s, long long min, long long max) {
  if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 10) return -1;
  long long v = strtoll(s, NULL, 10);
  return v < min || v > max ? -1 : v;
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

/*
 * A descriptor of a new user namespace mapping ids 0..count-1 (users and groups) to host ids
 * base..base+count-1, or -1 with errno set.
 */
static int userns_with_mapping(long long base, long long count) {
  int ready[2], done[2];
  if (pipe2(ready, O_CLOEXEC) < 0) return -1;
  if (pipe2(done, O_CLOEXEC) < 0) return -1;
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    char c = 0;
    close(ready[0]);
    close(done[1]); /* so the read below ends when the parent closes its end */
    if (unshare(CLONE_NEWUSER) < 0) _exit(1);
    if (write(ready[1], &c, 1) != 1) _exit(1);
    (void)!read(done[0], &c, 1); /* until the parent has what it needs */
    _exit(0);
  }
  close(ready[1]);
  close(done[0]);
  char c;
  int fd = -1, err = 0;
  if (read(ready[0], &c, 1) != 1) {
    err = ECHILD;
  } else {
    char path[64], map[64];
    snprintf(map, sizeof map, "0 %lld %lld\n", base, count);
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)child);
    if (write_file(path, map) < 0) err = errno;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)child);
    if (!err && write_file(path, map) < 0) err = errno;
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)child);
    if (!err && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) err = errno;
  }
  close(done[1]);
  close(ready[0]);
  waitpid(child, NULL, 0);
  if (err) {
    if (fd >= 0) close(fd);
    errno = err;
    return -1;
  }
  return fd;
}
#endif
