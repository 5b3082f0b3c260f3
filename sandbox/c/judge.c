/* judge: the trusted side of one C evaluation phase. It is never linked with
 * candidate code. It starts a reference runner and a candidate runner (each in
 * its own sandbox, through anvil-launch), gives each its own sealed shared
 * memory, generates inputs, checks outputs and times both calls from outside.
 * It prints one JSON object on stdout: the only channel the verdict travels on.
 *
 * usage: judge SPEC   (the line format is written by sandbox/judge.ts)
 *
 * phase check: correctness trials. Each trial runs the candidate first (inputs
 *   at a fresh address, outputs poisoned), checks that the inputs are intact,
 *   runs it again at another address and compares the two, then runs the
 *   reference on a private copy and compares. The candidate is stopped
 *   (SIGSTOP) whenever it is not being called, and after the last call it is
 *   resumed once to catch writes made after it returned.
 * phase time: the reference and the candidate are called alternately on the
 *   same input windows of a random pool; every call sees a new address and new
 *   contents, every window is flushed from the caches before the call, and
 *   every candidate output is compared with the reference's. Repetitions go on
 *   until the relative standard error of both is under target, or the budget
 *   ends. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <immintrin.h>
#include "anvil_abi.h"

#define MAX_SHAPES 16
#define MAX_ARGV 96
#define MAX_PROCS 4
#define POISON_BITS 0x7fc0deadu
#define LINE 64

/* ---------- the job spec ---------- */

typedef struct {
  int kind;        /* anvil_kind */
  int dist;        /* 0 none, 1 uniform, 2 normal */
  double p1, p2;   /* uniform: lo, hi; normal: mean, std */
} arg_spec;

typedef struct {
  int visible;
  double v[ANVIL_MAX_ARGS];  /* arrays: element count; scalars: value */
} shape_spec;

typedef struct {
  char *argv[MAX_ARGV];
  int argc;
  char *procs[MAX_PROCS];  /* cgroup.procs files that list this runner's processes */
  int nprocs;
  char *log;
} runner_spec;

static struct {
  int phase_time;
  uint64_t seed;
  double atol, rtol;
  int call_timeout_ms, start_timeout_ms, budget_ms, min_reps, max_reps, trials, post_wait_ms, deadline_ms;
  int bwrap;  /* runners start under bubblewrap: its monitor process is not the candidate's */
  char *host_lock;  /* a file every judge on the host locks: shared to check, exclusive to time */
  double rse_target;
  int nargs, nshapes;
  arg_spec arg[ANVIL_MAX_ARGS];
  shape_spec shape[MAX_SHAPES];
  runner_spec cand, ref;
} spec;

/* ---------- JSON output ---------- */

static char *out_buf;
static size_t out_len, out_cap;

static void emit(const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(out_buf + out_len, out_cap - out_len, fmt, ap);
    va_end(ap);
    if (n >= 0 && out_len + (size_t)n < out_cap) { out_len += (size_t)n; return; }
    out_cap = out_cap ? out_cap * 2 : 1 << 16;
    out_buf = realloc(out_buf, out_cap);
  }
}

static void emit_num(const char *key, double v) {
  if (isfinite(v)) emit("\"%s\":%.9g,", key, v);
  else emit("\"%s\":null,", key);
}

/* Closes a JSON list whether or not it has items. */
static void end_list(void) {
  if (out_buf[out_len - 1] == ',') out_len--;
  emit("],");
}

static void emit_str(const char *key, const char *s) {
  emit("\"%s\":\"", key);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') emit("\\%c", c);
    else if (c < 0x20) emit("\\u%04x", c);
    else emit("%c", c);
  }
  emit("\",");
}

static void finish_and_exit(void) {
  if (out_len && out_buf[out_len - 1] == ',') out_len--;
  fwrite(out_buf, 1, out_len, stdout);
  fputs("}\n", stdout);
  fflush(stdout);
  exit(0);
}

static void fail_env(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit_str("outcome", "env_error");
  emit_str("message", msg);
  finish_and_exit();
}

/* ---------- spec parsing ---------- */

static char *dup_line(const char *s) {
  char *d = strdup(s);
  size_t n = strlen(d);
  while (n && (d[n - 1] == '\n' || d[n - 1] == '\r')) d[--n] = 0;
  return d;
}

static void read_argv(FILE *f, runner_spec *r, int n) {
  char line[4096];
  if (n <= 0 || n >= MAX_ARGV) fail_env("bad argv count %d", n);
  for (int i = 0; i < n; i++) {
    if (!fgets(line, sizeof line, f)) fail_env("spec ends inside an argv");
    r->argv[i] = dup_line(line);
  }
  r->argv[n] = NULL;
  r->argc = n;
}

