/* anvil-launch: the last trusted step before a sandboxed program starts.
 * Joins the job's cgroups, applies resource limits, opens the seccomp filter
 * for bwrap at a fixed descriptor, drops to the job's uid, clears the
 * environment and executes the given command. Descriptors 0-5 pass through.
 *
 * usage: anvil-launch [--procs FILE]... [--uid N --gid N] [--cpu S] [--fsize B]
 *        [--as B] [--nproc N] [--nofile N] [--seccomp FILE] [--env K=V]... [--chdir DIR]
 *        -- CMD... */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "anvil_abi.h"

static void die(const char *what) {
  fprintf(stderr, "anvil-launch: %s: %s\n", what, strerror(errno));
  _exit(127);
}

static void limit(int resource, const char *value) {
  rlim_t v = (rlim_t)strtoull(value, NULL, 10);
  struct rlimit rl = {v, v};
  if (setrlimit(resource, &rl) != 0) die("setrlimit");
}

int main(int argc, char **argv) {
  char *env[32];
  int nenv = 0, seccomp_fd = -1;
  const char *dir = NULL;
  long uid = -1, gid = -1;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (i + 1 >= argc) {
      errno = EINVAL;
      die(a);
    }
    const char *v = argv[++i];
    if (strcmp(a, "--procs") == 0) {
      int fd = open(v, O_WRONLY | O_CLOEXEC);
      if (fd < 0) die(v);
      char pid[32];
      int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
      if (write(fd, pid, (size_t)n) != n) die(v);
      close(fd);
    } else if (strcmp(a, "--uid") == 0) uid = atol(v);
    else if (strcmp(a, "--gid") == 0) gid = atol(v);
    else if (strcmp(a, "--cpu") == 0) limit(RLIMIT_CPU, v);
    else if (strcmp(a, "--fsize") == 0) limit(RLIMIT_FSIZE, v);
    else if (strcmp(a, "--as") == 0) limit(RLIMIT_AS, v);
    else if (strcmp(a, "--nproc") == 0) limit(RLIMIT_NPROC, v);
    else if (strcmp(a, "--nofile") == 0) limit(RLIMIT_NOFILE, v);
    else if (strcmp(a, "--seccomp") == 0) {
      seccomp_fd = open(v, O_RDONLY);
      if (seccomp_fd < 0) die(v);
    } else if (strcmp(a, "--chdir") == 0) dir = v;
    else if (strcmp(a, "--env") == 0) {
      if (nenv < 31) env[nenv++] = (char *)v;
    } else {
      errno = EINVAL;
      die(a);
    }
  }
  if (i >= argc) {
    errno = EINVAL;
    die("no command");
  }
  env[nenv] = NULL;
  struct rlimit core = {0, 0};
  setrlimit(RLIMIT_CORE, &core);
  if (seccomp_fd >= 0 && seccomp_fd != ANVIL_SECCOMP_FD) {
    if (dup2(seccomp_fd, ANVIL_SECCOMP_FD) < 0) die("dup2");
    close(seccomp_fd);
  }
  /* Nothing but 0-6 may reach the sandbox. */
  if (syscall(SYS_close_range, ANVIL_SECCOMP_FD + 1, ~0u, 0) != 0) die("close_range");
  if (gid >= 0) {
    if (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0) die("setgid");
  }
  if (uid >= 0 && setuid((uid_t)uid) != 0) die("setuid");
  if (dir && chdir(dir) != 0) die(dir);
  execve(argv[i], argv + i, env);
  die(argv[i]);
  return 127;
}
