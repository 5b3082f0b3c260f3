/* The runner's main: it lives in the same process as the code it calls (the
 * reference or a candidate), so nothing it reports is trusted by the judge.
 * It maps the argument memory, greets, then serves one call per command. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "anvil_abi.h"

void anvil_call(const anvil_arg *args);  /* generated per task */
extern uint64_t anvil_lib_ns;            /* accumulated by the library ops */

static int io_full(int fd, void *buf, size_t len, int writing) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* The runner is its namespace's init (bwrap --as-pid-1), and the kernel does not
 * deliver resource-limit signals to an init without a handler: end as they would. */
static void limit_reached(int sig) { _exit(128 + sig); }

int main(void) {
  signal(SIGXFSZ, limit_reached);
  signal(SIGXCPU, limit_reached);
  setvbuf(stdout, NULL, _IONBF, 0);
  struct stat st;
  if (fstat(ANVIL_SHM_FD, &st) != 0) return 90;
  unsigned char *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ANVIL_SHM_FD, 0);
  if (base == MAP_FAILED) return 91;
  anvil_reply reply = {0, 0, 0};
  if (io_full(ANVIL_REPLY_FD, &reply, sizeof reply, 1) != 0) return 92;
  for (;;) {
    anvil_cmd cmd;
    if (io_full(ANVIL_CMD_FD, &cmd, sizeof cmd, 0) != 0 || cmd.seq == 0) return 0;
    anvil_arg args[ANVIL_MAX_ARGS];
    for (uint32_t i = 0; i < cmd.nargs && i < ANVIL_MAX_ARGS; i++) {
      if (cmd.kind[i] == ANVIL_IN || cmd.kind[i] == ANVIL_OUT) args[i].p = base + cmd.arg[i].offset;
      else if (cmd.kind[i] == ANVIL_F32) args[i].f = cmd.arg[i].f;
      else args[i].i = cmd.arg[i].i;
    }
    struct timespec t0, t1;
    anvil_lib_ns = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    anvil_call(args);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    reply.seq = cmd.seq;
    reply.lib_ns = anvil_lib_ns;
    reply.call_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull + (uint64_t)(t1.tv_nsec - t0.tv_nsec);
    if (io_full(ANVIL_REPLY_FD, &reply, sizeof reply, 1) != 0) return 93;
  }
}
