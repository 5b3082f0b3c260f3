/* judge: the trusted side of one C evaluation phase. It is never linked with
 * candidate code. It starts a reference runner and a candidate runner (each in
 * its own sandbox, through anvil-launch), gives each its own sealed shared
 * memory, generates inputs, checks outputs and times both calls from outside.
 * It prints one JSON object on stdout: the only channel the verdict travels on.
 *
 * usage: judge SPEC   (the line format is written by sandbox/c-backend.ts; the
 *                      file lives where no runner can read it)
 *
 * Between calls each runner is frozen with the cgroup freezer (SIGSTOP only on
 * a host without one). A call is timed from before the runner is thawed to the
 * moment its freeze completed after the reply: whatever the process does after
 * answering, until it is frozen, is inside the timed interval, and a freeze
 * that does not complete promptly is flagged as work after return. Outputs are
 * read only once the runner is frozen.
 *
 * phase check: correctness trials, first one per shape on the task's own
 *   distribution, then more on inputs that are not stationary (blocks of very
 *   different scale, trends, spikes). Each trial first makes a sensitivity run
 *   (a few input elements moved, on inputs the candidate has not seen), then runs
 *   the candidate twice on the inputs as drawn (fresh address, poisoned outputs,
 *   inputs checked intact); the runs must agree, every output must match the
 *   reference's, and the output must have moved as the reference's did.
 * phase time: the reference and the candidate are called alternately; before
 *   every call both get fresh, independent input contents (no call's inputs
 *   exist anywhere before it), at a new address, flushed from the caches; every
 *   output is compared with the reference's, and untimed sensitivity pairs
 *   (moved inputs first, then unmoved) come before some repetitions, early and
 *   throughout. The first call of each (the warm-up) is bounded by a multiple of
 *   the reference's. Repetitions go on until the relative standard error of the
 *   paired speedup is under target, or the timed budget ends. Timing runs under
 *   SCHED_FIFO where the host allows it (the runners below the judge), so the
 *   other processes of a shared host cannot take a core from a timed call. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
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
#define SENSITIVITY_POINTS 32     /* elements moved per input array in a sensitivity run */
#define TIMING_SENSITIVITY_RUNS 4 /* sensitivity runs per timing shape among its first repetitions */
#define SENSITIVITY_EVERY 8       /* and about one in this many repetitions after them */

/* ---------- the job spec ---------- */

typedef struct {
  int kind;      /* anvil_kind */
  int dist;      /* 0 none, 1 uniform, 2 normal */
  double p1, p2; /* uniform: lo, hi; normal: mean, std */
} arg_spec;

typedef struct {
  int visible;
  double v[ANVIL_MAX_ARGS]; /* arrays: element count; scalars: value */
} shape_spec;

typedef struct {
  char *argv[MAX_ARGV];
  int argc;
  char *procs[MAX_PROCS]; /* cgroup.procs files that list this runner's processes */
  int nprocs;
  char *freeze; /* freezer.state (cgroup v1) or cgroup.freeze (v2) */
  char *log;
} runner_spec;

static struct {
  int phase_time;
  uint64_t seed;
  double atol, rtol;
  int call_timeout_ms, start_timeout_ms, budget_ms, min_reps, max_reps, trials, post_wait_ms, deadline_ms;
  int bwrap;            /* runners start under bubblewrap: its monitor process is not the candidate's */
  int expect_filters;   /* seccomp filters every runner thread carries once it has greeted */
  int freeze_limit_ms;  /* a freeze that takes longer means work after the reply */
  int realtime;         /* time under SCHED_FIFO: the runners above every ordinary process, the judge above them */
  double warmup_factor; /* the candidate's first timed call may take this × the reference's… */
  int warmup_floor_ms;  /* …or this, whichever is longer */
  char *host_lock;      /* a file every judge on the host locks: shared to check, exclusive to time */
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
    if (n >= 0 && out_len + (size_t)n < out_cap) {
      out_len += (size_t)n;
      return;
    }
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
  spec.freeze_limit_ms = 1000;
  spec.warmup_factor = 20;
  spec.warmup_floor_ms = 200;
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
    else if (!strcmp(key, "expect_filters")) spec.expect_filters = atoi(rest);
    else if (!strcmp(key, "freeze_limit_ms")) spec.freeze_limit_ms = atoi(rest);
    else if (!strcmp(key, "realtime")) spec.realtime = atoi(rest);
    else if (!strcmp(key, "warmup_factor")) spec.warmup_factor = atof(rest);
    else if (!strcmp(key, "warmup_floor_ms")) spec.warmup_floor_ms = atoi(rest);
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
      a->kind = !strcmp(kind, "in")    ? ANVIL_IN
                : !strcmp(kind, "out") ? ANVIL_OUT
                : !strcmp(kind, "i32") ? ANVIL_I32
                                       : ANVIL_F32;
      a->dist = !strcmp(dist, "uniform") ? 1 : !strcmp(dist, "normal") ? 2 : 0;
    } else if (!strcmp(key, "shape")) {
      if (spec.nshapes >= MAX_SHAPES) fail_env("too many shapes");
      shape_spec *s = &spec.shape[spec.nshapes++];
      char *p = (char *)rest;
      s->visible = (int)strtol(p, &p, 10);
      for (int i = 0; i < spec.nargs; i++) s->v[i] = strtod(p, &p);
    } else if (!strcmp(key, "cand_argv")) read_argv(f, &spec.cand, atoi(rest));
    else if (!strcmp(key, "ref_argv")) read_argv(f, &spec.ref, atoi(rest));
    else if (!strcmp(key, "cand_procs") && spec.cand.nprocs < MAX_PROCS)
      spec.cand.procs[spec.cand.nprocs++] = dup_line(rest);
    else if (!strcmp(key, "ref_procs") && spec.ref.nprocs < MAX_PROCS)
      spec.ref.procs[spec.ref.nprocs++] = dup_line(rest);
    else if (!strcmp(key, "cand_freeze")) spec.cand.freeze = dup_line(rest);
    else if (!strcmp(key, "ref_freeze")) spec.ref.freeze = dup_line(rest);
    else if (!strcmp(key, "cand_log")) spec.cand.log = dup_line(rest);
    else if (!strcmp(key, "ref_log")) spec.ref.log = dup_line(rest);
    else fail_env("unknown spec key %s", key);
  }
  fclose(f);
  if (!spec.nargs || !spec.nshapes || !spec.cand.argc || !spec.ref.argc) fail_env("incomplete spec");
  if (spec.call_timeout_ms <= 0) spec.call_timeout_ms = 10000;
}

/* ---------- inputs ----------
 * Every value is a hash of (seed, purpose, index): any call's inputs can be made
 * on the spot, in any order, and nothing about them exists before that. */

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#define GOLDEN 0x9e3779b97f4a7c15ull

/* A key for one purpose: (what, which, part) under the job's seed. */
static uint64_t key_of(uint64_t what, uint64_t which, uint64_t part) {
  return mix64(spec.seed ^ mix64(what * 0xd1342543de82ef95ull ^ mix64(which * GOLDEN + part)));
}

static inline double unit_of(uint64_t h) { return (double)(h >> 11) * 0x1.0p-53; }

/* A standard normal approximated by the sum of four uniforms (Irwin–Hall): the
 * 16-bit quarters of one hash, so that filling stays a few ns per element. */
static inline double normal_of(uint64_t h) {
  double s = (double)(h & 0xffff) + (double)((h >> 16) & 0xffff) + (double)((h >> 32) & 0xffff) + (double)(h >> 48);
  return (s * (1.0 / 65536.0) - 2.0) * 1.7320508075688772;
}

enum { REGIME_PLAIN, REGIME_BLOCKS, REGIME_TREND, REGIME_SPIKES, NREGIMES };
static const char *const regime_name[NREGIMES] = {"plain", "blocks", "trend", "spikes"};

/* Centre and half-width of an argument's distribution. */
static void centre_width(const arg_spec *a, double *c, double *w) {
  if (a->dist == 2) {
    *c = a->p1;
    *w = a->p2;
  } else {
    *c = 0.5 * (a->p1 + a->p2);
    *w = 0.5 * (a->p2 - a->p1);
  }
}

static double draw_scalar(uint64_t key, const arg_spec *a) {
  uint64_t h = mix64(key);
  if (a->dist == 2) return a->p1 + a->p2 * normal_of(h);
  return a->p1 + (a->p2 - a->p1) * unit_of(h);
}

