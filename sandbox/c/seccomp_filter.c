/* Writes a seccomp filter (classic BPF).
 *
 * Default: the deny list that bwrap installs in front of every sandboxed
 * program. Denied calls fail with EPERM rather than killing the process, so a
 * candidate that tries one gets an ordinary, visible error. Names after OUT are
 * left out of the deny list. `--unix-sockets` (the variant for GPU jobs: the
 * CUDA driver needs Unix sockets to initialize) allows sockets of AF_UNIX only;
 * in the sandbox's own network and mount namespaces they reach nothing outside.
 *
 * `--runner`: the allow-list a C runner installs on itself once its setup is
 * done, before the first call: only what its call loop, malloc and OpenMP
 * threads need. No open of any file, no new process, no executable memory, reads
 * from the command pipe only and writes to the log and the reply pipe only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include "anvil_abi.h"

static int export(scmp_filter_ctx ctx, const char *out) {
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || seccomp_export_bpf(ctx, fd) != 0) return 1;
  close(fd);
  seccomp_release(ctx);
  return 0;
}

#define ALLOW(name, ...)                                                                                               \
  if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(name), __VA_ARGS__) != 0) return 1

static int runner_filter(const char *out) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (!ctx) return 1;
  ALLOW(read, 1, SCMP_A0(SCMP_CMP_EQ, ANVIL_CMD_FD));
  ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, 1));
  ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, 2));
  ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, ANVIL_REPLY_FD));
  /* fstat on a descriptor (glibc's stdio asks it of stdout): no path is looked up. */
  ALLOW(fstat, 0);
  ALLOW(newfstatat, 1, SCMP_A3(SCMP_CMP_EQ, AT_EMPTY_PATH));
  const int plain[] = {SCMP_SYS(futex),           SCMP_SYS(sched_yield),   SCMP_SYS(exit),
                       SCMP_SYS(exit_group),      SCMP_SYS(rt_sigreturn),  SCMP_SYS(rt_sigprocmask),
                       SCMP_SYS(restart_syscall), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
                       SCMP_SYS(gettimeofday),    SCMP_SYS(time),          SCMP_SYS(nanosleep),
                       SCMP_SYS(clock_nanosleep), SCMP_SYS(getpid),        SCMP_SYS(gettid),
                       SCMP_SYS(munmap),          SCMP_SYS(mremap),        SCMP_SYS(brk),
                       SCMP_SYS(set_robust_list), SCMP_SYS(rseq),          SCMP_SYS(sched_getaffinity),
                       SCMP_SYS(getrandom),       SCMP_SYS(getcpu)};
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, plain[i], 0) != 0) return 1;
  /* Memory, never executable: no code appears after the program was loaded. */
  ALLOW(mmap, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  ALLOW(mprotect, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  /* Giving memory back; MADV_REMOVE (which would punch holes in shared memory) is not among these. */
  const int advice[] = {MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE};
  for (size_t i = 0; i < sizeof advice / sizeof advice[0]; i++) ALLOW(madvise, 1, SCMP_A2(SCMP_CMP_EQ, advice[i]));
  /* Threads (OpenMP's) only: a clone without CLONE_THREAD would be a new process. */
  ALLOW(clone, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
  if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) != 0) return 1;
  /* abort() and assert() signal their own thread. */
  ALLOW(tgkill, 1, SCMP_A2(SCMP_CMP_EQ, SIGABRT));
  return export(ctx, out);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: seccomp_filter OUT [--runner | --unix-sockets] [ALLOWED_SYSCALL...]\n");
    return 2;
  }
  if (argc > 2 && strcmp(argv[2], "--runner") == 0) return runner_filter(argv[1]);
  int unix_sockets = argc > 2 && strcmp(argv[2], "--unix-sockets") == 0;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return 1;
  const int denied[] = {
      SCMP_SYS(socket),
      SCMP_SYS(socketpair),
      SCMP_SYS(connect),
      SCMP_SYS(bind),
      SCMP_SYS(listen),
      SCMP_SYS(accept),
      SCMP_SYS(accept4),
      SCMP_SYS(sendto),
      SCMP_SYS(recvfrom),
      SCMP_SYS(sendmsg),
      SCMP_SYS(recvmsg),
      SCMP_SYS(ptrace),
      SCMP_SYS(process_vm_readv),
      SCMP_SYS(process_vm_writev),
      SCMP_SYS(mount),
      SCMP_SYS(umount2),
      SCMP_SYS(pivot_root),
      SCMP_SYS(chroot),
      SCMP_SYS(unshare),
      SCMP_SYS(setns),
      SCMP_SYS(kexec_load),
      SCMP_SYS(kexec_file_load),
      SCMP_SYS(init_module),
      SCMP_SYS(finit_module),
      SCMP_SYS(delete_module),
      SCMP_SYS(reboot),
      SCMP_SYS(swapon),
      SCMP_SYS(swapoff),
      SCMP_SYS(bpf),
      SCMP_SYS(perf_event_open),
      SCMP_SYS(keyctl),
      SCMP_SYS(add_key),
      SCMP_SYS(request_key),
      SCMP_SYS(userfaultfd),
      SCMP_SYS(io_uring_setup),
      SCMP_SYS(io_uring_enter),
      SCMP_SYS(io_uring_register),
      SCMP_SYS(personality),
      SCMP_SYS(open_by_handle_at),
      SCMP_SYS(name_to_handle_at),
      SCMP_SYS(fanotify_init),
      SCMP_SYS(acct),
      SCMP_SYS(settimeofday),
      SCMP_SYS(clock_settime),
      SCMP_SYS(adjtimex),
      SCMP_SYS(clock_adjtime),
      SCMP_SYS(syslog),
      SCMP_SYS(vhangup),
      SCMP_SYS(quotactl),
  };
  for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
    int allowed = 0;
    for (int a = 2; a < argc; a++) allowed |= seccomp_syscall_resolve_name(argv[a]) == denied[i];
    if (unix_sockets && denied[i] != SCMP_SYS(socket)) {
      /* Every other socket call needs a descriptor that only socket() or socketpair() can give. */
      const int unix_ok[] = {SCMP_SYS(socketpair), SCMP_SYS(connect), SCMP_SYS(bind),   SCMP_SYS(listen),
                             SCMP_SYS(accept),     SCMP_SYS(accept4), SCMP_SYS(sendto), SCMP_SYS(recvfrom),
                             SCMP_SYS(sendmsg),    SCMP_SYS(recvmsg)};
      for (size_t k = 0; k < sizeof unix_ok / sizeof unix_ok[0]; k++) allowed |= unix_ok[k] == denied[i];
    }
    if (unix_sockets && denied[i] == SCMP_SYS(socket)) {
      if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX)) != 0)
        return 1;
      continue;
    }
    if (!allowed && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0) != 0) return 1;
  }
  /* clone may make threads and processes, never new namespaces. */
  const unsigned long ns_flags = 0x00020000ul | 0x02000000ul | 0x04000000ul | 0x08000000ul | 0x10000000ul |
                                 0x20000000ul | 0x40000000ul | 0x00000080ul;
  for (int bit = 0; bit < 32; bit++) {
    unsigned long flag = 1ul << bit;
    if (!(ns_flags & flag)) continue;
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)) != 0)
      return 1;
  }
  /* clone3 passes its flags in memory that a filter cannot read: make callers fall back to clone. */
  if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) != 0) return 1;
  return export(ctx, argv[1]);
}
