/* The runner's main: it lives in the same process as the code it calls (the
 * reference or a candidate), so nothing it reports is trusted by the judge.
 * It maps the argument memory, closes every other descriptor, locks itself
 * (and every thread it has) under the allow-list of runner_filter.h, greets,
 * then serves one call per command. The pipes and the filter are driven by
 * raw system calls, so that a candidate's definitions of read, write or prctl
 * (interposing libc's) never stand between the runner and the kernel. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "anvil_abi.h"
#include "runner_filter.h" /* anvil_runner_bpf: generated from seccomp_filter --runner */

void anvil_call(const anvil_arg *args); /* generated per task */
int anvil_lib_start(void);              /* anvil_lib.c */

/* A system call with its unused fourth and fifth arguments zero (prctl checks them). */
static long raw3(long nr, long a, long b, long c) {
  long ret;
  register long r10 __asm__("r10") = 0;
  register long r8 __asm__("r8") = 0;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
  return ret;
}

static int io_full(int fd, void *buf, size_t len, int writing) {
  char *p = buf;
  while (len > 0) {
    long n = raw3(writing ? SYS_write : SYS_read, fd, (long)p, (long)len);
    if (n == -EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* The runner is its namespace's init (bwrap --as-pid-1), and the kernel does not
 * deliver resource-limit signals to an init without a handler: end as they would. */
static void limit_reached(int sig) { _exit(128 + sig); }

static int lock_down(void) {
  /* Nothing but the log (1, 2) and the two pipes stays open. */
  raw3(SYS_close, ANVIL_SHM_FD, 0, 0);
  if (raw3(SYS_close_range, ANVIL_SECCOMP_FD, ~0u, 0) != 0) return -1;
  if (raw3(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0) != 0) return -1;
  struct sock_fprog prog = {(unsigned short)(sizeof anvil_runner_bpf / sizeof(struct sock_filter)),
                            (struct sock_filter *)anvil_runner_bpf};
  /* TSYNC: a thread started before main (by code the runner does not own) is bound too. */
  if (raw3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, (long)&prog) != 0) return -1;
  return 0;
}

int main(void) {
  signal(SIGXFSZ, limit_reached);
  signal(SIGXCPU, limit_reached);
  setvbuf(stdout, NULL, _IONBF, 0);
  struct stat st;
  if (fstat(ANVIL_SHM_FD, &st) != 0) return 90;
  unsigned char *base =
      mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ANVIL_SHM_FD, 0);
  if (base == MAP_FAILED) return 91;
  if (lock_down() != 0) return 94;
  /* The library's threads exist before the greeting: the judge takes every thread but main for theirs. */
  if (anvil_lib_start() != 0) return 95;
  anvil_reply reply = {0};
  if (io_full(ANVIL_REPLY_FD, &reply, sizeof reply, 1) != 0) return 92;
  for (;;) {
    anvil_cmd cmd;
    if (io_full(ANVIL_CMD_FD, &cmd, sizeof cmd, 0) != 0 || cmd.seq == 0) return 0;
    /* A command without arguments calls nothing: the judge times the hand-over with it. */
    if (cmd.nargs == 0) {
      reply.seq = cmd.seq;
      if (io_full(ANVIL_REPLY_FD, &reply, sizeof reply, 1) != 0) return 93;
      continue;
    }
    anvil_arg args[ANVIL_MAX_ARGS];
    for (uint32_t i = 0; i < cmd.nargs && i < ANVIL_MAX_ARGS; i++) {
      if (cmd.kind[i] == ANVIL_IN || cmd.kind[i] == ANVIL_OUT) args[i].p = base + cmd.arg[i].offset;
      else if (cmd.kind[i] == ANVIL_F32) args[i].f = cmd.arg[i].f;
      else args[i].i = cmd.arg[i].i;
    }
    anvil_call(args);
    reply.seq = cmd.seq;
    if (io_full(ANVIL_REPLY_FD, &reply, sizeof reply, 1) != 0) return 93;
  }
}