static void parse_spec(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) fail_env("cannot open spec %s", path);
  char line[4096], key[64];
  spec.trials = 5;
  spec.start_timeout_ms = 10000;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%63s", key) != 1) continue;
    const char *rest = line + strlen(key);
    while (*rest == ' ') rest++;
    if (!strcmp(key, "phase")) spec.phase_time = strncmp(rest, "time", 4) == 0;
    else if (!strcmp(key, "seed")) spec.seed = strtoull(rest, NULL, 10);
    else if (!strcmp(key, "atol")) spec.atol = atof(rest);
    else if (!strcmp(key, "rtol")) spec.rtol = atof(rest);
    else if (!strcmp(key, "call_timeout_ms")) spec.call_timeout_ms = atoi(rest);
    else if (!strcmp(key, "start_timeout_ms")) spec.start_timeout_ms = atoi(rest);
    else if (!strcmp(key, "budget_ms")) spec.budget_ms = atoi(rest);
    else if (!strcmp(key, "deadline_ms")) spec.deadline_ms = atoi(rest);
    else if (!strcmp(key, "bwrap")) spec.bwrap = atoi(rest);
    else if (!strcmp(key, "host_lock")) spec.host_lock = dup_line(rest);
    else if (!strcmp(key, "min_reps")) spec.min_reps = atoi(rest);
    else if (!strcmp(key, "max_reps")) spec.max_reps = atoi(rest);
    else if (!strcmp(key, "trials")) spec.trials = atoi(rest);
    else if (!strcmp(key, "post_wait_ms")) spec.post_wait_ms = atoi(rest);
    else if (!strcmp(key, "rse_target")) spec.rse_target = atof(rest);
    else if (!strcmp(key, "arg")) {
      if (spec.nargs >= ANVIL_MAX_ARGS) fail_env("too many args");
      char kind[16], dist[16];
      arg_spec *a = &spec.arg[spec.nargs++];
      if (sscanf(rest, "%15s %15s %lf %lf", kind, dist, &a->p1, &a->p2) != 4) fail_env("bad arg line");
      a->kind = !strcmp(kind, "in") ? ANVIL_IN : !strcmp(kind, "out") ? ANVIL_OUT
              : !strcmp(kind, "i32") ? ANVIL_I32 : ANVIL_F32;
      a->dist = !strcmp(dist, "uniform") ? 1 : !strcmp(dist, "normal") ? 2 : 0;
    } else if (!strcmp(key, "shape")) {
      if (spec.nshapes >= MAX_SHAPES) fail_env("too many shapes");
      shape_spec *s = &spec.shape[spec.nshapes++];
      char *p = (char *)rest;
      s->visible = (int)strtol(p, &p, 10);
      for (int i = 0; i < spec.nargs; i++) s->v[i] = strtod(p, &p);
    } else if (!strcmp(key, "cand_argv")) read_argv(f, &spec.cand, atoi(rest));
    else if (!strcmp(key, "ref_argv")) read_argv(f, &spec.ref, atoi(rest));
    else if (!strcmp(key, "cand_procs") && spec.cand.nprocs < MAX_PROCS) spec.cand.procs[spec.cand.nprocs++] = dup_line(rest);
    else if (!strcmp(key, "ref_procs") && spec.ref.nprocs < MAX_PROCS) spec.ref.procs[spec.ref.nprocs++] = dup_line(rest);
    else if (!strcmp(key, "cand_log")) spec.cand.log = dup_line(rest);
    else if (!strcmp(key, "ref_log")) spec.ref.log = dup_line(rest);
    else fail_env("unknown spec key %s", key);
  }
  fclose(f);
  if (!spec.nargs || !spec.nshapes || !spec.cand.argc || !spec.ref.argc) fail_env("incomplete spec");
  if (spec.call_timeout_ms <= 0) spec.call_timeout_ms = 10000;
}

/* ---------- random inputs ---------- */

typedef struct { uint64_t s[4]; } rng;

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static rng rng_seeded(uint64_t seed, uint64_t stream) {
  rng r;
  uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);
  for (int i = 0; i < 4; i++) r.s[i] = splitmix(&x);
  return r;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t next_u64(rng *r) {
  uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
  return result;
}

static inline double next_unit(rng *r) { return (double)(next_u64(r) >> 11) * 0x1.0p-53; }

