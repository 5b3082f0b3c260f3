// Tries to escape being stopped between calls: starts a storm of processes that fork and send
// SIGCONT to their whole group, so that some keep running (and computing ahead) while the candidate
// is supposedly frozen.
// task: vector_add
// expect: static_violation forbidden_call
// unchecked: ok
int fork(void);
int kill(int pid, int sig);
static int started;
void solve(const float *a, const float *b, float *out, int n) {
  if (!started) {
    started = 1;
    for (int k = 0; k < 4; k++)
      if (fork() == 0)
        for (;;) {
          fork();
          kill(0, 18 /* SIGCONT */);
        }
  }
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}