/* Fills n values of argument a. PLAIN follows the task's distribution; the
 * others are not stationary, so that work skipped on part of the input (or an
 * output extrapolated from a part) shows: BLOCKS scales runs of 256 to 16384
 * elements by 4, 1, 1/8 or 1/64; TREND adds a ramp of one and a half
 * half-widths, one-sided so that it makes no cancellation an honest float
 * kernel would be punished for;
 * SPIKES shrinks everything to a twentieth but one element in 128, which sits
 * six half-widths out. */
static void fill(float *dst, size_t n, uint64_t key, const arg_spec *a, int regime) {
  double c, w;
  centre_width(a, &c, &w);
  const int normal = a->dist == 2;
  if (regime == REGIME_PLAIN) {
    if (normal)
      for (size_t i = 0; i < n; i++) dst[i] = (float)(c + w * normal_of(mix64(key + i * GOLDEN)));
    else
      for (size_t i = 0; i < n; i++) dst[i] = (float)(c + w * (2.0 * unit_of(mix64(key + i * GOLDEN)) - 1.0));
    return;
  }
  static const double scales[4] = {4.0, 1.0, 0.125, 0.015625};
  const int shift = 8 + (int)(mix64(key ^ 0xb10c5ull) % 7);
  const uint64_t bkey = mix64(key ^ 0x5ca1eull);
  for (size_t i = 0; i < n; i++) {
    uint64_t h = mix64(key + i * GOLDEN);
    double z = normal ? normal_of(h) : 2.0 * unit_of(h) - 1.0, v;
    if (regime == REGIME_BLOCKS) v = c + w * z * scales[mix64(bkey + (i >> shift)) & 3];
    else if (regime == REGIME_TREND) v = c + w * (0.5 * z + 1.5 * (double)i / (double)n);
    else v = (h & 127) == 0 ? c + w * ((h & 128) ? 6.0 : -6.0) : c + 0.05 * w * z;
    dst[i] = (float)v;
  }
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

static void sleep_until(uint64_t t) {
  uint64_t now = now_ns();
  if (t <= now) return;
  struct timespec ts = {(time_t)((t - now) / 1000000000ull), (long)((t - now) % 1000000000ull)};
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
  int freeze_fd, events_fd, freeze_v2; /* the cgroup freezer; freeze_fd < 0 without one */
  int frozen;
  unsigned char *mem;
  size_t mem_size;
  uint64_t seq;
  int dead;
  char death[160];
  pid_t keeper;         /* bubblewrap's monitor */
  double freeze_max_ms; /* the slowest freeze after a reply */
  pid_t main_pid;       /* the runner's process, as the host sees it */
  pid_t lib_tids[64];   /* the library's threads: every thread but main at the greeting */
  int nlib;
} runner;

static runner cand = {.name = "candidate", .freeze_fd = -1, .events_fd = -1},
              ref = {.name = "reference", .freeze_fd = -1, .events_fd = -1};

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

/* Under bubblewrap the runner's group also holds bwrap's monitor, our child. */
static int is_keeper(runner *r, pid_t p) { return spec.bwrap && p > 0 && p == r->keeper; }

static void signal_runner(runner *r, int sig) {
  pid_t pids[256];
  int n = runner_pids(r, pids, 256);
  for (int i = 0; i < n; i++)
    if (!is_keeper(r, pids[i])) kill(pids[i], sig);
}

/* Reads /proc/PID/task/TID/<file> for every thread of the runner's own
 * processes and hands each to visit; stops early when visit returns nonzero. */
typedef int (*thread_visit)(pid_t pid, pid_t tid, const char *text, void *ctx);
static int each_thread(runner *r, const char *file, thread_visit visit, void *ctx) {
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
      pid_t tid = (pid_t)atoi(e->d_name);
      if (tid <= 0) continue;
      char path[160], buf[8192];
      snprintf(path, sizeof path, "%.40s/%.60s/%.20s", dir, e->d_name, file);
      int fd = open(path, O_RDONLY);
      if (fd < 0) continue;
      ssize_t len = read(fd, buf, sizeof buf - 1);
      close(fd);
      if (len <= 0) continue;
      buf[len] = 0;
      if (visit(pids[i], tid, buf, ctx)) {
        closedir(d);
        return 1;
      }
    }
    closedir(d);
  }
  return 0;
}

static int is_running(pid_t pid, pid_t tid, const char *stat, void *ctx) {
  (void)pid, (void)tid, (void)ctx;
  const char *paren = strrchr(stat, ')');
  if (!paren || paren[1] == 0) return 0;
  char state = paren[2];
  return state != 'T' && state != 't' && state != 'Z' && state != 'X';
}

/* True when every thread of every process of the runner is stopped. */
static int all_stopped(runner *r) { return !each_thread(r, "stat", is_running, NULL); }

static void open_freezer(runner *r) {
  if (!r->spec->freeze) return;
  r->freeze_fd = open(r->spec->freeze, O_RDWR | O_CLOEXEC);
  if (r->freeze_fd < 0) fail_env("cannot open the freezer %s", r->spec->freeze);
  r->freeze_v2 = strstr(r->spec->freeze, "cgroup.freeze") != NULL;
  if (r->freeze_v2) {
    char events[4096];
    snprintf(events, sizeof events, "%s", r->spec->freeze);
    strcpy(strrchr(events, '/') + 1, "cgroup.events");
    r->events_fd = open(events, O_RDONLY | O_CLOEXEC);
    if (r->events_fd < 0) fail_env("cannot open %s", events);
  }
}