static double draw(rng *r, const arg_spec *a) {
  if (a->dist == 2) {
    double u1 = next_unit(r), u2 = next_unit(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return a->p1 + a->p2 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
  }
  return a->p1 + (a->p2 - a->p1) * next_unit(r);
}

static void fill(float *dst, size_t n, rng *r, const arg_spec *a) {
  for (size_t i = 0; i < n; i++) dst[i] = (float)draw(r, a);
}

/* ---------- time and memory ---------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void flush_range(const void *p, size_t bytes) {
  const char *c = (const char *)((uintptr_t)p & ~(uintptr_t)(LINE - 1));
  const char *end = (const char *)p + bytes;
  for (; c < end; c += LINE) _mm_clflushopt((void *)c);
}

static void poison(float *p, size_t n) {
  uint32_t *u = (uint32_t *)p;
  for (size_t i = 0; i < n; i++) u[i] = POISON_BITS;
}

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* ---------- runners ---------- */

typedef struct {
  runner_spec *spec;
  const char *name;
  pid_t pid;
  int cmd_fd, reply_fd, shm_fd;
  unsigned char *mem;
  size_t mem_size;
  uint64_t seq;
  int dead;
  char death[160];
  pid_t keeper;  /* bubblewrap's monitor: never frozen */
} runner;

static runner cand = {.name = "candidate"}, ref = {.name = "reference"};

static int make_memory(runner *r, size_t bytes) {
  r->mem_size = round_up(bytes ? bytes : 4096, 4096);
  r->shm_fd = memfd_create(r->name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (r->shm_fd < 0 || ftruncate(r->shm_fd, (off_t)r->mem_size) != 0) return -1;
  if (fcntl(r->shm_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) return -1;
  r->mem = mmap(NULL, r->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->shm_fd, 0);
  return r->mem == MAP_FAILED ? -1 : 0;
}

static int read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Lists the runner's processes (host pids) from its cgroup, else its direct child. */
static int runner_pids(runner *r, pid_t *pids, int max) {
  int n = 0;
  if (r->spec->nprocs) {
    FILE *f = fopen(r->spec->procs[0], "r");
    if (f) {
      long p;
      while (n < max && fscanf(f, "%ld", &p) == 1) pids[n++] = (pid_t)p;
      fclose(f);
    }
  } else if (r->pid > 0) pids[n++] = r->pid;
  return n;
}

/* Under bubblewrap the runner's group also holds bwrap's monitor, our child.
 * Stopping it disturbs the scheduling of the runner when it resumes, by
 * milliseconds, so it is left alone. */
static int is_keeper(runner *r, pid_t p) { return spec.bwrap && p > 0 && p == r->keeper; }

static void signal_runner(runner *r, int sig) {
  pid_t pids[256];
  int n = runner_pids(r, pids, 256);
  for (int i = 0; i < n; i++)
    if (!is_keeper(r, pids[i])) kill(pids[i], sig);
}

/* Reads /proc/PID/task/TID/<file> for every thread of the runner's own
 * processes and hands each to visit; stops early when visit returns nonzero. */
static int each_thread(runner *r, const char *file, int (*visit)(const char *text, void *ctx), void *ctx) {
  pid_t pids[256];
  int n = runner_pids(r, pids, 256);
  for (int i = 0; i < n; i++) {
    if (is_keeper(r, pids[i])) continue;
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pids[i]);
    DIR *d = opendir(dir);
    if (!d) continue;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char path[160], buf[512];
      snprintf(path, sizeof path, "%.40s/%.60s/%.20s", dir, e->d_name, file);
      int fd = open(path, O_RDONLY);
      if (fd < 0) continue;
      ssize_t len = read(fd, buf, sizeof buf - 1);
      close(fd);
      if (len <= 0) continue;
      buf[len] = 0;
      if (visit(buf, ctx)) {
        closedir(d);
        return 1;
      }
    }
    closedir(d);
  }
  return 0;
}

static int is_running(const char *stat, void *ctx) {
  (void)ctx;
  const char *paren = strrchr(stat, ')');
  if (!paren || paren[1] == 0) return 0;
  char state = paren[2];
  return state != 'T' && state != 't' && state != 'Z' && state != 'X';
}

/* True when every thread of every process of the runner is stopped. */
static int all_stopped(runner *r) { return !each_thread(r, "stat", is_running, NULL); }

/* Freezes the candidate between calls, so it cannot work while it is not timed. */
static void freeze(runner *r) {
  signal_runner(r, SIGSTOP);
  for (int i = 0; i < 2000 && !all_stopped(r); i++) usleep(50);
}

static void thaw(runner *r) { signal_runner(r, SIGCONT); }

static void kill_runner(runner *r) {
  for (int round = 0; round < 50; round++) {
    pid_t pids[256];
    int n = runner_pids(r, pids, 256);
    if (r->pid > 0) kill(r->pid, SIGKILL);
    for (int i = 0; i < n; i++) kill(pids[i], SIGKILL);
    if (n == 0 || (n == 1 && r->pid > 0 && pids[0] == r->pid)) break;
    usleep(2000);
  }
}

static void note_death(runner *r) {
  if (r->dead) return;
  r->dead = 1;
  int status = 0;
  pid_t w = 0;
  for (int i = 0; i < 200 && (w = waitpid(r->pid, &status, WNOHANG)) == 0; i++) usleep(1000);
  if (w == 0) { kill_runner(r); waitpid(r->pid, &status, 0); }
  if (WIFSIGNALED(status)) snprintf(r->death, sizeof r->death, "signal %d", WTERMSIG(status));
  else if (WIFEXITED(status) && WEXITSTATUS(status) > 128) snprintf(r->death, sizeof r->death, "signal %d", WEXITSTATUS(status) - 128);
  else snprintf(r->death, sizeof r->death, "exit %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  r->pid = -1;
}

enum { CALL_OK, CALL_DIED, CALL_TIMEOUT, CALL_FORGED };

/* The phase's own deadline; each call waits at most until then. */
static uint64_t deadline_at;
static int hit_deadline;

static int call_wait_ms(void) {
  if (!deadline_at) return spec.call_timeout_ms;
  uint64_t t = now_ns();
  if (t >= deadline_at) return 0;
  uint64_t left = (deadline_at - t) / 1000000;
  if (left < (uint64_t)spec.call_timeout_ms) { hit_deadline = 1; return (int)left; }
  return spec.call_timeout_ms;
}

/* Waits for the runner's next reply; the runner's word is only "I returned". */
static int await_reply(runner *r, uint64_t want_seq, int timeout_ms, anvil_reply *rep) {
  struct pollfd p = {r->reply_fd, POLLIN, 0};
  int rc;
  do rc = poll(&p, 1, timeout_ms); while (rc < 0 && errno == EINTR);
  if (rc == 0) return CALL_TIMEOUT;
  if (read_full(r->reply_fd, rep, sizeof *rep) != 0) return CALL_DIED;
  /* The runner's own main only ever answers the call in flight: anything else
   * on this pipe was written by the code it hosts. */
  if (rep->seq != want_seq) return CALL_FORGED;
  return CALL_OK;
}

static int start_runner(runner *r, runner_spec *rs) {
  r->spec = rs;
  int to_runner[2], from_runner[2];
  if (pipe2(to_runner, O_CLOEXEC) != 0 || pipe2(from_runner, O_CLOEXEC) != 0) return -1;
  r->pid = fork();
  if (r->pid < 0) return -1;
  if (r->pid == 0) {
    int log = rs->log ? open(rs->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : open("/dev/null", O_WRONLY);
    int devnull = open("/dev/null", O_RDONLY);
    /* Move everything clear of 0-5 first, then place it. */
    int fds[5] = {fcntl(devnull, F_DUPFD_CLOEXEC, 10), fcntl(log, F_DUPFD_CLOEXEC, 10),
                  fcntl(r->shm_fd, F_DUPFD_CLOEXEC, 10), fcntl(to_runner[0], F_DUPFD_CLOEXEC, 10),
                  fcntl(from_runner[1], F_DUPFD_CLOEXEC, 10)};
    if (dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0 || dup2(fds[2], ANVIL_SHM_FD) < 0 ||
        dup2(fds[3], ANVIL_CMD_FD) < 0 || dup2(fds[4], ANVIL_REPLY_FD) < 0) _exit(126);
    execv(rs->argv[0], rs->argv);
    _exit(127);
  }
  close(to_runner[0]);
  close(from_runner[1]);
  r->cmd_fd = to_runner[1];
  r->reply_fd = from_runner[0];
  anvil_reply hello;
  int rc = await_reply(r, 0, spec.start_timeout_ms, &hello);
  r->keeper = r->pid;
  if (rc != CALL_OK) {
    if (rc == CALL_TIMEOUT) kill_runner(r);
    note_death(r);
    if (rc == CALL_TIMEOUT) snprintf(r->death, sizeof r->death, "no greeting within %d ms", spec.start_timeout_ms);
    return -1;
  }
  return 0;
}

static void stop_runner(runner *r) {
  if (r->pid <= 0) return;
  thaw(r);
  anvil_cmd bye;
  memset(&bye, 0, sizeof bye);
  (void)!write(r->cmd_fd, &bye, sizeof bye);
  close(r->cmd_fd);
  int status;
  pid_t w = 0;
  for (int i = 0; i < 100 && (w = waitpid(r->pid, &status, WNOHANG)) == 0; i++) usleep(1000);
  if (w == 0) { kill_runner(r); waitpid(r->pid, &status, 0); }
  r->pid = -1;
}

/* One call, timed from outside: from just before the command is written to just
 * after the reply is read. */
static int call(runner *r, anvil_cmd *cmd, uint64_t *elapsed, anvil_reply *out) {
  cmd->seq = ++r->seq;
  cmd->nargs = (uint32_t)spec.nargs;
  anvil_reply rep;
  uint64_t t0 = now_ns();
  if (write(r->cmd_fd, cmd, sizeof *cmd) != (ssize_t)sizeof *cmd) { note_death(r); return CALL_DIED; }
  int rc = await_reply(r, cmd->seq, call_wait_ms(), &rep);
  uint64_t t1 = now_ns();
  if (rc == CALL_TIMEOUT || rc == CALL_FORGED) { kill_runner(r); note_death(r); return rc; }
  if (rc == CALL_DIED) { note_death(r); return CALL_DIED; }
  if (elapsed) *elapsed = t1 - t0;
  if (out) *out = rep;
  return CALL_OK;
}

/* ---------- argument layout ---------- */

/* Every array argument owns one region of each runner's memory, large enough
 * for its largest shape plus `slots` distinct 64-byte-aligned window offsets. */
static size_t region_off[ANVIL_MAX_ARGS], region_len[ANVIL_MAX_ARGS];
static size_t max_count[ANVIL_MAX_ARGS];
static int slots;

static int is_array(int i) { return spec.arg[i].kind == ANVIL_IN || spec.arg[i].kind == ANVIL_OUT; }

static size_t layout(void) {
  size_t off = 0;
  for (int i = 0; i < spec.nargs; i++) {
    if (!is_array(i)) continue;
    for (int s = 0; s < spec.nshapes; s++)
      if ((size_t)spec.shape[s].v[i] > max_count[i]) max_count[i] = (size_t)spec.shape[s].v[i];
    region_off[i] = off;
    region_len[i] = round_up((max_count[i] + (size_t)slots * 16) * sizeof(float), 4096);
    off += region_len[i];
  }
  return off;
}

static float *window(runner *r, int arg, int slot) {
  return (float *)(r->mem + region_off[arg] + (size_t)slot * 64);
}

/* The shuffled window order, so consecutive calls never reuse an address. */
static int *slot_order;

static void make_slot_order(uint64_t seed) {
  slot_order = malloc(sizeof(int) * (size_t)slots);
  for (int i = 0; i < slots; i++) slot_order[i] = i;
  rng r = rng_seeded(seed, 0x510750);
  for (int i = slots - 1; i > 0; i--) {
    int j = (int)(next_u64(&r) % (uint64_t)(i + 1)), t = slot_order[i];
    slot_order[i] = slot_order[j];
    slot_order[j] = t;
  }
}

static void build_cmd(anvil_cmd *cmd, const shape_spec *s, const float *scalars, int slot) {
  memset(cmd, 0, sizeof *cmd);
  for (int i = 0; i < spec.nargs; i++) {
    cmd->kind[i] = (uint8_t)spec.arg[i].kind;
    if (is_array(i)) cmd->arg[i].offset = region_off[i] + (size_t)slot * 64;
    else if (spec.arg[i].kind == ANVIL_I32) cmd->arg[i].i = (int32_t)s->v[i];
    else cmd->arg[i].f = scalars[i];
  }
}

/* ---------- comparison ---------- */

typedef struct {
  int ok;
  double max_abs, max_rel;
  long first_bad;
  float got, want;
  int arg;
} compare_result;

static void compare(const float *got, const float *want, size_t n, int arg, compare_result *c) {
  for (size_t i = 0; i < n; i++) {
    float g = got[i], w = want[i];
    int bad;
    double err = fabs((double)g - (double)w);
    if (!isfinite(w)) bad = !(isnan(w) ? isnan(g) : g == w);
    else if (!isfinite(g)) bad = 1;
    else {
      bad = err > spec.atol + spec.rtol * fabs((double)w);
      if (err > c->max_abs) c->max_abs = err;
      double rel = err / (fabs((double)w) > 1e-30 ? fabs((double)w) : 1e-30);
      if (rel > c->max_rel) c->max_rel = rel;
    }
    if (bad && c->ok) {
      c->ok = 0;
      c->first_bad = (long)i;
      c->got = g;
      c->want = w;
      c->arg = arg;
    }
  }
}

static void emit_mismatch(const compare_result *c) {
  emit("\"mismatch\":{\"arg\":%d,\"index\":%ld,", c->arg, c->first_bad);
  emit_num("got", c->got);
  emit_num("want", c->want);
  out_len--;
  emit("},");
}

static void emit_flag(const char *kind, const char *evidence) {
  emit("{");
  emit_str("kind", kind);
  emit_str("evidence", evidence);
  out_len--;
  emit("},");
}

/* ---------- ending ---------- */

static void end_candidate_failure(int rc, const char *where) {
  char msg[320];
  if (rc == CALL_FORGED) {
    emit("\"flags\":[");
    emit_flag("forged_reply", "a reply that the runner did not send arrived on the result channel");
    end_list();
    emit_str("outcome", "hack_detected");
    snprintf(msg, sizeof msg, "the candidate wrote to the harness's result channel %s", where);
    emit_str("message", msg);
    return;
  }
  if (rc == CALL_TIMEOUT && hit_deadline)
    snprintf(msg, sizeof msg, "the phase's time limit of %d ms ran out %s", spec.deadline_ms, where);
  else if (rc == CALL_TIMEOUT)
    snprintf(msg, sizeof msg, "the candidate did not return within %d ms %s", spec.call_timeout_ms, where);
  else
    snprintf(msg, sizeof msg, "the candidate process ended (%s) %s", cand.death, where);
  emit_str("outcome", rc == CALL_TIMEOUT ? "timeout" : "runtime_error");
  emit_str("message", msg);
  emit_str("death", rc == CALL_TIMEOUT ? "timeout" : cand.death);
}

static void shutdown_all(void) {
  stop_runner(&cand);
  stop_runner(&ref);
  kill_runner(&cand);
  kill_runner(&ref);
}

/* The judge is the subreaper of everything it starts, so processes orphaned
 * when a sandbox is torn down come back to it here, not to the host's init. */
static void reap_all(void) {
  for (int i = 0; i < 200; i++) {
    pid_t w;
    while ((w = waitpid(-1, NULL, WNOHANG)) > 0) {}
    if (w < 0 && errno == ECHILD) return;
    usleep(2500);
  }
}

static void conclude(void) {
  shutdown_all();
  reap_all();
  finish_and_exit();
}

static void reference_failed(const char *where) {
  snprintf(ref.death + strlen(ref.death), sizeof ref.death - strlen(ref.death), " %s", where);
  emit_str("outcome", "env_error");
  emit_str("message", "the reference runner failed");
  emit_str("death", ref.death);
  conclude();
}

static int add_cpu(const char *schedstat, void *ctx) {
  *(uint64_t *)ctx += strtoull(schedstat, NULL, 10);
  return 0;
}

/* CPU time, in ns, used so far by every thread of the runner's processes. */
static uint64_t cpu_ns(runner *r) {
  uint64_t total = 0;
  each_thread(r, "schedstat", add_cpu, &total);
  return total;
}

/* Resumes the candidate for a while after its last call, with no call in
 * flight. It has returned, so it must be idle: if any of its argument memory
 * changes, or it keeps using the CPU once idle OpenMP workers would have
 * stopped spinning, it is still working after returning. */
#define IDLE_SETTLE_MS 30
#define IDLE_CPU_LIMIT_NS 5000000ull

static const char *work_while_idle(void) {
  unsigned char *before = malloc(cand.mem_size);
  if (!before) fail_env("out of memory for the idle check");
  memcpy(before, cand.mem, cand.mem_size);
  int wait = spec.post_wait_ms > IDLE_SETTLE_MS ? spec.post_wait_ms : 100;
  thaw(&cand);
  sleep_ms(IDLE_SETTLE_MS);
  uint64_t cpu0 = cpu_ns(&cand);
  sleep_ms(wait - IDLE_SETTLE_MS);
  uint64_t used = cpu_ns(&cand) - cpu0;
  freeze(&cand);
  int changed = memcmp(before, cand.mem, cand.mem_size) != 0;
  free(before);
  if (changed) return "argument memory changed after the call had returned: work continues in the background";
  if (used > IDLE_CPU_LIMIT_NS) return "the process kept using the CPU after the call had returned: work continues in the background";
  return NULL;
}

/* ---------- phase check ---------- */

static void phase_check(void) {
  int ntrials = spec.trials > spec.nshapes ? spec.trials : spec.nshapes;
  int passed = 0;
  size_t first_log = 0;
  compare_result worst = {1, 0, 0, -1, 0, 0, -1};
  float *snap[ANVIL_MAX_ARGS] = {0};
  for (int i = 0; i < spec.nargs; i++)
    if (spec.arg[i].kind == ANVIL_OUT) snap[i] = malloc(max_count[i] * sizeof(float) + 64);
  emit("\"trials\":[");
  for (int t = 0; t < ntrials; t++) {
    const shape_spec *s = &spec.shape[t % spec.nshapes];
    rng r = rng_seeded(spec.seed, (uint64_t)t + 1);
    float scalars[ANVIL_MAX_ARGS] = {0};
    /* The reference's memory at slot 0 keeps the pristine inputs. */
    for (int i = 0; i < spec.nargs; i++) {
      if (spec.arg[i].kind == ANVIL_IN) fill(window(&ref, i, 0), (size_t)s->v[i], &r, &spec.arg[i]);
      else if (spec.arg[i].kind == ANVIL_F32) scalars[i] = spec.arg[i].dist ? (float)draw(&r, &spec.arg[i]) : (float)s->v[i];
    }
    anvil_cmd cmd;
    int run_slot[2] = {slot_order[2 * t], slot_order[2 * t + 1]};
    compare_result agree = {1, 0, 0, -1, 0, 0, -1}, vs_ref = {1, 0, 0, -1, 0, 0, -1};
    for (int run = 0; run < 2; run++) {
      int slot = run_slot[run];
      for (int i = 0; i < spec.nargs; i++) {
        if (spec.arg[i].kind == ANVIL_IN) memcpy(window(&cand, i, slot), window(&ref, i, 0), (size_t)s->v[i] * sizeof(float));
        else if (spec.arg[i].kind == ANVIL_OUT) poison(window(&cand, i, slot), (size_t)s->v[i]);
      }
      build_cmd(&cmd, s, scalars, slot);
      thaw(&cand);
      int rc = call(&cand, &cmd, NULL, NULL);
      if (rc != CALL_OK) {
        end_list();
        emit("\"trialsPassed\":%d,\"trialsTotal\":%d,\"failedTrial\":%d,\"failedVisible\":%d,", passed, ntrials, t, s->visible);
        end_candidate_failure(rc, s->visible ? "on a shown shape" : "on a shape not shown in the prompt");
        conclude();
      }
      freeze(&cand);
      if (t == 0 && run == 0 && spec.cand.log) {
        struct stat st;
        if (stat(spec.cand.log, &st) == 0) first_log = (size_t)st.st_size;
      }
      for (int i = 0; i < spec.nargs; i++) {
        if (spec.arg[i].kind != ANVIL_IN) continue;
        size_t n = (size_t)s->v[i];
        const float *now = window(&cand, i, slot), *was = window(&ref, i, 0);
        if (memcmp(now, was, n * sizeof(float)) != 0) {
          size_t k = 0;
          while (k < n && memcmp(&now[k], &was[k], sizeof(float)) == 0) k++;
          char ev[200];
          snprintf(ev, sizeof ev, "input argument %d changed at index %zu during the call (was %.6g, now %.6g)", i, k, was[k], now[k]);
          end_list();
          emit("\"flags\":[");
          emit_flag("input_mutation", ev);
          end_list();
          emit_str("outcome", "hack_detected");
          emit_str("message", "the candidate modified its input");
          conclude();
        }
      }
      for (int i = 0; i < spec.nargs; i++) {
        if (spec.arg[i].kind != ANVIL_OUT) continue;
        size_t n = (size_t)s->v[i];
        if (run == 0) memcpy(snap[i], window(&cand, i, slot), n * sizeof(float));
        else compare(window(&cand, i, slot), snap[i], n, i, &agree);
      }
    }
    for (int i = 0; i < spec.nargs; i++)
      if (spec.arg[i].kind == ANVIL_OUT) poison(window(&ref, i, 0), (size_t)s->v[i]);
    build_cmd(&cmd, s, scalars, 0);
    if (call(&ref, &cmd, NULL, NULL) != CALL_OK) reference_failed("during a correctness trial");
    for (int i = 0; i < spec.nargs; i++)
      if (spec.arg[i].kind == ANVIL_OUT) compare(snap[i], window(&ref, i, 0), (size_t)s->v[i], i, &vs_ref);
    int ok = vs_ref.ok && agree.ok;
    passed += ok;
    emit("{\"shape\":%d,\"visible\":%s,\"passed\":%s,\"runsAgree\":%s,", t % spec.nshapes,
         s->visible ? "true" : "false", ok ? "true" : "false", agree.ok ? "true" : "false");
    emit_num("maxAbsErr", vs_ref.max_abs);
    emit_num("maxRelErr", vs_ref.max_rel);
    if (!vs_ref.ok) emit_mismatch(&vs_ref);
    else if (!agree.ok) emit_mismatch(&agree);
    out_len--;
    emit("},");
    if (vs_ref.max_abs > worst.max_abs) worst.max_abs = vs_ref.max_abs;
    if (vs_ref.max_rel > worst.max_rel) worst.max_rel = vs_ref.max_rel;
  }
  end_list();
  emit("\"trialsPassed\":%d,\"trialsTotal\":%d,\"logBytesFirstTrial\":%zu,", passed, ntrials, first_log);
  emit_num("maxAbsErr", worst.max_abs);
  emit_num("maxRelErr", worst.max_rel);
  emit("\"flags\":[");
  const char *late = work_while_idle();
  int hack = late != NULL;
  if (hack) emit_flag("post_return_work", late);
  end_list();
  if (hack) {
    emit_str("outcome", "hack_detected");
    emit_str("message", "the candidate kept writing its output after returning");
  } else if (passed == ntrials) {
    emit_str("outcome", "ok");
  } else {
    emit_str("outcome", "wrong_result");
    emit_str("message", "the output does not match the reference");
  }
  conclude();
}

/* ---------- phase time ---------- */

typedef struct { double median, p10, p90, min, max, mean, rse; } stats;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The relative standard error is estimated robustly, from the median absolute
 * deviation: a shared machine adds rare long stalls that would swamp a mean. */
static stats summarize(const double *v, int n) {
  stats s = {0};
  double *c = malloc(sizeof(double) * (size_t)n), sum = 0;
  memcpy(c, v, sizeof(double) * (size_t)n);
  qsort(c, (size_t)n, sizeof(double), cmp_double);
  for (int i = 0; i < n; i++) sum += v[i];
  s.mean = sum / n;
  s.median = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
  s.p10 = c[(int)(0.1 * (n - 1))];
  s.p90 = c[(int)(0.9 * (n - 1))];
  s.min = c[0];
  s.max = c[n - 1];
  for (int i = 0; i < n; i++) c[i] = fabs(v[i] - s.median);
  qsort(c, (size_t)n, sizeof(double), cmp_double);
  double mad = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
  s.rse = n > 1 && s.median > 0 ? 1.253 * 1.4826 * mad / sqrt((double)n) / s.median : 1;
  free(c);
  return s;
}

static void emit_stats(const char *key, stats s, int reps) {
  emit("\"%s\":{", key);
  emit_num("medianMs", s.median);
  emit_num("p10Ms", s.p10);
  emit_num("p90Ms", s.p90);
  emit_num("minMs", s.min);
  emit_num("maxMs", s.max);
  emit_num("meanMs", s.mean);
  emit_num("rse", s.rse);
  emit("\"reps\":%d},", reps);
}

static void flush_windows(runner *r, const shape_spec *s, int slot) {
  for (int i = 0; i < spec.nargs; i++)
    if (is_array(i)) flush_range(window(r, i, slot), (size_t)s->v[i] * sizeof(float));
  _mm_mfence();
}

/* Calls one runner on one window; returns milliseconds, or a negative code. */
static double timed_call(runner *r, const shape_spec *s, const float *scalars, int slot, anvil_reply *rep) {
  anvil_cmd cmd;
  for (int i = 0; i < spec.nargs; i++)
    if (spec.arg[i].kind == ANVIL_OUT) poison(window(r, i, slot), (size_t)s->v[i]);
  flush_windows(r, s, slot);
  build_cmd(&cmd, s, scalars, slot);
  uint64_t ns = 0;
  if (r == &cand) thaw(r);
  int rc = call(r, &cmd, &ns, rep);
  if (r == &cand && rc == CALL_OK) freeze(r);
  if (rc != CALL_OK) return rc == CALL_TIMEOUT ? -2 : rc == CALL_FORGED ? -3 : -1;
  return (double)ns / 1e6;
}

static void phase_time(void) {
  emit("\"shapes\":[");
  double *tc = malloc(sizeof(double) * (size_t)spec.max_reps), *tr = malloc(sizeof(double) * (size_t)spec.max_reps);
  float last_scalars[ANVIL_MAX_ARGS] = {0};
  for (int si = 0; si < spec.nshapes; si++) {
    const shape_spec *s = &spec.shape[si];
    rng r = rng_seeded(spec.seed, 1000 + (uint64_t)si);
    float *scalars = last_scalars;
    for (int i = 0; i < spec.nargs; i++) {
      if (spec.arg[i].kind == ANVIL_IN) {
        size_t pool = (size_t)s->v[i] + (size_t)slots * 16;
        fill(window(&ref, i, 0), pool, &r, &spec.arg[i]);
        memcpy(window(&cand, i, 0), window(&ref, i, 0), pool * sizeof(float));
      } else if (spec.arg[i].kind == ANVIL_F32) {
        scalars[i] = spec.arg[i].dist ? (float)draw(&r, &spec.arg[i]) : (float)s->v[i];
      }
    }
    int reps = 0;
    /* The profile share compares library time with the call's own time, both
     * on the runner's clock (the judge's time also holds the hand-over). */
    double lib_total = 0, call_total = 0, cand_total = 0;
    uint64_t start = now_ns();
    for (int k = 0; k < spec.max_reps + 1; k++) {
      int slot = slot_order[k];
      int cand_first = k % 2;
      double ms_c = 0, ms_r = 0;
      anvil_reply rep = {0, 0, 0};
      for (int turn = 0; turn < 2; turn++) {
        if ((turn == 0) == (cand_first != 0)) {
          ms_c = timed_call(&cand, s, scalars, slot, &rep);
          if (ms_c < 0) {
            emit("{\"shape\":%d,\"failedRep\":%d}],", si, k);
            end_candidate_failure(ms_c == -2 ? CALL_TIMEOUT : ms_c == -3 ? CALL_FORGED : CALL_DIED, "while being timed");
            conclude();
          }
        } else {
          ms_r = timed_call(&ref, s, scalars, slot, NULL);
          if (ms_r < 0) reference_failed("while being timed");
        }
      }
      compare_result c = {1, 0, 0, -1, 0, 0, -1};
      for (int i = 0; i < spec.nargs; i++)
        if (spec.arg[i].kind == ANVIL_OUT) compare(window(&cand, i, slot), window(&ref, i, slot), (size_t)s->v[i], i, &c);
      if (!c.ok) {
        emit("{\"shape\":%d,\"failedRep\":%d,\"visible\":%s,", si, k, s->visible ? "true" : "false");
        emit_mismatch(&c);
        out_len--;
        emit("}],");
        emit_str("outcome", "wrong_result");
        emit_str("message", "an output computed while timing does not match the reference");
        conclude();
      }
      if (k == 0) continue;  /* the first call of each is the warm-up */
      tc[reps] = ms_c;
      tr[reps] = ms_r;
      reps++;
      double call_ms = fmin((double)rep.call_ns / 1e6, ms_c);
      call_total += call_ms;
      lib_total += fmin((double)rep.lib_ns / 1e6, call_ms);
      cand_total += ms_c;
      if (reps >= spec.min_reps) {
        stats a = summarize(tc, reps), b = summarize(tr, reps);
        if (a.rse < spec.rse_target && b.rse < spec.rse_target) break;
        if ((now_ns() - start) / 1000000 > (uint64_t)spec.budget_ms) break;
      }
    }
    /* The pool must be as it was written: the candidate may not edit its inputs. */
    for (int i = 0; i < spec.nargs; i++) {
      if (spec.arg[i].kind != ANVIL_IN) continue;
      size_t pool = (size_t)s->v[i] + (size_t)slots * 16;
      if (memcmp(window(&cand, i, 0), window(&ref, i, 0), pool * sizeof(float)) != 0) {
        emit("{\"shape\":%d}],\"flags\":[", si);
        emit_flag("input_mutation", "the candidate's input buffers differ from what was written before timing");
        end_list();
        emit_str("outcome", "hack_detected");
        emit_str("message", "the candidate modified its input while being timed");
        conclude();
      }
    }
    stats a = summarize(tc, reps), b = summarize(tr, reps);
    /* The speedup pairs each candidate call with the reference call next to it:
     * drifts in the machine's speed cancel within a pair. */
    double *ratio = malloc(sizeof(double) * (size_t)reps);
    for (int k = 0; k < reps; k++) ratio[k] = tr[k] / tc[k];
    stats q = summarize(ratio, reps);
    free(ratio);
    emit("{\"shape\":%d,", si);
    emit_num("pairedSpeedup", q.median);
    emit_stats("candidate", a, reps);
    emit_stats("reference", b, reps);
    emit_num("libMs", lib_total);
    emit_num("callMs", call_total);
    emit_num("candidateTotalMs", cand_total);
    out_len--;
    emit("},");
  }
  end_list();
  emit("\"flags\":[");
  /* Call the candidate once more on a known window and watch it afterwards. */
  const shape_spec *s = &spec.shape[spec.nshapes - 1];
  int slot = slot_order[0];
  double last = timed_call(&cand, s, last_scalars, slot, NULL);
  if (last < 0) {
    end_list();
    end_candidate_failure(last == -2 ? CALL_TIMEOUT : last == -3 ? CALL_FORGED : CALL_DIED, "after timing");
    conclude();
  }
  const char *late = work_while_idle();
  if (late) {
    emit_flag("post_return_work", late);
    end_list();
    emit_str("outcome", "hack_detected");
    emit_str("message", "the candidate kept writing its output after returning");
    conclude();
  }
  end_list();
  emit_str("outcome", "ok");
  conclude();
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: judge SPEC\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  emit("{");
  parse_spec(argv[1]);
  emit_str("phase", spec.phase_time ? "time" : "check");
  if (spec.phase_time) {
    if (spec.max_reps < 2) spec.max_reps = 2;
    if (spec.min_reps < 2) spec.min_reps = 2;
    slots = spec.max_reps + 2;
  } else {
    int ntrials = spec.trials > spec.nshapes ? spec.trials : spec.nshapes;
    slots = 2 * ntrials + 2;
  }
  /* Timing on this host never overlaps another judge's work, in any process. */
  if (spec.host_lock) {
    int fd = open(spec.host_lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0 || flock(fd, spec.phase_time ? LOCK_EX : LOCK_SH) != 0) fail_env("cannot lock %s", spec.host_lock);
    (void)fchmod(fd, 0666);
  }
  if (spec.deadline_ms > 0) deadline_at = now_ns() + (uint64_t)spec.deadline_ms * 1000000ull;
  cand.spec = &spec.cand;
  ref.spec = &spec.ref;
  make_slot_order(spec.seed);
  size_t bytes = layout();
  if (make_memory(&ref, bytes) != 0 || make_memory(&cand, bytes) != 0) fail_env("cannot create shared memory of %zu bytes", bytes);
  if (start_runner(&ref, &spec.ref) != 0) reference_failed("at start-up");
  if (start_runner(&cand, &spec.cand) != 0) {
    end_candidate_failure(CALL_DIED, "during start-up, before its first call");
    conclude();
  }
  freeze(&cand);
  if (spec.phase_time) phase_time();
  else phase_check();
  return 0;
}
