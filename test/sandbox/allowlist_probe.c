/* Installs the runner's allow-list on itself, as runner.c does, then reports
 * what each attempt got: the calls a runner's loop needs are allowed, the
 * rest refused. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "runner_filter.h"

static void report(const char *what, int ok) {
  char line[96];
  int n = snprintf(line, sizeof line, "%s %s\n", what, ok ? "allowed" : "denied");
  if (write(1, line, (size_t)n) != n) _exit(3);
}

static void *nothing(void *p) { return p; }

int main(void) {
  struct sock_fprog prog = {(unsigned short)(sizeof anvil_runner_bpf / sizeof(struct sock_filter)), (struct sock_filter *)anvil_runner_bpf};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) return 2;
  report("open", open("/etc/hostname", O_RDONLY) >= 0);
  report("open_proc_self_mem", syscall(SYS_openat, AT_FDCWD, "/proc/self/mem", O_RDWR) >= 0);
  pid_t child = fork();
  if (child == 0) _exit(0);
  report("fork", child > 0);
  report("kill", kill(getpid(), 0) == 0);
  report("mmap_exec", mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED);
  char *data = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  report("mmap_data", data != MAP_FAILED);
  report("mprotect_exec", mprotect(data, 4096, PROT_READ | PROT_EXEC) == 0);
  report("madvise_remove", madvise(data, 4096, MADV_REMOVE) == 0);
  report("madvise_dontneed", madvise(data, 4096, MADV_DONTNEED) == 0);
  char *big = malloc(64 << 20);
  if (big) memset(big, 1, 64 << 20);
  report("malloc_64m", big != NULL);
  pthread_t t;
  report("thread", pthread_create(&t, NULL, nothing, NULL) == 0 && pthread_join(t, NULL) == 0);
  report("write_log", write(2, "", 0) == 0);
  char c;
  report("read_stdin", !(read(0, &c, 0) < 0 && errno == EPERM));
  report("write_stdin", !(write(0, "", 0) < 0 && errno == EPERM));
  report("socket", socket(AF_UNIX, SOCK_STREAM, 0) >= 0);
  return 0;
}