static int freezer_done(runner *r) {
  char buf[512];
  if (r->freeze_v2) {
    ssize_t n = pread(r->events_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = 0;
    return strstr(buf, "frozen 1") != NULL;
  }
  ssize_t n = pread(r->freeze_fd, buf, sizeof buf - 1, 0);
  return n >= 6 && strncmp(buf, "FROZEN", 6) == 0;
}

/* Freezes the runner, so it cannot work while it is not timed; returns 0 once
 * every thread of every process of it is frozen, -1 if that took longer than
 * the limit. */
static int freeze(runner *r) {
  if (r->frozen || r->pid <= 0) return 0;
  uint64_t t0 = now_ns(), limit = (uint64_t)spec.freeze_limit_ms * 1000000ull;
  int done = 0;
  if (r->freeze_fd >= 0) {
    const char *cmd = r->freeze_v2 ? "1" : "FROZEN";
    if (pwrite(r->freeze_fd, cmd, strlen(cmd), 0) < 0) fail_env("cannot write the freezer: %s", strerror(errno));
    for (int spins = 0; !(done = freezer_done(r)) && now_ns() - t0 < limit; spins++)
      if (spins > 20) usleep(20);
  } else {
    signal_runner(r, SIGSTOP);
    while (!(done = all_stopped(r)) && now_ns() - t0 < limit) usleep(20);
  }
  r->frozen = 1;
  return done ? 0 : -1;
}

static void thaw(runner *r) {
  if (!r->frozen) return;
  if (r->freeze_fd >= 0) {
    const char *cmd = r->freeze_v2 ? "0" : "THAWED";
    if (pwrite(r->freeze_fd, cmd, strlen(cmd), 0) < 0) fail_env("cannot write the freezer: %s", strerror(errno));
  } else {
    signal_runner(r, SIGCONT);
  }
  r->frozen = 0;
}

static void kill_runner(runner *r) {
  thaw(r); /* a task frozen by the v1 freezer does not die until thawed */
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
  thaw(r);
  int status = 0;
  pid_t w = 0;
  for (int i = 0; i < 200 && (w = waitpid(r->pid, &status, WNOHANG)) == 0; i++) usleep(1000);
  if (w == 0) {
    kill_runner(r);
    waitpid(r->pid, &status, 0);
  }
  if (WIFSIGNALED(status)) snprintf(r->death, sizeof r->death, "signal %d", WTERMSIG(status));
  else if (WIFEXITED(status) && WEXITSTATUS(status) > 128)
    snprintf(r->death, sizeof r->death, "signal %d", WEXITSTATUS(status) - 128);
  else snprintf(r->death, sizeof r->death, "exit %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  r->pid = -1;
}

enum { CALL_OK, CALL_DIED, CALL_TIMEOUT, CALL_FORGED, CALL_LATE };

/* The phase's own deadline; each call waits at most until then. */
static uint64_t deadline_at;
static int hit_deadline;

static int call_wait_ms(int limit_ms) {
  if (!deadline_at) return limit_ms;
  uint64_t t = now_ns();
  if (t >= deadline_at) {
    hit_deadline = 1;
    return 0;
  }
  uint64_t left = (deadline_at - t) / 1000000;
  if (left < (uint64_t)limit_ms) {
    hit_deadline = 1;
    return (int)left;
  }
  return limit_ms;
}

/* Waits for the runner's next reply; the runner's word is only "I returned". */
static int await_reply(runner *r, uint64_t want_seq, int timeout_ms, anvil_reply *rep) {
  struct pollfd p = {r->reply_fd, POLLIN, 0};
  int rc;
  do rc = poll(&p, 1, timeout_ms);
  while (rc < 0 && errno == EINTR);
  if (rc == 0) return CALL_TIMEOUT;
  if (read_full(r->reply_fd, rep, sizeof *rep) != 0) return CALL_DIED;
  /* The runner's own main only ever answers the call in flight: anything else
   * on this pipe was written by the code it hosts. */
  if (rep->seq != want_seq) return CALL_FORGED;
  return CALL_OK;
}

/* True when bytes wait on the reply pipe although no call is in flight. */
static int reply_pending(runner *r) {
  struct pollfd p = {r->reply_fd, POLLIN, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* Timing under SCHED_FIFO: the other processes of a shared host cannot take a
 * core from a timed call. The runners are real-time from their start (they are
 * frozen whenever no call is in flight); the judge only while a call is in
 * flight, above them, so that it always gets to freeze a runner whose threads
 * still spin. Its own work between calls (inputs, comparisons) runs as an
 * ordinary process, and every real-time call of d is followed by at least d/4
 * without one: the kernel throttles real-time work beyond 95% of a second,
 * and a throttled call would stall. */
#define JUDGE_PRIORITY 20
#define RUNNER_PRIORITY 10
static int realtime_on;
static uint64_t realtime_rest_until;

static int set_realtime(int on) {
  struct sched_param sp = {.sched_priority = on ? JUDGE_PRIORITY : 0};
  return sched_setscheduler(0, on ? SCHED_FIFO : SCHED_OTHER, &sp) == 0;
}

static void enter_realtime(void) {
  realtime_on = set_realtime(1);
  if (realtime_on) set_realtime(0);
}

static void sleep_until(uint64_t t);

static void realtime_call_begins(void) {
  if (!realtime_on) return;
  sleep_until(realtime_rest_until);
  set_realtime(1);
}

static void realtime_call_ends(uint64_t t0, uint64_t t1) {
  if (!realtime_on) return;
  set_realtime(0);
  realtime_rest_until = t1 + (t1 - t0) / 4;
}

static int start_runner(runner *r, runner_spec *rs) {
  r->spec = rs;
  open_freezer(r);
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
        dup2(fds[3], ANVIL_CMD_FD) < 0 || dup2(fds[4], ANVIL_REPLY_FD) < 0)
      _exit(126);
    if (realtime_on) {
      /* Below the judge, so that it always gets to freeze a runner whose threads still spin. */
      struct sched_param sp = {.sched_priority = RUNNER_PRIORITY};
      sched_setscheduler(0, SCHED_FIFO, &sp);
    }
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
  if (w == 0) {
    kill_runner(r);
    waitpid(r->pid, &status, 0);
  }
  r->pid = -1;
}

/* One call, timed from outside: from just before the runner is thawed and the
 * command written, to the moment the runner is frozen again after its reply. */
static int call(runner *r, anvil_cmd *cmd, int limit_ms, uint64_t *elapsed) {
  cmd->seq = ++r->seq;
  if (reply_pending(r)) {
    kill_runner(r);
    note_death(r);
    return CALL_FORGED;
  }
  anvil_reply rep;
  realtime_call_begins();
  uint64_t t0 = now_ns();
  thaw(r);
  if (write(r->cmd_fd, cmd, sizeof *cmd) != (ssize_t)sizeof *cmd) {
    realtime_call_ends(t0, now_ns());
    note_death(r);
    return CALL_DIED;
  }
  int rc = await_reply(r, cmd->seq, call_wait_ms(limit_ms), &rep);
  uint64_t t_reply = now_ns();
  if (rc != CALL_OK) realtime_call_ends(t0, t_reply);
  if (rc == CALL_TIMEOUT || rc == CALL_FORGED) {
    kill_runner(r);
    note_death(r);
    return rc;
  }
  if (rc == CALL_DIED) {
    note_death(r);
    return CALL_DIED;
  }
  int late = freeze(r);
  uint64_t t1 = now_ns();
  realtime_call_ends(t0, t1);
  double fms = (double)(t1 - t_reply) / 1e6;
  if (fms > r->freeze_max_ms) r->freeze_max_ms = fms;
  if (late) return CALL_LATE;
  if (elapsed) *elapsed = t1 - t0;
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

static float *window(runner *r, int arg, int slot) { return (float *)(r->mem + region_off[arg] + (size_t)slot * 64); }

/* The shuffled window order, so consecutive calls never reuse an address. */
static int *slot_order;

static void make_slot_order(void) {
  slot_order = malloc(sizeof(int) * (size_t)slots);
  for (int i = 0; i < slots; i++) slot_order[i] = i;
  for (int i = slots - 1; i > 0; i--) {
    int j = (int)(mix64(key_of(7, (uint64_t)i, 0)) % (uint64_t)(i + 1)), t = slot_order[i];
    slot_order[i] = slot_order[j];
    slot_order[j] = t;
  }
}

static void build_cmd(anvil_cmd *cmd, const shape_spec *s, const float *scalars, int slot) {
  memset(cmd, 0, sizeof *cmd);
  cmd->nargs = (uint32_t)spec.nargs;
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
  double tol_use; /* the largest error as a share of its tolerance */
} compare_result;

#define COMPARE_INIT {1, 0, 0, -1, 0, 0, -1, 0}

static double tolerance(double want) { return spec.atol + spec.rtol * fabs(want); }

static void compare(const float *got, const float *want, size_t n, int arg, compare_result *c) {
  for (size_t i = 0; i < n; i++) {
    float g = got[i], w = want[i];
    int bad;
    double err = fabs((double)g - (double)w);
    if (!isfinite(w)) bad = !(isnan(w) ? isnan(g) : g == w);
    else if (!isfinite(g)) bad = 1;
    else {
      double tol = tolerance(w);
      bad = err > tol;
      if (err > c->max_abs) c->max_abs = err;
      double rel = err / (fabs((double)w) > 1e-30 ? fabs((double)w) : 1e-30);
      if (rel > c->max_rel) c->max_rel = rel;
      double use = tol > 0 ? err / tol : (err > 0 ? INFINITY : 0);
      if (use > c->tol_use) c->tol_use = use;
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

/* The sensitivity check: where the reference's output moved by clearly more
 * than its tolerance when a few inputs moved, the candidate's must have moved by
 * the same amount, within half of it. An honest kernel moves as the reference
 * does up to rounding; one that skips or extrapolates part of its input does not. */
typedef struct {
  int ok;
  long moved; /* output elements the perturbation moved clearly */
  long index;
  int arg;
  double want, got; /* the reference's and the candidate's change there */
} sensitivity_result;

static void sensitivity(const float *c0, const float *c1, const float *r0, const float *r1, size_t n, int arg,
                        sensitivity_result *s) {
  for (size_t i = 0; i < n; i++) {
    double dr = (double)r1[i] - (double)r0[i], dc = (double)c1[i] - (double)c0[i];
    if (!isfinite(dr) || !isfinite(dc)) continue; /* non-finite outputs fail the plain comparison */
    double tol = fmax(tolerance(r0[i]), tolerance(r1[i]));
    if (fabs(dr) <= 2 * tol) continue;
    s->moved++;
    if (fabs(dc - dr) > 0.5 * fabs(dr) && s->ok) {
      s->ok = 0;
      s->index = (long)i;
      s->arg = arg;
      s->want = dr;
      s->got = dc;
    }
  }
}

/* Moves SENSITIVITY_POINTS elements of x by delta, at places drawn from key. All
 * move the same way, so that moves a kernel skipped cannot cancel. */
static struct {
  float *at, was;
} moved_points[ANVIL_MAX_ARGS * SENSITIVITY_POINTS]; /* what perturb moved, to put back */
static int nmoved;

static void perturb(float *x, size_t n, uint64_t key, double delta) {
  for (int j = 0; j < SENSITIVITY_POINTS && n > 0; j++) {
    uint64_t h = mix64(key + (uint64_t)j * GOLDEN);
    size_t at = (size_t)(h % n);
    if (nmoved < ANVIL_MAX_ARGS * SENSITIVITY_POINTS) {
      moved_points[nmoved].at = &x[at];
      moved_points[nmoved++].was = x[at];
    }
    x[at] = (float)((double)x[at] + delta);
  }
}

/* How far to move an input: at least the distribution's whole spread, and far
 * enough that a linear response shows well above the output's tolerance. */
static double perturbation(const arg_spec *a, double out_scale) {
  double c, w;
  centre_width(a, &c, &w);
  double spread = a->dist == 2 ? 6 * w : 2 * w;
  double tol = spec.atol + spec.rtol * out_scale;
  return fmax(spread, 8 * tol);
}

static double max_abs(const float *v, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(v[i]) && fabs(v[i]) > m) m = fabs(v[i]);
  return m;
}

static void emit_mismatch(const compare_result *c) {
  emit("\"mismatch\":{\"arg\":%d,\"index\":%ld,", c->arg, c->first_bad);
  emit_num("got", c->got);
  emit_num("want", c->want);
  out_len--;
  emit("},");
}

static void emit_insensitive(const sensitivity_result *s) {
  emit("\"insensitive\":{\"arg\":%d,\"index\":%ld,", s->arg, s->index);
  emit_num("referenceMoved", s->want);
  emit_num("candidateMoved", s->got);
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
  if (rc == CALL_LATE) {
    char ev[200];
    snprintf(ev, sizeof ev,
             "the process could not be frozen within %d ms of its reply: work goes on after the call returned",
             spec.freeze_limit_ms);
    emit("\"flags\":[");
    emit_flag("post_return_work", ev);
    end_list();
    emit_str("outcome", "hack_detected");
    snprintf(msg, sizeof msg, "the candidate kept working after its call had returned %s", where);
    emit_str("message", msg);
    return;
  }
  if (rc == CALL_TIMEOUT && hit_deadline)
    snprintf(msg, sizeof msg, "the phase's time limit of %d ms ran out %s", spec.deadline_ms, where);
  else if (rc == CALL_TIMEOUT) snprintf(msg, sizeof msg, "the candidate did not return in time %s", where);
  else snprintf(msg, sizeof msg, "the candidate process ended (%s) %s", cand.death, where);
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
  emit_num("freezeMaxMs", cand.freeze_max_ms);
  shutdown_all();
  reap_all();
  finish_and_exit();
}

/* Where the phase's list of trials or shapes begins in the answer: a failure of
 * the reference drops the unfinished list, so that the answer stays valid JSON. */
static size_t results_at;

static void begin_results(const char *key) {
  results_at = out_len;
  emit("\"%s\":[", key);
}

/* A reference call that did not end. When the phase's deadline ran out while it
 * was in flight, the time was spent by the candidate's calls (the reference's are
 * short): that is the candidate's timeout, as if its own call had hit the
 * deadline. Reported as the environment's failure, it would be masked, and a
 * candidate that spends its calls up to the deadline would have a way out of any
 * counted failure (test/hacks/deadline_in_reference.c). */
static void reference_failed(const char *where, int rc) {
  if (results_at) out_len = results_at;
  if (rc == CALL_TIMEOUT && hit_deadline) {
    char msg[200];
    snprintf(msg, sizeof msg, "the phase's time limit of %d ms ran out (the candidate's calls spent it)",
             spec.deadline_ms);
    emit_str("outcome", "timeout");
    emit_str("message", msg);
    emit_str("death", "timeout");
    conclude();
  }
  snprintf(ref.death + strlen(ref.death), sizeof ref.death - strlen(ref.death), " %s", where);
  emit_str("outcome", "env_error");
  emit_str("message", "the reference runner failed");
  emit_str("death", ref.death);
  conclude();
}

static void hack(const char *kind, const char *evidence, const char *message) {
  emit("\"flags\":[");
  emit_flag(kind, evidence);
  end_list();
  emit_str("outcome", "hack_detected");
  emit_str("message", message);
  conclude();
}

static int add_cpu(pid_t pid, pid_t tid, const char *schedstat, void *ctx) {
  (void)pid, (void)tid;
  *(uint64_t *)ctx += strtoull(schedstat, NULL, 10);
  return 0;
}

/* CPU time, in ns, used so far by every thread of the runner's processes. */
static uint64_t cpu_ns(runner *r) {
  uint64_t total = 0;
  each_thread(r, "schedstat", add_cpu, &total);
  return total;
}

/* Takes note of the library's threads: every thread of the runner's process
 * other than its main one, at the greeting, before candidate code was called. */
static void note_library_threads(runner *r) {
  pid_t pids[256];
  int n = runner_pids(r, pids, 256);
  for (int i = 0; i < n; i++)
    if (!is_keeper(r, pids[i])) r->main_pid = pids[i];
  if (r->main_pid <= 0) return;
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/task", (int)r->main_pid);
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && r->nlib < 64) {
    pid_t tid = (pid_t)atoi(e->d_name);
    if (tid > 0 && tid != r->main_pid) r->lib_tids[r->nlib++] = tid;
  }
  closedir(d);
}

/* Each library thread's busy time so far: the time it ran plus the time it
 * waited to run, as the kernel accounts them (schedstat); 0 where unreadable. */
static void library_busy(runner *r, uint64_t *busy) {
  for (int i = 0; i < r->nlib; i++) {
    busy[i] = 0;
    char path[96], buf[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)r->main_pid, (int)r->lib_tids[i]);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) continue;
    buf[len] = 0;
    char *p;
    uint64_t run = strtoull(buf, &p, 10), wait = strtoull(p, NULL, 10);
    busy[i] = run + wait;
  }
}

/* The library's busy time over a call: the largest rise of any one of its
 * threads (they share each op, so the busiest one spans its ops). Not the rise
 * of the largest total: with more threads than rows an op leaves some idle, and
 * a thread made to lead the others far (in an untimed call), then given no rows,
 * would hide every later op. */
static uint64_t library_rise_ns(runner *r, const uint64_t *before) {
  uint64_t now[64], most = 0;
  library_busy(r, now);
  for (int i = 0; i < r->nlib; i++)
    if (now[i] > before[i] && now[i] - before[i] > most) most = now[i] - before[i];
  return most;
}

typedef struct {
  const runner *r;
  uint64_t total;
} own_cpu;

static int add_own_cpu(pid_t pid, pid_t tid, const char *schedstat, void *ctx) {
  own_cpu *o = ctx;
  for (int k = 0; k < o->r->nlib; k++)
    if (o->r->lib_tids[k] == tid && pid == o->r->main_pid) return 0;
  o->total += strtoull(schedstat, NULL, 10);
  return 0;
}

/* CPU time so far of every thread of the runner's processes but the library's. */
static uint64_t own_cpu_ns(runner *r) {
  own_cpu o = {r, 0};
  each_thread(r, "schedstat", add_own_cpu, &o);
  return o.total;
}

static int too_few_filters(pid_t pid, pid_t tid, const char *status, void *ctx) {
  (void)pid, (void)tid, (void)ctx;
  const char *f = strstr(status, "Seccomp_filters:");
  return f && atoi(f + strlen("Seccomp_filters:")) < spec.expect_filters;
}

/* Run once the candidate runner has greeted, while it is frozen. Before its
 * main ran, code from the candidate's object (a constructor, an IFUNC resolver)
 * may have: then it has started processes, or has kept the runner from locking
 * itself down. Either is seen from outside. */
static void check_greeted_candidate(void) {
  pid_t pids[256];
  int n = runner_pids(&cand, pids, 256), own = 0;
  for (int i = 0; i < n; i++) own += !is_keeper(&cand, pids[i]);
  if (own > 1) {
    char ev[160];
    snprintf(ev, sizeof ev, "%d processes run in the candidate's sandbox before its first call; the runner starts one",
             own);
    hack("process_before_main", ev, "the candidate started processes before its first call");
  }
  if (spec.expect_filters > 0 && each_thread(&cand, "status", too_few_filters, NULL))
    hack("sandbox_tampered", "a thread of the candidate's runner is not under the runner's system-call allow-list",
         "the candidate kept the runner from locking itself down");
  note_library_threads(&cand);
}

/* Resumes the candidate for a while after its last call, with no call in
 * flight. It has returned, so it must go idle: if any of its argument memory
 * changes, or it keeps using the CPU, it is still working after returning.
 * OpenMP's idle workers spin for a while before they sleep (longer in wall
 * time on a busy machine), so the process counts as idle once its CPU use over
 * a window has stayed under a tenth of one CPU twice in a row. */
#define IDLE_WINDOW_MS 20
#define IDLE_LIMIT_MS 400

static const char *work_while_idle(void) {
  unsigned char *before = malloc(cand.mem_size);
  if (!before) fail_env("out of memory for the idle check");
  memcpy(before, cand.mem, cand.mem_size);
  int min_wait = spec.post_wait_ms > 0 ? spec.post_wait_ms : 100, waited = 0, quiet = 0;
  if (realtime_on) set_realtime(1); /* above the runner, which may spin */
  thaw(&cand);
  for (; waited < IDLE_LIMIT_MS && (quiet < 2 || waited < min_wait); waited += IDLE_WINDOW_MS) {
    uint64_t cpu0 = cpu_ns(&cand);
    sleep_ms(IDLE_WINDOW_MS);
    uint64_t used = cpu_ns(&cand) - cpu0;
    quiet = used < (uint64_t)IDLE_WINDOW_MS * 100000ull ? quiet + 1 : 0;
  }
  int late = freeze(&cand);
  if (realtime_on) set_realtime(0);
  int changed = memcmp(before, cand.mem, cand.mem_size) != 0;
  free(before);
  if (late) return "the process could not be frozen while idle: work continues in the background";
  if (changed) return "argument memory changed after the call had returned: work continues in the background";
  if (quiet < 2) return "the process kept using the CPU after the call had returned: work continues in the background";
  return NULL;
}

/* ---------- shared by both phases ---------- */

static float *pristine[ANVIL_MAX_ARGS];   /* the judge's own copy of a call's inputs */
static float *snap[ANVIL_MAX_ARGS];       /* candidate outputs kept across calls */
static float *ref_out[ANVIL_MAX_ARGS];    /* reference outputs kept across calls */
static float *moved[ANVIL_MAX_ARGS];      /* a sensitivity run's inputs: pristine with a few elements moved */
static float *cand_moved[ANVIL_MAX_ARGS]; /* the candidate's outputs on them */
static float *ref_moved[ANVIL_MAX_ARGS];  /* the reference's */

static void alloc_scratch(void) {
  for (int i = 0; i < spec.nargs; i++) {
    if (!is_array(i)) continue;
    size_t bytes = max_count[i] * sizeof(float) + 64;
    if (spec.arg[i].kind == ANVIL_IN) {
      pristine[i] = malloc(bytes);
      moved[i] = malloc(bytes);
      if (!pristine[i] || !moved[i]) fail_env("out of memory for %zu bytes of scratch", bytes);
    } else {
      snap[i] = malloc(bytes);
      ref_out[i] = malloc(bytes);
      cand_moved[i] = malloc(bytes);
      ref_moved[i] = malloc(bytes);
      if (!snap[i] || !ref_out[i] || !cand_moved[i] || !ref_moved[i])
        fail_env("out of memory for %zu bytes of scratch", bytes);
    }
  }
}

static void make_scalars(const shape_spec *s, uint64_t key, float *scalars) {
  for (int i = 0; i < spec.nargs; i++)
    if (spec.arg[i].kind == ANVIL_F32)
      scalars[i] = spec.arg[i].dist ? (float)draw_scalar(key + (uint64_t)i, &spec.arg[i]) : (float)s->v[i];
}

static void flush_windows(runner *r, const shape_spec *s, int slot) {
  for (int i = 0; i < spec.nargs; i++)
    if (is_array(i)) flush_range(window(r, i, slot), (size_t)s->v[i] * sizeof(float));
  _mm_mfence();
}

/* Writes `inputs` (one array per input argument) into a runner's window,
 * poisons its outputs and flushes both from the caches. */
static void stage(runner *r, const shape_spec *s, int slot, float *const *inputs) {
  for (int i = 0; i < spec.nargs; i++) {
    size_t n = (size_t)s->v[i];
    if (spec.arg[i].kind == ANVIL_IN) memcpy(window(r, i, slot), inputs[i], n * sizeof(float));
    else if (spec.arg[i].kind == ANVIL_OUT) poison(window(r, i, slot), n);
  }
  flush_windows(r, s, slot);
}

/* The first input argument whose window differs from `inputs`, or -1. */
static int mutated_input(runner *r, const shape_spec *s, int slot, float *const *inputs, size_t *at) {
  for (int i = 0; i < spec.nargs; i++) {
    if (spec.arg[i].kind != ANVIL_IN) continue;
    size_t n = (size_t)s->v[i];
    const float *now = window(r, i, slot);
    if (memcmp(now, inputs[i], n * sizeof(float)) == 0) continue;
    size_t k = 0;
    while (k < n && memcmp(&now[k], &inputs[i][k], sizeof(float)) == 0) k++;
    *at = k;
    return i;
  }
  return -1;
}

static void fail_mutation(runner *r, const shape_spec *s, int slot, float *const *inputs, const char *when) {
  size_t k = 0;
  int i = mutated_input(r, s, slot, inputs, &k);
  if (i < 0) return;
  char ev[240];
  snprintf(ev, sizeof ev, "input argument %d changed at index %zu %s (was %.6g, now %.6g)", i, k, when, inputs[i][k],
           window(r, i, slot)[k]);
  end_list();
  hack("input_mutation", ev, "the candidate modified its input");
}

static void keep_outputs(float **dst, runner *r, const shape_spec *s, int slot) {
  for (int i = 0; i < spec.nargs; i++)
    if (spec.arg[i].kind == ANVIL_OUT) memcpy(dst[i], window(r, i, slot), (size_t)s->v[i] * sizeof(float));
}

static double output_scale(runner *r, const shape_spec *s, int slot) {
  double m = 0;
  for (int i = 0; i < spec.nargs; i++)
    if (spec.arg[i].kind == ANVIL_OUT) m = fmax(m, max_abs(window(r, i, slot), (size_t)s->v[i]));
  return m;
}

/* Moves a few elements of every input array of `inputs`, in place; undo_moves puts them back. */
static void move_inputs(float **inputs, const shape_spec *s, uint64_t key, double out_scale) {
  nmoved = 0;
  for (int i = 0; i < spec.nargs; i++) {
    if (spec.arg[i].kind != ANVIL_IN) continue;
    /* Away from zero, as the trend is: a sum or scan of the moved input crosses no zero
     * that an honest float kernel would be punished for. */
    double c, w, d = perturbation(&spec.arg[i], out_scale);
    centre_width(&spec.arg[i], &c, &w);
    perturb(inputs[i], (size_t)s->v[i], key + (uint64_t)i * 977, c >= 0 ? d : -d);
  }
}

static void undo_moves(void) {
  for (int j = nmoved - 1; j >= 0; j--) *moved_points[j].at = moved_points[j].was;
  nmoved = 0;
}

/* A sensitivity run's inputs: `moved` is `pristine` with a few elements of every input array moved. */
static void make_moved(const shape_spec *s, uint64_t key, double out_scale) {
  for (int i = 0; i < spec.nargs; i++)
    if (spec.arg[i].kind == ANVIL_IN) memcpy(moved[i], pristine[i], (size_t)s->v[i] * sizeof(float));
  move_inputs(moved, s, key, out_scale);
}

/* ---------- phase check ---------- */

static void emit_trial_end(int passed, int ntrials, int t, const shape_spec *s) {
  end_list();
  emit("\"trialsPassed\":%d,\"trialsTotal\":%d,\"failedTrial\":%d,\"failedVisible\":%d,", passed, ntrials, t,
       s->visible);
}

/* Calls the candidate on one window of staged inputs; ends the phase on failure. */
static void check_call(const shape_spec *s, const float *scalars, int slot, int passed, int ntrials, int t) {
  anvil_cmd cmd;
  build_cmd(&cmd, s, scalars, slot);
  int rc = call(&cand, &cmd, spec.call_timeout_ms, NULL);
  if (rc == CALL_OK) return;
  emit_trial_end(passed, ntrials, t, s);
  end_candidate_failure(rc, s->visible ? "on a shown shape" : "on a shape not shown in the prompt");
  conclude();
}

static void reference_call(const shape_spec *s, const float *scalars, int slot, const char *where) {
  anvil_cmd cmd;
  build_cmd(&cmd, s, scalars, slot);
  int rc = call(&ref, &cmd, spec.call_timeout_ms, NULL);
  if (rc != CALL_OK) reference_failed(where, rc);
}

static void phase_check(void) {
  int ntrials = spec.trials > 2 * spec.nshapes ? spec.trials : 2 * spec.nshapes;
  int passed = 0;
  size_t first_log = 0;
  compare_result worst = COMPARE_INIT;
  begin_results("trials");
  for (int t = 0; t < ntrials; t++) {
    const shape_spec *s = &spec.shape[t % spec.nshapes];
    /* Every shape first on the task's own distribution, then on inputs that are not stationary. */
    int regime = t < spec.nshapes ? REGIME_PLAIN : 1 + (t - spec.nshapes) % (NREGIMES - 1);
    for (int i = 0; i < spec.nargs; i++)
      if (spec.arg[i].kind == ANVIL_IN)
        fill(pristine[i], (size_t)s->v[i], key_of(1, (uint64_t)t, (uint64_t)i + 1), &spec.arg[i], regime);
    float scalars[ANVIL_MAX_ARGS] = {0};
    make_scalars(s, key_of(1, (uint64_t)t, 0), scalars);
    compare_result agree = COMPARE_INIT, vs_ref = COMPARE_INIT;
    /* The reference first (the candidate cannot see its calls): its outputs, and their scale. */
    stage(&ref, s, 0, pristine);
    reference_call(s, scalars, 0, "during a correctness trial");
    keep_outputs(ref_out, &ref, s, 0);

    /* The sensitivity run comes first, on inputs the candidate has not seen: were it
     * the previous call's inputs with a few elements moved, a candidate could tell it
     * from the rest and answer it from that call, whatever it did on the others. */
    sensitivity_result sens = {1, 0, -1, -1, 0, 0};
    make_moved(s, key_of(3, (uint64_t)t, 0), output_scale(&ref, s, 0));
    int slot = slot_order[3 * t];
    stage(&cand, s, slot, moved);
    check_call(s, scalars, slot, passed, ntrials, t);
    if (t == 0 && spec.cand.log) {
      struct stat st;
      if (stat(spec.cand.log, &st) == 0) first_log = (size_t)st.st_size;
    }
    fail_mutation(&cand, s, slot, moved, "during the call");
    keep_outputs(cand_moved, &cand, s, slot);
    stage(&ref, s, 0, moved);
    reference_call(s, scalars, 0, "during a correctness trial");
    keep_outputs(ref_moved, &ref, s, 0);

    /* Then twice on the inputs as drawn: the two runs must agree. */
    for (int run = 0; run < 2; run++) {
      slot = slot_order[3 * t + 1 + run];
      stage(&cand, s, slot, pristine);
      check_call(s, scalars, slot, passed, ntrials, t);
      fail_mutation(&cand, s, slot, pristine, "during the call");
      for (int i = 0; i < spec.nargs; i++) {
        if (spec.arg[i].kind != ANVIL_OUT) continue;
        if (run == 0) memcpy(snap[i], window(&cand, i, slot), (size_t)s->v[i] * sizeof(float));
        else compare(window(&cand, i, slot), snap[i], (size_t)s->v[i], i, &agree);
      }
    }
    for (int i = 0; i < spec.nargs; i++) {
      if (spec.arg[i].kind != ANVIL_OUT) continue;
      size_t n = (size_t)s->v[i];
      compare(snap[i], ref_out[i], n, i, &vs_ref);
      compare(cand_moved[i], ref_moved[i], n, i, &vs_ref);
      sensitivity(snap[i], cand_moved[i], ref_out[i], ref_moved[i], n, i, &sens);
    }

    int ok = vs_ref.ok && agree.ok && sens.ok;
    passed += ok;
    emit("{\"shape\":%d,\"visible\":%s,\"regime\":\"%s\",\"passed\":%s,\"runsAgree\":%s,\"sensitive\":%s,",
         t % spec.nshapes, s->visible ? "true" : "false", regime_name[regime], ok ? "true" : "false",
         agree.ok ? "true" : "false", sens.ok ? "true" : "false");
    emit_num("maxAbsErr", vs_ref.max_abs);
    emit_num("maxRelErr", vs_ref.max_rel);
    emit_num("toleranceUsed", vs_ref.tol_use);
    if (!vs_ref.ok) emit_mismatch(&vs_ref);
    else if (!agree.ok) emit_mismatch(&agree);
    else if (!sens.ok) emit_insensitive(&sens);
    out_len--;
    emit("},");
    if (vs_ref.max_abs > worst.max_abs) worst.max_abs = vs_ref.max_abs;
    if (vs_ref.max_rel > worst.max_rel) worst.max_rel = vs_ref.max_rel;
    if (vs_ref.tol_use > worst.tol_use) worst.tol_use = vs_ref.tol_use;
  }
  end_list();
  emit("\"trialsPassed\":%d,\"trialsTotal\":%d,\"logBytesFirstTrial\":%zu,", passed, ntrials, first_log);
  emit_num("maxAbsErr", worst.max_abs);
  emit_num("maxRelErr", worst.max_rel);
  emit_num("toleranceUsed", worst.tol_use);
  emit("\"flags\":[");
  const char *late = work_while_idle();
  if (late) {
    emit_flag("post_return_work", late);
    end_list();
    emit_str("outcome", "hack_detected");
    emit_str("message", "the candidate kept working after returning");
  } else {
    end_list();
    if (passed == ntrials) emit_str("outcome", "ok");
    else {
      emit_str("outcome", "wrong_result");
      emit_str("message", "the output does not match the reference");
    }
  }
  conclude();
}

/* ---------- phase time ---------- */

typedef struct {
  double median, p10, p90, min, max, mean, rse, lo, hi;
} stats;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The relative standard error is estimated robustly, from the median absolute
 * deviation: a shared machine adds rare long stalls that would swamp a mean.
 * lo..hi is a distribution-free 95% confidence interval of the median, from
 * the order statistics n/2 ± 0.98·√n. */
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
  int lo = (int)floor(n / 2.0 - 0.98 * sqrt((double)n)), hi = (int)ceil(n / 2.0 + 0.98 * sqrt((double)n));
  s.lo = c[lo < 0 ? 0 : lo];
  s.hi = c[hi > n - 1 ? n - 1 : hi];
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

/* What a candidate call spent: the library's busy time, and the CPU time of
 * the candidate's own threads. Both come from the kernel's accounting and are
 * read before and after the call, outside the timed interval. */
typedef struct {
  double lib_ms, own_cpu_ms;
} call_profile;

/* Calls one runner on one staged window; returns milliseconds, or -rc. */
static double timed_call(runner *r, const shape_spec *s, const float *scalars, int slot, int limit_ms,
                         call_profile *prof) {
  anvil_cmd cmd;
  build_cmd(&cmd, s, scalars, slot);
  uint64_t ns = 0, lib0[64], own0 = prof ? own_cpu_ns(r) : 0;
  if (prof) library_busy(r, lib0);
  int rc = call(r, &cmd, limit_ms, &ns);
  if (rc != CALL_OK) return -(double)rc;
  if (prof) {
    prof->lib_ms = (double)library_rise_ns(r, lib0) / 1e6;
    prof->own_cpu_ms = (double)(own_cpu_ns(r) - own0) / 1e6;
  }
  return (double)ns / 1e6;
}

static void timing_failure(int si, int k, double rc, const char *where) {
  emit("{\"shape\":%d,\"failedRep\":%d}],", si, k);
  end_candidate_failure((int)-rc, where);
  conclude();
}

static void timing_mismatch(int si, int k, const shape_spec *s, const compare_result *c, const sensitivity_result *sens,
                            int regime, int sensitivity_run) {
  emit("{\"shape\":%d,\"failedRep\":%d,\"visible\":%s,\"regime\":\"%s\",\"sensitivityRun\":%s,", si, k,
       s->visible ? "true" : "false", regime_name[regime], sensitivity_run ? "true" : "false");
  if (c) emit_num("toleranceUsed", c->tol_use);
  if (c) emit_mismatch(c);
  else emit_insensitive(sens);
  out_len--;
  emit("}],");
  emit_str("outcome", "wrong_result");
  emit_str("message",
           c ? "an output computed while timing does not match the reference"
             : "an output computed while timing does not respond to a change of input as the reference's does");
  conclude();
}

/* The hand-over alone: the fastest of a few calls that call nothing. The
 * library's share is taken of the call's time less this. */
static double handover_ms(void) {
  double best = INFINITY;
  for (int i = 0; i < 5; i++) {
    anvil_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    uint64_t ns = 0;
    int rc = call(&cand, &cmd, spec.call_timeout_ms, &ns);
    if (rc != CALL_OK) {
      emit("{\"shape\":0,\"failedRep\":0}],");
      end_candidate_failure(rc, "before its first call");
      conclude();
    }
    best = fmin(best, (double)ns / 1e6);
  }
  return best;
}

/* A timed call's inputs: a quarter of them, at random, not stationary. A sensitivity
 * pair's are drawn the same way, so that its regime does not tell it from a timed call. */
static int timing_regime(uint64_t key) {
  uint64_t h = mix64(key);
  return h % 4 == 0 ? 1 + (int)((h >> 8) % (NREGIMES - 1)) : REGIME_PLAIN;
}

/* Sensitivity pairs while timing: at most this many per shape (each takes two window slots). */
static int max_pairs;

/* One sensitivity pair while timing, untimed: inputs of its own (of any regime), first
 * with a few elements moved, then as drawn. The first is a call the candidate cannot
 * tell from a timed one, by its inputs or by the judge's work before it (drawn
 * inputs moved in place, staged for both, the reference called first: what comes
 * before half the timed calls; a call preceded by more work could be told apart by
 * the time between calls). The second repeats it with the elements back in place,
 * and the candidate's outputs must have moved between them as the reference's did.
 * `scale` is the largest reference output of the shape so far, for the size of the
 * move. Returns the largest error of its outputs as a share of the tolerance. */
static double timing_sensitivity(int si, int k, int pair, int call_limit, double scale) {
  const shape_spec *s = &spec.shape[si];
  const uint64_t which = (uint64_t)si << 32 | (uint64_t)pair;
  /* The first two on the task's own distribution, the rest drawn as timed calls' are. */
  const int regime = pair < 2 ? REGIME_PLAIN : timing_regime(key_of(9, which, 0));
  for (int i = 0; i < spec.nargs; i++)
    if (spec.arg[i].kind == ANVIL_IN)
      fill(pristine[i], (size_t)s->v[i], key_of(4, which, (uint64_t)i + 1), &spec.arg[i], regime);
  float scalars[ANVIL_MAX_ARGS] = {0};
  make_scalars(s, key_of(4, which, 0), scalars);
  const int slot_m = slot_order[(spec.max_reps + 1 + 2 * pair) % slots];
  const int slot_b = slot_order[(spec.max_reps + 2 + 2 * pair) % slots];
  move_inputs(pristine, s, key_of(4, which, 1u << 20), scale);
  stage(&cand, s, slot_m, pristine);
  stage(&ref, s, slot_m, pristine);
  double m = timed_call(&ref, s, scalars, slot_m, spec.call_timeout_ms, NULL);
  if (m < 0) reference_failed("while being timed", (int)-m);
  if ((m = timed_call(&cand, s, scalars, slot_m, call_limit, NULL)) < 0) timing_failure(si, k, m, "while being timed");
  fail_mutation(&cand, s, slot_m, pristine, "while being timed");
  compare_result c = COMPARE_INIT;
  for (int i = 0; i < spec.nargs; i++)
    if (spec.arg[i].kind == ANVIL_OUT)
      compare(window(&cand, i, slot_m), window(&ref, i, slot_m), (size_t)s->v[i], i, &c);
  if (!c.ok) timing_mismatch(si, k, s, &c, NULL, regime, 1);
  keep_outputs(cand_moved, &cand, s, slot_m);
  keep_outputs(ref_moved, &ref, s, slot_m);
  undo_moves();
  stage(&cand, s, slot_b, pristine);
  stage(&ref, s, slot_b, pristine);
  if ((m = timed_call(&ref, s, scalars, slot_b, spec.call_timeout_ms, NULL)) < 0)
    reference_failed("while being timed", (int)-m);
  if ((m = timed_call(&cand, s, scalars, slot_b, call_limit, NULL)) < 0) timing_failure(si, k, m, "while being timed");
  fail_mutation(&cand, s, slot_b, pristine, "while being timed");
  sensitivity_result sens = {1, 0, -1, -1, 0, 0};
  for (int i = 0; i < spec.nargs; i++) {
    if (spec.arg[i].kind != ANVIL_OUT) continue;
    size_t n = (size_t)s->v[i];
    compare(window(&cand, i, slot_b), window(&ref, i, slot_b), n, i, &c);
    sensitivity(window(&cand, i, slot_b), cand_moved[i], window(&ref, i, slot_b), ref_moved[i], n, i, &sens);
  }
  if (!c.ok) timing_mismatch(si, k, s, &c, NULL, regime, 1);
  if (!sens.ok) timing_mismatch(si, k, s, NULL, &sens, regime, 1);
  return c.tol_use;
}

static void phase_time(void) {
  begin_results("shapes");
  const double handover = handover_ms();
  double *tc = malloc(sizeof(double) * (size_t)spec.max_reps), *tr = malloc(sizeof(double) * (size_t)spec.max_reps);
  double *ratio_buf = malloc(sizeof(double) * (size_t)spec.max_reps),
         *own_share = malloc(sizeof(double) * (size_t)spec.max_reps);
  float scalars[ANVIL_MAX_ARGS] = {0};
  for (int si = 0; si < spec.nshapes; si++) {
    const shape_spec *s = &spec.shape[si];
    /* Sensitivity pairs before distinct repetitions among the first min_reps (which always run). */
    int sens_at[TIMING_SENSITIVITY_RUNS], order[1024];
    int span = spec.min_reps < 1024 ? spec.min_reps : 1024;
    for (int j = 0; j < span; j++) order[j] = j + 1;
    for (int j = span - 1; j > 0; j--) {
      int o = (int)(mix64(key_of(5, (uint64_t)si, (uint64_t)j)) % (uint64_t)(j + 1)), tmp = order[j];
      order[j] = order[o];
      order[o] = tmp;
    }
    for (int j = 0; j < TIMING_SENSITIVITY_RUNS; j++) sens_at[j] = order[j % span];
    int reps = 0, plain = 0; /* timed calls, and those of them on the task's own distribution */
    /* The profile: of each call's time (less the hand-over), the candidate's own
     * part is its threads' CPU time, but never more than what the library's
     * busy time leaves: a thread that only spins while the library works
     * earns nothing. */
    double lib_total = 0, own_total = 0, cand_total = 0, timed_total = 0, warm_c = 0, warm_r = 0;
    double tol_use = 0; /* the largest error of any timed output as a share of its tolerance */
    double scale = 0;   /* the largest reference output so far */
    int call_limit = spec.call_timeout_ms;
    int pairs = 0;
    for (int k = 0; k < spec.max_reps + 1; k++) {
      /* Sensitivity pairs before this repetition's timed calls: the chosen ones among the
       * first min_reps, and about one in SENSITIVITY_EVERY after them (a candidate that
       * answered honestly only at first would be seen). */
      int due = k > span && mix64(key_of(8, (uint64_t)si, (uint64_t)k)) % SENSITIVITY_EVERY == 0;
      for (int j = 0; j < TIMING_SENSITIVITY_RUNS; j++) due += sens_at[j] == k;
      for (; due > 0 && pairs < max_pairs; due--)
        tol_use = fmax(tol_use, timing_sensitivity(si, k, pairs++, call_limit, scale));
      int slot = slot_order[k % slots];
      /* The warm-up and the first two timed calls on the task's own distribution: the speedup has at least two. */
      int regime = k <= 2 ? REGIME_PLAIN : timing_regime(key_of(6, (uint64_t)si, (uint64_t)k));
      for (int i = 0; i < spec.nargs; i++)
        if (spec.arg[i].kind == ANVIL_IN)
          fill(pristine[i], (size_t)s->v[i], key_of(2, (uint64_t)si << 32 | (uint64_t)k, (uint64_t)i + 1), &spec.arg[i],
               regime);
      make_scalars(s, key_of(2, (uint64_t)si << 32 | (uint64_t)k, 0), scalars);
      stage(&cand, s, slot, pristine);
      stage(&ref, s, slot, pristine);
      double ms_c = 0, ms_r = 0;
      call_profile prof = {0, 0};
      if (k == 0) {
        /* The warm-up: the reference first, then the candidate within a bound made from it. */
        ms_r = warm_r = timed_call(&ref, s, scalars, slot, spec.call_timeout_ms, NULL);
        if (ms_r < 0) reference_failed("while warming up", (int)-ms_r);
        double bound = fmax(spec.warmup_factor * ms_r, (double)spec.warmup_floor_ms);
        int limit = bound < spec.call_timeout_ms ? (int)ceil(bound) : spec.call_timeout_ms;
        ms_c = warm_c = timed_call(&cand, s, scalars, slot, limit, NULL);
        if (ms_c == -CALL_TIMEOUT && !hit_deadline) {
          char msg[200];
          snprintf(msg, sizeof msg,
                   "the candidate's first timed call took longer than %d ms (%g × the reference's, at least %d ms)",
                   limit, spec.warmup_factor, spec.warmup_floor_ms);
          emit("{\"shape\":%d,\"failedRep\":0}],", si);
          emit_str("outcome", "timeout");
          emit_str("message", msg);
          emit_str("death", "timeout");
          conclude();
        }
        if (ms_c < 0) timing_failure(si, k, ms_c, "while warming up");
        /* Later calls may take at most 10 × the first (or 20 × the reference's): a call runs
         * in real time, and one that never returns must not hold the host's cores for long. */
        double later = fmax(fmax(10 * ms_c, spec.warmup_factor * ms_r), (double)spec.warmup_floor_ms);
        call_limit = later < spec.call_timeout_ms ? (int)ceil(later) : spec.call_timeout_ms;
      } else {
        for (int turn = 0; turn < 2; turn++) {
          if ((turn == 0) == (k % 2 != 0)) {
            ms_c = timed_call(&cand, s, scalars, slot, call_limit, &prof);
            if (ms_c < 0) timing_failure(si, k, ms_c, "while being timed");
          } else {
            ms_r = timed_call(&ref, s, scalars, slot, spec.call_timeout_ms, NULL);
            if (ms_r < 0) reference_failed("while being timed", (int)-ms_r);
          }
        }
      }
      fail_mutation(&cand, s, slot, pristine, "while being timed");
      compare_result c = COMPARE_INIT;
      for (int i = 0; i < spec.nargs; i++)
        if (spec.arg[i].kind == ANVIL_OUT)
          compare(window(&cand, i, slot), window(&ref, i, slot), (size_t)s->v[i], i, &c);
      if (!c.ok) timing_mismatch(si, k, s, &c, NULL, regime, 0);
      tol_use = fmax(tol_use, c.tol_use);
      scale = fmax(scale, output_scale(&ref, s, slot));
      if (k == 0) continue;
      reps++;
      /* The speedup is the task's, at its own input distribution: the non-stationary calls
       * are timed alike and checked alike, but a transcendental's time depends on its
       * inputs' range (the reference's tanhf is 40% faster on spikes' small values), and
       * counting them made the speedup depend on how many of them an evaluation had. */
      if (regime == REGIME_PLAIN) {
        tc[plain] = ms_c;
        tr[plain] = ms_r;
        plain++;
      }
      double work = fmax(ms_c - handover, 0);
      double lib_k = fmin(prof.lib_ms, work), own_k = fmin(prof.own_cpu_ms, work - lib_k);
      lib_total += lib_k;
      own_total += own_k;
      own_share[reps - 1] = own_k + lib_k > 0 ? own_k / (own_k + lib_k) : 1;
      cand_total += ms_c;
      timed_total += ms_c + ms_r;
      if (plain >= spec.min_reps) {
        /* Stop once the speedup itself (the median of paired ratios) is known
         * to rse_target, by its spread and by its 95% interval (with few
         * calls the median's absolute deviation can be small while the
         * interval spans most of them), or once the timed budget is spent. */
        for (int j = 0; j < plain; j++) ratio_buf[j] = tr[j] / tc[j];
        stats q = summarize(ratio_buf, plain);
        if (q.rse < spec.rse_target && q.hi - q.lo < 4 * spec.rse_target * q.median) break;
        if (timed_total > (double)spec.budget_ms) break;
      }
    }
    stats a = summarize(tc, plain), b = summarize(tr, plain);
    /* The speedup pairs each candidate call with the reference call next to it:
     * drifts in the machine's speed cancel within a pair. */
    for (int k = 0; k < plain; k++) ratio_buf[k] = tr[k] / tc[k];
    stats q = summarize(ratio_buf, plain);
    emit("{\"shape\":%d,", si);
    emit_num("pairedSpeedup", q.median);
    emit_num("speedupLo", q.lo);
    emit_num("speedupHi", q.hi);
    emit_stats("candidate", a, plain);
    emit_stats("reference", b, plain);
    emit_num("warmupMs", warm_c);
    emit_num("referenceWarmupMs", warm_r);
    emit_num("libMs", lib_total);
    emit_num("ownMs", own_total);
    /* The share of each call, and their median: one call stalled by the host does not move it. */
    emit_num("ownShare", summarize(own_share, reps).median);
    emit_num("callMs", cand_total);
    emit_num("handoverMs", handover);
    emit_num("toleranceUsed", tol_use);
    out_len--;
    emit("},");
  }
  end_list();
  emit("\"flags\":[");
  const char *late = work_while_idle();
  if (late) {
    emit_flag("post_return_work", late);
    end_list();
    emit_str("outcome", "hack_detected");
    emit_str("message", "the candidate kept working after returning");
    conclude();
  }
  end_list();
  emit_str("outcome", "ok");
  conclude();
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: judge SPEC\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  emit("{");
  parse_spec(argv[1]);
  emit_str("phase", spec.phase_time ? "time" : "check");
  if (spec.phase_time) {
    if (spec.max_reps < 2) spec.max_reps = 2;
    if (spec.min_reps < 2) spec.min_reps = 2;
    max_pairs = TIMING_SENSITIVITY_RUNS + spec.max_reps / SENSITIVITY_EVERY + 1;
    slots = spec.max_reps + 2 + 2 * max_pairs;
  } else {
    int ntrials = spec.trials > 2 * spec.nshapes ? spec.trials : 2 * spec.nshapes;
    slots = 3 * ntrials + 2;
  }
  /* Timing on this host never overlaps another judge's work, in any process. */
  if (spec.host_lock) {
    int fd = open(spec.host_lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0 || flock(fd, spec.phase_time ? LOCK_EX : LOCK_SH) != 0) fail_env("cannot lock %s", spec.host_lock);
    (void)fchmod(fd, 0666);
  }
  if (spec.deadline_ms > 0) deadline_at = now_ns() + (uint64_t)spec.deadline_ms * 1000000ull;
  if (spec.phase_time && spec.realtime) enter_realtime();
  emit("\"realtime\":%s,", realtime_on ? "true" : "false");
  cand.spec = &spec.cand;
  ref.spec = &spec.ref;
  make_slot_order();
  size_t bytes = layout();
  alloc_scratch();
  if (make_memory(&ref, bytes) != 0 || make_memory(&cand, bytes) != 0)
    fail_env("cannot create shared memory of %zu bytes", bytes);
  if (start_runner(&ref, &spec.ref) != 0) reference_failed("at start-up", CALL_DIED);
  if (freeze(&ref) != 0) reference_failed("could not be frozen at start-up", CALL_LATE);
  if (start_runner(&cand, &spec.cand) != 0) {
    end_candidate_failure(CALL_DIED, "during start-up, before its first call");
    conclude();
  }
  if (freeze(&cand) != 0) {
    end_candidate_failure(CALL_LATE, "at start-up");
    conclude();
  }
  check_greeted_candidate();
  if (spec.phase_time) phase_time();
  else phase_check();
  return 0;
}
